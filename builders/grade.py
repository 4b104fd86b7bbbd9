"""Grade answers with math-verify on the last \\boxed{}, in worker processes with a hard timeout."""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from importlib.metadata import version


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


def grade_answer(gold: str, response: str) -> Grade:
    """`verify(parse(gold), parse(answer))` on the last boxed answer; no box means wrong.

    Uses math-verify's own signal-based timeouts, so call it on a main thread (or in `grade_many`).
    """
    from math_verify import parse, verify

    answer = extract_boxed(response)
    if answer is None:
        return Grade(None, False)
    try:
        gold_parsed = parse(f"\\boxed{{{gold}}}", raise_on_error=True)
        answer_parsed = parse(f"\\boxed{{{answer}}}", raise_on_error=True)
        return Grade(answer, bool(verify(gold_parsed, answer_parsed, raise_on_error=True)))
    except Exception:  # math-verify raising (timeout, parser crash): ungraded, not fatal
        return Grade(answer, None)


def _grade_pair(pair: tuple[str, str]) -> Grade:
    return grade_answer(*pair)


def grade_many(pairs: list[tuple[str, str]], timeout_s: float = 30.0, workers: int = 1,
               progress=None) -> list[Grade]:
    """Grade (gold, response) pairs in worker processes; a hung or crashed grade becomes ungraded.

    Each worker runs math-verify on its main thread, so its internal timeouts work; `timeout_s`
    is a hard outer limit per answer, after which the pool is killed and restarted.
    """
    results: list[Grade] = []
    ctx = mp.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    try:
        for gold, response in pairs:
            future = pool.submit(_grade_pair, (gold, response))
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
