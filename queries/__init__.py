"""DuckDB recipes (*.sql) that regenerate the study's analyses, their runner, plots and report."""

from tokenshift.queries.recipes import load_recipe, recipe_names
from tokenshift.queries.run import run_recipe
from tokenshift.queries.sources import preamble_sql, resolve_source

__all__ = ["load_recipe", "recipe_names", "run_recipe", "preamble_sql", "resolve_source", "write_report"]


def write_report(source, out_dir, overwrite: bool = False):
    """Lazy wrapper of tokenshift.queries.report.write_report (keeps matplotlib out of plain imports)."""
    from tokenshift.queries.report import write_report as _write_report

    return _write_report(source, out_dir, overwrite=overwrite)
