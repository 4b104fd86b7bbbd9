"""`tokenshift merge`: join the outputs of `build --shard I/N` runs into one build."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from tokenshift.builders import manifest
from tokenshift.builders.build import EXECUTION_FIELDS, BuildConfig, command_line
from tokenshift.builders.cross_sample import EXECUTION_FIELDS as CROSS_EXECUTION_FIELDS
from tokenshift.builders.cross_sample import CrossSampleConfig
from tokenshift.builders.shards import ShardSpec
from tokenshift.errors import TokenshiftError
from tokenshift.schemas.tables import TABLE_FIELDS

_PER_RUN = ("created_at", "build_seconds", "tables", "shard", "command", "config", "cross_sampling_command")
_PER_SHARD = (*EXECUTION_FIELDS, "shard")  # config fields that may differ between the shards of a build


def _cross_identity(block: dict | None) -> dict | None:
    """A cross-sampling config minus where it ran (`out`, shard, Ray), which differ per shard by design."""
    return None if block is None else {k: v for k, v in block.items() if k not in CROSS_EXECUTION_FIELDS}


def merge_builds(inputs: list[Path], out: Path) -> Path:
    """Copy every shard's parts into `out` and write one manifest; refuses gaps and mismatches."""
    if not inputs:
        raise TokenshiftError("merge needs at least one build directory")
    if out.exists() and any(out.iterdir()):
        raise TokenshiftError(f"--out {out} is not empty: choose a new directory")
    manifests = []
    for path in inputs:
        if not (path / manifest.MANIFEST).is_file():
            raise TokenshiftError(f"{path} holds no finished build (no manifest.json): "
                                  "finish it with the same `tokenshift build --shard` command")
        manifests.append(manifest.read_manifest(path))
    first = manifests[0]
    identity = {k: v for k, v in first["config"].items() if k not in _PER_SHARD}
    specs = []
    for path, m in zip(inputs, manifests):
        other = {k: v for k, v in m["config"].items() if k not in _PER_SHARD}
        if other != identity:
            key = next(k for k in sorted(set(other) | set(identity)) if other.get(k) != identity.get(k))
            raise TokenshiftError(f"{path} was built with another config ({key}: {identity.get(key)!r} "
                                  f"vs {other.get(key)!r}): merge only shards of one build")
        if _cross_identity(m.get("cross_sampling")) != _cross_identity(first.get("cross_sampling")):
            raise TokenshiftError(f"{path} has another cross-sampling config: merge only shards "
                                  "cross-sampled with the same command")
        specs.append(ShardSpec.parse(m["config"]["shard"]))
    counts = {s.count for s in specs}
    indices = sorted(s.index for s in specs)
    if len(counts) != 1 or indices != list(range(counts.pop())):
        have = ", ".join(str(s) for s in specs)
        raise TokenshiftError(f"the shards given ({have}) are not exactly 0/N..N-1/N: "
                              "pass every shard of the build once")

    parts: dict[str, Path] = {}
    for path, m in zip(inputs, manifests):
        for table in m["tables"].values():
            for rel in table["files"]:
                parts[rel] = path / rel
    for table in TABLE_FIELDS:
        names = sorted(int(Path(rel).stem.split("-")[1]) for rel in parts if rel.startswith(f"{table}/"))
        if names and names != list(range(len(names))):
            raise TokenshiftError(f"table {table} has missing parts after merging: "
                                  "rerun the unfinished shard builds")
    tmp = out.with_name(f".{out.name}.merging")
    shutil.rmtree(tmp, ignore_errors=True)
    for rel, source in parts.items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, tmp / rel)
    config = BuildConfig(**{**first["config"], "rl": tuple(first["config"]["rl"]), "out": str(out),
                            "shard": "0/1", "ray": None, "ray_workers": None})
    merged = {k: v for k, v in first.items() if k not in _PER_RUN}
    if first.get("cross_sampling") is not None:
        cross = CrossSampleConfig.from_json({**first["cross_sampling"], "out": str(out), "shard": "0/1",
                                             "ray": None, "ray_workers": None})
        merged["cross_sampling"] = cross.as_json()
        merged["cross_sampling_command"] = cross.command_line()
    merged.update({
        "created_at": max(m["created_at"] for m in manifests),
        "command": command_line(config),
        "config": dataclasses.asdict(config),
        "shard": "0/1",
        "merged_from": [str(p) for p in inputs],
        "tables": manifest.table_entries(tmp),
        "build_seconds": round(sum(m["build_seconds"] for m in manifests), 1),
    })
    manifest.write_json_atomic(tmp / manifest.MANIFEST, merged)
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return out
