"""Load a benchmark (toy-arith, aime24, amc23, gsm8k, a jsonl path or a Hub dataset) as `Problem`s."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tokenshift.builders import grade, prompts
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
# --answer-from: the answer field as given (normalised), or the last \boxed{} of a worked solution in it
ANSWER_RULES = ("field", "boxed")


@dataclass(frozen=True)
class Problem:
    problem_id: str
    benchmark: str
    question: str
    gold_answer: str


@dataclass(frozen=True)
class Fields:
    """How a record becomes a problem: the fields holding question, gold answer and id (None: detect),
    or a template over the record's fields for the question, and the rule reading the gold answer."""

    question: str | None = None
    answer: str | None = None
    id: str | None = None
    question_template: str | None = None  # Python format string over the record, e.g. "{Body} {Question}"
    answer_from: str = "field"  # one of ANSWER_RULES


def check_fields(fields: Fields) -> None:
    """Reject a layout that cannot work before any file is read."""
    if fields.answer_from not in ANSWER_RULES:
        raise TokenshiftError(f"unknown --answer-from {fields.answer_from!r}: use {' or '.join(ANSWER_RULES)}")
    if fields.question_template is not None:
        if fields.question is not None:
            raise TokenshiftError("--question-field and --question-template both given: pass only one")
        prompts.check_template(fields.question_template)


def answer_rule(answer_field: str | None, answer_from: str) -> str:
    """How gold answers are read, in words (the dataset card's line; docs/guide.md says the same)."""
    field = f"field `{answer_field}`" if answer_field else "answer field (" + ", ".join(_ANSWER_FIELDS) + ")"
    if answer_from == "boxed":
        return f"the last \\boxed{{}} of the {field}"
    return (f"the {field} as given (27.0 read as 27; text with #### keeps what follows it); a JSON list of "
            "one answer is that answer, of several is one tuple: the response's last \\boxed{} must hold "
            "as many comma-separated parts, each equal to its answer in order")


def load_benchmark(spec: str, limit: int | None = None, fields: Fields = Fields()) -> list[Problem]:
    """Problems of `spec`: a named benchmark, a local .jsonl path or a Hub dataset id."""
    check_fields(fields)
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
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise TokenshiftError(f"{path} is not UTF-8 text (byte {err.start}): a benchmark must be a UTF-8 "
                              ".jsonl file, one JSON object per line") from None
    if "\x00" in text:
        raise TokenshiftError(f"{path} is a binary file: a benchmark must be a UTF-8 .jsonl file, "
                              "one JSON object per line")
    for lineno, line in enumerate(text.split("\n"), 1):
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
        if record[explicit] is None:
            raise TokenshiftError(f"{where}: field {explicit!r} is null: fill it or drop the row")
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


def _gold(answer, answer_from: str, where: str) -> str:
    """The gold answer string of one record under the --answer-from rule (see `answer_rule`)."""
    if answer_from == "boxed":
        boxed = grade.extract_boxed(answer) if isinstance(answer, str) else None
        if boxed is None:
            raise TokenshiftError(f"{where} has no \\boxed{{}} in its answer field: fix the row, or pick "
                                  "another --answer-field or --answer-from")
        return boxed
    if isinstance(answer, list):
        if not answer:
            raise TokenshiftError(f"{where} has an empty list as its gold answer: fix the row")
        answers = [_normalise_answer(a) for a in answer]
        return answers[0] if len(answers) == 1 else grade.tuple_gold(answers)
    return _normalise_answer(answer)


def _from_records(records: list[dict], benchmark: str, fields: Fields, spec: str) -> list[Problem]:
    problems = []
    for index, record in enumerate(records):
        where = f"benchmark {spec!r} row {index + 1}"
        if fields.question_template is not None:
            question = prompts.render_question(fields.question_template, record, where)
        else:
            question = _pick(record, fields.question, _QUESTION_FIELDS, "question", "--question-field", where)
        answer = _gold(_pick(record, fields.answer, _ANSWER_FIELDS, "answer", "--answer-field", where),
                       fields.answer_from, where)
        if fields.id is None and not any(f in record for f in _ID_FIELDS):
            problem_id = str(index)
        else:
            problem_id = str(_pick(record, fields.id, _ID_FIELDS, "id", "--id-field", where))
        problems.append(Problem(problem_id, benchmark, str(question), answer))
    return problems
