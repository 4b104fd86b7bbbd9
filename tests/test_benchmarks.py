"""Benchmark loading: files in the real layouts normalise to problem_id / question / gold answer."""

import json

import pytest
from benchmark_fixtures import AMC, GOLD, GSM8K

from tokenshift.builders.inputs.benchmarks import Fields, load_benchmark
from tokenshift.runtime.errors import TokenshiftError


def test_real_layouts_normalise(benchmark_files):
    aime = load_benchmark(str(benchmark_files / "aime24.jsonl"))
    amc = load_benchmark(str(benchmark_files / "amc23.jsonl"))
    gsm = load_benchmark(str(benchmark_files / "gsm8k.jsonl"))
    assert {p.benchmark for p in aime} == {"aime24"} and aime[0].problem_id == "60"
    assert "\\frac{1}{2}" in aime[0].question  # LaTeX kept verbatim
    assert [p.gold_answer for p in aime] == GOLD["aime24"]  # strings as given, leading zero kept
    assert [p.gold_answer for p in amc] == GOLD["amc23"]  # 27.0 -> 27, -1.0 -> -1
    assert [p.problem_id for p in amc] == [str(r["id"]) for r in AMC] == ["0", "1", "2", "17"]
    assert [p.gold_answer for p in gsm] == GOLD["gsm8k"]  # after ####, thousands separator dropped
    assert [p.problem_id for p in gsm] == [str(r["idx"]) for r in GSM8K]
    assert gsm[0].question.startswith("Janet\u2019s ducks")


def test_shared_files_normalise(shared_benchmarks):
    aime = load_benchmark(str(shared_benchmarks / "aime24.jsonl"))
    amc = load_benchmark(str(shared_benchmarks / "amc23.jsonl"))
    gsm = load_benchmark(str(shared_benchmarks / "gsm8k.jsonl"))
    assert (len(aime), len(amc), len(gsm)) == (30, 40, 1319)
    assert aime[0].benchmark == "aime24" and aime[0].problem_id == "60" and aime[0].gold_answer == "204"
    assert amc[0].gold_answer == "27"  # 27.0 in the file
    assert gsm[0].gold_answer == "18" and "####" not in gsm[0].gold_answer
    raw = [json.loads(line) for line in (shared_benchmarks / "gsm8k.jsonl").open()]
    assert all(p.gold_answer == r["answer"].split("####")[-1].strip().replace(",", "")
               for p, r in zip(gsm, raw))
    assert all(isinstance(p.problem_id, str) for p in amc)


def test_custom_fields_and_limit(tmp_path):
    path = tmp_path / "custom.jsonl"
    path.write_text("\n".join(json.dumps({"key": f"k{i}", "q": f"What is {i}+1?", "a": i + 1})
                              for i in range(5)))
    problems = load_benchmark(str(path), limit=3, fields=Fields(question="q", answer="a", id="key"))
    assert [p.problem_id for p in problems] == ["k0", "k1", "k2"] and problems[2].gold_answer == "3"
    with pytest.raises(TokenshiftError, match="no question field among key, q, a: pass --question-field"):
        load_benchmark(str(path))


def test_toy_benchmark_is_registered():
    problems = load_benchmark("toy-arith")
    assert len(problems) >= 200 and problems[0].benchmark == "toy-arith"
    assert all(p.gold_answer.lstrip("-").isdigit() for p in problems)


def test_unknown_and_offline_hub_benchmarks_fail_in_one_line(monkeypatch):
    monkeypatch.delenv("TOKENSHIFT_BENCHMARK_DIR", raising=False)
    with pytest.raises(TokenshiftError, match="unknown benchmark 'mmlu'"):
        load_benchmark("mmlu")
    with pytest.raises(TokenshiftError) as err:
        load_benchmark("aime24")  # the Hub is unreachable (HF_DATASETS_OFFLINE=1)
    assert "pass a local .jsonl path" in str(err.value) and "\n" not in str(err.value)


def test_named_benchmark_from_local_directory(monkeypatch, benchmark_files):
    monkeypatch.setenv("TOKENSHIFT_BENCHMARK_DIR", str(benchmark_files))
    assert len(load_benchmark("amc23")) == len(AMC)


def test_real_aime_solutions_give_boxed_golds_and_name_the_row_without_one(shared_benchmarks):
    path = shared_benchmarks / "aime24.jsonl"
    raw = [json.loads(line) for line in path.open()]
    missing = [i + 1 for i, r in enumerate(raw) if "\\boxed{" not in r["solution"]]
    assert len(missing) == 1  # the real file's quirk the fixtures reproduce
    with pytest.raises(TokenshiftError, match=rf"row {missing[0]} has no \\boxed"):
        load_benchmark(str(path), fields=Fields(answer="solution", answer_from="boxed"))
