"""Load a benchmark (toy-arith, aime24, amc23, gsm8k, a jsonl path or a Hub dataset) as `Problem`s."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from tokenshift.builders.grading import gold_rules, grade
from tokenshift.builders.inputs import prompts
from tokenshift.builders.inputs.arith import toy_problems
from tokenshift.runtime.errors import TokenshiftError

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
# why --skip-invalid left a row out
EMPTY_GOLD, NO_BOX, DUPLICATE_ID = "empty gold", "no \\boxed{}", "duplicate id"
SKIP_REASONS = (EMPTY_GOLD, NO_BOX, DUPLICATE_ID)
# file stems that say nothing about the benchmark: a build from such a file is told to pass --benchmark-name
GENERIC_STEMS = ("test", "train", "validation", "val", "dev", "eval", "data")


@dataclass(frozen=True)
class Problem:
    problem_id: str
    benchmark: str
    question: str
    gold_answer: str


@dataclass(frozen=True)
class Fields:
    """How a record becomes a problem: the fields holding question, gold answer and id (None: detect),
    or a template over the record's fields for the question, the rule reading the gold answer, the gold
    transforms, whether invalid rows are skipped rather than refused, and the benchmark's name."""

    question: str | None = None
    answer: str | None = None
    id: str | None = None
    question_template: str | None = None  # Python format string over the record, e.g. "{Body} {Question}"
    answer_from: str = "field"  # one of ANSWER_RULES
    gold_transforms: tuple[str, ...] = ()  # gold_rules.GOLD_TRANSFORMS, applied in order
    skip_invalid: bool = False  # skip rows with an empty gold, no box (--answer-from boxed) or a repeated id
    name: str | None = None  # the benchmark column's value; None: the named benchmark or the file stem


@dataclass(frozen=True)
class Skipped:
    """A row --skip-invalid left out: its 1-based line among the records, its id and why."""

    row: int
    problem_id: str | None
    reason: str  # one of SKIP_REASONS


@dataclass(frozen=True)
class Loaded:
    """A benchmark as a build reads it: the problems, the rows read, each gold transform's count of
    golds it changed (among the problems) and the rows skipped (among all rows read)."""

    problems: list[Problem]
    rows: int
    transformed: dict[str, int]
    skipped: tuple[Skipped, ...]

    def record(self) -> dict:
        """The manifest's `benchmark_rows` block."""
        return {"rows": self.rows, "problems": len(self.problems), "gold_transforms": dict(self.transformed),
                "skipped": [{"row": s.row, "problem_id": s.problem_id, "reason": s.reason} for s in self.skipped]}


def check_fields(fields: Fields) -> None:
    """Reject a layout that cannot work before any file is read."""
    if fields.answer_from not in ANSWER_RULES:
        raise TokenshiftError(f"unknown --answer-from {fields.answer_from!r}: use {' or '.join(ANSWER_RULES)}")
    gold_rules.check_transforms(fields.gold_transforms)
    if fields.name is not None and (not fields.name.strip() or not fields.name.isprintable()):
        raise TokenshiftError(f"--benchmark-name {fields.name!r} is empty or has control characters: "
                              "pass a printable name")
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
    return read_benchmark(spec, limit, fields).problems


def read_benchmark(spec: str, limit: int | None = None, fields: Fields = Fields()) -> Loaded:
    """`spec` read as a build reads it: problems, rows read, gold transform counts and skipped rows."""
    check_fields(fields)
    if spec == "toy-arith":
        records = toy_problems("test")
        problems = [Problem(p["problem_id"], fields.name or "toy-arith", p["question"], str(p["answer"]))
                    for p in records]
        return _finish(problems, [], len(records), limit, fields, spec)
    if Path(spec).suffix == ".jsonl" or Path(spec).is_file():
        records, name = _read_jsonl(Path(spec)), _benchmark_name(Path(spec).stem)
    elif spec in HUB_BENCHMARKS:
        local = os.environ.get(BENCHMARK_DIR_ENV)
        if local and (Path(local) / f"{spec}.jsonl").is_file():
            records = _read_jsonl(Path(local) / f"{spec}.jsonl")
        else:
            repo, config, split = HUB_BENCHMARKS[spec]
            records = _read_hub(repo, config, split, spec)
        name = spec
    elif "/" in spec:
        records, name = _read_hub(spec, None, "test", spec), spec.split("/")[-1]
    else:
        raise TokenshiftError(
            f"unknown benchmark {spec!r}: use one of {', '.join(NAMED_BENCHMARKS)}, "
            "a path to a .jsonl file, or a Hub dataset id ORG/NAME")
    problems, skipped = _from_records(records, fields.name or name, fields, spec)
    return _finish(problems, skipped, len(records), limit, fields, spec)


def _finish(problems: list[Problem], skipped: list[Skipped], rows: int, limit: int | None, fields: Fields,
            spec: str) -> Loaded:
    """The first `limit` problems, refused for a repeated id or none left, golds transformed."""
    if limit is not None:
        problems = problems[:limit]
    ids = [p.problem_id for p in problems]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise TokenshiftError(f"benchmark {spec!r} has duplicate problem id {dup!r}: "
                              "pass --id-field with a unique field, or --skip-invalid to keep the first")
    if not problems:
        raise TokenshiftError(f"benchmark {spec!r} has no problems: check the file or --limit")
    problems, transformed = _transform_golds(problems, fields.gold_transforms, spec)
    return Loaded(problems, rows, transformed, tuple(skipped))


def name_hint(spec: str, fields: Fields) -> str | None:
    """A one-line hint when a file's stem (test, train, ...) would name the benchmark and no name is given."""
    path = Path(spec)
    if fields.name is not None or spec in NAMED_BENCHMARKS or not (path.suffix == ".jsonl" or path.is_file()):
        return None
    if path.stem.lower() not in GENERIC_STEMS:
        return None
    return (f"{path} names its benchmark {_benchmark_name(path.stem)!r} in every table and the card: pass "
            "--benchmark-name NAME (e.g. the folder's name) to name it")


def _transform_golds(problems: list[Problem], transforms: tuple[str, ...],
                     spec: str) -> tuple[list[Problem], dict[str, int]]:
    """Each gold through the transforms in order; per rule, the golds its step changed."""
    counts = dict.fromkeys(transforms, 0)
    out = []
    for p in problems:
        gold = p.gold_answer
        for rule in transforms:
            try:
                changed = grade.transform_gold(gold, (rule,))
            except ValueError as err:
                raise TokenshiftError(f"benchmark {spec!r} problem {p.problem_id!r}: {err}: fix the row, or "
                                      f"drop --gold-transform {rule}") from None
            counts[rule] += changed != gold
            gold = changed
        out.append(p if gold == p.gold_answer else dataclasses.replace(p, gold_answer=gold))
    return out, counts


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
        except RecursionError:
            raise TokenshiftError(f"{path}:{lineno} nests lists or objects too deeply to read: "
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


def _normalise_answer(answer, where: str = "") -> str:
    """Gold answers as strings; GSM8K keeps only what follows '####'; a number is its text (27.0 becomes '27');
    null is empty. Anything else (true/false, an object, a list inside the list, NaN) is refused: its Python
    spelling would be stored as the gold and graded against."""
    if answer is None:
        return ""
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        raise TokenshiftError(f"{where} has {_kind(answer)} as its gold answer, not text or a number: fix the row, "
                              "or pick another --answer-field")
    if isinstance(answer, float) and not math.isfinite(answer):
        raise TokenshiftError(f"{where} has {answer} as its gold answer, not a finite number: fix the row")
    if isinstance(answer, float) and answer.is_integer():
        return str(int(answer))
    text = str(answer).strip()
    if "####" in text:
        text = text.rsplit("####", 1)[1].strip().replace(",", "")
    return text


def _kind(value) -> str:
    """A JSON value's kind in words, for errors: 'true', 'an object', 'a list', 'null'."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return {dict: "an object", list: "a list"}.get(type(value), f"a {type(value).__name__}")


def _text(value, what: str, where: str, fix: str) -> str:
    """A question, gold or id as stored: text (an id may be a number); refused when it cannot be stored as UTF-8."""
    if what == "id" and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise TokenshiftError(f"{where}: the {what} is {_kind(value)}, not text: {fix}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise TokenshiftError(f"{where}: the {what} holds {value[err.start]!r} at character {err.start}, a lone "
                              "surrogate that is not text (an unpaired \\ud800-\\udfff escape): fix the row") from None
    return value


class _Invalid(Exception):
    """A row --skip-invalid may skip; the message is the refusal's when it is not given."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _gold(answer, answer_from: str, where: str) -> str:
    """The gold answer string of one record under the --answer-from rule (see `answer_rule`)."""
    if answer_from == "boxed":
        boxed = grade.extract_boxed(answer) if isinstance(answer, str) else None
        if boxed is None:
            raise _Invalid(NO_BOX, f"{where} has no \\boxed{{}} in its answer field: fix the row, pick "
                                   "another --answer-field or --answer-from, or pass --skip-invalid to skip such rows")
        return boxed
    if isinstance(answer, list):
        answers = [_normalise_answer(a, where) for a in answer]
        if not answers or not all(answers):
            return ""
        return answers[0] if len(answers) == 1 else grade.tuple_gold(answers)
    return _normalise_answer(answer, where)


def read_gold(answer, where: str) -> str | None:
    """A gold answer read from another file (imported answers), normalised as an answer field; None if empty."""
    return _gold(answer, "field", where) or None


def _answer_value(record: dict, explicit: str | None, where: str):
    """The record's gold answer value (None when the field holds null), by name or by detection."""
    if explicit is not None:
        if explicit not in record:
            raise TokenshiftError(f"{where}: field {explicit!r} not found (fields: "
                                  f"{', '.join(record)}): fix --answer-field")
        return record[explicit]
    present = [name for name in _ANSWER_FIELDS if name in record]
    for name in present:
        if record[name] is not None:
            return record[name]
    if present:
        return None
    raise TokenshiftError(f"{where}: no answer field among {', '.join(record)}: pass --answer-field")


def _from_records(records: list[dict], benchmark: str, fields: Fields,
                  spec: str) -> tuple[list[Problem], list[Skipped]]:
    """Every record as a problem; rows with an empty gold, no box or a repeated id refused (one line naming
    them) or, with fields.skip_invalid, skipped and listed (a repeated id keeps its first row)."""
    problems, skipped, empty, seen = [], [], [], set()
    for index, record in enumerate(records):
        where = f"benchmark {spec!r} row {index + 1}"
        if fields.question_template is not None:
            question = prompts.render_question(fields.question_template, record, where)
        else:
            question = _pick(record, fields.question, _QUESTION_FIELDS, "question", "--question-field", where)
        question = _text(question, "question", where, "pass --question-field with a text field, or --question-template")
        if fields.id is None and not any(f in record for f in _ID_FIELDS):
            problem_id = str(index)
        else:
            problem_id = _text(_pick(record, fields.id, _ID_FIELDS, "id", "--id-field", where), "id", where,
                               "pass --id-field with a text or number field")
        try:
            answer = _text(_gold(_answer_value(record, fields.answer, where), fields.answer_from, where),
                           "gold answer", where, "fix the row")
            if not answer.strip():
                raise _Invalid(EMPTY_GOLD, "")
            if fields.skip_invalid and problem_id in seen:
                raise _Invalid(DUPLICATE_ID, "")
        except _Invalid as invalid:
            if fields.skip_invalid:
                skipped.append(Skipped(index + 1, problem_id, invalid.reason))
            elif invalid.reason == EMPTY_GOLD:
                empty.append(index + 1)
            else:
                raise TokenshiftError(str(invalid)) from None
            continue
        seen.add(problem_id)
        problems.append(Problem(problem_id, benchmark, question, answer))
    if empty:
        raise TokenshiftError(f"benchmark {spec!r} has an empty (or null) gold answer in {_rows(empty)}: fill the "
                              "golds, or pass --skip-invalid to skip such rows (counted and listed in the manifest)")
    return problems, skipped


def _rows(rows: list[int], shown: int = 10) -> str:
    """'row 3' or 'rows 3, 5, 9' (the first `shown`, then how many more)."""
    if len(rows) == 1:
        return f"row {rows[0]}"
    more = f" and {len(rows) - shown} more" if len(rows) > shown else ""
    return f"{len(rows)} rows ({', '.join(map(str, rows[:shown]))}{more})"
