"""Read answers someone already has (`tokenshift build --completions SRC`) into plain records.

Three layouts: `lm-eval` (lm-evaluation-harness `--log_samples` output, samples_<task>_<date>.jsonl),
`trl` (TRL GRPOTrainer's completion logs, <output_dir>/completions/completions_<step>.parquet) and
`fields` (any jsonl/parquet file, folder of them, or local Hugging Face dataset, fields named by
flags). Reading loads no model; tokenizing and scoring are import_build's.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from tokenshift.builders.inputs.benchmarks import read_gold
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.schemas.manifest import file_sha256
from tokenshift.schemas.values import IMPORT_FORMATS

_LM_EVAL_FILE = re.compile(r"^samples_(?P<task>.+)_(?P<date>\d{4}-\d{2}-\d{2}T[\d.\-]+)\.jsonl$")
_TRL_FILE = re.compile(r"^completions_(?P<step>\d+)\.parquet$")
_LM_EVAL_KEYS = {"doc_id", "doc", "arguments", "resps", "filtered_resps"}
_TRL_COLUMNS = {"step", "prompt", "completion"}


@dataclass(frozen=True)
class SourceFields:
    """Which field holds what (dotted paths reach into nested objects); None: the format's default or absent."""

    prompt: str | None = None
    completion: str | None = None
    id: str | None = None
    gold: str | None = None
    token_ids: str | None = None
    sampler_field: str | None = None
    sampler: str | None = None  # one sampler name for every answer (--sampler NAME)
    correct: str | None = None  # the source's own verdict or reward; > 0 = correct


# what each recognised layout reads when a flag does not say otherwise (recorded in the manifest)
DEFAULTS = {
    "lm-eval": SourceFields(prompt="arguments.gen_args_0.arg_0", completion="resps", id="doc_id", gold="target"),
    "trl": SourceFields(prompt="prompt", completion="completion"),
    "fields": SourceFields(),
}


@dataclass(frozen=True)
class Answer:
    """One answer as the source gives it, with where it was found (for error messages)."""

    where: str  # 'FILE line N' or 'FILE row N'
    problem_key: str | None  # the source's problem id (None: derived from the prompt)
    prompt: str | tuple  # text used verbatim, or a conversation: ((role, content), ...)
    completion: str | None
    token_ids: tuple[int, ...] | None
    sampler: str
    gold: str | None
    verdict: bool | None  # from --correct-field: value > 0; None when the source has no value there
    benchmark: str  # the task (lm-eval), 'trl-log', or the file stem


@dataclass(frozen=True)
class Source:
    """What was read: the answers, the files with their sha256, and the field mapping used."""

    format: str
    answers: tuple[Answer, ...]
    files: tuple[dict, ...]  # {"name": path relative to SRC, "sha256": ..., "bytes": ...}
    mapping: dict


def resolve_fields(fmt: str, given: SourceFields) -> SourceFields:
    """The format's defaults, overridden by every field a flag names."""
    default = DEFAULTS[fmt]
    values = {k: getattr(given, k) if getattr(given, k) is not None else getattr(default, k)
              for k in SourceFields.__dataclass_fields__}
    return SourceFields(**values)


def source_files(src: Path) -> list[Path]:
    """The data files of SRC: the file itself, or a folder's .jsonl/.parquet/.arrow files (recursively, sorted)."""
    if not src.exists():
        raise TokenshiftError(f"--completions {src} does not exist: check the path")
    if src.is_file():
        return [src]
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix in (".jsonl", ".parquet", ".arrow"))
    if not files:
        raise TokenshiftError(f"--completions {src} holds no .jsonl, .parquet or .arrow file: point it at the "
                              "answers (a file, a folder of them, or a dataset saved with save_to_disk)")
    return files


def detect_format(files: list[Path]) -> str | None:
    """The recognised layout the files look like (a suggestion for the error message, never applied)."""
    first = files[0]
    if _LM_EVAL_FILE.match(first.name):
        return "lm-eval"
    if _TRL_FILE.match(first.name):
        return "trl"
    try:
        if first.suffix == ".jsonl":
            line = next((ln for ln in first.read_text(encoding="utf-8").splitlines() if ln.strip()), "{}")
            keys = set(json.loads(line))
            return "lm-eval" if _LM_EVAL_KEYS <= keys else None
        if first.suffix == ".parquet":
            import pyarrow.parquet as pq

            return "trl" if _TRL_COLUMNS <= set(pq.read_schema(first).names) else None
    except (OSError, ValueError, TypeError):
        return None
    return None


def read_source(src: str, fmt: str | None, given: SourceFields) -> Source:
    """Every answer of SRC in the layout `fmt`; a one-line error naming the file and row on bad input."""
    root = Path(src)
    files = source_files(root)
    if fmt is None:
        guess = detect_format(files)
        hint = f"it looks like {guess} output: pass --format {guess}" if guess else \
            "pass --format fields with --prompt-field and --completion-field"
        raise TokenshiftError(f"--completions {src}: say which layout it is with --format "
                              f"{'|'.join(IMPORT_FORMATS)} ({hint})")
    if fmt not in IMPORT_FORMATS:
        raise TokenshiftError(f"unknown --format {fmt!r}: use {', '.join(IMPORT_FORMATS)}")
    fields = resolve_fields(fmt, given)
    _check_fields(fmt, fields)
    if fields.token_ids is not None and fmt == "lm-eval":
        raise TokenshiftError("--token-ids-field with --format lm-eval: lm-eval's samples hold text only; "
                              "drop --token-ids-field")
    if fmt == "lm-eval":
        files = [f for f in files if f.suffix == ".jsonl"]
        answers = _lm_eval_answers(root, files, fields)
    else:
        answers, steps = [], set()
        for f in files:
            found, found_steps = _record_answers(root, f, fmt, fields)
            answers += found
            steps |= found_steps
        if fmt == "trl" and fields.sampler is not None:
            _check_single_policy(src, steps)
    if not answers:
        raise TokenshiftError(f"--completions {src} holds no answers: check the path and --format")
    described = tuple({"name": _name(root, f), "sha256": file_sha256(f), "bytes": f.stat().st_size} for f in files)
    mapping = {k: v for k, v in vars(fields).items() if v is not None}
    return Source(fmt, tuple(answers), described, mapping)


def _check_fields(fmt: str, fields: SourceFields) -> None:
    if fields.prompt is None:
        raise TokenshiftError(f"--format {fmt} needs --prompt-field (the field holding each prompt)")
    if fields.completion is None and fields.token_ids is None:
        raise TokenshiftError(f"--format {fmt} needs --completion-field (the field holding each answer's text) "
                              "or --token-ids-field")
    if fields.sampler is not None and fields.sampler_field is not None:
        raise TokenshiftError("--sampler and --sampler-field both given: pass one (a name for every answer, "
                              "or the field naming each answer's sampler)")
    if fields.sampler is None and fields.sampler_field is None:
        raise TokenshiftError("name the model that wrote these answers: --sampler NAME ('base', an RL model "
                              "of the pair, or any other name, e.g. rl-step-300), or --sampler-field FIELD")
    if fields.sampler is not None:
        check_sampler_name(fields.sampler, "--sampler")


def check_sampler_name(name: str, where: str) -> None:
    """A sampler name goes into generation ids ('<sampler>/<problem_id>/<sample_index>'): no '/', not empty."""
    if not name or "/" in name or name != name.strip():
        raise TokenshiftError(f"{where}: sampler name {name!r} must be non-empty, without '/' or outer spaces: "
                              "rename it")


def _name(root: Path, path: Path) -> str:
    return path.name if root.is_file() else path.relative_to(root).as_posix()


_MISSING = object()


def lookup(record: dict, path: str):
    """record[a][b] for the dotted path 'a.b' (a key holding a dot is matched whole first); _MISSING if absent."""
    if path in record:
        return record[path]
    value = record
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _require(record: dict, path: str, flag: str, where: str):
    value = lookup(record, path)
    if value is _MISSING:
        keys = ", ".join(list(record)[:12])
        raise TokenshiftError(f"{where}: field {path!r} not found (fields: {keys}): fix {flag}")
    return value


def _prompt(value, where: str) -> str | tuple:
    """A prompt as text, or a conversation ((role, content), ...) when it is a list of messages."""
    if isinstance(value, str):
        if value.startswith("[{") and '"role"' in value:  # lm-eval's chat-API models log the messages as JSON
            try:
                parsed = json.loads(value)
            except ValueError:
                return value
            if _is_conversation(parsed):
                return _conversation(parsed)
        return value
    if _is_conversation(value):
        return _conversation(value)
    raise TokenshiftError(f"{where}: the prompt is neither text nor a list of chat messages "
                          f"({type(value).__name__}): fix --prompt-field")


def _is_conversation(value) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(m, dict) and "role" in m and "content" in m for m in value)


def _conversation(messages: list) -> tuple:
    return tuple((str(m["role"]), _content_text(m["content"])) for m in messages)


def _content_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks: keep the text ones (TRL strips images to {"type": "image"})
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return "" if content is None else str(content)


def _completion_text(value, where: str) -> str:
    """An answer's text; a conversational completion ([{"role": "assistant", "content": ...}]) is its content."""
    if isinstance(value, str):
        return value
    if _is_conversation(value):
        return "".join(content for _, content in _conversation(value))
    raise TokenshiftError(f"{where}: the completion is not text ({type(value).__name__}): fix --completion-field")


def _token_ids(value, where: str) -> tuple[int, ...]:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        raise TokenshiftError(f"{where}: the token ids are not a list of integers: fix --token-ids-field")
    return tuple(value)


def _verdict(value, where: str, flag: str = "--correct-field") -> bool | None:
    """The source's verdict: a boolean, or a number > 0 = correct; null or NaN = no verdict."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value > 0
    raise TokenshiftError(f"{where}: {flag} value {value!r} is not a number or a boolean: fix {flag}")


def _gold(value, where: str) -> str | None:
    if value is None:
        return None

    return read_gold(value, where)


def _sampler(record: dict, fields: SourceFields, where: str) -> str:
    if fields.sampler is not None:
        return fields.sampler
    value = _require(record, fields.sampler_field, "--sampler-field", where)
    if isinstance(value, str):
        name = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):  # a TRL step: 'step-300'
        name = f"{fields.sampler_field.rsplit('.', 1)[-1]}-{value:g}" if isinstance(value, float) else \
            f"{fields.sampler_field.rsplit('.', 1)[-1]}-{value}"
    else:
        raise TokenshiftError(f"{where}: --sampler-field value {value!r} is not a name: fix --sampler-field")
    check_sampler_name(name, where)
    return name


# ---- lm-evaluation-harness ----

def _lm_eval_answers(root: Path, files: list[Path], fields: SourceFields) -> list[Answer]:
    """One answer per element of resps[0] (lm-eval's repeats) of each doc; a doc's lines per filter share them."""
    if not files:
        raise TokenshiftError(f"--completions {root} holds no samples_*.jsonl file: point it at lm-eval's "
                              "--output_path folder or one samples file")
    models = sorted({f.parent.name for f in files}) if root.is_dir() else []
    if len(models) > 1 and fields.sampler is not None:
        raise TokenshiftError(f"--completions {root} holds lm-eval samples of {len(models)} models "
                              f"({', '.join(models[:4])}) but --sampler names one: import one model's "
                              "folder at a time, each with its own --sampler")
    tasks = {}
    for f in files:
        match = _LM_EVAL_FILE.match(f.name)
        tasks[f] = match.group("task") if match else f.stem
    if len(set(tasks.values())) > 1:
        raise TokenshiftError(f"--completions {root} holds samples of several lm-eval tasks "
                              f"({', '.join(sorted(set(tasks.values()))[:4])}): doc ids repeat across tasks, "
                              "so import one task's samples file at a time")
    answers: list[Answer] = []
    seen: dict[tuple, str] = {}  # (doc key, filter) -> where
    by_doc: dict[str, tuple[str, tuple]] = {}  # doc key -> (where, answers' texts)
    filters: dict[str, list[str]] = {}
    for f in files:
        for where, record in _jsonl_records(root, f):
            key = _doc_key(record, fields, where)
            flt = str(record.get("filter", ""))
            if (key, flt) in seen:
                raise TokenshiftError(f"{where}: duplicate id {key!r} (filter {flt!r}; first at {seen[key, flt]}): "
                                      "remove the repeated line or pass --id-field with a unique field")
            seen[key, flt] = where
            filters.setdefault(key, []).append(flt)
            texts = _lm_eval_texts(record, fields, where)
            if key in by_doc:
                if by_doc[key][1] != texts:
                    raise TokenshiftError(f"{where}: duplicate id {key!r} with other answers than at "
                                          f"{by_doc[key][0]}: pass --id-field with a unique field")
                if fields.correct is not None:
                    raise TokenshiftError(f"{where}: doc {key!r} has lines for filters "
                                          f"{', '.join(repr(x) for x in filters[key])}, each with its own "
                                          f"{fields.correct!r}: keep one filter's lines, or drop --correct-field "
                                          "to grade with math-verify")
                continue
            by_doc[key] = (where, texts)
            prompt = _prompt(_require(record, fields.prompt, "--prompt-field", where), where)
            gold = _gold(_require(record, fields.gold, "--gold-field", where), where) if fields.gold else None
            verdict = None
            if fields.correct is not None:
                if len(texts) > 1:
                    raise TokenshiftError(f"{where}: doc {key!r} has {len(texts)} answers (repeats) but one "
                                          f"{fields.correct!r} for all of them: drop --correct-field to grade "
                                          "each answer with math-verify")
                verdict = _verdict(_require(record, fields.correct, "--correct-field", where), where)
            sampler = _sampler(record, fields, where)
            for text in texts:
                answers.append(Answer(where, key, prompt, text, None, sampler, gold, verdict, tasks[f]))
    return answers


def _doc_key(record: dict, fields: SourceFields, where: str) -> str:
    value = _require(record, fields.id, "--id-field", where)
    if value is None or isinstance(value, (dict, list)):
        raise TokenshiftError(f"{where}: id {value!r} is not a scalar: fix --id-field")
    return str(value)


def _lm_eval_texts(record: dict, fields: SourceFields, where: str) -> tuple:
    """resps is one list per request; a generate_until doc has one request whose list holds its repeats."""
    value = _require(record, fields.completion, "--completion-field", where)
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        value = value[0]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise TokenshiftError(f"{where}: {fields.completion!r} holds no answers: fix --completion-field")
    return tuple(_completion_text(v, where) for v in value)


def _jsonl_records(root: Path, path: Path):
    name = _name(root, path) if root.is_dir() else path.name
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise TokenshiftError(f"{name} is not UTF-8 text (byte {err.start}): answers must be UTF-8 jsonl") from None
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"{name} line {lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise TokenshiftError(f"{where} is not valid JSON ({err.msg}): fix or remove that line") from None
        if not isinstance(record, dict):
            raise TokenshiftError(f"{where} is not a JSON object: each line must be one object")
        yield where, record


# ---- TRL logs and named fields ----

def _table_records(root: Path, path: Path):
    """(where, record) of a parquet file, or of a dataset saved with save_to_disk (its .arrow files)."""
    name = _name(root, path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as err:  # pyarrow's errors vary by damage
            raise TokenshiftError(f"{name} is not a readable parquet file ({str(err)[:120]}): check the file") from None
    else:
        import pyarrow as pa

        try:
            with pa.memory_map(str(path)) as source:
                rows = pa.ipc.open_stream(source).read_all().to_pylist()
        except Exception as err:
            raise TokenshiftError(f"{name} is not a readable Arrow file ({str(err)[:120]}): check the file") from None
    for index, row in enumerate(rows):
        yield f"{name} row {index}", row


def _record_answers(root: Path, path: Path, fmt: str, fields: SourceFields) -> tuple[list[Answer], set]:
    records = _jsonl_records(root, path) if path.suffix == ".jsonl" else _table_records(root, path)
    benchmark = "trl-log" if fmt == "trl" else path.stem
    answers = []
    steps = set()
    for where, record in records:
        prompt = _prompt(_require(record, fields.prompt, "--prompt-field", where), where)
        text = None
        if fields.completion is not None:
            text = _completion_text(_require(record, fields.completion, "--completion-field", where), where)
        ids = None
        if fields.token_ids is not None:
            ids = _token_ids(_require(record, fields.token_ids, "--token-ids-field", where), where)
        key = None
        if fields.id is not None:
            key = _require(record, fields.id, "--id-field", where)
            if key is None or isinstance(key, (dict, list)):
                raise TokenshiftError(f"{where}: id {key!r} is not a scalar: fix --id-field")
            key = str(key)
        gold = None
        if fields.gold is not None:
            gold = _gold(_require(record, fields.gold, "--gold-field", where), where)
        verdict = None
        if fields.correct is not None:
            verdict = _verdict(_require(record, fields.correct, "--correct-field", where), where)
        if fmt == "trl" and "step" in record:
            steps.add(record["step"])
        answers.append(Answer(where, key, prompt, text, ids, _sampler(record, fields, where), gold, verdict,
                              benchmark))
    return answers, steps


def _check_single_policy(src: str, steps: set) -> None:
    """A TRL log of several training steps holds several policies' answers: one --sampler cannot name them."""
    if len(steps) > 1:
        shown = ", ".join(str(s) for s in sorted(steps)[:5]) + (", …" if len(steps) > 5 else "")
        raise TokenshiftError(f"--completions {src} holds completions of {len(steps)} training steps ({shown}), "
                              "i.e. of several policies, but --sampler names one: pass --sampler-field step "
                              "(one sampler per step), or import one step's file")
