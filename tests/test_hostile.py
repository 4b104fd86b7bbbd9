"""Attacks a hostile user would try, one class at a time: each must end in a one-line refusal, nothing lost.

Classes: the integrity chain, immutable published versions, the folder lock, code only by flag,
no silent nulls, one-line errors (OS errors, bad encodings, damaged work files), leftovers of a
kill, no local paths in what is published, and the smaller input checks.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from synthetic_build import refresh_manifest_tables

from tokenshift.builders.grading import grade
from tokenshift.builders.pipeline.build import BuildConfig
from tokenshift.cli import cli
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.lock import folder_lock, lock_path
from tokenshift.schemas import manifest


def run(*args: str):
    result = CliRunner().invoke(cli, list(args))
    return result


def refused(result, *needles: str) -> str:
    """Assert a one-line `Error:` with exit 2 and no traceback; returns the line."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if not line.startswith("Warning:")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def tamper(path: Path) -> None:
    """Replace a part with a valid parquet file of other content (same schema, one row fewer)."""
    table = pq.read_table(path)
    os.chmod(path, 0o644)
    pq.write_table(table.slice(0, max(table.num_rows - 1, 0)), path)


def carded(build: Path) -> Path:
    result = run("card", str(build))
    assert result.exit_code == 0, result.output
    return build


@pytest.fixture()
def published(build, tmp_path) -> tuple[Path, Path]:
    """(registry, registry/v1.0.0) published from the synthetic build."""
    registry = tmp_path / "registry"
    result = run("publish", str(carded(build)), "--to", str(registry), "--version", "v1.0.0")
    assert result.exit_code == 0, result.output
    return registry, registry / "v1.0.0"


# ---- integrity chain ------------------------------------------------------------------------------


def test_cross_sample_refuses_a_part_changed_after_the_build(build):
    part = build / "prompts" / "part-00000.parquet"
    tamper(part)
    refused(run("cross-sample", str(build), "--quiet"), str(part), "sha256")
    assert "cross_sampling" not in manifest.read_manifest(build)


def test_merge_copies_recorded_hashes_and_refuses_a_changed_part(build, tmp_path):
    recorded = manifest.read_manifest(build)
    recorded["config"]["shard"] = "0/1"
    manifest.write_manifest(build, recorded)
    merged = tmp_path / "merged"
    result = run("merge", str(build), "--out", str(merged))
    assert result.exit_code == 0, result.output
    assert manifest.read_manifest(merged)["tables"] == recorded["tables"]  # the recorded hashes, not re-hashed
    part = build / "tokens" / "part-00001.parquet"
    tamper(part)
    refused(run("merge", str(build), "--out", str(tmp_path / "again")), str(part), "sha256")
    assert not (tmp_path / "again").exists() and not list(tmp_path.glob(".again.merging-*"))


def test_card_refuses_a_changed_part(build):
    part = build / "generations" / "part-00000.parquet"
    tamper(part)
    refused(run("card", str(build)), str(part), "sha256")
    assert not (build / "README.md").exists()


def test_readers_use_the_listed_parts_warn_about_strays_and_refuse_truncated(build):
    before = run("query", "accuracy", "--data", str(build), "--format", "json")
    assert before.exit_code == 0, before.output
    stray = build / "generations" / "part-00099.parquet"
    shutil.copy(build / "generations" / "part-00000.parquet", stray)  # would double-count under a glob
    after = run("query", "accuracy", "--data", str(build), "--format", "json")
    assert after.exit_code == 0
    pd.testing.assert_frame_equal(pd.DataFrame(json.loads(after.stdout)), pd.DataFrame(json.loads(before.stdout)),
                                  rtol=1e-12)  # equal up to the order DuckDB sums in
    assert "Warning:" in after.stderr and "part-00099.parquet" in after.stderr  # warned, and ignored
    part = build / "tokens" / "part-00000.parquet"
    part.write_bytes(part.read_bytes()[:-100])  # truncated
    refused(run("report", "--data", str(build), "--out", str(build.parent / "report")), str(part))


def test_resume_refuses_a_part_changed_while_the_build_was_down(tmp_path, benchmark_files, monkeypatch):
    from interrupt import dies_on_call
    from tiny_pair import make_pair

    import tokenshift.builders.pipeline.build as build_module

    base, rls = make_pair(tmp_path / "pair")
    out = tmp_path / "killed"
    config = BuildConfig(out=str(out), base=str(base), rl=tuple(map(str, rls)), limit=2, samples=1,
                         max_new_tokens=6, shard_size=1, benchmark=str(benchmark_files / "gsm8k.jsonl"))
    real = build_module._tokens
    monkeypatch.setattr(build_module, "_tokens", dies_on_call(real, 2))  # killed while scoring shard 1
    with pytest.raises(KeyboardInterrupt):
        build_module.run_build(config, progress=False)
    monkeypatch.setattr(build_module, "_tokens", real)
    part = out / "generations" / "part-00001.parquet"
    part.write_bytes(part.read_bytes()[:-50])  # truncated while the build was down
    with pytest.raises(TokenshiftError, match=r"part-00001\.parquet does not match the sha256 recorded in "
                                              r".*\.tokenshift/done/generations-00001"):
        build_module.run_build(config, progress=False)
    assert not (out / "manifest.json").exists()


def test_glob_characters_in_a_path_do_not_break_queries(build, tmp_path):
    odd = Path(shutil.copytree(build, tmp_path / "b[1]*?"))
    plain, tricky = run("query", "accuracy", "--data", str(build)), run("query", "accuracy", "--data", str(odd))
    assert tricky.exit_code == 0 and tricky.output == plain.output, tricky.output


# ---- immutability -----------------------------------------------------------------------------------


def test_nothing_writes_inside_a_published_version(build, published, tmp_path):
    registry, version = published
    before = snapshot(version)
    refused(run("build", "--out", str(version), "--overwrite"), "published version")
    refused(run("build", "--out", str(registry)), "registry")
    refused(run("build", "--out", str(registry / "v2-work")), "registry")
    refused(run("cross-sample", str(version)), "published version")
    refused(run("merge", str(build), "--out", str(version)), "published version")
    refused(run("card", str(version)), "published version")
    refused(run("regrade", str(version)), "published version")
    refused(run("validate", str(version), "--json-report", str(version / "r.json")), "published version")
    refused(run("report", "--data", str(version), "--out", str(version / "report")), "published version")
    refused(run("view", "--data", str(version), "--out", str(version / "pages")), "published version")
    checked = run("validate", str(version))
    assert checked.exit_code == 0 and "passed" in checked.output.lower(), checked.output
    assert snapshot(version) == before and not (version / ".tokenshift").exists()


def test_validate_never_overwrites_a_file_it_did_not_write(build):
    before = (build / "manifest.json").read_bytes()
    refused(run("validate", str(build), "--json-report", str(build / "manifest.json")), "not a validation report")
    assert (build / "manifest.json").read_bytes() == before


def test_publish_refuses_nesting_and_bad_version_names(build, tmp_path):
    carded(build)
    refused(run("publish", str(build), "--to", str(build), "--version", "v1.0.0"), "inside the build")
    refused(run("publish", str(build), "--to", str(build / "registry"), "--version", "v1.0.0"), "inside the build")
    refused(run("publish", str(build), "--to", str(build.parent), "--version", "v1.0.0"), "inside the registry")
    refused(run("publish", str(build), "--to", str(tmp_path / "reg"), "--version", "v1.0.0\n"),
            "not a valid version name")
    assert not (tmp_path / "reg").exists() and sorted(p.name for p in build.iterdir()) == sorted(
        ["prompts", "generations", "tokens", "manifest.json", "README.md", ".tokenshift"])


# ---- lock ---------------------------------------------------------------------------------------------


def test_a_second_writer_is_refused_naming_the_holder(build):
    carded(build)
    before = (build / "README.md").read_bytes()
    with folder_lock(build, "tokenshift build"):
        line = refused(run("card", str(build)), f"pid {os.getpid()}", "tokenshift build", "in use")
        refused(run("regrade", str(build)), "in use")
    assert (build / "README.md").read_bytes() == before and "in use" in line


def test_two_builds_into_one_folder_one_is_refused_and_a_killed_one_resumes(tmp_path):
    out = tmp_path / "race"
    args = ["build", "--out", str(out), "--limit", "3", "--samples", "1", "--max-new-tokens", "16",
            "--shard-size", "1", "--quiet"]
    first = subprocess.Popen([sys.executable, "-c", "from tokenshift.cli import main; main()", *args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ((out / ".tokenshift" / "config.json").exists() and lock_path(out).exists()
                   and f"pid {first.pid}" in lock_path(out).read_text()):
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read() if first.poll() else ""
            time.sleep(0.1)
        refused(run(*args), f"in use by pid {first.pid}")  # the same command twice: one writer
        refused(run(*args, "--seed", "1"), "started with another config (seed: 0 -> 1)")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    refused(run(*args, "--seed", "1"), "started with another config (seed: 0 -> 1)")
    resumed = run(*args)  # the killed run's lock is no obstacle; its finished shards are kept
    assert resumed.exit_code == 0, resumed.output
    from tokenshift.runtime.seeds import derive_seed

    assert manifest.read_manifest(out)["config"]["seed"] == 0
    parts = sorted((out / "generations").glob("part-*.parquet"))
    assert len(parts) == 3  # no shard missing, none from the refused run
    for k, part in enumerate(parts):  # every row's seed derives from seed 0: no mixed shards
        assert {(r["sampler"], r["seed"]) for r in pq.read_table(part).to_pylist()} == {
            (s, derive_seed(0, k, s)) for s in ("base", "rl")}


def test_a_stale_lock_of_a_killed_process_is_taken_over(build):
    code = ("import time; from tokenshift.runtime.lock import folder_lock\n"
            "with folder_lock(%r, 'holder'):\n print('held', flush=True); time.sleep(60)") % str(build)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused(run("card", str(build)), f"pid {holder.pid}")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert f"pid {holder.pid}" in lock_path(build).read_text()  # the dead holder's line is still there
    assert run("card", str(build)).exit_code == 0
    assert f"pid {os.getpid()}" in lock_path(build).read_text()


# ---- code only by flag ------------------------------------------------------------------------------------


def test_a_manifest_cannot_switch_on_remote_code(build, monkeypatch):
    from tokenshift.builders.cross_sampling import runner as cross_sample
    from tokenshift.builders.engines import models

    recorded = manifest.read_manifest(build)
    recorded["config"]["trust_remote_code"] = True
    recorded["config"]["rl"] = [m["name"] for m in recorded["models"]["rl"]]
    assert BuildConfig.from_manifest(recorded).trust_remote_code is False
    seen = []

    class Stop(Exception):
        pass

    def fake_tokenizer(spec, trust_remote_code=False):
        seen.append(trust_remote_code)
        raise Stop

    monkeypatch.setattr(models, "load_tokenizer", fake_tokenizer)
    config = cross_sample.resolve(cross_sample.CrossSampleConfig(out=str(build)), recorded)
    with pytest.raises(Stop):
        cross_sample.load_run(config, recorded, progress=False)
    with pytest.raises(Stop):
        cross_sample.load_run(config, recorded, progress=False, trust_remote_code=True)  # the command line can
    assert seen == [False, True]


# ---- no silent nulls --------------------------------------------------------------------------------------


def test_ungraded_answers_are_retried_a_bounded_number_of_times():
    calls = []

    def attempt(pairs, _bar):
        calls.append([p[1] for p in pairs])
        return [grade.Grade("1", None if (p[1] == "stuck" or len(calls) == 1) else True) for p in pairs]

    results = grade.with_retries([("1", "ok"), ("1", "stuck")], attempt, retries=2)
    assert [r.correct for r in results] == [True, None]
    assert calls == [["ok", "stuck"], ["ok", "stuck"], ["stuck"]]  # 1 + 2 tries, then it stays counted


def test_regrade_fills_nulls_and_records_it(build):
    part = build / "generations" / "part-00000.parquet"
    rows = pq.read_table(part).to_pylist()
    gold = {r["problem_id"]: r["gold_answer"] for p in sorted((build / "prompts").glob("*.parquet"))
            for r in pq.read_table(p).to_pylist()}
    for row in rows[:3]:
        row["response_text"], row["correct"] = f"so \\boxed{{{gold[row['problem_id']]}}}", None
    from tokenshift.schemas.tables import to_arrow, write_parquet
    write_parquet(to_arrow("generations", rows), part)
    recorded = refresh_manifest_tables(build)
    recorded["ungraded"] = {"generations": 3}
    manifest.write_manifest(build, recorded)
    from tokenshift.builders.commands import ungraded_note
    assert "3 answers ungraded" in ungraded_note(build) and "tokenshift regrade" in ungraded_note(build)
    carded(build)
    assert "Ungraded answers" in (build / "README.md").read_text() and "3 in generations" in (
        build / "README.md").read_text()
    nulls = sum(r["correct"] is None for p in sorted((build / "generations").glob("*.parquet"))
                for r in pq.read_table(p).to_pylist())
    result = run("regrade", str(build))
    assert result.exit_code == 0 and f"regraded {nulls} answers" in result.output, result.output
    after = manifest.read_manifest(build)
    assert after["regraded"][-1]["attempted"] == nulls
    assert after["ungraded"]["generations"] == after["regraded"][-1]["still_ungraded"]
    assert [r["correct"] for r in pq.read_table(part).to_pylist()[:3]] == [True] * 3
    entry = after["tables"]["generations"]["files"]["generations/part-00000.parquet"]
    assert entry["sha256"] == manifest.file_sha256(part)  # the hash of what regrade wrote
    assert after["tables"]["tokens"] == recorded["tables"]["tokens"]  # the rest as recorded


# ---- one-line errors --------------------------------------------------------------------------------------


def test_disk_full_is_one_line_with_path_and_free_space_and_keeps_the_old_file(build, monkeypatch):
    carded(build)
    before = (build / "README.md").read_bytes()
    real = os.replace

    def full(src, dst, *a, **k):
        if str(dst).endswith("README.md"):
            raise OSError(28, "No space left on device", str(dst))
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", full)
    recorded = manifest.read_manifest(build)
    recorded["build_seconds"] = 2.5  # the card is stale, so `card` rewrites it
    manifest.write_manifest(build, recorded)
    refused(run("card", str(build)), "No space left on device", str(build / "README.md"), "free on that disk")
    assert (build / "README.md").read_bytes() == before
    assert not [p for p in build.iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize("content, needle", [
    (b'{"question": "1+1", "answer": "2"}\n\xff\xfe not utf-8\n', "not UTF-8"),
    (b"\x00\x01\x02 binary", "binary file"),
    (b'{"question": "1+1", "answer": null}\n', "null"),
])
def test_bad_benchmark_files_are_one_line(tmp_path, content, needle):
    bench = tmp_path / "bench.jsonl"
    bench.write_bytes(content)
    args = ["build", "--out", str(tmp_path / "out"), "--benchmark", str(bench), "--quiet"]
    if needle == "null":
        args += ["--answer-field", "answer"]
    refused(run(*args), needle)
    assert not (tmp_path / "out").exists()


def test_damaged_work_files_and_manifests_are_one_line(build, tmp_path):
    work = tmp_path / "started"
    (work / ".tokenshift").mkdir(parents=True)
    (work / ".tokenshift" / "config.json").write_bytes(b"\x00garbage")
    refused(run("build", "--out", str(work), "--quiet"), "damaged")
    (build / "manifest.json").write_text("[1, 2]")
    refused(run("merge", str(build), "--out", str(tmp_path / "m")), "not a tokenshift manifest")
    (build / "manifest.json").write_text(json.dumps({"tables": {}}))
    refused(run("merge", str(build), "--out", str(tmp_path / "m")), "lacks")
    refused(run("report", "--data", str(build), "--out", str(tmp_path / "r")), "not a tokenshift build")


def test_symlinked_table_with_overwrite_deletes_nothing(build, tmp_path):
    elsewhere = Path(shutil.move(str(build / "tokens"), tmp_path / "elsewhere"))
    (build / "tokens").symlink_to(elsewhere, target_is_directory=True)
    (build / ".tokenshift").mkdir(exist_ok=True)
    refused(run("build", "--out", str(build), "--overwrite", "--quiet"), "symbolic link")
    assert (build / "prompts").is_dir() and (build / "generations").is_dir() and any(elsewhere.iterdir())


# ---- leftovers of a kill ---------------------------------------------------------------------------------


def test_leftovers_of_a_killed_process_are_cleaned_at_the_next_run(build, published):
    registry, _ = published
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = build / "generations" / f".part-00000.parquet.tmp-{dead.pid}"
    live = build / "generations" / f".part-00077.parquet.tmp-{os.getpid()}"
    remote = build / "generations" / f".part-00078.parquet.tmp-{dead.pid}@another-node"
    staging = registry / f".publish-v9.0.0-p{dead.pid}-x1y2"
    for path in (stale, live, remote):
        path.write_bytes(b"half")
    staging.mkdir()
    result = run("publish", str(build), "--to", str(registry), "--version", "v1.1.0")
    assert result.exit_code == 0, result.output
    assert not staging.exists()
    assert run("regrade", str(build)).exit_code == 0
    assert not stale.exists() and live.exists()  # a live writer's temporary is left alone
    assert remote.exists()  # so is one a process on another host (a Ray worker) may still be writing


# ---- no local paths in what is published ---------------------------------------------------------------------


def test_a_published_version_holds_no_local_path(build, tmp_path):
    local_model = (tmp_path / "checkpoints" / "my-rl").resolve()
    embedded = "/opt/site-packages/tokenshift/toy/pair/base"
    recorded = manifest.read_manifest(build)
    recorded["models"]["base"]["source"] = embedded
    recorded["models"]["rl"][0]["source"] = str(local_model)
    recorded["config"].update(out=str(build.resolve()), rl=[str(local_model)],
                              benchmark=str((tmp_path / "data" / "bench.jsonl").resolve()))
    recorded["command"] = (f"tokenshift build --out {build.resolve()} --rl {local_model} "
                           f"--benchmark {tmp_path.resolve()}/data/bench.jsonl")
    manifest.write_manifest(build, recorded)
    registry = tmp_path / "registry"
    result = run("publish", str(carded(build)), "--to", str(registry), "--version", "v1.0.0")
    assert result.exit_code == 0, result.output
    version = registry / "v1.0.0"
    for rel, data in snapshot(version).items():
        for private in (str(build.resolve()), str(tmp_path.resolve()), "/opt/site-packages"):
            assert private.encode() not in data, (rel, private)
    shipped = manifest.read_manifest(version)
    assert shipped["models"]["base"]["source"] == "embedded:base"
    assert shipped["models"]["rl"][0]["source"] == "local:my-rl"
    assert shipped["models"]["rl"][0]["sha256"] == recorded["models"]["rl"][0]["sha256"]
    assert shipped["config"]["benchmark"] == "bench.jsonl" and shipped["published"] == {"version": "v1.0.0"}
    assert "hub-org/model" == manifest.public_manifest(
        {"models": {"base": {"source": "hub-org/model", "sha256": None}}})["models"]["base"]["source"]


# ---- smaller input checks ------------------------------------------------------------------------------


@pytest.mark.parametrize("args, needle", [
    (["--top-k-candidates", "100000"], "exceeds the vocabulary"),
    (["--max-new-tokens", "100000"], "exceeds the context"),
])
def test_out_of_range_settings_are_refused_before_anything_is_written(tmp_path, args, needle):
    out = tmp_path / "out"
    refused(run("build", "--out", str(out), "--limit", "1", "--quiet", *args), needle)
    assert not out.exists()


def test_a_tokenizer_without_chat_template_is_refused_not_silently_replaced(tmp_path):
    from tokenshift.builders.pipeline.build import check_tokenizer

    class Plain:
        chat_template = None

        def __len__(self):
            return 100

    with pytest.raises(TokenshiftError, match="no chat template: pass --no-chat-template"):
        check_tokenizer(BuildConfig(out=str(tmp_path)), Plain())
    check_tokenizer(BuildConfig(out=str(tmp_path), use_chat_template=False), Plain())


def test_lock_waits_only_when_asked(build):
    with folder_lock(build, "first"):
        start = time.monotonic()
        with pytest.raises(TokenshiftError, match="in use by pid"):
            with folder_lock(build, "second"):
                pass
        assert time.monotonic() - start < 5
    with folder_lock(build, "second"):
        pass


# ---- padded vocabularies ------------------------------------------------------------------------------------


def _pad_head(folder: Path, rows: int) -> None:
    """Give a saved model `rows` padded output rows past its tokenizer, loud enough to be sampled if allowed."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    vocab = model.get_output_embeddings().weight.shape[0]
    model.resize_token_embeddings(vocab + rows, mean_resizing=False)
    with torch.no_grad():
        model.get_output_embeddings().weight[vocab:] = model.get_output_embeddings().weight[:rows] * 20
    model.save_pretrained(folder)


@pytest.fixture(scope="module")
def padded_pairs(tmp_path_factory, benchmark_files):
    """Builds of one pair twice: as saved, and with rl's head padded by 64 rows (base unpadded)."""
    from tiny_pair import make_pair

    root = tmp_path_factory.mktemp("padded")
    builds = {}
    for kind in ("plain", "padded"):
        base, (rl,) = make_pair(root / kind)
        if kind == "padded":
            _pad_head(rl, 64)
        config = BuildConfig(out=str(root / f"{kind}-build"), base=str(base), rl=(str(rl),), limit=2, samples=2,
                             max_new_tokens=8, shard_size=2, benchmark=str(benchmark_files / "gsm8k.jsonl"),
                             use_chat_template=False)
        from tokenshift.builders.pipeline.build import run_build

        builds[kind] = run_build(config, progress=False)
    return builds


def test_a_padded_head_is_cut_to_the_tokenizer_so_the_pair_equals_the_unpadded_one(padded_pairs, tmp_path):
    from tokenshift.builders.cross_sampling import runner as cs

    plain, padded = padded_pairs["plain"], padded_pairs["padded"]
    vocab = manifest.vocab_size(manifest.read_manifest(padded))
    ids = [t for p in sorted((padded / "tokens").glob("*.parquet")) for t in pq.read_table(p).column("token_id").to_pylist()]
    assert ids and max(ids) < vocab
    for table in ("prompts", "generations", "tokens"):  # padded rows are no tokens: the same tables, byte for byte
        for part in sorted((plain / table).glob("*.parquet")):
            assert part.read_bytes() == (padded / table / part.name).read_bytes(), part
    plain, padded = (Path(shutil.copytree(b, tmp_path / b.name)) for b in (plain, padded))
    for build in (plain, padded):  # cross-sampling decodes the two models side by side: widths must agree
        cs.run_cross_sample(cs.CrossSampleConfig(out=str(build), thresholds=(0.0,), budgets=(0, 2)), progress=False)
    assert pq.read_table(plain / "cross_samples").equals(pq.read_table(padded / "cross_samples"))


# ---- a checkpoint is all of its files ----------------------------------------------------------------------


def test_cross_sample_refuses_a_checkpoint_file_changed_added_or_unhashed(padded_pairs, tmp_path):
    build = Path(shutil.copytree(padded_pairs["plain"], tmp_path / "build"))
    recorded = manifest.read_manifest(build)
    rl = Path(recorded["models"]["rl"][0]["source"])
    assert {"tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json",
            "model.safetensors"} <= set(recorded["models"]["rl"][0]["files_sha256"])
    copy = Path(shutil.copytree(rl, tmp_path / "rl"))
    recorded["config"]["rl"] = [str(copy)]
    manifest.write_manifest(build, recorded)
    args = ["cross-sample", str(build), "--thresholds", "0.0", "--budgets", "0,1", "--quiet"]
    (copy / "generation_config.json").write_text(
        (copy / "generation_config.json").read_text().replace("{", '{"eos_token_id": 5,', 1))
    refused(run(*args), "model rl at", "generation_config.json", "changed since the build")
    shutil.copy(rl / "generation_config.json", copy / "generation_config.json")
    tokenizer = json.loads((copy / "tokenizer.json").read_text())
    tokenizer["added_tokens"][0]["content"] = "<|x|>"
    (copy / "tokenizer.json").write_text(json.dumps(tokenizer))
    refused(run(*args), "tokenizer.json", "changed since the build")
    shutil.copy(rl / "tokenizer.json", copy / "tokenizer.json")
    (copy / "chat_template.jinja").write_text("{{ messages }}")
    refused(run(*args), "chat_template.jinja", "changed since the build")
    shutil.copy(rl / "chat_template.jinja", copy / "chat_template.jinja")
    extra = next(n for n in ("added_tokens.json", "special_tokens_map.json", "vocab.json") if not (copy / n).exists())
    (copy / extra).write_text("{}")
    refused(run(*args), f"{extra} was added since the build")
    (copy / extra).unlink()
    for entry in recorded["models"]["rl"]:  # pointed elsewhere, its hashes removed: nothing vouches for it
        entry.pop("sha256"), entry.pop("files_sha256")
    manifest.write_manifest(build, recorded)
    refused(run(*args), "records no content hash")
    assert "cross_sampling_runs" not in manifest.read_manifest(build)
    checked = run("validate", str(build))  # and validate does not pass a build whose model nothing identifies
    assert checked.exit_code == 1 and "models_identified" in checked.output and "rl" in checked.output, checked.output


def test_a_build_that_recorded_only_the_weights_hash_is_still_checked(padded_pairs, tmp_path):
    from tokenshift.builders.engines import models

    build = Path(shutil.copytree(padded_pairs["plain"], tmp_path / "build"))
    recorded = manifest.read_manifest(build)
    rl = Path(recorded["models"]["rl"][0]["source"])
    old, _ = models.checkpoint_hashes(rl)
    assert old == models.directory_sha256(rl, ("config.json", "*.safetensors", "*.bin"))  # the hash builds recorded
    copy = Path(shutil.copytree(rl, tmp_path / "rl"))
    recorded["config"]["rl"] = [str(copy)]
    for entry in [recorded["models"]["base"], *recorded["models"]["rl"]]:
        entry.pop("files_sha256")  # as a build made before files_sha256 existed
    manifest.write_manifest(build, recorded)
    args = ["cross-sample", str(build), "--thresholds", "0.0", "--budgets", "0", "--quiet"]
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "rms_norm_eps": 1e-5}))
    refused(run(*args), "model rl at", "changed since the build (sha256")
    shutil.copy(rl / "config.json", copy / "config.json")
    result = run(*args)
    assert result.exit_code == 0, result.output


def test_a_model_folder_named_dot_is_named_by_its_folder(tmp_path, monkeypatch):
    from tiny_pair import make_pair

    from tokenshift.builders.engines.models import model_name

    base, (rl,) = make_pair(tmp_path / "pair")
    monkeypatch.chdir(rl)
    plan = run("build", "--out", str(tmp_path / "out"), "--base", str(base), "--rl", ".", "--limit", "1", "--plan")
    assert plan.exit_code == 0 and "1 RL model(s) (rl)" in plan.output, plan.output
    assert model_name("./") == "rl" and model_name("../rl") == "rl"
    with pytest.raises(TokenshiftError, match="no folder name"):
        model_name("/")


# ---- readers verify what they serve --------------------------------------------------------------------------


def _flip_a_byte_keeping_size_and_mtime(path: Path) -> None:
    before = path.stat()
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime set back: ctime still moves
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns


def test_readers_refuse_a_same_size_edit_of_a_published_part_after_remembering_it_good(published, tmp_path):
    import tokenshift
    from tokenshift.schemas.verdicts import Verdicts

    registry, version = published
    first = run("query", "accuracy", "--data", f"{registry}@v1.0.0", "--format", "json")
    assert first.exit_code == 0, first.output
    part = version / "tokens" / "part-00000.parquet"
    remembered = Verdicts(version)
    assert remembered.vouches("tokens/part-00000.parquet", part, manifest.read_manifest(version)["tables"][
        "tokens"]["files"]["tokens/part-00000.parquet"]["sha256"])  # verified once, then trusted while untouched
    _flip_a_byte_keeping_size_and_mtime(part)
    refused(run("query", "accuracy", "--data", str(version)), str(part), "sha256")
    refused(run("report", "--data", str(version), "--out", str(tmp_path / "report")), str(part), "sha256")
    refused(run("view", "--data", str(version), "--out", str(tmp_path / "pages")), str(part), "sha256")
    with pytest.raises(TokenshiftError, match="does not match the sha256"):
        tokenshift.open(f"{registry}@v1.0.0")
    assert not (tmp_path / "report").exists() or not any((tmp_path / "report").iterdir())


def test_a_folder_named_with_a_star_reads_its_own_parts_only(build, tmp_path):
    starred = Path(shutil.copytree(build, tmp_path / "b*"))
    sibling = Path(shutil.copytree(build, tmp_path / "b-other"))  # `b*` as a glob would match this one too
    plain = run("query", "accuracy", "--data", str(build), "--format", "json")
    tricky = run("query", "accuracy", "--data", str(starred), "--format", "json")
    assert tricky.exit_code == 0, tricky.output
    pd.testing.assert_frame_equal(pd.DataFrame(json.loads(tricky.stdout)), pd.DataFrame(json.loads(plain.stdout)),
                                  rtol=1e-12)  # not twice the rows: equal up to the order DuckDB sums in
    import tokenshift

    con = tokenshift.open(starred)
    assert con.execute("SELECT count(*) FROM tokens").fetchone()[0] == sum(
        pq.ParquetFile(p).metadata.num_rows for p in (build / "tokens").glob("*.parquet"))
    views = run("view", "--data", str(starred), "--out", str(tmp_path / "pages"))
    assert views.exit_code == 0, views.output
    assert sibling.is_dir()


# ---- output is data -------------------------------------------------------------------------------------------


def test_token_text_in_the_report_index_is_escaped(build, tmp_path):
    import pyarrow as pa

    attack = ["</script><script>alert(1)</script>", "<img src=x onerror=alert(2)>", "a & b"]
    for part in sorted((build / "tokens").glob("*.parquet")):
        table = pq.read_table(part)
        i = table.schema.get_field_index("token")
        texts = [attack[k % len(attack)] for k in range(table.num_rows)]
        pq.write_table(table.set_column(i, table.schema.field(i), pa.array(texts, table.schema.field(i).type)), part)
    refresh_manifest_tables(build)
    result = run("report", "--data", str(build), "--out", str(tmp_path / "report"))
    assert result.exit_code == 0, result.output
    index = (tmp_path / "report" / "index.md").read_text()
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in index and "&lt;img src=x onerror=alert(2)&gt;" in index
    assert "a &amp; b" in index
    assert "<script" not in index and "<img" not in index


# ---- tracebacks left, values that make no sense: benchmark rows --------------------------------------------------


@pytest.mark.parametrize("line, extra, needle", [
    ('{"question": "q", "answer": ' + "[" * 100_000 + "]" * 100_000 + "}", [], "nests lists or objects too deeply"),
    ('{"question": "what is \\ud800 + 1?", "answer": "2"}', [], "lone surrogate"),
    ('{"question": "q", "answer": "2", "id": "\\udfff"}', [], "the id holds '\\udfff'"),
    ('{"question": {"a": 1}, "answer": "2"}', [], "the question is an object, not text"),
    ('{"question": true, "answer": "2"}', [], "the question is true, not text"),
    ('{"question": "q", "answer": {"a": 1}}', [], "an object as its gold answer"),
    ('{"question": "q", "answer": false}', [], "false as its gold answer"),
    ('{"question": "q", "answer": [1, [2]]}', [], "a list as its gold answer"),
    ('{"question": "q", "answer": NaN}', [], "not a finite number"),
    ('{"q": "pick", "options": ' + json.dumps([str(i) for i in range(27)]) + ', "answer": "A"}',
     ["--question-template", "{q}\n{options:choices}"], "27 options: a multiple-choice row needs 1 to 26"),
    ('{"q": "pick", "options": [], "answer": "A"}', ["--question-template", "{q}\n{options:choices}"], "0 options"),
])
def test_benchmark_rows_that_cannot_be_stored_as_given_are_refused_in_one_line(tmp_path, line, extra, needle):
    bench = tmp_path / "bench.jsonl"
    bench.write_text(line + "\n", encoding="utf-8")
    refused(run("build", "--out", str(tmp_path / "out"), "--benchmark", str(bench), "--quiet", *extra), needle)
    assert not (tmp_path / "out").exists()


def test_numbers_as_golds_and_ids_keep_their_text(tmp_path):
    from tokenshift.builders.inputs.benchmarks import load_benchmark

    bench = tmp_path / "bench.jsonl"
    bench.write_text('{"question": "q", "answer": 27.0, "id": 7}\n{"question": "r", "answer": [1, 2.5], "id": 8}\n')
    problems = load_benchmark(str(bench))
    assert [(p.problem_id, p.gold_answer) for p in problems] == [("7", "27"), ("8", '["1", "2.5"]')]


# ---- values that make no sense: recipe parameters ----------------------------------------------------------------


@pytest.mark.parametrize("recipe, param, needle", [
    ("accuracy", "pass_k=0,-3", "parameter pass_k of recipe accuracy: 0 makes no sense"),
    ("position_concentration", "position_bins=-5", "position_bins of recipe position_concentration: -5 makes"),
    ("js_distribution", "js_thresholds=0.1,nan", "js_thresholds of recipe js_distribution: nan makes no sense"),
    ("entropy_vs_divergence", "fork_quantile=1.5", "from 0 to 1"),
    ("accuracy", "bootstrap_reps=0", "bootstrap_reps"),
])
def test_recipe_parameters_that_make_no_sense_are_refused(build, recipe, param, needle):
    refused(run("query", recipe, "--data", str(build), "--param", param), needle)


def test_every_numeric_recipe_parameter_has_a_range():
    from tokenshift.queries.recipes import PARAM_RANGES, load_recipe, recipe_names

    unranged = [(name, p.name) for name in recipe_names() for p in load_recipe(name).params.values()
                if p.sql_type.rstrip("[]") in ("INTEGER", "BIGINT", "DOUBLE") and p.name not in PARAM_RANGES]
    assert not unranged
    import tokenshift

    with pytest.raises(TokenshiftError, match="js_threshold of recipe position_concentration: nan"):
        tokenshift.query("position_concentration", Path("x"), js_threshold=float("nan"))  # before any source is read


# ---- the Python API: wrong argument types --------------------------------------------------------------------------


@pytest.mark.parametrize("call, needle", [
    (lambda t: t.open(b"demo/build"), "the source must be a path or text (got bytes"),
    (lambda t: t.query("accuracy", None), "the source must be a path or text (got NoneType"),
    (lambda t: t.BuildConfig(out="x", samples="two"), "--samples must be an integer (got 'two')"),
    (lambda t: t.BuildConfig(out="x", use_chat_template="no"), "--use-chat-template must be True or False"),
    (lambda t: t.CrossSampleConfig(out="x", budgets=("a",)), "--budgets must be a list of numbers"),
    (lambda t: t.ScoreConfig(top_k=1.5), "--top-k must be an integer (got 1.5)"),
    (lambda t: t.score_pair(None, {}, [1], [2], 10), "score_pair: base must be a loaded causal LM"),
    (lambda t: t.build("out"), "a build takes a BuildConfig, got str"),
    (lambda t: t.cross_sample({"out": "x"}), "cross-sampling takes a CrossSampleConfig, got dict"),
    (lambda t: t.validate(3), "the build folder must be a path or text (got int 3)"),
])
def test_the_python_api_raises_its_own_error_for_wrong_argument_types(call, needle):
    import tokenshift

    with pytest.raises(TokenshiftError) as caught:
        call(tokenshift)
    assert needle in str(caught.value) and "\n" not in str(caught.value)


def test_score_pair_refuses_ids_outside_the_vocabulary():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    import tokenshift

    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1))
    with pytest.raises(TokenshiftError, match="a token id is outside 0..15"):
        tokenshift.score_pair(model, {"rl": model}, [1, 2], [3, 16], 16)
    assert set(tokenshift.score_pair(model, {"rl": model}, [1, 2], [3, 15], 16)) == {"rl"}


# ---- tracebacks left: strings that are not UTF-8 inside parquet --------------------------------------------------


def test_parquet_strings_that_are_not_utf8_fail_validation_and_are_refused_by_readers(build, tmp_path):
    import pyarrow as pa

    part = build / "tokens" / "part-00000.parquet"
    table = pq.read_table(part)
    i = table.schema.get_field_index("token")
    raw = table.column(i).combine_chunks().cast(pa.binary())
    data = bytearray(raw.buffers()[2].to_pybytes())
    data[0] = 0xFF  # parquet stores the bytes; nothing on the way checks them
    bad = pa.Array.from_buffers(pa.string(), len(raw), [None, raw.buffers()[1], pa.py_buffer(bytes(data))])
    pq.write_table(table.set_column(i, table.schema.field(i), bad), part)
    refresh_manifest_tables(build)
    checked = run("validate", str(build))
    assert checked.exit_code == 1 and "Traceback" not in checked.output, checked.output
    assert "strings_are_utf8 on tokens.token: 1 bad rows" in checked.output and "tokens/part-00000.parquet" in checked.output
    refused(run("view", "--data", str(build), "--out", str(tmp_path / "pages")), "not valid UTF8", str(part))
    refused(run("query", "divergent_tokens", "--data", str(build)), "not valid UTF8", str(part))


# ---- a failed write names the file it was writing ------------------------------------------------------------


def test_a_write_the_os_refuses_names_the_real_file_and_its_disk(build):
    """A file-size limit makes write() itself fail (EFBIG, no file name in the error), as a full disk does."""
    import resource

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))  # the card is larger; the manifest is not rewritten

    done = subprocess.run([sys.executable, "-c", "from tokenshift.cli import main; main()", "card", str(build)],
                          preexec_fn=limited, capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("Error: File too large: ") and str(build / "README.md") in lines[0]
    assert "free on that disk" in lines[0] and "ulimit -f" in lines[0] and "unknown path" not in lines[0]
    assert not (build / "README.md").exists() and not [p for p in build.iterdir() if ".tmp-" in p.name]


def test_an_os_error_without_a_file_never_guesses_one():
    from tokenshift.runtime.files import describe_os_error

    line = describe_os_error(OSError(28, "No space left on device"))
    assert "No space left on device" in line and "free on that disk" not in line and "unknown path" not in line


def test_a_hub_model_is_loaded_at_its_recorded_commit_and_refused_without_one(tmp_path):
    from tokenshift.builders.engines.models import ModelSpec, pinned, verify_checkpoint

    hub = ModelSpec("rl", "org/model", None)
    assert pinned(hub, {"revision": "0123abcd"}) == ModelSpec("rl", "org/model", "0123abcd")
    local = ModelSpec("rl", str(tmp_path), None)
    assert pinned(local, {"revision": "0123abcd"}) == local  # a folder is checked by its hashes instead
    verify_checkpoint(hub, {"revision": "0123abcd"})
    with pytest.raises(TokenshiftError, match="records no Hub commit"):
        verify_checkpoint(hub, {"revision": None, "sha256": None})
