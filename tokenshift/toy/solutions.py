"""Step-by-step SFT solutions with two planted decision points: the opening plan and the final box."""

from __future__ import annotations

import random
from dataclasses import dataclass

from tokenshift.toy.arith import Problem, apply

OP_WORDS = {"+": "Add", "-": "Subtract"}
RIGHT_PLAN = "Follow each change in order."
WRONG_PLAN = "Add up all the numbers."  # plausible shortcut: ignores losses, right only if both are gains


@dataclass(frozen=True)
class ForkMix:
    """How often SFT solutions take each wrong branch; each branch starts at one fork token.

    Neither branch depends on the question, so RL only has to re-rank tokens the base already
    proposes. (Flipping the first operation per question instead was not learnable by GRPO in budget.)
    """

    p_wrong_plan: float = 0.55  # first answer token: "Add up all the numbers." vs "Follow each change..."
    p_unboxed: float = 0.3  # after "The answer is": a plain number (reward 0) instead of \boxed{N}


def solution(problem: Problem, wrong_plan: bool = False, boxed: bool = True) -> str:
    """Plan line, two arithmetic steps (every op '+' under the wrong plan), then the answer line."""
    op1, op2 = ("+", "+") if wrong_plan else (problem.op1, problem.op2)
    x = apply(problem.a, op1, problem.b)
    y = apply(x, op2, problem.c)
    final = f"\\boxed{{{y}}}" if boxed else str(y)
    return (f"{WRONG_PLAN if wrong_plan else RIGHT_PLAN}\n"
            f"{OP_WORDS[op1]} {problem.b}: {problem.a} {op1} {problem.b} = {x}.\n"
            f"{OP_WORDS[op2]} {problem.c}: {x} {op2} {problem.c} = {y}.\n"
            f"The answer is {final}.")


def sample_solution(problem: Problem, mix: ForkMix, rng: random.Random) -> str:
    """One SFT target: each fork drawn independently with the mix's probabilities."""
    return solution(problem, wrong_plan=rng.random() < mix.p_wrong_plan, boxed=rng.random() >= mix.p_unboxed)
