"""method_comparison: one row per model compared with base, against pandas on a three-model synthetic build
(two sparse RL checkpoints and a dense SFT-like model); the pasted script; the report's figure."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from bootstrap_reference import build_weights
from synthetic_tables import ExtraModel, write_build

from tokenshift.queries import preamble_sql, run_recipe, write_report
from tokenshift.queries.recipes import load_recipe

SFT = ExtraModel("sft", accuracy=0.7, strength=1.5, dense=True)
PARAMS = {"js_threshold_low": 0.02, "js_threshold": 0.15, "js_threshold_high": 0.3, "edge_fraction": 0.1,
          "low_entropy": 1.0, "bootstrap_reps": 300, "bootstrap_seed": 5}  # all off their defaults
SIDE_COLUMNS = ["n_tokens", "mean_js", "share_over_low", "share_over", "share_over_high", "over_share_middle",
                "middle_token_share", "over_share_low_entropy", "low_entropy_token_share"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    return write_build(tmp_path_factory.mktemp("method") / "build", seed=2, with_cross=False, extra_models=(SFT,))


@pytest.fixture(scope="module")
def tables(build) -> dict[str, pd.DataFrame]:
    """tokens and generations read with pyarrow, not DuckDB."""
    return {name: pd.concat([pd.read_parquet(p) for p in sorted((build / name).glob("*.parquet"))],
                            ignore_index=True) for name in ("tokens", "generations")}


def _accuracy(gen: pd.DataFrame, sampler: str, reps: int, seed: int, build) -> tuple[float, float, float, int]:
    """Pooled accuracy over graded answers and its percentile bootstrap interval over (benchmark, problem)."""
    g = gen[gen.sampler == sampler].assign(c=lambda d: d.correct.fillna(False).astype(int),
                                           n=lambda d: d.correct.notna().astype(int))
    per = g.groupby(["benchmark", "problem_id"])[["c", "n"]].sum().sort_index()
    c, n = per.c.to_numpy(float), per.n.to_numpy(float)
    w = build_weights(build, seed, reps, per.index.get_level_values("problem_id"))
    with np.errstate(invalid="ignore", divide="ignore"):
        values = (w @ c) / (w @ n)
    lo, hi = np.quantile(values[np.isfinite(values)], [0.025, 0.975])
    return c.sum() / n.sum(), lo, hi, int(n.sum())


def _side_stats(g: pd.DataFrame, p: dict) -> list[float]:
    js = g.js.astype("float64")
    over = js >= p["js_threshold"]
    pos, n = g.position.to_numpy(), g.n_tokens.to_numpy()
    middle = np.minimum(pos, n - 1 - pos) >= p["edge_fraction"] * n
    low = g.entropy_base.astype("float64").to_numpy() < p["low_entropy"]
    n_over = over.sum()
    return [len(g), js.mean(), (js >= p["js_threshold_low"]).mean(), over.mean(), (js >= p["js_threshold_high"]).mean(),
            (over & middle).sum() / n_over if n_over else np.nan, middle.mean(),
            (over & low).sum() / n_over if n_over else np.nan, low.mean()]


def test_recipe_equals_pandas(build, tables):
    res = run_recipe("method_comparison", build, PARAMS)
    tok = tables["tokens"].merge(tables["generations"][["generation_id", "n_tokens"]], on="generation_id")
    gen = tables["generations"]
    models = sorted(tok.rl_model.unique())
    assert list(res.rl_model) == models == ["rl-step100", "rl-step200", "sft"]
    base_acc = _accuracy(gen, "base", PARAMS["bootstrap_reps"], PARAMS["bootstrap_seed"], build)
    for row in res.itertuples():
        mine = tok[tok.rl_model == row.rl_model]
        for side, sampler in (("own", row.rl_model), ("base", "base")):
            want = _side_stats(mine[mine.sampler == sampler], PARAMS)
            got = [getattr(row, f"{c}_{side}") for c in SIDE_COLUMNS]
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=f"{row.rl_model} {side}")
        acc = _accuracy(gen, row.rl_model, PARAMS["bootstrap_reps"], PARAMS["bootstrap_seed"], build)
        np.testing.assert_allclose([row.accuracy, row.accuracy_lo, row.accuracy_hi, row.n_graded], acc, rtol=1e-9)
        np.testing.assert_allclose([row.base_accuracy, row.base_accuracy_lo, row.base_accuracy_hi], base_acc[:3],
                                   rtol=1e-9)
        assert row.accuracy_lo <= row.accuracy <= row.accuracy_hi
    # the synthetic SFT-like model shifts densely, the RL checkpoints sparsely: the columns tell them apart
    by = res.set_index("rl_model")
    assert by.loc["sft", "share_over_own"] > 3 * by.loc["rl-step200", "share_over_own"]
    assert by.loc["sft", "mean_js_base"] > by.loc["rl-step100", "mean_js_base"]


def test_defaults_and_parameters_change_the_result(build):
    default = run_recipe("method_comparison", build)
    explicit = run_recipe("method_comparison", build, {"js_threshold_low": 0.01, "js_threshold": 0.1,
                                                       "js_threshold_high": 0.2, "edge_fraction": 0.05,
                                                       "low_entropy": 0.5})
    pd.testing.assert_frame_equal(default, explicit)
    other = run_recipe("method_comparison", build, {"edge_fraction": 0.3, "low_entropy": 2.0})
    assert (other.middle_token_share_own < default.middle_token_share_own).all()
    assert (other.low_entropy_token_share_base > default.low_entropy_token_share_base).all()


def test_recipe_documents_its_parameters():
    recipe = load_recipe("method_comparison")
    assert set(recipe.params) == set(PARAMS)
    assert recipe.tables == ("tokens", "generations")


def test_pasted_script_matches_runner(build):
    """Preamble + SET VARIABLE + recipe run as one script in a fresh connection, as in the duckdb shell."""
    script = (preamble_sql(build) + "SET VARIABLE low_entropy = 1.5;\nSET VARIABLE bootstrap_reps = 50;\n"
              + load_recipe("method_comparison").sql)
    con = duckdb.connect()
    statements = duckdb.extract_statements(script)
    for statement in statements[:-1]:
        con.execute(statement)
    pasted = con.execute(statements[-1]).df()
    pd.testing.assert_frame_equal(pasted, run_recipe("method_comparison", build,
                                                     {"low_entropy": 1.5, "bootstrap_reps": 50}))


def test_report_draws_every_model(build, tmp_path):
    index = write_report(build, tmp_path / "report")
    out = index.parent
    png = out / "method_comparison.png"
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000
    text = index.read_text(encoding="utf-8")
    assert "](method_comparison.png)" in text and "](method_comparison.csv)" in text
    csv = pd.read_csv(out / "method_comparison.csv")
    assert list(csv.rl_model) == ["rl-step100", "rl-step200", "sft"]
    evolution = pd.read_csv(out / "evolution.csv")  # the SFT model is no checkpoint of the RL run
    assert set(evolution.rl_model) == {"rl-step100", "rl-step200"} and set(evolution.final_model) == {"rl-step200"}
