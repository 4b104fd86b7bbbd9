"""Run a recipe against a source: preamble views, bound parameter overrides, the recipe's last SELECT."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import duckdb
import pandas as pd

from tokenshift.errors import TokenshiftError
from tokenshift.queries.recipes import Recipe, load_recipe
from tokenshift.queries.sources import OPTIONAL, Source, preamble_sql, preamble_statements, resolve_source


class MissingTableError(TokenshiftError):
    """The recipe needs a table the source does not have (e.g. cross_samples before cross-sampling ran)."""


def connect(source: str | os.PathLike | Source) -> tuple[duckdb.DuckDBPyConnection, Source]:
    """An in-memory DuckDB connection with the source's views created; returns it and the resolved source."""
    src = resolve_source(source)
    con = duckdb.connect(":memory:")
    present = []
    for table, statement in preamble_statements(src):
        try:
            con.execute(statement)
        except duckdb.Error as err:
            if src.kind == "hf" and table in OPTIONAL:
                continue  # the Hub dataset has no such table
            con.close()
            raise TokenshiftError(f"cannot open {src.spec}: {_first_line(err)}") from err
        if table:
            present.append(table)
    return con, Source(src.kind, src.root, tuple(present), src.spec)


def run_recipe(name: str, source: str | os.PathLike | Source,
               params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Run recipe `name` on `source` with parameter overrides; the result of its last statement."""
    recipe = load_recipe(name)
    check_params(recipe, params or {})
    con, src = connect(source)
    try:
        return execute_recipe(con, recipe, src, params or {})
    finally:
        con.close()


def execute_recipe(con: duckdb.DuckDBPyConnection, recipe: Recipe, src: Source,
                   params: Mapping[str, Any]) -> pd.DataFrame:
    """Run a parsed recipe on an open connection (views already created)."""
    missing = [t for t in recipe.tables if t not in src.tables]
    if missing:
        raise MissingTableError(f"recipe {recipe.name} needs table {', '.join(missing)}, which {src.spec} "
                                f"does not have")
    check_params(recipe, params)
    bind_params(con, recipe, params)
    statements = duckdb.extract_statements(recipe.sql)
    try:
        for statement in statements[:-1]:
            con.execute(statement)
        return con.execute(statements[-1]).df()
    except duckdb.Error as err:
        raise TokenshiftError(f"recipe {recipe.name} failed on {src.spec}: {_first_line(err)}") from err


def check_params(recipe: Recipe, params: Mapping[str, Any]) -> None:
    """Raise TokenshiftError naming the valid parameters if `params` has one the recipe lacks."""
    unknown = sorted(set(params) - set(recipe.params))
    if unknown:
        valid = ", ".join(f"{p.name} ({p.sql_type}, default {p.default_sql})" for p in recipe.params.values())
        raise TokenshiftError(f"unknown parameter {', '.join(unknown)} for recipe {recipe.name}; "
                              f"valid parameters: {valid or 'none'}")


def bind_params(con: duckdb.DuckDBPyConnection, recipe: Recipe, params: Mapping[str, Any]) -> None:
    """SET VARIABLE each override with the value bound as a parameter and cast to the recipe's type."""
    for name, value in params.items():
        param = recipe.params[name]
        if isinstance(value, str) and param.is_list and not value.strip().startswith("["):
            value = f"[{value}]"  # CLI form a,b,c
        if isinstance(value, tuple):
            value = list(value)
        try:
            con.execute(f"SET VARIABLE {param.name} = CAST(? AS {param.sql_type})", [value])
        except (duckdb.Error, TypeError, ValueError) as err:
            raise TokenshiftError(f"parameter {name} of recipe {recipe.name}: cannot read {value!r} as "
                                  f"{param.sql_type}") from err


def recipe_sql(name: str, source: str | os.PathLike | Source) -> str:
    """Preamble plus recipe text, ready to paste into the duckdb shell."""
    recipe = load_recipe(name)
    return preamble_sql(source) + "\n" + recipe.sql


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
