"""`tokenshift regrade DIR`: grade again the answers a finished build left ungraded (correct = null)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tokenshift.builders.grading import gold_rules, grade
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.files import clean_leftovers
from tokenshift.runtime.lock import folder_lock
from tokenshift.schemas import manifest
from tokenshift.schemas.registry import refuse_published_out

GRADED_TABLES = ("generations", "cross_samples")


@dataclass(frozen=True)
class RegradeResult:
    attempted: int  # rows that were null before
    still_ungraded: int  # rows still null after the retries


def regrade(build_dir: str | Path, timeout_s: float | None = None, progress=None) -> RegradeResult:
    """Regrade every null `correct` in the listed parts; rewrite only the parts that change, recorded."""
    out = Path(build_dir)
    manifest.read_manifest(out)
    refuse_published_out(out, "DIR")
    with folder_lock(out, "tokenshift regrade"):
        clean_leftovers(out)
        recorded = manifest.require_keys(manifest.read_manifest(out), out)
        timeout = timeout_s or float((recorded.get("config") or {}).get("grade_timeout_s") or 30.0)
        transforms = gold_rules.check_transforms((recorded.get("config") or {}).get("gold_transform"))
        gold = {}
        for path in manifest.listed_paths(out, recorded, "prompts"):
            for row in pq.read_table(path, columns=["problem_id", "gold_answer"]).to_pylist():
                gold[row["problem_id"]] = row["gold_answer"]
        attempted = remaining = 0
        imported = isinstance(recorded.get("import"), dict)
        no_gold = dict.fromkeys(GRADED_TABLES, 0)  # null by design: an imported answer without a gold answer
        by_source = imported and (recorded.get("config") or {}).get("correct_field") is not None
        for table in GRADED_TABLES:
            for path in manifest.listed_paths(out, recorded, table):
                part = pq.read_table(path)  # rewritten with its own schema: a build keeps its schema version
                rows = part.to_pylist()
                nulls = [r for r in rows if r["correct"] is None]
                todo = [] if by_source else [r for r in nulls if gold.get(r["problem_id"], "") is not None]
                no_gold[table] += len(nulls) - len(todo)
                if not todo:
                    continue
                missing = sorted({r["problem_id"] for r in todo} - set(gold))
                if missing:
                    raise TokenshiftError(f"{path} has answers to problem {missing[0]!r}, which the prompts "
                                          "table lacks: run `tokenshift validate` and rebuild")
                grades = grade.grade_many([(gold[r["problem_id"]], r["response_text"]) for r in todo],
                                          timeout_s=timeout, progress=progress, transforms=transforms)
                for row, g in zip(todo, grades, strict=True):
                    row["extracted_answer"], row["correct"] = g.extracted_answer, g.correct
                attempted += len(todo)
                remaining += sum(g.correct is None for g in grades)
                rel = path.relative_to(out).as_posix()
                recorded["tables"][table]["files"].update(
                    manifest.write_part(out, rel, pa.Table.from_pylist(rows, schema=part.schema)))
        if not attempted:
            return RegradeResult(0, 0)  # nothing to regrade: the manifest (and the card) stay as they are
        recorded["ungraded"] = {t: grade.count_ungraded(out, manifest.table_entry(recorded, t)) - no_gold[t]
                                for t in GRADED_TABLES if manifest.listed_files(recorded, t)}
        recorded.setdefault("regraded", []).append({
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "grader": grade.grader_version(),
            "attempted": attempted, "still_ungraded": remaining})
        manifest.write_manifest(out, recorded)
    return RegradeResult(attempted, remaining)
