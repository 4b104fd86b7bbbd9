"""`tokenshift build`: prompts → generations (graded) → per-token scores, shard by shard."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shlex
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tokenshift.builders.engines import generate, models
from tokenshift.builders.grading import grade
from tokenshift.builders.inputs import benchmarks, prompts
from tokenshift.builders.pipeline.config import BuildConfig
from tokenshift.builders.scoring import score
from tokenshift.builders.scoring.score_batch import score_answers
from tokenshift.runtime import executor
from tokenshift.runtime.embedded_pair import embedded_base_dir, embedded_rl_dir
from tokenshift.runtime.errors import TokenshiftError, either
from tokenshift.runtime.files import clean_leftovers, refuse_symlinks, write_json_atomic
from tokenshift.runtime.lock import LOCK_NAME, folder_lock
from tokenshift.runtime.progress import progress_bar
from tokenshift.runtime.seeds import GENERATION_SEEDS, generation_seed
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
from tokenshift.schemas.registry import refuse_published_out
from tokenshift.schemas.tables import REQUIRED_TABLES, SCHEMA_VERSION, TABLE_FIELDS, schema, to_arrow

CONFIG_FILE = "config.json"
_SCORE_GROUP = 64  # answers handed to the batched scorer at once (progress granularity)


@dataclass
class _Pair:
    """Loaded models of a build: base, the RL models by name, and their shared tokenizer."""

    tokenizer: object
    base_spec: models.ModelSpec
    rl_specs: list[models.ModelSpec]
    base: object = None
    rls: dict = field(default_factory=dict)

    def load(self, config: BuildConfig) -> None:
        if self.base is not None:
            return
        def load(spec):
            return models.load_model(spec, config.device, config.dtype, config.trust_remote_code)

        self.base = load(self.base_spec)
        self.rls = {spec.name: load(spec) for spec in self.rl_specs}
        vocab = len(self.tokenizer)
        for name, model in [("base", self.base), *self.rls.items()]:
            models.fit_head_to_vocabulary(model, vocab, name)


def validate_config(config: BuildConfig) -> None:
    """Reject bad parameters before anything is loaded or written."""
    if not isinstance(config, BuildConfig):
        raise TokenshiftError(f"a build takes a BuildConfig, got {type(config).__name__}: "
                              "tokenshift.build(tokenshift.BuildConfig(out=DIR, ...))")
    checks = [
        (config.samples >= 1, f"--samples must be >= 1 (got {config.samples})"),
        (config.limit is None or config.limit >= 1, f"--limit must be >= 1 (got {config.limit})"),
        (config.max_new_tokens >= 1, f"--max-new-tokens must be >= 1 (got {config.max_new_tokens})"),
        (config.temperature >= 0, f"--temperature must be >= 0 (got {config.temperature})"),
        (0 < config.top_p <= 1, f"--top-p must be in (0, 1] (got {config.top_p})"),
        (config.top_k_candidates >= 1, f"--top-k-candidates must be >= 1 (got {config.top_k_candidates})"),
        (config.engine in generate.ENGINES,
         f"unknown --engine {config.engine!r}: use {' or '.join(generate.ENGINES)}"),
        (config.dtype in models.DTYPES, f"unknown --dtype {config.dtype!r}: use {either(models.DTYPES)}"),
        (config.batch_size >= 1 and config.shard_size >= 1, "--batch-size and --shard-size must be >= 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise TokenshiftError(message)
    benchmarks.check_fields(benchmark_fields(config))
    models.check_device(config.device, here=config.ray is None)  # on Ray, the workers' GPUs count
    ShardSpec.parse(config.shard)
    package = generate.ENGINE_PACKAGES.get(config.engine)
    if package and importlib.util.find_spec(package) is None:
        raise TokenshiftError(f"--engine {config.engine} needs {package}: pip install 'tokenshift[{package}]', "
                              "or use --engine hf")
    if config.placement() is not None:
        executor.check_ray(config.ray)


def benchmark_fields(config: BuildConfig) -> benchmarks.Fields:
    """How the benchmark's rows become problems (fields, question template, answer rule)."""
    return benchmarks.Fields(config.question_field, config.answer_field, config.id_field,
                             config.question_template, config.answer_from, config.gold_transform,
                             config.skip_invalid, config.benchmark_name)


def model_specs(config: BuildConfig) -> tuple[models.ModelSpec, list[models.ModelSpec]]:
    """Base and RL specs; the embedded toy pair stands in for missing --base/--rl."""
    base = models.parse_model_spec(config.base or str(embedded_base_dir()), "base", config.revision)
    rl_args = config.rl or (str(embedded_rl_dir()),)
    rls = [models.parse_model_spec(arg, models.model_name(arg), config.revision) for arg in rl_args]
    names = [spec.name for spec in rls]
    if len(set(names)) != len(names) or "base" in names:
        raise TokenshiftError(f"RL model names must be unique and not 'base' (got {', '.join(names)}): "
                              "pass directories with distinct names")
    return base, rls


def _entries(out: Path) -> list[str]:
    """Names in `out`, not counting a work folder that holds only the lock (the lock alone is no build)."""
    if not out.is_dir():
        return []
    work = out / WORK_DIR
    lock_only = work.is_dir() and not work.is_symlink() and all(q.name == LOCK_NAME for q in work.iterdir())
    return [p.name for p in out.iterdir() if not (p.name == WORK_DIR and lock_only)]


def prepare_out(config: BuildConfig, overwrite: bool) -> Path:
    """Refuse a finished build (unless overwrite) or one started with another config."""
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise TokenshiftError(f"--out {out} is a file: choose a directory")
    refuse_published_out(out)
    finished = (out / manifest.MANIFEST).exists()
    started = (out / WORK_DIR / CONFIG_FILE).exists()
    if _entries(out) and not (finished or started):
        raise TokenshiftError(f"--out {out} is not empty and holds no tokenshift build: "
                              "choose an empty or new directory")
    if finished and not overwrite:
        raise TokenshiftError(f"{out} already holds a finished build: pass --overwrite to replace it, "
                              "or choose another --out")
    if started and not overwrite:
        recorded = read_work_config(out / WORK_DIR / CONFIG_FILE)
        version = recorded.pop("schema_version", None)
        if version != SCHEMA_VERSION:  # its parts so far follow another contract: one build is one version
            raise TokenshiftError(f"{out} was started by a tokenshift writing schema version {version or '1.0 or 2.0'}; "
                                  f"this one writes {SCHEMA_VERSION} and never mixes two in one build: finish it "
                                  "with that tokenshift, pass --overwrite, or choose another --out")
        current = json.loads(json.dumps(config.identity()))
        defaults = json.loads(json.dumps(BuildConfig(out="").identity()))
        # a field added after the build started was at its default then
        previous = {**defaults, **recorded}
        changed = [k for k in sorted(set(previous) | set(current)) if previous.get(k) != current.get(k)]
        if changed:
            k = changed[0]
            raise TokenshiftError(f"{out} was started with another config ({k}: {previous.get(k)!r} "
                                  f"-> {current.get(k)!r}): rerun with the same flags, pass "
                                  "--overwrite, or choose another --out")
    return out


def work_config(config: BuildConfig) -> dict:
    """What a build records of itself when it starts: its identity and the schema version its parts follow."""
    return {**config.identity(), "schema_version": SCHEMA_VERSION}


def read_work_config(path: Path) -> dict:
    """A step's recorded config (a work file); a one-line error when it is damaged."""
    try:
        previous = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        previous = None
    if not isinstance(previous, dict):
        raise TokenshiftError(f"{path} is damaged (not a JSON object): pass --overwrite to start the build "
                              "again, or choose another --out")
    return previous


def _clear_build(out: Path) -> None:
    """Delete a build's tables and work files, keeping the lock this process holds."""
    refuse_symlinks(out, [*TABLE_FIELDS, WORK_DIR, manifest.MANIFEST])  # before anything is deleted
    for name in TABLE_FIELDS:
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    if (out / WORK_DIR).is_dir():
        for path in (out / WORK_DIR).iterdir():
            if path.name != LOCK_NAME:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    for name in (manifest.MANIFEST, "README.md", "validation.json"):
        (out / name).unlink(missing_ok=True)


def command_line(config: BuildConfig) -> str:
    """The `tokenshift build` command that reproduces this build (non-default flags only)."""
    defaults = BuildConfig(out=config.out)
    parts = ["tokenshift", "build", "--out", config.out]
    for f in dataclasses.fields(BuildConfig):
        value = getattr(config, f.name)
        if f.name == "out" or value == getattr(defaults, f.name):
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, tuple):  # --rl, --gold-transform: the flag once per value
            for arg in value:
                parts += [flag, arg]
        elif f.name == "use_chat_template":
            parts.append("--no-chat-template")
        elif f.name == "ray" and value == executor.LOCAL:
            parts.append("--ray")
        elif isinstance(value, bool):
            parts.append(flag)
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def run_build(config: BuildConfig, overwrite: bool = False, progress: bool = True) -> Path:
    """Build (or resume) the tables under config.out; returns the build directory."""
    started_at = time.time()
    validate_config(config)
    out = prepare_out(config, overwrite)
    if overwrite:
        refuse_symlinks(out, [*TABLE_FIELDS, WORK_DIR, manifest.MANIFEST])
    loaded = benchmarks.read_benchmark(config.benchmark, config.limit, benchmark_fields(config))
    problems = loaded.problems
    base_spec, rl_specs = model_specs(config)
    tokenizer = models.load_tokenizer(base_spec, config.trust_remote_code)
    for spec in rl_specs:
        models.check_same_vocabulary(tokenizer, models.load_tokenizer(spec, config.trust_remote_code),
                                     "base", spec.name)
    pair = _Pair(tokenizer, base_spec, rl_specs)
    check_tokenizer(config, tokenizer)
    prompt_texts = [prompts.format_prompt(tokenizer, p.question, config.instruction,
                                          config.use_chat_template) for p in problems]
    longest = max((len(_prompt_ids(tokenizer, t)) for t in prompt_texts), default=0)
    check_context(config, base_spec, rl_specs, longest)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, "tokenshift build"):  # one writer; the checks above wrote nothing
        prepare_out(config, overwrite)  # again under the lock: another run may have started meanwhile
        clean_leftovers(out)
        placement = config.placement()
        with executor.session(placement):
            if overwrite:
                _clear_build(out)
            write_json_atomic(out / WORK_DIR / CONFIG_FILE, work_config(config))
            spec = ShardSpec.parse(config.shard)
            todo = [k for k, _ in enumerate(shard_ranges(len(problems), config.shard_size))
                    if spec.owns(k) and not is_done(out, "tokens", k)]
            job = BuildShards(config, problems, prompt_texts, pair, progress=progress and placement is None)
            executor.run_shards(job, todo, placement, progress, "shards")
        _write_manifest(out, config, pair, loaded, started_at)
    return out


def check_tokenizer(config: BuildConfig, tokenizer) -> None:
    """Refuse settings the tokenizer cannot honour (instead of silently doing something else)."""
    if config.use_chat_template and not getattr(tokenizer, "chat_template", None):
        raise TokenshiftError("the base tokenizer has no chat template: pass --no-chat-template for plain "
                              "'Question/Answer' prompts")
    if config.top_k_candidates > len(tokenizer):
        raise TokenshiftError(f"--top-k-candidates {config.top_k_candidates} exceeds the vocabulary "
                              f"({len(tokenizer)} tokens): choose at most {len(tokenizer)}")


def check_context(config: BuildConfig, base_spec, rl_specs, longest_prompt: int) -> None:
    """Refuse when the longest prompt plus --max-new-tokens exceeds a model's context window."""
    for spec in (base_spec, *rl_specs):
        window = models.context_length(spec, config.trust_remote_code)
        if window is not None and longest_prompt + config.max_new_tokens > window:
            raise TokenshiftError(f"the longest prompt ({longest_prompt} tokens) plus --max-new-tokens "
                                  f"{config.max_new_tokens} exceeds the context of {spec.name} ({window} "
                                  f"tokens): lower --max-new-tokens to at most {max(window - longest_prompt, 0)}")


@dataclass
class BuildShards:
    """One shard of a build: prompts part, then graded generations, then scored tokens, each marked done.

    Picklable before `setup()`, so a Ray actor can receive it and load the models itself.
    """

    config: BuildConfig
    problems: list
    prompt_texts: list[str]
    pair: _Pair  # models not loaded yet: each process loads them on its first shard
    progress: bool = False

    def setup(self) -> None:
        executor.check_visible(Path(self.config.out) / WORK_DIR / CONFIG_FILE, "--out")

    def __call__(self, k: int) -> None:
        config, out, pair = self.config, Path(self.config.out), self.pair
        rows = shard_ranges(len(self.problems), config.shard_size)[k]
        shard_problems = [self.problems[i] for i in rows]
        shard_prompts = [self.prompt_texts[i] for i in rows]
        shard_prompt_ids = [_prompt_ids(pair.tokenizer, t) for t in shard_prompts]
        if not is_done(out, "prompts", k):
            mark_done(out, "prompts", k, manifest.write_part(out, f"prompts/{part_name(k)}", to_arrow("prompts", [
                {"problem_id": p.problem_id, "benchmark": p.benchmark, "question": p.question,
                 "gold_answer": p.gold_answer, "prompt": text}
                for p, text in zip(shard_problems, shard_prompts)])))
        pair.load(config)
        if not is_done(out, "generations", k):
            table, response_ids = _generations(config, pair, k, shard_problems, shard_prompt_ids, self.progress)
            written = manifest.write_part(out, f"{WORK_DIR}/response_ids/{part_name(k)}", response_ids)
            written.update(manifest.write_part(out, f"generations/{part_name(k)}", table))
            mark_done(out, "generations", k, written)
        recorded = recorded_files(out, "generations", k)
        for rel, entry in recorded.items():  # read only what this build wrote, unchanged since
            manifest.verify_part(out, rel, entry, recorded_in=marker(out, "generations", k))
        generations = pq.read_table(out / "generations" / part_name(k),
                                    columns=["generation_id", "problem_id", "sampler"]).to_pylist()
        response_ids = pq.read_table(out / WORK_DIR / "response_ids" / part_name(k)).column("token_ids")
        for gen, ids in zip(generations, response_ids.to_pylist()):
            gen["token_ids"] = ids
        mark_done(out, "tokens", k, manifest.write_part(
            out, f"tokens/{part_name(k)}",
            _tokens(config, pair, generations, shard_prompt_ids, shard_problems, self.progress)))


def _prompt_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _generations(config: BuildConfig, pair: _Pair, shard: int, problems, prompt_ids: list[list[int]],
                 progress: bool) -> tuple[pa.Table, pa.Table]:
    """Sample every model on the shard's prompts and grade the answers.

    Returns the generations part and, aligned with it, the response token ids (a work file, so
    scoring never re-tokenises decoded text).
    """
    tokenizer = pair.tokenizer
    sampling = generate.SamplingConfig(config.max_new_tokens, config.temperature, config.top_p,
                                       config.batch_size)
    rows = []
    samplers = [("base", pair.base_spec, pair.base), *((s.name, s, pair.rls[s.name]) for s in pair.rl_specs)]
    for name, spec, model in samplers:
        seed = generation_seed(config.seed, shard, name)
        bar = progress_bar(total=len(prompt_ids) * config.samples, desc=f"generate {name}", unit="answer",
                           leave=False, disable=not progress)
        samples = generate.ENGINES[config.engine](generate.EngineJob(
            spec, model, tokenizer, prompt_ids, config.samples, seed, sampling, config.dtype, bar))
        bar.close()
        for s in samples:
            problem = problems[s.prompt_index]
            rows.append({
                "generation_id": f"{name}/{problem.problem_id}/{s.sample_index}",
                "problem_id": problem.problem_id, "benchmark": problem.benchmark, "sampler": name,
                "sample_index": s.sample_index, "seed": seed,
                "response_text": tokenizer.decode(s.token_ids, skip_special_tokens=True),
                "n_tokens": len(s.token_ids), "finish_reason": s.finish_reason,
                "engine": config.engine, "_token_ids": s.token_ids})
    gold = {p.problem_id: p.gold_answer for p in problems}
    bar = progress_bar(total=len(rows), desc="grade", unit="answer", leave=False, disable=not progress)
    grades = grade.grade_many([(gold[r["problem_id"]], r["response_text"]) for r in rows],
                              timeout_s=config.grade_timeout_s, progress=bar, transforms=config.gold_transform)
    bar.close()
    for row, g in zip(rows, grades):
        row["extracted_answer"], row["correct"] = g.extracted_answer, g.correct
    token_ids = pa.table({"token_ids": pa.array([r.pop("_token_ids") for r in rows],
                                                type=pa.list_(pa.int32()))})
    return to_arrow("generations", rows), token_ids


def _tokens(config: BuildConfig, pair: _Pair, generations: list[dict], prompt_ids: list[list[int]],
            problems, progress: bool) -> pa.Table:
    """Score every generation of a shard against every RL model; one row per (generation, rl, position)."""
    tokenizer = pair.tokenizer
    vocab = len(tokenizer)
    prompt_of = {p.problem_id: ids for p, ids in zip(problems, prompt_ids)}
    token_text = {t: tokenizer.decode([t]) for t in {t for g in generations for t in g["token_ids"]}}
    score_config = score.ScoreConfig(top_k=config.top_k_candidates,
                                     memory_budget_mb=config.score_memory_mb)
    columns: dict[str, list] = {f.name: [] for f in TABLE_FIELDS["tokens"]}
    bar = progress_bar(total=len(generations), desc="score", unit="answer", leave=False, disable=not progress)
    for lo in range(0, len(generations), _SCORE_GROUP):
        group = generations[lo:lo + _SCORE_GROUP]
        scored = score_answers(pair.base, pair.rls,
                               [(prompt_of[g["problem_id"]], g["token_ids"]) for g in group], vocab,
                               score_config, max_batch_tokens=config.score_batch_tokens)
        for gen, stats in zip(group, scored):
            _append_token_rows(columns, gen, stats, token_text)
        bar.update(len(group))
    bar.close()
    return _tokens_table(columns)


def _append_token_rows(columns: dict[str, list], gen: dict, stats: dict, token_text: dict[int, str]) -> None:
    """Add one answer's rows (one block per RL model) to the column lists of the tokens table."""
    response = gen["token_ids"]
    n = len(response)
    positions = np.arange(n, dtype=np.int32)
    rel = (positions / max(n - 1, 1)).astype(np.float32)
    texts = np.asarray([token_text[t] for t in response], dtype=object)
    for rl_name, s in stats.items():
        columns["generation_id"].append(np.full(n, gen["generation_id"], dtype=object))
        columns["sampler"].append(np.full(n, gen["sampler"], dtype=object))
        columns["rl_model"].append(np.full(n, rl_name, dtype=object))
        columns["position"].append(positions)
        columns["rel_position"].append(rel)
        columns["token_id"].append(np.asarray(response, dtype=np.int32))
        columns["token"].append(texts)
        for key, value in s.items():
            columns[key].append(value.numpy())


def _tokens_table(columns: dict[str, list]) -> pa.Table:
    target = schema("tokens")
    arrays = []
    for f in target:
        parts = columns[f.name]
        if pa.types.is_list(f.type):
            values = np.concatenate(parts) if parts else np.zeros((0, 1))
            k = values.shape[1] if values.ndim == 2 else 0
            flat = pa.array(values.reshape(-1), type=f.type.value_type)
            offsets = pa.array(np.arange(0, len(values) * k + 1, k or 1, dtype=np.int32)[:len(values) + 1])
            arrays.append(pa.ListArray.from_arrays(offsets, flat).cast(f.type))
        else:
            values = np.concatenate(parts) if parts else np.array([], dtype=object)
            arrays.append(pa.array(values, type=f.type))
    return pa.Table.from_arrays(arrays, schema=target)


def recorded_tables(out: Path, steps: tuple[str, ...]) -> dict[str, dict]:
    """{table: {rows, files}} of the parts `steps` recorded when they wrote them, each verified on disk."""
    files: dict[str, tuple[dict, Path]] = {}
    for step in steps:
        for path in sorted((out / WORK_DIR / "done").glob(f"{step}-*")):
            shard = int(path.name.rsplit("-", 1)[1])
            recorded = recorded_files(out, step, shard) or _legacy_record(out, step, shard)
            files.update({rel: (e, path) for rel, e in recorded.items() if rel.split("/", 1)[0] in TABLE_FIELDS})
    for rel, (entry, record) in files.items():
        manifest.verify_part(out, rel, entry, recorded_in=record)
    return manifest.tables_from_files({rel: entry for rel, (entry, _) in files.items()})


def _legacy_record(out: Path, step: str, shard: int) -> dict[str, dict]:
    """A marker from before markers recorded hashes: the part as it is now (the old behaviour)."""
    rel = f"{step}/{part_name(shard)}"
    return {rel: manifest.part_entry(out / rel)} if (out / rel).is_file() else {}


def _write_manifest(out: Path, config: BuildConfig, pair: _Pair, loaded: benchmarks.Loaded,
                    started_at: float) -> None:
    """Write manifest.json once every shard this process owns is done."""
    spec = ShardSpec.parse(config.shard)
    tables = recorded_tables(out, REQUIRED_TABLES)  # the tables a build writes
    info = {"base": dataclasses.asdict(models.describe(pair.base_spec)),
            "rl": [dataclasses.asdict(models.describe(s)) for s in pair.rl_specs]}
    payload = {
        **manifest.base_manifest(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(config),
        "config": config.recorded(),
        "shard": str(spec),
        "models": info,
        "tokenizer": {"sha256": models.tokenizer_sha256(pair.tokenizer), "vocab_size": len(pair.tokenizer)},
        "grader": grade.grader_version(),
        "benchmark_rows": loaded.record(),
        "seeds": {"build": config.seed, "generation": GENERATION_SEEDS},
        "tables": tables,
        "ungraded": {"generations": grade.count_ungraded(out, tables.get("generations", {}))},
        "build_seconds": round(time.time() - started_at, 1),
    }
    manifest.write_manifest(out, payload)
