"""Publishing to a local registry: TARGET/VERSION/..., written in a hidden temporary folder and renamed into place."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from tokenshift.publish.contents import format_plan, prepare, read_lock, refuse_nesting
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.files import clean_leftovers
from tokenshift.schemas.registry import published_versions, refuse_existing, validate_version

_READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


def copy_file(source: Path, destination: Path, data: bytes | None = None) -> str:
    """Copy in 1 MiB blocks (or write `data`), returning the sha256 of the bytes written."""
    digest = hashlib.sha256()
    destination.parent.mkdir(parents=True, exist_ok=True)
    with (io.BytesIO(data) if data is not None else source.open("rb")) as src, destination.open("wb") as dst:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
            dst.write(block)
        dst.flush()
        os.fsync(dst.fileno())
    return digest.hexdigest()


def publish_local(build_dir: str | Path, target: str | Path, version: str, dry_run: bool = False,
                  echo: Callable[[str], None] = print) -> Path:
    """Publish a valid, carded build as the immutable TARGET/VERSION; returns that folder.

    Refuses an existing version (also v1.2.0 vs 1.2.0). Files are copied into a hidden temporary
    folder inside TARGET, verified against their hashes, made read-only, and the folder is renamed
    into place last: an interrupted publish leaves no version, and later publishes ignore hidden folders.
    """
    build, root = Path(build_dir), Path(target)
    if root.exists() and not root.is_dir():
        raise TokenshiftError(f"--to {root} is a file: choose a directory for the registry")
    refuse_nesting(build, root)
    with read_lock(build, "tokenshift publish"):
        return _publish_locked(build, root, version, dry_run, echo)


def _publish_locked(build: Path, root: Path, version: str, dry_run: bool, echo: Callable[[str], None]) -> Path:
    version = validate_version(version)
    prepared = prepare(build, version, check_destination=lambda: _refuse_existing(root, version))
    destination, files = root / version, prepared.files
    if dry_run:
        echo(format_plan(files, str(destination), [f"  version: {version} (new folder {destination})",
                                                   "dry run: nothing was written"]))
        return destination
    root.mkdir(parents=True, exist_ok=True)
    clean_leftovers(root, recursive=False)
    staging = Path(tempfile.mkdtemp(prefix=f".publish-{version}-p{os.getpid()}-", dir=root))
    os.chmod(staging, 0o755)  # mkdtemp makes it private; the version folder is for every reader
    try:
        for f in files:
            try:
                written = (copy_file(f.source, staging / f.relpath) if f.data is None
                           else copy_file(f.source, staging / f.relpath, f.data))
            except OSError as err:
                raise TokenshiftError(f"copying {f.relpath} to {root} failed ({err}): nothing was published; "
                                      "fix the cause and publish again") from None
            if written != f.sha256:
                raise TokenshiftError(f"{f.source} changed while publishing (sha256 differs from the manifest): "
                                      f"nothing was published; run `tokenshift validate {build}`")
            os.chmod(staging / f.relpath, _READ_ONLY)
        _refuse_existing(root, version)  # another publish may have won the race meanwhile
        os.rename(staging, destination)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    echo(f"published {build} as {destination} ({len(files)} files, {sum(f.bytes for f in files):,} bytes)")
    return destination


def _refuse_existing(root: Path, version: str) -> None:
    existing = list(published_versions(root))
    if (root / version).exists():  # even a folder that is not a version blocks the rename
        existing.append(version)
    refuse_existing(existing, version, str(root))
