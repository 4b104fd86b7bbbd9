"""The toy-arith generator: deterministic across processes, disjoint splits, gradable solutions."""

import hashlib
import json
import os
import subprocess
import sys

from tokenshift.builders.inputs.arith import N_TEST, split_problems, toy_problems
from tokenshift.toy.grpo import correctness_reward
from tokenshift.toy.solutions import CONFUSED_VERB, Slips, problem_verbs, solution

_DIGEST = ("import hashlib, json; from tokenshift.builders.inputs.arith import toy_problems; "
           "print(hashlib.sha256(json.dumps([toy_problems('test'), toy_problems('train', 500)])"
           ".encode()).hexdigest())")


def test_rows_have_the_contract_keys_and_integer_answers():
    rows = toy_problems("test", 5)
    assert [r["problem_id"] for r in rows] == [f"toy-test-{i:04d}" for i in range(5)]
    for r in rows:
        assert set(r) == {"problem_id", "question", "answer"}
        assert int(r["answer"]) > 0 and r["answer"] == str(int(r["answer"]))
        assert r["question"].endswith("have now?")


def test_same_problems_in_fresh_processes_with_different_hash_seeds():
    here = hashlib.sha256(json.dumps([toy_problems("test"), toy_problems("train", 500)]).encode()).hexdigest()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", _DIGEST], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == here


def test_splits_are_disjoint_by_question_and_test_is_large_enough():
    test_q = {p.question for p in split_problems("test")}
    train_q = {p.question for p in split_problems("train")}
    assert len(test_q) == N_TEST >= 200
    assert len(train_q) == len(split_problems("train"))
    assert not test_q & train_q


def test_answer_matches_the_question_arithmetic():
    p = split_problems("test")[0]
    assert p.answer == (p.a + (p.b if p.op1 == "+" else -p.b) + (p.c if p.op2 == "+" else -p.c))


def test_grading_rewards_only_the_correct_boxed_answer():
    p = next(p for p in split_problems("test") if "-" in (p.op1, p.op2))  # where the wrong plan is wrong
    gold = str(p.answer)
    right, wrong_plan, unboxed = solution(p), solution(p, Slips(wrong_plan=True)), solution(p, Slips(boxed=False))
    assert right.endswith(f"\\boxed{{{p.answer}}}.") and wrong_plan.startswith("Add up all")
    assert correctness_reward([right, wrong_plan, unboxed], [gold] * 3) == [1.0, 0.0, 0.0]


def _boxed(text):
    return int(text.rsplit("\\boxed{", 1)[1].split("}")[0])


def test_forgotten_tens_adds_ten_only_when_subtracting_a_two_digit_number():
    problems = [p for p in split_problems("train")[:400] if p.op1 == "-" and CONFUSED_VERB not in p.question]
    two_digit = next(p for p in problems if p.b >= 10)
    one_digit = next(p for p in problems if p.b < 10)
    for p, extra in ((two_digit, 10), (one_digit, 0)):
        line = solution(p, Slips(forgot_tens=(True, False))).splitlines()[1]
        assert line == f"Subtract {p.b}: {p.a} - {p.b} = {p.a - p.b + extra}."
    slipped = solution(two_digit, Slips(forgot_tens=(True, False)))
    x = two_digit.a - two_digit.b + 10  # the second step carries the slipped value on
    assert _boxed(slipped) == x + (two_digit.c if two_digit.op2 == "+" else -two_digit.c)


def test_confused_verb_is_read_as_a_gain_and_other_verbs_are_not():
    p = next(p for p in split_problems("train") if problem_verbs(p)[0] == CONFUSED_VERB
             and problem_verbs(p)[1] in ("buys", "finds", "gets", "receives"))
    assert p.op1 == "-" and p.question.split(". ")[1].split()[1] == CONFUSED_VERB
    confused = solution(p, Slips(confused_op=True))
    assert confused.splitlines()[1] == f"Add {p.b}: {p.a} + {p.b} = {p.a + p.b}."
    assert _boxed(confused) == p.a + p.b + p.c != p.answer
    other = next(q for q in split_problems("train") if CONFUSED_VERB not in q.question)
    assert solution(other, Slips(confused_op=True)) == solution(other)
