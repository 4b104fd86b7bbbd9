"""Run a recipe against a source: preamble views, bound parameter overrides, the recipe's last SELECT."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

import duckdb
import pandas as pd

from tokenshift.queries.recipes import Recipe, check_value, load_recipe, recipe_names
from tokenshift.queries.sources import (
    OPTIONAL,
    Source,
    preamble_statements,
    reallocation_view,
    resolve_source,
    table_view,
)
from tokenshift.runtime.errors import TokenshiftError


class MissingTableError(TokenshiftError):
    """The recipe needs a table the source does not have (e.g. cross_samples before cross-sampling ran)."""


CACHED_TABLE = "tokens"  # the large table: cached with only the columns the recipes read
CACHE_DB = "tokenshift_cache"
# DuckDB's memory cap when cache=True and no memory_limit is given (the cache is read through it).
CACHE_MEMORY_LIMIT = "1GB"


def connect(source: str | os.PathLike | Source, cache: bool = False,
            memory_limit: str | None = None) -> tuple[duckdb.DuckDBPyConnection, Source]:
    """An in-memory DuckDB connection with the source's views created; returns it and the resolved source.

    memory_limit (e.g. '1.5GB') caps DuckDB's memory, spilling to a temporary directory removed with
    the connection. cache=True reads each table once instead of once per recipe: every table is
    copied into a compressed DuckDB file, tokens with only the columns the recipes read (see
    `cache_tables`). `tokenshift report` and `tokenshift.open` use neither: on 10M token rows the
    copy costs more CPU than the recipes save (each reads only its columns, in one pass), and an
    uncompressed copy would not fit 2 GB (benchmarks/README.md, bench_queries.py).
    """
    src = resolve_source(source)
    con = duckdb.connect(":memory:")
    present, absent = [], set()
    for table, statement in preamble_statements(src):
        if table in absent:
            continue  # a view derived from a table the Hub dataset does not have
        try:
            con.execute(statement)
            if src.kind == "hf" and table and table not in present:  # a Hub dataset of an older version:
                names = tuple(r[0] for r in con.execute(f"DESCRIBE {_ident(table)}").fetchall())
                src = dataclasses.replace(src, columns=(*src.columns, (table, names)))
                con.execute(table_view(src, table))  # its missing columns read as NULL (or as implied)
        except duckdb.Error as err:
            if src.kind == "hf" and table in OPTIONAL:
                absent.add(table)  # the Hub dataset has no such table
                continue
            con.close()
            raise TokenshiftError(f"cannot open {src.spec}: {_first_line(err)}") from err
        if table and table not in present:
            present.append(table)
    src = dataclasses.replace(src, tables=tuple(present))  # the listed parts, never a glob
    if cache or memory_limit:
        try:
            directory = _work_directory(con, memory_limit or CACHE_MEMORY_LIMIT)
            if cache:
                cache_tables(con, src, directory)
        except BaseException:
            con.close()
            raise
    return con, src


def _work_directory(con: duckdb.DuckDBPyConnection, memory_limit: str) -> str:
    """Cap DuckDB's memory; a temporary directory (removed with `con`) takes what spills."""
    directory = tempfile.mkdtemp(prefix="tokenshift-duckdb-")
    weakref.finalize(con, shutil.rmtree, directory, True)
    con.execute(f"SET temp_directory = {_literal(os.path.join(directory, 'spill'))}")
    con.execute(f"SET memory_limit = {_literal(memory_limit)}")
    return directory


def cache_tables(con: duckdb.DuckDBPyConnection, src: Source, directory: str,
                 recipes: Iterable[str] | None = None) -> None:
    """Copy each table once into a compressed DuckDB file under `directory`; point its view there.

    The small tables are copied whole; tokens keeps only the columns DuckDB's optimizer projects out
    of it for the recipes (`recipes`, default all) that can run on `src`, so a recipe's result is the
    same on the copy as on the parquet files.
    """
    con.execute(f"ATTACH {_literal(os.path.join(directory, 'cache.duckdb'))} AS {CACHE_DB}")
    for table in src.tables:
        if table != CACHED_TABLE:
            _materialize(con, src, table, "*")
    if CACHED_TABLE in src.tables:
        columns = tokens_columns(con, src, recipe_names() if recipes is None else recipes)
        if columns:  # None (a plan failed) or [] (no recipe reads tokens): leave the view
            _materialize(con, src, CACHED_TABLE, ", ".join(map(_ident, columns)))
            con.execute(reallocation_view(src))  # a view over tokens keeps the columns it was made with
    con.execute(f"CHECKPOINT {CACHE_DB}")


def tokens_columns(con: duckdb.DuckDBPyConnection, src: Source, recipes: Iterable[str]) -> list[str] | None:
    """The tokens columns the recipes read (every other table already materialized); None: all of them.

    Asks DuckDB: the optimized plan of each recipe's final statement lists the columns of every
    parquet scan, and by now only tokens is still read from parquet. A recipe whose plan cannot be
    made (it would fail when run too) makes the answer None, so nothing is ever projected away.
    """
    names: set[str] = set()
    variables: set[str] = set()
    try:
        for name in recipes:
            recipe = load_recipe(name)
            if CACHED_TABLE not in recipe.tables or any(t not in src.tables for t in recipe.tables):
                continue
            variables |= set(recipe.params)
            statements = duckdb.extract_statements(recipe.sql)
            for statement in statements[:-1]:
                con.execute(statement)
            explained = con.execute("EXPLAIN (FORMAT JSON) " + statements[-1].query).fetchall()
            for _kind, text in explained:
                names |= _scan_projections(json.loads(text))
    except duckdb.Error:
        return None
    finally:
        for variable in sorted(variables):  # leave the session as a fresh connection has it
            con.execute(f"RESET VARIABLE {variable}")
    order = [row[0] for row in con.execute(f"DESCRIBE {CACHED_TABLE}").fetchall()]
    return [c for c in order if c in names]


def _scan_projections(node) -> set[str]:
    """Words naming columns that READ_PARQUET scans read in an EXPLAIN (FORMAT JSON) plan.

    A scan lists the columns it returns as Projections and the ones only its pushed-down filters
    use under Filters; the caller keeps the words that are column names.
    """
    found: set[str] = set()
    if isinstance(node, list):
        for child in node:
            found |= _scan_projections(child)
    elif isinstance(node, dict):
        info = node.get("extra_info")
        if isinstance(info, dict) and (node.get("name") == "READ_PARQUET" or info.get("Function") == "READ_PARQUET"):
            for key in ("Projections", "Filters"):
                value = info.get(key) or []
                for text in [value] if isinstance(value, str) else value:
                    found |= set(re.findall(r"[A-Za-z_]\w*", str(text)))
        for child in node.get("children", []):
            found |= _scan_projections(child)
    return found


def _materialize(con: duckdb.DuckDBPyConnection, src: Source, table: str, columns: str) -> None:
    """Copy `columns` of view `table` into the cache database (one scan of its files); repoint the view."""
    cached = f"{CACHE_DB}.{_ident(table)}"
    try:
        con.execute(f"CREATE TABLE {cached} AS SELECT {columns} FROM {_ident(table)}")
        con.execute(f"CREATE OR REPLACE VIEW {_ident(table)} AS SELECT * FROM {cached}")
    except duckdb.Error as err:
        raise TokenshiftError(f"cannot read table {table} of {src.spec}: {_first_line(err)}") from err


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"



def run_recipe(name: str, source: str | os.PathLike | Source,
               params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Run recipe `name` on `source` with parameter overrides; the result of its last statement."""
    recipe = load_recipe(name)
    check_params(recipe, params or {})
    with duckdb.connect(":memory:") as probe:  # values checked before any source is read
        bind_params(probe, recipe, params or {})
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
            read = con.execute(f"SELECT getvariable({_literal(param.name)})").fetchone()[0]
        except (duckdb.Error, TypeError, ValueError) as err:
            raise TokenshiftError(f"parameter {name} of recipe {recipe.name}: cannot read {value!r} as "
                                  f"{param.sql_type}") from err
        check_value(recipe.name, param.name, read)


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
