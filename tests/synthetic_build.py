"""A small schema-valid build directory (parquet parts + a full manifest) for validate, card and publish tests.

`make_build(dir) -> Path` is the one entry point tests rely on; a real build fixture can replace it.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from synthetic_tables import RL_MODELS, TOP_K, VOCAB, make_tables

from tokenshift.runtime.files import write_json_atomic
from tokenshift.runtime.version import __version__
from tokenshift.schemas.manifest import library_versions, table_entries
from tokenshift.schemas.tables import SCHEMA_VERSION, to_arrow, write_parquet

PARTS = 2


def _write_parts(out: Path, table: str, rows: list[dict], parts: int = PARTS) -> None:
    step = max(1, -(-len(rows) // parts))
    for i in range(parts):
        chunk = rows[i * step:(i + 1) * step]
        if chunk or i == 0:
            write_parquet(to_arrow(table, chunk), out / table / f"part-{i:05d}.parquet")


def refresh_manifest_tables(out: Path) -> dict:
    """Recompute the manifest's `tables` entry from the files on disk (what a builder does last)."""
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    manifest["tables"] = table_entries(out)
    write_json_atomic(out / "manifest.json", manifest)
    return manifest


def make_build(out: str | Path, seed: int = 0) -> Path:
    """Write prompts, generations and tokens (two parts each) and manifest.json under `out`; returns it."""
    out = Path(out)
    tables = make_tables(seed=seed, with_cross=False)
    for table, rows in tables.items():
        _write_parts(out, table, rows)
    config = {"benchmark": "bench-a+bench-b", "limit": None, "samples": 4, "max_new_tokens": 48,
              "temperature": 1.0, "top_p": 1.0, "top_k_candidates": TOP_K, "seed": seed, "device": "cpu",
              "dtype": "float32", "engine": "hf", "instruction": "Reason step by step.",
              "use_chat_template": False}
    manifest = {
        "tokenshift_version": __version__,
        "schema_version": SCHEMA_VERSION,
        "created_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc).isoformat(timespec="seconds"),
        "command": f"tokenshift build --out {out.name} --benchmark bench-a --samples 4 --seed {seed}",
        "config": config,
        "models": {"base": {"name": "base", "source": "synthetic/base", "revision": "r0", "sha256": "0" * 64},
                   "rl": [{"name": name, "source": f"synthetic/{name}", "revision": "r1", "sha256": "1" * 64}
                          for name in RL_MODELS]},
        "tokenizer": {"sha256": "2" * 64, "vocab_size": len(VOCAB)},
        "grader": "math-verify 0.9.0",
        "libraries": library_versions(),
        "seeds": {"build": seed},
        "tables": {},
        "build_seconds": 1.5,
    }
    write_json_atomic(out / "manifest.json", manifest)
    refresh_manifest_tables(out)
    return out


def add_cross_samples(out: str | Path, seed: int = 0, extrapolation: bool = False) -> Path:
    """Add a cross_samples table and its manifest entries, as `tokenshift cross-sample DIR` would
    (with `extrapolation`, also a log-space W sweep)."""
    out = Path(out)
    _write_parts(out, "cross_samples",
                 make_tables(seed=seed, with_cross=True, extrapolation=extrapolation)["cross_samples"])
    manifest = refresh_manifest_tables(out)
    manifest["cross_sampling"] = {"protocols": ["threshold", "resample"], "seed": seed}
    write_json_atomic(out / "manifest.json", manifest)
    return out
