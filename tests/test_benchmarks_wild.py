"""Benchmarks as found in the wild: gold transforms, invalid rows, names, dict options, the public grader,
`tokenshift benchmark check` on each layout of the Qwen2.5-Math suite, and a grading timeout that stays null."""

import dataclasses
import json
import shlex
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from benchmark_fixtures import write_jsonl
from click.testing import CliRunner
from layout_fixtures import GAOKAO, LAYOUTS, MINERVA, SAT_MATH

import tokenshift
from tokenshift.builders.grading import gold_rules
from tokenshift.builders.grading.grade import grade_answer, grade_many, tuple_gold
from tokenshift.builders.inputs.benchmark_check import check_benchmark
from tokenshift.builders.inputs.benchmarks import Fields, read_benchmark
from tokenshift.builders.pipeline.build import BuildConfig, command_line, prepare_out, run_build, work_config
from tokenshift.cards.render import render_card
from tokenshift.cli import cli
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.shards import WORK_DIR

# a pair math-verify cannot compare within its own limit: 9^(9^(9^9)) against 3^(9^(9^9))
HARD_GOLD, HARD_ANSWER = "9^{9^{9^{9}}}", "3^{9^{9^{9}}}"
SAT_ROW = SAT_MATH[0]


def _fields(flags: list[str]) -> Fields:
    """The Fields a build reads with these CLI flags (parsed by the build command itself)."""
    from tokenshift.builders.commands import build
    from tokenshift.builders.pipeline.build import benchmark_fields

    ctx = build.make_context("build", ["--out", "o", *flags])
    params = {k: v for k, v in ctx.params.items() if k in {f.name for f in dataclasses.fields(BuildConfig)}}
    params["rl"] = tuple(params.get("rl") or ())
    return benchmark_fields(BuildConfig(**params))


def _layout_file(tmp_path: Path, name: str) -> Path:
    (tmp_path / name).mkdir()
    return write_jsonl(tmp_path / name / "test.jsonl", LAYOUTS[name][0])


def test_rules_rewrite_what_they_name_and_leave_the_rest():
    assert gold_rules.sci_notation("4.5e33") == "4.5 \\times 10^{33}"
    assert gold_rules.sci_notation("L = 1.2E-07 erg") == "L = 1.2 \\times 10^{-7} erg"
    assert gold_rules.sci_notation("6e+05") == "6 \\times 10^{5}"
    for text in ("2e", "e33", "x_2", "10^{33}", "\\frac{e}{2}"):
        assert gold_rules.sci_notation(text) == text
    strip = {"9 (apples)": "9", "0.5 (hours)": "0.5", "3/4 (cake)": "3/4", "30 km/h": "30", "1,000 people": "1,000",
             "9 \\text{ apples}": "9", "f(x)": "f(x)", "(3, 5)": "(3, 5)", "5 x + 3": "5 x + 3", "2 i": "2 i",
             "x (apples)": "x (apples)", "12": "12"}
    assert {t: gold_rules.strip_unit(t) for t in strip} == strip
    assert [gold_rules.option_letter(t, 0) for t in ("0", "2", " 3 ", "C", "2.5")] == ["A", "C", "D", "C", "2.5"]
    assert [gold_rules.option_letter(t, 1) for t in ("1", "2")] == ["A", "B"]
    with pytest.raises(ValueError, match="option index 0 has no letter"):
        gold_rules.option_letter("0", 1)
    assert gold_rules.apply("2", ["option-index0"], side="answer") == "2"  # index rules never touch answers
    with pytest.raises(TokenshiftError, match="unknown --gold-transform 'units'"):
        gold_rules.check_transforms(["units"])
    with pytest.raises(TokenshiftError, match="counted from 0 or from 1"):
        gold_rules.check_transforms(["option-index0", "option-index1"])


def test_answers_get_the_same_rule_and_a_printed_option_is_its_letter():
    sci = ("sci-notation",)
    assert grade_answer("4.5e33", "\\boxed{4.5 \\times 10^{33}}").correct is False  # why the rule exists
    assert grade_answer("4.5e33", "\\boxed{4.5 \\times 10^{33}}", sci).correct is True
    assert grade_answer("4.5 \\times 10^{33}", "\\boxed{4.5e33}", sci).correct is True  # the answer side
    assert grade_answer("4.5 \\times 10^{33}", "\\boxed{4.6e33}", sci).correct is False
    assert grade_answer("9 (apples)", "\\boxed{9}").correct is False
    assert grade_answer("9 (apples)", "\\boxed{9}", ("strip-unit",)).correct is True
    assert grade_answer("9", "\\boxed{9 (apples)}", ("strip-unit",)).correct is True
    assert grade_answer("2", "\\boxed{C}", ("option-index0",)).correct is True
    assert grade_answer(tuple_gold(["1e3", "2"]), "\\boxed{(1000, 2)}", sci).correct is True  # per tuple part
    verdicts = {a: grade_answer("A", f"\\boxed{{{a}}}").correct for a in ("A)", "A) 21", "(A) 21", "B)", "A")}
    assert verdicts == {"A)": True, "A) 21": True, "(A) 21": True, "B)": False, "A": True}
    assert grade_answer("B", "\\boxed{A) 21}").correct is False


def test_a_hard_pair_times_out_as_ungraded_not_a_crash():
    # math-verify raises its TimeoutException, a BaseException that `except Exception` lets through
    from math_verify.errors import TimeoutException

    assert not issubclass(TimeoutException, Exception)
    assert grade_answer(HARD_GOLD, f"so \\boxed{{{HARD_ANSWER}}}") == \
        grade_answer.__globals__["Grade"](HARD_ANSWER, None)
    grades = grade_many([(HARD_GOLD, f"\\boxed{{{HARD_ANSWER}}}"), ("2", "\\boxed{2}")], timeout_s=60, retries=0)
    assert [g.correct for g in grades] == [None, True]


def test_public_grade_is_the_builders_grading_and_refuses_bad_arguments():
    grade = tokenshift.grade("so \\boxed{4.5e33}", "4.5 \\times 10^{33}", rule="sci-notation")
    assert (grade.extracted_answer, grade.correct) == ("4.5e33", True)
    grades = tokenshift.grade(["\\boxed{4.5e33}", "no box", "\\boxed{B)}"], ["4.5 \\times 10^{33}", "1", "A"])
    assert [(g.extracted_answer, g.correct) for g in grades] == [("4.5e33", False), (None, False), ("B)", False)]
    for args, kwargs, message in [(("\\boxed{1}", 1), {}, "two strings"), ((["a"], ["b", "c"]), {}, "equal length"),
                                  (("a", "b"), {"rule": "units"}, "unknown --gold-transform"),
                                  (("a", "b"), {"timeout_s": 0}, "timeout_s must be"),
                                  (("a", "b"), {"rule": 3}, "must be a list of rule names"),
                                  (("\\boxed{A}", "0"), {"rule": "option-index1"}, "option index 0 has no letter")]:
        with pytest.raises(TokenshiftError, match=message):
            tokenshift.grade(*args, **kwargs)


def test_empty_golds_are_refused_in_one_line_naming_the_rows_or_skipped_and_listed(tmp_path):
    rows = [{"id": f"p{i}", "question": f"q{i}", "answer": "" if i % 3 else str(i)} for i in range(30)]
    rows[3]["answer"] = "   "
    rows[6]["answer"] = None
    rows[9]["answer"] = []
    path = write_jsonl(tmp_path / "gaokao.jsonl", rows)
    with pytest.raises(TokenshiftError) as err:
        read_benchmark(str(path))
    message = str(err.value)
    assert "\n" not in message and "--skip-invalid" in message
    assert "has an empty (or null) gold answer in 23 rows (2, 3, 4, 5, 6, 7, 8, 9, 10, 11 and 13 more)" in message
    loaded = read_benchmark(str(path), fields=Fields(skip_invalid=True))
    kept = [i for i in range(30) if i % 3 == 0 and i not in (3, 6, 9)]
    assert [p.gold_answer for p in loaded.problems] == [str(i) for i in kept]
    assert [(s.row, s.problem_id, s.reason) for s in loaded.skipped] == [
        (i + 1, f"p{i}", "empty gold") for i in range(30) if i not in kept]
    assert loaded.record()["skipped"][0] == {"row": 2, "problem_id": "p1", "reason": "empty gold"}
    assert loaded.rows == 30 and loaded.record()["problems"] == len(kept)


def test_skip_invalid_skips_boxless_rows_and_repeated_ids_keeping_the_first(tmp_path):
    rows = [{"id": "a", "problem": "1+1?", "solution": "so \\boxed{2}"},
            {"id": "b", "problem": "2+2?", "solution": "it is four"},
            {"id": "a", "problem": "3+3?", "solution": "\\boxed{6}"},
            {"id": "c", "problem": "4+4?", "solution": "\\boxed{8}"}]
    path = write_jsonl(tmp_path / "math.jsonl", rows)
    fields = Fields(answer="solution", answer_from="boxed")
    with pytest.raises(TokenshiftError, match=r"row 2 has no \\boxed\{\} .*or pass --skip-invalid"):
        read_benchmark(str(path), fields=fields)
    with pytest.raises(TokenshiftError, match="duplicate problem id 'a'.*--skip-invalid to keep the first"):
        read_benchmark(str(write_jsonl(tmp_path / "dup.jsonl", [rows[0], rows[2]])), fields=fields)
    loaded = read_benchmark(str(path), fields=dataclasses.replace(fields, skip_invalid=True))
    assert [(p.problem_id, p.gold_answer) for p in loaded.problems] == [("a", "2"), ("c", "8")]
    assert [(s.row, s.problem_id, s.reason) for s in loaded.skipped] == [(2, "b", "no \\boxed{}"),
                                                                         (3, "a", "duplicate id")]
    assert loaded.rows == 4 and loaded.transformed == {}


def test_benchmark_name_flag_hint_and_dict_options(tmp_path, capsys):
    path = _layout_file(tmp_path, "sat_math")
    fields = _fields(LAYOUTS["sat_math"][1])
    problems = read_benchmark(str(path), fields=fields).problems
    assert {p.benchmark for p in problems} == {"benchmark"}  # test.jsonl, as before
    assert problems[0].question == "If $3x + 5 = 17$, what is $x$?\n(A) 3\n(B) 4\n(C) 5\n(D) 6"
    named = read_benchmark(str(path), fields=dataclasses.replace(fields, name="sat_math")).problems
    assert {p.benchmark for p in named} == {"sat_math"}
    result = CliRunner().invoke(cli, ["benchmark", "check", str(path), "--quiet", *LAYOUTS["sat_math"][1]])
    assert result.exit_code == 0, result.output
    assert f"Warning: {path} names its benchmark 'benchmark' in every table and the card: pass " \
           "--benchmark-name NAME" in result.output
    result = CliRunner().invoke(cli, ["benchmark", "check", str(path), "--quiet", "--benchmark-name", "sat_math",
                                      *LAYOUTS["sat_math"][1]])
    assert "Warning" not in result.output and "benchmark name 'sat_math'" in result.output
    strings = write_jsonl(tmp_path / "sat.jsonl", [{**SAT_ROW, "options": "A) 3 B) 4 C) 5 D) 6"}])
    assert read_benchmark(str(strings), fields=Fields(answer="Answer", question_template="{question}\n{options}")
                          ).problems[0].question == "If $3x + 5 = 17$, what is $x$?\nA) 3 B) 4 C) 5 D) 6"
    for bad in ("", "a\nb"):
        with pytest.raises(TokenshiftError, match="--benchmark-name"):
            read_benchmark(str(path), fields=dataclasses.replace(fields, name=bad))


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_benchmark_check_reads_each_layout_with_its_flags(tmp_path, name):
    rows, flags, golds, missed = LAYOUTS[name]
    path = _layout_file(tmp_path, name)
    result = CliRunner().invoke(cli, ["benchmark", "check", str(path), "--quiet", "--benchmark-name", name, *flags])
    assert result.exit_code == 0, result.output
    assert f"benchmark name {name!r}" in result.output and "ok: a build reads every gold" in result.output
    assert f"self-check: {len(golds)} golds graded against themselves: {len(golds)} correct, 0 wrong" \
        in result.output
    assert [p.gold_answer for p in read_benchmark(str(path), fields=_fields(flags)).problems] == golds
    if missed is None:
        return
    careless = [f for i, f in enumerate(flags) if f not in missed and not (i and flags[i - 1] in missed)]
    if missed[0] == "--skip-invalid":
        result = CliRunner().invoke(cli, ["benchmark", "check", str(path), "--quiet", *careless])
        assert result.exit_code == 1 and "empty gold: 2 rows, e.g. row 2 (id 1), row 3 (id 2): a build refuses the file; " \
            "--skip-invalid skips them" in result.output, result.output
        return
    result = CliRunner().invoke(cli, ["benchmark", "check", str(path), "--quiet", *careless])
    hint = [line for line in result.output.splitlines() if line.startswith("hint:")]
    assert len(hint) == 1 and f"--gold-transform {missed[1]}" in hint[0], result.output


def test_build_records_transforms_and_skipped_rows_in_manifest_and_card_and_rebuilds(tmp_path):
    rows = [*MINERVA, {"problem": "No box here.", "solution": "It is 3.", "type": "x", "idx": 3},
            {**MINERVA[2], "idx": 0}]  # row 4: no box; row 5: idx 0 again
    bench = write_jsonl(tmp_path / "test.jsonl", rows)
    config = BuildConfig(out=str(tmp_path / "a"), benchmark=str(bench), answer_field="solution", answer_from="boxed",
                         id_field="idx", gold_transform=("sci-notation",), skip_invalid=True,
                         benchmark_name="minerva", samples=1, max_new_tokens=4)
    out = run_build(config, progress=False)
    prompts = pq.read_table(out / "prompts").to_pandas()
    assert list(prompts.gold_answer) == ["4.5 \\times 10^{33}", "1.3 \\times 10^{-7}", "0.2"]
    assert set(prompts.benchmark) == {"minerva"}
    assert set(pq.read_table(out / "generations").column("benchmark").to_pylist()) == {"minerva"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["gold_transform"] == ["sci-notation"] and manifest["config"]["skip_invalid"] is True
    assert manifest["benchmark_rows"] == {
        "rows": 5, "problems": 3, "gold_transforms": {"sci-notation": 2},
        "skipped": [{"row": 4, "problem_id": "3", "reason": "no \\boxed{}"},
                    {"row": 5, "problem_id": "0", "reason": "duplicate id"}]}
    card = render_card(manifest, {}, "0" * 64).text
    assert "| Gold transform | `sci-notation`: scientific e-notation written as a power of ten" in card
    assert "changed 2 of 3 golds |" in card
    assert "| Skipped rows | 2 of 5 rows skipped by --skip-invalid (duplicate id: 1, no \\boxed{}: 1); listed in " \
           "manifest.json `benchmark_rows.skipped` |" in card
    title = next(line for line in card.splitlines() if line.startswith("# tokenshift: "))
    assert "named `minerva`" in card and title.endswith(" on minerva")  # the title names it, not the file
    data = render_card(manifest, {}, "0" * 64).data
    assert data.pretty_name == title[2:] and "benchmark:minerva" in data.tags  # so do the metadata
    args = shlex.split(manifest["command"])
    assert args[args.index("--gold-transform") + 1] == "sci-notation" and "--skip-invalid" in args
    args[args.index("--out") + 1] = str(tmp_path / "b")
    result = CliRunner().invoke(cli, [*args[1:], "--quiet"])
    assert result.exit_code == 0, result.output
    for table in ("prompts", "generations"):
        assert pq.read_table(tmp_path / "b" / table).equals(pq.read_table(out / table))
    # regrade reads the rules from the manifest: an answer in e-notation against the rewritten gold
    from synthetic_build import refresh_manifest_tables

    from tokenshift.builders.maintenance.regrade import regrade
    from tokenshift.schemas.tables import to_arrow, write_parquet

    part = out / "generations" / "part-00000.parquet"
    rows = pq.read_table(part).to_pylist()
    first = [r for r in rows if r["problem_id"] == "0"]
    for r in first:
        r["response_text"], r["correct"] = "so \\boxed{4.5e33}", None
    write_parquet(to_arrow("generations", rows), part)
    refresh_manifest_tables(out)
    assert regrade(out).attempted == len(first) > 0
    assert {r["correct"] for r in pq.read_table(part).to_pylist() if r["problem_id"] == "0"} == {True}


def test_no_new_flag_adds_nothing_to_the_command_and_an_older_work_config_resumes(tmp_path):
    line = command_line(BuildConfig(out="o"))
    assert all(flag not in line for flag in ("--gold-transform", "--skip-invalid", "--benchmark-name"))
    config = BuildConfig(out=str(tmp_path / "b"), samples=1)
    work = tmp_path / "b" / WORK_DIR
    work.mkdir(parents=True)
    older = {k: v for k, v in json.loads(json.dumps(work_config(config))).items()
             if k not in ("gold_transform", "skip_invalid", "benchmark_name")}
    (work / "config.json").write_text(json.dumps(older))
    assert prepare_out(config, overwrite=False) == Path(config.out)  # fields it lacks were at their defaults
    with pytest.raises(TokenshiftError, match=r"started with another config \(skip_invalid: False -> True\)"):
        prepare_out(dataclasses.replace(config, skip_invalid=True), overwrite=False)
    recorded = {"config": {**older, "gold_transform": ["strip-unit"]}}
    assert BuildConfig.from_manifest(recorded).gold_transform == ("strip-unit",)


def test_gaokao_rows_on_the_cli_refused_in_one_line(tmp_path):
    bench = write_jsonl(tmp_path / "gaokao.jsonl", GAOKAO)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["build", "--out", str(out), "--benchmark", str(bench), "--quiet"])
    assert result.exit_code == 2 and "Traceback" not in result.output and not out.exists()
    assert result.output.strip().splitlines() == [
        f"Error: benchmark '{bench}' has an empty (or null) gold answer in 2 rows (2, 3): fill the golds, or pass "
        "--skip-invalid to skip such rows (counted and listed in the manifest)"]
    choice = read_benchmark(str(bench), fields=Fields(answer="choice_answer", skip_invalid=True))  # second build
    assert [(p.problem_id, p.gold_answer) for p in choice.problems] == [("2", "B")]


@pytest.mark.parametrize("name", ["aime24", "amc23", "gsm8k"])
def test_real_files_check_clean(name, shared_benchmarks):
    report = check_benchmark(str(shared_benchmarks / f"{name}.jsonl"), limit=30, progress=False)
    assert report.ok and report.problems == 30 and not report.wrong and not report.ungraded, report.lines()


def test_real_aime_solution_without_a_box_is_listed_and_refused(shared_benchmarks):
    fields = Fields(answer="solution", answer_from="boxed")
    report = check_benchmark(str(shared_benchmarks / "aime24.jsonl"), fields=fields, progress=False)
    assert [(s.row, s.problem_id) for s in report.invalid["no \\boxed{}"]] == [(1, "60")] and not report.ok
    assert report.problems == report.rows - 1 == 29 and not report.wrong
