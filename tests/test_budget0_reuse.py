"""Budget 0 read from the build's answers: the same bytes as decoding it, fewer decoded tokens, off when it must be."""
# ruff: noqa: F811  (pytest fixtures imported from test_cross_sample are parameters here, by design)

import dataclasses
import json
import math
import shutil

import pyarrow.parquet as pq
import pytest
import torch
from oracle_decode import decode_batch, tree_decode
from test_cross_sample import QUESTIONS, pair  # noqa: F401
from test_shared_prefix import _parts, loaded  # noqa: F401

import tokenshift.builders.cross_sampling.runner as cs
from tokenshift.builders import plan
from tokenshift.builders.cross_sampling import build_answers
from tokenshift.builders.cross_sampling import rows as cross_rows
from tokenshift.builders.cross_sampling.build_answers import Known
from tokenshift.builders.cross_sampling.protocols import PairDecoder, selections, setting_runs
from tokenshift.builders.decoding.decoder import Member
from tokenshift.builders.engines import generate
from tokenshift.builders.pipeline.build import BuildConfig, run_build
from tokenshift.runtime.meter import metering
from tokenshift.runtime.seeds import derive_seed

pytestmark = pytest.mark.usefixtures("one_torch_thread")
STOPS = list(range(2, 40))  # many stop tokens: answers end at different steps, so draws per batch differ
MAX_NEW = 10
BUDGETS = (0, 1, 2, math.inf)


@pytest.fixture(scope="module", params=[1.0, 0.0], ids=["sampled", "greedy"])
def build(request, tmp_path_factory, pair):
    """A build of 2 shards x 4 answers in batches of 3 (a batch of 3, then 1) with many stop tokens."""
    root = tmp_path_factory.mktemp("reuse")
    for model_dir in (pair[0], *pair[1]):
        path = root / "pair" / model_dir.name
        shutil.copytree(model_dir, path)
        config = json.loads((path / "generation_config.json").read_text())
        (path / "generation_config.json").write_text(json.dumps({**config, "eos_token_id": STOPS}))
    bench = root / "bench.jsonl"
    bench.write_text("".join(json.dumps({"question": q, "answer": str(i)}) + "\n" for i, q in enumerate(QUESTIONS)))
    config = BuildConfig(out=str(root / "b"), base=str(root / "pair" / "base"), rl=(str(root / "pair" / "rl"),),
                         benchmark=str(bench), samples=2, max_new_tokens=MAX_NEW, shard_size=2, batch_size=3,
                         temperature=request.param, use_chat_template=False)
    return run_build(config, progress=False)


@pytest.fixture(scope="module")
def thresholds(build):
    js = pq.read_table(build / "tokens", columns=["js"]).column("js").to_numpy()
    return tuple(round(float(q), 5) for q in torch.quantile(torch.tensor(js), torch.tensor([0.3, 0.7])))


def _cross(build, tmp_path, name, **kw):
    """run_cross_sample on a copy of the build: (its folder, decoded tokens counted by the plan's meter)."""
    out = tmp_path / name / "b"
    shutil.copytree(build, out)
    with metering(plan.Plan("cross-sample", (), 0, 1, 0, 0), lambda _line: None, progress=False) as meter:
        cs.run_cross_sample(cs.CrossSampleConfig(out=str(out), **kw), progress=False)
    return out, meter.decoded


def _shard(build, config_kw, shard):
    """A loaded run and one shard of the build: (run, prompts, jobs, prefixes)."""
    manifest = cs.load_build(build)
    config = cs.resolve(cs.CrossSampleConfig(out=str(build), **config_kw), manifest)
    run = cs.load_run(config, manifest, progress=False)
    prompts = pq.read_table(build / "prompts" / f"part-{shard:05d}.parquet").to_pylist()
    jobs = [(i, s) for i in range(len(prompts)) for s in range(config.samples)]
    ids = [run.tokenizer(p["prompt"], add_special_tokens=False)["input_ids"] for p in prompts]
    return run, prompts, jobs, [ids[i] for i, _ in jobs]


def _rows(decoded):
    """What a cross_samples row holds of a decoded row (a reused row's js and scores cover its decoded part)."""
    return [(d.token_ids, d.finish_reason, d.interventions) for d in decoded]


def test_reuse_writes_the_reference_bytes_and_decodes_less(build, thresholds, tmp_path, capfd):
    """The default tree with budget 0 read from the build writes the bytes --max-branches 1 writes and decodes
    fewer tokens than the same tree decoding budget 0."""
    kw = dict(thresholds=thresholds, budgets=BUDGETS)
    reference, decoded_ref = _cross(build, tmp_path, "reference", max_branches=1, **kw)
    reused, decoded_reused = _cross(build, tmp_path, "reused", **kw)
    assert _parts(reused) == _parts(reference)
    assert "not reproduced" not in capfd.readouterr().err
    assert 0 < decoded_reused < decoded_ref


def test_saving_is_the_reused_rows_remaining_tokens(build, thresholds):
    """One tree holds every setting: row j's trunk is the driver alone's once the last other setting left it,
    at the first position where that setting's answer differs from budget 0's; every token after is saved."""
    total = 0
    for shard in (0, 1):
        run, prompts, jobs, prefixes = _shard(build, dict(thresholds=thresholds, budgets=BUDGETS), shard)
        for direction in ("forward", "reverse"):
            name, driver, other = run.roles(direction)
            known = build_answers.shard_answers(run, shard, prompts, jobs, [name])[name]
            assert isinstance(known, tuple) and len(known) == len(jobs)
            seed = derive_seed(run.config.seed, shard, name)
            counted, results = [], []
            for answers in (None, known):
                with metering(plan.Plan("cross-sample", (), 0, 1, 0, 0), lambda _line: None,
                                   progress=False) as meter:
                    results.append(setting_runs(run, PairDecoder(run, driver, other), prefixes, seed, direction,
                                                selections(run.config), answers))
                counted.append(meter.decoded)
            assert [_rows(v) for v in results[0].values()] == [_rows(v) for v in results[1].values()]
            zero = next(rows for (_sel, budget), rows in results[0].items() if budget == 0)
            assert _rows(zero) == [(list(k.token_ids), k.finish_reason, []) for k in known]
            saving = 0
            for j, alone in enumerate(zero):
                left = []  # the step at which each other setting left the trunk (its length when it never did)
                for (_sel, budget), rows in results[0].items():
                    if budget > 0:
                        mine = rows[j].token_ids
                        left.append(next((t for t, (a, b) in enumerate(zip(mine, alone.token_ids)) if a != b),
                                         len(mine)))
                saving += max(0, len(alone.token_ids) - (max(left) + 1))
            assert counted[0] - counted[1] == saving
            total += saving
    assert total > 0


def test_budget_zero_alone_decodes_nothing(build, tmp_path, monkeypatch):
    """--budgets 0: no token decoded and no forward pass, the bytes the reference decodes; the generator moves
    as the driver alone's would (else the second batch of each shard would differ)."""
    reference, decoded_ref = _cross(build, tmp_path, "reference", max_branches=1, budgets=(0,))
    calls = []
    hook = torch.nn.modules.module.register_module_forward_pre_hook(lambda *_args: calls.append(1))
    try:
        reused, decoded = _cross(build, tmp_path, "reused", budgets=(0,))
    finally:
        hook.remove()
    assert decoded == 0 and not calls and decoded_ref > 0
    assert _parts(reused) == _parts(reference)
    # the last answer of each shard unknown: its batch (the second) decodes from where the first left the generator
    real = build_answers.shard_answers
    monkeypatch.setattr(build_answers, "shard_answers",
                        lambda *a: {k: v[:-1] + (None,) for k, v in real(*a).items()})
    partly, decoded = _cross(build, tmp_path, "partly", budgets=(0,))
    assert 0 < decoded < decoded_ref and _parts(partly) == _parts(reference)


@pytest.mark.parametrize("change, reason", [(dict(seed=1), "--seed 1 is not the build's 0"),
                                            (dict(samples=1), "--samples 1 is not the build's 2"),
                                            (dict(max_branches=1), "--max-branches 1 decodes every setting")])
def test_other_seed_samples_or_reference_path_decode_budget_zero(build, tmp_path, monkeypatch, change, reason):
    """Not the build's stream: the plan says why, the build's answers are not read, the run decodes exactly what
    it decodes with reuse turned off."""
    from click.testing import CliRunner

    from tokenshift.cli import cli

    args = [f"--{k.replace('_', '-')}={v}" for k, v in change.items()]
    result = CliRunner().invoke(cli, ["cross-sample", str(build), "--plan", "--budgets", "0,1", *args])
    assert result.exit_code == 0, result.output
    assert f"budget 0 (the driver alone): decoded, not read from the build: {reason}" in result.output
    read = []
    monkeypatch.setattr(build_answers, "shard_answers", lambda *a: read.append(a) or {})
    _, decoded = _cross(build, tmp_path, "changed", budgets=(0, 1), **change)
    monkeypatch.setattr(cross_rows, "known_answers", lambda *_a: {})
    _, decoded_off = _cross(build, tmp_path, "off", budgets=(0, 1), **change)
    assert not read and decoded == decoded_off > 0


def test_plan_says_budget_zero_is_read_from_the_build(build):
    from click.testing import CliRunner

    from tokenshift.cli import cli

    result = CliRunner().invoke(cli, ["cross-sample", str(build), "--plan"])
    assert result.exit_code == 0 and "budget 0 (the driver alone): read from the build's answers" in result.output
    resample = CliRunner().invoke(cli, ["cross-sample", str(build), "--plan", "--protocol", "resample", "--budgets", "0,2"])
    assert "decoded, not read from the build: the resample protocol needs JS" in resample.output


def test_why_decoded_names_each_condition(build):
    manifest = cs.load_build(build)
    bconfig = BuildConfig.from_manifest(manifest)
    config = cs.resolve(cs.CrossSampleConfig(out=str(build)), manifest)
    assert build_answers.why_decoded(config, bconfig) is None
    assert "--engine vllm" in build_answers.why_decoded(config, dataclasses.replace(bconfig, engine="vllm"))


def test_a_build_answer_that_is_not_reproduced_is_decoded_and_said(build, thresholds, tmp_path, monkeypatch, capfd):
    """The build's answers altered in memory (at their first token, which the tree always decodes) are caught
    as the trunk decodes them: that batch is decoded again, and the rest without them, the bytes are the
    reference's, and the run says so once; a tokens part altered on disk is caught by the manifest's sha256."""
    kw = dict(thresholds=thresholds, budgets=BUDGETS)
    reference, _ = _cross(build, tmp_path, "reference", max_branches=1, **kw)
    capfd.readouterr()
    real = build_answers.shard_answers

    def first(k):  # another first token that keeps the answer one the decoder could give (its stop token last)
        return next(t for t in (STOPS if len(k.token_ids) == 1 else range(40, 300)) if t != k.token_ids[0])

    def altered(*args):  # every answer's first token changed (rows the tree leaves to the driver early, too)
        return {name: tuple(Known((first(k), *k.token_ids[1:]), k.finish_reason) for k in answers)
                for name, answers in real(*args).items()}

    monkeypatch.setattr(build_answers, "shard_answers", altered)
    out, _ = _cross(build, tmp_path, "altered", **kw)
    assert _parts(out) == _parts(reference)
    err = capfd.readouterr().err
    assert err.count("the build's answers were not reproduced (first in ") == 1, err
    monkeypatch.setattr(build_answers, "shard_answers", real)
    damaged = tmp_path / "damaged"
    shutil.copytree(build, damaged)
    part = damaged / "tokens" / "part-00001.parquet"
    pq.write_table(pq.read_table(part), part, compression="gzip")  # the same rows, other bytes
    out, _ = _cross(damaged, tmp_path, "damaged", **kw)
    assert _parts(out) == _parts(reference)
    assert "does not match the sha256 recorded" in capfd.readouterr().err


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_tree_with_known_answers_equals_the_full_decode_and_leaves_its_generator_state(loaded, temperature):
    """The decoder with the driver's answers known: every row equal to decode_batch's, and the generator where
    the driver alone leaves it, both when other settings outlive the trunk and when the trunk is all there is."""
    b, r, tok, prefixes = loaded
    n = len(prefixes)
    sampling = generate.SamplingConfig(14, temperature, 1.0, 16)
    stop = set(STOPS)
    reference = torch.Generator().manual_seed(3)
    alone = decode_batch(b, r, prefixes, [14] * n, sampling, stop, tok.pad_token_id, len(tok), reference)
    assert len({len(d.token_ids) for d in alone}) > 1
    known = [Known(tuple(d.token_ids), d.finish_reason) for d in alone]
    for members in ([Member(0.0), Member(1.0, 0.0), Member(math.inf, 0.3)], [Member(0.0)], [Member(0.0), Member(0.0)]):
        generator = torch.Generator().manual_seed(3)
        got = tree_decode(b, r, prefixes, 14, sampling, stop, tok.pad_token_id, len(tok), generator, members,
                            state_of=0, known=known)
        for member, rows in zip(members, got, strict=True):
            want = decode_batch(b, r, prefixes, [14] * n, sampling, stop, tok.pad_token_id, len(tok),
                                torch.Generator().manual_seed(3), member.threshold, [member.cap] * n)
            assert _rows(rows) == _rows(want)
        assert torch.equal(generator.get_state(), reference.get_state())
    # answers that differ at their first token (which the tree always decodes) are decoded, not read
    wrong = [Known((next(t for t in range(40, 300) if t != k.token_ids[0]), *k.token_ids[1:]), k.finish_reason)
             for k in known]
    got = tree_decode(b, r, prefixes, 14, sampling, stop, tok.pad_token_id, len(tok), torch.Generator().manual_seed(3),
                        [Member(0.0), Member(1.0, 0.0)], state_of=0, known=wrong)
    assert _rows(got[0]) == _rows(alone)
    # one row whose other setting (the RL model's token everywhere) ends before the driver's answer: the tree
    # stops first, and the draws the driver alone still makes are made before the state is kept
    one = prefixes[:1]
    reference = torch.Generator().manual_seed(3)
    alone = decode_batch(b, r, one, [14], sampling, stop, tok.pad_token_id, len(tok), reference)
    rl = decode_batch(b, r, one, [14], sampling, stop, tok.pad_token_id, len(tok), torch.Generator().manual_seed(3),
                      0.0, [math.inf])
    assert temperature == 0 or len(rl[0].token_ids) < len(alone[0].token_ids)
    generator = torch.Generator().manual_seed(3)
    got = tree_decode(b, r, one, 14, sampling, stop, tok.pad_token_id, len(tok), generator,
                        [Member(0.0), Member(math.inf, 0.0)], state_of=0,
                        known=[Known(tuple(alone[0].token_ids), alone[0].finish_reason)])
    assert [_rows(rows) for rows in got] == [_rows(alone), _rows(rl)]
    assert torch.equal(generator.get_state(), reference.get_state())
