"""`tokenshift cross-sample` on a tiny random pair: driver equality, thresholds, budgets, resample, errors, resume."""

import dataclasses
import json
import math
import shutil

import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner
from interrupt import dies_on_call
from oracle_decode import sample_alone, setting_decode
from tiny_pair import make_pair

import tokenshift.builders.cross_sampling.runner as cs
from tokenshift.builders.engines import generate
from tokenshift.builders.pipeline.build import BuildConfig, run_build
from tokenshift.builders.scoring import score
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.seeds import derive_seed

QUESTIONS = ["Tom has 12 apples.", "He buys 7 more.", "What is 3 + 4?", "The answer is 19."]
MAX_NEW = 10


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return make_pair(tmp_path_factory.mktemp("pair"))


@pytest.fixture(scope="module")
def build(tmp_path_factory, pair):
    root = tmp_path_factory.mktemp("build")
    bench = root / "bench.jsonl"
    bench.write_text("".join(json.dumps({"question": q, "answer": str(i)}) + "\n" for i, q in enumerate(QUESTIONS)))
    base, rls = pair
    config = BuildConfig(out=str(root / "b"), base=str(base), rl=tuple(map(str, rls)), benchmark=str(bench),
                         samples=2, max_new_tokens=MAX_NEW, shard_size=2, use_chat_template=False)
    return run_build(config, progress=False)


@pytest.fixture(scope="module")
def thresholds(build):
    """Two JS thresholds that split the tiny pair's positions (its JS sits in a narrow band)."""
    js = pq.read_table(build / "tokens", columns=["js"]).column("js").to_numpy()
    return tuple(round(float(q), 5) for q in torch.quantile(torch.tensor(js), torch.tensor([0.3, 0.7])))


def _config(out, thresholds, **kw):
    return cs.CrossSampleConfig(out=str(out), thresholds=thresholds, budgets=(0, 1, 2, math.inf), **kw)


@pytest.fixture(scope="module")
def crossed(tmp_path_factory, build, thresholds):
    out = tmp_path_factory.mktemp("crossed") / "b"
    shutil.copytree(build, out)
    cs.run_cross_sample(_config(out, thresholds), progress=False)
    return out


def _table(out, name):
    return pq.read_table(out / name).to_pandas().sort_values(
        "cross_id" if name == "cross_samples" else "generation_id").reset_index(drop=True)


def _run(out):
    build = cs.load_build(out)
    config = cs.resolve(cs.CrossSampleConfig(out=str(out)), build)
    return cs.load_run(config, build, progress=False)


def _prompt_ids(run, out, shard):
    prompts = pq.read_table(out / "prompts" / f"part-{shard:05d}.parquet").to_pylist()
    ids = [run.tokenizer(p["prompt"], add_special_tokens=False)["input_ids"] for p in prompts]
    return prompts, ids


def test_budget_zero_is_the_build_and_the_single_model_sampler(crossed):
    rows, gens = _table(crossed, "cross_samples"), _table(crossed, "generations")
    zero = rows[rows.budget == 0]
    assert (zero.n_interventions == 0).all()
    run = _run(crossed)
    for direction, sampler in (("forward", "base"), ("reverse", "rl")):
        mine = zero[zero.direction == direction]
        for threshold in mine.threshold.unique():
            got = mine[mine.threshold == threshold].set_index(["problem_id", "sample_index"]).sort_index()
            ref = gens[gens.sampler == sampler].set_index(["problem_id", "sample_index"]).sort_index()
            assert list(got.response_text) == list(ref.response_text)
            assert list(got.n_tokens) == list(ref.n_tokens) and list(got.seed) == list(ref.seed)
        _, driver, _ = run.roles(direction)
        stop = generate.stop_token_ids(driver, run.tokenizer)
        for shard in (0, 1):
            prompts, ids = _prompt_ids(run, crossed, shard)
            g = torch.Generator().manual_seed(derive_seed(run.config.seed, shard, sampler))
            alone = sample_alone(driver, [p for p in ids for _ in range(2)], MAX_NEW, run.sampling, stop,
                                 run.tokenizer.pad_token_id, g)
            texts = [run.tokenizer.decode(t, skip_special_tokens=True) for t in alone]
            want = [mine[(mine.problem_id == p["problem_id"]) & (mine.sample_index == s)].response_text.iloc[0]
                    for p in prompts for s in range(2)]
            assert texts == want


@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (0.7, 0.9), (0.0, 1.0)])
def test_decoder_without_budget_equals_multinomial_sampler_and_generate(pair, temperature, top_p):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base, rls = pair
    tok = AutoTokenizer.from_pretrained(base)
    b, r = (AutoModelForCausalLM.from_pretrained(p).eval() for p in (base, rls[0]))
    stop = set(range(2, 60))  # many stop tokens: rows finish at different steps
    b.generation_config.eos_token_id = sorted(stop)
    prompts = [tok(q, add_special_tokens=False)["input_ids"] for q in QUESTIONS[:3]]
    sampling = generate.SamplingConfig(12, temperature, top_p, 4)
    paired = setting_decode(b, r, prompts, [12] * 3, sampling, stop, tok.pad_token_id, len(tok),
                          torch.Generator().manual_seed(5))
    alone = sample_alone(b, prompts, 12, sampling, stop, tok.pad_token_id, torch.Generator().manual_seed(5))
    hf = generate.generate_hf(b, tok, prompts, 1, 5, sampling)
    assert [d.token_ids for d in paired] == alone == [s.token_ids for s in hf]
    assert [d.finish_reason for d in paired] == [s.finish_reason for s in hf]
    assert len({len(t) for t in alone}) > 1 or temperature == 0


def _rescored_js(run, prompt, response):
    stats = score.score_pair(run.base, {"rl": run.rl}, prompt, response, len(run.tokenizer))
    return stats["rl"]["js"].tolist()


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_interventions_are_over_threshold_and_within_budget(crossed, thresholds, direction):
    run = _run(crossed)
    run = dataclasses.replace(run, config=cs.resolve(_config(crossed, thresholds), cs.load_build(crossed)))
    _, driver, other = run.roles(direction)
    decoder = cs.PairDecoder(run, driver, other)
    _, ids = _prompt_ids(run, crossed, 0)
    prefixes = [p for p in ids for _ in range(2)]
    results = cs.threshold_runs(run, decoder, prefixes, 123, "test")
    assert set(results) == {(t, b) for t in thresholds for b in (0.0, 1.0, 2.0, math.inf)}
    tol = 1e-5
    seen_some = False
    for (threshold, budget), decoded in results.items():
        for prefix, d in zip(prefixes, decoded, strict=True):
            js = _rescored_js(run, prefix, d.token_ids)
            assert torch.allclose(torch.tensor(d.js), torch.tensor(js), atol=tol)
            assert len(d.interventions) <= budget
            assert all(js[p] >= threshold - tol for p in d.interventions)
            if math.isinf(budget):  # every over-threshold position intervened
                assert {p for p, v in enumerate(js) if v >= threshold + tol} <= set(d.interventions)
                seen_some |= bool(d.interventions)
            if budget == 0:
                assert d.interventions == []
    assert seen_some
    # the table agrees: interventions within budget, fraction consistent
    rows = _table(crossed, "cross_samples")
    rows = rows[rows.direction == direction]
    assert (rows.n_interventions <= rows.budget).all()
    assert (rows.intervention_positions.map(len) == rows.n_interventions).all()
    assert ((rows.intervention_fraction - rows.n_interventions / rows.n_tokens).abs() < 1e-12).all()
    assert rows.cross_id.str.startswith(f"threshold/{direction}/rl/").all() and rows.cross_id.is_unique


def test_manifest_records_config_and_tables(build, crossed, thresholds):
    manifest = json.loads((crossed / "manifest.json").read_text())
    expected = cs.resolve(_config(crossed, thresholds), manifest)
    assert manifest["cross_sampling"] == expected.as_json()
    assert manifest["cross_sampling"]["budgets"][-1] == "inf"
    assert manifest["tables"]["cross_samples"]["rows"] == len(_table(crossed, "cross_samples"))
    assert len(manifest["tables"]["cross_samples"]["files"]) == 2  # one part per prompt shard
    original = json.loads((build / "manifest.json").read_text())
    assert {k: v for k, v in manifest["tables"].items() if k != "cross_samples"} == original["tables"]
    assert manifest["config"] == original["config"]


def test_resample_rows_per_step(tmp_path, build):
    out = tmp_path / "b"
    shutil.copytree(build, out)
    cs.run_cross_sample(cs.CrossSampleConfig(out=str(out), protocol="resample", budgets=(0, 1, 3)),
                        progress=False)
    rows, gens = _table(out, "cross_samples"), _table(out, "generations")
    assert rows.threshold.isna().all() and rows.cross_id.str.contains("/na/").all()
    assert sorted(rows.budget.unique()) == [0, 1, 2, 3]
    for (direction, pid, s), group in rows.groupby(["direction", "problem_id", "sample_index"]):
        group = group.sort_values("budget")
        counts = list(group.n_interventions)
        assert counts[0] == 0 and all(a <= b <= a + 1 for a, b in zip(counts, counts[1:], strict=False))
        positions = list(group.intervention_positions.map(list))
        assert all(p[:len(q)] == q and p == sorted(p) for q, p in zip(positions, positions[1:], strict=False))
        sampler = "base" if direction == "forward" else "rl"
        assert group.response_text.iloc[0] == gens[gens.generation_id == f"{sampler}/{pid}/{s}"].response_text.iloc[0]
    assert rows.n_interventions.max() >= 1


def _snapshot(out):
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    return files, (out / "manifest.json").read_bytes() if (out / "manifest.json").exists() else None


def assert_refused_in_one_line(crossed, args: list[str], message: str) -> None:
    """`tokenshift cross-sample crossed *args` exits 2 with one line containing message, writing nothing."""
    from tokenshift.cli import cli

    before = _snapshot(crossed)
    result = CliRunner().invoke(cli, ["cross-sample", str(crossed), "--quiet", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert _snapshot(crossed) == before


@pytest.mark.parametrize("args, message", [
    (["--budgets", "0,-1"], "--budgets must be >= 0"),
    (["--budgets", "0,two"], "is not a comma-separated list of numbers"),
    (["--thresholds", "0.1,0.8"], "--thresholds must be in [0, ln 2"),
    (["--thresholds", "-0.1"], "--thresholds must be in [0, ln 2"),
    (["--rl-model", "nope"], "unknown --rl-model 'nope': this build has rl"),
    (["--protocol", "resample"], "needs finite budgets"),
    (["--samples", "0"], "--samples must be >= 1"),
])
def test_bad_parameters_are_one_line_errors_and_write_nothing(crossed, args, message):
    assert_refused_in_one_line(crossed, args, message)


def test_dir_without_build_and_other_config_refused(tmp_path, crossed, thresholds):
    from tokenshift.cli import cli

    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["cross-sample", str(tmp_path / "empty"), "--quiet"])
    assert result.exit_code == 2 and "holds no finished build" in result.output
    assert list((tmp_path / "empty").iterdir()) == []
    before = _snapshot(crossed)
    with pytest.raises(TokenshiftError, match=r"another config \(budgets: .*--overwrite"):
        cs.run_cross_sample(cs.CrossSampleConfig(out=str(crossed), thresholds=thresholds, budgets=(0, 1)),
                            progress=False)
    assert _snapshot(crossed) == before


def test_resume_after_interruption_equals_straight_run(tmp_path, build, crossed, thresholds, monkeypatch):
    out = tmp_path / "b"
    shutil.copytree(build, out)
    real = cs.shard_rows
    monkeypatch.setattr(cs, "shard_rows", dies_on_call(real, 2))
    with pytest.raises(KeyboardInterrupt):
        cs.run_cross_sample(_config(out, thresholds), progress=False)
    run_id = cs.resolve(_config(out, thresholds), cs.load_build(out)).run_id()
    assert (out / "cross_samples" / f"part-00000-{run_id}.parquet").exists()
    assert not (out / "cross_samples" / f"part-00001-{run_id}.parquet").exists()
    assert "cross_sampling" not in json.loads((out / "manifest.json").read_text())
    with pytest.raises(TokenshiftError, match="another config"):  # a different config cannot resume it
        cs.run_cross_sample(_config(out, thresholds, direction="forward"), progress=False)
    monkeypatch.setattr(cs, "shard_rows", real)
    cs.run_cross_sample(_config(out, thresholds), progress=False)
    assert _table(out, "cross_samples").equals(_table(crossed, "cross_samples"))
    tables = lambda d: json.loads((d / "manifest.json").read_text())["tables"]  # noqa: E731
    assert tables(out) == tables(crossed)


def test_shard_processes_sharing_dir_equal_straight_run(tmp_path, build, crossed, thresholds):
    """--shard 0/2 and 1/2 on one DIR (as N processes would): the last one records the whole table."""
    from tokenshift.cli import cli

    out = tmp_path / "b"
    shutil.copytree(build, out)
    args = ["cross-sample", str(out), "--quiet", "--thresholds", ",".join(map(str, thresholds)),
            "--budgets", "0,1,2,inf"]
    first = CliRunner().invoke(cli, [*args, "--shard", "1/2"])
    assert first.exit_code == 0, first.output
    assert "1 shard(s) remain" in first.output
    run_id = cs.resolve(_config(out, thresholds), cs.load_build(out)).run_id()
    assert sorted(p.name for p in (out / "cross_samples").iterdir()) == [f"part-00001-{run_id}.parquet"]
    assert "cross_sampling" not in json.loads((out / "manifest.json").read_text())
    second = CliRunner().invoke(cli, [*args, "--shard", "0/2"])
    assert second.exit_code == 0 and "cross_samples written to" in second.output, second.output
    assert _table(out, "cross_samples").equals(_table(crossed, "cross_samples"))
    recorded = json.loads((out / "manifest.json").read_text())
    assert recorded["tables"]["cross_samples"] == json.loads((crossed / "manifest.json").read_text())[
        "tables"]["cross_samples"]
    assert recorded["cross_sampling"]["shard"] == "0/2"


@pytest.mark.parametrize("protocol", ["threshold", "resample"])
def test_recorded_command_reproduces_the_table(tmp_path, build, protocol):
    """manifest.cross_sampling_command, run on a fresh copy of the build, gives the same table; the card shows it."""
    import shlex

    from tokenshift.cards.card import write_card
    from tokenshift.cli import cli

    source = tmp_path / "source"
    shutil.copytree(build, source)
    budgets = (0, 2, math.inf) if protocol == "threshold" else (0, 1, 2)
    cs.run_cross_sample(cs.CrossSampleConfig(out=str(source), protocol=protocol, budgets=budgets, direction="forward",
                                             thresholds=(0.0123456789, 0.3)), progress=False)
    command = json.loads((source / "manifest.json").read_text())["cross_sampling_command"]
    words = shlex.split(command)
    assert words[:3] == ["tokenshift", "cross-sample", str(source)]
    again = tmp_path / "again"
    shutil.copytree(build, again)
    result = CliRunner().invoke(cli, ["cross-sample", str(again), *words[3:], "--quiet"])
    assert result.exit_code == 0, result.output
    assert _table(again, "cross_samples").equals(_table(source, "cross_samples"))
    write_card(source)
    from tokenshift.schemas.manifest import public_manifest  # the card names the build folder, not its path
    shown = public_manifest(json.loads((source / "manifest.json").read_text()))["cross_sampling_command"]
    assert shown == shlex.join(["tokenshift", "cross-sample", "source", *words[3:]])
    assert shown in (source / "README.md").read_text() and str(source) not in (source / "README.md").read_text()


def test_fraction_budget_is_a_fixed_cap_per_answer():
    config = cs.CrossSampleConfig(out="x", budgets=(0, 0.05, 0.1, 0.25, math.inf), budget_unit="fraction")
    cs.validate_config(config)
    run = cs.Run(config, None, None, None, None, generate.SamplingConfig(max_new_tokens=40), False)
    assert [run.cap(b) for b in config.budgets] == [0, 2, 4, 10, math.inf]
    with pytest.raises(TokenshiftError, match=r"fraction needs budgets in \[0, 1\]"):
        cs.validate_config(dataclasses.replace(config, budgets=(2,)))
    with pytest.raises(TokenshiftError, match="use --budget-unit tokens"):
        cs.validate_config(dataclasses.replace(config, protocol="resample", budgets=(1,)))
