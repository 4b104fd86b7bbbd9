"""The report's one-scan connection: every recipe gives the same result as on the parquet views."""

import gc
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from synthetic_build import add_cross_samples, make_build

from tokenshift.queries.recipes import load_recipe, recipe_names
from tokenshift.queries.run import _scan_projections, connect, execute_recipe
from tokenshift.queries.sources import reallocation_view, resolve_source
from tokenshift.schemas.tables import TABLE_FIELDS


@pytest.fixture(scope="module")
def crossed(tmp_path_factory):
    return add_cross_samples(make_build(tmp_path_factory.mktemp("cache") / "build", seed=3), seed=3,
                             extrapolation=True)


def _sources(con) -> dict[str, str]:
    """Each view's definition: where its rows come from."""
    return dict(con.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal").fetchall())


def test_every_recipe_equal_on_views_and_on_the_cached_tables(crossed):
    views, src = connect(crossed)
    cached, cached_src = connect(crossed, cache=True)
    try:
        assert src.tables == cached_src.tables == ("prompts", "generations", "tokens", "cross_samples")
        # the preamble's views over the others (cross-sampling reference counts, per-position reallocation, the
        # bootstrap's problem numbers)
        derived = ("cross_reference", "tokens_reallocation", "tokenshift_problem_numbers")
        assert sorted(_sources(views)) == sorted(src.tables + derived)
        assert all("read_parquet" in sql for name, sql in _sources(views).items() if name not in derived)
        cached_sources = _sources(cached)  # every table's view now reads the cache database, no parquet file
        assert sorted(cached_sources) == sorted(src.tables + derived)
        assert all("read_parquet" not in sql for sql in cached_sources.values())
        assert all("tokenshift_cache" in sql for name, sql in cached_sources.items() if name not in derived)
        for name in recipe_names():  # in report order on one connection each, as write_report runs them
            recipe = load_recipe(name)
            before = execute_recipe(views, recipe, src, {})
            after = execute_recipe(cached, recipe, cached_src, {})
            assert len(before) > 0, name
            # floats to 1e-12: a DuckDB sum's order follows the scan's row groups (one ulp here)
            pd.testing.assert_frame_equal(before, after, check_exact=False, rtol=1e-12, atol=0, obj=name)
    finally:
        views.close()
        cached.close()


def test_cached_tokens_hold_exactly_the_columns_the_recipes_name(crossed):
    """The projection DuckDB's plans give equals the tokens columns written in the recipes' SQL."""
    fields = [f.name for f in TABLE_FIELDS["tokens"]]
    named = set()
    for name in recipe_names():
        recipe = load_recipe(name)
        if "tokens" in recipe.tables:
            body = "\n".join(line.split("--")[0] for line in recipe.sql.splitlines())
            if "tokens_reallocation" in body:  # the preamble's view of the exact columns: what it reads counts
                body += reallocation_view(resolve_source(crossed))
            named |= set(re.findall(r"[A-Za-z_]\w*", body)) & set(fields)
    con, _ = connect(crossed, cache=True)
    try:
        columns = [row[0] for row in con.execute("DESCRIBE tokenshift_cache.tokens").fetchall()]
        cache_file = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = 'tokenshift_cache'"
                                 ).fetchone()[0]
    finally:
        con.close()
    del con
    gc.collect()
    assert not Path(cache_file).exists()  # the cache file goes with the connection
    assert columns == [f for f in fields if f in named]
    assert "js" in columns and "kl_base_rl" not in columns and len(columns) < len(fields)


def test_star_and_filter_only_columns_are_kept(crossed):
    con, _ = connect(crossed)
    try:
        def scanned(sql):
            plan = con.execute("EXPLAIN (FORMAT JSON) " + sql).fetchall()[0][1]
            return _scan_projections(json.loads(plan)) & {f.name for f in TABLE_FIELDS["tokens"]}

        assert scanned("SELECT * FROM tokens") == {f.name for f in TABLE_FIELDS["tokens"]}
        assert scanned("SELECT sampler FROM tokens WHERE position < 3 AND js >= 0.1") == {"sampler", "position", "js"}
    finally:
        con.close()



def test_memory_cap_is_set_and_its_directory_goes_with_the_connection(crossed):
    con, src = connect(crossed, memory_limit="64MB")
    limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    spill = Path(con.execute("SELECT current_setting('temp_directory')").fetchone()[0])
    views, _ = connect(crossed)
    try:
        assert limit == "61.0 MiB", limit  # DuckDB shows 64 MB (10^6) in MiB
        assert spill.parent.name.startswith("tokenshift-duckdb-") and spill.parent.is_dir()
        for name in ("js_distribution", "evolution"):  # results are those of the uncapped connection
            pd.testing.assert_frame_equal(execute_recipe(views, load_recipe(name), src, {}),
                                          execute_recipe(con, load_recipe(name), src, {}),
                                          check_exact=False, rtol=1e-12, atol=0)
    finally:
        con.close()
        views.close()
    del con
    gc.collect()
    assert not spill.parent.exists()


def test_report_on_the_one_scan_connection_writes_the_same_tables(crossed, tmp_path, monkeypatch):
    """write_report over connect(cache=True): every CSV equals the plain report's, the viewer pages are written."""
    import tokenshift.queries.report as report

    plain = report.write_report(crossed, tmp_path / "plain").parent
    monkeypatch.setattr(report, "connect", lambda source: connect(source, cache=True))
    cached = report.write_report(crossed, tmp_path / "cached").parent
    csvs = sorted(p.name for p in plain.glob("*.csv"))
    assert csvs == sorted(p.name for p in cached.glob("*.csv")) and len(csvs) == len(recipe_names())
    for name in csvs:
        pd.testing.assert_frame_equal(pd.read_csv(plain / name), pd.read_csv(cached / name),
                                      check_exact=False, rtol=1e-12, atol=0, obj=name)
    pages = sorted(p.name for p in (plain / "viewer").glob("*.html"))
    assert pages and pages == sorted(p.name for p in (cached / "viewer").glob("*.html"))
