"""Load a benchmark (toy-arith, aime24, amc23, gsm8k, a jsonl path or a Hub dataset) as `Problem`s."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tokenshift.errors import TokenshiftError

# Hub dataset ids (and split) used for the named benchmarks when no local file is given.
HUB_BENCHMARKS = {
    "aime24": ("HuggingFaceH4/aime_2024", None, "train"),
    "amc23": ("math-ai/amc23", None, "test"),
    "gsm8k": ("openai/gsm8k", "main", "test"),
}
NAMED_BENCHMARKS = ("toy-arith", *HUB_BENCHMARKS)
BENCHMARK_DIR_ENV = "TOKENSHIFT_BENCHMARK_DIR"

_QUESTION_FIELDS = ("question", "problem", "prompt")
_ANSWER_FIELDS = ("answer", "final_answer", "gold")
_ID_FIELDS = ("id", "idx", "problem_id", "unique_id")


@dataclass(frozen=True)
class Problem:
    problem_id: str
    benchmark: str
    question: str
    gold_answer: str


@dataclass(frozen=True)
class Fields:
    """Which record fields hold the question, the gold answer and the id (None: detect)."""

    question: str | None = None
    answer: str | None = None
    id: str | None = None


def load_benchmark(spec: str, limit: int | None = None, fields: Fields = Fields()) -> list[Problem]:
    """Problems of `spec`: a named benchmark, a local .jsonl path or a Hub dataset id."""
    if spec == "toy-arith":
        from tokenshift.toy.arith import toy_problems

        problems = [Problem(p["problem_id"], "toy-arith", p["question"], str(p["answer"]))
                    for p in toy_problems("test")]
    elif Path(spec).suffix == ".jsonl" or Path(spec).is_file():
        problems = _from_records(_read_jsonl(Path(spec)), _benchmark_name(Path(spec).stem), fields, spec)
    elif spec in HUB_BENCHMARKS:
        local = os.environ.get(BENCHMARK_DIR_ENV)
        if local and (Path(local) / f"{spec}.jsonl").is_file():
            problems = _from_records(_read_jsonl(Path(local) / f"{spec}.jsonl"), spec, fields, spec)
        else:
            repo, config, split = HUB_BENCHMARKS[spec]
            problems = _from_records(_read_hub(repo, config, split, spec), spec, fields, spec)
    elif "/" in spec:
        problems = _from_records(_read_hub(spec, None, "test", spec), spec.split("/")[-1], fields, spec)
    else:
        raise TokenshiftError(
            f"unknown benchmark {spec!r}: use one of {', '.join(NAMED_BENCHMARKS)}, "
            "a path to a .jsonl file, or a Hub dataset id ORG/NAME")
    if limit is not None:
        problems = problems[:limit]
    ids = [p.problem_id for p in problems]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise TokenshiftError(f"benchmark {spec!r} has duplicate problem id {dup!r}: "
                              "pass --id-field with a unique field")
    if not problems:
        raise TokenshiftError(f"benchmark {spec!r} has no problems: check the file or --limit")
    return problems


def _benchmark_name(stem: str) -> str:
    return stem if stem != "test" else "benchmark"


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise TokenshiftError(f"benchmark file {path} does not exist: check the path")
    records = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise TokenshiftError(f"{path}:{lineno} is not valid JSON ({err.msg}): "
                                      "fix or remove that line") from None
            if not isinstance(record, dict):
                raise TokenshiftError(f"{path}:{lineno} is not a JSON object: "
                                      "each line must be one object")
            records.append(record)
    return records


def _read_hub(repo: str, config: str | None, split: str, spec: str) -> list[dict]:
    import datasets

    try:
        return list(datasets.load_dataset(repo, config, split=split))
    except Exception as err:  # offline, missing repo, gated: all end the same way for the user
        reason = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise TokenshiftError(
            f"could not load benchmark {spec!r} from the Hub dataset {repo} ({reason}): "
            f"pass a local .jsonl path to --benchmark, or set {BENCHMARK_DIR_ENV}") from None


def _pick(record: dict, explicit: str | None, candidates: tuple[str, ...], what: str, flag: str,
          where: str):
    if explicit is not None:
        if explicit not in record:
            raise TokenshiftError(f"{where}: field {explicit!r} not found (fields: "
                                  f"{', '.join(record)}): fix {flag}")
        return record[explicit]
    for name in candidates:
        if name in record and record[name] is not None:
            return record[name]
    raise TokenshiftError(f"{where}: no {what} field among {', '.join(record)}: pass {flag}")


def _normalise_answer(answer) -> str:
    """Gold answers as strings; GSM8K keeps only what follows '####'; 27.0 becomes '27'."""
    if isinstance(answer, float) and answer.is_integer():
        return str(int(answer))
    text = str(answer).strip()
    if "####" in text:
        text = text.rsplit("####", 1)[1].strip().replace(",", "")
    return text


def _from_records(records: list[dict], benchmark: str, fields: Fields, spec: str) -> list[Problem]:
    problems = []
    for index, record in enumerate(records):
        where = f"benchmark {spec!r} row {index + 1}"
        question = _pick(record, fields.question, _QUESTION_FIELDS, "question", "--question-field", where)
        answer = _pick(record, fields.answer, _ANSWER_FIELDS, "answer", "--answer-field", where)
        if fields.id is None and not any(f in record for f in _ID_FIELDS):
            problem_id = str(index)
        else:
            problem_id = str(_pick(record, fields.id, _ID_FIELDS, "id", "--id-field", where))
        problems.append(Problem(problem_id, benchmark, str(question), _normalise_answer(answer)))
    return problems
