"""The signed criterion delta_logp, log-space mixing (extrapolation) and criterion 'all' on a tiny random pair."""
# ruff: noqa: F811  (pytest fixtures imported from test_cross_sample are parameters here, by design)

import math
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from oracle_decode import setting_decode
from reference_code import run_reference_cross_sample
from test_cross_criteria import _run_with
from test_cross_sample import (  # noqa: F401
    MAX_NEW,
    _prompt_ids,
    assert_refused_in_one_line,
    build,
    crossed,
    pair,
    thresholds,
)

import tokenshift.builders.cross_sampling.runner as cs
from tokenshift.builders.decoding.mixing import log_mix, log_mix_logits
from tokenshift.builders.decoding.sampling import sampling_probs, warpers
from tokenshift.builders.engines import generate
from tokenshift.builders.scoring import score

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REFERENCE_COMMIT = "22efd2d"  # main before delta_logp and log-space mixing: its rows are "today's rows"


def _delta_quantile(build, direction: str, q: float) -> float:
    """A quantile of log p_other(t) − log p_driver(t) over the build's answers of the direction's driver
    (teacher-forced by the build's scorer, against the run's RL model)."""
    rl = cs.resolve(cs.CrossSampleConfig(out=str(build)), cs.load_build(build)).rl_model
    tokens = pq.read_table(build / "tokens", columns=["sampler", "rl_model", "logp_base", "logp_rl"]).to_pandas()
    rows = tokens[(tokens.rl_model == rl) & (tokens.sampler == ("base" if direction == "forward" else rl))]
    delta = rows.logp_rl - rows.logp_base if direction == "forward" else rows.logp_base - rows.logp_rl
    return round(float(np.quantile(delta.astype(float), q)), 5)


@pytest.mark.parametrize("sign, q", [("le", 0.3), ("ge", 0.7)])
@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_delta_logp_interventions_satisfy_their_criterion_when_rescored(crossed, sign, q, direction):
    """With log-space W = 0 an intervention keeps the driver's own token, so the answer is the driver's and the
    teacher-forced scorer's Δlog p of each token is the one the criterion saw: every intervention meets it,
    and with budget inf every position that clearly meets it was taken. With W = 1 (the swap) the recorded
    scores equal the teacher-forced Δ at every position the driver's token was kept."""
    th = _delta_quantile(crossed, direction, q)
    tol, fired = 1e-4, 0
    for weight in (0.0, 1.0):
        run = _run_with(crossed, criterion="delta_logp", sign=sign, thresholds=(th,), budgets=(0, 2, math.inf),
                        direction=direction, mix_space="log", mix_weight=weight)
        _, driver, other = run.roles(direction)
        decoder = cs.PairDecoder(run, driver, other)
        _, ids = _prompt_ids(run, crossed, 0)
        prefixes = [p for p in ids for _ in range(2)]
        results = cs.threshold_runs(run, decoder, prefixes, 321, "test")
        alone = results[(th, 0.0)]
        for (_, budget), decoded in results.items():
            for prefix, d, a in zip(prefixes, decoded, alone, strict=True):
                stats = score.score_pair(run.base, {"rl": run.rl}, prefix, d.token_ids, len(run.tokenizer))["rl"]
                delta = (stats["logp_rl"] - stats["logp_base"]).double()
                if direction == "reverse":
                    delta = -delta
                recorded = torch.tensor(d.scores, dtype=torch.float64)
                kept = [p for p in range(len(d.token_ids)) if p not in d.interventions or weight == 0.0]
                assert torch.allclose(recorded[kept], delta[kept], atol=tol)
                assert len(d.interventions) <= budget
                if weight == 0.0:
                    assert d.token_ids == a.token_ids  # W = 0: the driver's answer
                    meets = (delta <= th + tol) if sign == "le" else (delta >= th - tol)
                    clearly = (delta <= th - tol) if sign == "le" else (delta >= th + tol)
                    assert all(meets[p] for p in d.interventions)
                    if math.isinf(budget):
                        assert {p for p, ok in enumerate(clearly.tolist()) if ok} <= set(d.interventions)
                        fired += int(clearly.sum())
    assert fired > 0


def _decoder(crossed, **settings):
    run = _run_with(crossed, **settings)
    _, driver, other = run.roles("forward")
    decoder = cs.PairDecoder(run, driver, other)
    _, ids = _prompt_ids(run, crossed, 0)
    prefixes = [p for p in ids for _ in range(3)]
    return run, driver, other, decoder, prefixes


@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (0.7, 0.9), (0.0, 1.0)])
def test_log_space_w1_is_the_swap_and_w0_is_the_driver(crossed, temperature, top_p):
    """criterion 'all' at budget inf: log-space W = 1 takes the other model's token exactly as the swap does,
    W = 0 gives the driver's run, W = 1.5 changes answers (every position was an intervention in each)."""
    run, driver, other, decoder, prefixes = _decoder(crossed)
    sampling = generate.SamplingConfig(MAX_NEW, temperature, top_p, 8)
    n = len(prefixes)

    def decode(**kw):
        return [d.token_ids for d in setting_decode(driver, other, prefixes, [MAX_NEW] * n, sampling, decoder.stop_ids,
                                                  decoder.pad_id, len(run.tokenizer), torch.Generator().manual_seed(5),
                                                  **kw)]

    every = dict(criterion="all", threshold=0.5, caps=[math.inf] * n)
    alone = decode()
    swap = decode(**every)
    assert swap != alone
    assert decode(mix_space="log", mix_weight=1.0, **every) == swap
    assert decode(mix_space="log", mix_weight=0.0, **every) == alone
    assert decode(mix_space="log", mix_weight=1.5, **every) != alone


def _np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.mark.parametrize("weight", [-0.5, 0.3, 1.05, 1.5, 3.0])
def test_log_mix_equals_an_independent_numpy_computation(weight):
    """softmax((1 − W) log p_d + W log p_o) after temperature, in float64 numpy; ids the other model lacks get 0."""
    g = torch.Generator().manual_seed(0)
    logits_d = torch.randn(4, 12, generator=g) * 3
    logits_o = torch.randn(4, 10, generator=g) * 3  # the other model's head is 2 ids narrower
    mixed = log_mix_logits(logits_d, logits_o, weight)
    lp_d, lp_o = _np_log_softmax(logits_d.double().numpy()), _np_log_softmax(logits_o.double().numpy())
    want = (1 - weight) * lp_d[:, :10] + weight * lp_o
    assert torch.isinf(mixed[:, 10:]).all() and (mixed[:, 10:] < 0).all()
    assert np.allclose(mixed[:, :10].double().numpy(), want, atol=1e-4)
    sampling = generate.SamplingConfig(MAX_NEW, 0.7, 1.0, 8)
    noise = torch.empty(4, 12).exponential_(1, generator=g)
    got = log_mix(logits_d, logits_o, weight, sampling, warpers(sampling), False, noise)
    p = np.exp(_np_log_softmax(want / 0.7))
    assert got.tolist() == np.argmax(p / noise[:, :10].double().numpy(), -1).tolist()
    assert torch.equal(sampling_probs(mixed, sampling, warpers(sampling))[:, 10:], torch.zeros(4, 2))


@pytest.mark.parametrize("settings", [
    "criterion='kl', thresholds=(0.01, 0.05), budgets=(0, 1, inf), mix_weight=0.5",
    "thresholds=(0.0, 0.01), budgets=(0, 2, inf), direction='reverse'",
])
def test_prob_space_rows_are_byte_identical_to_the_reference_commit(tmp_path, build, settings):
    """Today's code before these criteria and today's code write equal values in every column they share (run_id
    and cross_id included: a prob-space run keeps its identity); the new columns are sign null, mix_space 'prob'."""
    before, after = tmp_path / "old" / "b", tmp_path / "new" / "b"
    shutil.copytree(build, before)
    shutil.copytree(build, after)
    run_reference_cross_sample(REFERENCE_COMMIT, tmp_path, before, settings)
    config = eval(f"dict({settings})", {"inf": math.inf})  # noqa: S307 (the test's own literal)
    cs.run_cross_sample(cs.CrossSampleConfig(out=str(after), **config), progress=False)
    old_parts = sorted((before / "cross_samples").glob("*.parquet"))
    new_parts = sorted((after / "cross_samples").glob("*.parquet"))
    assert [p.name for p in old_parts] == [p.name for p in new_parts] and old_parts
    for o, n in zip(old_parts, new_parts, strict=True):
        want, got = pq.read_table(o), pq.read_table(n)
        assert [c for c in want.column_names if not got.column(c).equals(want.column(c))] == []
        assert set(got.column_names) - set(want.column_names) == {"sign", "mix_space"}
        assert got.column("sign").null_count == got.num_rows
        assert set(got.column("mix_space").to_pylist()) == {"prob"}


def test_delta_logp_log_space_run_records_its_settings_and_validates(tmp_path, build):
    """A delta_logp --sign ge run with --mix-space log W = 1.25 and an 'all' run beside it: the settings are in
    the columns, the cross_ids, the run identity and the command; a random control matches the delta_logp run;
    the table validates (negative thresholds and W > 1 are valid there)."""
    from tokenshift.schemas.validate import validate_build

    out = tmp_path / "b"
    shutil.copytree(build, out)
    delta = dict(criterion="delta_logp", sign="ge", thresholds=(-0.01, 0.02), budgets=(0, 2), mix_space="log",
                 mix_weight=1.25)
    cs.run_cross_sample(cs.CrossSampleConfig(out=str(out), **delta), progress=False)
    cs.run_cross_sample(cs.CrossSampleConfig(out=str(out), criterion="all", thresholds=None, budgets=(1,),
                                             mix_space="log", mix_weight=1.0), progress=False)
    cs.run_cross_sample(cs.CrossSampleConfig(out=str(out), criterion="random", match="delta_logp", sign="ge",
                                             mix_space="log", mix_weight=1.25), progress=False)
    rows = pq.read_table(out / "cross_samples").to_pandas()
    d = rows[rows.criterion == "delta_logp"]
    assert (d.sign == "ge").all() and (d.mix_space == "log").all() and (d.mix_weight == 1.25).all()
    assert set(d.threshold) == {-0.01, 0.02}
    assert d.cross_id.str.startswith("delta_logp/ge/logw1.25/threshold/").all()
    a = rows[rows.criterion == "all"]
    assert a.threshold.isna().all() and a.sign.isna().all() and (a.n_interventions == a.n_tokens.clip(upper=1)).all()
    assert a.cross_id.str.startswith("all/logw1/threshold/").all()
    r = rows[rows.criterion == "random"]
    assert (r.match_criterion == "delta_logp").all() and (r.sign == "ge").all()
    assert set(r.threshold) == {-0.01, 0.02}
    assert rows.cross_id.is_unique
    import json

    recorded = {r["run_id"]: r for r in json.loads((out / "manifest.json").read_text())["cross_sampling_runs"]}
    command = next(r["command"] for r in recorded.values() if r["run_id"].startswith("delta_logp-"))
    assert "--sign ge" in command and "--mix-space log" in command and "--mix-weight 1.25" in command
    report = validate_build(out)
    assert report.ok, report


def test_default_sign_and_thresholds_and_identity(build):
    """delta_logp resolves to --sign le and its default thresholds; sign and mix space change the run_id only
    when set (a js run keeps its identity)."""
    manifest = cs.load_build(build)
    resolved = cs.resolve(cs.CrossSampleConfig(out=str(build), criterion="delta_logp"), manifest)
    assert resolved.sign == "le" and resolved.thresholds == (-1.0, -0.3, -0.1)
    ge = cs.resolve(cs.CrossSampleConfig(out=str(build), criterion="delta_logp", sign="ge"), manifest)
    assert ge.thresholds == (0.1, 0.3, 1.0) and ge.run_id() != resolved.run_id()
    js = cs.CrossSampleConfig(out=str(build))
    assert "sign" not in js.identity() and "mix_space" not in js.identity()
    log = cs.CrossSampleConfig(out=str(build), mix_space="log")
    assert log.identity()["mix_space"] == "log" and log.run_id() != js.run_id()


@pytest.mark.parametrize("args, message", [
    (["--sign", "le"], "--sign applies to --criterion delta_logp only (got --criterion js)"),
    (["--criterion", "kl", "--sign", "ge"], "--sign applies to --criterion delta_logp only (got --criterion kl)"),
    (["--mix-weight", "1.5"], "--mix-weight must be in (0, 1] (got 1.5)"),
    (["--mix-weight", "-0.5"], "--mix-weight must be in (0, 1] (got -0.5)"),
    (["--mix-space", "log", "--mix-weight", "inf"], "--mix-weight must be a finite number with --mix-space log"),
    (["--mix-space", "log", "--mix-weight", "nan"], "--mix-weight must be a finite number with --mix-space log"),
    (["--criterion", "delta_logp", "--thresholds", "-inf"], "--thresholds must be finite nats of delta log p"),
    (["--criterion", "all", "--thresholds", "0.1"], "--thresholds does not apply to --criterion all"),
    (["--criterion", "random", "--match", "delta_logp"], "has no finished --criterion delta_logp --sign le run"),
])
def test_bad_sign_space_or_weight_is_a_one_line_error_and_writes_nothing(crossed, args, message):
    assert_refused_in_one_line(crossed, args, message)
