"""Cost plans: what a build or a cross-sampling will decode and score, bounded before any model loads.

A plan counts answers and bounds the tokens of the pending shards from the config alone (every
answer runs to max_new_tokens); `--tokens-per-second R` turns the decoded bound into a wall time.
While a run decodes, `metering` shows decoded tokens against that bound with an ETA and, after
the first batch, the estimate at the measured speed (decoded tokens per wall second, the unit
`--tokens-per-second` takes, so a run's figure can plan the next one).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from tokenshift.errors import TokenshiftError


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


def format_seconds(seconds: float) -> str:
    """'3 d 4 h', '2 h 05 min', '4 min 10 s' or '12.3 s'."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(round(seconds)), 60)
    hours, m = divmod(minutes, 60)
    days, h = divmod(hours, 24)
    if days:
        return f"{days} d {h} h"
    if hours:
        return f"{hours} h {m:02d} min"
    return f"{m} min {s:02d} s"


def check_speed(tokens_per_second: float | None) -> None:
    if tokens_per_second is not None and not tokens_per_second > 0:
        raise TokenshiftError(f"--tokens-per-second must be > 0 (got {tokens_per_second:g})")


def build_plan(config, overwrite: bool = False) -> Plan:
    """The plan of `tokenshift build` for a BuildConfig: reads the benchmark, never a model."""
    from tokenshift.builders import benchmarks
    from tokenshift.builders.build import benchmark_fields, model_specs, validate_config
    from tokenshift.builders.shards import ShardSpec, is_done, shard_ranges

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

    from tokenshift.builders import build_answers
    from tokenshift.builders import cross_sample as cs
    from tokenshift.builders.build import BuildConfig
    from tokenshift.builders.shards import ShardSpec, part_name

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
        from tokenshift.builders.cross_runs import known_runs, matched_settings

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


# ---- live metering of decoded tokens ----

_METER: "Meter | None" = None


@dataclass
class Meter:
    """Decoded tokens against a plan's bound: a progress bar with an ETA, one estimate after the first batch."""

    bound: int
    echo: Callable[[str], None]
    bar: object = None
    decoded: int = 0
    started: float | None = None
    plan_lines: tuple[str, ...] = ()  # printed once, when the work starts (after the run's own checks)

    def announce(self) -> None:
        for line in self.plan_lines:
            self.echo(line)
        self.plan_lines = ()

    def add(self, tokens: int, seconds: float) -> None:
        self.announce()
        first = self.started is None
        if first:  # the clock starts when the first batch started decoding (model loading excluded)
            self.started = time.perf_counter() - seconds
        self.decoded += tokens
        if self.bar is not None:
            self.bar.update(tokens)
        if first and tokens and seconds > 0:
            rate = tokens / seconds
            self.echo(f"first batch: {tokens:,} decoded tokens in {seconds:.1f} s = {rate:,.0f} tokens/s; "
                      f"at this speed the <= {self.bound:,} decoded tokens take <= "
                      f"{format_seconds(self.bound / rate)}")

    def rate(self) -> float:
        """Decoded tokens per wall second since the first batch started (0 before any)."""
        elapsed = time.perf_counter() - self.started if self.started is not None else 0.0
        return self.decoded / elapsed if elapsed > 0 else 0.0


def work_starts() -> None:
    """The run passed its checks and starts its shards: the active meter prints its plan now."""
    if _METER is not None:
        _METER.announce()


def record_decoded(tokens: int, seconds: float) -> None:
    """Report a decoded batch (tokens sampled, seconds it took) to the active meter, if any."""
    if _METER is not None:
        _METER.add(tokens, seconds)


@contextmanager
def metering(plan: Plan, echo: Callable[[str], None], progress: bool = True,
             plan_lines: tuple[str, ...] = ()) -> Iterator[Meter]:
    """Meter the decoded tokens of the block (this process only: Ray workers report nothing here).

    On a terminal a bar of decoded tokens against the bound shows the ETA; a log gets the
    first-batch estimate and the final count as plain lines instead (tokenshift.progress).
    """
    global _METER
    from tokenshift.progress import interactive

    bar = None
    if progress and interactive():
        bar = tqdm(total=plan.decoded_bound, desc="decoded tokens (bound)", unit="tok", unit_scale=True,
                   leave=False)
    meter = Meter(plan.decoded_bound, echo, bar, plan_lines=plan_lines)
    previous, _METER = _METER, meter
    try:
        yield meter
    finally:
        _METER = previous
        if bar is not None:
            bar.close()


def say(line: str) -> None:
    """A line beside the progress output (stderr, in order with it; tqdm bars are redrawn below it)."""
    tqdm.write(line, file=sys.stderr)
    sys.stderr.flush()


def run_planned(plan: Plan, run: Callable[[], object], tokens_per_second: float | None = None,
                progress: bool = True, echo: Callable[[str], None] = say):
    """Run `run()` metered: the plan is printed when its shards start (so a refusal stays one line),
    the estimate after the first batch, then the decoded tokens and the measured speed."""
    say = echo if progress else (lambda _line: None)
    with metering(plan, say, progress, tuple(plan.lines(tokens_per_second))) as meter:
        result = run()
    if meter.decoded:
        say(f"decoded {meter.decoded:,} tokens (plan bound {plan.decoded_bound:,}) at {meter.rate():,.0f} "
            "decoded tokens/s")
    return result
