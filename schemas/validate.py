"""`tokenshift validate`: check a build directory against the table contract with great-expectations.

GX validates pandas views; what it cannot see directly is first turned into a frame it can check:
file hashes and sizes become a per-file frame (GX pair-equality against the manifest), cross-table
references become value sets (GX in-set), and per-generation token counts become a per-group frame
(GX pair-equality with n_tokens). Only manifest structure, unreadable files and the arrow type
details pandas dtypes hide (list element types, string widths) are judged in plain Python, and
reported in the same CheckResult form.
Large tables are read file by file in row batches, with only the columns the checks need.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tokenshift.runtime.arguments import check_path
from tokenshift.runtime.version import __version__
from tokenshift.schemas import expectations as ex
from tokenshift.schemas.gx_runner import GxRunner
from tokenshift.schemas.manifest import (
    REQUIRED_KEYS,
    file_sha256,
    listed_files,
    manifest_fingerprint,
    parquet_on_disk,
    read_manifest,
    rl_model_names,
    table_entry,
    tables_in_build,
    top_k,
    vocab_size,
)
from tokenshift.schemas.report import CheckResult, ValidationReport, merge
from tokenshift.schemas.tables import PRIMARY_KEYS, REQUIRED_TABLES, TABLE_FIELDS, Field
from tokenshift.schemas.versions import build_version, contract, file_version, resolve_label

BATCH_ROWS = 500_000
_SECRET_VALUE = re.compile(r"hf_[A-Za-z0-9]{30,}")
_SECRET_KEYS = {"token", "hf_token", "access_token", "api_key", "secret", "password"}
_GLOBAL_COLUMNS = {  # what the key, reference and count checks need from every row
    "prompts": ("problem_id",),
    "generations": ("generation_id", "sampler", "n_tokens"),
    "tokens": ("generation_id", "rl_model", "position"),
    "cross_samples": ("cross_id",),
}


@dataclass(frozen=True)
class PartFile:
    """A readable parquet part of a table and the contract columns usable for value checks."""

    relpath: str
    path: Path
    rows: int
    usable: tuple[str, ...]


def validate_build(build_dir: str | Path, batch_rows: int = BATCH_ROWS) -> ValidationReport:
    """Run every check on the build at `build_dir` against the contract of the build's own schema version;
    raises TokenshiftError only if it has no readable manifest or records a version this tokenshift does not know."""
    build = Path(check_path(build_dir, "the build folder"))
    manifest = read_manifest(build)
    version = build_version(build, manifest)
    fields = contract(version)
    tables = tables_in_build(build, manifest)
    runner = GxRunner()
    results = manifest_checks(build, manifest, version)
    parts: dict[str, list[PartFile]] = {}
    for table in tables:
        results += runner.run(("files", table), files_frame(build, manifest, table),
                              lambda t=table: ex.file_expectations(t), unit="files")
        parts[table], found = schema_checks(runner, build, table, fields[table], version)
        results += found
    columns = {t: read_columns(parts[t], t, _GLOBAL_COLUMNS[t], fields[t]) for t in tables}
    results += key_checks(runner, manifest, columns)
    generations = None
    if "generations" in columns:
        generations = columns["generations"].to_pandas(types_mapper=ex.pandas_dtype)
        generations = generations.dropna(subset=["generation_id"]).drop_duplicates("generation_id")
    imported = manifest.get("import") if isinstance(manifest.get("import"), dict) else None
    ctx = ex.Context(vocab_size=vocab_size(manifest), top_k=top_k(manifest), rl_models=rl_model_names(manifest),
                     imported_samplers=tuple(str(s) for s in (imported or {}).get("samplers") or ()),
                     imported=imported is not None)
    for table in tables:
        results += value_checks(runner, table, parts[table], ctx, columns, generations, batch_rows, fields[table])
    if "tokens" in columns and generations is not None:
        counts = token_counts_frame(columns["tokens"], generations, ctx.rl_models)
        results += runner.run("n_tokens", counts, ex.n_tokens_expectations, unit="groups")
    return ValidationReport(build_dir=str(build), results=tuple(merge(results)),
                            manifest_fingerprint=manifest_fingerprint(manifest), tokenshift_version=__version__)


def key_checks(runner: GxRunner, manifest: dict, columns: dict[str, pa.Table]) -> list[CheckResult]:
    """Primary keys unique and row counts equal to the manifest's, on the key columns of every row."""
    results = []
    for table, data in columns.items():
        rows = table_entry(manifest, table).get("rows")
        frame = data.select(list(PRIMARY_KEYS[table])).to_pandas(types_mapper=ex.pandas_dtype)
        results += runner.run(("keys", table), frame,
                              lambda t=table, r=rows: ex.key_expectations(t, r if isinstance(r, int) else None))
    return results


def value_checks(runner: GxRunner, table: str, parts: list[PartFile], ctx: ex.Context,
                 columns: dict[str, pa.Table], generations: pd.DataFrame | None,
                 batch_rows: int, fields: tuple[Field, ...] | None = None) -> list[CheckResult]:
    """Row-local checks batch by batch: values, per-row consistency, and references to the parent table."""
    column, parent = ex.REFERENCES.get(table, (None, None))
    known = _distinct(columns[parent], PRIMARY_KEYS[parent][0]) if parent in columns else None
    by_generation = None if generations is None else generations.set_index("generation_id")
    results = []
    fields = TABLE_FIELDS[table] if fields is None else fields
    for frame in value_frames(parts, table, batch_rows, by_generation, fields):
        results += runner.run(("values", table), frame, lambda: ex.value_expectations(table, ctx, fields))
        if known is not None and column in frame.columns:
            here = [v for v in frame[column].dropna().unique() if v in known]
            results += runner.run(None, frame[[column]], lambda h=here: [ex.reference_expectation(table, h)])
    return results


def _derived(table: str, group: str, name: str, column: str | None, bad: int, unit: str, **kw) -> CheckResult:
    return CheckResult(table=table, group=group, expectation=name, column=column, success=bad == 0,
                       unexpected_count=bad, unit=unit, engine="derived", **kw)


def manifest_checks(build: Path, manifest: dict, version: str) -> list[CheckResult]:
    """Manifest structure (plain Python: it is one JSON object, not a table): keys, versions, tables, secrets.

    `version` is the schema version the build follows (its manifest's label, resolved); every listed
    part must say the same in its metadata (a build is one version)."""
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    labels = {rel: _part_version(build / rel, rel.split("/", 1)[0], version)
              for t in TABLE_FIELDS for rel in parquet_on_disk(build, t)}
    mixed = sorted(rel for rel, found in labels.items() if found != version)
    secrets = sorted(set(_secret_paths(manifest)))
    unvouched = _unidentified_models(manifest)
    unknown = sorted(p.relative_to(build).as_posix() for p in build.rglob("*.parquet")
                     if not any(part.startswith(".") for part in p.relative_to(build).parts)
                     and p.relative_to(build).parts[0] not in TABLE_FIELDS)
    out = [
        _derived("manifest", "manifest", "manifest_has_required_keys", None, len(missing), "keys",
                 observed=missing or None),
        _derived("manifest", "manifest", "schema_version_matches", "schema_version",
                 len(mixed), "files", observed=version, files=tuple(mixed[:5]), element_count=len(labels)),
        _derived("manifest", "manifest", "tokenizer_vocab_size_recorded", "tokenizer.vocab_size",
                 int(vocab_size(manifest) is None), "keys",
                 observed=(manifest.get("tokenizer") or {}).get("vocab_size")),
        _derived("manifest", "manifest", "manifest_has_no_secrets", None, len(secrets), "keys",
                 examples=tuple(secrets[:5])),
        _derived("manifest", "manifest", "models_identified", "models", len(unvouched), "keys",
                 examples=tuple(unvouched[:5])),
        _derived("manifest", "files", "no_parquet_outside_tables", None, len(unknown), "files",
                 examples=tuple(unknown[:5])),
    ]
    present = tables_in_build(build, manifest)
    out += [_derived(t, "manifest", "required_table_present", None, int(t not in present), "files")
            for t in REQUIRED_TABLES]
    return out


def _unidentified_models(manifest: dict) -> list[str]:
    """Names of recorded models nothing identifies: no content hash (a local folder) and no Hub commit."""
    models = manifest.get("models") if isinstance(manifest.get("models"), dict) else {}
    entries = [models.get("base"), *(models.get("rl") or [])]
    out = []
    for entry in entries:
        entry = entry if isinstance(entry, dict) else {}
        hashed = (isinstance(entry.get("sha256"), str) and entry["sha256"]) or (
            isinstance(entry.get("files_sha256"), dict) and entry["files_sha256"])
        if not hashed and not entry.get("revision"):
            out.append(str(entry.get("name") or "?"))
    return out


def _secret_paths(value: object, path: str = "") -> Iterator[str]:
    """JSON paths of values that look like credentials (never the values themselves)."""
    if isinstance(value, dict):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            if str(k).lower() in _SECRET_KEYS and isinstance(v, str) and v:
                yield sub
            yield from _secret_paths(v, sub)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _secret_paths(v, f"{path}[{i}]")
    elif isinstance(value, str) and _SECRET_VALUE.search(value):
        yield path


def files_frame(build: Path, manifest: dict, table: str) -> pd.DataFrame:
    """One row per parquet file on disk or in the manifest: presence, sha256, bytes, rows, both sides."""
    listed = listed_files(manifest, table)
    records = []
    for rel in sorted(set(listed) | set(parquet_on_disk(build, table))):
        path, entry = build / rel, listed.get(rel) or {}
        exists = path.is_file()
        records.append({
            "relpath": rel, "on_disk": exists, "in_manifest": rel in listed,
            "sha256": file_sha256(path) if exists else None, "manifest_sha256": entry.get("sha256"),
            "bytes": path.stat().st_size if exists else None, "manifest_bytes": entry.get("bytes"),
            "rows": _parquet_rows(path) if exists else None, "manifest_rows": entry.get("rows")})
    frame = pd.DataFrame.from_records(records, columns=[
        "relpath", "on_disk", "in_manifest", "sha256", "manifest_sha256", "bytes", "manifest_bytes", "rows",
        "manifest_rows"])
    for col in ("bytes", "manifest_bytes", "rows", "manifest_rows"):
        frame[col] = pd.array(frame[col].tolist(), dtype="Int64")
    for col in ("sha256", "manifest_sha256"):
        frame[col] = pd.array(frame[col].tolist(), dtype=pd.StringDtype())
    return frame.set_index("relpath")


def _parquet_rows(path: Path) -> int | None:
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowException):
        return None


def _part_version(path: Path, table: str, version: str) -> str | None:
    """The version a part's metadata says (2.0's parts say "1.0": told apart as the build is)."""
    names = set(pq.read_schema(path).names) if table == "cross_samples" and path.is_file() else None
    found = resolve_label(file_version(path), names)
    return version if found == "1.0" and version == "2.0" and table != "cross_samples" else found


def schema_checks(runner: GxRunner, build: Path, table: str, fields: tuple[Field, ...] | None = None,
                  version: str | None = None) -> tuple[list[PartFile], list[CheckResult]]:
    """Per distinct file schema: exact column set and column types (GX on an empty typed view), exact arrow types,
    against `fields` (the build's version's contract; default the current one)."""
    parts, results = [], []
    fields = TABLE_FIELDS[table] if fields is None else fields
    expected = {f.name: f.type for f in fields}
    by_schema: dict[pa.Schema, list[PartFile]] = {}
    for rel in parquet_on_disk(build, table):
        path = build / rel
        try:
            meta = pq.ParquetFile(path)
            file_schema, rows = meta.schema_arrow.remove_metadata(), meta.metadata.num_rows
        except (OSError, pa.ArrowException) as err:
            results.append(_derived(table, "schema", "parquet_file_readable", None, 1, "files",
                                    files=(rel,), error=str(err)))
            continue
        usable = tuple(n for n, want in expected.items()
                       if n in file_schema.names and _castable(file_schema.field(n).type, want))
        broken = _not_utf8(path, [n for n in usable if _is_text(file_schema.field(n).type)])
        for name, bad in broken.items():  # reported, and left out of the value checks (they would not decode)
            results.append(_derived(table, "schema", "strings_are_utf8", name, bad, "rows", files=(rel,)))
        part = PartFile(rel, path, rows, tuple(n for n in usable if n not in broken))
        parts.append(part)
        by_schema.setdefault(file_schema, []).append(part)
    for file_schema, group in by_schema.items():
        rows, files = sum(p.rows for p in group), tuple(p.relpath for p in group)
        present = set(file_schema.names)
        view = file_schema.empty_table().to_pandas(types_mapper=ex.pandas_dtype)
        results += runner.run(("schema", table), view, lambda p=present: ex.schema_expectations(table, p, fields),
                              failed_count=rows, files=files)
        for name, want in expected.items():  # what the pandas view hides: list element types, string widths
            got = file_schema.field(name).type if name in present else None
            if got is not None and ex.gx_type_name(got) == ex.gx_type_name(want):
                same = _same_type(got, want)
                results.append(_derived(table, "schema", "arrow_type_matches_schema", name,
                                        0 if same else rows, "rows", observed=_type_text(got),
                                        files=() if same else files))
    return parts, results


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or (pa.types.is_list(t) and _is_text(t.value_type))


def _not_utf8(path: Path, columns: list[str]) -> dict[str, int]:
    """{column: rows whose text is not valid UTF-8} of a part's string columns (parquet does not check it)."""
    bad: dict[str, int] = {}
    if not columns:
        return bad
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=columns):
        for name in columns:
            column = batch.column(name)
            try:
                column.validate(full=True)
            except pa.ArrowInvalid:
                raw = column.cast(pa.binary()) if not pa.types.is_list(column.type) else None
                count = 1 if raw is None else sum(1 for v in raw.to_pylist() if v is not None and not _decodes(v))
                bad[name] = bad.get(name, 0) + max(count, 1)
    return bad


def _decodes(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _same_type(got: pa.DataType, want: pa.DataType) -> bool:
    """Equal types, ignoring list element names and nullability (writers differ: item vs element)."""
    if pa.types.is_list(got) and pa.types.is_list(want):
        return _same_type(got.value_type, want.value_type)
    return got == want


def _type_text(t: pa.DataType) -> str:
    return f"list<{_type_text(t.value_type)}>" if pa.types.is_list(t) else str(t)


def _castable(got: pa.DataType, want: pa.DataType) -> bool:
    """Value checks still run on a column of a near type (other width; its type failure is reported apart)."""
    if _same_type(got, want):
        return True
    if pa.types.is_list(got) and pa.types.is_list(want):
        return _castable(got.value_type, want.value_type)
    numeric = lambda t: pa.types.is_integer(t) or pa.types.is_floating(t)  # noqa: E731
    text = lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)  # noqa: E731
    return (numeric(got) and numeric(want)) or (text(got) and text(want))


def _batches(part: PartFile, table: str, columns: tuple[str, ...], batch_rows: int,
             fields: tuple[Field, ...] | None = None) -> Iterator[pa.Table]:
    """Row batches of the usable `columns`, cast to the contract types."""
    expected = {f.name: f.type for f in (TABLE_FIELDS[table] if fields is None else fields)}
    names = [c for c in columns if c in part.usable]
    if not names:
        return
    for batch in pq.ParquetFile(part.path).iter_batches(batch_size=batch_rows, columns=names):
        arrays = [batch.column(n) if _same_type(batch.column(n).type, expected[n]) else
                  pc.cast(batch.column(n), expected[n], safe=False) for n in names]
        yield pa.Table.from_arrays(arrays, names=names)


def table_batches(parts: list[PartFile], table: str, columns: tuple[str, ...], batch_rows: int,
                  fields: tuple[Field, ...] | None = None) -> Iterator[pa.Table]:
    """The usable `columns` of a table's parts, in batches of up to `batch_rows` rows (across files)."""
    pending: list[pa.Table] = []
    for part in parts:
        for batch in _batches(part, table, columns, batch_rows, fields):
            if pending and (batch.column_names != pending[0].column_names
                            or sum(t.num_rows for t in pending) + batch.num_rows > batch_rows):
                yield pa.concat_tables(pending)
                pending = []
            pending.append(batch)
    if pending:
        yield pa.concat_tables(pending)


def read_columns(parts: list[PartFile], table: str, columns: tuple[str, ...],
                 fields: tuple[Field, ...] | None = None) -> pa.Table:
    """`columns` of every row of a table; a column a file lacks (or mistypes beyond a cast) reads as nulls."""
    fields = TABLE_FIELDS[table] if fields is None else fields
    target = pa.schema([pa.field(f.name, f.type) for f in fields if f.name in columns])
    pieces = [target.empty_table()]
    for part in parts:
        if not any(c in part.usable for c in columns):
            pieces.append(pa.table([pa.nulls(part.rows, f.type) for f in target], schema=target))
            continue
        for batch in _batches(part, table, columns, BATCH_ROWS, fields):
            pieces.append(pa.table([batch.column(f.name) if f.name in batch.column_names else
                                    pa.nulls(batch.num_rows, f.type) for f in target], schema=target))
    return pa.concat_tables(pieces)


def _distinct(data: pa.Table, column: str) -> set[str]:
    return {v for v in pc.unique(data.column(column)).to_pylist() if v is not None}


def value_frames(parts: list[PartFile], table: str, batch_rows: int,
                 generations: pd.DataFrame | None, fields: tuple[Field, ...] | None = None) -> Iterator[pd.DataFrame]:
    """Pandas views of a table, batch by batch, with the derived helper columns the value checks read.

    `generations` is indexed by generation_id (n_tokens, sampler), for the tokens rows' consistency.
    """
    fields = TABLE_FIELDS[table] if fields is None else fields
    columns = tuple(f.name for f in fields)
    for batch in table_batches(parts, table, columns, batch_rows, fields):
        frame = _widened(batch).to_pandas(types_mapper=ex.pandas_dtype)
        if table == "tokens":
            _derive_tokens(batch, frame, generations, fields)
        elif table == "cross_samples" and "intervention_positions" in batch.column_names:
            frame["_intervention_positions_len"] = _list_lengths(batch.column("intervention_positions"))
            _derive_cross_samples(frame)
        yield frame


def _derive_cross_samples(frame: pd.DataFrame) -> None:
    """The bounds that hold only for some rows: a magnitude criterion's threshold >= 0 (delta_logp's may be
    negative), and a 'prob'-space mix weight in [0, 1] (a 'log'-space one may be any finite number)."""
    def named(column: str, value: str) -> pd.Series:  # False where an older version lacks the column
        if column not in frame:
            return pd.Series(False, index=frame.index)
        return (frame[column] == value).fillna(False).astype(bool)

    signed = named("criterion", "delta_logp") | named("match_criterion", "delta_logp")
    frame["_magnitude_threshold"] = frame["threshold"].where(~signed) if "threshold" in frame else None
    if "mix_weight" in frame:
        frame["_prob_mix_weight"] = frame["mix_weight"].where(~named("mix_space", "log"))


def _widened(batch: pa.Table) -> pa.Table:
    """Integers to int64 and floats to float64: GX's range check is vectorised only for those pandas dtypes."""
    arrays = []
    for col in batch.columns:
        if pa.types.is_integer(col.type):
            col = col.cast(pa.int64())
        elif pa.types.is_floating(col.type):
            col = col.cast(pa.float64())
        arrays.append(col)
    return pa.Table.from_arrays(arrays, names=batch.column_names)


def _list_lengths(column: pa.ChunkedArray) -> np.ndarray:
    """Length of each list as float64 (NaN for a null list), a dtype GX checks vectorised."""
    return pc.list_value_length(column).cast(pa.float64()).to_numpy(zero_copy_only=False)


def _list_max(column: pa.ChunkedArray) -> np.ndarray:
    """Largest element of each list (NaN for a null or empty list)."""
    column = column.combine_chunks()
    out = np.full(len(column), -np.inf)
    values = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.float64)
    np.maximum.at(out, pc.list_parent_indices(column).to_numpy(zero_copy_only=False), values)
    out[~np.isfinite(out)] = np.nan
    return out


def _list_rises(column: pa.ChunkedArray) -> np.ndarray:
    """Per list, how many entries are larger than the one before (0: non-increasing), as float64."""
    column = column.combine_chunks()
    values = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.float64)
    parents = pc.list_parent_indices(column).to_numpy(zero_copy_only=False)
    rise = (parents[1:] == parents[:-1]) & (values[1:] > values[:-1])
    return np.bincount(parents[1:][rise], minlength=len(column)).astype(np.float64)


def _derive_tokens(batch: pa.Table, frame: pd.DataFrame, generations: pd.DataFrame | None,
                   fields: tuple[Field, ...] | None = None) -> None:
    """Helper columns: the list fields' lengths, maxima and rises, the invariants, and the generation's n_tokens
    and sampler per row."""
    names = set(batch.column_names)
    for f in TABLE_FIELDS["tokens"] if fields is None else fields:  # what each list field's contract checks (expectations.field_expectations)
        if f.name not in names:
            continue
        if f.length is not None:
            frame[f"_{f.name}_len"] = _list_lengths(batch.column(f.name))
        if f.item_high is not None:
            frame[f"_{f.name}_max"] = _list_max(batch.column(f.name))
        if f.descending:
            frame[f"_{f.name}_rises"] = _list_rises(batch.column(f.name))
    if {"topk_base_ids", "topk_rl_ids", "topk_base_logp"} <= names:
        _derive_invariants(batch, frame)
    if generations is None or "generation_id" not in names:
        return
    info = generations
    n_tokens = frame["generation_id"].map(info["n_tokens"]).astype(np.float64)
    frame["_n_tokens"] = n_tokens
    frame["_generation_sampler"] = frame["generation_id"].map(info["sampler"]).astype(pd.StringDtype())
    if {"position", "rel_position"} <= names:
        expected = frame["position"] / (n_tokens - 1).clip(lower=1)
        frame["_rel_position_error"] = (frame["rel_position"] - expected).abs()


def _square(column: pa.ChunkedArray, rows: np.ndarray, k: int) -> np.ndarray:
    """The lists of `rows` (all of length k) as a (rows, k) array."""
    column = column.combine_chunks()
    taken = column.take(pa.array(np.flatnonzero(rows)))
    return pc.list_flatten(taken).to_numpy(zero_copy_only=False).reshape(-1, k)


def _derive_invariants(batch: pa.Table, frame: pd.DataFrame) -> None:
    """Helper columns of the invariants the recipes trust (NaN where a list has another length than the first's).

    _topk_overlap_error: |topk_overlap - |ids_base ∩ ids_rl| / K|. Where the RL top-1 t* (top1_rl) is in
    base's list at entry i: _rl_top1_rank_excess = |rl_top1_rank_base - (1 + entries above entry i)|;
    where it is not: _rl_top1_rank_missing = 1 if rl_top1_rank_base is below 1 + the entries above base's
    K-th value (t* would then be in the list), else 0. _p_rl_rl_top1_error: |p_rl_rl_top1 - exp(topk_rl_logp[1])|;
    _base_mass_base_topk_error: |base_mass_base_topk - min(1, sum of exp(topk_base_logp))| (version 2.2's scalars).
    """
    lengths = [pc.list_value_length(batch.column(n)).to_numpy(zero_copy_only=False)
               for n in ("topk_base_ids", "topk_rl_ids", "topk_base_logp")]
    n = batch.num_rows
    k = int(lengths[0][0]) if n else 0
    rows = (lengths[0] == k) & (lengths[1] == k) & (lengths[2] == k) if k else np.zeros(n, bool)
    overlap_error, excess, missing, top1_error, mass_error = (np.full(n, np.nan) for _ in range(5))
    if rows.any():
        ids_b, ids_r = _square(batch.column("topk_base_ids"), rows, k), _square(batch.column("topk_rl_ids"), rows, k)
        logp_b = _square(batch.column("topk_base_logp"), rows, k).astype(np.float64)
        if "topk_overlap" in frame.columns:
            shared = (ids_b[:, :, None] == ids_r[:, None, :]).any(-1).sum(-1)
            overlap_error[rows] = np.abs(frame["topk_overlap"].to_numpy(np.float64)[rows] - shared / k)
        if {"top1_rl", "rl_top1_rank_base"} <= set(frame.columns):
            t_star = frame["top1_rl"].to_numpy(np.float64)[rows]
            rank = frame["rl_top1_rank_base"].to_numpy(np.float64)[rows]
            hit = ids_b == t_star[:, None]
            found = hit.any(-1)
            at = hit.argmax(-1)
            above_t = (logp_b > logp_b[np.arange(len(at)), at][:, None]).sum(-1)
            above_k = (logp_b > logp_b[:, -1:]).sum(-1)
            excess[rows] = np.where(found, np.abs(rank - (1 + above_t)), np.nan)
            missing[rows] = np.where(found, np.nan, (rank < 1 + above_k).astype(np.float64))
        if "base_mass_base_topk" in frame.columns:
            mass = np.minimum(np.exp(logp_b).sum(-1), 1.0)
            mass_error[rows] = np.abs(frame["base_mass_base_topk"].to_numpy(np.float64)[rows] - mass)
        if "p_rl_rl_top1" in frame.columns and "topk_rl_logp" in batch.column_names:
            rl_rows = rows & (pc.list_value_length(batch.column("topk_rl_logp")).to_numpy(zero_copy_only=False) == k)
            top1 = np.exp(_square(batch.column("topk_rl_logp"), rl_rows, k)[:, 0].astype(np.float64))
            top1_error[rl_rows] = np.abs(frame["p_rl_rl_top1"].to_numpy(np.float64)[rl_rows] - top1)
    frame["_topk_overlap_error"], frame["_rl_top1_rank_excess"], frame["_rl_top1_rank_missing"] = (
        overlap_error, excess, missing)
    frame["_p_rl_rl_top1_error"], frame["_base_mass_base_topk_error"] = top1_error, mass_error


def token_counts_frame(tokens: pa.Table, generations: pd.DataFrame, rl_models: tuple[str, ...]) -> pd.DataFrame:
    """Tokens rows per (generation, rl_model) next to the generation's n_tokens, one row per expected or seen pair.

    `generations` has one row per generation_id. Expected pairs: a base sample (or an imported
    third sampler's) is scored against every RL model, an RL sample at least against its own model;
    an expected pair that is absent counts 0 rows.
    """
    counts = tokens.group_by(["generation_id", "rl_model"]).aggregate([([], "count_all")]).to_pandas(
        types_mapper=ex.pandas_dtype).rename(columns={"count_all": "token_rows"})
    models = rl_models or tuple(v for v in counts["rl_model"].dropna().unique())
    scored = generations[generations["n_tokens"].fillna(0) > 0]
    own = scored["sampler"].isin(list(models))  # an RL model's samples; base and imported third samplers: all models
    expected = pd.concat([
        scored[~own][["generation_id"]].merge(pd.DataFrame({"rl_model": list(models)}), how="cross"),
        scored[own][["generation_id", "sampler"]].rename(columns={"sampler": "rl_model"}),
    ]).astype(pd.StringDtype())
    frame = expected.merge(counts.astype({"generation_id": pd.StringDtype(), "rl_model": pd.StringDtype()}),
                           on=["generation_id", "rl_model"], how="outer")
    frame["token_rows"] = frame["token_rows"].fillna(0).astype("Int64")
    frame["n_tokens"] = frame["generation_id"].map(generations.set_index("generation_id")["n_tokens"]).astype("Int64")
    frame.index = pd.Index(frame["generation_id"].astype(str) + " @ " + frame["rl_model"].astype(str), name="pair")
    return frame
