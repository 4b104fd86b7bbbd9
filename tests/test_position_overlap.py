"""position_overlap: Jaccard of each pair of models' high-JS position sets along base's answers, against pandas
and numpy (the recipes' bootstrap restated) on a three-model synthetic build; the pasted script."""

from __future__ import annotations

import itertools

import duckdb
import numpy as np
import pandas as pd
import pytest
from bootstrap_reference import build_weights, ratio_interval
from synthetic_tables import ExtraModel, make_tables, write_build, write_manifest

from tokenshift.queries import preamble_sql, run_recipe
from tokenshift.queries.recipes import load_recipe
from tokenshift.schemas.tables import to_arrow, write_parquet

SFT = ExtraModel("sft", accuracy=0.7, strength=1.5, dense=True)
PARAMS = {"js_threshold": 0.15, "bootstrap_reps": 300, "bootstrap_seed": 5}  # all off their defaults


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return write_build(tmp_path_factory.mktemp("overlap") / "build", seed=3, with_cross=False, extra_models=(SFT,))


@pytest.fixture(scope="module")
def tables(build) -> dict[str, pd.DataFrame]:
    """tokens and generations read with pyarrow, not DuckDB."""
    return {name: pd.concat([pd.read_parquet(p) for p in sorted((build / name).glob("*.parquet"))],
                            ignore_index=True) for name in ("tokens", "generations")}


def _expected(tables: dict[str, pd.DataFrame], a: str, b: str, p: dict, build) -> dict:
    tok = tables["tokens"]
    base = tok[tok.sampler == "base"].assign(over=lambda d: d.js.astype("float64") >= p["js_threshold"])
    key = ["generation_id", "position"]
    both = base[base.rl_model == a][key + ["over"]].merge(base[base.rl_model == b][key + ["over"]], on=key,
                                                           suffixes=("_a", "_b"))
    both = both.merge(tables["generations"][["generation_id", "benchmark", "problem_id"]], on="generation_id")
    both = both.assign(n_both=both.over_a & both.over_b, n_either=both.over_a | both.over_b)
    per = both.groupby(["benchmark", "problem_id"])[["n_both", "n_either"]].sum().sort_index()
    lo, hi = ratio_interval(per.n_both.to_numpy(float), per.n_either.to_numpy(float),
                            build_weights(build, p["bootstrap_seed"], p["bootstrap_reps"],
                                          per.index.get_level_values("problem_id")))
    n, na, nb = len(both), int(both.over_a.sum()), int(both.over_b.sum())
    return {"n_problems": len(per), "n_tokens": n, "n_over_a": na, "n_over_b": nb,
            "n_both": int(both.n_both.sum()), "n_either": int(both.n_either.sum()),
            "jaccard": both.n_both.sum() / both.n_either.sum(), "jaccard_lo": lo, "jaccard_hi": hi,
            "jaccard_chance": (na * nb / n) / (na + nb - na * nb / n)}


def test_recipe_equals_pandas_for_every_pair(build, tables):
    res = run_recipe("position_overlap", build, PARAMS)
    models = sorted(tables["tokens"].rl_model.unique())
    assert list(zip(res.model_a, res.model_b)) == list(itertools.combinations(models, 2)) and len(res) == 3
    for row in res.itertuples():
        want = _expected(tables, row.model_a, row.model_b, PARAMS, build)
        got = {k: getattr(row, k) for k in want}
        np.testing.assert_allclose(list(got.values()), list(want.values()), rtol=1e-9, err_msg=str(row))
        assert row.jaccard_lo <= row.jaccard <= row.jaccard_hi and 0 < row.n_both < row.n_either
    # two checkpoints of one sparse run share more high-JS positions than chance
    rl = res[(res.model_a == "rl-step100") & (res.model_b == "rl-step200")].iloc[0]
    assert rl.jaccard > rl.jaccard_chance


def test_threshold_changes_the_sets(build):
    default, strict = run_recipe("position_overlap", build), run_recipe("position_overlap", build, {"js_threshold": 0.3})
    assert (strict.n_over_a < default.n_over_a).all() and (strict.n_tokens == default.n_tokens).all()


def test_recipe_documents_its_parameters():
    recipe = load_recipe("position_overlap")
    assert set(recipe.params) == set(PARAMS) and recipe.tables == ("tokens", "generations")


def test_pasted_script_matches_runner(build):
    """Preamble + SET VARIABLE + recipe run as one script in a fresh connection, as in the duckdb shell."""
    script = (preamble_sql(build) + "SET VARIABLE js_threshold = 0.2;\nSET VARIABLE bootstrap_reps = 50;\n"
              + load_recipe("position_overlap").sql)
    con = duckdb.connect()
    statements = duckdb.extract_statements(script)
    for statement in statements[:-1]:
        con.execute(statement)
    pd.testing.assert_frame_equal(con.execute(statements[-1]).df(),
                                  run_recipe("position_overlap", build, {"js_threshold": 0.2, "bootstrap_reps": 50}))


def test_one_model_has_no_pair(tmp_path):
    """Each pair needs two models: a build scoring base's answers against one model gives no row (and no error)."""
    tables = make_tables(seed=3, with_cross=False)
    tables["tokens"] = [row for row in tables["tokens"] if row["rl_model"] == "rl-step100"]
    for name, rows in tables.items():
        write_parquet(to_arrow(name, rows), tmp_path / name / "part-00000.parquet")
    write_manifest(tmp_path, 3)
    assert run_recipe("position_overlap", tmp_path).empty
    assert not run_recipe("js_distribution", tmp_path).empty  # the one model's positions are there
