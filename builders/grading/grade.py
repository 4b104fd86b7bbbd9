"""Grade answers with math-verify on the last \\boxed{}, in worker processes with a hard timeout."""

from __future__ import annotations

import json
import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from tokenshift.builders.grading import gold_rules
from tokenshift.runtime.errors import TokenshiftError

RETRIES = 2  # extra attempts for an answer whose grading crashed or timed out (bounded: then it stays null)


@dataclass(frozen=True)
class Grade:
    extracted_answer: str | None
    correct: bool | None  # None: grading crashed or timed out


def grader_version() -> str:
    return f"math-verify {version('math-verify')}"


def extract_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (balanced braces), or None when there is none."""
    start = text.rfind("\\boxed{")
    while start != -1:
        i, depth = start + len("\\boxed{"), 1
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            return text[start + len("\\boxed{"): i - 1].strip()
        start = text.rfind("\\boxed{", 0, start)
    return None


def tuple_gold(answers: list[str]) -> str:
    """A gold of several answers, graded as the whole tuple in order, written as a JSON list of strings."""
    return json.dumps(answers, ensure_ascii=False)


def gold_answers(gold: str) -> list[str]:
    """The answers a gold stands for: several for a `tuple_gold` (a JSON list of strings), else [gold]."""
    if gold.startswith('["'):
        try:
            value = json.loads(gold)
        except ValueError:
            value = None
        if isinstance(value, list) and len(value) > 1 and all(isinstance(v, str) for v in value):
            return value
    return [gold]


def split_tuple(answer: str) -> list[str]:
    """`(a, b)`, `\\left(a, b\\right)` or `a, b` as [a, b]: commas outside any bracket split."""
    text = answer.strip()
    for left, right in (("\\left(", "\\right)"), ("(", ")")):
        if text.startswith(left) and text.endswith(right) and _closes_at_end(text[len(left):-len(right)]):
            text = text[len(left):-len(right)]
            break
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    return [*parts, text[start:].strip()]


def _closes_at_end(inner: str) -> bool:
    """The brackets of `inner` balance, so the stripped outer pair enclosed the whole answer."""
    depth = 0
    for ch in inner:
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def grade_answer(gold: str, response: str, transforms: tuple[str, ...] = ()) -> Grade:
    """`verify(parse(gold), parse(answer))` on the last boxed answer; no box means wrong.

    A tuple gold (several answers) needs as many comma-separated parts, each verified against its
    answer in order (math-verify alone would read `3, 5` as a set and `(3, 5)` as an interval).
    `transforms` (gold_rules names) rewrite each gold, and each answer part where the rule applies to
    answers; a gold already rewritten is unchanged by them. A one-letter gold takes `A)` as `A`.
    Uses math-verify's own signal-based timeouts, so call it on a main thread (or in `grade_many`);
    a timeout there, like a crash, leaves the answer ungraded (correct None).
    """
    from math_verify import parse, verify
    from math_verify.errors import TimeoutException  # a BaseException: `except Exception` misses it

    answer = extract_boxed(response)
    if answer is None:
        return Grade(None, False)
    golds = gold_answers(gold)
    parts = [answer] if len(golds) == 1 else split_tuple(answer)
    if len(parts) != len(golds):
        return Grade(answer, False)
    try:
        for g, part in zip(golds, parts):
            g = gold_rules.apply(g, transforms)
            part = gold_rules.choice_answer(gold_rules.apply(part, transforms, side="answer"), g)
            gold_parsed = parse(f"\\boxed{{{g}}}", raise_on_error=True)
            answer_parsed = parse(f"\\boxed{{{part}}}", raise_on_error=True)
            if not verify(gold_parsed, answer_parsed, raise_on_error=True):
                return Grade(answer, False)
        return Grade(answer, True)
    except (Exception, TimeoutException):  # math-verify raising or timing out: ungraded, not fatal
        return Grade(answer, None)


def transform_gold(gold: str, transforms: tuple[str, ...]) -> str:
    """A gold (a tuple gold part by part) through the gold transforms; ValueError for one they cannot read."""
    golds = gold_answers(gold)
    changed = [gold_rules.apply(g, transforms) for g in golds]
    return changed[0] if len(golds) == 1 else tuple_gold(changed)


def grade(answer, gold, *, rule=(), timeout_s: float = 30.0):
    """The grading of `tokenshift build`: `answer` (a response, graded on its last \\boxed{}; none: wrong)
    against `gold`, with the gold transforms `rule` (a --gold-transform name or several), in a worker
    process with math-verify's timeouts, a hard `timeout_s`, and the builds' retries.

    Returns a Grade (extracted_answer, correct: True, False, or None when grading crashed or timed out);
    given two lists of equal length, a list of Grades, graded in one worker. Workers are spawned, so a
    script calls this under `if __name__ == "__main__":` (a notebook needs nothing).
    """
    if getattr(mp.current_process(), "_inheriting", False):  # a spawned worker re-running an unguarded script
        raise TokenshiftError("tokenshift.grade ran while its worker process was starting: call it under "
                              "`if __name__ == \"__main__\":` in a script")

    rules = gold_rules.check_transforms([rule] if isinstance(rule, str) else rule)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not timeout_s > 0:
        raise TokenshiftError(f"timeout_s must be a number of seconds > 0 (got {timeout_s!r})")
    single = isinstance(answer, str) and isinstance(gold, str)
    answers, golds = ([answer], [gold]) if single else (answer, gold)
    if not (isinstance(answers, list | tuple) and isinstance(golds, list | tuple) and len(answers) == len(golds)
            and all(isinstance(v, str) for v in (*answers, *golds))):
        raise TokenshiftError("grade(answer, gold) takes two strings, or two lists of strings of equal length")
    for g in golds:
        try:
            transform_gold(g, rules)
        except ValueError as err:
            raise TokenshiftError(f"gold {g!r}: {err}: check the gold or the rule") from None
    grades = grade_many(list(zip(golds, answers)), timeout_s=float(timeout_s), transforms=rules)
    return grades[0] if single else grades


def _grade_pair(pair: tuple[str, str, tuple[str, ...]]) -> Grade:
    return grade_answer(*pair)


def grade_many(pairs: list[tuple[str, str]], timeout_s: float = 30.0, workers: int = 1,
               progress=None, retries: int = RETRIES, transforms: tuple[str, ...] = ()) -> list[Grade]:
    """Grade (gold, response) pairs; an answer whose grading crashed or timed out is retried `retries` times."""
    return with_retries(pairs, lambda batch, bar: grade_once(batch, timeout_s, workers, bar, transforms),
                        retries, progress)


def with_retries(pairs: list, attempt: Callable[[list, object], list[Grade]], retries: int,
                 progress=None) -> list[Grade]:
    """Run `attempt` on every pair, then again (at most `retries` times) on those it left ungraded."""
    results = attempt(pairs, progress)
    for _ in range(retries):
        todo = [i for i, g in enumerate(results) if g.correct is None and g.extracted_answer is not None]
        if not todo:
            break
        for i, g in zip(todo, attempt([pairs[i] for i in todo], None), strict=True):
            results[i] = g
    return results


def count_ungraded(out: Path, entry: dict) -> int:
    """Rows with correct = null among a table's listed parts (grading crashed or timed out on every try)."""
    import pyarrow.parquet as pq

    return sum(pq.read_table(Path(out) / rel, columns=["correct"]).column("correct").null_count
               for rel in (entry.get("files") or {}))


def grade_once(pairs: list[tuple[str, str]], timeout_s: float = 30.0, workers: int = 1,
               progress=None, transforms: tuple[str, ...] = ()) -> list[Grade]:
    """Grade (gold, response) pairs in worker processes; a hung or crashed grade becomes ungraded, as does
    a pair without a gold answer (None: an imported problem that has none).

    Each worker runs math-verify on its main thread, so its internal timeouts work; `timeout_s`
    is a hard outer limit per answer, after which the pool is killed and restarted.
    """
    results: list[Grade] = []
    ctx = mp.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    try:
        for gold, response in pairs:
            if gold is None:  # an imported problem without a gold answer: nothing to grade against
                results.append(Grade(extract_boxed(response), None))
                if progress is not None:
                    progress.update(1)
                continue
            future = pool.submit(_grade_pair, (gold, response, tuple(transforms)))
            try:
                results.append(future.result(timeout=timeout_s))
            except FutureTimeout:
                results.append(Grade(extract_boxed(response), None))
                _kill(pool)
                pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
            except Exception:  # worker died (BrokenProcessPool) or grading raised
                results.append(Grade(extract_boxed(response), None))
                _kill(pool)
                pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
            if progress is not None:
                progress.update(1)
    finally:
        _kill(pool)
    return results


def _kill(pool: ProcessPoolExecutor) -> None:
    for proc in list(getattr(pool, "_processes", {}).values()):
        proc.kill()
    pool.shutdown(wait=False, cancel_futures=True)
