"""`tokenshift migrate DIR --out NEW`: a build of a past schema version rewritten as a build of the current one.

Only what is computable without the models is migrated. Every column the old version has is copied
as it is (same values, same types); a column it lacks gets the value the old version implies
(schemas/versions.IMPLIED), is computed from the top-K lists (schemas/versions.DERIVED: tokens.p_rl_rl_top1,
base_mass_base_topk), is derived from the manifest (cross_samples.run_id), or is NULL where the
current contract allows it (the exact reallocation columns of tokens: rescoring needs the models). A
required column that is none of these is refused in one line that says to rebuild. DIR is never written.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tokenshift.builders.cross_sampling.config import CrossSampleConfig
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.files import clean_leftovers
from tokenshift.schemas import manifest
from tokenshift.schemas.registry import refuse_published_out
from tokenshift.schemas.tables import SCHEMA_VERSION, Field, schema
from tokenshift.schemas.versions import DERIVED, build_version, check_parts, contract, missing_columns

CROSS = "cross_samples"


def migrate_build(source: str | Path, out: str | Path) -> Path:
    """Write `source` (a build of a past schema version) as a build of SCHEMA_VERSION under `out`; returns `out`."""
    src, out = Path(source), Path(out)
    recorded = manifest.require_keys(manifest.read_manifest(src), src)
    version = build_version(src, recorded)
    if version == SCHEMA_VERSION:
        raise TokenshiftError(f"{src} already follows schema version {SCHEMA_VERSION}: nothing to migrate")
    if out.exists() and not out.is_dir():
        raise TokenshiftError(f"--out {out} is a file: choose a new directory")
    refuse_published_out(out)
    if out.exists() and any(out.iterdir()):
        raise TokenshiftError(f"--out {out} is not empty: choose a new directory")
    check_parts(src, recorded, version)
    runs = _cross_runs(src, recorded, version)
    imported = isinstance(recorded.get("import"), dict)  # answers imported: some fields may be null (tables.py)
    clean_leftovers(out.absolute().parent, recursive=False)
    tmp = out.with_name(f".{out.name}.migrating-{os.getpid()}")
    try:
        files: dict[str, dict] = {}
        for table in manifest.listed_tables(recorded):
            for rel, entry in sorted(manifest.listed_files(recorded, table).items()):
                manifest.verify_part(src, rel, entry)  # read only as its build recorded it
                part = pq.read_table(src / rel)
                new_rel = rel if table != CROSS or runs is None else f"{CROSS}/{Path(rel).stem}-{runs[0]['run_id']}.parquet"
                files.update(manifest.write_part(tmp, new_rel, _upgraded(table, part, runs, src, imported)))
        payload = {**recorded, "schema_version": SCHEMA_VERSION, "tables": manifest.tables_from_files(files),
                   "migrated_from": {"schema_version": version, "manifest_sha256": manifest.manifest_fingerprint(recorded),
                                     "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                     "command": f"tokenshift migrate {src} --out {out}"}}
        if runs is not None:
            payload.update({"cross_sampling_runs": runs, "cross_sampling": runs[-1]["config"],
                            "cross_sampling_command": runs[-1]["command"],
                            "cross_sampling_seconds": runs[-1]["seconds"]})
        for key in ("published", "validation"):
            payload.pop(key, None)
        manifest.write_manifest(tmp, payload)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fill_kind(table: str, field: Field, implied: object) -> str:
    """How a column the old version lacks is filled: 'implied' (IMPLIED), 'computed' (from the top-K lists,
    DERIVED), 'derived' (cross_samples.run_id, from the manifest) or 'null'."""
    if implied is not None:
        return "implied"
    if field.name in DERIVED.get(table, {}):
        return "computed"
    return "derived" if table == CROSS and field.name == "run_id" else "null"


def filled_columns(version: str) -> dict[str, list[str]]:
    """What a build of `version` gains when migrated, by _fill_kind, each column as table.column."""
    out: dict[str, list[str]] = {"implied": [], "computed": [], "derived": [], "null": []}
    for table, fields in contract(version).items():
        for field, implied in missing_columns(table, {f.name for f in fields}):
            out[_fill_kind(table, field, implied)].append(f"{table}.{field.name}")
    return out


def _cross_runs(src: Path, recorded: dict, version: str) -> list[dict] | None:
    """The runs list a build without run records gets (1.0: one cross-sampling run, its config in the manifest);
    None when the build records its runs already or has no cross_samples."""
    if not manifest.listed_files(recorded, CROSS) or recorded.get("cross_sampling_runs"):
        return None
    config = recorded.get("cross_sampling")
    if not isinstance(config, dict):
        raise TokenshiftError(f"{src / manifest.MANIFEST} records no cross-sampling config for its cross_samples "
                              f"(schema version {version}): the run cannot be named without it; cross-sample "
                              "the migrated build again (`tokenshift migrate` of a copy without cross_samples/)")
    names = [Path(rel).name for rel in manifest.listed_files(recorded, CROSS)]
    if any(not n.startswith("part-") or len(Path(n).stem.split("-")) != 2 for n in names):
        raise TokenshiftError(f"{src / CROSS} has parts not named part-NNNNN.parquet: not a {version} build's "
                              "cross_samples; rebuild it")
    run = CrossSampleConfig.from_json({**config, "out": str(src)})
    rows = manifest.table_entry(recorded, CROSS).get("rows", 0)
    return [{"run_id": run.run_id(), "config": run.as_json(), "command": recorded.get("cross_sampling_command")
             or run.command_line(), "seconds": recorded.get("cross_sampling_seconds", 0.0), "rows": rows}]


def _upgraded(table: str, part: pa.Table, runs: list[dict] | None, src: Path, imported: bool = False) -> pa.Table:
    """`part` under the current contract: its own columns as they are, the missing ones filled."""
    present = set(part.column_names)
    filled = {}
    for field, implied in missing_columns(table, present):
        kind = _fill_kind(table, field, implied)
        if kind == "implied":
            filled[field.name] = pa.array([implied] * part.num_rows, field.type)
        elif kind == "computed":
            filled[field.name] = DERIVED[table][field.name](part)
        elif kind == "derived" and runs is not None:
            filled[field.name] = pa.array([runs[0]["run_id"]] * part.num_rows, field.type)
        elif field.nullable:
            filled[field.name] = pa.nulls(part.num_rows, field.type)
        else:
            raise TokenshiftError(f"{src} lacks {table}.{field.name}, which the current schema requires and which "
                                  "cannot be computed without the models: rebuild it with this tokenshift "
                                  f"(`{manifest.read_manifest(src).get('command', 'tokenshift build')}`)")
    target = schema(table, imported)
    columns = [(part.column(f.name) if part.schema.field(f.name).type == f.type else part.column(f.name).cast(f.type))
               if f.name in present else filled[f.name] for f in target]
    return pa.Table.from_arrays(columns, schema=target)

