"""Cost plans: what a build or a cross-sampling will decode and score, bounded before any model loads.

A plan counts answers and bounds the tokens of the pending shards from the config alone (every
answer runs to max_new_tokens); `--tokens-per-second R` turns the decoded bound into a wall time.
Pure functions of the configs and the files on disk; the live count while a run decodes is the
runtime's token meter (tokenshift.runtime.meter).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from tokenshift.builders.cross_sampling import build_answers
from tokenshift.builders.cross_sampling import runner as cs
from tokenshift.builders.cross_sampling.runs import known_runs, matched_settings
from tokenshift.builders.engines import models
from tokenshift.builders.inputs import benchmarks
from tokenshift.builders.pipeline import import_build
from tokenshift.builders.pipeline.build import benchmark_fields, model_specs, validate_config
from tokenshift.builders.pipeline.config import BuildConfig
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.meter import format_seconds
from tokenshift.runtime.shards import ShardSpec, is_done, part_name, shard_ranges


@dataclass(frozen=True)
class Plan:
    """The bill of one command: its settings and answers, and bounds on the tokens it will process."""

    command: str  # 'build' or 'cross-sample'
    settings: tuple[str, ...]  # one line per setting group, e.g. 'forward: 3 thresholds x 8 budgets'
    answers: int  # answers written (rows of generations / cross_samples) by the pending shards
    decoded_bound: int  # most tokens sampled step by step (a paired step counts once)
    scored_bound: int  # most token rows teacher-forced and scored (tokens table rows)
    shards: int  # pending shards counted
    note: str = ""

    def seconds(self, tokens_per_second: float) -> float:
        """Wall time to decode the bound at `tokens_per_second` decoded tokens per second."""
        return self.decoded_bound / tokens_per_second

    def lines(self, tokens_per_second: float | None = None) -> list[str]:
        """The plan as printed: settings, answers, bounds and, given a speed, the time estimate."""
        out = [f"plan for tokenshift {self.command} ({self.shards} pending shard(s)):"]
        out += [f"  {s}" for s in self.settings]
        out.append(f"  answers: {self.answers:,}")
        out.append(f"  decoded tokens: <= {self.decoded_bound:,} (every answer to its token limit)")
        if self.scored_bound:
            out.append(f"  scored tokens: <= {self.scored_bound:,}")
        if self.note:
            out.append(f"  {self.note}")
        if tokens_per_second:
            out.append(f"  estimated wall time at {tokens_per_second:,.0f} decoded tokens/s: "
                       f"<= {format_seconds(self.seconds(tokens_per_second))}")
        return out


def check_speed(tokens_per_second: float | None) -> None:
    if tokens_per_second is not None and not tokens_per_second > 0:
        raise TokenshiftError(f"--tokens-per-second must be > 0 (got {tokens_per_second:g})")


def build_plan(config, overwrite: bool = False) -> Plan:
    """The plan of `tokenshift build` for a BuildConfig: reads the benchmark, never a model."""

    # the machine that plans need not be the one that runs: no check of its GPUs or Ray cluster
    validate_config(dataclasses.replace(config, device="cpu", ray=None, ray_workers=None))
    problems = benchmarks.load_benchmark(config.benchmark, config.limit, benchmark_fields(config))
    _, rl_specs = model_specs(config)
    spec, out = ShardSpec.parse(config.shard), Path(config.out)
    pending = [r for k, r in enumerate(shard_ranges(len(problems), config.shard_size))
               if spec.owns(k) and (overwrite or not is_done(out, "tokens", k))]
    prompts = sum(len(r) for r in pending)
    samplers = 1 + len(rl_specs)
    answers = prompts * config.samples * samplers
    return Plan(
        "build",
        (f"samplers: base + {len(rl_specs)} RL model(s) ({', '.join(s.name for s in rl_specs)}), "
         f"{config.samples} answer(s) per prompt, max {config.max_new_tokens:,} new tokens",
         f"prompts: {prompts:,} of {len(problems):,}"),
        answers, answers * config.max_new_tokens, answers * len(rl_specs) * config.max_new_tokens,
        len(pending),
        f"scoring runs every answer through base and {len(rl_specs)} RL model(s); the estimate counts decoding")


def _cap(budget: float, unit: str, max_new_tokens: int) -> float:
    """Most interventions a budget allows (cross_sample.Run.cap, without loading the pair)."""
    if unit == "tokens" or math.isinf(budget):
        return budget
    return float(math.floor(budget * max_new_tokens + 1e-9))


def _cap_changes(budgets, unit: str, max_new_tokens: int) -> int:
    """Budgets (sorted) whose cap differs from the previous one's, starting from 0: each is at most one
    more full decode per threshold (equal caps are one setting; cap 0 is the driver alone). The bound
    is the worst case of shared-prefix decoding too: settings may part at their first tokens."""
    changes, previous = 0, 0.0
    for budget in budgets:
        cap = _cap(budget, unit, max_new_tokens)
        changes += cap != previous
        previous = cap
    return changes


def cross_sample_plan(config, overwrite: bool = False) -> Plan:
    """The plan of `tokenshift cross-sample`: reads the build's manifest and prompts, never a model."""
    import pyarrow.parquet as pq


    cs.validate_config(dataclasses.replace(config, ray=None, ray_workers=None))
    out = Path(config.out)
    build = cs.load_build(out)
    config = cs.resolve(config, build)
    max_new = int(build["config"]["max_new_tokens"])
    spec = ShardSpec.parse(config.shard)
    shards = sorted(int(p.stem.split("-")[1]) for p in (out / "prompts").glob("part-*.parquet"))
    pending = [k for k in (shards if overwrite else cs.unfinished_shards(out, config)) if spec.owns(k)]
    prompts = sum(pq.read_metadata(out / "prompts" / part_name(k)).num_rows for k in pending)
    per_direction = prompts * config.samples
    dirs = cs.directions(config)
    if config.protocol == "resample":
        settings = [f"protocol resample: steps 0..{int(max(config.budgets))}, one row per step"]
        passes = rows = 1 + int(max(config.budgets))  # one row per step, each step regenerates
    elif config.match:  # a random control: one decode per matched setting and control seed

        matched = len(matched_settings(config, known_runs(out, build))) // max(len(dirs), 1)
        settings = [f"criterion random matched to {config.match}: {matched} setting(s) x {config.control_seeds} "
                    "control seed(s)"]
        passes = 1 + matched * config.control_seeds
        rows = matched * config.control_seeds
    else:
        families = (len(config.thresholds) if config.thresholds
                    else len(config.rate) * config.control_seeds if config.criterion == "random" else 1)
        changes = _cap_changes(config.budgets, config.budget_unit, max_new)
        settings = [f"protocol threshold, criterion {config.criterion}: {families} threshold(s) or rate(s) x "
                    f"{len(config.budgets)} budget(s) ({config.budget_unit}); {changes} distinct nonzero cap(s) each"]
        passes = 1 + families * changes
        rows = families * len(config.budgets)
    settings.append(f"directions: {', '.join(dirs)}; rl model {config.rl_model}; {config.samples} answer(s) "
                    f"per prompt; prompts: {prompts:,}; max {max_new:,} new tokens")
    settings.append(f"full decodes of each answer per direction: at most {passes} (paired: both models run every "
                    "step; the settings' shared prefixes decode once, so a run decodes less)")
    settings.append(build_answers.plan_line(config, BuildConfig.from_manifest(build)))
    answers = per_direction * rows * len(dirs)
    return Plan("cross-sample", tuple(settings), answers, per_direction * len(dirs) * passes * max_new, 0,
                len(pending), "scored tokens: none (JS comes from the paired decode)")


def import_plan(config: BuildConfig, overwrite: bool = False):
    """The plan of an import: answers and scored tokens of the pending shards; nothing is decoded."""

    import_build.check_flags(config)
    import_build.validate_config(config)
    base_spec, rl_specs = import_build.model_specs(config)
    tokenizer = models.load_tokenizer(base_spec, config.trust_remote_code)
    windows = {s.name: models.context_length(s, config.trust_remote_code) for s in (base_spec, *rl_specs)}
    prepared = import_build.prepare(config, tokenizer, windows)
    spec, out = ShardSpec.parse(config.shard), Path(config.out)
    pending = [r for k, r in enumerate(shard_ranges(len(prepared.problems), config.shard_size))
               if spec.owns(k) and (overwrite or not is_done(out, "tokens", k))]
    answers = [a for r in pending for i in r for a in prepared.problems[i].answers]
    tokens = sum(len(a.token_ids) for a in answers)
    skipped = sum(v["count"] for v in prepared.record["skipped"].values())
    record = prepared.record
    return Plan(
        "build --completions",
        (f"source: {record['format']} ({len(record['files'])} file(s)); samplers: {', '.join(record['samplers'])}; "
         f"scored against base + {len(rl_specs)} RL model(s) ({', '.join(s.name for s in rl_specs)})",
         f"prompts: {sum(len(r) for r in pending):,} of {len(prepared.problems):,}; skipped answers: {skipped}"),
        len(answers), 0, tokens * len(rl_specs), len(pending),
        "importing decodes nothing: the cost is scoring (one teacher-forced pass per model per answer)")
