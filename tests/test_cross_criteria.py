"""Selection criteria, mixing, random controls and several runs in one cross_samples table (tiny random pair)."""
# ruff: noqa: F811  (pytest fixtures imported from test_cross_sample are parameters here, by design)

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from interrupt import dies_on_call
from oracle_decode import setting_decode
from reference_code import run_reference_cross_sample
from test_cross_sample import (  # noqa: F401
    MAX_NEW,
    _prompt_ids,
    _snapshot,
    assert_refused_in_one_line,
    build,
    crossed,
    pair,
    thresholds,
)

import tokenshift.builders.cross_sampling.runner as cs
from tokenshift.builders.engines import generate
from tokenshift.builders.scoring import score
from tokenshift.runtime.errors import TokenshiftError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REFERENCE_COMMIT = "6c109b2"  # main before criteria and runs: its cross_samples table is "today's table"
OLD_COLUMNS = ["cross_id", "problem_id", "rl_model", "protocol", "direction", "threshold", "budget", "budget_unit",
               "sample_index", "seed", "response_text", "n_tokens", "n_interventions", "intervention_positions",
               "intervention_fraction", "extracted_answer", "correct", "finish_reason"]


def _part_tables(out: Path, columns=None) -> dict[str, object]:
    return {p.name[:len("part-00000")]: pq.read_table(p, columns=columns)
            for p in sorted((out / "cross_samples").glob("*.parquet"))}


def test_default_js_run_is_byte_identical_to_the_reference_commit(tmp_path, build, thresholds):
    """The code of REFERENCE_COMMIT (from git, in a subprocess) and today's code write the same values, row for row, in every old column."""
    before, after = tmp_path / "old", tmp_path / "new"
    shutil.copytree(build, before)
    shutil.copytree(build, after)
    run_reference_cross_sample(REFERENCE_COMMIT, tmp_path, before,
                               f"thresholds={tuple(thresholds)!r}, budgets=(0, 1, 2, inf)")
    cs.run_cross_sample(cs.CrossSampleConfig(out=str(after), criterion="js", thresholds=thresholds,
                                             budgets=(0, 1, 2, math.inf)), progress=False)
    want, got = _part_tables(before), _part_tables(after, OLD_COLUMNS)
    assert list(want) == list(got) == ["part-00000", "part-00001"]
    for name in want:
        assert got[name].equals(want[name].select(OLD_COLUMNS))
    rows = pq.read_table(after / "cross_samples").to_pandas()
    assert (rows.criterion == "js").all() and (rows.mix_weight == 1.0).all() and rows.rate.isna().all()
    assert rows.control_seed.isna().all() and rows.match_criterion.isna().all() and rows.run_id.nunique() == 1


def _run_with(out, **settings):
    build_manifest = cs.load_build(out)
    config = cs.resolve(cs.CrossSampleConfig(out=str(out), **settings), build_manifest)
    run = cs.load_run(config, build_manifest, progress=False)
    return run


def _stat(stats, criterion, direction):
    """The teacher-forced scorer's column that a criterion compares, with the driver first."""
    driver, other = ("base", "rl") if direction == "forward" else ("rl", "base")
    return {"kl": f"kl_{driver}_{other}", "kl_reverse": f"kl_{other}_{driver}", "entropy": f"entropy_{driver}",
            "js": "js"}[criterion]


@pytest.mark.parametrize("criterion", ["kl", "kl_reverse", "entropy", "top1_differs"])
@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_every_selected_position_satisfies_its_criterion_when_rescored(crossed, criterion, direction):
    """Each intervention, re-scored teacher-forced by the scorer, meets the criterion; with budget inf every
    position that clearly meets it was taken."""
    tokens = pq.read_table(crossed / "tokens").to_pandas()
    th = None
    if criterion != "top1_differs":
        column = _stat({}, criterion, direction)
        th = round(float(np.quantile(tokens[column].astype(float), 0.6)), 5)
    run = _run_with(crossed, criterion=criterion, thresholds=None if th is None else (th,),
                    budgets=(0, 2, math.inf), direction=direction)
    _, driver, other = run.roles(direction)
    decoder = cs.PairDecoder(run, driver, other)
    _, ids = _prompt_ids(run, crossed, 0)
    prefixes = [p for p in ids for _ in range(2)]
    results = cs.threshold_runs(run, decoder, prefixes, 321, "test")
    assert set(results) == {(th, b) for b in (0.0, 2.0, math.inf)}
    tol, taken, fired = 1e-4, 0, 0
    for (_, budget), decoded in results.items():
        for prefix, d in zip(prefixes, decoded, strict=True):
            stats = score.score_pair(run.base, {"rl": run.rl}, prefix, d.token_ids, len(run.tokenizer))["rl"]
            if criterion == "top1_differs":
                meets = (stats["top1_base"] != stats["top1_rl"]).tolist()
                clearly = meets
            else:
                value = stats[_stat(stats, criterion, direction)].double()
                assert torch.allclose(torch.tensor(d.scores, dtype=torch.float64), value, atol=tol)
                meets = (value >= th - tol).tolist()
                clearly = (value >= th + tol).tolist()
            assert len(d.interventions) <= budget
            assert all(meets[p] for p in d.interventions)
            taken += len(d.interventions)
            if math.isinf(budget):
                assert {p for p, ok in enumerate(clearly) if ok} <= set(d.interventions)
                fired += sum(clearly)
    assert taken > 0 and fired > 0


def _decode_args(run, direction="forward"):
    _, driver, other = run.roles(direction)
    decoder = cs.PairDecoder(run, driver, other)
    return driver, other, decoder


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_mix_weight_one_is_the_swap_and_near_zero_is_the_driver(crossed, temperature):
    run = _run_with(crossed)
    driver, other, decoder = _decode_args(run)
    _, ids = _prompt_ids(run, crossed, 0)
    prefixes = [p for p in ids for _ in range(3)]
    sampling = generate.SamplingConfig(MAX_NEW, temperature, 1.0, 8)
    n = len(prefixes)

    def decode(**kw):
        return setting_decode(driver, other, prefixes, [MAX_NEW] * n, sampling, decoder.stop_ids, decoder.pad_id,
                            len(run.tokenizer), torch.Generator().manual_seed(11), **kw)

    alone = decode()
    swap = decode(threshold=0.0, caps=[math.inf] * n)
    one = decode(threshold=0.0, caps=[math.inf] * n, mix_weight=1.0)
    tiny = decode(threshold=0.0, caps=[math.inf] * n, mix_weight=1e-9)
    assert [d.token_ids for d in one] == [d.token_ids for d in swap]
    assert [d.token_ids for d in swap] != [d.token_ids for d in alone]  # the other model does change answers
    assert [d.token_ids for d in tiny] == [d.token_ids for d in alone]
    assert all(d.interventions == list(range(len(d.token_ids))) for d in tiny)  # every position was a mix draw


def test_random_match_realises_the_matched_fraction(tmp_path, crossed, thresholds):
    """random --match js: each answer's rate is the js answer's realised fraction, and the controls' realised
    fractions match the js ones within sampling error (pooled over settings, answers and 3 control seeds)."""
    out = tmp_path / "b"
    shutil.copytree(crossed, out)
    cs.run_cross_sample(cs.CrossSampleConfig(out=str(out), criterion="random", match="js", control_seeds=3),
                        progress=False)
    rows = pq.read_table(out / "cross_samples").to_pandas()
    js, rnd = rows[rows.criterion == "js"], rows[rows.criterion == "random"]
    assert (rnd.match_criterion == "js").all() and sorted(rnd.control_seed.unique()) == [0, 1, 2]
    keys = ["direction", "threshold", "budget", "problem_id", "sample_index"]
    paired = rnd.merge(js[keys + ["intervention_fraction"]], on=keys, suffixes=("", "_js"), validate="many_to_one")
    assert len(paired) == len(rnd) == 3 * len(js)
    assert (paired.rate == paired.intervention_fraction_js).all()
    assert rows.cross_id.is_unique
    realised, target = paired.intervention_fraction.to_numpy(), paired.rate.to_numpy()
    # sum of n·fraction is a sum of Bernoulli(rate) draws: variance sum(n·rate·(1 − rate)) over answers
    n = paired.n_tokens.to_numpy()
    diff = float((n * realised).sum() - (n * target).sum())
    sd = math.sqrt(float((n * target * (1 - target)).sum()))
    assert target.sum() > 0 and abs(diff) <= 4 * sd + 1
    assert (paired[paired.rate == 0].n_interventions == 0).all()


def _table(out, run_id=None):
    rows = pq.read_table(out / "cross_samples").to_pandas()
    if run_id is not None:
        rows = rows[rows.run_id == run_id]
    return rows.sort_values("cross_id").reset_index(drop=True)


def test_two_runs_coexist_and_each_resumes_after_a_kill(tmp_path, build, crossed, thresholds, monkeypatch):
    from tokenshift.schemas.validate import validate_build

    js = cs.CrossSampleConfig(out="", thresholds=thresholds, budgets=(0, 1, 2, math.inf))
    kl = cs.CrossSampleConfig(out="", criterion="kl", thresholds=(0.05,), budgets=(0, 2), mix_weight=0.5)
    straight = tmp_path / "straight"
    shutil.copytree(crossed, straight)  # the js run, finished
    cs.run_cross_sample(dataclasses.replace(kl, out=str(straight)), progress=False)
    out = tmp_path / "b"
    shutil.copytree(build, out)
    real = cs.shard_rows
    at = lambda c: dataclasses.replace(c, out=str(out))  # noqa: E731
    for config in (js, kl):  # each killed after its first shard
        monkeypatch.setattr(cs, "shard_rows", dies_on_call(real, 2))
        with pytest.raises(KeyboardInterrupt):
            cs.run_cross_sample(at(config), progress=False)
    assert "cross_sampling_runs" not in json.loads((out / "manifest.json").read_text())
    monkeypatch.setattr(cs, "shard_rows", real)
    for config in (kl, js):
        cs.run_cross_sample(at(config), progress=False)
    assert _table(out).equals(_table(straight))
    recorded = json.loads((out / "manifest.json").read_text())
    runs = {r["run_id"]: r for r in recorded["cross_sampling_runs"]}
    ids = {c.criterion: cs.resolve(at(c), recorded).run_id() for c in (js, kl)}
    assert set(runs) == set(ids.values()) and runs[ids["kl"]]["command"].endswith("--criterion kl --mix-weight 0.5")
    assert sum(r["rows"] for r in runs.values()) == recorded["tables"]["cross_samples"]["rows"]
    assert validate_build(out).ok
    before = _snapshot(out)  # the very same settings again: nothing changes
    cs.run_cross_sample(at(kl), progress=False)
    assert _snapshot(out) == before
    js_parts = {p.name: p.read_bytes() for p in (out / "cross_samples").glob(f"*-{ids['js']}.parquet")}
    kl_table = _table(out, ids["kl"])
    cs.run_cross_sample(at(kl), overwrite=True, progress=False)  # replaces only the kl run
    assert {p.name: p.read_bytes() for p in (out / "cross_samples").glob(f"*-{ids['js']}.parquet")} == js_parts
    assert _table(out, ids["kl"]).equals(kl_table)
    with pytest.raises(TokenshiftError, match=r"another config \(budgets: .*--overwrite"):
        cs.run_cross_sample(dataclasses.replace(at(kl), budgets=(0, 1)), progress=False)


@pytest.mark.parametrize("args, message", [
    (["--criterion", "bogus"], "unknown --criterion 'bogus': use js, kl, kl_reverse, entropy, delta_logp, top1_differs, all, random"),
    (["--mix-weight", "0"], "--mix-weight must be in (0, 1] (got 0.0)"),
    (["--mix-weight", "1.5"], "--mix-weight must be in (0, 1] (got 1.5)"),
    (["--mix-weight", "nan"], "--mix-weight must be in (0, 1]"),
    (["--criterion", "random", "--rate", "1.5"], "--rate must be in [0, 1] (got 1.5)"),
    (["--criterion", "random", "--rate", "-0.1"], "--rate must be in [0, 1] (got -0.1)"),
    (["--criterion", "random"], "needs exactly one of --rate P"),
    (["--criterion", "random", "--rate", "0.1", "--match", "js"], "needs exactly one of --rate P"),
    (["--criterion", "random", "--match", "entropy"], "has no finished --criterion entropy run"),
    (["--criterion", "random", "--match", "random"], "unknown --match 'random'"),
    (["--criterion", "random", "--match", "js", "--budgets", "0,1"], "--budgets does not apply to --match"),
    (["--rate", "0.1"], "--rate applies to --criterion random only"),
    (["--control-seeds", "3"], "--control-seeds applies to --criterion random only"),
    (["--criterion", "top1_differs", "--thresholds", "0.1"], "--thresholds does not apply to --criterion top1_differs"),
    (["--criterion", "kl", "--thresholds", "-1"], "--thresholds must be in >= 0 nats for --criterion kl"),
    (["--criterion", "entropy", "--thresholds", "99"], "--thresholds must be in [0, ln V"),
    (["--criterion", "kl", "--protocol", "resample", "--budgets", "0,1"], "--protocol resample selects by JS"),
])
def test_bad_criterion_weight_or_rate_is_a_one_line_error_and_writes_nothing(crossed, args, message):
    assert_refused_in_one_line(crossed, args, message)
