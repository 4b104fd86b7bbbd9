"""Step-by-step SFT solutions with two planted decision points: the first operation and the final box."""

from __future__ import annotations

import random
from dataclasses import dataclass

from tokenshift.toy.arith import Problem, apply

OP_WORDS = {"+": "Add", "-": "Subtract"}
FLIP = {"+": "-", "-": "+"}


@dataclass(frozen=True)
class ForkMix:
    """How often SFT solutions take each wrong branch (each is one fork token in the answer)."""

    p_wrong_first_op: float = 0.55  # first token of the answer: "Add" vs "Subtract"
    p_unboxed: float = 0.3  # after "The answer is": plain number (reward 0) vs \boxed{N}


def solution(problem: Problem, wrong_first_op: bool = False, boxed: bool = True) -> str:
    """Three lines: the first operation (maybe flipped), the second (always as asked), the answer."""
    op1 = FLIP[problem.op1] if wrong_first_op else problem.op1
    x = apply(problem.a, op1, problem.b)
    y = apply(x, problem.op2, problem.c)
    final = f"\\boxed{{{y}}}" if boxed else str(y)
    return (f"{OP_WORDS[op1]} {problem.b}: {problem.a} {op1} {problem.b} = {x}.\n"
            f"{OP_WORDS[problem.op2]} {problem.c}: {x} {problem.op2} {problem.c} = {y}.\n"
            f"The answer is {final}.")


def sample_solution(problem: Problem, mix: ForkMix, rng: random.Random) -> str:
    """One SFT target: each fork drawn independently with the mix's probabilities."""
    return solution(problem, wrong_first_op=rng.random() < mix.p_wrong_first_op,
                    boxed=rng.random() >= mix.p_unboxed)
