"""Recipes against independent pandas/numpy computations on small tables; sources, parameters and errors."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bootstrap_reference import numbers as _numbers
from bootstrap_reference import poisson_cuts as _poisson_cuts
from bootstrap_reference import ratio_interval as _ratio_interval
from bootstrap_reference import weights as _weights
from synthetic_tables import make_tables, write_build, write_manifest

from tokenshift.queries import preamble_sql, recipe_names, run_recipe
from tokenshift.queries.recipes import load_recipe, recipe_doc
from tokenshift.queries.run import MissingTableError, connect
from tokenshift.queries.sources import POISSON_CUTS, cache_bootstrap, reallocation_view, resolve_source
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.schemas.tables import to_arrow, write_parquet

ALL_RECIPES = ["js_distribution", "entropy_vs_divergence", "position_concentration", "reranking",
               "mass_reallocation", "divergent_tokens", "direction", "accuracy", "cross_sampling_curve",
               "criteria_comparison", "extrapolation", "study_table", "evolution", "method_comparison",
               "position_overlap"]
GROUP = ["sampler", "rl_model"]


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    return write_build(tmp_path_factory.mktemp("queries") / "build", seed=0)


@pytest.fixture(scope="module")
def registry(build: Path) -> Path:
    """A local registry: an older version with other data, and the build copied as the newest version."""
    reg = build.parent / "registry"
    write_build(reg / "1.9.0", seed=1, with_cross=False)
    shutil.copytree(build, reg / "1.10.0")
    return reg


@pytest.fixture(scope="module")
def t(build: Path) -> dict[str, pd.DataFrame]:
    """The tables as pandas frames, read with pyarrow (not DuckDB)."""
    out = {}
    for name in ("prompts", "generations", "tokens", "cross_samples"):
        frame = pd.concat([pd.read_parquet(p) for p in sorted((build / name).glob("*.parquet"))],
                          ignore_index=True)
        out[name] = frame
    tok = out["tokens"]
    tok["js64"] = tok["js"].astype("float64")
    return out


def _close(a, b, tol=1e-9) -> None:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape
    assert np.allclose(a, b, rtol=tol, atol=tol, equal_nan=True), (a, b)


def _groups(df: pd.DataFrame):
    return df.groupby(GROUP, sort=True)


# ---- 1-9: each recipe against pandas -------------------------------------------------------------------------

def test_js_distribution(build, t):
    res = run_recipe("js_distribution", build, {"js_thresholds": [0.02, 0.1], "js_percentiles": "0.5,0.9,0.999"})
    assert set(res.measure) == {"js_percentile", "share_over"}
    for (sampler, rl), g in _groups(t["tokens"]):
        r = res[(res.sampler == sampler) & (res.rl_model == rl)]
        pct = r[r.measure == "js_percentile"].sort_values("level")
        _close(pct.level, [0.5, 0.9, 0.999])
        _close(pct.value, np.quantile(g.js64, [0.5, 0.9, 0.999]))
        thr = r[r.measure == "share_over"].sort_values("level")
        _close(thr.value, [(g.js64 >= 0.02).mean(), (g.js64 >= 0.1).mean()])
        assert (r.n_tokens == len(g)).all()



def test_share_over_counts_a_position_at_the_threshold(tmp_path):
    """js on a grid of 1/8 nats (exact in float32), thresholds on that grid, unsorted, repeated and beyond every
    value: a position whose js equals a threshold is over it, as numpy's >= says."""
    tables = make_tables(seed=6, with_cross=False)
    rows = [dict(r, js=(i % 6) / 8) for i, r in enumerate(tables["tokens"])]
    for name, table_rows in {**tables, "tokens": rows}.items():
        write_parquet(to_arrow(name, table_rows), tmp_path / name / "part-00000.parquet")
    write_manifest(tmp_path)
    levels = [0.25, 0.125, 0.25, 0.0, 0.6875]
    res = run_recipe("js_distribution", tmp_path, {"js_thresholds": levels})
    for (sampler, rl), g in _groups(pd.DataFrame(rows)):
        r = res[(res.sampler == sampler) & (res.rl_model == rl) & (res.measure == "share_over")].sort_values("level")
        _close(r.level, sorted(set(levels)))
        _close(r.value, [(g.js >= level).mean() for level in sorted(set(levels))])
        assert r.value.iloc[0] == 1 and r.value.iloc[-1] == 0

def test_entropy_vs_divergence(build, t):
    bins = 10
    res = run_recipe("entropy_vs_divergence", build, {"js_threshold": 0.05, "fork_quantile": 0.75})
    for (sampler, rl), g in _groups(t["tokens"]):
        g = g.copy()
        n = len(g)
        rank = g.entropy_base.rank(method="min").astype(int)
        g["bin"] = 1 + np.minimum((rank - 1) * bins // max(n - 1, 1), bins - 1)
        g["over"] = g.js64 >= 0.05
        ent = g.entropy_base.astype("float64")
        fork = ent >= np.quantile(ent, 0.75)
        r = res[(res.sampler == sampler) & (res.rl_model == rl)].set_index("entropy_bin").sort_index()
        exp = g.groupby("bin").agg(n=("js64", "size"), mean_js=("js64", "mean"), share=("over", "mean"),
                                   lo=("entropy_base", "min"), hi=("entropy_base", "max"))
        assert list(r.index) == list(exp.index)
        _close(r.n_tokens, exp.n)
        _close(r.mean_js, exp.mean_js)
        _close(r.share_over, exp.share)
        _close(r.entropy_min, exp.lo.astype("float64"))
        _close(r.entropy_max, exp.hi.astype("float64"))
        _close(r.over_share_in_forks.iloc[0], (g.over & fork).sum() / g.over.sum())
        _close(r.fork_token_share.iloc[0], fork.mean())
        _close(r.share_of_over.sum(), 1.0)


def test_entropy_bins_split_a_bucket_of_similar_entropies(tmp_path):
    """Entropies exp(12.2 / 64) + i x 1e-6 lie in one bucket of the recipe's second scan (ceil(64 ln entropy) = 13), so
    every bin bound and the fork cutoff fall inside it: its positions are binned one by one, as numpy bins them."""
    tables = make_tables(seed=5, with_cross=False)
    rows = [dict(r, entropy_base=math.exp(12.2 / 64) + i * 1e-6) for i, r in enumerate(tables["tokens"])]
    for name, table_rows in {**tables, "tokens": rows}.items():
        write_parquet(to_arrow(name, table_rows), tmp_path / name / "part-00000.parquet")
    write_manifest(tmp_path)
    bins, quantile = 4, 0.5
    res = run_recipe("entropy_vs_divergence", tmp_path, {"entropy_bins": bins, "js_threshold": 0.05,
                                                         "fork_quantile": quantile})
    tok = pd.DataFrame(rows).assign(js64=lambda d: d.js.astype("float32").astype("float64"))
    for (sampler, rl), g in _groups(tok):
        ent = g.entropy_base.astype("float32").astype("float64")
        assert np.ceil(64 * np.log(ent)).nunique() == 1
        n = len(g)
        g = g.assign(bin=1 + np.minimum((ent.rank(method="min").astype(int) - 1) * bins // max(n - 1, 1), bins - 1),
                     over=g.js64 >= 0.05, fork=ent >= np.quantile(ent, quantile), ent=ent)
        r = res[(res.sampler == sampler) & (res.rl_model == rl)].set_index("entropy_bin").sort_index()
        exp = g.groupby("bin").agg(n=("js64", "size"), mean_js=("js64", "mean"), lo=("ent", "min"), hi=("ent", "max"))
        assert list(r.index) == list(exp.index) == list(range(1, bins + 1))
        _close(r.n_tokens, exp.n)
        _close(r.mean_js, exp.mean_js)
        _close(r.entropy_min, exp.lo)
        _close(r.entropy_max, exp.hi)
        _close(r.fork_token_share.iloc[0], g.fork.mean())
        _close(r.over_share_in_forks.iloc[0], (g.over & g.fork).sum() / g.over.sum())


def test_order_statistics_with_ties_and_a_one_row_group(tmp_path):
    """Entropy bins, the fork cutoff and the median rank come from order statistics: exact with ties, with n = 1."""
    tables = make_tables(seed=4, with_cross=False)
    # entropies to 0.1 nats and RL top-1 base ranks 1, 2, 1, 2, ... within a group: many ties, and an even-sized
    # group's median falls between two ranks
    seen: dict[tuple[str, str], int] = {}
    rows = []
    for r in tables["tokens"]:
        k = seen[(r["sampler"], r["rl_model"])] = seen.get((r["sampler"], r["rl_model"]), -1) + 1
        rows.append(dict(r, entropy_base=round(r["entropy_base"], 1), rl_top1_rank_base=1 + k % 2))
    lone = ("base", "rl-step100")
    rows = [r for r in rows if (r["sampler"], r["rl_model"]) != lone] + \
        [next(r for r in rows if (r["sampler"], r["rl_model"]) == lone)]
    if seen[("base", "rl-step200")] % 2 == 0:  # an even-sized group (seen holds the last index)
        rows.remove(next(r for r in reversed(rows) if (r["sampler"], r["rl_model"]) == ("base", "rl-step200")))
    for name, table_rows in {**tables, "tokens": rows}.items():
        write_parquet(to_arrow(name, table_rows), tmp_path / name / "part-00000.parquet")
    write_manifest(tmp_path)
    bins, threshold, quantile = 7, 0.05, 0.7
    res = run_recipe("entropy_vs_divergence", tmp_path,
                     {"entropy_bins": bins, "js_threshold": threshold, "fork_quantile": quantile})
    ranks = run_recipe("reranking", tmp_path, {"js_threshold": threshold})
    tok = pd.DataFrame(rows).assign(js64=lambda d: d.js.astype("float32").astype("float64"))
    assert tok.groupby(GROUP).size()[lone] == 1
    assert (ranks[ranks.measure == "median_rl_top1_rank_base"].value == 1.5).any()
    for (sampler, rl), g in _groups(tok):
        n = len(g)
        ent = g.entropy_base.astype("float32").astype("float64")
        g = g.assign(bin=1 + np.minimum((ent.rank(method="min").astype(int) - 1) * bins // max(n - 1, 1), bins - 1),
                     over=g.js64 >= threshold)
        fork = ent >= np.quantile(ent, quantile)
        r = res[(res.sampler == sampler) & (res.rl_model == rl)].set_index("entropy_bin").sort_index()
        exp = g.groupby("bin").agg(n=("js64", "size"), mean_js=("js64", "mean"), lo=("entropy_base", "min"))
        assert list(r.index) == list(exp.index)
        _close(r.n_tokens, exp.n)
        _close(r.mean_js, exp.mean_js)
        _close(r.entropy_min, exp.lo.astype("float32").astype("float64"))
        _close(r.fork_entropy_cutoff.iloc[0], np.quantile(ent, quantile))
        _close(r.fork_token_share.iloc[0], fork.mean())
        for subset, sub in (("all", g), ("over_threshold", g[g.over])):
            got = ranks[(ranks.sampler == sampler) & (ranks.rl_model == rl) & (ranks.subset == subset)
                        & (ranks.measure == "median_rl_top1_rank_base")]
            if len(sub):
                _close(got.value, [sub.rl_top1_rank_base.median()])
            else:
                assert got.empty


def test_position_concentration(build, t):
    bins, edge = 10, 8
    res = run_recipe("position_concentration", build,
                     {"position_bins": bins, "edge_tokens": edge, "js_threshold": 0.1})
    tok = t["tokens"].merge(t["generations"][["generation_id", "n_tokens"]], on="generation_id")
    tok["bin"] = np.minimum(tok.position * bins // np.maximum(tok.n_tokens - 1, 1), bins - 1)
    tok["seg"] = np.where(tok.position < edge, "first", np.where(tok.position >= tok.n_tokens - edge, "last", "middle"))
    tok["over"] = tok.js64 >= 0.1
    # bins agree with the stored relative position
    _close(tok.bin, np.minimum(np.floor(tok.rel_position.astype("float64") * bins + 1e-6), bins - 1))
    for (sampler, rl), g in _groups(tok):
        r = res[(res.sampler == sampler) & (res.rl_model == rl)]
        rb = r[r.segment == "bin"].set_index("bin").sort_index()
        exp = g.groupby("bin").agg(n=("js64", "size"), mean_js=("js64", "mean"), share=("over", "mean"),
                                   n_over=("over", "sum"))
        assert list(rb.index) == list(exp.index)
        _close(rb.n_tokens, exp.n)
        _close(rb.mean_js, exp.mean_js)
        _close(rb.share_over, exp.share)
        _close(rb.share_of_over, exp.n_over / g.over.sum())
        _close(rb.rel_position_lo, exp.index / bins)
        rs = r[r.segment != "bin"].set_index("segment")
        exps = g.groupby("seg").agg(n=("js64", "size"), share=("over", "mean"), n_over=("over", "sum"))
        assert sorted(rs.index) == sorted(exps.index)
        rs = rs.loc[exps.index]
        _close(rs.n_tokens, exps.n)
        _close(rs.share_over, exps.share)
        _close(rs.lift, (exps.n_over / g.over.sum()) / (exps.n / len(g)))


def test_reranking(build, t):
    res = run_recipe("reranking", build, {"rank_cutoffs": [1, 3, 5], "js_threshold": 0.1})
    tok = t["tokens"]
    for subset, sub in (("all", tok), ("over_threshold", tok[tok.js64 >= 0.1])):
        for (sampler, rl), g in _groups(sub):
            r = res[(res.sampler == sampler) & (res.rl_model == rl) & (res.subset == subset)]
            ranks = r[r.measure == "rl_top1_in_base_topk"].sort_values("level")
            _close(ranks.level, [1, 3, 5])
            _close(ranks.value, [(g.rl_top1_rank_base <= k).mean() for k in (1, 3, 5)])
            ov = g.topk_overlap.astype("float64").round(6).value_counts(normalize=True).sort_index()
            got = r[r.measure == "topk_overlap_share"].sort_values("level")
            _close(got.level, ov.index)
            _close(got.value, ov.values)
            _close(r[r.measure == "mean_topk_overlap"].value, [g.topk_overlap.astype("float64").mean()])
            _close(r[r.measure == "median_rl_top1_rank_base"].value, [g.rl_top1_rank_base.median()])
            assert (r.n_tokens == len(g)).all()


def _mass_row(row) -> dict:
    """The mass_reallocation bounds from the top-K lists (builds without the exact columns), written with dicts."""
    base = dict(zip(row.topk_base_ids, np.exp(np.asarray(row.topk_base_logp, dtype=float))))
    rl = dict(zip(row.topk_rl_ids, np.exp(np.asarray(row.topk_rl_logp, dtype=float))))
    p_k, q_k = min(base.values()), min(rl.values())
    star = row.top1_rl
    q_star = float(np.exp(np.float64(row.topk_rl_logp[0])))
    k = len(row.topk_base_logp)
    if star in base:
        p_lo = p_hi = base[star]
    elif row.rl_top1_rank_base <= k:
        p_lo = p_hi = float(np.exp(np.float64(row.topk_base_logp[row.rl_top1_rank_base - 1])))
    elif star == row.token_id:
        p_lo = p_hi = float(np.exp(np.float64(row.logp_base)))
    else:
        p_lo, p_hi = 0.0, p_k

    def mass(of: dict, on: dict, token_logp: float, smallest: float) -> tuple[float, float, bool]:
        """Bounds of the mass of distribution `of` (its top-K `of`) on the other top-K `on`."""
        known, unknown = 0.0, 0
        for i in on:
            if i in of:
                known += of[i]
            elif i == row.token_id:
                known += float(np.exp(np.float64(token_logp)))
            else:
                unknown += 1
        outside = sum(v for i, v in of.items() if i not in on)
        return known, max(known, min(known + unknown * smallest, 1.0 - outside)), unknown == 0

    rl_lo, rl_hi, exact = mass(rl, base, row.logp_rl, q_k)
    br_lo, br_hi, br_exact = mass(base, rl, row.logp_base, p_k)
    return {"gain_lo": q_star - p_hi, "gain_hi": q_star - p_lo, "base_mass": sum(base.values()),
            "rl_lo": rl_lo, "rl_hi": rl_hi, "in_topk": star in base or row.rl_top1_rank_base <= k,
            "exact": exact, "br_lo": br_lo, "br_hi": br_hi, "br_exact": br_exact, "p_exact": p_lo == p_hi,
            "gain": q_star - float(row.p_base_rl_top1)}


EXACT = ["p_base_rl_top1", "rl_mass_base_topk", "base_mass_rl_topk"]


@pytest.fixture(scope="module")
def build_without_exact(build: Path) -> Path:
    """The build with the exact reallocation columns NULL, as `tokenshift migrate` leaves a pre-2.1 build."""
    out = build.parent / "no-exact"
    if not out.exists():
        shutil.copytree(build, out)
        for part in sorted((out / "tokens").glob("*.parquet")):
            table = pq.read_table(part)
            for name in EXACT:
                i = table.schema.get_field_index(name)
                table = table.set_column(i, table.schema.field(i), pa.nulls(table.num_rows, pa.float32()))
            write_parquet(table, part)
        write_manifest(out)
    return out


def test_mass_reallocation(build, build_without_exact, t):
    """Exact where the scorer's columns are filled (lo = hi, checked against the full-distribution values of the
    synthetic tables), bounds from the lists where they are NULL; the bounds hold the exact values."""
    exact = run_recipe("mass_reallocation", build, {})
    bounds = run_recipe("mass_reallocation", build_without_exact, {})
    tok = t["tokens"]
    m = pd.DataFrame([_mass_row(r) for r in tok.itertuples(index=False)], index=tok.index)
    tok = pd.concat([tok, m], axis=1)
    assert (tok.gain_lo <= tok.gain_hi + 1e-12).all() and (tok.rl_lo <= tok.rl_hi + 1e-12).all()
    assert (tok.gain_lo <= tok.gain + 1e-6).all() and (tok.gain <= tok.gain_hi + 1e-6).all()
    assert not tok.exact.all() and not tok.p_exact.all()  # the bounds are not all trivially exact
    for subset, sub in (("all", tok), ("over_threshold", tok[tok.js64 >= 0.1])):
        for (sampler, rl), g in _groups(sub):
            r, e = (res[(res.sampler == sampler) & (res.rl_model == rl) & (res.subset == subset)].iloc[0]
                    for res in (bounds, exact))
            assert r.n_tokens == e.n_tokens == len(g)
            _close(r.mean_gain_lo, g.gain_lo.mean(), 1e-6)
            _close(r.mean_gain_hi, g.gain_hi.mean(), 1e-6)
            _close(r.mean_base_mass_base_topk, g.base_mass.mean(), 1e-6)
            _close(r.mean_rl_mass_base_topk_lo, g.rl_lo.mean(), 1e-6)
            _close(r.mean_rl_mass_base_topk_hi, g.rl_hi.mean(), 1e-6)
            _close(r.mean_net_into_base_topk_lo, (g.rl_lo - g.base_mass).mean(), 1e-6)
            _close(r.rl_top1_in_base_topk, g.in_topk.mean())
            _close(r.exact_topk_share, g.exact.mean())
            _close(r.mean_base_mass_rl_topk_lo, g.br_lo.mean(), 1e-6)
            _close(r.mean_base_mass_rl_topk_hi, g.br_hi.mean(), 1e-6)
            _close(r.exact_rl_topk_share, g.br_exact.mean())
            _close(r.exact_top1_share, g.p_exact.mean())
            # exact: lo = hi = the value from the full distributions, inside the list bounds
            _close(e.mean_gain_lo, g.gain.mean(), 1e-6)
            _close(e.mean_gain_hi, g.gain.mean(), 1e-6)
            _close(e.mean_rl_mass_base_topk_lo, g.rl_mass_base_topk.astype(float).mean(), 1e-6)
            _close(e.mean_rl_mass_base_topk_hi, e.mean_rl_mass_base_topk_lo)
            _close(e.mean_base_mass_rl_topk_lo, g.base_mass_rl_topk.astype(float).mean(), 1e-6)
            _close([e.exact_top1_share, e.exact_topk_share, e.exact_rl_topk_share], [1.0, 1.0, 1.0])
            _close(e.rl_top1_in_base_topk, g.in_topk.mean())
            _close(e.mean_base_mass_base_topk, g.base_mass.mean(), 1e-6)
            assert r.mean_rl_mass_base_topk_lo - 1e-6 <= e.mean_rl_mass_base_topk_lo <= r.mean_rl_mass_base_topk_hi + 1e-6
            assert r.mean_base_mass_rl_topk_lo - 1e-6 <= e.mean_base_mass_rl_topk_lo <= r.mean_base_mass_rl_topk_hi + 1e-6


def test_reallocation_reads_the_lists_scalars_where_every_row_has_them(build, t, tmp_path):
    """q(t*) and p(S) come from p_rl_rl_top1 and base_mass_base_topk (version 2.2) when every row has them, and
    from the lists otherwise (a build of an older version, whose parts lack them): the same values within float32
    rounding."""
    from_lists = tmp_path / "from-lists"
    shutil.copytree(build, from_lists)
    for part in sorted((from_lists / "tokens").glob("*.parquet")):
        write_parquet(pq.read_table(part).drop_columns(["p_rl_rl_top1", "base_mass_base_topk"]), part)
    write_manifest(from_lists)
    scalars = run_recipe("mass_reallocation", build, {})
    lists = run_recipe("mass_reallocation", from_lists, {})
    tok = t["tokens"]
    for res in (scalars, lists):
        row = res[(res.sampler == "base") & (res.subset == "all")].iloc[0]
        g = tok[(tok.sampler == "base") & (tok.rl_model == row.rl_model)]
        _close(row.mean_q_rl_top1, np.exp(g.topk_rl_logp.map(lambda v: float(v[0]))).mean(), 1e-6)
        _close(row.mean_base_mass_base_topk, g.topk_base_logp.map(lambda v: np.exp(np.float64(v)).sum()).mean(), 1e-6)
    assert "p_rl_rl_top1::DOUBLE AS q_top1" in reallocation_view(resolve_source(build))
    assert "p_rl_rl_top1" not in reallocation_view(resolve_source(from_lists))


def test_divergent_tokens(build, t):
    res = run_recipe("divergent_tokens", build, {"min_occurrences": 10, "top_n": 7, "js_threshold": 0.05})
    tok = t["tokens"].assign(over=lambda d: d.js64 >= 0.05)
    for rl, g in tok.groupby("rl_model"):
        per = g.groupby("token_id").agg(token=("token", "first"), n=("over", "size"), n_over=("over", "sum"),
                                        mean_js=("js64", "mean"))
        per["rate"] = per.n_over / per.n
        per = per[per.n >= 10].reset_index()
        per = per.sort_values(["n_over", "rate", "token_id"], ascending=[False, False, True]).head(7)
        r = res[res.rl_model == rl]
        assert list(r["rank"]) == list(range(1, len(per) + 1))
        assert list(r.token_id) == list(per.token_id)
        assert list(r.token) == list(per.token)
        _close(r.n_over, per.n_over)
        _close(r.rate_over, per.rate)
        _close(r.share_of_over, per.n_over / g.over.sum())
        _close(r.mean_js, per.mean_js)


def _pass_at_k(n: int, c: int, k: int) -> float:
    return 1.0 if n - c < k else 1.0 - math.comb(n - c, k) / math.comb(n, k)


def test_accuracy(build, t):
    res = run_recipe("accuracy", build, {"pass_k": "1,2,3"})
    gen = t["generations"]
    for (sampler, bench), g in gen.groupby(["sampler", "benchmark"]):
        r = res[(res.sampler == sampler) & (res.benchmark == bench)].sort_values("k")
        assert list(r.k) == [1, 2, 3]
        graded = g[g.correct.notna()]
        assert (r.n_generations == len(g)).all() and (r.n_ungraded == g.correct.isna().sum()).all()
        _close(r.accuracy, [graded.correct.astype(float).mean()] * 3)
        per = graded.groupby("problem_id").correct.agg(["size", "sum"])
        for k, value in zip(r.k, r.pass_at_k):
            ok = per[per["size"] >= k]
            _close(value, np.mean([_pass_at_k(int(n), int(c), k) for n, c in zip(ok["size"], ok["sum"])]))
    # pass@1 averaged over problems equals accuracy when every problem has the same number of graded samples
    assert res.accuracy.between(0, 1).all()


def test_cross_sampling_curve(build, t):
    res = run_recipe("cross_sampling_curve", build, {})
    cs = t["cross_samples"].merge(t["prompts"][["problem_id", "benchmark"]], on="problem_id", how="left")
    gen = t["generations"]
    cs["rate_setting"] = cs.rate.where(cs.match_criterion.isna())
    keys = ["rl_model", "benchmark", "protocol", "direction", "threshold", "budget", "budget_unit", "criterion",
            "match_criterion", "mix_weight", "rate"]
    cs = cs.drop(columns="rate").rename(columns={"rate_setting": "rate"})
    exp = cs.groupby(keys, dropna=False).agg(n=("cross_id", "size"), acc=("correct", lambda s: s.dropna().astype(float).mean()),
                                             frac=("intervention_fraction", "mean")).reset_index()
    assert len(res) == len(exp)
    merged = res.merge(exp, on=keys, how="inner")
    assert len(merged) == len(exp)
    _close(merged.n_samples, merged.n)
    _close(merged.accuracy, merged.acc)
    _close(merged.mean_intervention_fraction, merged.frac)
    for row in merged.itertuples():
        probs = set(cs.loc[cs.rl_model == row.rl_model, "problem_id"])
        g = gen[gen.problem_id.isin(probs) & (gen.benchmark == row.benchmark) & gen.correct.notna()]
        base = g[g.sampler == "base"].correct.astype(float).mean()
        rl = g[g.sampler == row.rl_model].correct.astype(float).mean()
        _close([row.base_accuracy, row.rl_accuracy], [base, rl])
        if row.direction == "forward":
            _close(row.gap_recovered, (row.accuracy - base) / (rl - base))
            assert pd.isna(row.gap_lost)
        else:
            _close(row.gap_lost, (rl - row.accuracy) / (rl - base))
            assert pd.isna(row.gap_recovered)


# ---- 95% intervals: the recipes' bootstrap against numpy with the same draws ------------------------------------

REPS, SEED = 300, 5  # small and non-default, so the test also checks that both parameters are honoured




def _graded(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Correct and graded answers per group and problem, problems in problem_id order."""
    return (frame.assign(c=frame.correct.fillna(False).astype(int), n=frame.correct.notna().astype(int))
            .groupby(by + ["problem_id"], dropna=False)[["c", "n"]].sum().reset_index()
            .sort_values(by + ["problem_id"]))


def _pick(frame: pd.DataFrame, setting: dict) -> pd.DataFrame:
    """Rows of `frame` whose columns equal `setting`'s values (NaN equals NaN)."""
    mask = pd.Series(True, index=frame.index)
    for column, value in setting.items():
        mask &= frame[column].isna() if pd.isna(value) else frame[column] == value
    return frame[mask]


def _w(t: dict[str, pd.DataFrame], problem_ids) -> np.ndarray:
    """The recipes' bootstrap weights of these problems (numbered among the build's prompts)."""
    return _weights(SEED, REPS, _numbers(t["prompts"].problem_id, problem_ids))


def test_bootstrap_weights_are_the_numpy_poisson_weights(build, t):
    """tokenshift_bootstrap_weights (the preamble's macro the interval recipes share): one Poisson(1) weight per
    problem and replicate, each replicate once and in its place whichever thread computed it; its cuts are the
    Poisson(1) quantiles computed in decimal arithmetic."""
    assert np.array_equal(np.array(POISSON_CUTS, dtype=np.uint64), _poisson_cuts())
    con, _ = connect(build)
    try:
        ids = sorted(t["prompts"].problem_id)
        assert con.execute("SELECT list(problem_id ORDER BY p) FROM tokenshift_problem_numbers").fetchone()[0] == ids
        for reps in (REPS, 3):
            got = con.execute("SELECT r, w FROM tokenshift_bootstrap_weights(?, ?) ORDER BY r", [reps, SEED]).fetchall()
            assert [r for r, _ in got] == list(range(reps))
            assert np.array_equal(np.array([w for _, w in got]), _weights(SEED, reps, np.arange(len(ids)))), reps
    finally:
        con.close()
    many = _weights(SEED, 2000, np.arange(500)).ravel()  # a million draws: Poisson(1) has mean 1, variance 1
    assert abs(many.mean() - 1) < 0.005 and abs(many.var() - 1) < 0.01
    assert abs((many == 0).mean() - math.exp(-1)) < 0.002


def test_the_reports_weights_cache_reads_as_the_weights_it_replaces(build):
    """cache_bootstrap (write_report) makes one (reps, seed)'s weights once; the macro then reads those from the
    table and computes any other (reps, seed) as before."""
    con, _ = connect(build)
    try:
        query = "SELECT r, w FROM tokenshift_bootstrap_weights(?, ?) ORDER BY r"
        before = {(reps, seed): con.execute(query, [reps, seed]).fetchall() for reps in (REPS, 3) for seed in (SEED, 5)}
        cache_bootstrap(con, REPS, SEED)
        assert con.execute("SELECT count(*) FROM tokenshift_bootstrap_cache").fetchone()[0] == REPS
        for (reps, seed), rows in before.items():
            assert con.execute(query, [reps, seed]).fetchall() == rows, (reps, seed)
    finally:
        con.close()


def test_accuracy_intervals_equal_a_numpy_bootstrap(build, t):
    res = run_recipe("accuracy", build, {"bootstrap_reps": REPS, "bootstrap_seed": SEED, "pass_k": [1, 2]})
    per = _graded(t["generations"], ["sampler", "benchmark"])
    checked = 0
    for (sampler, bench), g in per.groupby(["sampler", "benchmark"]):
        rows = res[(res.sampler == sampler) & (res.benchmark == bench)]
        lo, hi = _ratio_interval(g.c.to_numpy(float), g.n.to_numpy(float), _w(t, g.problem_id))
        _close(rows[["accuracy_lo", "accuracy_hi"]].to_numpy(), [[lo, hi]] * len(rows))
        assert (rows.accuracy_lo <= rows.accuracy).all() and (rows.accuracy <= rows.accuracy_hi).all()
        for k in (1, 2):
            ok = g[g.n >= k]
            values = np.array([_pass_at_k(int(n), int(c), k) for n, c in zip(ok.n, ok.c)])
            want = _ratio_interval(values, np.ones(len(values)), _w(t, ok.problem_id))
            _close(rows.loc[rows.k == k, ["pass_at_k_lo", "pass_at_k_hi"]].to_numpy()[0], want)
            checked += 1
    assert checked == 2 * per.groupby(["sampler", "benchmark"]).ngroups > 0


def _settings(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    cs = t["cross_samples"].merge(t["prompts"][["problem_id", "benchmark"]], on="problem_id", how="left")
    return cs.assign(rate=cs.rate.where(cs.match_criterion.isna()))


SETTING = ["rl_model", "benchmark", "protocol", "direction", "threshold", "budget", "budget_unit", "criterion",
           "match_criterion", "mix_weight", "rate"]


def _reference(t: dict[str, pd.DataFrame], rl_model: str, problems: pd.Series) -> tuple[np.ndarray, ...]:
    """Per problem (aligned with `problems`): correct and graded answers of base and of rl_model."""
    gen = t["generations"]
    out = []
    for sampler in ("base", rl_model):
        g = _graded(gen[gen.sampler == sampler], []).set_index("problem_id").reindex(problems).fillna(0)
        out += [g.c.to_numpy(float), g.n.to_numpy(float)]
    return tuple(out)


def test_cross_sampling_curve_intervals_equal_a_numpy_bootstrap(build, t):
    res = run_recipe("cross_sampling_curve", build, {"bootstrap_reps": REPS, "bootstrap_seed": SEED})
    per = _graded(_settings(t), SETTING)
    assert len(res) == per.groupby(SETTING, dropna=False).ngroups
    for key, g in per.groupby(SETTING, dropna=False):
        row = _pick(res, dict(zip(SETTING, key)))
        assert len(row) == 1
        row = row.iloc[0]
        draws = _w(t, g.problem_id)
        c_b, n_b, c_r, n_r = _reference(t, row.rl_model, g.problem_id)
        _close([row.accuracy_lo, row.accuracy_hi], _ratio_interval(g.c.to_numpy(float), g.n.to_numpy(float), draws))
        _close([row.base_accuracy_lo, row.base_accuracy_hi], _ratio_interval(c_b, n_b, draws))
        _close([row.rl_accuracy_lo, row.rl_accuracy_hi], _ratio_interval(c_r, n_r, draws))
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = (draws @ g.c.to_numpy(float)) / (draws @ g.n.to_numpy(float))
            base, rl = (draws @ c_b) / (draws @ n_b), (draws @ c_r) / (draws @ n_r)
            share = (acc - base) / (rl - base) if row.direction == "forward" else (rl - acc) / (rl - base)
        share = share[np.isfinite(share)]
        column = "gap_recovered" if row.direction == "forward" else "gap_lost"
        _close([row[f"{column}_lo"], row[f"{column}_hi"]], np.quantile(share, [0.025, 0.975]))


def test_criteria_comparison(build, t):
    res = run_recipe("criteria_comparison", build, {"bootstrap_reps": REPS, "bootstrap_seed": SEED})
    cs = _settings(t)
    cs = cs[cs.protocol == "threshold"]
    keys = [k for k in SETTING if k != "protocol"]
    assert len(res) == cs.groupby(keys, dropna=False).ngroups
    assert set(res.selection) == {"js", "kl", "random@js"}
    per = _graded(cs, keys)
    curve = run_recipe("cross_sampling_curve", build, {"bootstrap_reps": REPS, "bootstrap_seed": SEED})
    checked_pairs = 0
    for key, g in cs.groupby(keys, dropna=False):
        row = _pick(res, dict(zip(keys, key))).iloc[0]
        _close([row.effective_pct, row.effective_n, row.n_samples],
               [100 * g.intervention_fraction.mean(), g.n_interventions.mean(), len(g)])
        ref = _pick(curve, {**dict(zip(keys, key)), "protocol": "threshold"}).iloc[0]
        share = ref.gap_recovered if row.direction == "forward" else ref.gap_lost
        _close([row.accuracy, row.accuracy_lo, row.accuracy_hi, row.gap_share, row.gap_share_per_token],
               [ref.accuracy, ref.accuracy_lo, ref.accuracy_hi, share, share / row.effective_n])
        if pd.isna(row.match_criterion):
            assert pd.isna(row.matched_accuracy) and pd.isna(row.criterion_minus_control)
            continue
        target = dict(zip(keys, key), criterion=row.match_criterion, match_criterion=np.nan)
        mine, theirs = (_pick(per, d) for d in (dict(zip(keys, key)), target))
        assert list(mine.problem_id) == list(theirs.problem_id)
        draws = _w(t, mine.problem_id)
        with np.errstate(invalid="ignore", divide="ignore"):
            diff = ((draws @ theirs.c.to_numpy(float)) / (draws @ theirs.n.to_numpy(float))
                    - (draws @ mine.c.to_numpy(float)) / (draws @ mine.n.to_numpy(float)))
        diff = diff[np.isfinite(diff)]
        matched = _pick(cs, target)
        _close([row.matched_accuracy, row.criterion_minus_control],
               [matched.correct.dropna().astype(float).mean(),
                matched.correct.dropna().astype(float).mean() - g.correct.dropna().astype(float).mean()])
        _close([row.criterion_minus_control_lo, row.criterion_minus_control_hi], np.quantile(diff, [0.025, 0.975]))
        checked_pairs += 1
    assert checked_pairs == 12  # random@js at 3 thresholds x 2 directions x 2 benchmarks


def test_study_table(build, t):
    res = run_recipe("study_table", build, {"bootstrap_reps": REPS, "bootstrap_seed": SEED})
    cs = _settings(t)
    assert list(res.columns[7:12]) == ["direction", "effective_pct", "effective_n", "start_accuracy",
                                      "start_accuracy_lo"]
    per = _graded(cs, SETTING)
    assert len(res) == per.groupby(SETTING, dropna=False).ngroups
    for key, g in per.groupby(SETTING, dropna=False):
        setting = dict(zip(SETTING, key))
        rows = _pick(cs, setting)
        selection = setting["criterion"] + ("" if pd.isna(setting["match_criterion"]) else "@js")
        row = res[(res.rl_model == setting["rl_model"]) & (res.benchmark == setting["benchmark"])
                  & (res.selection == selection) & (res.protocol == setting["protocol"])
                  & (res.direction == setting["direction"]) & (res.budget == setting["budget"])
                  & ((res.threshold == setting["threshold"]) | (res.threshold.isna() & pd.isna(setting["threshold"])))]
        assert len(row) == 1
        row = row.iloc[0]
        c_b, n_b, c_r, n_r = _reference(t, setting["rl_model"], g.problem_id)
        c_s, n_s = (c_b, n_b) if setting["direction"] == "forward" else (c_r, n_r)
        draws = _w(t, g.problem_id)
        _close([row.effective_pct, row.effective_n], [100 * rows.intervention_fraction.mean(), rows.n_interventions.mean()])
        _close([row.start_accuracy, row.start_accuracy_lo, row.start_accuracy_hi],
               [c_s.sum() / n_s.sum(), *_ratio_interval(c_s, n_s, draws)])
        _close([row.end_accuracy, row.end_accuracy_lo, row.end_accuracy_hi],
               [g.c.sum() / g.n.sum(), *_ratio_interval(g.c.to_numpy(float), g.n.to_numpy(float), draws)])


def test_evolution(build, t):
    res = run_recipe("evolution", build, {"js_threshold": 0.15, "edge_tokens": 4, "top_rank": 2})
    tok = t["tokens"].merge(t["generations"][["generation_id", "n_tokens"]], on="generation_id")
    tok["over"] = tok.js64 >= 0.15
    tok["edge"] = (tok.position < 4) | (tok.position >= tok.n_tokens - 4)
    gen = t["generations"]
    assert list(res.checkpoint_step.drop_duplicates()) == sorted(res.checkpoint_step.unique())
    for (sampler, rl), g in _groups(tok):
        r = res[(res.sampler == sampler) & (res.rl_model == rl)].iloc[0]
        ent = g.entropy_base.astype("float64")
        fork = ent >= np.quantile(ent, 0.8)
        _close(r.mean_js, g.js64.mean())
        _close(r.share_over, g.over.mean())
        _close(r.share_near_zero, (g.js64 < 0.01).mean())
        _close(r.over_share_in_edges, (g.over & g.edge).sum() / g.over.sum())
        _close(r.over_share_in_forks, (g.over & fork).sum() / g.over.sum())
        _close(r.rl_top1_in_base_top, (g.rl_top1_rank_base <= 2).mean())
        _close(r.mean_topk_overlap, g.topk_overlap.astype("float64").mean())
        _close(r.p99_js, np.quantile(g.js64, 0.99))
        acc = gen[(gen.sampler == rl) & gen.correct.notna()].correct.astype(float).mean()
        _close(r.rl_accuracy, acc)
        counts = g[g.over].groupby("token_id").size()
        top_id = counts[counts == counts.max()].index.min()
        assert r.top_divergent_token == g.loc[g.token_id == top_id, "token"].iloc[0]
        assert r.top_divergent_token_n == counts.max()


# ---- recipe files ---------------------------------------------------------------------------------------------

def test_recipe_files_document_what_they_return(build):
    assert recipe_names()[:len(ALL_RECIPES)] == ALL_RECIPES
    for name in ALL_RECIPES:
        recipe = load_recipe(name)
        header = "\n".join(line for line in recipe.sql.splitlines() if line.startswith("--"))
        assert "Parameters" in header and "Columns" in header and "Tables:" in header
        set_lines = [ln for ln in recipe.sql.splitlines() if ln.startswith("SET VARIABLE")]
        # a parameter reads its override (COALESCE(getvariable(...), default)); any other variable is computed from
        # the data by a subquery, and the header's comments say what it holds
        derived = [ln.split()[2] for ln in set_lines if ln.endswith("= (")]
        assert len(recipe.params) + len(derived) == len(set_lines), name
        assert not set(derived) & set(recipe.params) and all(v in header for v in derived), (name, derived)
        for p in recipe.params.values():
            assert p.name in header, (name, p.name)
        for column in run_recipe(name, build).columns:
            assert re.search(rf"\b{column}\b", header), (name, column)
        # the Columns block, which docs/reference/recipes.md prints, lists exactly the columns returned
        documented = [c.strip() for names, _ in recipe_doc(recipe).columns for c in names.split(",")]
        assert sorted(documented) == sorted(run_recipe(name, build).columns), name


@pytest.mark.parametrize("name, override", [("position_concentration", {"js_threshold": 0.2}),
                                            ("accuracy", {"bootstrap_reps": 50})])  # accuracy: the preamble's macro
def test_pasted_script_matches_runner(build, name, override):
    """Preamble + SET VARIABLE + recipe run as one script in a fresh connection = run_recipe with the override."""
    sets = "".join(f"SET VARIABLE {k} = {v};\n" for k, v in override.items())
    script = preamble_sql(build) + sets + load_recipe(name).sql
    con = duckdb.connect()
    statements = duckdb.extract_statements(script)
    for s in statements[:-1]:
        con.execute(s)
    pasted = con.execute(statements[-1]).df()
    pd.testing.assert_frame_equal(pasted, run_recipe(name, build, override))
    assert len(pasted) and pasted.notna().any().all()  # every column computed somewhere (intervals included)


# ---- sources ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL_RECIPES)
def test_same_result_on_build_and_registry(build, registry, name):
    expected = run_recipe(name, build)
    for source in (registry / "1.10.0", f"{registry}@1.10.0", f"{registry}@latest"):
        pd.testing.assert_frame_equal(run_recipe(name, source), expected)


def test_registry_versions(registry):
    assert resolve_source(f"{registry}@latest").root == (registry / "1.10.0").resolve().as_posix()
    old = resolve_source(f"{registry}@1.9.0")
    assert "cross_samples" not in old.tables
    with pytest.raises(TokenshiftError, match=r"'2\.0' is not in .*1\.10\.0, 1\.9\.0"):
        resolve_source(f"{registry}@2.0")  # the valid versions are listed, newest first
    with pytest.raises(TokenshiftError, match="registry"):
        resolve_source(str(registry))


def test_path_with_quote_is_escaped(build, tmp_path):
    odd = tmp_path / "it's a build"
    shutil.copytree(build, odd)
    assert "it''s a build" in preamble_sql(odd)
    pd.testing.assert_frame_equal(run_recipe("accuracy", odd), run_recipe("accuracy", build))


def test_not_a_build(tmp_path):
    (tmp_path / "tokens").mkdir()
    with pytest.raises(TokenshiftError, match="not a tokenshift build") as err:
        run_recipe("accuracy", tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(TokenshiftError, match="not found"):
        run_recipe("accuracy", tmp_path / "absent")


def test_hf_preamble_text():
    text = preamble_sql("hf://datasets/some-org/token-shift@v1.0")
    assert "INSTALL httpfs;" in text and "LOAD httpfs;" in text
    assert "CREATE SECRET IF NOT EXISTS tokenshift_hf (TYPE HUGGINGFACE, PROVIDER credential_chain);" in text
    for table in ("prompts", "generations", "tokens", "cross_samples"):
        assert (f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM "
                f"read_parquet('hf://datasets/some-org/token-shift@v1.0/{table}/*.parquet');") in text
    # parses as SQL: setup, 4 views, the cross-sampling reference view, the bootstrap's problem numbers view and two
    # weights macros, the p(t*) macro, the reallocation view (bounds where the exact columns are NULL: a Hub
    # dataset's rows are not read here)
    assert len(duckdb.extract_statements(text)) == 13
    assert "CREATE OR REPLACE VIEW tokens_reallocation AS\nWITH t AS" in text
    assert text.index("VIEW cross_reference") > text.index("VIEW cross_samples")  # DuckDB binds it when created
    for bad in ("hf://datasets/org", "hf://models/org/name@v1", "hf://datasets/org/name@v1'; DROP"):
        with pytest.raises(TokenshiftError, match="hf://datasets/ORG/NAME@VERSION"):
            preamble_sql(bad)


def test_missing_cross_samples(registry):
    with pytest.raises(MissingTableError, match="cross_samples"):
        run_recipe("cross_sampling_curve", f"{registry}@1.9.0")
    con, src = connect(f"{registry}@1.9.0")
    con.close()
    assert src.tables == ("prompts", "generations", "tokens")


# ---- parameters and errors ----------------------------------------------------------------------------------

def test_param_changes_result(build, t):
    low = run_recipe("evolution", build, {"js_threshold": 0.01})
    high = run_recipe("evolution", build, {"js_threshold": "0.3"})
    assert (low.share_over > high.share_over).all()
    tok = t["tokens"]
    expected = tok[(tok.sampler == "base") & (tok.rl_model == high.rl_model.iloc[0])].js64.ge(0.3).mean()
    _close(high[high.sampler == "base"].share_over.iloc[0], expected)
    default = run_recipe("evolution", build)
    pd.testing.assert_frame_equal(default, run_recipe("evolution", build, {"js_threshold": 0.1}))


def test_string_param_is_bound_not_pasted(build, t):
    everyone = run_recipe("divergent_tokens", build, {"min_occurrences": 1, "top_n": 1000})
    base = run_recipe("divergent_tokens", build, {"sampler": "base", "min_occurrences": 1, "top_n": 1000})
    assert base.n_occurrences.sum() == (t["tokens"].sampler == "base").sum()
    assert base.n_occurrences.sum() < everyone.n_occurrences.sum()
    injected = run_recipe("divergent_tokens", build, {"sampler": "x' OR '1'='1", "min_occurrences": 1})
    assert injected.empty
    with pytest.raises(TokenshiftError, match="cannot read .* as DOUBLE"):
        run_recipe("divergent_tokens", build, {"js_threshold": "0.1; DROP VIEW tokens; --"})
    # and the views were untouched: the same connection-free run still works
    assert not run_recipe("divergent_tokens", build).empty


def test_unknown_recipe_and_param_list_valid_ones(build):
    with pytest.raises(TokenshiftError) as err:
        run_recipe("no_such_recipe", build)
    assert all(name in str(err.value) for name in ALL_RECIPES)
    with pytest.raises(TokenshiftError) as err:
        run_recipe("position_concentration", build, {"bins": 3})
    message = str(err.value)
    assert "bins" in message and all(p in message for p in ("js_threshold", "position_bins", "edge_tokens"))
    with pytest.raises(TokenshiftError, match="valid parameters: bootstrap_reps"):
        run_recipe("cross_sampling_curve", build, {"k": 1})
    from tokenshift.queries.recipes import parse_recipe
    from tokenshift.queries.run import check_params

    with pytest.raises(TokenshiftError, match="valid parameters: none"):
        check_params(parse_recipe("bare", "-- bare: no parameters\n-- Tables: prompts\nSELECT 1;"), {"k": 1})


# ---- command line -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cli():
    try:
        from tokenshift.cli import cli as group
    except ImportError as err:  # another part's command module not there yet
        pytest.skip(f"tokenshift.cli does not import: {err}")
    return group


def test_cli_query(cli, build):
    from click.testing import CliRunner

    runner = CliRunner()
    out = runner.invoke(cli, ["query", "accuracy", "--data", str(build), "--param", "pass_k=1,2", "--format", "csv"])
    assert out.exit_code == 0, out.output
    df = pd.read_csv(__import__("io").StringIO(out.output))
    pd.testing.assert_frame_equal(df, run_recipe("accuracy", build, {"pass_k": [1, 2]}), check_dtype=False)
    out = runner.invoke(cli, ["query", "cross_sampling_curve", "--data", str(build), "--format", "json"])
    assert out.exit_code == 0 and '"budget": "inf"' in out.output
    out = runner.invoke(cli, ["query", "reranking", "--data", str(build)])
    assert out.exit_code == 0 and "rl_top1_in_base_topk" in out.output
    out = runner.invoke(cli, ["query", "--list"])
    assert out.exit_code == 0 and all(n in out.output for n in ALL_RECIPES)


def test_cli_print_sql_pastes(cli, build):
    from click.testing import CliRunner

    out = CliRunner().invoke(cli, ["query", "reranking", "--data", str(build), "--print-sql",
                                   "--param", "rank_cutoffs=1,2", "--param", "js_threshold=0.2"])
    assert out.exit_code == 0, out.output
    con = duckdb.connect()
    statements = duckdb.extract_statements(out.output)
    for s in statements[:-1]:
        con.execute(s)
    pd.testing.assert_frame_equal(con.execute(statements[-1]).df(),
                                  run_recipe("reranking", build, {"rank_cutoffs": [1, 2], "js_threshold": 0.2}))


@pytest.mark.parametrize("args, needle", [
    (["query", "nope", "--data", "."], "valid recipes: js_distribution"),
    (["query", "accuracy", "--data", ".", "--param", "zz=1"], "valid parameters: pass_k"),
    (["query", "accuracy", "--data", ".", "--param", "novalue"], "name=value"),
    (["query", "accuracy", "--data", "/definitely/not/here"], "not found"),
])
def test_cli_errors_are_one_line(cli, args, needle):
    from click.testing import CliRunner

    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 2
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and needle in lines[0], out.output


def _write_tables(out: Path, tables: dict[str, list[dict]]) -> Path:
    for name, rows in tables.items():
        write_parquet(to_arrow(name, rows), out / name / "part-00000.parquet")
    return write_manifest(out)


def test_runs_differing_only_in_sign_or_mix_space_are_separate_rows(tmp_path):
    """Two delta_logp runs that differ only in sign, and a js run copied into log space (same W = 1), stay apart in
    every cross-sampling recipe, each with its own accuracy; rows without mix_space (older builds) read as 'prob'."""
    tables = make_tables(seed=3)
    js = [r for r in tables["cross_samples"] if r["criterion"] == "js" and r["protocol"] == "threshold"
          and r["rl_model"] == "rl-step200"]
    assert js and all(r.get("mix_space") is None and r.get("sign") is None for r in js)
    extra = [{**r, "cross_id": "log/" + r["cross_id"], "mix_space": "log", "run_id": "js-log", "correct": False}
             for r in js]  # every log-space answer wrong, every 'ge' answer right: pooling would move both
    extra += [{**r, "cross_id": f"delta_logp/{sign}/" + r["cross_id"], "criterion": "delta_logp", "sign": sign,
               "run_id": f"delta_logp-{sign}", "correct": r["correct"] if sign == "le" else True}
              for r in js for sign in ("le", "ge")]
    tables["cross_samples"] = tables["cross_samples"] + extra
    build = _write_tables(tmp_path / "build", tables)
    cs = pd.DataFrame(tables["cross_samples"]).merge(pd.DataFrame(tables["prompts"])[["problem_id", "benchmark"]],
                                                     on="problem_id")
    cs = cs.assign(mix_space=cs.mix_space.fillna("prob"), rate=cs.rate.where(cs.match_criterion.isna()))
    keys = SETTING + ["sign", "mix_space"]
    want = (cs.groupby(keys, dropna=False).correct.agg(lambda s: s.dropna().astype(float).mean())
            .rename("want").reset_index())
    curve = run_recipe("cross_sampling_curve", build, {"bootstrap_reps": 20})
    assert len(curve) == len(want)
    merged = curve.merge(want, on=keys)
    assert len(merged) == len(want)
    _close(merged.accuracy, merged.want)
    mine = want[want.rl_model.eq("rl-step200") & want.protocol.eq("threshold") & want.criterion.isin(["js", "delta_logp"])]
    assert set(zip(mine.criterion, mine.sign.fillna("-"), mine.mix_space)) == {
        ("js", "-", "prob"), ("js", "-", "log"), ("delta_logp", "le", "prob"), ("delta_logp", "ge", "prob")}
    assert (mine[mine.mix_space == "log"].want == 0).all() and (mine[mine.sign == "ge"].want == 1).all()
    assert (mine[(mine.mix_space == "prob") & (mine.sign.isna() | (mine.sign == "le"))].want < 1).any()

    crit = run_recipe("criteria_comparison", build, {"bootstrap_reps": 20})
    threshold = want[want.protocol == "threshold"]
    assert len(crit) == len(threshold)
    merged = crit.merge(threshold, on=[k for k in keys if k != "protocol"])
    assert len(merged) == len(threshold)
    _close(merged.accuracy, merged.want)
    labels = set(crit.loc[crit.rl_model == "rl-step200", "selection"])
    assert {"js", "js log", "delta_logp <=", "delta_logp >="} <= labels

    study = run_recipe("study_table", build, {"bootstrap_reps": 20})
    assert len(study) == len(want)
    for selection, criterion, sign, space in [("js", "js", None, "prob"), ("js log", "js", None, "log"),
                                              ("delta_logp <=", "delta_logp", "le", "prob"),
                                              ("delta_logp >=", "delta_logp", "ge", "prob")]:
        got = study[(study.rl_model == "rl-step200") & (study.selection == selection) & (study.protocol == "threshold")]
        exp = _pick(want, {"rl_model": "rl-step200", "criterion": criterion, "sign": sign, "mix_space": space,
                           "protocol": "threshold"})
        assert len(got) == len(exp) > 0
        both = got.merge(exp, on=["benchmark", "direction", "threshold", "budget"])
        assert len(both) == len(exp)
        _close(both.end_accuracy, both.want)
