"""Schema versions: which contract a build follows, the frozen contracts of past versions, and how each reads today.

A table change bumps SCHEMA_VERSION (schemas/tables.py): new nullable columns a minor step, a changed
meaning or a new required column a major one. The current version's contract is schemas/tables.py
itself; each past version's is a frozen JSON snapshot in schemas/contracts/<version>.json (written
once by `contract_json` from that version's tables.py). Every parquet part (metadata key
schema_version), the manifest and the card record the version; readers resolve it with
`build_version`, writers refuse any build that is not the current version (`require_current`).

Past versions:
  1.0  main before cross-sampling criteria (issue 13): cross_samples without criterion, mix_weight,
       rate, match_criterion, control_seed, run_id; thresholds are JS thresholds.
  2.0  cross_samples with those six columns (thresholds of any criterion). Its files still say "1.0";
       they are told apart by cross_samples' run_id column.
  2.1  tokens gain the exact reallocation columns (p_base_rl_top1, rl_mass_base_topk, base_mass_rl_topk);
       cross_samples gain sign and mix_space (delta_logp's side, log-space mixing); imported builds may
       leave prompts.gold_answer, generations.seed and generations.finish_reason null.
  2.2  tokens gain p_rl_rl_top1 and base_mass_base_topk: scalars of the top-K lists every version has (RL's top-1
       probability, base's top-K mass), so readers need not scan the lists; `migrate` computes them (DERIVED).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tokenshift.runtime.errors import TokenshiftError
from tokenshift.schemas.manifest import listed_files, listed_tables
from tokenshift.schemas.tables import SCHEMA_VERSION, TABLE_FIELDS, Field

CONTRACT_DIR = Path(__file__).resolve().parent / "contracts"
PAST_VERSIONS = ("1.0", "2.0", "2.1")
VERSIONS = (*PAST_VERSIONS, SCHEMA_VERSION)
LABELLED_1_0 = "2.0"  # builds of this version carry the label "1.0" (written before versions were bumped)

# What a column a version lacks reads as under the current contract, where the old version implies it
# (every other missing column reads as NULL): before criteria, cross-sampling selected by JS and took
# the other model's token (mix weight 1).
IMPLIED = {"cross_samples": {"criterion": "js", "mix_weight": 1.0}}


def _rl_top1_probability(tokens: pa.Table) -> pa.Array:
    """exp of topk_rl_logp's first entry, in float32 (the scorer's p_rl_rl_top1)."""
    first = pc.list_element(tokens.column("topk_rl_logp"), 0).to_numpy(zero_copy_only=False)
    return pa.array(np.exp(first.astype(np.float32)), pa.float32())


def _base_topk_mass(tokens: pa.Table) -> pa.Array:
    """The sum of exp(topk_base_logp) per row, at most 1, as float32 (the scorer's base_mass_base_topk)."""
    lists = tokens.column("topk_base_logp").combine_chunks()
    values = np.exp(pc.list_flatten(lists).to_numpy(zero_copy_only=False).astype(np.float32))
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    sums = np.bincount(parents, weights=values, minlength=len(lists))
    return pa.array(np.minimum(sums, 1.0).astype(np.float32), pa.float32())


# Columns a version lacks that follow from columns every version has: `migrate` computes them (table -> name -> how).
DERIVED = {"tokens": {"p_rl_rl_top1": _rl_top1_probability, "base_mass_base_topk": _base_topk_mass}}


def version_key(version: str) -> tuple[int, ...]:
    """A version as numbers, for ordering ("10.0" after "2.1")."""
    return tuple(int(x) for x in version.split("."))


def upgrade_command(spec: str | Path) -> str:
    """The command that brings a build of a past version to the current one."""
    return f"tokenshift migrate {spec} --out NEW_DIR"


def _type_text(t: pa.DataType) -> str:
    return f"list<{_type_text(t.value_type)}>" if pa.types.is_list(t) else str(t)


def _type_from_text(text: str) -> pa.DataType:
    if text.startswith("list<"):
        return pa.list_(_type_from_text(text[5:-1]))
    return {"string": pa.string(), "bool": pa.bool_(), "int32": pa.int32(), "int64": pa.int64(),
            "float": pa.float32(), "double": pa.float64()}[text]


_FIELD_DEFAULTS = {"low": None, "high": None, "tol": 0.0, "allowed": None, "length": None, "item_high": None,
                   "descending": False, "unit": "", "import_null": None}


def contract_json(fields: dict[str, tuple[Field, ...]], version: str) -> dict:
    """A contract as JSON (the frozen form of a past version): every field's type, meaning and valid values."""
    def one(f: Field) -> dict:
        out = {"name": f.name, "type": _type_text(f.type), "description": f.description, "nullable": f.nullable}
        for key, default in _FIELD_DEFAULTS.items():
            value = getattr(f, key, default)
            if value is not default and value != default or type(value) is not type(default):
                out[key] = list(value) if isinstance(value, tuple) else value
        return out
    return {"schema_version": version, "tables": {t: [one(f) for f in fs] for t, fs in fields.items()}}


def _field(data: dict) -> Field:
    extra = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()
             if k not in ("name", "type", "description", "nullable")}
    return Field(data["name"], _type_from_text(data["type"]), data["description"], data["nullable"], **extra)


@cache
def contract(version: str) -> dict[str, tuple[Field, ...]]:
    """The fields of every table as `version` defines them (the current one: schemas/tables.py)."""
    if version == SCHEMA_VERSION:
        return TABLE_FIELDS
    if version not in PAST_VERSIONS:
        raise TokenshiftError(f"unknown schema version {version!r}: this tokenshift reads {', '.join(VERSIONS)} "
                              "(a newer tokenshift wrote it: upgrade tokenshift)")
    data = json.loads((CONTRACT_DIR / f"{version}.json").read_text(encoding="utf-8"))
    return {t: tuple(_field(f) for f in fs) for t, fs in data["tables"].items()}


def file_version(path: Path) -> str | None:
    """The schema_version in a parquet part's metadata (None when absent or unreadable)."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException):
        return None
    value = meta.get(b"schema_version")
    return value.decode() if value else None


def resolve_label(label: object, cross_columns: set[str] | None) -> str | None:
    """The version a recorded label means: "1.0" with cross_samples' run_id column is 2.0 (see LABELLED_1_0)."""
    if label == "1.0" and cross_columns is not None and "run_id" in cross_columns:
        return LABELLED_1_0
    return label if isinstance(label, str) else None


def build_version(build: Path, manifest: dict) -> str:
    """The schema version a build follows: its manifest's, told apart where the label is shared; checked known."""
    label = manifest.get("schema_version")
    if label is None:  # a manifest that does not record it (not written by a builder): the parts' own label
        parts = [Path(build) / rel for t in TABLE_FIELDS for rel in sorted(listed_files(manifest, t))]
        label = next((file_version(p) for p in parts if p.is_file()), None)
    cross = sorted(listed_files(manifest, "cross_samples"))
    columns = None
    if label == "1.0" and cross and (Path(build) / cross[0]).is_file():
        columns = set(pq.read_schema(Path(build) / cross[0]).names)
    version = resolve_label(label, columns)
    if version not in VERSIONS:
        raise TokenshiftError(f"{build} records schema version {label!r}, which this tokenshift does not know "
                              f"(it reads {', '.join(VERSIONS)}): upgrade tokenshift")
    return version


def check_parts(build: Path, manifest: dict, version: str) -> None:
    """Refuse a build whose listed parts follow another version than its manifest (a resume or cross-sample
    under another tokenshift writes parts of two versions into one table)."""
    for table in listed_tables(manifest):
        for rel in sorted(listed_files(manifest, table)):
            path = Path(build) / rel
            if not path.is_file():
                continue
            names = set(pq.read_schema(path).names) if table == "cross_samples" else None
            found = resolve_label(file_version(path), names)
            if table != "cross_samples" and version == LABELLED_1_0 and found == "1.0":
                found = version  # the tables other than cross_samples are the same in 1.0 and 2.0
            if found != version:
                raise TokenshiftError(f"{path} follows schema version {found} but {build} is version {version}: "
                                      f"the build mixes versions; rebuild it (`tokenshift build --overwrite`)")


def require_current(build: Path | str, version: str, command: str) -> None:
    """Refuse to write into a build of a past version: one line naming the version and the upgrade command."""
    if version != SCHEMA_VERSION:
        raise TokenshiftError(f"{build} follows schema version {version}; `tokenshift {command}` writes version "
                              f"{SCHEMA_VERSION} and never mixes two in one build: run `{upgrade_command(build)}` "
                              "and use NEW_DIR")


def missing_columns(table: str, present: set[str]) -> list[tuple[Field, object]]:
    """The current contract's columns of `table` absent from `present`, each with what it reads as."""
    implied = IMPLIED.get(table, {})
    return [(f, implied.get(f.name)) for f in TABLE_FIELDS[table] if f.name not in present]
