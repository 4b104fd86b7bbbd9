"""A local registry of published versions: version names and their ordering, resolving a registry's versions,
and the rule that nothing writes into a published version or a registry."""

from __future__ import annotations

import re
from pathlib import Path

from tokenshift.runtime.errors import TokenshiftError
from tokenshift.schemas.manifest import MANIFEST, is_published, published_ancestor

LATEST = "latest"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")  # always fullmatch: `$` would accept a trailing newline
_SEMVER = re.compile(r"v?(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?"
                     r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?")


def validate_version(name: str) -> str:
    """`name` if it can name a version (a folder and a git tag); a one-line error otherwise."""
    if name.lower() == LATEST:
        raise TokenshiftError(f"'{name}' is reserved (it resolves to the newest version): choose e.g. v1.0.0")
    if not _NAME.fullmatch(name) or ".." in name or name.endswith((".", ".lock")):
        raise TokenshiftError(f"{name!r} is not a valid version name: use letters, digits and . _ + - "
                              "(no path separators), e.g. v1.0.0")
    return name


def version_key(name: str) -> tuple | None:
    """Semantic-version sort key of `name` (v1.2.0, 1.2.0, 1.2, v2.0.0-rc.1), or None if it is not one."""
    match = _SEMVER.fullmatch(name)
    if not match:
        return None
    major, minor, patch, pre = match.groups()
    numbers = tuple(int(x or 0) for x in (major, minor, patch))
    if pre is None:
        return (*numbers, (1,))  # a release sorts after its pre-releases
    return (*numbers, (0, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))))


def is_prerelease(name: str) -> bool:
    key = version_key(name)
    return key is not None and key[3][0] == 0


def clashing_version(existing: list[str], name: str) -> str | None:
    """An existing version equal to `name`, by name or by semantic version (v1.2.0 == 1.2.0 == 1.2)."""
    key = version_key(name)
    for other in existing:
        if other == name or (key is not None and version_key(other) == key):
            return other
    return None


def refuse_existing(existing: list[str], version: str, where: str, what: str = "version") -> None:
    """A one-line error if `version` (or a semantic equal) is already among `existing`: versions are immutable."""
    clash = clashing_version(existing, version)
    if clash is not None:
        same = "" if clash == version else f" (as {clash})"
        raise TokenshiftError(f"{what} {version} already exists in {where}{same}: published versions are "
                              "immutable, choose a new --version")


def newest(names: list[str]) -> str | None:
    """The highest semantic version among `names`, releases before pre-releases; None if none is semantic."""
    semantic = [n for n in names if version_key(n) is not None]
    releases = [n for n in semantic if not is_prerelease(n)]
    pool = releases or semantic
    return max(pool, key=version_key) if pool else None


def published_versions(target: str | Path) -> dict[str, Path]:
    """Versions of a local registry: its non-hidden folders holding a manifest (temporary folders are hidden)."""
    root = Path(target)
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir())
            if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file()}


def resolve_version(target: str | Path, version: str = LATEST) -> Path:
    """The folder of `version` in the local registry at `target`; "latest" is the newest semantic version."""
    versions = published_versions(target)
    if not versions:
        raise TokenshiftError(f"no published versions in {target}: publish one with "
                              f"`tokenshift publish DIR --to {target} --version v1.0.0`")
    if version.lower() == LATEST:
        name = newest(list(versions))
        if name is None:
            raise TokenshiftError(f"{target} holds no semantic versions (like v1.0.0) to call latest: "
                                  f"name one of {', '.join(versions)}")
        return versions[name]
    if version not in versions:
        raise TokenshiftError(f"version {version!r} is not in {target}: choose one of {', '.join(versions)} "
                              "or 'latest'")
    return versions[version]


def refuse_published_out(out: Path, flag: str = "--out") -> None:
    """Refuse writing into a published version, a registry, or a new folder inside a registry."""
    version = published_ancestor(out)
    if version is not None:
        where = "is" if version == out.absolute() else f"is inside {version},"
        raise TokenshiftError(f"{flag} {out} {where} a published version: published versions are immutable; "
                              "build into a new folder and publish it as a new --version")
    for folder, what in ((out, "is"), (out.parent, "is inside")):
        if any(is_published(v) for v in published_versions(folder).values()):
            raise TokenshiftError(f"{flag} {out} {what} a registry of published versions: choose a folder "
                                  "outside it (publish puts builds there)")
