"""Where the tables come from (build dir, registry version, Hub dataset) and the SQL preamble that views them."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from tokenshift.errors import TokenshiftError

TABLES = ("prompts", "generations", "tokens", "cross_samples")
REQUIRED = ("prompts", "generations", "tokens")
OPTIONAL = ("cross_samples",)
_HF = re.compile(r"^hf://datasets/([\w.-]+)/([\w.-]+)(?:@([^/\s']+))?/?$")


@dataclass(frozen=True)
class Source:
    kind: str                   # 'local' or 'hf'
    root: str                   # directory path, or 'hf://datasets/ORG/NAME[@REV]'
    tables: tuple[str, ...]     # tables the source has (hf: assumed, cross_samples checked on connect)
    spec: str                   # what the user gave

    def glob(self, table: str) -> str:
        """The parquet glob of `table` under this source."""
        return f"{self.root.rstrip('/')}/{table}/*.parquet"


def resolve_source(spec: str | os.PathLike | Source) -> Source:
    """Turn DIR, REGISTRY@VERSION, REGISTRY@latest or hf://datasets/ORG/NAME@VERSION into a Source."""
    if isinstance(spec, Source):
        return spec
    text = os.fspath(spec).strip()
    if text.startswith("hf://"):
        if not _HF.match(text):
            raise TokenshiftError(f"not a Hub dataset source: {text!r}; expected hf://datasets/ORG/NAME@VERSION")
        return Source("hf", text.rstrip("/"), TABLES, text)
    path = Path(text).expanduser()
    if not path.exists() and "@" in text:
        registry, version = text.rsplit("@", 1)
        path = resolve_version(Path(registry).expanduser(), version)
    return _local(path, text)


def resolve_version(registry: Path, version: str) -> Path:
    """REGISTRY/VERSION; `latest` = REGISTRY/latest if present, else the highest version holding a build."""
    try:  # the publisher's resolver, once it exists, is the authority on the registry layout
        from tokenshift.publish import resolve_version as publish_resolve  # type: ignore[attr-defined]
    except ImportError:
        publish_resolve = None
    if publish_resolve is not None:
        try:
            return Path(publish_resolve(registry, version))
        except TokenshiftError:
            raise
        except Exception:  # noqa: BLE001 - unknown signature or layout: fall back to ours
            pass
    if not registry.is_dir():
        raise TokenshiftError(f"registry {str(registry)!r} not found (source {registry}@{version})")
    if version != "latest":
        path = registry / version
        if not path.is_dir():
            versions = ", ".join(_versions(registry)) or "none"
            raise TokenshiftError(f"version {version!r} not in registry {registry}; versions: {versions}")
        return path
    if (registry / "latest").is_dir():
        return (registry / "latest").resolve()
    versions = _versions(registry)
    if not versions:
        raise TokenshiftError(f"registry {registry} holds no published version")
    return registry / versions[-1]


def _versions(registry: Path) -> list[str]:
    """Version directories holding a build, lowest to highest (numeric parts compared as numbers)."""
    found = [p.name for p in registry.iterdir()
             if p.is_dir() and p.name != "latest" and not p.name.startswith(".") and _missing(p) == []]

    def key(name: str) -> list[tuple[int, int | str]]:
        return [(0, int(part)) if part.isdigit() else (1, part) for part in re.findall(r"\d+|[^\d.\-_]+", name)]

    return sorted(found, key=key)


def _missing(path: Path) -> list[str]:
    return [t for t in REQUIRED if not any((path / t).glob("*.parquet"))]


def _local(path: Path, spec: str) -> Source:
    if not path.is_dir():
        raise TokenshiftError(f"source {spec!r} not found: give a build directory, REGISTRY@VERSION or "
                              f"hf://datasets/ORG/NAME@VERSION")
    missing = _missing(path)
    if missing:
        hint = ""
        if _versions(path):
            hint = f" (it looks like a registry: use {spec}@latest or {spec}@VERSION)"
        raise TokenshiftError(f"{spec} is not a tokenshift build: no parquet files in "
                              f"{', '.join(m + '/' for m in missing)}{hint}")
    tables = tuple(t for t in TABLES if any((path / t).glob("*.parquet")))
    return Source("local", path.resolve().as_posix(), tables, spec)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def preamble_statements(source: str | os.PathLike | Source) -> list[tuple[str | None, str]]:
    """(table or None, statement) pairs that set up the views; table is None for setup statements."""
    src = resolve_source(source)
    out: list[tuple[str | None, str]] = []
    if src.kind == "hf":
        out += [(None, "INSTALL httpfs;"), (None, "LOAD httpfs;"),
                (None, "CREATE SECRET IF NOT EXISTS tokenshift_hf (TYPE HUGGINGFACE, PROVIDER credential_chain);")]
    for table in src.tables:
        out.append((table, f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet({_quote(src.glob(table))});"))
    return out


def preamble_sql(source: str | os.PathLike | Source) -> str:
    """The preamble text to paste into the duckdb shell before any recipe: one view per table."""
    src = resolve_source(source)
    lines = [f"-- tokenshift preamble: views over {src.root}",
             "-- Then paste any recipe (queries/*.sql). Override a parameter first with SET VARIABLE name = value;",
             "-- variables persist for the session (RESET VARIABLE name; restores the recipe default)."]
    if src.kind == "hf":
        lines.append("-- Hub token from HF_TOKEN or ~/.cache/huggingface/token (needed for private/gated datasets).")
    for table, statement in preamble_statements(src):
        if src.kind == "hf" and table in OPTIONAL:
            lines.append(f"-- {table} exists only in datasets with cross-sampling results; drop this line if absent.")
        lines.append(statement)
    return "\n".join(lines) + "\n"
