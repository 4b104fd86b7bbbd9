"""The recipes direction and extrapolation against independent pandas/numpy computations on a synthetic build."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bootstrap_reference import build_weights
from bootstrap_reference import ratio_interval as _ratio_interval
from synthetic_tables import write_build, write_manifest

from tokenshift.queries import preamble_sql, run_recipe
from tokenshift.queries.recipes import load_recipe
from tokenshift.runtime.errors import TokenshiftError

REPS, SEED = 200, 3


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    return write_build(tmp_path_factory.mktemp("direction") / "build", seed=0, extrapolation=True)


@pytest.fixture(scope="module")
def t(build: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.concat([pd.read_parquet(p) for p in sorted((build / name).glob("*.parquet"))], ignore_index=True)
            for name in ("prompts", "generations", "tokens", "cross_samples")}


def _write_like(build: Path, frames: dict[str, pd.DataFrame], out: Path) -> None:
    """Write each frame as OUT/<table>/part-00000.parquet with `build`'s schema for that table, and a manifest."""
    for name, frame in frames.items():
        (out / name).mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(frame, schema=pq.read_schema(next((build / name).glob("*.parquet"))),
                                            preserve_index=False), out / name / "part-00000.parquet")
    write_manifest(out)


def _close(a, b, tol=1e-9) -> None:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape and np.allclose(a, b, rtol=tol, atol=tol, equal_nan=True), (a, b)


def _tokens(t) -> pd.DataFrame:
    tok = t["tokens"].merge(t["generations"][["generation_id", "problem_id"]], on="generation_id")
    delta = tok.logp_rl.astype("float64") - tok.logp_base.astype("float64")
    return tok.assign(delta=delta, p_base=np.exp(tok.logp_base.astype("float64")), js64=tok.js.astype("float64"))


def _check(row: pd.Series, num: pd.Series, den: pd.Series, build: Path) -> None:
    """value = sum(num) / sum(den) over problems, and its interval the numpy bootstrap of that ratio."""
    num, den = num.sort_index(), den.sort_index()
    _close(row.value, num.sum() / den.sum())
    _close([row.value_lo, row.value_hi],
           _ratio_interval(num.to_numpy(float), den.to_numpy(float), build_weights(build, SEED, REPS, num.index)))


def test_direction(build, t):
    _check_direction(build, t, [0.1, 0.5], [0.0, 0.2, 0.7], [0.02, 0.1])


def test_direction_top_sets_break_ties_by_generation_and_position(build, t, tmp_path):
    """Every answer twice (a copy with another generation_id and the same values): each top set's last key is tied,
    so which copies it takes is decided by (generation_id, position) alone."""
    copy = tmp_path / "twice"
    tables = {}
    for name in ("prompts", "generations", "tokens"):
        frame = t[name]
        if name != "prompts":
            frame = pd.concat([frame, frame.assign(generation_id=frame.generation_id + "~1")], ignore_index=True)
        tables[name] = frame
    _write_like(build, tables, copy)
    _check_direction(copy, tables, [0.3], [0.0, 0.5], [0.03, 0.07, 0.25])


def test_direction_groups_without_some_problems(build, t, tmp_path):
    """One sampler's answers to three problems left out: that group's sums weigh only its own problems, each by its
    number among all the dataset's (the other problems count 0 in every replicate)."""
    prompts = t["prompts"]
    left_out = set(sorted(prompts.problem_id)[:3])
    gen = t["generations"]
    gone = set(gen.generation_id[(gen.sampler == "rl-step100") & gen.problem_id.isin(left_out)])
    tables = {"prompts": prompts, "generations": gen[~gen.generation_id.isin(gone)],
              "tokens": t["tokens"][~t["tokens"].generation_id.isin(gone)]}
    _write_like(build, tables, tmp_path)
    counts = _tokens(tables).groupby(["sampler", "rl_model"]).problem_id.nunique()
    assert counts[("rl-step100", "rl-step100")] == prompts.problem_id.nunique() - 3
    _check_direction(tmp_path, tables, [0.2], [0.0, 0.4], [0.05])


def test_direction_quantiles_with_ties_zeros_and_both_ends(build, t, tmp_path):
    """Δ drawn from a few values (0 most often, two that differ in the last bits, both signs) plus a continuous
    part: the order statistics fall inside buckets of equal values and of distinct ones; levels 0 and 1, repeated
    and unsorted, each as numpy computes it."""
    rng = np.random.default_rng(8)
    tok = t["tokens"].copy()
    pick = rng.choice([0.0, 0.0, 0.0, -0.5, 1e-7, 1.0000001e-7, 0.25, np.nan], size=len(tok))
    delta = np.where(np.isnan(pick), rng.normal(0, 0.3, len(tok)), pick)
    tok["logp_rl"] = np.minimum(tok.logp_base.astype("float64") + delta, 0).astype("float32")
    frames = {"prompts": t["prompts"], "generations": t["generations"], "tokens": tok}
    _write_like(build, frames, tmp_path)
    levels = [0.5, 0.0, 1.0, 0.3, 0.3, 0.999]
    res = run_recipe("direction", tmp_path, {"delta_quantiles": levels, "bootstrap_reps": 10})
    stored = tok.logp_rl.astype("float64") - tok.logp_base.astype("float64")
    assert (stored == 0).mean() > 0.3
    for (sampler, rl), g in stored.groupby([tok.sampler, tok.rl_model]):
        r = res[(res.sampler == sampler) & (res.rl_model == rl) & (res.measure == "quantile")]
        _close(r.level, sorted(levels))
        _close(r.value, np.quantile(g, sorted(levels)))


def test_direction_refuses_a_quantile_level_outside_0_1(build):
    """The runner names the parameter; the pasted SQL, which has no runner, fails on the level itself."""
    with pytest.raises(TokenshiftError, match=r"parameter delta_quantiles of recipe direction: 1.5 makes no sense"):
        run_recipe("direction", build, {"delta_quantiles": [0.5, 1.5]})
    statements = duckdb.extract_statements(preamble_sql(build) + "SET VARIABLE delta_quantiles = [0.5, -0.5];\n"
                                           + load_recipe("direction").sql)
    con = duckdb.connect()
    for statement in statements[:-1]:
        con.execute(statement)
    with pytest.raises(duckdb.Error, match=r"delta_quantiles: each level must lie in \[0, 1\]"):
        con.execute(statements[-1]).fetchall()


def _check_direction(build, t, thresholds, edges, tops) -> None:
    res = run_recipe("direction", build, {"bootstrap_reps": REPS, "bootstrap_seed": SEED, "delta_thresholds": thresholds,
                                          "base_prob_edges": edges, "top_shares": tops})
    tok = _tokens(t)
    checked = 0
    for (sampler, rl), g in tok.groupby(["sampler", "rl_model"]):
        r = res[(res.sampler == sampler) & (res.rl_model == rl)].set_index(["measure", "level"])
        assert (r.n_tokens == len(g)).all() and (r.n_problems == g.problem_id.nunique()).all()
        levels = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]
        _close([r.loc[("quantile", q), "value"] for q in levels], np.quantile(g.delta, levels))
        by = g.groupby("problem_id")
        n = by.size().astype(float)
        for th in thresholds:
            ge = by.delta.apply(lambda d, th=th: (d >= th).sum()).astype(float)
            le = by.delta.apply(lambda d, th=th: (d <= -th).sum()).astype(float)
            _check(r.loc[("share_ge", th)], ge, n, build)
            _check(r.loc[("share_le", th)], le, n, build)
            _check(r.loc[("asymmetry", th)], ge - le, n, build)
        uppers = edges[1:] + [2.0]
        total_abs = by.delta.apply(lambda d: d.abs().sum())
        for lo, hi in zip(edges, uppers, strict=True):
            inside = g[(g.p_base >= lo) & (g.p_base < hi)].groupby("problem_id")
            count = inside.size().reindex(n.index, fill_value=0).astype(float)
            _check(r.loc[("bin_mean_delta", lo)], inside.delta.sum().reindex(n.index, fill_value=0), count, build)
            _check(r.loc[("bin_token_share", lo)], count, n, build)
            _check(r.loc[("bin_abs_share", lo)], inside.delta.apply(lambda d: d.abs().sum())
                   .reindex(n.index, fill_value=0), total_abs, build)
        order = g.sort_values(["generation_id", "position"])
        for share in tops:
            k = math.ceil(share * len(g))
            top_d = set(order.assign(a=order.delta.abs()).sort_values("a", ascending=False, kind="stable").index[:k])
            top_j = set(order.sort_values("js64", ascending=False, kind="stable").index[:k])
            both = g.index.isin(list(top_d & top_j))
            either = g.index.isin(list(top_d | top_j))
            inter = pd.Series(both, index=g.index).groupby(g.problem_id).sum().astype(float)
            union = pd.Series(either, index=g.index).groupby(g.problem_id).sum().astype(float)
            _close(r.loc[("jaccard_top", share), "value"], len(top_d & top_j) / len(top_d | top_j))
            _check(r.loc[("jaccard_top", share)], inter, union, build)
        checked += 1
    assert checked == tok.groupby(["sampler", "rl_model"]).ngroups > 2


def _graded(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return (frame.assign(c=frame.correct.fillna(False).astype(int), n=frame.correct.notna().astype(int))
            .groupby(keys + ["problem_id"], dropna=False)[["c", "n"]].sum().reset_index())


def test_extrapolation(build, t):
    res = run_recipe("extrapolation", build, {"bootstrap_reps": REPS, "bootstrap_seed": SEED})
    cs = t["cross_samples"].merge(t["prompts"][["problem_id", "benchmark"]], on="problem_id")
    cs = cs[cs.protocol == "threshold"].assign(space=cs.mix_space.fillna("prob"),
                                               rate=cs.rate.where(cs.match_criterion.isna()))
    key = ["rl_model", "benchmark", "direction", "criterion", "match_criterion", "sign", "threshold", "rate", "budget",
           "budget_unit"]
    swept = cs[cs.space == "log"][key].drop_duplicates()
    rows = cs.merge(swept, on=key)
    rows = rows[(rows.space == "log") | (rows.mix_weight == 1.0)]
    assert set(rows.criterion) == {"all", "delta_logp", "js", "random"} and 0.5 not in set(rows.mix_weight)
    points = rows.groupby(key + ["mix_weight"], dropna=False)
    assert len(res) == points.ngroups == 2 * 2 * (3 * 3 + 2)  # directions x benchmarks x (3 rules x 3 W + js x 2)
    gen = t["generations"]
    for values, g in points:
        want = dict(zip(key + ["mix_weight"], values, strict=True))
        mask = pd.Series(True, index=res.index)
        for column, value in want.items():
            mask &= res[column].isna() if pd.isna(value) else res[column] == value
        row = res[mask]
        assert len(row) == 1, want
        row = row.iloc[0]
        per = _graded(g, []).sort_values("problem_id")
        _close([row.n_samples, row.effective_pct, row.accuracy],
               [len(g), 100 * g.intervention_fraction.mean(), g.correct.dropna().astype(float).mean()])
        ref = _graded(gen[gen.sampler == want["rl_model"]], []).set_index("problem_id").reindex(per.problem_id)
        base = _graded(gen[gen.sampler == "base"], []).set_index("problem_id").reindex(per.problem_id)
        drawn = build_weights(build, SEED, REPS, per.problem_id)
        c, n, c_rl, n_rl = (x.to_numpy(float) for x in (per.c, per.n, ref.c, ref.n))
        _close([row.rl_accuracy, row.base_accuracy, row.accuracy_minus_rl],
               [c_rl.sum() / n_rl.sum(), base.c.sum() / base.n.sum(), row.accuracy - c_rl.sum() / n_rl.sum()])
        _close([row.accuracy_lo, row.accuracy_hi], _ratio_interval(c, n, drawn))
        _close([row.rl_accuracy_lo, row.rl_accuracy_hi], _ratio_interval(c_rl, n_rl, drawn))
        with np.errstate(invalid="ignore", divide="ignore"):
            diff = (drawn @ c) / (drawn @ n) - (drawn @ c_rl) / (drawn @ n_rl)
        diff = diff[np.isfinite(diff)]
        _close([row.accuracy_minus_rl_lo, row.accuracy_minus_rl_hi], np.quantile(diff, [0.025, 0.975]))
    labels = set(res.selection)
    assert labels == {"all", "delta_logp <= -0.3", "js >= 0.05", "random@delta_logp <= -0.3"}, labels
