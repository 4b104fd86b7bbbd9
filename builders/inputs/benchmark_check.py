"""`tokenshift benchmark check FILE`: read a benchmark as `build` would and grade every gold against itself.

What it reports, before any GPU time is spent: rows a build refuses (or skips with --skip-invalid),
golds each --gold-transform changed, golds a rule not given would change, and golds that are not
correct against themselves (math-verify cannot read them, so every answer to them would be wrong).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from tokenshift.builders.grading import gold_rules, grade
from tokenshift.builders.inputs import benchmarks
from tokenshift.runtime.progress import progress_bar

_LETTERED_LINE = re.compile(r"(?m)^\s*\(?[A-D][).]")


@dataclass(frozen=True)
class CheckReport:
    spec: str
    name: str  # the benchmark's name in the tables
    rows: int
    problems: int
    skip_invalid: bool
    invalid: dict[str, list[benchmarks.Skipped]]  # reason -> rows a build refuses (or skips)
    transformed: dict[str, list[tuple[str, str, str]]]  # rule given -> (problem_id, before, after) it changed
    would_change: dict[str, list[tuple[str, str, str]]]  # rule not given -> what it would change
    index_golds: int  # whole-number golds of problems whose question shows lettered options
    wrong: list[tuple[str, str]]  # (problem_id, gold) not correct against itself
    ungraded: list[tuple[str, str]]  # (problem_id, gold) whose grading crashed or timed out

    @property
    def ok(self) -> bool:
        """A build accepts the file and every gold is correct against itself."""
        refused = any(self.invalid.values()) and not self.skip_invalid
        return not (refused or self.wrong or self.ungraded)

    def lines(self, examples: int = 3) -> list[str]:
        """The report as printed: counts, each with up to `examples` examples."""
        out = [f"{self.spec}: {self.rows} rows, {self.problems} problems, benchmark name {self.name!r}"]
        for reason, rows in self.invalid.items():
            if rows:
                what = "skipped (--skip-invalid)" if self.skip_invalid else \
                    "a build refuses the file; --skip-invalid skips them"
                shown = ", ".join(f"row {s.row} (id {s.problem_id})" for s in rows[:examples])
                out.append(f"{reason}: {len(rows)} row{'s' * (len(rows) != 1)}, e.g. {shown}: {what}")
        for rule, changes in self.transformed.items():
            out.append(f"--gold-transform {rule}: changed {len(changes)} of {self.problems} golds"
                       + _examples(changes, examples))
        for rule, changes in self.would_change.items():
            if changes:
                out.append(f"hint: --gold-transform {rule} would change {len(changes)} of {self.problems} golds"
                           + _examples(changes, examples))
        if self.index_golds:
            out.append(f"hint: {self.index_golds} golds are whole numbers while their questions show lettered "
                       f"options: if they are option indexes, pass --gold-transform {gold_rules.OPTION_INDEX0} "
                       f"(counted from 0) or {gold_rules.OPTION_INDEX1} (from 1)")
        correct = self.problems - len(self.wrong) - len(self.ungraded)
        out.append(f"self-check: {self.problems} golds graded against themselves: {correct} correct, "
                   f"{len(self.wrong)} wrong, {len(self.ungraded)} ungraded")
        for what, found in (("wrong", self.wrong), ("ungraded", self.ungraded)):
            for problem_id, gold in found[:examples]:
                out.append(f"  {what}: {problem_id}: `{gold}`")
        out.append("ok: a build reads every gold" if self.ok else
                   "not ok: fix the rows or flags above before building")
        return out


def _examples(changes: list[tuple[str, str, str]], examples: int) -> str:
    return (", e.g. " + "; ".join(f"{pid}: `{before}` -> `{after}`" for pid, before, after in changes[:examples])
            if changes else "")


def check_benchmark(spec: str, limit: int | None = None, fields: benchmarks.Fields | None = None,
                    timeout_s: float = 30.0, progress: bool = True) -> CheckReport:
    """Read `spec` exactly as a build with these flags would (invalid rows listed either way) and grade
    every gold against itself with the build's grader and transforms."""
    fields = fields or benchmarks.Fields()
    listing = dataclasses.replace(fields, skip_invalid=True)  # list every invalid row, refuse none
    loaded = benchmarks.read_benchmark(spec, limit, listing)
    raw = benchmarks.read_benchmark(spec, limit, dataclasses.replace(listing, gold_transforms=())).problems
    transformed = {rule: [] for rule in fields.gold_transforms}
    for before, p in zip(raw, loaded.problems, strict=True):
        gold = before.gold_answer
        for rule in fields.gold_transforms:
            changed = grade.transform_gold(gold, (rule,))
            if changed != gold:
                transformed[rule].append((p.problem_id, gold, changed))
            gold = changed
    would_change = {}
    for rule in (gold_rules.SCI_NOTATION, gold_rules.STRIP_UNIT):
        if rule not in fields.gold_transforms:
            would_change[rule] = [(p.problem_id, p.gold_answer, after) for p in loaded.problems
                                  if (after := grade.transform_gold(p.gold_answer, (rule,))) != p.gold_answer]
    index_golds = 0
    if not {gold_rules.OPTION_INDEX0, gold_rules.OPTION_INDEX1} & set(fields.gold_transforms):
        index_golds = sum(p.gold_answer.strip().isdigit() and bool(_LETTERED_LINE.search(p.question))
                          for p in loaded.problems)
    pairs = [(p.gold_answer, "\\boxed{" + ", ".join(grade.gold_answers(p.gold_answer)) + "}")
             for p in loaded.problems]
    bar = progress_bar(total=len(pairs), desc="self-check", unit="gold", leave=False, disable=not progress)
    grades = grade.grade_many(pairs, timeout_s=timeout_s, progress=bar, transforms=fields.gold_transforms)
    bar.close()
    invalid = {reason: [s for s in loaded.skipped if s.reason == reason] for reason in benchmarks.SKIP_REASONS}
    return CheckReport(
        spec, loaded.problems[0].benchmark, loaded.rows, len(loaded.problems), fields.skip_invalid, invalid,
        transformed, would_change, index_golds,
        [(p.problem_id, p.gold_answer) for p, g in zip(loaded.problems, grades) if g.correct is False],
        [(p.problem_id, p.gold_answer) for p, g in zip(loaded.problems, grades) if g.correct is None])
