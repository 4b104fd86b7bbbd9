"""`tokenshift merge`: join the outputs of `build --shard I/N` runs into one build."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from pathlib import Path

from tokenshift.builders.cross_sampling.config import EXECUTION_FIELDS as CROSS_EXECUTION_FIELDS
from tokenshift.builders.cross_sampling.config import CrossSampleConfig
from tokenshift.builders.pipeline.build import command_line
from tokenshift.builders.pipeline.config import EXECUTION_FIELDS, BuildConfig
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.files import clean_leftovers, with_path
from tokenshift.runtime.shards import ShardSpec
from tokenshift.schemas import manifest
from tokenshift.schemas.registry import refuse_published_out
from tokenshift.schemas.tables import TABLE_FIELDS
from tokenshift.schemas.versions import build_version, upgrade_command, version_key

_PER_RUN = ("created_at", "build_seconds", "tables", "shard", "command", "config", "cross_sampling_command",
            "ungraded", "cross_sampling_runs", "cross_sampling", "cross_sampling_seconds")
_PER_SHARD = (*EXECUTION_FIELDS, "shard")  # config fields that may differ between the shards of a build


def _merged_import(records: list[dict]) -> dict:
    """The import block of merged shards: the source's counts as any shard has them, grading counts summed."""
    merged = {k: v for k, v in records[0].items() if k != "shard_note"}
    grading = dict(records[0].get("grading") or {})
    for key, value in grading.items():
        if isinstance(value, int):
            grading[key] = sum((r.get("grading") or {}).get(key, 0) for r in records)
    merged["grading"] = grading
    return merged


def _cross_identities(m: dict) -> dict[str, dict]:
    """Each cross-sampling run's config minus where it ran (`out`, shard, Ray), which differ per shard by design."""
    return {r["run_id"]: {k: v for k, v in r["config"].items() if k not in CROSS_EXECUTION_FIELDS}
            for r in m.get("cross_sampling_runs") or []}


def merge_builds(inputs: list[Path], out: Path) -> Path:
    """Copy every shard's parts into `out` and write one manifest; refuses gaps and mismatches."""
    if not inputs:
        raise TokenshiftError("merge needs at least one build directory")
    if out.exists() and not out.is_dir():
        raise TokenshiftError(f"--out {out} is a file: choose a new directory")
    refuse_published_out(out)
    if out.exists() and any(out.iterdir()):
        raise TokenshiftError(f"--out {out} is not empty: choose a new directory")
    manifests = []
    for path in inputs:
        if not (path / manifest.MANIFEST).is_file():
            raise TokenshiftError(f"{path} holds no finished build (no manifest.json): "
                                  "finish it with the same `tokenshift build --shard` command")
        found = manifest.require_keys(manifest.read_manifest(path), path)
        if not isinstance(found["config"], dict) or "shard" not in found["config"]:
            raise TokenshiftError(f"{path / manifest.MANIFEST} has no config.shard: it is not a "
                                  "`tokenshift build` manifest (rebuild with `tokenshift build`)")
        manifests.append(found)
    first = manifests[0]
    identity = {k: v for k, v in first["config"].items() if k not in _PER_SHARD}
    specs = []
    versions = [build_version(path, m) for path, m in zip(inputs, manifests)]
    for path, version in zip(inputs, versions):
        if version != versions[0]:  # checked before the configs: a newer tokenshift records more settings
            older = path if version_key(version) < version_key(versions[0]) else inputs[0]
            raise TokenshiftError(f"{path} follows schema version {version}, {inputs[0]} version {versions[0]}: a "
                                  "build is one version; merge shards built by one tokenshift, or run "
                                  f"`{upgrade_command(older)}` on the older first")
    for path, m in zip(inputs, manifests):
        other = {k: v for k, v in m["config"].items() if k not in _PER_SHARD}
        if other != identity:
            key = next(k for k in sorted(set(other) | set(identity)) if other.get(k) != identity.get(k))
            raise TokenshiftError(f"{path} was built with another config ({key}: {identity.get(key)!r} "
                                  f"vs {other.get(key)!r}): merge only shards of one build")
        if _cross_identities(m) != _cross_identities(first):
            raise TokenshiftError(f"{path} has other cross-sampling runs: merge only shards "
                                  "cross-sampled with the same commands")
        specs.append(ShardSpec.parse(m["config"]["shard"]))
    counts = {s.count for s in specs}
    indices = sorted(s.index for s in specs)
    if len(counts) != 1 or indices != list(range(counts.pop())):
        have = ", ".join(str(s) for s in specs)
        raise TokenshiftError(f"the shards given ({have}) are not exactly 0/N..N-1/N: "
                              "pass every shard of the build once")

    parts: dict[str, tuple[Path, dict]] = {}
    for path, m in zip(inputs, manifests):
        for table in manifest.listed_tables(m):
            for rel, entry in manifest.listed_files(m, table).items():
                parts[rel] = (path, entry)
    for table in TABLE_FIELDS:
        groups: dict[str, list[int]] = {}  # cross_samples: one group of parts per run (part-NNNNN-<run_id>)
        for rel in parts:
            if rel.startswith(f"{table}/"):
                _, number, *run = Path(rel).stem.split("-", 2)
                groups.setdefault("-".join(run), []).append(int(number))
        if any(sorted(names) != list(range(len(names))) for names in groups.values()):
            raise TokenshiftError(f"table {table} has missing parts after merging: "
                                  "rerun the unfinished shard builds")
    clean_leftovers(out.absolute().parent, recursive=False)
    tmp = out.with_name(f".{out.name}.merging-{os.getpid()}")
    try:
        for rel, (source, entry) in parts.items():
            _copy_verified(source, rel, entry, tmp)
        return _finish(inputs, manifests, first, parts, out, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _copy_verified(build: Path, rel: str, entry: dict, tmp: Path) -> None:
    """Copy one part, refusing it unless the bytes copied have the sha256 its build recorded."""
    manifest.verify_part(build, rel, entry, full=False)
    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    try:
        with (build / rel).open("rb") as src, (tmp / rel).open("wb") as dst:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                dst.write(block)
    except OSError as err:  # write() names no file: name the one being written
        raise (with_path(err, tmp / rel) if err.filename is None else err) from err
    if digest.hexdigest() != entry.get("sha256"):
        raise TokenshiftError(f"{build / rel} does not match the sha256 recorded in {build / manifest.MANIFEST} "
                              f"(changed or damaged since it was written): restore it or rebuild that shard")


def _finish(inputs, manifests, first, parts, out: Path, tmp: Path) -> Path:
    recorded_trust = first["config"].get("trust_remote_code") is True  # recorded as built; merge runs no model
    config = dataclasses.replace(BuildConfig.from_manifest(first, recorded_trust), out=str(out), shard="0/1",
                                 ray=None, ray_workers=None)
    merged = {k: v for k, v in first.items() if k not in _PER_RUN}
    runs = []
    for run in first.get("cross_sampling_runs") or []:
        cross = CrossSampleConfig.from_json({**run["config"], "out": str(out), "shard": "0/1",
                                             "ray": None, "ray_workers": None})
        rows = sum(m_run["rows"] for m in manifests for m_run in m["cross_sampling_runs"]
                   if m_run["run_id"] == run["run_id"])
        seconds = sum(m_run["seconds"] for m in manifests for m_run in m["cross_sampling_runs"]
                      if m_run["run_id"] == run["run_id"])
        runs.append({**run, "config": cross.as_json(), "command": cross.command_line(), "rows": rows,
                     "seconds": round(seconds, 1)})
    if runs:
        merged.update({"cross_sampling_runs": runs, "cross_sampling": runs[-1]["config"],
                       "cross_sampling_command": runs[-1]["command"], "cross_sampling_seconds": runs[-1]["seconds"]})
    merged.update({
        "created_at": max(m["created_at"] for m in manifests),
        "command": command_line(config),
        "config": config.recorded(),
        "shard": "0/1",
        "merged_from": [str(p) for p in inputs],
        "tables": manifest.tables_from_files({rel: entry for rel, (_, entry) in parts.items()}),
        "ungraded": {t: sum((m.get("ungraded") or {}).get(t, 0) for m in manifests)
                     for t in sorted({t for m in manifests for t in (m.get("ungraded") or {})})},
        "build_seconds": round(sum(m["build_seconds"] for m in manifests), 1),
    })
    if isinstance(first.get("import"), dict):  # imported answers: the shards' grading counts add up
        merged["import"] = _merged_import([m["import"] for m in manifests])
    manifest.write_manifest(tmp, merged)
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return out
