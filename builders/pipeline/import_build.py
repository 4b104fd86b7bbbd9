"""`tokenshift build --completions SRC`: score answers someone already has, instead of generating them.

The answers (builders/inputs/completions.py) become ordinary `generations` rows with engine = 'import',
grouped by problem into the build's resumable shards; each shard writes prompts, generations (graded)
and tokens exactly as a build does (build._tokens scores them), so every later step reads an
imported build like any other. Only the tables' import_null fields may be null (schemas/tables.py).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tokenshift.builders.engines import models
from tokenshift.builders.grading import grade
from tokenshift.builders.inputs import benchmarks, completions
from tokenshift.builders.pipeline.build import (
    CONFIG_FILE,
    _clear_build,
    _Pair,
    _prompt_ids,
    _tokens,
    benchmark_fields,
    command_line,
    model_specs,
    prepare_out,
    read_work_config,
    recorded_tables,
    validate_config,
    work_config,
)
from tokenshift.builders.pipeline.config import IMPORT_FIELDS, BuildConfig
from tokenshift.runtime import executor
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.files import clean_leftovers, refuse_symlinks, write_json_atomic
from tokenshift.runtime.lock import folder_lock
from tokenshift.runtime.progress import progress_bar
from tokenshift.runtime.seeds import IMPORTED_SEEDS
from tokenshift.runtime.shards import (
    WORK_DIR,
    ShardSpec,
    is_done,
    mark_done,
    marker,
    part_name,
    recorded_files,
    shard_ranges,
)
from tokenshift.schemas import manifest
from tokenshift.schemas.tables import REQUIRED_TABLES, TABLE_FIELDS, to_arrow
from tokenshift.schemas.values import IMPORT_ENGINE

SOURCE_FILE = "import_source.json"  # work file: the sha256 of the source files a started import reads
IMPORT = "import"  # the manifest block of an imported build (its presence marks one)
SKIP_EMPTY = "empty completion"
SKIP_CONTEXT = "prompt plus answer longer than the context"
ROUND_TRIP_SHOWN = 50  # generation ids listed per failing kind (the count is complete)


@dataclass(frozen=True)
class ImportedAnswer:
    generation_id: str
    sampler: str
    sample_index: int
    text: str  # response_text: the source's text, or the given ids decoded
    token_ids: tuple[int, ...]
    verdict: bool | None  # the source's own (--correct-field), else None
    where: str


@dataclass(frozen=True)
class ImportedProblem:
    problem_id: str
    benchmark: str
    question: str
    gold_answer: str | None
    prompt: str  # the exact text fed to the models
    answers: tuple[ImportedAnswer, ...]


@dataclass(frozen=True)
class Prepared:
    """The answers of SRC ready to score, and what the manifest says about how they were read."""

    problems: tuple[ImportedProblem, ...]
    record: dict  # the manifest's import block (files, fields, counts), complete for all shards


def check_flags(config: BuildConfig) -> None:
    """Import flags only with --completions; generation-only flags only without."""
    if config.completions is None:
        given = [f for f in IMPORT_FIELDS if getattr(config, f) is not None]
        if given:
            raise TokenshiftError(f"--{given[0].replace('_', '-')} needs --completions SRC (the answers to import)")
        return
    defaults = BuildConfig(out="")
    if config.instruction != defaults.instruction:
        raise TokenshiftError("--instruction with --completions: imported prompts are used verbatim as given; "
                              "drop --instruction")
    if config.benchmark is None:
        given = [flag for flag, value in (("--question-template", config.question_template),
                                          ("--question-field", config.question_field),
                                          ("--answer-field", config.answer_field),
                                          ("--skip-invalid", config.skip_invalid or None)) if value is not None]
        if given:
            raise TokenshiftError(f"{given[0]} with --completions reads the --benchmark file: pass --benchmark, "
                                  f"or drop {given[0]}")


def source_fields(config: BuildConfig) -> completions.SourceFields:
    return completions.SourceFields(
        prompt=config.prompt_field, completion=config.completion_field, id=config.id_field,
        gold=config.gold_field, token_ids=config.token_ids_field, sampler_field=config.sampler_field,
        sampler=config.sampler, correct=config.correct_field)


def prepare(config: BuildConfig, tokenizer, windows: dict[str, int | None], progress: bool = False) -> Prepared:
    """Read SRC, join the benchmark, render and tokenize; bad input raises, skippable answers are counted."""
    source = completions.read_source(config.completions, config.format, source_fields(config))
    joined = _benchmark(config)
    vocab = len(tokenizer)
    window = min((w for w in windows.values() if w is not None), default=None)
    rendered = 0
    problems: dict[str, dict] = {}  # problem id -> {prompt, first where, answers, ...}
    skipped: dict[str, list[str]] = {SKIP_EMPTY: [], SKIP_CONTEXT: []}
    counts = {"token_ids_given": 0, "tokenized": 0}
    round_trip: dict[str, list[str]] = {"tokenized_text_not_recovered": [], "given_ids_not_decoding_to_text": []}
    prompt_cache: dict = {}
    bar = progress_bar(total=len(source.answers), desc="read answers", unit="answer", leave=False,
                       disable=not progress)
    for answer in source.answers:
        bar.update(1)
        if answer.prompt not in prompt_cache:
            text = _render(config, tokenizer, answer)
            rendered += not isinstance(answer.prompt, str)
            prompt_cache[answer.prompt] = (text, _prompt_ids(tokenizer, text))
        prompt_text, prompt_ids = prompt_cache[answer.prompt]
        key = answer.problem_key or "p" + hashlib.sha256(prompt_text.encode("utf-8")).hexdigest()[:12]
        entry = problems.get(key)
        if entry is None:
            if config.limit is not None and len(problems) >= config.limit:
                continue
            entry = problems[key] = {"prompt": prompt_text, "where": answer.where, "answers": [],
                                     "benchmark": answer.benchmark, "gold": answer.gold,
                                     "question": _question(answer), "prompt_ids": len(prompt_ids), "index": {}}
        elif entry["prompt"] != prompt_text:
            raise TokenshiftError(f"{answer.where}: duplicate id {key!r} with another prompt than at "
                                  f"{entry['where']}: pass --id-field with a field unique to each problem")
        if answer.token_ids is not None:
            ids = answer.token_ids
            bad = next((t for t in ids if not 0 <= t < vocab), None)
            if bad is not None:
                raise TokenshiftError(f"{answer.where}: token id {bad} is outside the vocabulary (0..{vocab - 1}) "
                                      "of the pair's tokenizer: these ids come from another tokenizer; fix "
                                      "--token-ids-field or import the text instead")
            counts["token_ids_given"] += 1
            text = answer.completion if answer.completion is not None else \
                tokenizer.decode(list(ids), skip_special_tokens=True)
        else:
            text = answer.completion
            ids = tuple(_prompt_ids(tokenizer, text)) if text else ()
            counts["tokenized"] += 1
        if not ids:
            skipped[SKIP_EMPTY].append(answer.where)
            continue
        if window is not None and entry["prompt_ids"] + len(ids) > window:
            skipped[SKIP_CONTEXT].append(f"{answer.where} ({entry['prompt_ids']} + {len(ids)} tokens > {window})")
            continue
        index = entry["index"].get(answer.sampler, 0)
        entry["index"][answer.sampler] = index + 1
        generation_id = f"{answer.sampler}/{key}/{index}"
        if answer.token_ids is None:
            if tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False) != text:
                round_trip["tokenized_text_not_recovered"].append(generation_id)
        elif answer.completion is not None and tokenizer.decode(
                list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False) != answer.completion:
            round_trip["given_ids_not_decoding_to_text"].append(generation_id)
        entry["answers"].append(ImportedAnswer(generation_id, answer.sampler, index, text, tuple(ids),
                                               answer.verdict, answer.where))
    bar.close()
    out = []
    for key, entry in problems.items():
        if not entry["answers"]:
            continue
        question, gold, benchmark = entry["question"], entry["gold"], config.benchmark_name or entry["benchmark"]
        if joined is not None:
            problem = joined.get(key)
            if problem is None:
                raise TokenshiftError(f"{entry['where']}: id {key!r} is not a problem of --benchmark "
                                      f"{config.benchmark} (ids like {', '.join(list(joined)[:3])}): fix "
                                      "--id-field, or drop --benchmark")
            question, gold, benchmark = problem.question, problem.gold_answer, problem.benchmark
        out.append(ImportedProblem(key, benchmark, question, gold, entry["prompt"], tuple(entry["answers"])))
    if not out:
        reasons = "; ".join(f"{len(v)} {k}" for k, v in skipped.items() if v)
        raise TokenshiftError(f"--completions {config.completions}: no answer left to score ({reasons}): "
                              "check the source and --limit")
    samplers = sorted({a.sampler for p in out for a in p.answers})
    record = {
        "source": config.completions,
        "format": source.format,
        "files": list(source.files),
        "fields": source.mapping,
        "benchmark_join": config.benchmark,
        "samplers": samplers,
        "prompts": {"verbatim": len(prompt_cache) - rendered, "chat_template_rendered": rendered,
                    "how": "text prompts are used verbatim; conversational prompts (lists of messages) are "
                           "rendered with the base tokenizer's chat template (add_generation_prompt=True)"},
        "tokens": {**counts, "tokenizer": "the pair's tokenizer (base and RL share one vocabulary, checked)",
                   "round_trip": {k: {"count": len(v), "generation_ids": v[:ROUND_TRIP_SHOWN]}
                                  for k, v in round_trip.items()}},
        "skipped": {k: {"count": len(v), "rows": v[:ROUND_TRIP_SHOWN]} for k, v in skipped.items()},
        "context_window": window,
    }
    return Prepared(tuple(out), record)


def _benchmark(config: BuildConfig) -> dict | None:
    """The --benchmark problems by id, to join gold answers and questions; None without --benchmark."""
    if config.benchmark is None:
        return None
    return {p.problem_id: p for p in benchmarks.load_benchmark(config.benchmark, None, benchmark_fields(config))}


def _render(config: BuildConfig, tokenizer, answer: completions.Answer) -> str:
    """The exact prompt text: as given, or a conversation through the base tokenizer's chat template."""
    if isinstance(answer.prompt, str):
        return answer.prompt
    if not config.use_chat_template:
        raise TokenshiftError(f"{answer.where}: the prompt is a conversation but --no-chat-template was given: "
                              "drop --no-chat-template (the base tokenizer's chat template renders it)")
    if not getattr(tokenizer, "chat_template", None):
        raise TokenshiftError(f"{answer.where}: the prompt is a conversation and the base tokenizer has no chat "
                              "template: import rendered prompt text instead")
    return tokenizer.apply_chat_template([{"role": r, "content": c} for r, c in answer.prompt],
                                         tokenize=False, add_generation_prompt=True)


def _question(answer: completions.Answer) -> str:
    """The question column without a benchmark: the prompt as given, or a conversation's last user message."""
    if isinstance(answer.prompt, str):
        return answer.prompt
    users = [c for r, c in answer.prompt if r == "user"]
    return users[-1] if users else answer.prompt[-1][1]


def run_import(config: BuildConfig, overwrite: bool = False, progress: bool = True) -> Path:
    """Import SRC into config.out (or resume); returns the build directory."""
    started_at = time.time()
    check_flags(config)
    validate_config(config)
    out = prepare_out(config, overwrite)
    if overwrite:
        refuse_symlinks(out, [*TABLE_FIELDS, WORK_DIR, manifest.MANIFEST])
    base_spec, rl_specs = model_specs(config)
    tokenizer = models.load_tokenizer(base_spec, config.trust_remote_code)
    for spec in rl_specs:
        models.check_same_vocabulary(tokenizer, models.load_tokenizer(spec, config.trust_remote_code),
                                     "base", spec.name)
    if config.top_k_candidates > len(tokenizer):
        raise TokenshiftError(f"--top-k-candidates {config.top_k_candidates} exceeds the vocabulary "
                              f"({len(tokenizer)} tokens): choose at most {len(tokenizer)}")
    windows = {s.name: models.context_length(s, config.trust_remote_code) for s in (base_spec, *rl_specs)}
    prepared = prepare(config, tokenizer, windows, progress)
    pair = _Pair(tokenizer, base_spec, rl_specs)
    hashes = {"source_sha256": [f["sha256"] for f in prepared.record["files"]]}
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, "tokenshift build --completions"):
        prepare_out(config, overwrite)
        _check_source_unchanged(out, hashes, overwrite)
        clean_leftovers(out)
        placement = config.placement()
        with executor.session(placement):
            if overwrite:
                _clear_build(out)
            write_json_atomic(out / WORK_DIR / SOURCE_FILE, hashes)
            write_json_atomic(out / WORK_DIR / CONFIG_FILE, work_config(config))
            spec = ShardSpec.parse(config.shard)
            todo = [k for k, _ in enumerate(shard_ranges(len(prepared.problems), config.shard_size))
                    if spec.owns(k) and not is_done(out, "tokens", k)]
            job = ImportShards(config, prepared.problems, pair, progress=progress and placement is None)
            executor.run_shards(job, todo, placement, progress, "shards")
        _write_manifest(out, config, pair, prepared, started_at)
    return out


def _check_source_unchanged(out: Path, hashes: dict, overwrite: bool) -> None:
    """A resumed import must read the same files (prepare_out compared the flags, not the bytes)."""
    path = out / WORK_DIR / SOURCE_FILE
    if overwrite or not (out / WORK_DIR / CONFIG_FILE).exists():
        return
    before = read_work_config(path).get("source_sha256") if path.exists() else None
    if before != hashes["source_sha256"]:
        raise TokenshiftError(f"{out} was started from other --completions files (their sha256 differ): "
                              "rerun with the same files, pass --overwrite, or choose another --out")


@dataclass
class ImportShards:
    """One shard of an import: prompts, then generations (graded), then tokens, each marked done."""

    config: BuildConfig
    problems: tuple[ImportedProblem, ...]
    pair: _Pair
    progress: bool = False

    def setup(self) -> None:
        executor.check_visible(Path(self.config.out) / WORK_DIR / CONFIG_FILE, "--out")

    def __call__(self, k: int) -> None:
        config, out, pair = self.config, Path(self.config.out), self.pair
        shard = [self.problems[i] for i in shard_ranges(len(self.problems), config.shard_size)[k]]
        prompt_ids = [_prompt_ids(pair.tokenizer, p.prompt) for p in shard]
        if not is_done(out, "prompts", k):
            mark_done(out, "prompts", k, manifest.write_part(out, f"prompts/{part_name(k)}", to_arrow("prompts", [
                {"problem_id": p.problem_id, "benchmark": p.benchmark, "question": p.question,
                 "gold_answer": p.gold_answer, "prompt": p.prompt} for p in shard], imported=True)))
        if not is_done(out, "generations", k):
            table, response_ids = _generations(config, shard, self.progress)
            written = manifest.write_part(out, f"{WORK_DIR}/response_ids/{part_name(k)}", response_ids)
            written.update(manifest.write_part(out, f"generations/{part_name(k)}", table))
            mark_done(out, "generations", k, written)
        for rel, entry in recorded_files(out, "generations", k).items():
            manifest.verify_part(out, rel, entry, recorded_in=marker(out, "generations", k))
        generations = pq.read_table(out / "generations" / part_name(k),
                                    columns=["generation_id", "problem_id", "sampler"]).to_pylist()
        response_ids = pq.read_table(out / WORK_DIR / "response_ids" / part_name(k)).column("token_ids")
        for gen, ids in zip(generations, response_ids.to_pylist(), strict=True):
            gen["token_ids"] = ids
        pair.load(config)
        mark_done(out, "tokens", k, manifest.write_part(
            out, f"tokens/{part_name(k)}", _tokens(config, pair, generations, prompt_ids, shard, self.progress)))


def _generations(config: BuildConfig, shard: list[ImportedProblem], progress: bool) -> tuple[pa.Table, pa.Table]:
    """The shard's generations rows, graded: the source's verdict, else math-verify against the gold, else null."""
    rows, ids = [], []
    for p in shard:
        for a in p.answers:
            rows.append({"generation_id": a.generation_id, "problem_id": p.problem_id, "benchmark": p.benchmark,
                         "sampler": a.sampler, "sample_index": a.sample_index, "seed": None,
                         "response_text": a.text, "n_tokens": len(a.token_ids), "finish_reason": None,
                         "extracted_answer": grade.extract_boxed(a.text), "correct": a.verdict,
                         "engine": IMPORT_ENGINE})
            ids.append(list(a.token_ids))
    gold = {p.problem_id: p.gold_answer for p in shard}
    todo = [] if config.correct_field is not None else [r for r in rows if gold[r["problem_id"]] is not None]
    bar = progress_bar(total=len(todo), desc="grade", unit="answer", leave=False, disable=not progress)
    grades = grade.grade_many([(gold[r["problem_id"]], r["response_text"]) for r in todo],
                              timeout_s=config.grade_timeout_s, progress=bar, transforms=config.gold_transform)
    bar.close()
    for row, g in zip(todo, grades, strict=True):
        row["extracted_answer"], row["correct"] = g.extracted_answer, g.correct
    return (to_arrow("generations", rows, imported=True),
            pa.table({"token_ids": pa.array(ids, type=pa.list_(pa.int32()))}))


def grading_counts(config: BuildConfig, problems, owned: set[str], nulls: int) -> dict:
    """How the owned answers were graded; `nulls` = rows with correct null in the written generations."""
    answers = [(p, a) for p in problems for a in p.answers if a.generation_id in owned]
    if config.correct_field is not None:
        no_verdict = sum(a.verdict is None for _, a in answers)
        return {"by": f"the source's field {config.correct_field!r} (> 0 or true = correct)",
                "answers": len(answers), "source_verdict": len(answers) - no_verdict, "no_verdict": no_verdict,
                "math_verify": 0, "no_gold": 0, "ungraded": 0}
    no_gold = sum(p.gold_answer is None for p, _ in answers)
    return {"by": grade.grader_version() + " against the gold answer (" +
                  ("joined by id from --benchmark" if config.benchmark else "from the source") + ")",
            "answers": len(answers), "source_verdict": 0, "no_verdict": 0, "math_verify": len(answers) - no_gold,
            "no_gold": no_gold, "ungraded": nulls - no_gold}


def _write_manifest(out: Path, config: BuildConfig, pair: _Pair, prepared: Prepared, started_at: float) -> None:
    """The build's manifest, with the import block: source files and sha256, field mapping, counts."""
    import dataclasses

    spec = ShardSpec.parse(config.shard)
    tables = recorded_tables(out, REQUIRED_TABLES)
    owned = set()
    nulls = 0
    for rel in (tables.get("generations") or {}).get("files", {}):
        data = pq.read_table(out / rel, columns=["generation_id", "correct"])
        owned.update(data.column("generation_id").to_pylist())
        nulls += data.column("correct").null_count
    grading = grading_counts(config, prepared.problems, owned, nulls)
    record = {**prepared.record, "grading": grading}
    if spec.count > 1:
        record["shard_note"] = ("read, skip and round-trip counts are of the whole source; grading counts are "
                                "of this shard's answers")
    payload = {
        **manifest.base_manifest(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(config),
        "config": config.recorded(),
        "shard": str(spec),
        "models": {"base": dataclasses.asdict(models.describe(pair.base_spec)),
                   "rl": [dataclasses.asdict(models.describe(s)) for s in pair.rl_specs]},
        "tokenizer": {"sha256": models.tokenizer_sha256(pair.tokenizer), "vocab_size": len(pair.tokenizer)},
        "grader": grade.grader_version(),
        "seeds": {"build": config.seed, "generation": IMPORTED_SEEDS},
        "tables": tables,
        "ungraded": {"generations": grading["ungraded"]},
        IMPORT: record,
        "build_seconds": round(time.time() - started_at, 1),
    }
    manifest.write_manifest(out, payload)
