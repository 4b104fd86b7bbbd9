"""Cost plans: printed without loading a model, and their bounds hold against what a real run decodes and scores."""

import json
import math
import re
import shutil

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from tiny_pair import make_pair

import tokenshift.builders.cross_sampling.runner as cs
from tokenshift.builders.engines import models
from tokenshift.builders.pipeline.build import BuildConfig
from tokenshift.builders.plan import build_plan, cross_sample_plan, format_seconds
from tokenshift.cli import cli

QUESTIONS = ["Tom has 12 apples.", "He buys 7 more.", "What is 3 + 4?", "The answer is 19.", "12 + 7?"]
MAX_NEW, SAMPLES = 8, 2


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": str(i)}) + "\n" for i, q in enumerate(QUESTIONS)))
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory, bench):
    """A tiny two-RL build made through the CLI (plan printed first), and its output."""
    base, rls = make_pair(tmp_path_factory.mktemp("pair"), n_rl=2)
    out = tmp_path_factory.mktemp("build") / "b"
    args = ["build", "--out", str(out), "--base", str(base), *sum((["--rl", str(r)] for r in rls), []),
            "--benchmark", str(bench), "--samples", str(SAMPLES), "--max-new-tokens", str(MAX_NEW),
            "--shard-size", "2", "--no-chat-template", "--tokens-per-second", "100"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return out, result.output, args


def _no_models(monkeypatch):
    def refuse(*_args, **_kw):
        raise AssertionError("a plan must not load a model or tokenizer")

    monkeypatch.setattr(models, "load_model", refuse)
    monkeypatch.setattr(models, "load_tokenizer", refuse)


def test_build_plan_bounds_the_real_build(built):
    out, output, args = built
    generations = pq.read_table(out / "generations").to_pylist()
    n_tokens_rows = pq.read_table(out / "tokens", columns=["js"]).num_rows
    decoded = sum(g["n_tokens"] for g in generations)
    answers = len(QUESTIONS) * SAMPLES * 3  # base + 2 RL samplers
    plan = build_plan(BuildConfig(out=str(out) + "-fresh", base=args[4], rl=(args[6], args[8]),
                                  benchmark=args[10], samples=SAMPLES, max_new_tokens=MAX_NEW, shard_size=2,
                                  use_chat_template=False))
    assert plan.answers == len(generations) == answers
    assert plan.decoded_bound == answers * MAX_NEW >= decoded
    assert plan.scored_bound == answers * 2 * MAX_NEW >= n_tokens_rows == decoded * 2
    assert plan.shards == 3
    # the run printed the same plan first, then the measured speed and the decoded count
    lines = output.splitlines()
    assert lines[:len(plan.lines(100))] == plan.lines(100)
    assert re.search(r"first batch: [\d,]+ decoded tokens in [\d.]+ s = [\d,]+ tokens/s; at this speed", output)
    assert f"decoded {decoded:,} tokens (plan bound {plan.decoded_bound:,})" in output
    # a finished build has nothing pending; --overwrite counts everything again
    assert build_plan(BuildConfig(out=str(out), base=args[4], rl=(args[6], args[8]), benchmark=args[10],
                                  samples=SAMPLES, max_new_tokens=MAX_NEW, shard_size=2,
                                  use_chat_template=False)).answers == 0


def test_plans_load_no_model(monkeypatch, tmp_path, bench, built):
    _no_models(monkeypatch)
    result = CliRunner().invoke(cli, ["build", "--out", str(tmp_path / "o"), "--base", "/no/such/base", "--rl",
                                      "/no/such/rl", "--benchmark", str(bench), "--samples", "16",
                                      "--max-new-tokens", "8192", "--plan", "--tokens-per-second", "2000"])
    assert result.exit_code == 0, result.output
    answers = len(QUESTIONS) * 16 * 2
    assert f"answers: {answers:,}" in result.output
    assert f"decoded tokens: <= {answers * 8192:,}" in result.output
    assert f"<= {format_seconds(answers * 8192 / 2000)}" in result.output
    assert not (tmp_path / "o").exists()
    out = built[0]
    result = CliRunner().invoke(cli, ["cross-sample", str(out), "--plan", "--thresholds", "0.1,0.2",
                                      "--budgets", "0,1,inf", "--tokens-per-second", "50"])
    assert result.exit_code == 0, result.output
    assert "estimated wall time at 50 decoded tokens/s" in result.output
    assert not (out / "cross_samples").exists()
    result = CliRunner().invoke(cli, ["cross-sample", str(out), "--plan", "--tokens-per-second", "0"])
    assert result.exit_code == 2 and "--tokens-per-second must be > 0" in result.output


@pytest.mark.parametrize("kw, passes", [
    # driver alone + 2 thresholds x 3 caps that differ from the previous (1, 2, inf)
    (dict(thresholds=(0.0, 0.3), budgets=(0, 1, 2, math.inf)), 7),
    # caps floor(b x 8) = 0, 0, 0, 4: one decode beyond the driver alone
    (dict(thresholds=(0.0,), budgets=(0, 0.1, 0.12, 0.5), budget_unit="fraction", direction="forward"), 2),
    # steps 0, 1, 2
    (dict(protocol="resample", thresholds=(), budgets=(0, 1, 2), direction="reverse"), 3),
])
def test_cross_sample_plan_bounds_the_decoded_tokens(tmp_path, built, monkeypatch, kw, passes):
    out = tmp_path / "b"
    shutil.copytree(built[0], out)
    config = cs.CrossSampleConfig(out=str(out), **kw)
    plan = cross_sample_plan(config)
    counted = []  # rows of every forward pass of the loaded models: one next-token distribution each
    real = models.load_model

    def load(*args, **kwargs):
        model = real(*args, **kwargs)
        model.register_forward_pre_hook(lambda _m, _a, kw: counted.append(kw["input_ids"].shape[0]),
                                        with_kwargs=True)
        return model

    monkeypatch.setattr(models, "load_model", load)  # counts the shared-prefix tree's waves and the plain decodes
    cs.run_cross_sample(config, progress=False)
    rows = pq.read_table(out / "cross_samples", columns=["n_tokens"]).num_rows
    assert plan.answers == rows
    paired_steps = sum(counted) // 2  # a paired step runs both models on the same rows
    assert 0 < paired_steps <= plan.decoded_bound and plan.scored_bound == 0
    n_dirs = 1 if "direction" in kw else 2
    assert plan.decoded_bound == passes * len(QUESTIONS) * SAMPLES * MAX_NEW * n_dirs
