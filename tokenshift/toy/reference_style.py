"""Reference solutions in a fixed wording of their own, for the off-policy SFT control.

The base learned "Follow each change in order. / Add 7: 45 + 7 = 52. / The answer is \\boxed{52}.";
this wording restates the question instead ("He loses 12: 57 - 12 = 45."), so it differs from the
base's habits at most non-digit positions, not only at the planted slips. Always correct.
"""

from __future__ import annotations

from tokenshift.builders.inputs.arith import Problem, apply


def reference_solution(problem: Problem) -> str:
    """Start, each change in the question's own words with its arithmetic, then the boxed count."""
    first_sentence, rest = problem.question.split(". ", 1)
    name, _, a, item = first_sentence.split(" ", 3)
    changes, _ = rest.split(". ", 1)
    change1, change2 = changes.split(" and then ", 1)  # "He loses 12", "buys 7 more"
    pronoun = change1.split(" ", 1)[0]
    x = apply(problem.a, problem.op1, problem.b)
    y = apply(x, problem.op2, problem.c)
    return (f"{name} starts with {a} {item}.\n"
            f"{change1}: {problem.a} {problem.op1} {problem.b} = {x}.\n"
            f"Then {pronoun.lower()} {change2}: {x} {problem.op2} {problem.c} = {y}.\n"
            f"{pronoun} has \\boxed{{{y}}} {item} now.")
