"""`tokenshift publish`: immutable local versions, atomic publishes, and the Hub plan up to the network call."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import datasets
import duckdb
import httpx2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from huggingface_hub import CommitInfo, CommitOperationAdd, CommitOperationDelete, GitRefs
from huggingface_hub.errors import RepositoryNotFoundError
from huggingface_hub.hf_api import GitRefInfo
from synthetic_build import make_build, refresh_manifest_tables

from tokenshift.cards.card import write_card
from tokenshift.cli import cli
from tokenshift.publish import hub as hub_module
from tokenshift.publish import local as local_module
from tokenshift.publish import resolve_version
from tokenshift.publish.hub import parse_hub_target, plan_hub_publish, publish_hub
from tokenshift.publish.local import publish_local
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.schemas.manifest import file_sha256, public_manifest, read_manifest
from tokenshift.schemas.registry import newest, validate_version, version_key

TOKEN = "hf_" + "Zq9" * 12  # a fake token; must never show up in any output


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    build = make_build(tmp_path_factory.mktemp("pristine") / "build")
    write_card(build)
    return build


@pytest.fixture()
def build(pristine, tmp_path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "build"))


def snapshot(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): file_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def publish_cli(*args: str):
    return CliRunner().invoke(cli, ["publish", *args])


# ---- local registry ------------------------------------------------------------------------------


def test_local_publish_end_to_end(build, tmp_path, monkeypatch):
    registry = tmp_path / "registry"
    result = publish_cli(str(build), "--to", str(registry), "--version", "v1.0.0")
    assert result.exit_code == 0, result.output
    version = resolve_version(registry, "latest")
    assert version == registry / "v1.0.0"
    manifest = read_manifest(build)
    published = snapshot(version)
    assert set(published) == {"README.md", "manifest.json",
                              *(rel for t in manifest["tables"].values() for rel in t["files"])}
    for table in manifest["tables"].values():
        assert all(published[rel] == entry["sha256"] for rel, entry in table["files"].items())
    # the shipped manifest is the build's without local paths, plus the publish block; tables unchanged
    shipped = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
    assert shipped == {**public_manifest(manifest), "published": {"version": "v1.0.0"}}
    assert shipped["tables"] == manifest["tables"]
    assert all(not os.access(version / rel, os.W_OK) or os.geteuid() == 0 for rel in published)
    assert all(((version / rel).stat().st_mode & 0o222) == 0 for rel in published)  # read-only files

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    for table, entry in manifest["tables"].items():
        assert datasets.load_dataset(str(version), table, split="train").num_rows == entry["rows"]
        count = duckdb.sql(f"SELECT count(*) FROM read_parquet('{version}/{table}/*.parquet')").fetchall()[0][0]
        assert count == entry["rows"]

    again = publish_cli(str(build), "--to", str(registry), "--version", "v1.0.0")
    assert again.exit_code == 2 and "v1.0.0 already exists" in again.output and "immutable" in again.output
    same = publish_cli(str(build), "--to", str(registry), "--version", "1.0.0")
    assert same.exit_code == 2 and "(as v1.0.0)" in same.output
    assert snapshot(version) == published and sorted(p.name for p in registry.iterdir()) == ["v1.0.0"]


def test_interrupted_publish_leaves_nothing_and_does_not_block(build, tmp_path, monkeypatch):
    registry = tmp_path / "registry"
    real_copy, calls = local_module.copy_file, []

    def failing_copy(source, destination):
        calls.append(source)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_copy(source, destination)

    monkeypatch.setattr(local_module, "copy_file", failing_copy)
    with pytest.raises(TokenshiftError, match="nothing was published"):
        publish_local(build, registry, "v2.0.0", echo=lambda _: None)
    assert list(registry.iterdir()) == []  # no version, no temporary folder
    (registry / ".publish-v2.0.0-killed").mkdir()  # what a killed process (no cleanup) leaves behind
    monkeypatch.setattr(local_module, "copy_file", real_copy)
    assert publish_local(build, registry, "v2.0.0", echo=lambda _: None) == registry / "v2.0.0"
    assert resolve_version(registry) == registry / "v2.0.0"
    shipped = json.loads((registry / "v2.0.0" / "manifest.json").read_text(encoding="utf-8"))
    assert shipped == {**public_manifest(read_manifest(build)), "published": {"version": "v2.0.0"}}


def test_dry_run_lists_files_and_changes_nothing(build, tmp_path):
    registry = tmp_path / "registry"
    result = publish_cli(str(build), "--to", str(registry), "--version", "v0.1.0", "--dry-run")
    assert result.exit_code == 0, result.output
    assert not registry.exists()
    for table in read_manifest(build)["tables"].values():
        for rel, entry in table["files"].items():
            assert any(rel in line and f"{entry['bytes']:,} bytes" in line for line in result.output.splitlines())
    assert "README.md" in result.output and "manifest.json" in result.output and "v0.1.0" in result.output


def test_refuses_invalid_build_missing_or_stale_card(build, tmp_path):
    registry = tmp_path / "registry"
    part = sorted((build / "tokens").glob("*.parquet"))[0]
    table = pq.read_table(part)
    js = table.column("js").to_pylist()
    js[0] = math.log(2) * 2
    pq.write_table(table.set_column(table.schema.get_field_index("js"), "js", pa.array(js, pa.float32())), part)
    refresh_manifest_tables(build)
    stale = publish_cli(str(build), "--to", str(registry), "--version", "v1.0.0")
    assert stale.exit_code == 2 and "stale" in stale.output and f"run `tokenshift card {build}`" in stale.output
    write_card(build)
    invalid = publish_cli(str(build), "--to", str(registry), "--version", "v1.0.0")
    assert invalid.exit_code == 2 and "fails validation" in invalid.output and "tokens.js" in invalid.output
    assert len(invalid.output.strip().splitlines()) == 1 and "Traceback" not in invalid.output
    (build / "README.md").unlink()
    missing = publish_cli(str(build), "--to", str(registry), "--version", "v1.0.0")
    assert missing.exit_code == 2 and "README.md is missing: run `tokenshift card" in missing.output
    assert not registry.exists()


def test_version_names_and_latest_ordering(tmp_path):
    for bad in ("latest", "LATEST", "../v1", "a/b", "a\\b", "", ".hidden", "v1..2", "v1.lock"):
        with pytest.raises(TokenshiftError):
            validate_version(bad)
    assert validate_version("v1.2.0") == "v1.2.0"
    assert version_key("v1.2.0") == version_key("1.2.0") == version_key("1.2")
    assert version_key("v1.10.0") > version_key("v1.9.3") > version_key("v1.9.3-rc.2") > version_key("v1.9.3-rc.1")
    assert newest(["v1.2.0", "1.10.0", "v1.9.0", "v2.0.0-rc.1", "nightly"]) == "1.10.0"  # releases first
    assert newest(["v2.0.0-rc.1", "v2.0.0-rc.10", "v2.0.0-rc.9"]) == "v2.0.0-rc.10"
    registry = tmp_path / "registry"
    for name in ("v1.2.0", "v1.10.0", "v1.9.0", ".publish-v9.0.0-x", "nightly"):
        (registry / name).mkdir(parents=True)
        (registry / name / "manifest.json").write_text("{}")
    assert resolve_version(registry, "latest") == registry / "v1.10.0"
    assert resolve_version(registry, "nightly") == registry / "nightly"
    with pytest.raises(TokenshiftError, match="not in"):
        resolve_version(registry, "v9.0.0")
    with pytest.raises(TokenshiftError, match="no published versions"):
        resolve_version(tmp_path / "empty")


# ---- Hub: everything up to the network -------------------------------------------------------------


class FakeHfApi:
    """Records calls; answers like HfApi for a repo with the given tags and files (or no repo)."""

    def __init__(self, tags=(), files=(), exists=True, fail_on=None):
        self.tags, self.files, self.exists, self.fail_on = list(tags), list(files), exists, fail_on
        self.calls: list[tuple[str, tuple, dict]] = []

    def _record(self, name, *args, **kwargs):
        self.calls.append((name, args, kwargs))
        if name == self.fail_on:
            raise RuntimeError(f"401 Unauthorized for token {TOKEN}")

    def list_repo_refs(self, repo_id, *, repo_type=None, **kwargs):
        self._record("list_repo_refs", repo_id, repo_type=repo_type)
        if not self.exists:
            request = httpx2.Request("GET", f"https://huggingface.co/api/datasets/{repo_id}/refs")
            raise RepositoryNotFoundError("404 not found", response=httpx2.Response(404, request=request))
        info = lambda name, kind: GitRefInfo(name=name, ref=f"refs/{kind}/{name}", target_commit="a" * 40)  # noqa: E731
        return GitRefs(branches=[info("main", "heads")], converts=[], tags=[info(t, "tags") for t in self.tags])

    def list_repo_files(self, repo_id, *, revision=None, repo_type=None, **kwargs):
        self._record("list_repo_files", repo_id, revision=revision, repo_type=repo_type)
        return list(self.files)

    def create_repo(self, repo_id, **kwargs):
        self._record("create_repo", repo_id, **kwargs)

    def create_commit(self, repo_id, operations, *, commit_message, **kwargs):
        self._record("create_commit", repo_id, operations=list(operations), commit_message=commit_message, **kwargs)
        return CommitInfo(commit_url=f"https://huggingface.co/datasets/{repo_id}/commit/{'b' * 40}",
                          commit_message=commit_message, commit_description="", oid="b" * 40)

    def create_tag(self, repo_id, *, tag, **kwargs):
        self._record("create_tag", repo_id, tag=tag, **kwargs)

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


def test_hub_target_parsing():
    assert parse_hub_target("hf://datasets/org/name") == "org/name"
    assert parse_hub_target("/some/local/path") is None
    for bad in ("hf://models/org/name", "hf://datasets/org", "hf://datasets/org/name/extra", "hf://datasets/../x",
                "s3://bucket/registry"):
        with pytest.raises(TokenshiftError, match="hf://datasets/ORG/NAME"):
            parse_hub_target(bad)


def test_plan_uses_hub_types_and_deletes_only_stale_parts(build):
    manifest = read_manifest(build)
    existing = ["tokens/part-00007.parquet", "tokens/part-00000.parquet", ".gitattributes", "notes/extra.parquet",
                "README.md"]
    plan = plan_hub_publish(build, "org/name", "v1.0.0", existing)
    adds = [op for op in plan.operations if isinstance(op, CommitOperationAdd)]
    deletes = [op for op in plan.operations if isinstance(op, CommitOperationDelete)]
    parquet = {rel: e for t in manifest["tables"].values() for rel, e in t["files"].items()}
    assert {op.path_in_repo for op in adds} == {*parquet, "README.md", "manifest.json"}
    assert all(Path(op.path_or_fileobj) == build / op.path_in_repo for op in adds if op.path_in_repo != "manifest.json")
    shipped = next(op.path_or_fileobj for op in adds if op.path_in_repo == "manifest.json")
    assert json.loads(shipped) == {**public_manifest(manifest), "published": {"version": "v1.0.0"}}
    assert {op.path_in_repo: op.upload_info.size for op in adds if op.path_in_repo in parquet} == \
        {rel: e["bytes"] for rel, e in parquet.items()}
    assert [op.path_in_repo for op in deletes] == ["tokens/part-00007.parquet"]
    assert plan.tag == "v1.0.0" and plan.repo_id == "org/name"


def test_hub_publish_commits_once_then_tags(build):
    api = FakeHfApi(tags=["v0.9.0"], files=["tokens/part-00009.parquet", "README.md"])
    plan = publish_hub(build, "org/name", "v1.0.0", api=api, echo=lambda _: None)
    assert api.names() == ["list_repo_refs", "list_repo_files", "create_commit", "create_tag"]
    _, args, commit = api.calls[2]
    assert args == ("org/name",) and commit["repo_type"] == "dataset" and commit["parent_commit"] == "a" * 40
    assert commit["operations"] == list(plan.operations)
    assert "tokens/part-00009.parquet" in plan.deletions
    _, _, tag = api.calls[3]
    assert tag == {"tag": "v1.0.0", "revision": "b" * 40, "repo_type": "dataset", "tag_message": plan.commit_message}


def test_hub_publish_creates_a_missing_repo(build):
    api = FakeHfApi(exists=False)
    publish_hub(build, "org/new", "v1.0.0", api=api, echo=lambda _: None)
    assert api.names() == ["list_repo_refs", "create_repo", "create_commit", "create_tag"]
    assert api.calls[1][2] == {"repo_type": "dataset", "exist_ok": True}
    assert api.calls[2][2]["parent_commit"] is None


def test_hub_existing_tag_is_never_moved(build):
    for existing in ("v1.0.0", "1.0.0"):
        api = FakeHfApi(tags=[existing])
        with pytest.raises(TokenshiftError, match="already exists in org/name.*immutable"):
            publish_hub(build, "org/name", "v1.0.0", api=api, echo=lambda _: None)
        assert "create_commit" not in api.names() and "create_tag" not in api.names()


def test_hub_cli_dry_run_and_errors_never_show_the_token(build, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    apis: list[FakeHfApi] = []
    monkeypatch.setattr(hub_module, "HfApi", lambda: apis[-1])
    apis.append(FakeHfApi(files=["tokens/part-00009.parquet"]))
    dry = publish_cli(str(build), "--to", "hf://datasets/org/name", "--version", "v1.0.0", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "tag: v1.0.0" in dry.output and "delete: tokens/part-00009.parquet" in dry.output
    assert "README.md" in dry.output and "bytes" in dry.output
    assert apis[-1].names() == ["list_repo_refs", "list_repo_files"]  # reads only
    apis.append(FakeHfApi(fail_on="create_commit"))
    failed = publish_cli(str(build), "--to", "hf://datasets/org/name", "--version", "v1.0.0")
    assert failed.exit_code == 2 and failed.output.startswith("Error: Hub commit failed")
    assert "create_tag" not in apis[-1].names()
    for output in (dry.output, failed.output):
        assert TOKEN not in output
    assert "***" in failed.output
    assert TOKEN not in json.dumps(read_manifest(build)) and TOKEN not in (build / "README.md").read_text()
