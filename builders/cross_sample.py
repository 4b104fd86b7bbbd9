"""`tokenshift cross-sample DIR`: swap a budget of token decisions between base and RL, graded, as a table.

Protocol 'threshold' (default). forward: base drives; at each step both models' next-token
distributions are computed for the same prefix; where JS(p_base, p_rl) >= threshold (nats, full
temperature- and top-p-free distributions over the tokenizer's vocabulary) and the answer's budget is
not spent, the token is sampled from p_rl (an intervention), otherwise from p_base. reverse: RL
drives, base intervenes. Budget 0 is the driver alone; inf intervenes at every over-threshold
position. --budget-unit fraction: a budget b allows at most floor(b × max_new_tokens) interventions
per answer, a cap fixed before decoding (so an early fork can always be taken); the realised
intervention_fraction is recorded per row.

Protocol 'resample' (as in the related public code, github Hesse73/resample, with JS as the score):
the driver samples a whole answer (step 0, identical to threshold budget 0); the prompt's cutoff is
the 90th percentile of JS over the positions of all its step-0 answers; at each step k = 1..B the
first position after the last intervention whose JS (of the current answer) is above the cutoff
gets one token sampled from the other model and the driver regenerates the rest; an answer with no
such position stays as it is. One row per step k (budget = k).

Randomness: per shard and driver one generator seeded derive_seed(seed, shard, driver), the build's
own formula, over the build's batches; every setting restarts each batch from the generator state
the driver-alone run had there and draws one Exp(1) tensor per step shared by both models (see
paired_decode). So, with the build's seed and samples, budget 0 reproduces the build's generations
of the driver token for token, and settings differ from the driver alone only at interventions and
what follows them (common random numbers across thresholds and budgets). Resample step k >= 1 uses
derive_seed(seed, shard, 'resample', driver, k).
"""

from __future__ import annotations

import dataclasses
import math
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from tokenshift.builders import executor, generate, grade, manifest, models
from tokenshift.builders.build import (BuildConfig, model_specs, read_work_config, recorded_tables,
                                       refuse_published_out)
from tokenshift.builders.paired_decode import Decoded, decode_batch
from tokenshift.builders.shards import WORK_DIR, ShardSpec, derive_seed, is_done, mark_done, part_name
from tokenshift.errors import TokenshiftError
from tokenshift.files import clean_leftovers, write_json_atomic
from tokenshift.lock import folder_lock
from tokenshift.progress import progress_bar
from tokenshift.schemas.tables import to_arrow
from tokenshift.schemas.values import BUDGET_UNITS, DIRECTION_CHOICES, DIRECTIONS, LN2, PROTOCOLS

TABLE = "cross_samples"
CONFIG_FILE = "cross_config.json"
RESAMPLE_PERCENTILE = 90.0
INF = math.inf


@dataclass(frozen=True)
class CrossSampleConfig:
    """Everything that decides a cross_samples table; recorded verbatim in the manifest."""

    out: str  # the build directory
    protocol: str = "threshold"
    direction: str = "both"
    thresholds: tuple[float, ...] = (0.05, 0.1, 0.2)
    budgets: tuple[float, ...] = (0, 1, 2, 4, 8, 16, 32, INF)
    budget_unit: str = "tokens"
    samples: int | None = None  # None: the build's samples
    seed: int | None = None  # None: the build's seed
    rl_model: str | None = None  # None: the build's first RL model
    shard: str = "0/1"  # run only the build's prompt shards k with k % N == I
    ray: str | None = None  # None: this process; else a Ray address ("local": ray.init()'s default)
    ray_workers: int | None = None

    def as_json(self) -> dict:
        """The fields as JSON values (JSON has no infinity: inf is written as the string 'inf')."""
        return {k: _json_value(v) for k, v in dataclasses.asdict(self).items()}

    def identity(self) -> dict:
        """The fields that decide the table (a resumed or re-run cross-sampling must match them)."""
        return {k: v for k, v in self.as_json().items() if k not in EXECUTION_FIELDS}

    @classmethod
    def from_json(cls, block: dict) -> "CrossSampleConfig":
        """The config recorded in a manifest's `cross_sampling` block ('inf' back to infinity)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in block.items() if k in known}
        for key in ("thresholds", "budgets"):
            values[key] = tuple(float(v) for v in values.get(key, ()))
        return cls(**values)

    def command_line(self) -> str:
        """The `tokenshift cross-sample` command that reproduces this table (non-default flags only)."""
        defaults = CrossSampleConfig(out=self.out)
        parts = ["tokenshift", "cross-sample", self.out]
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "out" or value == getattr(defaults, f.name):
                continue
            if f.name == "ray" and value == executor.LOCAL:
                parts.append("--ray")
            elif isinstance(value, tuple):
                if value:  # resample records no thresholds
                    parts += ["--" + f.name, ",".join(_exact(v) for v in value)]
            else:
                parts += ["--" + f.name.replace("_", "-"), str(value)]
        return shlex.join(parts)


EXECUTION_FIELDS = ("out", "shard", "ray", "ray_workers")  # which process runs which shard, not what it holds


def _json_value(value):
    if isinstance(value, (tuple, list)):
        return [_json_value(v) for v in value]
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return value


def parse_numbers(text: str, flag: str) -> tuple[float, ...]:
    """'0,1,2,inf' → (0.0, 1.0, 2.0, inf); a one-line error for anything else."""
    values = []
    for item in (text or "").split(","):
        item = item.strip()
        try:
            value = float(item)
        except ValueError:
            raise TokenshiftError(f"{flag} {text!r} is not a comma-separated list of numbers "
                                  "(use e.g. 0,1,2,inf)") from None
        if math.isnan(value):
            raise TokenshiftError(f"{flag} {text!r} contains nan: use numbers or inf")
        values.append(value)
    return tuple(values)


def directions(config: CrossSampleConfig) -> tuple[str, ...]:
    return DIRECTIONS if config.direction == "both" else (config.direction,)


def validate_config(config: CrossSampleConfig) -> None:
    """Reject bad parameters before anything is read, loaded or written."""
    checks = [
        (config.protocol in PROTOCOLS, f"unknown --protocol {config.protocol!r}: use threshold or resample"),
        (config.direction in DIRECTION_CHOICES, f"unknown --direction {config.direction!r}: use forward, reverse or both"),
        (config.budget_unit in BUDGET_UNITS, f"unknown --budget-unit {config.budget_unit!r}: use tokens or fraction"),
        (bool(config.budgets), "--budgets is empty: give at least one budget, e.g. 0,1,inf"),
        (all(b >= 0 for b in config.budgets),
         f"--budgets must be >= 0 (got {', '.join(_fmt(b) for b in config.budgets if b < 0)})"),
        (config.samples is None or config.samples >= 1, f"--samples must be >= 1 (got {config.samples})"),
    ]
    if config.protocol == "threshold":
        checks += [
            (bool(config.thresholds), "--thresholds is empty: give at least one, e.g. 0.1"),
            (all(0 <= t <= LN2 for t in config.thresholds),
             f"--thresholds must be in [0, ln 2 = {LN2:.4f}] nats (got "
             f"{', '.join(_fmt(t) for t in config.thresholds if not 0 <= t <= LN2)})"),
        ]
        if config.budget_unit == "fraction":
            checks.append((all(b <= 1 or math.isinf(b) for b in config.budgets),
                           "--budget-unit fraction needs budgets in [0, 1] or inf"))
    else:
        checks += [
            (config.budget_unit == "tokens", "--protocol resample counts inserted tokens: use --budget-unit tokens"),
            (all(float(b).is_integer() for b in config.budgets if not math.isinf(b)),
             "--protocol resample needs whole-number budgets (steps)"),
            (not any(math.isinf(b) for b in config.budgets),
             "--protocol resample needs finite budgets (it runs max(--budgets) steps): drop inf"),
        ]
    for ok, message in checks:
        if not ok:
            raise TokenshiftError(message)
    ShardSpec.parse(config.shard)
    if config.ray is not None:
        executor.check_ray(config.ray)


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:g}"


def _exact(x: float) -> str:
    """`_fmt` where it reads back as the same float, else every digit."""
    return _fmt(x) if math.isinf(x) or float(_fmt(x)) == x else repr(x)


def resolve(config: CrossSampleConfig, build: dict) -> CrossSampleConfig:
    """Fill defaults from the build's manifest and normalise the lists (sorted, unique)."""
    rl_names = [m["name"] for m in build["models"]["rl"]]
    rl_model = config.rl_model or rl_names[0]
    if rl_model not in rl_names:
        raise TokenshiftError(f"unknown --rl-model {rl_model!r}: this build has {', '.join(rl_names)}")
    thresholds = tuple(sorted(set(config.thresholds))) if config.protocol == "threshold" else ()
    return dataclasses.replace(
        config, thresholds=thresholds, budgets=tuple(sorted(set(map(float, config.budgets)))),
        samples=config.samples or build["config"]["samples"],
        seed=build["config"]["seed"] if config.seed is None else config.seed, rl_model=rl_model)


def load_build(out: Path) -> dict:
    """The build's manifest; a one-line error when DIR holds no finished build."""
    if not (out / manifest.MANIFEST).is_file():
        raise TokenshiftError(f"{out} holds no finished build (no manifest.json): "
                              "run `tokenshift build --out DIR` first")
    refuse_published_out(out, "DIR")
    try:
        build = manifest.read_manifest(out)
        build["config"]["seed"], build["models"]["rl"][0]["name"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise TokenshiftError(f"{out / manifest.MANIFEST} is not a tokenshift build manifest: "
                              "rebuild with `tokenshift build`") from None
    if not manifest.listed_files(build, "prompts"):
        raise TokenshiftError(f"{out} has no prompts table: rebuild with `tokenshift build`")
    manifest.verify_tables(out, build, ("prompts",))  # the parts this step reads, as the build wrote them
    return build


def _previous_identity(out: Path, build: dict) -> dict | None:
    path = out / WORK_DIR / CONFIG_FILE
    if path.is_file():
        return read_work_config(path)
    recorded = build.get("cross_sampling")
    if recorded:
        return {k: v for k, v in recorded.items() if k not in EXECUTION_FIELDS}
    return {} if (out / TABLE).is_dir() else None


def check_rerun(out: Path, build: dict, config: CrossSampleConfig, overwrite: bool) -> None:
    """Refuse cross-sampling a DIR whose cross_samples came from another config (unless overwrite)."""
    previous = _previous_identity(out, build)
    current = config.identity()
    if previous is None or previous == current or overwrite:
        return
    changed = [k for k in sorted(set(previous) | set(current)) if previous.get(k) != current.get(k)]
    k = changed[0]
    raise TokenshiftError(f"{out} already has cross_samples from another config ({k}: {previous.get(k)!r} "
                          f"-> {current.get(k)!r}): pass --overwrite to replace them, or rerun with the same flags")


def _clear(out: Path) -> None:
    shutil.rmtree(out / TABLE, ignore_errors=True)
    for path in (out / WORK_DIR / "done").glob(f"{TABLE}-*"):
        path.unlink()
    (out / WORK_DIR / CONFIG_FILE).unlink(missing_ok=True)


@dataclass
class Run:
    """What every shard needs: configs, the loaded pair, tokenizer and sampling settings."""

    config: CrossSampleConfig
    build: BuildConfig
    tokenizer: object
    base: object
    rl: object
    sampling: generate.SamplingConfig
    progress: bool

    def roles(self, direction: str) -> tuple[str, object, object]:
        """(driver name, driver, intervening model) of a direction."""
        if direction == "forward":
            return "base", self.base, self.rl
        return self.config.rl_model, self.rl, self.base

    def cap(self, budget: float) -> float:
        """Most interventions per answer a budget allows."""
        if self.config.budget_unit == "tokens" or math.isinf(budget):
            return budget
        return float(math.floor(budget * self.sampling.max_new_tokens + 1e-9))


def _build_config(build: dict, trust_remote_code: bool = False) -> BuildConfig:
    return BuildConfig.from_manifest(build, trust_remote_code)


def _pair_specs(config: CrossSampleConfig, build: dict) -> tuple[models.ModelSpec, models.ModelSpec]:
    """Specs of base and the chosen RL model, from the build's config."""
    base_spec, rl_specs = model_specs(_build_config(build))
    rl_spec = next((s for s in rl_specs if s.name == config.rl_model), None)
    if rl_spec is None:
        raise TokenshiftError(f"--rl-model {config.rl_model!r} is in the manifest but not in the build "
                              f"config's --rl list ({', '.join(s.name for s in rl_specs)})")
    return base_spec, rl_spec


def check_checkpoints(config: CrossSampleConfig, build: dict) -> None:
    """Refuse checkpoints changed since the build (their content hash differs from the manifest's)."""
    recorded = {"base": build["models"]["base"], **{m["name"]: m for m in build["models"]["rl"]}}
    for spec in _pair_specs(config, build):
        want = recorded.get(spec.name, {}).get("sha256")
        have = models.describe(spec).sha256
        if want and have and want != have:
            raise TokenshiftError(f"model {spec.name} at {spec.source} changed since the build (sha256 "
                                  f"{have[:12]} != {want[:12]}): cross-sample with the build's checkpoints")


def load_run(config: CrossSampleConfig, build: dict, progress: bool, trust_remote_code: bool = False) -> Run:
    """Load base, the chosen RL model and the tokenizer (checked by check_checkpoints first)."""
    bconfig = _build_config(build, trust_remote_code)
    base_spec, rl_spec = _pair_specs(config, build)
    tokenizer = models.load_tokenizer(base_spec, bconfig.trust_remote_code)
    load = lambda spec: models.load_model(spec, bconfig.device, bconfig.dtype, bconfig.trust_remote_code)
    base, rl = load(base_spec), load(rl_spec)
    for name, model in (("base", base), (rl_spec.name, rl)):
        models.check_vocab_fits(model, len(tokenizer), name)
    sampling = generate.SamplingConfig(bconfig.max_new_tokens, bconfig.temperature, bconfig.top_p,
                                       bconfig.batch_size)
    return Run(config, bconfig, tokenizer, base, rl, sampling, progress)


def run_cross_sample(config: CrossSampleConfig, overwrite: bool = False, progress: bool = True,
                     trust_remote_code: bool = False) -> Path:
    """Add (or resume) the cross_samples table of the build in config.out; returns the directory.

    trust_remote_code comes from this run's command line only, never from the build's manifest.
    """
    validate_config(config)
    out = Path(config.out)
    if not (out / manifest.MANIFEST).is_file():
        load_build(out)  # its one-line error, before the lock would create anything in DIR
    refuse_published_out(out, "DIR")
    with folder_lock(out, "tokenshift cross-sample", shared=True):  # --shard runs may share DIR
        clean_leftovers(out)
        return _run_locked(config, out, overwrite, progress, trust_remote_code)


def _run_locked(config: CrossSampleConfig, out: Path, overwrite: bool, progress: bool,
                trust_remote_code: bool) -> Path:
    started_at = time.time()
    build = load_build(out)
    config = resolve(config, build)
    check_rerun(out, build, config, overwrite)
    check_checkpoints(config, build)
    placement = _placement(config, build)
    with executor.session(placement):
        if overwrite:
            _clear(out)
        write_json_atomic(out / WORK_DIR / CONFIG_FILE, config.identity())
        spec = ShardSpec.parse(config.shard)
        todo = [k for k in unfinished_shards(out) if spec.owns(k)]
        job = CrossSampleShards(config, build, progress=progress and config.ray is None,
                                trust_remote_code=trust_remote_code)
        executor.run_shards(job, todo, placement, progress, "cross-sample shards")
    if not unfinished_shards(out):  # the run that finishes the last shard records the table
        with folder_lock(out, "tokenshift cross-sample", wait=True, name="manifest.lock"):
            _update_manifest(out, config, time.time() - started_at)
    return out


def unfinished_shards(out: Path) -> list[int]:
    """The build's prompt shards whose cross_samples part is not written yet."""
    shards = sorted(int(Path(rel).stem.split("-")[1])
                    for rel in manifest.listed_files(manifest.read_manifest(out), "prompts"))
    return [k for k in shards if not is_done(out, TABLE, k)]


def _placement(config: CrossSampleConfig, build: dict) -> executor.RayPlacement | None:
    return executor.ray_placement(config.ray, config.ray_workers, str(build["config"].get("device", "cpu")))


@dataclass
class CrossSampleShards:
    """One prompt shard's cross-sampled, graded rows, written as a part and marked done.

    Picklable before `setup()`, so a Ray actor can receive it and load the pair itself.
    """

    config: CrossSampleConfig
    build: dict
    progress: bool = False
    run: Run | None = None
    trust_remote_code: bool = False  # from the current command line only

    def setup(self) -> None:
        executor.check_visible(Path(self.config.out) / WORK_DIR / CONFIG_FILE, "DIR")
        if self.run is None:
            self.run = load_run(self.config, self.build, self.progress, self.trust_remote_code)

    def __call__(self, k: int) -> None:
        out = Path(self.config.out)
        prompts = pq.read_table(out / "prompts" / part_name(k)).to_pylist()
        rows = shard_rows(self.run, k, prompts)
        mark_done(out, TABLE, k, manifest.write_part(out, f"{TABLE}/{part_name(k)}", to_arrow(TABLE, rows)))


def _update_manifest(out: Path, config: CrossSampleConfig, seconds: float) -> None:
    payload = manifest.read_manifest(out)
    payload["cross_sampling"] = config.as_json()
    payload["cross_sampling_command"] = config.command_line()
    payload.setdefault("seeds", {})["cross_sampling"] = (
        "derive_seed(seed, shard, driver) per driver, replayed per batch; resample step k >= 1: "
        "derive_seed(seed, shard, 'resample', driver, k); per row in cross_samples.seed")
    payload["cross_sampling_seconds"] = round(seconds, 1)
    # the build's entries stay as recorded; cross_samples gets the hashes its shards recorded on writing
    payload["tables"] = {**{t: e for t, e in payload["tables"].items() if t != TABLE},
                         **recorded_tables(out, (TABLE,))}
    payload.setdefault("ungraded", {})[TABLE] = grade.count_ungraded(out, payload["tables"].get(TABLE, {}))
    manifest.write_manifest(out, payload)


def shard_rows(run: Run, shard: int, prompts: list[dict]) -> list[dict]:
    """Every cross-sampled, graded row of one prompt shard (all directions and settings)."""
    tok = run.tokenizer
    prompt_ids = [tok(p["prompt"], add_special_tokens=False)["input_ids"] for p in prompts]
    jobs = [(i, s) for i in range(len(prompts)) for s in range(run.config.samples)]
    rows = []
    for direction in directions(run.config):
        driver_name, driver, other = run.roles(direction)
        decoder = PairDecoder(run, driver, other)
        seed = derive_seed(run.config.seed, shard, driver_name)
        prefixes = [prompt_ids[i] for i, _ in jobs]
        if run.config.protocol == "threshold":
            results = threshold_runs(run, decoder, prefixes, seed, f"{direction} shard {shard}")
            for (threshold, budget), decoded in results.items():
                rows += [_row(run, direction, threshold, budget, prompts[i], s, seed, d)
                         for (i, s), d in zip(jobs, decoded, strict=True)]
        else:
            steps = resample_runs(run, decoder, prefixes, [i for i, _ in jobs], seed,
                                  lambda k, name=driver_name: derive_seed(run.config.seed, shard, "resample", name, k),
                                  f"{direction} shard {shard}")
            for k, (step_seed, states) in enumerate(steps):
                rows += [_row(run, direction, None, float(k), prompts[i], s, step_seed, d)
                         for (i, s), d in zip(jobs, states, strict=True)]
    _grade(run, rows, {p["problem_id"]: p["gold_answer"] for p in prompts})
    return rows


class PairDecoder:
    """decode_batch bound to one direction's driver, intervening model and stop tokens (the driver's)."""

    def __init__(self, run: Run, driver, other):
        self.run, self.driver, self.other = run, driver, other
        self.stop_ids = generate.stop_token_ids(driver, run.tokenizer)
        pad = run.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else min(self.stop_ids)

    def __call__(self, prefixes, limits, generator, threshold=INF, caps=None, force_first=None) -> list[Decoded]:
        return decode_batch(self.driver, self.other, prefixes, limits, self.run.sampling, self.stop_ids,
                            self.pad_id, len(self.run.tokenizer), generator, threshold, caps, force_first)

    def generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=models.input_device(self.driver)).manual_seed(seed)


def _batches(n: int, size: int) -> list[range]:
    return [range(lo, min(lo + size, n)) for lo in range(0, n, size)]


def threshold_runs(run: Run, decode: PairDecoder, prefixes: list[list[int]], seed: int,
                   label: str) -> dict[tuple[float, float], list[Decoded]]:
    """{(threshold, budget): decoded rows aligned with prefixes} for every threshold and budget.

    A batch is decoded once per distinct outcome: budgets whose cap is 0 all equal the driver
    alone, and when no row of a batch used its whole cap, a larger cap decodes it identically.
    """
    config, limit = run.config, run.sampling.max_new_tokens
    batches = _batches(len(prefixes), run.sampling.batch_size)
    generator = decode.generator(seed)
    states, alone = [], []
    bar = progress_bar(total=len(batches) * (1 + len(config.thresholds) * len(config.budgets)), desc=label,
                       unit="batch", leave=False, disable=not run.progress)
    for rows in batches:
        states.append(generator.get_state())
        alone.append(decode([prefixes[i] for i in rows], [limit] * len(rows), generator))
        bar.update(1)
    out = {}
    for threshold in config.thresholds:
        previous_cap, previous = 0.0, alone
        for budget in config.budgets:
            cap, results = run.cap(budget), []
            for b, rows in enumerate(batches):
                done = previous[b]
                unbound = previous_cap > 0 and all(len(d.interventions) < previous_cap for d in done)
                if cap != previous_cap and not unbound:
                    generator.set_state(states[b])
                    done = decode([prefixes[i] for i in rows], [limit] * len(rows), generator,
                                  threshold, [cap] * len(rows))
                results.append(done)
                bar.update(1)
            out[(threshold, budget)] = [d for part in results for d in part]
            previous_cap, previous = cap, results
    bar.close()
    return out


def resample_runs(run: Run, decode: PairDecoder, prefixes: list[list[int]], prompt_of: list[int], seed: int,
                  step_seed, label: str) -> list[tuple[int, list[Decoded]]]:
    """[(seed, rows aligned with prefixes)] for steps k = 0..max(budgets) of the resample protocol."""
    limit, size = run.sampling.max_new_tokens, run.sampling.batch_size
    steps = int(max(run.config.budgets))
    bar = progress_bar(total=steps + 1, desc=label, unit="step", leave=False, disable=not run.progress)
    generator = decode.generator(seed)
    current = []
    for rows in _batches(len(prefixes), size):
        current += decode([prefixes[i] for i in rows], [limit] * len(rows), generator)
    bar.update(1)
    cutoff = {}
    for p in sorted(set(prompt_of)):
        values = np.concatenate([current[i].js for i in range(len(current)) if prompt_of[i] == p])
        cutoff[p] = float(np.percentile(values, RESAMPLE_PERCENTILE))
    history = [(seed, current)]
    for k in range(1, steps + 1):
        todo = []
        for i, d in enumerate(current):
            start = d.interventions[-1] + 1 if d.interventions else 0
            j = next((t for t in range(start, len(d.token_ids)) if d.js[t] > cutoff[prompt_of[i]]), None)
            if j is not None:
                todo.append((i, j))
        k_seed = step_seed(k)
        generator = decode.generator(k_seed)
        current = list(current)
        for rows in _batches(len(todo), size):
            part = [todo[r] for r in rows]
            new = decode([prefixes[i] + current[i].token_ids[:j] for i, j in part], [limit - j for _, j in part],
                         generator, caps=[0.0] * len(part), force_first=[True] * len(part))
            for (i, j), d in zip(part, new, strict=True):
                old = current[i]
                current[i] = Decoded(old.token_ids[:j] + d.token_ids, d.finish_reason, old.js[:j] + d.js,
                                     old.interventions + [j])
        history.append((k_seed, current))
        bar.update(1)
    bar.close()
    return history


def _row(run: Run, direction: str, threshold: float | None, budget: float, problem: dict, sample: int,
         seed: int, decoded: Decoded) -> dict:
    config, positions = run.config, decoded.interventions
    n = len(decoded.token_ids)
    th = "na" if threshold is None else _fmt(threshold)
    return {
        "cross_id": f"{config.protocol}/{direction}/{config.rl_model}/{th}/{_fmt(budget)}/"
                    f"{problem['problem_id']}/{sample}",
        "problem_id": problem["problem_id"], "rl_model": config.rl_model, "protocol": config.protocol,
        "direction": direction, "threshold": threshold, "budget": budget, "budget_unit": config.budget_unit,
        "sample_index": sample, "seed": seed,
        "response_text": run.tokenizer.decode(decoded.token_ids, skip_special_tokens=True),
        "n_tokens": n, "n_interventions": len(positions), "intervention_positions": list(positions),
        "intervention_fraction": len(positions) / n if n else 0.0,
        "extracted_answer": None, "correct": None, "finish_reason": decoded.finish_reason,
    }


def _grade(run: Run, rows: list[dict], gold: dict[str, str]) -> None:
    """Grade each distinct (gold, response) once with math-verify; settings often repeat answers."""
    pairs = sorted({(gold[r["problem_id"]], r["response_text"]) for r in rows})
    bar = progress_bar(total=len(pairs), desc="grade", unit="answer", leave=False, disable=not run.progress)
    grades = dict(zip(pairs, grade.grade_many(pairs, timeout_s=run.build.grade_timeout_s, progress=bar),
                      strict=True))
    bar.close()
    for r in rows:
        g = grades[(gold[r["problem_id"]], r["response_text"])]
        r["extracted_answer"], r["correct"] = g.extracted_answer, g.correct
