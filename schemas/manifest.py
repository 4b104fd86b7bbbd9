"""Reading a build's manifest.json and locating its table files, for validate, card and publish."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tokenshift.builders.manifest import MANIFEST, file_sha256  # noqa: F401  (re-exported)
from tokenshift.errors import TokenshiftError
from tokenshift.schemas.tables import TABLE_FIELDS

CARD = "README.md"
REQUIRED_TABLES = ("prompts", "generations", "tokens")
REQUIRED_KEYS = ("tokenshift_version", "schema_version", "created_at", "command", "config", "models",
                 "tokenizer", "grader", "libraries", "seeds", "tables", "build_seconds")


def load_manifest(build_dir: str | Path) -> dict:
    """The parsed manifest.json of a build directory; a TokenshiftError if it is missing or not a JSON object."""
    path = Path(build_dir) / MANIFEST
    if not path.is_file():
        raise TokenshiftError(f"{path} not found: {build_dir} is not a tokenshift build "
                              "(run `tokenshift build --out DIR` first)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise TokenshiftError(f"{path} is not valid JSON ({err}): rebuild with `tokenshift build`") from None
    if not isinstance(manifest, dict):
        raise TokenshiftError(f"{path} is not a JSON object: rebuild with `tokenshift build`")
    return manifest


def manifest_fingerprint(manifest: dict) -> str:
    """sha256 of the manifest's canonical JSON: it names every file's hash, so it pins the whole build."""
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def parquet_on_disk(build_dir: str | Path, table: str) -> list[str]:
    """Posix paths, relative to the build, of every parquet file under DIR/<table>/ (sorted)."""
    root = Path(build_dir)
    folder = root / table
    if not folder.is_dir():
        return []
    return sorted(p.relative_to(root).as_posix() for p in folder.rglob("*.parquet") if p.is_file())


def table_entry(manifest: dict, table: str) -> dict:
    """The manifest's {"rows", "files"} entry of a table; empty when absent or malformed."""
    tables = manifest.get("tables")
    entry = tables.get(table) if isinstance(tables, dict) else None
    return entry if isinstance(entry, dict) else {}


def listed_files(manifest: dict, table: str) -> dict[str, dict]:
    """The manifest's {relpath: {sha256, bytes, rows}} of a table (empty if the table is not listed)."""
    files = table_entry(manifest, table).get("files")
    return {rel: e for rel, e in files.items() if isinstance(e, dict)} if isinstance(files, dict) else {}


def listed_tables(manifest: dict) -> list[str]:
    """Known tables the manifest lists, in schema order."""
    return [t for t in TABLE_FIELDS if table_entry(manifest, t)]


def tables_in_build(build_dir: str | Path, manifest: dict) -> list[str]:
    """Known tables listed in the manifest or present on disk, in schema order."""
    listed = listed_tables(manifest)
    return [t for t in TABLE_FIELDS if t in listed or parquet_on_disk(build_dir, t)]


def rl_model_names(manifest: dict) -> tuple[str, ...]:
    """Names of the build's RL models, from manifest.models.rl (empty when not recorded)."""
    rl = (manifest.get("models") or {}).get("rl") or []
    return tuple(m["name"] for m in rl if isinstance(m, dict) and m.get("name"))


def vocab_size(manifest: dict) -> int | None:
    """The tokenizer's vocabulary size V (entropies are bounded by ln V), or None when not recorded."""
    value = (manifest.get("tokenizer") or {}).get("vocab_size")
    return value if isinstance(value, int) and value > 0 else None


def top_k(manifest: dict) -> int | None:
    """K of the stored top-K candidate lists (config.top_k_candidates), or None when not recorded."""
    value = (manifest.get("config") or {}).get("top_k_candidates")
    return value if isinstance(value, int) and value > 0 else None
