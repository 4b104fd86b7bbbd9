"""Runs great-expectations suites on pandas frames in one ephemeral context and returns CheckResults."""

from __future__ import annotations

import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # before the import: no telemetry

from collections.abc import Callable, Hashable

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.data_context.types.base import ProgressBarsConfig

from tokenshift.schemas.report import MAX_EXAMPLES, CheckResult

# SUMMARY adds the index labels of bad rows (what labelled frames report as examples); BASIC is cheaper.
SUMMARY = {"result_format": "SUMMARY", "partial_unexpected_count": MAX_EXAMPLES}
BASIC = {"result_format": "BASIC", "partial_unexpected_count": MAX_EXAMPLES}


def referenced_columns(expectation) -> set[str]:
    """Columns an expectation reads (column, column_A/B, column_list); a frame must hold them all."""
    if isinstance(expectation, gxe.ExpectColumnToExist):  # its point is a column that may be absent
        return set()
    cols = {getattr(expectation, name, None) for name in ("column", "column_A", "column_B")}
    cols.update(getattr(expectation, "column_list", None) or ())
    return {c for c in cols if c}


class GxRunner:
    """One ephemeral GX context with a pandas dataframe asset; suites are cached by a caller's key."""

    def __init__(self) -> None:
        self._context = gx.get_context(mode="ephemeral")
        self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = self._context.data_sources.add_pandas("tokenshift").add_dataframe_asset("frame")
        self._batch = asset.add_batch_definition_whole_dataframe("whole")
        self._definitions: dict[Hashable, object] = {}
        self._count = 0

    def run(self, key: Hashable | None, frame: pd.DataFrame, expectations: Callable[[], list], *,
            failed_count: int | None = None, files: tuple[str, ...] = (), unit: str = "rows") -> list[CheckResult]:
        """Validate `frame` with the suite cached under `key` (built once by `expectations()`; key None: not kept).

        Expectations whose columns the frame lacks are dropped (their absence is a schema failure
        reported elsewhere). Each expectation's meta names its table, group and report column;
        `failed_count` is the bad-row count of a failed table-level expectation (e.g. a wrong type).
        """
        cache_key = None if key is None else (key, tuple(sorted(frame.columns)))
        definition = self._definitions.get(cache_key)
        if definition is None:
            definition = self._define(frame, expectations())
            if cache_key is not None:
                self._definitions[cache_key] = definition
        try:
            if not definition.suite.expectations:
                return []
            labelled = any((e.meta or {}).get("label") for e in definition.suite.expectations)
            outcome = definition.run(batch_parameters={"dataframe": frame},
                                     result_format=SUMMARY if labelled else BASIC)
        finally:
            if cache_key is None:
                self._context.validation_definitions.delete(definition.name)
                self._context.suites.delete(definition.suite.name)
        return [_to_check(r, failed_count, files, unit) for r in outcome.results]

    def _define(self, frame: pd.DataFrame, expectations: list):
        # The whole suite goes into the context at once: adding expectations to a stored suite
        # re-serialises it each time (quadratic in the suite's size).
        self._count += 1
        usable = [e for e in expectations if referenced_columns(e) <= set(frame.columns)]
        suite = self._context.suites.add(gx.ExpectationSuite(name=f"suite-{self._count}", expectations=usable))
        return self._context.validation_definitions.add(
            gx.ValidationDefinition(data=self._batch, suite=suite, name=f"validation-{self._count}"))


def _to_check(result, failed_count: int | None, files: tuple[str, ...], unit: str) -> CheckResult:
    config = result.expectation_config
    meta = dict(config.meta or {})
    kwargs = config.kwargs
    res = result.result or {}
    column = meta.get("column") or kwargs.get("column") or kwargs.get("column_A")
    if kwargs.get("column_list"):
        column = meta.get("column") or "+".join(kwargs["column_list"])
    error = _error_message(result.exception_info)
    observed = res.get("observed_value")
    if not result.success and (res.get("details") or {}).get("mismatched"):  # column set: just the difference
        observed = res["details"]["mismatched"]
    count = res.get("unexpected_count")
    if count is None:  # table-level expectation: no per-row counts
        if result.success:
            count = 0
        elif config.type == "expect_table_row_count_to_equal" and isinstance(observed, int):
            count = abs(observed - kwargs["value"])
        else:
            count = failed_count if failed_count is not None else 1
    examples = ()
    if not result.success:
        index_list = res.get("partial_unexpected_index_list") or []
        label = meta.get("label")
        if label and index_list and isinstance(index_list[0], dict):
            examples = tuple(row.get(label) for row in index_list)
        else:
            examples = tuple(res.get("partial_unexpected_list") or ())
    return CheckResult(
        table=meta["table"], group=meta["group"], expectation=config.type, column=column,
        success=bool(result.success), unexpected_count=int(count), element_count=res.get("element_count"),
        unit=meta.get("unit", unit), observed=observed, examples=examples[:MAX_EXAMPLES],
        files=files if not result.success else (), engine="gx", error=error)


def _error_message(info: dict | None) -> str | None:
    """GX reports exceptions either directly or keyed by metric; return the first message."""
    if not info:
        return None
    if "raised_exception" in info:
        return info.get("exception_message") if info.get("raised_exception") else None
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return value.get("exception_message")
    return None
