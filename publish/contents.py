"""The preparation every publish target shares: checks, then what ships (listed parts, card, published manifest)."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tokenshift.cards.card import check_card
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.lock import folder_lock
from tokenshift.schemas.manifest import (
    CARD,
    MANIFEST,
    PUBLISHED,
    file_sha256,
    is_published,
    listed_files,
    public_manifest,
    read_manifest,
)
from tokenshift.schemas.registry import validate_version
from tokenshift.schemas.report import describe_failure
from tokenshift.schemas.tables import TABLE_FIELDS
from tokenshift.schemas.validate import validate_build


@dataclass(frozen=True)
class PublishFile:
    """One file to publish: its path inside the version, its source, size and sha256."""

    relpath: str
    source: Path
    bytes: int
    sha256: str
    data: bytes | None = None  # content made by the publish itself (the published manifest), else None


def shipped_manifest(manifest: dict, version: str) -> bytes:
    """The manifest a version ships: no local paths, plus the publish block that marks it immutable."""
    payload = {**public_manifest(manifest), PUBLISHED: {"version": version}}
    return (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def publish_files(build_dir: str | Path, manifest: dict, version: str = "unversioned") -> list[PublishFile]:
    """Every parquet part the manifest lists (with the manifest's hashes), README.md, then the published manifest."""
    build = Path(build_dir)
    files = []
    for table in TABLE_FIELDS:
        for rel, entry in sorted(listed_files(manifest, table).items()):
            files.append(PublishFile(rel, build / rel, int(entry["bytes"]), entry["sha256"]))
    card = build / CARD
    files.append(PublishFile(CARD, card, card.stat().st_size, file_sha256(card)))
    data = shipped_manifest(manifest, version)
    files.append(PublishFile(MANIFEST, build / MANIFEST, len(data), hashlib.sha256(data).hexdigest(), data))
    return files


def read_lock(build_dir: str | Path, what: str):
    """The build's lock, shared, while it is published (none for a published version: nothing writes there)."""
    if is_published(build_dir) or not (Path(build_dir) / MANIFEST).is_file():
        return contextlib.nullcontext()  # (no build: the checks that follow refuse it without writing)
    return folder_lock(build_dir, what, shared=True)


def refuse_nesting(build_dir: str | Path, target: str | Path) -> None:
    """Refuse a local target inside the build, or a build inside the target: either would publish into itself."""
    build, root = Path(build_dir).resolve(), Path(target).resolve()
    if root == build or build in root.parents:
        raise TokenshiftError(f"--to {target} is inside the build {build_dir}: choose a registry folder outside it")
    if root in build.parents:
        raise TokenshiftError(f"the build {build_dir} is inside the registry {target}: move the build out of "
                              "the registry (or choose another --to)")


def format_plan(files: list[PublishFile], destination: str, extra: list[str] = ()) -> str:
    """The dry-run listing: one line per file with its size, the total, then `extra` lines (tag, deletions)."""
    width = max(len(f.relpath) for f in files)
    lines = [f"would publish {len(files)} files to {destination}:"]
    lines += [f"  {f.relpath.ljust(width)}  {f.bytes:>12,} bytes  sha256 {f.sha256[:12]}" for f in files]
    lines.append(f"  total {sum(f.bytes for f in files):,} bytes")
    return "\n".join([*lines, *extra])


@dataclass(frozen=True)
class Prepared:
    """A build ready to ship: its manifest and every file a version holds (the published manifest last)."""

    build: Path
    version: str
    manifest: dict
    files: tuple[PublishFile, ...]


def prepare(build_dir: str | Path, version: str, repo_id: str | None = None,
            check_destination: Callable[[], None] = lambda: None) -> Prepared:
    """The steps every target shares: version name, fresh card, the target's own check, validation, file list."""
    build = Path(build_dir)
    version = validate_version(version)
    manifest = checked_build(build, repo_id)
    check_destination()  # e.g. the version or tag exists already: refused before the slower validation
    require_valid(build)
    return Prepared(build, version, manifest, tuple(publish_files(build, manifest, version)))


def checked_build(build_dir: str | Path, repo_id: str | None = None) -> dict:
    """The manifest of a build whose card is present and fresh; a one-line error naming the fix otherwise."""
    build = Path(build_dir)
    manifest = read_manifest(build)
    check_card(build, manifest, repo_id)
    return manifest


def require_valid(build_dir: str | Path) -> None:
    """Run `tokenshift validate` checks; refuse (one line, naming the first failure) if any fails."""
    report = validate_build(build_dir)
    if not report.ok:
        first = report.failures[0]
        raise TokenshiftError(f"{build_dir} fails validation ({len(report.failures)} failed checks, first: "
                              f"{describe_failure(first)}): run `tokenshift validate {build_dir}` and fix the build")
