"""The table contract as great-expectations expectations: schema, value ranges, keys, references, consistency.

The per-column checks (not null, range, allowed set, list length, list element bound) are generated
from the fields of schemas/tables.py; only the checks across columns, rows or tables are written here.
Every expectation carries meta {table, group, column?, label?, unit?} so results can be grouped and
reported by the column they are about, even when GX validates a derived helper column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import great_expectations.expectations as gxe
import pandas as pd
import pyarrow as pa

from tokenshift.schemas.tables import PRIMARY_KEYS, TABLE_FIELDS, Field
from tokenshift.schemas.values import (
    BASE_SAMPLER,
    FLOAT32_TOL,
    LN_VOCAB,
    REL_POSITION_TOL,
    RL_MODELS,
    SAMPLERS,
    TOP_K,
    TOPK_SUM_TOL,
)


@dataclass(frozen=True)
class Context:
    """Build-wide facts the value checks need: V, K, model names and the referenced ids."""

    vocab_size: int | None = None
    top_k: int | None = None
    rl_models: tuple[str, ...] = ()
    imported_samplers: tuple[str, ...] = ()  # samplers an imported build's answers name (manifest import block)
    imported: bool = False  # an imported build: its fields' import_null values may be null

    def resolve(self, value):
        """A contract value with the build's facts filled in (LN_VOCAB, RL_MODELS, SAMPLERS, TOP_K); None if unknown."""
        if value == LN_VOCAB:
            return math.log(self.vocab_size) if self.vocab_size else None
        if value == RL_MODELS:
            return self.rl_models or None
        if value == SAMPLERS:
            known = (BASE_SAMPLER, *self.rl_models, *self.imported_samplers)
            return tuple(dict.fromkeys(known)) if self.rl_models else None
        if value == TOP_K:
            return self.top_k
        return value


def meta(table: str, group: str, column: str | None = None, **extra) -> dict:
    return {"table": table, "group": group, **({"column": column} if column else {}), **extra}


def gx_type_name(arrow_type: pa.DataType) -> str:
    """The type_ string ExpectColumnValuesToBeOfType matches against the pandas view of `arrow_type`."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "str"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return "list"
    return str(arrow_type.to_pandas_dtype().__name__)


def pandas_dtype(arrow_type: pa.DataType):
    """types_mapper for the pandas views: exact numpy dtypes for numbers; nullable bool/str; arrow lists."""
    if pa.types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype()
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return pd.ArrowDtype(arrow_type)
    return None


def schema_expectations(table: str, present: set[str], fields: tuple[Field, ...] | None = None) -> list:
    """Exact column set, each column present, and each present column of its contract type (`fields`: the
    build's version's; default the current contract)."""
    fields = TABLE_FIELDS[table] if fields is None else fields
    out = [gxe.ExpectTableColumnsToMatchSet(column_set=[f.name for f in fields], exact_match=True,
                                            meta=meta(table, "schema"))]
    for f in fields:
        out.append(gxe.ExpectColumnToExist(column=f.name, meta=meta(table, "schema")))
        if f.name in present:
            out.append(gxe.ExpectColumnValuesToBeOfType(column=f.name, type_=gx_type_name(f.type),
                                                         meta=meta(table, "schema")))
    return out


def _between(table: str, column: str, low: float | None, high: float | None, tol: float = 0.0,
             group: str = "values", report_column: str | None = None):
    return gxe.ExpectColumnValuesToBeBetween(
        column=column, min_value=None if low is None else low - tol, max_value=None if high is None else high + tol,
        meta=meta(table, group, report_column))


def _in_set(table: str, column: str, values, group: str = "values", report_column: str | None = None):
    return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=list(values),
                                           meta=meta(table, group, report_column))


def field_expectations(table: str, f: Field, ctx: Context) -> list:
    """The checks a field's contract implies; a bound or set that depends on the build is skipped when unknown."""
    out = [] if f.nullable_in(ctx.imported) else [
        gxe.ExpectColumnValuesToNotBeNull(column=f.name, meta=meta(table, "values"))]
    allowed = ctx.resolve(f.allowed)
    if allowed:
        out.append(_in_set(table, f.name, allowed))
    if f.low is not None or f.high is not None:
        out.append(_between(table, f.name, ctx.resolve(f.low), ctx.resolve(f.high), f.tol))
    length = ctx.resolve(f.length)
    if length:
        out.append(_in_set(table, f"_{f.name}_len", [length], report_column=f.name))
    if f.item_high is not None:
        out.append(_between(table, f"_{f.name}_max", None, f.item_high, f.tol, report_column=f.name))
    if f.descending:
        out.append(_between(table, f"_{f.name}_rises", None, 0, report_column=f.name))
    return out


def value_expectations(table: str, ctx: Context, fields: tuple[Field, ...] | None = None) -> list:
    """Row-local checks: every field's contract, then the per-row consistency across columns.

    Columns starting with "_" are derived per chunk by validate.value_frames (GX cannot look inside
    lists or across tables); their results are reported under the column they are about. The
    invariants the recipes trust are checked here too: topk_overlap against the two id lists, and
    rl_top1_rank_base against the RL top-1's place in base's list (ties share the best rank, so the
    rank is at most that place, and beyond K only when the token is not in the list), and version 2.2's scalars
    (p_rl_rl_top1, base_mass_base_topk) against the lists they summarise.
    """
    fields = TABLE_FIELDS[table] if fields is None else fields
    names = {f.name for f in fields}
    out = [e for f in fields for e in field_expectations(table, f, ctx)]
    if table == "tokens":
        out += [
            _between(table, "_topk_overlap_error", None, 0, FLOAT32_TOL, "consistency", "topk_overlap"),
            _between(table, "_rl_top1_rank_excess", None, 0, 0, "consistency", "rl_top1_rank_base"),
            _between(table, "_rl_top1_rank_missing", None, 0, 0, "consistency", "rl_top1_rank_base"),
            *(_between(table, f"_{name}_error", None, 0, TOPK_SUM_TOL, "consistency", name)
              for name in ("p_rl_rl_top1", "base_mass_base_topk") if name in names),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="_n_tokens", column_B="position", or_equal=False, ignore_row_if="either_value_is_missing",
                meta=meta(table, "consistency", "position")),
            gxe.ExpectColumnPairValuesToBeEqual(
                column_A="sampler", column_B="_generation_sampler", ignore_row_if="either_value_is_missing",
                meta=meta(table, "consistency", "sampler")),
            _between(table, "_rel_position_error", None, 0, REL_POSITION_TOL, "consistency", "rel_position"),
        ]
    elif table == "cross_samples":
        out += [
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="n_tokens", column_B="n_interventions", or_equal=True,
                meta=meta(table, "consistency", "n_interventions")),
            gxe.ExpectColumnPairValuesToBeEqual(
                column_A="_intervention_positions_len", column_B="n_interventions",
                ignore_row_if="either_value_is_missing", meta=meta(table, "consistency", "intervention_positions")),
            _between(table, "_magnitude_threshold", 0.0, None, report_column="threshold"),
            _between(table, "_prob_mix_weight", 0.0, 1.0, report_column="mix_weight")]
    return out


REFERENCES = {  # table -> (column, referenced table) whose key column it must match
    "generations": ("problem_id", "prompts"),
    "tokens": ("generation_id", "generations"),
    "cross_samples": ("problem_id", "prompts"),
}


def reference_expectation(table: str, known_here: list[str]):
    """Every value of the table's reference column is a key of the referenced table.

    `known_here` is the referenced keys restricted to the values of the frame at hand: same verdict
    as the full key set, but GX copies an expectation's value set many times per run, so it stays small.
    """
    column, _ = REFERENCES[table]
    return _in_set(table, column, known_here, "references")


def key_expectations(table: str, manifest_rows: int | None) -> list:
    """Primary-key uniqueness, and the table's row count against the manifest, on the key columns of all rows."""
    keys = PRIMARY_KEYS[table]
    if len(keys) == 1:
        out = [gxe.ExpectColumnValuesToBeUnique(column=keys[0], meta=meta(table, "keys"))]
    else:
        out = [gxe.ExpectCompoundColumnsToBeUnique(column_list=list(keys), meta=meta(table, "keys"))]
    if manifest_rows is not None:
        out.append(gxe.ExpectTableRowCountToEqual(value=manifest_rows, meta=meta(table, "files")))
    return out


def file_expectations(table: str) -> list:
    """Files on disk vs the manifest, on a frame indexed by relpath (built by validate.files_frame)."""
    m = lambda column: meta(table, "files", column, label="relpath", unit="files")  # noqa: E731
    return [
        gxe.ExpectColumnValuesToBeInSet(column="in_manifest", value_set=[True], meta=m("in_manifest")),
        gxe.ExpectColumnValuesToBeInSet(column="on_disk", value_set=[True], meta=m("on_disk")),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="sha256", column_B="manifest_sha256",
                                            ignore_row_if="either_value_is_missing", meta=m("sha256")),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="bytes", column_B="manifest_bytes",
                                            ignore_row_if="either_value_is_missing", meta=m("bytes")),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="rows", column_B="manifest_rows",
                                            ignore_row_if="either_value_is_missing", meta=m("rows")),
    ]


def n_tokens_expectations() -> list:
    """Per (generation, rl_model): tokens rows equal the generation's n_tokens (frame from validate.token_counts)."""
    return [gxe.ExpectColumnPairValuesToBeEqual(
        column_A="token_rows", column_B="n_tokens", ignore_row_if="either_value_is_missing",
        meta=meta("tokens", "consistency", "n_tokens", label="pair", unit="groups"))]
