"""Validation results: one record per check, merged across files and chunks, summarised as text and JSON."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.files import write_json_atomic
from tokenshift.schemas.manifest import is_published, published_ancestor

GROUPS = ("manifest", "files", "schema", "values", "keys", "references", "consistency")
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one expectation (or derived check) on one table; counts are of bad rows/files/groups."""

    table: str
    group: str
    expectation: str
    column: str | None
    success: bool
    unexpected_count: int = 0
    element_count: int | None = None
    unit: str = "rows"
    observed: object = None
    examples: tuple = ()
    files: tuple[str, ...] = ()
    engine: str = "gx"  # "gx", or "derived" for checks GX cannot express (see validate.py)
    error: str | None = None

    @property
    def key(self) -> tuple:
        return (self.table, self.group, self.expectation, self.column, self.unit)


def merge(results: list[CheckResult]) -> list[CheckResult]:
    """Combine results of the same check run on several files or chunks: counts add up, examples concatenate."""
    merged: dict[tuple, CheckResult] = {}
    for r in results:
        old = merged.get(r.key)
        if old is None:
            merged[r.key] = r
            continue
        elements = None if old.element_count is None and r.element_count is None else \
            (old.element_count or 0) + (r.element_count or 0)
        merged[r.key] = replace(
            old, success=old.success and r.success,
            unexpected_count=old.unexpected_count + r.unexpected_count, element_count=elements,
            observed=old.observed if r.observed is None or r.success else r.observed,
            examples=(old.examples + r.examples)[:MAX_EXAMPLES],
            files=tuple(dict.fromkeys(old.files + r.files)), error=old.error or r.error)
    return list(merged.values())


@dataclass(frozen=True)
class ValidationReport:
    """Every check of a build, in the order run, and whether all held."""

    build_dir: str
    results: tuple[CheckResult, ...]
    manifest_fingerprint: str | None = None
    tokenshift_version: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(r.success for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.success]

    def failure(self, expectation: str, column: str | None = None, table: str | None = None) -> CheckResult | None:
        """The first failed check with this expectation name (and column/table, when given)."""
        for r in self.failures:
            if r.expectation == expectation and (column is None or r.column == column) \
                    and (table is None or r.table == table):
                return r
        return None


def summary_rows(report: ValidationReport) -> list[tuple[str, str, int, int]]:
    """(table, group, checks, failed) per table and check group, in schema and group order."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in report.results:
        c = counts[(r.table, r.group)]
        c[0] += 1
        c[1] += not r.success
    order = {g: i for i, g in enumerate(GROUPS)}
    tables = list(dict.fromkeys(r.table for r in report.results))
    keys = sorted(counts, key=lambda k: (tables.index(k[0]), order.get(k[1], len(order))))
    return [(t, g, *counts[(t, g)]) for t, g in keys]


def format_summary(report: ValidationReport) -> str:
    """A plain-text table, one line per table/check group, then one line per failed check."""
    rows = [("table", "group", "checks", "failed", "status")] + [
        (t, g, str(n), str(bad), "ok" if not bad else "FAIL") for t, g, n, bad in summary_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    failures = report.failures
    if failures:
        lines.append("")
        lines.append(f"{len(failures)} failed check(s):")
        for r in failures:
            lines.append("  " + describe_failure(r))
    lines.append("")
    lines.append(f"{report.build_dir}: " + ("all checks passed" if report.ok else "validation FAILED"))
    return "\n".join(lines)


def describe_failure(r: CheckResult) -> str:
    """One line: table, expectation, column, number of bad rows (or files/groups) and a hint of what was seen."""
    where = f"{r.table}.{r.column}" if r.column else r.table
    text = f"[{r.group}] {r.expectation} on {where}: {r.unexpected_count} bad {r.unit}"
    if r.element_count is not None:
        text += f" of {r.element_count}"
    if r.observed is not None:
        text += f"; observed {_short(r.observed)}"
    if r.examples:
        text += f"; e.g. {_short(list(r.examples))}"
    if r.files and r.unit != "files":
        text += f"; in {_short(list(r.files))}"
    if r.error:
        text += f"; error: {r.error}"
    return text


def _short(value: object, limit: int = 160) -> str:
    text = json.dumps(_jsonable(value), ensure_ascii=False)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _jsonable(value: object) -> object:
    """Numpy scalars, tuples and non-finite floats made JSON-safe."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def report_dict(report: ValidationReport) -> dict:
    """The JSON report: verdict, per-group summary, and every check with its counts."""
    return {
        "build_dir": report.build_dir,
        "ok": report.ok,
        "tokenshift_version": report.tokenshift_version,
        "manifest_fingerprint": report.manifest_fingerprint,
        **report.extra,
        "summary": [{"table": t, "group": g, "checks": n, "failed": bad} for t, g, n, bad in summary_rows(report)],
        "failures": [_jsonable(asdict(r)) for r in report.failures],
        "checks": [_jsonable(asdict(r)) for r in report.results],
    }


def write_report(report: ValidationReport, path: str | Path) -> Path:
    """Write the JSON report atomically (temporary file + rename), so a reader never sees half of it."""
    return write_json_atomic(path, report_dict(report))


REPORT_NAME = "validation.json"


def report_path(build_dir: str | Path, requested: str | Path | None) -> Path | None:
    """Where `validate` may write its report: never inside a published version, never over a file it did not write."""
    build = Path(build_dir)
    if requested is None:
        return None if is_published(build) else build / REPORT_NAME
    path = Path(requested)
    version = published_ancestor(path)
    if version is not None:
        raise TokenshiftError(f"--json-report {path} is inside the published version {version}: published "
                              "versions are immutable, write the report elsewhere (or omit it: the summary goes "
                              "to stdout)")
    if path.exists() and not _is_report(path):
        raise TokenshiftError(f"--json-report {path} exists and is not a validation report: choose a new path "
                              "(validate never overwrites other files)")
    return path


def _is_report(path: Path) -> bool:
    """True for a file `validate` wrote (a JSON object with its `checks` list)."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and isinstance(data.get("checks"), list) and "manifest_fingerprint" in data
