"""`--ray`: builds and cross-sampling on a local 2-worker Ray cluster equal the single-process ones."""

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from interrupt import dies_on_call
from tiny_pair import make_pair

import tokenshift.builders.pipeline.build as build_module
from tokenshift.builders.cross_sampling.runner import CrossSampleConfig, run_cross_sample
from tokenshift.builders.pipeline.build import BuildConfig, run_build
from tokenshift.cli import cli
from tokenshift.runtime import executor
from tokenshift.runtime.errors import TokenshiftError

ray = pytest.importorskip("ray", reason="the Ray runner needs the ray extra (installed by the test extra)")

QUESTIONS = ["Tom has 12 apples.", "He buys 7 more.", "What is 3 + 4?", "The answer is 19.", "Add 2 and 2."]


@pytest.fixture(scope="module")
def cluster():
    """A local Ray instance with 2 CPUs: the runner's actor pool gets 2 one-CPU workers."""
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 2**20,
             logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray")
    base, rls = make_pair(root / "pair")
    bench = root / "bench.jsonl"
    bench.write_text("".join(json.dumps({"question": q, "answer": str(i)}) + "\n" for i, q in enumerate(QUESTIONS)))
    return BuildConfig(out=str(root / "straight"), base=str(base), rl=tuple(map(str, rls)), benchmark=str(bench),
                       samples=2, max_new_tokens=10, shard_size=2, use_chat_template=False)


@pytest.fixture(scope="module")
def straight(config):
    return run_build(config, progress=False)


def _digests(out: Path, tables=("prompts", "generations", "tokens")) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for t in tables for p in sorted((out / t).glob("part-*.parquet"))}


def _cross(out, **kw):
    return CrossSampleConfig(out=str(out), thresholds=(0.0, 0.3), budgets=(0, 1, math.inf), **kw)


def test_ray_build_equals_the_single_process_build(cluster, config, straight, tmp_path):
    out = run_build(BuildConfig(**{**config.__dict__, "out": str(tmp_path / "ray"), "ray": "local",
                                   "ray_workers": 2}), progress=False)
    assert len(_digests(out)) == 3 * 3  # 5 prompts in shards of 2 → 3 parts per table
    assert _digests(out) == _digests(straight)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["ray"] == "local" and "--ray --ray-workers 2" in manifest["command"]
    assert manifest["tables"]["tokens"]["rows"] == json.loads((straight / "manifest.json").read_text())[
        "tables"]["tokens"]["rows"]


def test_a_build_killed_locally_resumes_on_ray(cluster, config, straight, tmp_path, monkeypatch):
    out = tmp_path / "resumed"
    monkeypatch.setattr(build_module, "_tokens", dies_on_call(build_module._tokens, 2))
    local = BuildConfig(**{**config.__dict__, "out": str(out)})
    with pytest.raises(KeyboardInterrupt):
        run_build(local, progress=False)
    monkeypatch.undo()
    assert (out / "generations" / "part-00001.parquet").exists() and not (out / "tokens" / "part-00001.parquet").exists()
    run_build(BuildConfig(**{**local.__dict__, "ray": "local", "ray_workers": 2}), progress=False)
    assert _digests(out) == _digests(straight)


def test_ray_cross_sampling_equals_the_single_process_one(cluster, straight, tmp_path):
    here, there = tmp_path / "here", tmp_path / "there"
    shutil.copytree(straight, here)
    shutil.copytree(straight, there)
    run_cross_sample(_cross(here), progress=False)
    run_cross_sample(_cross(there, ray="local", ray_workers=2), progress=False)
    assert _digests(there, ("cross_samples",)) == _digests(here, ("cross_samples",))
    assert len(_digests(here, ("cross_samples",))) == 3
    recorded = json.loads((there / "manifest.json").read_text())["cross_sampling"]
    assert recorded["ray"] == "local" and recorded["thresholds"] == [0.0, 0.3]
    # a second run (another criterion, mixed) beside the first, on Ray and here: the same parts again
    run_cross_sample(_cross(here, criterion="kl", mix_weight=0.5), progress=False)
    run_cross_sample(_cross(there, criterion="kl", mix_weight=0.5, ray="local", ray_workers=2), progress=False)
    assert _digests(there, ("cross_samples",)) == _digests(here, ("cross_samples",))
    assert len(_digests(here, ("cross_samples",))) == 6
    runs = json.loads((there / "manifest.json").read_text())["cross_sampling_runs"]
    assert [r["config"]["criterion"] for r in runs] == ["js", "kl"] and "--ray" in runs[1]["command"]


def test_a_worker_error_reaches_the_driver_as_one_line(cluster):
    class FailsOnShardOne:
        def setup(self):
            pass

        def __call__(self, shard):
            if shard == 1:
                raise TokenshiftError("shard 1 is broken: fix it")

    with pytest.raises(TokenshiftError) as error:
        executor.run_shards(FailsOnShardOne(), [0, 1, 2], executor.RayPlacement(workers=2), False, "test")
    assert str(error.value) == "shard 1 is broken: fix it"


def test_pool_size_follows_the_cluster():
    resources = {"CPU": 16.0, "GPU": 4.0}
    assert executor._workers(executor.RayPlacement(), resources) == 16
    assert executor._workers(executor.RayPlacement(gpus_per_worker=1.0), resources) == 4
    assert executor._workers(executor.RayPlacement(workers=3, gpus_per_worker=1.0), resources) == 3
    with pytest.raises(TokenshiftError, match="has no GPU"):
        executor._workers(executor.RayPlacement(gpus_per_worker=1.0), {"CPU": 8.0})
    assert executor.ray_placement(None, 2, "cuda") is None
    assert executor.ray_placement("auto", None, "cuda") == executor.RayPlacement("auto", None, 1.0)
    for device in ("cuda:1", "auto"):  # a cross-sampled build's device goes through the same check
        with pytest.raises(TokenshiftError, match="use --device cuda"):
            executor.ray_placement("auto", None, device)
    with pytest.raises(TokenshiftError, match="--ray-workers must be >= 1"):
        executor.ray_placement("auto", 0, "cpu")


def test_ray_flags_are_checked_before_anything_is_written(config, tmp_path, monkeypatch):
    out = tmp_path / "never"
    base_flags = ["build", "--out", str(out), "--base", config.base, "--rl", config.rl[0],
                  "--benchmark", config.benchmark, "--ray"]
    result = CliRunner().invoke(cli, [*base_flags, "--ray-workers", "0"])
    assert result.exit_code == 2 and "--ray-workers must be >= 1 (got 0)" in result.output
    for device in ("cuda:1", "auto"):
        result = CliRunner().invoke(cli, [*base_flags, "--device", device])
        assert result.exit_code == 2 and "use --device cuda (Ray gives each worker its own GPU)" in result.output
    result = CliRunner().invoke(cli, [*base_flags[:-1], "--ray", "127.0.0.1:1"])  # nothing listens on port 1
    assert result.exit_code == 2 and "cannot reach the Ray cluster at 127.0.0.1:1" in result.output
    real_find_spec = executor.importlib.util.find_spec
    monkeypatch.setattr(executor.importlib.util, "find_spec",
                        lambda name: None if name.startswith("ray") else real_find_spec(name))
    result = CliRunner().invoke(cli, base_flags)
    assert result.exit_code == 2 and "pip install 'tokenshift[ray]'" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not out.exists()
