"""`tokenshift toy-pair`: train the embedded toy base/RL pair from scratch, or evaluate a pair."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click

from tokenshift.runtime.embedded_pair import embedded_base_dir, embedded_rl_dir


@click.group("toy-pair")
def toy_pair() -> None:
    """The embedded toy pair: a tiny SFT base and its GRPO-trained RL model on toy arithmetic."""


@toy_pair.command("train")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Directory for base/, rl/, rl-step-XXX/ and manifest.json.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for data order, init and sampling.")
@click.option("--overwrite", is_flag=True, help="Replace a pair already in --out.")
@click.option("--quick", is_flag=True, hidden=True, help="Minuscule model and step counts (tests).")
@click.option("--sft-steps", type=click.IntRange(min=1), hidden=True)
@click.option("--grpo-steps", type=click.IntRange(min=1), hidden=True)
@click.option("--eval-n", type=click.IntRange(min=0), hidden=True, help="Test problems to evaluate; 0 skips.")
@click.option("--p-wrong-plan", type=click.FloatRange(0, 1), hidden=True)
@click.option("--p-confused-op", type=click.FloatRange(0, 1), hidden=True)
@click.option("--p-forgot-tens", type=click.FloatRange(0, 1), hidden=True)
@click.option("--p-unboxed", type=click.FloatRange(0, 1), hidden=True)
def train_cmd(out: Path, seed: int, overwrite: bool, quick: bool, sft_steps: int | None,
              grpo_steps: int | None, eval_n: int | None, **fork_mix: float | None) -> None:
    """Reproduce the pair from scratch: tokenizer, SFT base, GRPO rl (with checkpoints), SFT control, eval."""
    # torch, transformers and TRL load when training runs
    from tokenshift.toy.train import TrainConfig, prepare_out, quick_config, train_pair, with_overrides
    from tokenshift.training.trl_extra import require_trl

    require_trl()  # before minutes of SFT, not after
    prepare_out(out, overwrite)
    config = quick_config(seed) if quick else TrainConfig(seed=seed)
    config = with_overrides(config, sft_steps, grpo_steps, eval_n, **fork_mix)
    manifest = train_pair(out, config, command=_command_line(click.get_current_context()))
    d = manifest["durations_s"]
    click.echo(f"wrote {out} (sft {d['sft_s']:.0f}s, grpo {d['grpo_s']:.0f}s"
               + (f", sft control {d['sft_control_s']:.0f}s" if "sft_control_s" in d else "") + ")")
    if manifest["eval"]:
        click.echo(_summary(manifest["eval"]))


@toy_pair.command("add-controls")
@click.option("--pair", "pair", required=True, type=click.Path(path_type=Path),
              help="A pair written by `toy-pair train` (e.g. tokenshift/toy/pair); its files are left untouched.")
@click.option("--rl-seed", default=1, show_default=True, type=int, help="Seed of the repeated GRPO run (rl-seed<N>/).")
@click.option("--overwrite", is_flag=True, help="Replace rl-seed<N>/ and sft-offpolicy/ if already added.")
@click.option("--quick", is_flag=True, hidden=True, help="Minuscule off-policy SFT settings (tests).")
def add_controls_cmd(pair: Path, rl_seed: int, overwrite: bool, quick: bool) -> None:
    """Add sft-offpolicy (SFT on reference solutions, stopped near rl's accuracy) and rl-seed<N> to a pair."""
    # torch, transformers and TRL load when training runs
    from tokenshift.toy.controls import ControlsConfig, add_controls, quick_controls_config
    from tokenshift.training.trl_extra import require_trl

    require_trl()
    config = quick_controls_config(rl_seed) if quick else ControlsConfig(rl_seed=rl_seed)
    manifest = add_controls(pair, config, overwrite, command=_command_line(click.get_current_context()))
    record = manifest["added_models"]
    d = record["durations_s"]
    click.echo(f"added {record['models']['rl_seed']} and {record['models']['sft_offpolicy']} to {pair} "
               f"(grpo {d['rl_seed_grpo_s']:.0f}s, sft-offpolicy {d['sft_offpolicy_s']:.0f}s, "
               f"{record['sft_offpolicy']['steps']} steps)")


@toy_pair.command("eval")
@click.option("--n", "n", default=200, show_default=True, type=click.IntRange(min=1),
              help="Number of toy test problems (capped at the split size).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--base", "base", type=click.Path(path_type=Path), default=None,
              help="Base model directory [default: the embedded base].")
@click.option("--rl", "rl", type=click.Path(path_type=Path), default=None,
              help="RL model directory [default: the embedded rl].")
@click.option("--seed", default=0, show_default=True, type=int, help="Sampling seed.")
@click.option("--batch-size", default=100, hidden=True, type=click.IntRange(min=1))
def eval_cmd(n: int, as_json: bool, base: Path | None, rl: Path | None, seed: int, batch_size: int) -> None:
    """Sampled (T=1, top_p=1, no top-k) and greedy accuracy of base and rl on the toy test split."""
    from transformers.utils import logging as hf_logging

    # torch and transformers load when the evaluation runs
    from tokenshift.toy.evaluate import EvalConfig, evaluate_dirs, load_model_dir

    hf_logging.disable_progress_bar()  # per-load weight bars would bury the result
    dirs = {"base": base or embedded_base_dir(), "rl": rl or embedded_rl_dir()}
    for path in dirs.values():  # fail fast on bad paths, before any generation
        load_model_dir(path)
    result = evaluate_dirs(dirs, EvalConfig(n=n, seed=seed, batch_size=batch_size))
    click.echo(json.dumps(result) if as_json else _summary(result))


def _command_line(ctx: click.Context) -> str:
    """The invocation as `tokenshift toy-pair train ...`, rebuilt from the parsed options."""
    words = ["tokenshift", "toy-pair", ctx.info_name]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value is None or value is False:
            continue
        words += [param.opts[0]] if value is True else [param.opts[0], str(value)]
    return " ".join(shlex.quote(w) for w in words)


def _summary(figures: dict) -> str:
    names = [k[: -len("_greedy_accuracy")] for k in figures if k.endswith("_greedy_accuracy")]
    return f"n={figures['n']}  " + "  |  ".join(
        f"{name}: sampled {figures[f'{name}_accuracy']:.1%}, greedy {figures[f'{name}_greedy_accuracy']:.1%}"
        for name in names)

