"""Headline figures of a build, computed from its tables with DuckDB (reads only the columns used)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from tokenshift.errors import TokenshiftError
from tokenshift.builders.manifest import listed_files

JS_THRESHOLDS = (0.01, 0.05, 0.1, 0.2)

_ACCURACY = """
SELECT sampler, count(*) AS responses, count(correct) AS graded,
       count(*) FILTER (WHERE correct) AS correct,
       count(*) FILTER (WHERE correct) / count(*) AS accuracy
FROM read_parquet($files) GROUP BY sampler ORDER BY sampler <> 'base', sampler
"""
_CROSS = """
SELECT rl_model, direction, protocol, threshold, budget, budget_unit, count(*) AS responses,
       count(*) FILTER (WHERE correct) / count(*) AS accuracy,
       avg(intervention_fraction) AS mean_intervention_fraction
FROM read_parquet($files) GROUP BY ALL ORDER BY ALL
"""


def _js_shares_sql(thresholds: tuple[float, ...]) -> str:
    shares = ", ".join(f"avg(CAST(js > {t!r} AS DOUBLE)) AS \"js > {t}\"" for t in thresholds)
    return (f"SELECT rl_model, count(*) AS tokens, {shares} FROM read_parquet($files) "
            "GROUP BY rl_model ORDER BY rl_model")


def _rows(con: duckdb.DuckDBPyConnection, sql: str, files: list[str]) -> list[dict]:
    cursor = con.execute(sql, {"files": files})
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def headline_figures(build_dir: str | Path, manifest: dict,
                     thresholds: tuple[float, ...] = JS_THRESHOLDS) -> dict[str, list[dict]]:
    """Accuracy per sampler, share of tokens with JS above each threshold per rl_model, cross-sampling accuracy.

    Reads the files the manifest lists, so the figures describe exactly the fingerprinted build.
    """
    build = Path(build_dir)
    files = {t: [str(build / rel) for rel in listed_files(manifest, t)]
             for t in ("generations", "tokens", "cross_samples")}
    con = duckdb.connect()
    figures: dict[str, list[dict]] = {}
    try:
        if files["generations"]:
            figures["accuracy"] = _rows(con, _ACCURACY, files["generations"])
        if files["tokens"]:
            figures["js_shares"] = _rows(con, _js_shares_sql(thresholds), files["tokens"])
        if files["cross_samples"]:
            figures["cross_sampling"] = _rows(con, _CROSS, files["cross_samples"])
    except duckdb.Error as err:
        raise TokenshiftError(f"cannot compute headline figures of {build} ({str(err).splitlines()[0]}): "
                              f"run `tokenshift validate {build}` and fix what it reports") from None
    finally:
        con.close()
    return figures
