"""`tokenshift demo`: the main job on the embedded default, end to end, in one command.

build → cross-sample (JS, other criteria, Δlog p, matched random controls, an extrapolation sweep in log
space) → validate → card → publish (local registry) → report from the published version.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import click

from tokenshift.runtime.embedded_pair import (
    embedded_rl_checkpoints,
    embedded_rl_dir,
    embedded_rl_seed_dir,
    embedded_sft_dir,
    embedded_sft_offpolicy_dir,
)
from tokenshift.runtime.errors import TokenshiftError

INF = float("inf")


@dataclass(frozen=True)
class DemoConfig:
    out: str
    limit: int = 40  # the figures in docs/findings*.md use --limit 100 (2.5 times the problems)
    samples: int = 4
    checkpoints: bool = True  # score every embedded RL checkpoint (for the evolution analysis)
    sft_control: bool = True  # also score the embedded controls vs base: sft, sft-offpolicy, rl-seed1
    thresholds: tuple[float, ...] = (0.05, 0.1, 0.2)
    budgets: tuple[float, ...] = (0, 1, 2, 4, INF)
    cross_samples: int = 2  # answers per prompt per cross-sampling setting
    # other selection criteria, each with its thresholds (nats; None: no threshold), for criteria_comparison
    criteria: tuple[tuple[str, tuple[float, ...] | None], ...] = (
        ("kl", (0.1, 0.5)), ("entropy", (0.3, 0.65)), ("top1_differs", None))
    control_seeds: int = 1  # random controls matched to the js (and delta_logp) runs' per-answer rates
    delta_thresholds: tuple[float, ...] = (-0.3,)  # delta_logp --sign le (swap), beside JS at matched budgets
    # the extrapolation sweep: --mix-space log at these W (W = 1, the swap, comes from the runs above), every
    # position, delta_logp <= extrapolate_threshold and js >= extrapolate_js at budget inf, and random matched to
    # delta_logp at each W; extrapolate_samples answers per prompt and setting
    extrapolate_weights: tuple[float, ...] = (1.05, 1.1, 1.25, 1.5)
    extrapolate_threshold: float = -0.3
    extrapolate_js: float = 0.05
    extrapolate_samples: int = 1
    extrapolate_direction: str = "forward"  # base drives and RL intervenes, the companion paper's setting
    version: str = "v1.0.0"
    seed: int = 0


def _step(index: int, total: int, title: str) -> float:
    click.secho(f"[{index}/{total}] {title}", bold=True, err=True)
    return time.time()


def compared_models(config: DemoConfig) -> tuple[str, ...]:
    """Model dirs scored against the base: the RL checkpoints (or only rl), then the shipped controls
    (sft, sft-offpolicy, rl-seed1), each scored like any RL model under its directory name."""
    rl = tuple(str(p) for p in (embedded_rl_checkpoints() if config.checkpoints else [embedded_rl_dir()]))
    if config.sft_control:
        controls = (embedded_sft_dir(), embedded_sft_offpolicy_dir(), embedded_rl_seed_dir())
        rl += tuple(str(d) for d in controls if d.is_dir())
    return rl


def run_demo(config: DemoConfig, progress: bool = True) -> dict:
    """Run every step into config.out; returns the paths and the seconds each step took."""
    # torch, transformers, DuckDB and great-expectations load when the demo runs
    from tokenshift.builders.cross_sampling.runner import CrossSampleConfig, run_cross_sample
    from tokenshift.builders.pipeline.build import run_build
    from tokenshift.builders.pipeline.config import BuildConfig
    from tokenshift.cards.card import write_card
    from tokenshift.publish.local import publish_local
    from tokenshift.queries.report import write_report
    from tokenshift.schemas.registry import resolve_version
    from tokenshift.schemas.report import format_summary
    from tokenshift.schemas.report import write_report as write_validation

    out = Path(config.out)
    if (out / "demo.json").exists():
        raise TokenshiftError(f"{out} already holds a finished demo: choose another --out")
    build_dir, registry, report_dir = out / "build", out / "registry", out / "report"
    rl = compared_models(config)
    seconds: dict[str, float] = {}

    t = _step(1, 6, "build: generate, grade and score the embedded pair on toy-arith")
    run_build(BuildConfig(out=str(build_dir), rl=rl, limit=config.limit, samples=config.samples,
                          seed=config.seed), progress=progress)
    seconds["build"] = time.time() - t

    t = _step(2, 6, "cross-sample: forward and reverse, JS thresholds × budgets, other criteria, "
                    "random controls matched to JS")
    common = dict(out=str(build_dir), samples=config.cross_samples, rl_model="rl")
    run_cross_sample(CrossSampleConfig(thresholds=config.thresholds, budgets=config.budgets, **common),
                     progress=progress)
    for criterion, thresholds in config.criteria:
        run_cross_sample(CrossSampleConfig(criterion=criterion, thresholds=thresholds, budgets=config.budgets,
                                           **common), progress=progress)
    run_cross_sample(CrossSampleConfig(criterion="delta_logp", sign="le", thresholds=config.delta_thresholds,
                                       budgets=config.budgets, **common), progress=progress)
    if config.control_seeds:
        for matched in ("js", "delta_logp"):
            run_cross_sample(CrossSampleConfig(criterion="random", match=matched, control_seeds=config.control_seeds,
                                               **common), progress=progress)
    seconds["cross_sample"] = time.time() - t
    if config.extrapolate_weights:
        t = _step(2, 6, "cross-sample: extrapolation sweep, --mix-space log, W = "
                        + ", ".join(f"{w:g}" for w in config.extrapolate_weights))
        extrapolate(config, progress)
        seconds["extrapolate"] = time.time() - t

    t = _step(3, 6, "validate: great-expectations checks of every table")
    # great-expectations loads when validation runs
    from tokenshift.schemas.validate import validate_build

    report = validate_build(build_dir)
    write_validation(report, build_dir / "validation.json")
    click.echo(format_summary(report), err=True)
    if not report.ok:
        raise TokenshiftError(f"the demo build failed validation: see {build_dir / 'validation.json'}")
    seconds["validate"] = time.time() - t

    t = _step(4, 6, "card: Hugging Face dataset card")
    write_card(build_dir)
    seconds["card"] = time.time() - t

    t = _step(5, 6, f"publish: local registry version {config.version}")
    publish_local(build_dir, registry, config.version, echo=lambda s: click.echo(s, err=True))
    seconds["publish"] = time.time() - t

    t = _step(6, 6, "report: every recipe from the published version")
    published = resolve_version(registry, "latest")
    write_report(published, report_dir)
    seconds["report"] = time.time() - t

    summary = {"config": dataclasses.asdict(config), "build": str(build_dir), "published": str(published),
               "report": str(report_dir / "index.md"),
               "viewer": str(report_dir / "viewer" / "index.html"),  # written by write_report
               "seconds": {k: round(v, 1) for k, v in seconds.items()},
               "total_seconds": round(sum(seconds.values()), 1)}
    (out / "demo.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def extrapolate(config: DemoConfig, progress: bool) -> None:
    """The W sweep: every position (W = 1 too, as a swap), delta_logp, js and random matched to delta_logp."""
    # torch, transformers, DuckDB and great-expectations load when the demo runs
    from tokenshift.builders.cross_sampling.runner import CrossSampleConfig, run_cross_sample

    common = dict(out=str(Path(config.out) / "build"), samples=config.extrapolate_samples, rl_model="rl",
                  direction=config.extrapolate_direction, budgets=(INF,))
    run_cross_sample(CrossSampleConfig(criterion="all", **common), progress=progress)  # W = 1: the other model
    for w in config.extrapolate_weights:
        space = dict(mix_space="log", mix_weight=w)
        run_cross_sample(CrossSampleConfig(criterion="all", **space, **common), progress=progress)
        run_cross_sample(CrossSampleConfig(criterion="delta_logp", sign="le",
                                           thresholds=(config.extrapolate_threshold,), **space, **common),
                         progress=progress)
        run_cross_sample(CrossSampleConfig(criterion="js", thresholds=(config.extrapolate_js,), **space, **common),
                         progress=progress)
        if config.control_seeds:
            run_cross_sample(CrossSampleConfig(criterion="random", match="delta_logp", sign="le",
                                               control_seeds=config.control_seeds, **space,
                                               **{k: v for k, v in common.items() if k != "budgets"}),
                             progress=progress)


@click.command("demo")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory for build, registry and report.")
@click.option("--limit", type=int, default=DemoConfig.limit, show_default=True, help="Toy test problems.")
@click.option("--samples", type=int, default=DemoConfig.samples, show_default=True, help="Responses per prompt per model.")
@click.option("--no-checkpoints", is_flag=True, help="Score only the final RL model (skip the evolution analysis).")
@click.option("--no-sft-control", is_flag=True, help="Do not score the embedded control models (sft, sft-offpolicy, rl-seed1).")
@click.option("--version", "version", default=DemoConfig.version, show_default=True, help="Registry version to publish.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(out: str, limit: int, samples: int, no_checkpoints: bool, no_sft_control: bool, version: str,
         quiet: bool) -> None:
    """Build, cross-sample, validate, card, publish and report the embedded pair in one command."""
    summary = run_demo(DemoConfig(out=out, limit=limit, samples=samples, checkpoints=not no_checkpoints,
                                  sft_control=not no_sft_control, version=version), progress=not quiet)
    click.echo(f"demo finished in {summary['total_seconds']:.0f} s: report {summary['report']}, "
               f"published {summary['published']}")
