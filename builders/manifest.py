"""The build manifest: frozen config, model and tokenizer identity, versions and file hashes."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pyarrow.parquet as pq

from tokenshift import __version__
from tokenshift.schemas.tables import SCHEMA_VERSION, TABLE_FIELDS

MANIFEST = "manifest.json"
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


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def table_entries(out: Path) -> dict[str, dict]:
    """Rows, and sha256/bytes/rows of every parquet part, of each table present under `out`."""
    tables = {}
    for table in TABLE_FIELDS:
        files = sorted((out / table).glob("*.parquet"))
        if not files:
            continue
        entries = {f.relative_to(out).as_posix(): {"sha256": file_sha256(f), "bytes": f.stat().st_size,
                                                   "rows": pq.ParquetFile(f).metadata.num_rows}
                   for f in files}
        tables[table] = {"rows": sum(e["rows"] for e in entries.values()), "files": entries}
    return tables


def read_manifest(out: Path) -> dict:
    with (out / MANIFEST).open(encoding="utf-8") as fh:
        return json.load(fh)


def write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=False) + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)


def base_manifest() -> dict:
    return {"tokenshift_version": __version__, "schema_version": SCHEMA_VERSION,
            "libraries": library_versions(), "platform": f"{sys.platform}-{platform.machine()}"}
