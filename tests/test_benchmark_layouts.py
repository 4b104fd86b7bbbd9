"""Benchmark layouts beyond one question and one short answer field: question templates, gold answers
inside worked solutions, gold lists (tuples) and multiple choice; recorded so a rebuild reproduces them."""

import json
import shlex

import pyarrow.parquet as pq
import pytest
from benchmark_fixtures import AIME, write_jsonl
from click.testing import CliRunner

from tokenshift.builders.grading.grade import grade_answer, split_tuple, tuple_gold
from tokenshift.builders.inputs.benchmarks import ANSWER_RULES, Fields, load_benchmark
from tokenshift.builders.pipeline.build import BuildConfig, command_line, run_build
from tokenshift.cards.render import render_card
from tokenshift.cli import cli
from tokenshift.runtime.errors import TokenshiftError

# SVAMP-style: the question is spread over Body and Question; Answer is a float; ID a string.
SVAMP = [
    {"ID": "chal-1", "Body": "Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each pack",
     "Question": "How much do you have to pay to buy each pack?", "Equation": "( 76.0 - 25.0 )", "Answer": 51.0},
    {"ID": "chal-2", "Body": "Dan had $ 3 left with him after he bought a candy bar for $ 2.",
     "Question": "How much money did he have at the start?", "Equation": "( 3.0 + 2.0 )", "Answer": 5.0},
]
# MATH-style: the gold is the last \boxed{} of a worked solution (nested braces, an earlier box).
MATH = [
    {"problem": "Compute $\\dfrac{3}{6}$.", "level": "Level 1",
     "solution": "First $\\boxed{3}/6$ is not the end; reducing gives $\\boxed{\\frac{1}{2}}$."},
    {"problem": "What is $1+1$?", "level": "Level 1", "solution": "It is 2."},
]
# Gold answers as JSON lists (OlympiadBench-style final_answer): one answer, or a tuple of several.
LISTS = [
    {"id": "p1", "question": "Find $x$ with $2x = 1$.", "final_answer": ["$\\frac{1}{2}$"]},
    {"id": "p2", "question": "Find the ordered pair $(a, b)$ with $a + b = 8$, $a - b = -2$.",
     "final_answer": [3, 5]},
    {"id": "p3", "question": "Nothing to find.", "final_answer": []},
]
# Multiple choice (AQuA-style lettered options, and bare options); the gold is a letter.
CHOICES = [
    {"question": "A train covers 44 km in 2 hours. Its speed in km/h?", "options": ["21", "21.5", "22", "23"],
     "correct": "C"},
    {"question": "What is 6 * 7?", "options": ["A)40", "B)41", "C)42", "D)43"], "correct": "C"},
]


def test_answer_rules_are_the_cli_choices():
    from tokenshift.builders.commands import build

    option = next(p for p in build.params if p.name == "answer_from")
    assert tuple(option.type.choices) == ANSWER_RULES and option.default == "field"


def test_question_template_joins_fields_and_a_missing_field_is_one_line(tmp_path):
    path = write_jsonl(tmp_path / "svamp.jsonl", SVAMP)
    problems = load_benchmark(str(path), fields=Fields(id="ID", answer="Answer",
                                                       question_template="{Body}. {Question}"))
    assert [p.question for p in problems] == [f"{r['Body']}. {r['Question']}" for r in SVAMP]
    assert [p.problem_id for p in problems] == ["chal-1", "chal-2"] and problems[0].gold_answer == "51"
    with pytest.raises(TokenshiftError) as err:
        load_benchmark(str(path), fields=Fields(id="ID", answer="Answer", question_template="{Body} {Query}"))
    message = str(err.value)
    assert "row 1" in message and "'Query' not found" in message and "\n" not in message
    assert "(fields: ID, Body, Question, Equation, Answer)" in message


@pytest.mark.parametrize("template, problem", [
    ("{Body", "not a valid template"), ("{} {Question}", "not a plain field name"),
    ("{Body.upper}", "not a plain field name"), ("no fields", "names no field")])
def test_bad_templates_fail_before_reading(template, problem):
    with pytest.raises(TokenshiftError, match=problem):
        load_benchmark("does-not-matter.jsonl", fields=Fields(question_template=template))


def test_answer_from_boxed_takes_the_last_box_and_names_a_row_without_one(tmp_path):
    path = write_jsonl(tmp_path / "math.jsonl", MATH)
    fields = Fields(answer="solution", answer_from="boxed")
    assert load_benchmark(str(write_jsonl(tmp_path / "one.jsonl", MATH[:1])), fields=fields)[0].gold_answer == (
        "\\frac{1}{2}")
    with pytest.raises(TokenshiftError, match=r"^benchmark '.*math.jsonl' row 2 has no \\boxed\{\} in its "
                                              r"answer field: fix the row"):
        load_benchmark(str(path), fields=fields)
    aime = write_jsonl(tmp_path / "aime24.jsonl", AIME)  # one AIME-style solution has no box (row 3)
    with pytest.raises(TokenshiftError, match="row 3 has no"):  # every row is read, whatever --limit
        load_benchmark(str(aime), limit=2, fields=fields)
    boxed = [AIME[0], AIME[1], AIME[3]]
    assert [p.gold_answer for p in load_benchmark(str(write_jsonl(aime, boxed)), fields=fields)] == [
        "204", "\\textbf{(113) }", "025"]


def test_gold_lists_one_answer_or_a_tuple(tmp_path):
    path = write_jsonl(tmp_path / "lists.jsonl", LISTS)
    with pytest.raises(TokenshiftError, match=r"has an empty \(or null\) gold answer in row 3: fill the golds"):
        load_benchmark(str(path))
    problems = load_benchmark(str(write_jsonl(path, LISTS[:2])))
    assert problems[0].gold_answer == "$\\frac{1}{2}$"
    assert problems[1].gold_answer == tuple_gold(["3", "5"]) == '["3", "5"]'


def test_a_tuple_gold_is_graded_whole_and_in_order():
    gold = tuple_gold(["3", "5"])
    correct = ["\\boxed{(3, 5)}", "\\boxed{3, 5}", "\\boxed{\\left(\\frac{6}{2}, 5\\right)}", "\\boxed{(3,5.0)}"]
    wrong = ["\\boxed{(5, 3)}", "\\boxed{5, 3}", "\\boxed{3}", "\\boxed{(3, 5, 7)}", "\\boxed{8}", "3, 5"]
    assert [grade_answer(gold, f"so {r}").correct for r in correct] == [True] * len(correct)
    assert [grade_answer(gold, f"so {r}").correct for r in wrong] == [False] * len(wrong)
    assert grade_answer("3, 5", "\\boxed{5, 3}").correct  # why: math-verify alone reads `3, 5` as a set
    assert grade_answer(tuple_gold(["f(1, 2)", "3"]), "\\boxed{(f(1, 2), 3)}").correct  # inner commas stay
    assert split_tuple("\\left(a, (b, c)\\right)") == ["a", "(b, c)"] and split_tuple("(1)+(2)") == ["(1)+(2)"]
    assert grade_answer("$\\frac{1}{2}$", "\\boxed{0.5}").correct  # a one-element list is its answer


def test_multiple_choice_options_by_template_graded_as_the_letter(tmp_path):
    path = write_jsonl(tmp_path / "choices.jsonl", CHOICES)
    problems = load_benchmark(str(path), fields=Fields(answer="correct",
                                                       question_template="{question}\n{options:choices}"))
    assert problems[0].question == f"{CHOICES[0]['question']}\n(A) 21\n(B) 21.5\n(C) 22\n(D) 23"
    assert problems[1].question == f"{CHOICES[1]['question']}\nA)40\nB)41\nC)42\nD)43"  # already lettered
    assert {p.gold_answer for p in problems} == {"C"}
    verdicts = {r: grade_answer("C", f"The answer is \\boxed{{{r}}}.").correct
                for r in ("\\text{(C)}", "C", "(C)", "\\textbf{(C)}", "\\text{C}", "D", "\\text{(D)}", "22")}
    assert verdicts == {"\\text{(C)}": True, "C": True, "(C)": True, "\\textbf{(C)}": True, "\\text{C}": True,
                        "D": False, "\\text{(D)}": False, "22": False}
    with pytest.raises(TokenshiftError, match="needs a list or a dict of options"):
        load_benchmark(str(path), fields=Fields(answer="correct", question_template="{question:choices}"))


def test_defaults_add_no_flag_and_both_flags_round_trip_through_the_command_line():
    assert "--question-template" not in command_line(BuildConfig(out="o"))
    assert "--answer-from" not in command_line(BuildConfig(out="o"))
    config = BuildConfig(out="o", answer_field="solution", answer_from="boxed",
                         question_template="{Body} {Question}\n{options:choices} {{literal}}")
    args = shlex.split(command_line(config))
    assert args[args.index("--question-template") + 1] == config.question_template
    assert args[args.index("--answer-from") + 1] == "boxed"


def test_build_records_template_and_rule_and_its_command_rebuilds_the_prompts(tmp_path):
    rows = [{**m, "topic": "fractions", "problem": m["problem"]} for m in MATH[:1]] + [
        {"problem": "What is $2+2$?", "topic": "sums", "solution": "Surely $\\boxed{4}$."}]
    bench = write_jsonl(tmp_path / "math.jsonl", rows)
    config = BuildConfig(out=str(tmp_path / "a"), benchmark=str(bench), answer_field="solution",
                         answer_from="boxed", question_template="[{topic}] {problem}", samples=1,
                         max_new_tokens=4)
    out = run_build(config, progress=False)
    prompts = pq.read_table(out / "prompts").to_pandas()
    assert list(prompts.question) == ["[fractions] Compute $\\dfrac{3}{6}$.", "[sums] What is $2+2$?"]
    assert list(prompts.gold_answer) == ["\\frac{1}{2}", "4"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["question_template"] == "[{topic}] {problem}"
    assert manifest["config"]["answer_from"] == "boxed"
    args = shlex.split(manifest["command"])
    args[args.index("--out") + 1] = str(tmp_path / "b")
    result = CliRunner().invoke(cli, [*args[1:], "--quiet"])
    assert result.exit_code == 0, result.output
    assert pq.read_table(tmp_path / "b" / "prompts").equals(pq.read_table(out / "prompts"))
    card = render_card(manifest, {}, "0" * 64).text
    assert '| Question | template `"[{topic}] {problem}"` over the row\'s fields |' in card
    assert "| Gold answer | the last \\boxed{} of the field `solution` |" in card


def test_template_errors_on_the_cli_are_one_line_and_write_nothing(tmp_path):
    bench = write_jsonl(tmp_path / "svamp.jsonl", SVAMP)
    out = tmp_path / "out"
    for extra, message in [(["--question-template", "{Body} {Query}"], "'Query' not found (fields: ID, Body"),
                           (["--question-template", "{Body}", "--question-field", "Body"], "pass only one"),
                           (["--answer-from", "solution"], "Invalid value for '--answer-from'")]:
        result = CliRunner().invoke(cli, ["build", "--out", str(out), "--benchmark", str(bench), "--id-field",
                                          "ID", "--answer-field", "Answer", "--quiet", *extra])
        assert result.exit_code == 2 and message in result.output, result.output
        assert "Traceback" not in result.output and not out.exists()
