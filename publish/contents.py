"""What a publish ships (listed parquet parts, card, manifest) and the checks a build must pass first."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tokenshift.cards.card import check_card
from tokenshift.errors import TokenshiftError
from tokenshift.schemas.manifest import CARD, MANIFEST, file_sha256, listed_files, load_manifest
from tokenshift.schemas.tables import TABLE_FIELDS


@dataclass(frozen=True)
class PublishFile:
    """One file to publish: its path inside the version, its source, size and sha256."""

    relpath: str
    source: Path
    bytes: int
    sha256: str


def publish_files(build_dir: str | Path, manifest: dict) -> list[PublishFile]:
    """Every parquet part the manifest lists (with the manifest's hashes), then README.md and manifest.json."""
    build = Path(build_dir)
    files = []
    for table in TABLE_FIELDS:
        for rel, entry in sorted(listed_files(manifest, table).items()):
            files.append(PublishFile(rel, build / rel, int(entry["bytes"]), entry["sha256"]))
    for name in (CARD, MANIFEST):
        path = build / name
        files.append(PublishFile(name, path, path.stat().st_size, file_sha256(path)))
    return files


def format_plan(files: list[PublishFile], destination: str, extra: list[str] = ()) -> str:
    """The dry-run listing: one line per file with its size, the total, then `extra` lines (tag, deletions)."""
    width = max(len(f.relpath) for f in files)
    lines = [f"would publish {len(files)} files to {destination}:"]
    lines += [f"  {f.relpath.ljust(width)}  {f.bytes:>12,} bytes  sha256 {f.sha256[:12]}" for f in files]
    lines.append(f"  total {sum(f.bytes for f in files):,} bytes")
    return "\n".join([*lines, *extra])


def checked_build(build_dir: str | Path, repo_id: str | None = None) -> dict:
    """The manifest of a build whose card is present and fresh; a one-line error naming the fix otherwise."""
    build = Path(build_dir)
    manifest = load_manifest(build)
    check_card(build, manifest, repo_id)
    return manifest


def require_valid(build_dir: str | Path) -> None:
    """Run `tokenshift validate` checks; refuse (one line, naming the first failure) if any fails."""
    from tokenshift.schemas.report import describe_failure
    from tokenshift.schemas.validate import validate_build

    report = validate_build(build_dir)
    if not report.ok:
        first = report.failures[0]
        raise TokenshiftError(f"{build_dir} fails validation ({len(report.failures)} failed checks, first: "
                              f"{describe_failure(first)}): run `tokenshift validate {build_dir}` and fix the build")
