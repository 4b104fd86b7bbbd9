"""Step-by-step SFT solutions with planted mistakes at the start, in the middle and at the end."""

from __future__ import annotations

import random
from dataclasses import dataclass

from tokenshift.builders.inputs.arith import Problem, apply

OP_WORDS = {"+": "Add", "-": "Subtract"}
RIGHT_PLAN = "Follow each change in order."
WRONG_PLAN = "Add up all the numbers."  # plausible shortcut: ignores losses, right only if both are gains
CONFUSED_VERB = "uses"  # "uses N" read as a gain by the base in most solutions


@dataclass(frozen=True)
class ForkMix:
    """How often SFT solutions take each planted wrong branch; each branch starts at one token.

    start: the plan line (first answer token). middle: the operation word of a step whose verb is
    "uses" (read as "Add"), and the leading digit of a subtraction of a two-digit number (its tens
    forgotten: the result is 10 too large); both hang on a visible context and are frequent enough
    that the base puts most of its probability on the wrong token there. end: a plain number instead
    of \\boxed{N}. (Not a forgotten *borrow*: GRPO learns that one only by also lowering the digit
    where no borrow is due, so accuracy barely rises; docs/findings.md.)
    """

    p_wrong_plan: float = 0.3  # first answer token: "Add up all the numbers." vs "Follow each change..."
    p_confused_op: float = 0.85  # a "uses N" step written as "Add N: x + N = ..."
    p_forgot_tens: float = 0.85  # x - N with N >= 10 written as x - (N - 10): the result 10 too large
    p_unboxed: float = 0.2  # after "The answer is": a plain number (reward 0) instead of \boxed{N}


@dataclass(frozen=True)
class Slips:
    """Which planted mistakes one solution makes (the forgotten-tens slip per step)."""

    wrong_plan: bool = False
    confused_op: bool = False
    forgot_tens: tuple[bool, bool] = (False, False)
    boxed: bool = True


def _step(x: int, op: str, n: int, slip_tens: bool) -> tuple[str, int]:
    y = apply(x, op, n)
    if op == "-" and slip_tens and n >= 10:
        y += 10
    return f"{OP_WORDS[op]} {n}: {x} {op} {n} = {y}.", y


def step_ops(problem: Problem, slips: Slips, verbs: tuple[str, str]) -> tuple[str, str]:
    """The operations a solution writes: all '+' under the wrong plan; "uses" as '+' when confused."""
    if slips.wrong_plan:
        return "+", "+"
    ops = [problem.op1, problem.op2]
    return tuple("+" if slips.confused_op and verb == CONFUSED_VERB else op  # type: ignore[return-value]
                 for op, verb in zip(ops, verbs))


def solution(problem: Problem, slips: Slips = Slips()) -> str:
    """Plan line, two arithmetic steps (with any planted slips), then the answer line."""
    op1, op2 = step_ops(problem, slips, problem_verbs(problem))
    line1, x = _step(problem.a, op1, problem.b, slips.forgot_tens[0])
    line2, y = _step(x, op2, problem.c, slips.forgot_tens[1])
    final = f"\\boxed{{{y}}}" if slips.boxed else str(y)
    return (f"{WRONG_PLAN if slips.wrong_plan else RIGHT_PLAN}\n{line1}\n{line2}\nThe answer is {final}.")


def problem_verbs(problem: Problem) -> tuple[str, str]:
    """The verb word of each change in the question ("buys", "uses", ...)."""
    tail = problem.question.split(". ", 1)[1]
    first, second = tail.split(" and then ", 1)
    return first.split()[1], second.split()[0]


def sample_slips(mix: ForkMix, rng: random.Random) -> Slips:
    """Each planted mistake drawn independently with the mix's probabilities."""
    return Slips(wrong_plan=rng.random() < mix.p_wrong_plan, confused_op=rng.random() < mix.p_confused_op,
                 forgot_tens=(rng.random() < mix.p_forgot_tens, rng.random() < mix.p_forgot_tens),
                 boxed=rng.random() >= mix.p_unboxed)


def sample_solution(problem: Problem, mix: ForkMix, rng: random.Random) -> str:
    """One SFT target with independently drawn slips."""
    return solution(problem, sample_slips(mix, rng))
