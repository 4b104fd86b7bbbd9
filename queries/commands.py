"""Click commands: `tokenshift query` (one recipe) and `tokenshift report` (all recipes, figures, index.md)."""

from __future__ import annotations

import json
import math

import click
import pandas as pd

from tokenshift.runtime.errors import TokenshiftError
from tokenshift.schemas.manifest import published_ancestor


def parse_param(text: str) -> tuple[str, str]:
    """'name=value' to (name, value); the value stays text and is cast by DuckDB to the parameter's type."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise TokenshiftError(f"--param expects name=value, got {text!r}")
    return name.strip(), value.strip()


def _json_value(value):
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    if hasattr(value, "item"):
        return _json_value(value.item())
    return value


def format_frame(df: pd.DataFrame, fmt: str) -> str:
    """Render a result as an aligned table, CSV, or JSON records (NaN -> null, inf -> "inf")."""
    if fmt == "csv":
        return df.to_csv(index=False).rstrip("\n")
    if fmt == "json":
        rows = [{k: _json_value(v) for k, v in row.items()} for row in df.astype(object).to_dict("records")]
        return json.dumps(rows, indent=1, ensure_ascii=False)
    if df.empty:
        return "(no rows)\n" + ", ".join(df.columns)
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 250):
        return df.to_string(index=False)


@click.command("query")
@click.argument("name", required=False)
@click.option("--data", "source", metavar="SRC",
              help="Build dir, registry version dir, REGISTRY@VERSION, REGISTRY@latest or hf://datasets/ORG/NAME@VERSION.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Override a recipe parameter (lists as a,b,c); repeatable.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--print-sql", is_flag=True, help="Print the preamble and recipe for the duckdb shell instead of running.")
@click.option("--list", "list_only", is_flag=True, help="List the recipes and their parameters.")
def query(name: str | None, source: str | None, params: tuple[str, ...], fmt: str, print_sql: bool,
          list_only: bool) -> None:
    """Run the DuckDB recipe NAME against a dataset (see --list for names)."""
    # DuckDB and pandas load when a recipe runs
    from tokenshift.queries.recipes import load_recipe, recipe_names
    from tokenshift.queries.run import check_params, run_recipe

    if list_only or not name:
        for recipe in map(load_recipe, recipe_names()):
            click.echo(f"{recipe.name}: {recipe.summary}")
            for p in recipe.params.values():
                click.echo(f"    {p.name} ({p.sql_type}, default {p.default_sql})")
        return
    recipe = load_recipe(name)
    overrides = dict(parse_param(p) for p in params)
    check_params(recipe, overrides)
    if not source:
        raise TokenshiftError("--data SRC is required (a build dir, REGISTRY@VERSION or hf://datasets/ORG/NAME@VERSION)")
    if print_sql:
        click.echo(pasteable_sql(name, source, overrides).rstrip("\n"))
        return
    click.echo(format_frame(run_recipe(name, source, overrides), fmt))


def pasteable_sql(name: str, source: str, overrides: dict[str, str]) -> str:
    """Preamble, SET VARIABLE lines for the overrides (quoted literals, for the shell only), then the recipe."""
    # DuckDB loads with the sources when the SQL is printed
    from tokenshift.queries.recipes import load_recipe
    from tokenshift.queries.sources import preamble_sql

    recipe = load_recipe(name)
    sets = ""
    for key, value in overrides.items():
        param = recipe.params[key]
        if param.is_list and not value.startswith("["):
            value = f"[{value}]"
        literal = "'" + value.replace("'", "''") + "'"
        sets += f"SET VARIABLE {key} = CAST({literal} AS {param.sql_type});\n"
    return preamble_sql(source) + "\n" + (sets + "\n" if sets else "") + recipe.sql


def refuse_published_out(out_dir: str) -> None:
    """Refuse an --out inside a published version: nothing tokenshift runs writes there."""
    version = published_ancestor(out_dir)
    if version is not None:
        raise TokenshiftError(f"--out {out_dir} is inside the published version {version}: published versions "
                              "are immutable, write elsewhere")


@click.command("report")
@click.option("--data", "source", required=True, metavar="SRC", help="Dataset to report on (as for `query`).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty directory that holds no previous report.")
def report(source: str, out_dir: str, overwrite: bool) -> None:
    """Run every recipe; write CSVs, PNG figures and index.md into --out."""
    # DuckDB, matplotlib and the viewer's transformers load when a report is written
    from tokenshift.queries.report import write_report

    refuse_published_out(out_dir)
    index = write_report(source, out_dir, overwrite=overwrite)
    click.echo(f"report written: {index}")


@click.command("view")
@click.option("--data", "source", required=True, metavar="SRC", help="Dataset to view (as for `query`).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory for index.html and one page per answer.")
@click.option("--generation", "generations", multiple=True, metavar="ID",
              help="generations.generation_id of an answer to show; repeatable (default: the most divergent).")
@click.option("--top", type=int, default=None, metavar="N",
              help="Without --generation: the N answers per sampler with the most positions at JS >= 0.1 "
                   "[default: 5].")
@click.option("--rl-model", default=None, metavar="NAME",
              help="Compare base with this RL model only (default: every RL model the answers are scored against).")
def view(source: str, out_dir: str, generations: tuple[str, ...], top: int | None, rl_model: str | None) -> None:
    """Write static HTML pages showing answers token by token, coloured by base-vs-RL divergence."""
    # transformers (the build's tokenizer) loads when pages are written
    from tokenshift.queries.viewer import DEFAULT_TOP, write_viewer

    if generations and top is not None:
        raise TokenshiftError("--top chooses answers when no --generation is given: pass one or the other")
    refuse_published_out(out_dir)
    index = write_viewer(source, out_dir, generations, DEFAULT_TOP if top is None else top, rl_model)
    click.echo(f"viewer written: {index}")
