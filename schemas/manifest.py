"""The build manifest, one module: reading and checking it, writing it atomically, and the integrity chain.

The manifest lists every parquet part with its sha256, bytes and rows. A step records the hashes of
the parts it wrote itself (taken when it wrote them), and verifies the recorded hash of every part
before it reads it, so a part changed on disk after it was written is refused, never re-hashed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import platform
import shlex
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tokenshift.runtime.embedded_pair import EMBEDDED_PAIR_DIR
from tokenshift.runtime.errors import TokenshiftError, warn
from tokenshift.runtime.files import write_json_atomic
from tokenshift.runtime.version import __version__
from tokenshift.schemas.tables import SCHEMA_VERSION, TABLE_FIELDS, write_parquet
from tokenshift.schemas.verdicts import Verdicts, stat_key

MANIFEST = "manifest.json"
CARD = "README.md"
REQUIRED_KEYS = ("tokenshift_version", "schema_version", "created_at", "command", "config", "models",
                 "tokenizer", "grader", "libraries", "seeds", "tables", "build_seconds")
PUBLISHED = "published"  # block a publish adds to the shipped manifest; marks a folder as a published version
_LIBRARIES = ("torch", "transformers", "tokenizers", "accelerate", "safetensors", "math-verify",
              "pyarrow", "datasets", "huggingface-hub", "duckdb", "great-expectations", "trl", "vllm")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    return versions


def base_manifest() -> dict:
    return {"tokenshift_version": __version__, "schema_version": SCHEMA_VERSION,
            "libraries": library_versions(), "platform": f"{sys.platform}-{platform.machine()}"}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def part_entry(path: Path) -> dict:
    """sha256, bytes and rows of a parquet part, taken right after this process wrote it."""
    return {"sha256": file_sha256(path), "bytes": path.stat().st_size, "rows": pq.ParquetFile(path).metadata.num_rows}


def write_part(out: Path, rel: str, table: pa.Table) -> dict[str, dict]:
    """Write a part atomically; return {rel: entry}, the record a step keeps of exactly what it wrote."""
    write_parquet(table, Path(out) / rel)
    return {rel: part_entry(Path(out) / rel)}


def table_entries(out: Path) -> dict[str, dict]:
    """Entries of every parquet part on disk (for test fixtures and legacy markers; steps record their own)."""
    return tables_from_files({f.relative_to(out).as_posix(): part_entry(f)
                              for table in TABLE_FIELDS for f in sorted((out / table).glob("*.parquet"))})


def tables_from_files(files: dict[str, dict]) -> dict[str, dict]:
    """{table: {rows, files}} from {relpath: entry}, tables in schema order, files sorted."""
    tables = {}
    for table in TABLE_FIELDS:
        entries = {rel: files[rel] for rel in sorted(files) if rel.split("/", 1)[0] == table}
        if entries:
            tables[table] = {"rows": sum(e["rows"] for e in entries.values()), "files": entries}
    return tables


def read_manifest(build_dir: str | Path) -> dict:
    """The parsed manifest.json of a build directory; a one-line error if it is missing or not a JSON object."""
    path = Path(build_dir) / MANIFEST
    if not path.is_file():
        raise TokenshiftError(f"{path} not found: {build_dir} is not a tokenshift build "
                              "(run `tokenshift build --out DIR` first)")
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise TokenshiftError(f"{path} is not valid JSON ({str(err)[:120]}): rebuild with `tokenshift build`") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("tables", {}), dict):
        raise TokenshiftError(f"{path} is not a tokenshift manifest (not a JSON object with a tables map): "
                              "rebuild with `tokenshift build`")
    return manifest


def require_keys(manifest: dict, path: Path, keys: tuple[str, ...] = REQUIRED_KEYS) -> dict:
    """`manifest` if it has every key in `keys`; a one-line error naming the first missing one."""
    missing = [k for k in keys if k not in manifest]
    if missing:
        raise TokenshiftError(f"{path / MANIFEST} lacks {missing[0]!r}: it is not a finished tokenshift build "
                              "manifest (rebuild with `tokenshift build`)")
    return manifest


def write_manifest(out: Path, payload: dict) -> Path:
    """Write DIR/manifest.json atomically."""
    return write_json_atomic(Path(out) / MANIFEST, payload)


EMBEDDED = "embedded:"  # how a published manifest names the embedded toy pair's models
LOCAL = "local:"  # … and a local checkpoint folder (its content hash sits beside it)
_EMBEDDED_DIR = "tokenshift/toy/pair/"


def _public_name(path: str) -> str:
    """A local path as a published manifest names it: the embedded pair as such, anything else by its last part."""
    text = str(path).replace("\\", "/").rstrip("/")
    if text.startswith((EMBEDDED, LOCAL)):
        return text
    if _EMBEDDED_DIR in text + "/" and text.rsplit("/", 1)[-1] in text.split(_EMBEDDED_DIR, 1)[-1]:
        return EMBEDDED + text.split(_EMBEDDED_DIR, 1)[-1]
    return LOCAL + (text.rsplit("/", 1)[-1] or text)


def model_location(source: str) -> str:
    """Where to load a model a manifest names: the embedded pair's folder for `embedded:NAME`, else `source`."""
    if source.startswith(EMBEDDED):
        return str(EMBEDDED_PAIR_DIR / source[len(EMBEDDED):])
    return source


def _last_part(path: str) -> str:
    """A folder or file by its name alone (the name is the builder's choice; the path above it is private)."""
    return str(path).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or str(path)


def _is_local_benchmark(spec: str) -> bool:
    return spec.endswith((".jsonl", ".json")) or spec.startswith(("/", ".", "~"))


def public_manifest(manifest: dict) -> dict:
    """The manifest as published: no local filesystem path of the builder (idempotent).

    Hub models keep their id and revision; local checkpoints become `local:FOLDER` beside their
    sha256; the embedded pair `embedded:NAME`; a benchmark file, the build folder and merge inputs
    their names alone; the paths inside the recorded commands the same way.
    """
    out = copy.deepcopy(manifest)
    renames: dict[str, str] = {}
    models = out.get("models") if isinstance(out.get("models"), dict) else {}
    for model in [models.get("base"), *(models.get("rl") or [])]:
        if isinstance(model, dict) and isinstance(model.get("source"), str) and model.get("sha256"):
            renames[model["source"]] = model["source"] = _public_name(model["source"])
    config = out.get("config") if isinstance(out.get("config"), dict) else {}
    runs = [r for r in out.get("cross_sampling_runs") or [] if isinstance(r, dict) and isinstance(r.get("config"), dict)]
    paths = [config.get("out"), (out.get("cross_sampling") or {}).get("out"), *(out.get("merged_from") or []),
             *(r["config"].get("out") for r in runs)]
    if isinstance(config.get("benchmark"), str) and _is_local_benchmark(config["benchmark"]):
        paths.append(config["benchmark"])
    imported = out.get("import") if isinstance(out.get("import"), dict) else {}
    paths += [p for p in (config.get("completions"), imported.get("source")) if isinstance(p, str)]
    for model in [config.get("base"), *(config.get("rl") or [])]:
        if isinstance(model, str) and model not in renames and (model.startswith(("/", ".", "~"))):
            paths.append(model)
    renames.update({p: _last_part(p) for p in paths if isinstance(p, str) and p and p not in renames})
    for key in ("out", "base", "benchmark", "completions"):
        if config.get(key) in renames:
            config[key] = renames[config[key]]
    if imported.get("source") in renames:
        imported["source"] = renames[imported["source"]]
    if isinstance(config.get("rl"), list):
        config["rl"] = [renames.get(r, r) for r in config["rl"]]
    if isinstance(out.get("cross_sampling"), dict) and out["cross_sampling"].get("out") in renames:
        out["cross_sampling"]["out"] = renames[out["cross_sampling"]["out"]]
    if isinstance(out.get("merged_from"), list):
        out["merged_from"] = [renames.get(p, p) for p in out["merged_from"]]
    for key in ("command", "cross_sampling_command"):
        if isinstance(out.get(key), str):
            out[key] = shlex.join(renames.get(t, t) for t in shlex.split(out[key]))
    for run in runs:  # several cross-sampling runs: each one's folder and command the same way
        if run["config"].get("out") in renames:
            run["config"]["out"] = renames[run["config"]["out"]]
        if isinstance(run.get("command"), str):
            run["command"] = shlex.join(renames.get(t, t) for t in shlex.split(run["command"]))
    return out


def manifest_fingerprint(manifest: dict) -> str:
    """sha256 of the published form of the manifest (minus the publish block): it names every file's hash.

    A build's manifest and the version published from it have the same fingerprint.
    """
    body = {k: v for k, v in public_manifest(manifest).items() if k != PUBLISHED}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def is_published(folder: str | Path) -> bool:
    """True when `folder` is a published version (its manifest carries the publish block)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return False
    try:
        return isinstance(json.loads(path.read_bytes().decode("utf-8")).get(PUBLISHED), dict)
    except (ValueError, UnicodeDecodeError, AttributeError, OSError):
        return False


def published_ancestor(path: str | Path) -> Path | None:
    """The published version `path` is or lies inside, or None (nothing may be written there)."""
    probe = Path(path).absolute()
    for folder in (probe, *probe.parents):
        if is_published(folder):
            return folder
    return None


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


def unlisted_files(build_dir: str | Path, manifest: dict, table: str) -> list[str]:
    """Parquet files in a table folder that the manifest does not list (readers ignore them)."""
    listed = listed_files(manifest, table)
    return [rel for rel in parquet_on_disk(build_dir, table) if rel not in listed]


def _safe_relpath(rel: str) -> bool:
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and ".." not in parts and parts[0] in TABLE_FIELDS


def listed_paths(build_dir: str | Path, manifest: dict, table: str, check: str = "sha256") -> list[Path]:
    """The table's parts as the manifest lists them, each checked first; warns about unlisted files.

    check: "sha256" (steps that read parts: every part hashed), "cached" (readers: every part hashed
    once, then trusted while its path, size, mtime, ctime and inode stay the same, see verdicts.py),
    "bytes" (sizes only) or "none".
    """
    build = Path(build_dir)
    paths = []
    verdicts = Verdicts(build) if check == "cached" else None
    for rel, entry in sorted(listed_files(manifest, table).items()):
        if not _safe_relpath(rel):
            raise TokenshiftError(f"{build / MANIFEST} lists {rel!r} outside the table folders: "
                                  "the manifest is damaged, rebuild with `tokenshift build`")
        path = build / rel
        if verdicts is not None:
            if not verdicts.vouches(rel, path, entry.get("sha256")):
                stat = stat_key(path) if path.is_file() else None
                verify_part(build, rel, entry)
                verdicts.remember(rel, entry["sha256"], stat, path)
        elif check != "none":
            verify_part(build, rel, entry, full=check == "sha256")
        paths.append(path)
    if verdicts is not None:
        verdicts.save()
    stray = unlisted_files(build, manifest, table)
    if stray:
        warn(f"{build / table} holds {len(stray)} parquet file(s) the manifest does not list "
             f"(ignored: {', '.join(stray[:3])}{', …' if len(stray) > 3 else ''})")
    return paths


def verify_part(build: Path, rel: str, entry: dict, full: bool = True, recorded_in: Path | None = None) -> None:
    """Refuse (one line naming the file) a recorded part that is missing or differs from its recorded hash."""
    path = Path(build) / rel
    record = recorded_in or Path(build) / MANIFEST
    fix = f"restore it, or rebuild with `tokenshift build --out {build} --overwrite`"
    if not path.is_file():
        raise TokenshiftError(f"{path} is listed in {record} but missing: {fix}")
    size = path.stat().st_size
    if size != entry.get("bytes") or (full and file_sha256(path) != entry.get("sha256")):
        raise TokenshiftError(f"{path} does not match the sha256 recorded in {record} "
                              f"(changed or damaged since it was written): {fix}")


def verify_tables(build_dir: str | Path, manifest: dict, tables=None) -> None:
    """Verify the recorded sha256 of every listed part of `tables` (default: all listed tables)."""
    for table in tables or listed_tables(manifest):
        listed_paths(build_dir, manifest, table, check="sha256")


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
