"""`tokenshift build` end to end on a tiny random pair: tables, determinism, resume, bad input."""

import json
import shlex
import shutil

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from interrupt import dies_on_call
from tiny_pair import make_pair

import tokenshift.builders.pipeline.build as build_module
from tokenshift.builders.pipeline.build import BuildConfig, run_build, work_config
from tokenshift.runtime.errors import TokenshiftError


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return make_pair(tmp_path_factory.mktemp("pair"), n_rl=2)


@pytest.fixture(scope="module")
def gsm8k(benchmark_files):
    return str(benchmark_files / "gsm8k.jsonl")


def _config(out, pair, gsm8k, **kw):
    base, rls = pair
    defaults = dict(base=str(base), rl=tuple(map(str, rls)), benchmark=gsm8k, limit=5, samples=2,
                    max_new_tokens=12, shard_size=2)
    return BuildConfig(out=str(out), **{**defaults, **kw})


def _tables(out):
    return {t: pq.read_table(out / t).sort_by([(c, "ascending") for c in keys])
            for t, keys in [("prompts", ["problem_id"]), ("generations", ["generation_id"]),
                            ("tokens", ["generation_id", "rl_model", "position"])]}


@pytest.fixture(scope="module")
def straight(tmp_path_factory, pair, gsm8k):
    out = tmp_path_factory.mktemp("straight") / "build"
    run_build(_config(out, pair, gsm8k), progress=False)
    return out


def test_build_tables_are_consistent(straight):
    t = _tables(straight)
    prompts, gens, tokens = (t[k].to_pandas() for k in ("prompts", "generations", "tokens"))
    assert len(prompts) == 5 and prompts.gold_answer.iloc[0] == "18"
    assert len(gens) == 5 * 2 * 3  # problems × samples × (base + 2 RL samplers)
    assert set(gens.sampler) == {"base", "rl0", "rl1"}
    counts = tokens.groupby(["generation_id", "rl_model"]).size()
    expected = gens.set_index("generation_id").n_tokens
    for (gid, _), n in counts.items():
        assert n == expected[gid]
    assert set(tokens.rl_model) == {"rl0", "rl1"}
    assert tokens.rel_position.between(0, 1).all() and tokens.js.between(0, 0.6932).all()
    manifest = json.loads((straight / "manifest.json").read_text())
    assert manifest["tables"]["tokens"]["rows"] == len(tokens)
    assert manifest["config"]["samples"] == 2 and manifest["tokenizer"]["vocab_size"] > 256
    assert manifest["command"].startswith("tokenshift build --out ")


def test_same_command_twice_gives_identical_tables(tmp_path, pair, gsm8k, straight):
    run_build(_config(tmp_path / "again", pair, gsm8k), progress=False)
    first = json.loads((straight / "manifest.json").read_text())["tables"]
    second = json.loads((tmp_path / "again" / "manifest.json").read_text())["tables"]
    assert first == second  # sha256 of every parquet part


def test_resume_after_interruption_equals_straight_build(tmp_path, pair, gsm8k, straight, monkeypatch):
    out = tmp_path / "resumed"
    real = build_module._tokens
    monkeypatch.setattr(build_module, "_tokens", dies_on_call(real, 2))
    with pytest.raises(KeyboardInterrupt):
        run_build(_config(out, pair, gsm8k), progress=False)
    assert not (out / "manifest.json").exists() and (out / "generations" / "part-00001.parquet").exists()
    monkeypatch.setattr(build_module, "_tokens", real)
    run_build(_config(out, pair, gsm8k), progress=False)
    resumed, straight_t = _tables(out), _tables(straight)
    for name in resumed:
        assert resumed[name].equals(straight_t[name]), name


def test_finished_build_is_not_overwritten_and_config_change_refused(tmp_path, pair, gsm8k, straight):
    with pytest.raises(TokenshiftError, match="already holds a finished build.*--overwrite"):
        run_build(_config(straight, pair, gsm8k), progress=False)
    out = tmp_path / "partial"
    (out / ".tokenshift").mkdir(parents=True)
    (out / ".tokenshift" / "config.json").write_text(json.dumps(work_config(_config(out, pair, gsm8k))))
    with pytest.raises(TokenshiftError, match=r"another config \(samples: 2 -> 3\)"):
        run_build(_config(out, pair, gsm8k, samples=3), progress=False)


@pytest.mark.parametrize("args, message", [
    (["--benchmark", "nope"], "unknown benchmark 'nope'"),
    (["--samples", "0"], "--samples must be >= 1"),
    (["--base", "/does/not/exist"], "model path /does/not/exist does not exist"),
    (["--device", "cuda"], "no CUDA GPU is available"),
    (["--device", "cuda:1"], "--device cuda:1 was asked but no CUDA GPU is available"),
    (["--device", "tpu"], "unknown device 'tpu': use cpu, cuda, cuda:N or auto"),
])
def test_bad_input_is_one_line_error_and_writes_nothing(tmp_path, pair, gsm8k, args, message):
    from tokenshift.cli import cli

    base, rls = pair
    out = tmp_path / "out"
    cmd = ["build", "--out", str(out), "--base", str(base), "--rl", str(rls[0]), "--benchmark", gsm8k,
           "--limit", "2", "--max-new-tokens", "4", "--quiet", *args]
    result = CliRunner().invoke(cli, cmd)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_not_a_model_directory_and_mismatched_vocabularies(tmp_path, pair, gsm8k):
    base, rls = pair
    (tmp_path / "empty").mkdir()
    with pytest.raises(TokenshiftError, match="is not a model directory"):
        run_build(_config(tmp_path / "o1", (base, [tmp_path / "empty"]), gsm8k), progress=False)
    other = make_pair(tmp_path / "other", seed=1)[1][0]
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(other)
    tok.add_tokens(["<extra_token>"])
    tok.save_pretrained(other)
    with pytest.raises(TokenshiftError, match="different vocabularies"):
        run_build(_config(tmp_path / "o2", (base, [other]), gsm8k), progress=False)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_unreadable_jsonl_row(tmp_path, pair):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "1+1?", "answer": "2"}\n{not json\n')
    with pytest.raises(TokenshiftError, match=r"bad.jsonl:2 is not valid JSON"):
        run_build(_config(tmp_path / "o", pair, str(bad)), progress=False)


def test_sharded_builds_merge_into_the_single_process_build(tmp_path, pair, gsm8k, straight):
    from tokenshift.builders.maintenance.merge import merge_builds

    shards = []
    for index in (1, 0):  # order of runs must not matter
        out = tmp_path / f"shard{index}"
        run_build(_config(out, pair, gsm8k, shard=f"{index}/2"), progress=False)
        shards.append(out)
    with pytest.raises(TokenshiftError, match="not exactly 0/N"):
        merge_builds(shards[:1], tmp_path / "incomplete")
    merged = merge_builds(shards, tmp_path / "merged")
    first = json.loads((straight / "manifest.json").read_text())
    second = json.loads((merged / "manifest.json").read_text())
    assert first["tables"] == second["tables"]  # the same parts, byte for byte
    assert second["config"]["shard"] == "0/1" and "--shard" not in shlex.split(second["command"])


def test_cross_sampled_shards_merge_like_the_straight_build(tmp_path, pair, gsm8k, straight):
    from tokenshift.builders.cross_sampling.runner import CrossSampleConfig, run_cross_sample
    from tokenshift.builders.maintenance.merge import merge_builds

    settings = dict(thresholds=(0.05,), budgets=(0.0, 2.0), direction="forward", samples=1)
    second = dict(settings, criterion="top1_differs", thresholds=None)  # a second run in the same table
    whole = tmp_path / "whole"
    shutil.copytree(straight, whole)
    run_cross_sample(CrossSampleConfig(out=str(whole), **settings), progress=False)
    run_cross_sample(CrossSampleConfig(out=str(whole), **second), progress=False)
    shards = []
    for index in (0, 1):
        out = tmp_path / f"cs{index}"
        run_build(_config(out, pair, gsm8k, shard=f"{index}/2"), progress=False)
        for run in (second, settings) if index else (settings, second):  # runs finish in either order
            run_cross_sample(CrossSampleConfig(out=str(out), **run), progress=False)
        shards.append(out)
    merged = merge_builds(shards, tmp_path / "merged")
    key = [("cross_id", "ascending")]
    assert pq.read_table(merged / "cross_samples").sort_by(key).equals(
        pq.read_table(whole / "cross_samples").sort_by(key))
    recorded = json.loads((merged / "manifest.json").read_text())
    assert recorded["cross_sampling_command"] == json.loads((whole / "manifest.json").read_text())[
        "cross_sampling_command"].replace(str(whole), str(merged))
    assert sorted(r["command"] for r in recorded["cross_sampling_runs"]) == sorted(
        r["command"].replace(str(whole), str(merged))
        for r in json.loads((whole / "manifest.json").read_text())["cross_sampling_runs"])
    assert {r["rows"] for r in recorded["cross_sampling_runs"]} == {pq.read_table(whole / "cross_samples").num_rows // 2}


def test_device_auto_loads_through_device_map_and_builds_the_same_tables(tmp_path, pair, gsm8k, straight,
                                                                        monkeypatch):
    """--device auto goes through from_pretrained(device_map='auto') (all on CPU here: no GPU) and
    gives the cpu build's bytes. The split over several GPUs itself is not exercised on this machine."""
    import transformers

    calls = []
    real = transformers.AutoModelForCausalLM.from_pretrained

    def recording(*args, **kwargs):
        calls.append(kwargs.get("device_map"))
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", recording)
    out = run_build(_config(tmp_path / "auto", pair, gsm8k, device="auto"), progress=False)
    assert calls == ["auto"] * 3  # base and both RL models
    digest = lambda d: {p.relative_to(d).as_posix(): p.read_bytes() for t in ("generations", "tokens")  # noqa: E731
                        for p in sorted((d / t).glob("*.parquet"))}
    assert digest(out) == digest(straight)


def test_vllm_engine(tmp_path, pair, gsm8k):
    """Without vLLM installed: a one-line error naming the extra; with it: the same tables, engine 'vllm'."""
    import importlib.util

    config = _config(tmp_path / "v", pair, gsm8k, engine="vllm", limit=2, samples=1)
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(TokenshiftError, match=r"pip install 'tokenshift\[vllm\]'"):
            run_build(config, progress=False)
        assert not (tmp_path / "v").exists()
        return
    out = run_build(config, progress=False)
    gens = pq.read_table(out / "generations").to_pandas()
    assert set(gens.engine) == {"vllm"} and len(pq.read_table(out / "tokens")) == gens.n_tokens.sum() * 2


def test_engines_come_from_one_registry(tmp_path, pair, gsm8k, straight, monkeypatch):
    """A registered engine is called with one EngineJob per sampler and shard; --engine and its checks read the registry."""
    from tokenshift.builders.engines import generate

    jobs = []

    def replay(job):
        jobs.append((job.spec.name, job.seed, job.samples))
        return generate.hf_engine(job)

    monkeypatch.setitem(generate.ENGINES, "replay", replay)
    out = run_build(_config(tmp_path / "r", pair, gsm8k, engine="replay"), progress=False)
    got, want = _tables(out), _tables(straight)
    assert set(got["generations"].column("engine").to_pylist()) == {"replay"}
    assert got["generations"].drop(["engine"]).equals(want["generations"].drop(["engine"]))
    assert got["tokens"].equals(want["tokens"])
    assert sorted({name for name, _, _ in jobs}) == ["base", *sorted(s.name for s in pair[1])]
    assert len(jobs) == 3 * 3 and {n for _, _, n in jobs} == {2}  # 3 samplers x 3 shards of 2 prompts

    monkeypatch.setitem(generate.ENGINE_PACKAGES, "replay", "no_such_package_17")
    with pytest.raises(TokenshiftError, match=r"--engine replay needs no_such_package_17"):
        build_module.validate_config(_config(tmp_path / "n", pair, gsm8k, engine="replay"))
    with pytest.raises(TokenshiftError, match=r"unknown --engine 'nope': use hf or vllm or replay"):
        build_module.validate_config(_config(tmp_path / "n", pair, gsm8k, engine="nope"))
