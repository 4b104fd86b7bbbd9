"""`toy-arith`: deterministic two-step arithmetic word problems with integer answers."""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

BENCHMARK = "toy-arith"
GENERATOR_SEED = 20260322  # fixed: the splits never depend on a training seed
N_TEST = 500
N_TRAIN = 20000

NAMES = (("Tom", "he"), ("Anna", "she"), ("Ben", "he"), ("Lucy", "she"), ("Sam", "he"),
         ("Mia", "she"), ("Leo", "he"), ("Emma", "she"), ("Jack", "he"), ("Nora", "she"),
         ("Omar", "he"), ("Zoe", "she"))
ITEMS = ("apples", "marbles", "stickers", "pencils", "coins", "books", "cookies", "shells",
         "cards", "stamps", "balloons", "toys")
ADD_VERBS = ("buys {n} more", "finds {n} more", "gets {n} more", "receives {n} more")
SUB_VERBS = ("gives away {n}", "loses {n}", "sells {n}", "uses {n}")


@dataclass(frozen=True)
class Problem:
    """One problem: start value `a`, then `op1 b`, then `op2 c` (ops are '+' or '-')."""

    a: int
    op1: str
    b: int
    op2: str
    c: int
    question: str

    @property
    def answer(self) -> int:
        return apply(apply(self.a, self.op1, self.b), self.op2, self.c)


def apply(x: int, op: str, y: int) -> int:
    return x + y if op == "+" else x - y


def _random_problem(rng: random.Random) -> Problem:
    name, pronoun = rng.choice(NAMES)
    item = rng.choice(ITEMS)
    a, b, c = rng.randint(40, 99), rng.randint(2, 19), rng.randint(2, 19)  # every path stays > 0
    op1, op2 = rng.choice("+-"), rng.choice("+-")
    verb1 = rng.choice(ADD_VERBS if op1 == "+" else SUB_VERBS).format(n=b)
    verb2 = rng.choice(ADD_VERBS if op2 == "+" else SUB_VERBS).format(n=c)
    question = (f"{name} has {a} {item}. {pronoun.capitalize()} {verb1} and then {verb2}. "
                f"How many {item} does {pronoun} have now?")
    return Problem(a, op1, b, op2, c, question)


@lru_cache(maxsize=1)
def _splits() -> dict[str, tuple[Problem, ...]]:
    """Draw unique questions from one seeded stream: the first N_TEST are test, the next train."""
    rng = random.Random(GENERATOR_SEED)
    seen: set[str] = set()
    drawn: list[Problem] = []
    while len(drawn) < N_TEST + N_TRAIN:
        p = _random_problem(rng)
        if p.question not in seen:
            seen.add(p.question)
            drawn.append(p)
    return {"test": tuple(drawn[:N_TEST]), "train": tuple(drawn[N_TEST:])}


def split_problems(split: str) -> tuple[Problem, ...]:
    """All `Problem` objects of a split ('train' or 'test')."""
    if split not in ("train", "test"):
        raise ValueError(f"unknown toy split {split!r}; use 'train' or 'test'")
    return _splits()[split]


def toy_problems(split: str, n: int | None = None) -> list[dict]:
    """The first `n` problems of a split as {problem_id, question, answer} rows (answer: integer string)."""
    problems = split_problems(split)[:n]
    return [{"problem_id": f"toy-{split}-{i:04d}", "question": p.question, "answer": str(p.answer)}
            for i, p in enumerate(problems)]
