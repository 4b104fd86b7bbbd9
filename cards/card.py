"""Writing DIR/README.md and telling whether it still describes the build (manifest fingerprint)."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import DatasetCard

from tokenshift.cards.figures import headline_figures
from tokenshift.cards.render import render_card
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.files import atomic_path
from tokenshift.runtime.lock import folder_lock
from tokenshift.schemas.manifest import (
    CARD,
    is_published,
    manifest_fingerprint,
    public_manifest,
    read_manifest,
    verify_tables,
)
from tokenshift.schemas.versions import build_version


def card_marker(path: str | Path) -> dict | None:
    """The `tokenshift` block of a card's YAML (fingerprint, versions), or None if it has none or is unreadable."""
    try:
        card = DatasetCard.load(Path(path))
    except Exception:  # noqa: BLE001  (any unreadable card is simply "not ours")
        return None
    marker = card.data.to_dict().get("tokenshift")
    return marker if isinstance(marker, dict) and marker.get("manifest_sha256") else None


def write_card(build_dir: str | Path, license: str = "apache-2.0", repo_id: str | None = None,
               force: bool = False) -> Path:
    """Write DIR/README.md from the manifest and the tables; refuses to replace a README it did not write."""
    build = Path(build_dir)
    read_manifest(build)
    if is_published(build):
        raise TokenshiftError(f"{build} is a published version: published versions are immutable (the card "
                              "is written in the build folder before publishing)")
    with folder_lock(build, "tokenshift card"):
        return _write_locked(build, license, repo_id, force)


def _write_locked(build: Path, license: str, repo_id: str | None, force: bool) -> Path:
    manifest = read_manifest(build)
    verify_tables(build, manifest)  # figures are read from the parts, as the manifest recorded them
    path = build / CARD
    if path.exists() and not force and card_marker(path) is None:
        raise TokenshiftError(f"{path} exists and was not written by `tokenshift card`: move it aside "
                              "or pass --force to replace it")
    fingerprint = manifest_fingerprint(manifest)
    card = render_card(public_manifest(manifest), headline_figures(build), fingerprint, license, repo_id,
                       build_version(build, manifest))
    with atomic_path(path) as tmp:
        card.save(tmp)
        if (card_marker(tmp) or {}).get("manifest_sha256") != fingerprint:  # parse it back before it replaces anything
            raise TokenshiftError(f"the card written for {build} does not parse back: report this as a bug")
    return path


def check_card(build_dir: str | Path, manifest: dict | None = None, repo_id: str | None = None) -> Path:
    """The card's path if it exists and matches the manifest (and repo_id, when it names one); else a one-line error."""
    build = Path(build_dir)
    manifest = manifest if manifest is not None else read_manifest(build)
    path = build / CARD
    fix = f"run `tokenshift card {build}`"
    if not path.is_file():
        raise TokenshiftError(f"{path} is missing: {fix} to write the dataset card")
    marker = card_marker(path)
    if marker is None:
        raise TokenshiftError(f"{path} is not a tokenshift dataset card: {fix} (with --force to replace it)")
    if marker["manifest_sha256"] != manifest_fingerprint(manifest):
        raise TokenshiftError(f"{path} is stale (the manifest changed since it was written): {fix}")
    if repo_id and marker.get("repo_id") not in (None, repo_id):
        raise TokenshiftError(f"{path} was written for {marker['repo_id']}, not {repo_id}: "
                              f"run `tokenshift card {build} --repo-id {repo_id}`")
    return path
