"""The `tokenshift cross-sample` command: flags → a frozen CrossSampleConfig → run_cross_sample."""

from __future__ import annotations

import math

import click

from tokenshift.builders.commands import ungraded_note
from tokenshift.builders.cross_sampling.config import (
    DEFAULT_THRESHOLDS,
    DELTA_GE_THRESHOLDS,
    CrossSampleConfig,
    default_thresholds,
    parse_numbers,
)
from tokenshift.runtime.arguments import default_of
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.meter import run_planned
from tokenshift.schemas.values import BUDGET_UNITS, CRITERIA, DIRECTION_CHOICES, MIX_SPACES, PROTOCOLS, SIGNS


def _default(name: str):
    """The default of CrossSampleConfig's field `name` (the option's default is the config's)."""
    return default_of(CrossSampleConfig, name)


def _listed(values) -> str:
    """(0.05, 0.1, inf) as the flags write it: '0.05,0.1,inf'."""
    return ",".join("inf" if math.isinf(v) else f"{v:g}" for v in values)


@click.command("cross-sample")
@click.argument("build_dir", metavar="DIR")
@click.option("--direction", type=click.Choice(DIRECTION_CHOICES), default=_default("direction"), show_default=True,
              help="forward: base drives, RL intervenes; reverse: RL drives, base intervenes.")
@click.option("--criterion", default=_default("criterion"), show_default=True, metavar="|".join(CRITERIA),
              help="What selects a position: js, kl = KL(driver || other), kl_reverse = KL(other || driver), "
                   "entropy (the driver's), each >= a threshold over the full vocabulary in float32; "
                   "delta_logp = log p_other(t) - log p_driver(t) of the token t the driver draws, <= or >= a "
                   "threshold (--sign); top1_differs: the two argmaxes differ (no threshold); all: every "
                   "position (no threshold); random: --rate or --match.")
@click.option("--thresholds", default=None,
              help="Thresholds of the criterion (protocol threshold): js in nats of JS, in [0, ln 2] "
                   f"(default {_listed(DEFAULT_THRESHOLDS['js'])}); kl and kl_reverse in nats of KL, >= 0 "
                   f"(default {_listed(DEFAULT_THRESHOLDS['kl'])}); entropy in nats of entropy, in [0, ln V] "
                   f"(default {_listed(DEFAULT_THRESHOLDS['entropy'])}); delta_logp in nats, any finite "
                   f"(default {_listed(DEFAULT_THRESHOLDS['delta_logp'])} with --sign le, "
                   f"{_listed(DELTA_GE_THRESHOLDS)} with --sign ge). Not for top1_differs, all, random.")
@click.option("--sign", type=click.Choice(SIGNS), default=None,
              help="--criterion delta_logp (or random --match delta_logp): le selects where delta log p <= "
                   "threshold (the other model disfavours the driver's token; the default), ge where >= threshold.")
@click.option("--budgets", default=None,
              help=f"Most interventions per answer; inf = unlimited (default {_listed(_default('budgets'))}). "
                   "Resample: steps 0..max. Not with --match.")
@click.option("--mix-weight", type=float, default=_default("mix_weight"), show_default=True,
              help="W: at a selected position sample from (1 - W) p_driver + W p_other, W in (0, 1] (1 = swap); "
                   "with --mix-space log any finite W.")
@click.option("--mix-space", type=click.Choice(MIX_SPACES), default=_default("mix_space"), show_default=True,
              help="log: sample from softmax((1 - W) log p_driver + W log p_other) over the full vocabulary, then "
                   "temperature and top-p; W = 1 is the other model's token, W > 1 extrapolates past it, W = 0 "
                   "is the driver's.")
@click.option("--rate", default=None, metavar="P[,P...]",
              help="--criterion random: intervene at each position with probability P, in [0, 1].")
@click.option("--match", default=None, metavar="CRITERION",
              help="--criterion random: intervene at the per-answer rate CRITERION's finished run realised at "
                   "each of its settings (same effective fraction of swapped tokens).")
@click.option("--control-seeds", type=int, default=_default("control_seeds"), show_default=True, metavar="N",
              help="--criterion random: N repetitions, each with its own selection draws.")
@click.option("--budget-unit", type=click.Choice(BUDGET_UNITS), default=_default("budget_unit"), show_default=True,
              help="fraction: a budget b allows floor(b x max_new_tokens) interventions.")
@click.option("--samples", type=int, default=None, help="Answers per prompt per setting. Default: the build's.")
@click.option("--seed", type=int, default=None,
              help="Default: the build's seed. With it, the build's --samples and the HF engine, budget 0 draws the "
                   "build's answers, so it is read from the build (checked against every token decoded anyway), "
                   "not decoded again.")
@click.option("--rl-model", default=None, help="RL model paired with base. Default: the build's first.")
@click.option("--protocol", type=click.Choice(PROTOCOLS), default=_default("protocol"), show_default=True)
@click.option("--shard", default=_default("shard"), show_default=True, metavar="I/N",
              help="Run only the build's prompt shards k with k % N == I (N processes may share DIR; "
                   "the one finishing the last shard writes the manifest).")
@click.option("--ray", "ray", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Run the shards on a Ray cluster (as for `tokenshift build --ray`).")
@click.option("--ray-workers", type=int, default=None, metavar="N",
              help="Ray actors (default: one per GPU for a cuda build, else one per CPU).")
@click.option("--max-branches", type=int, default=_default("max_branches"), show_default=True, metavar="N",
              help="Decode up to N settings of a batch as one tree, each prefix they share once (the same rows; "
                   "holds up to N copies of the batch's KV caches); 1 decodes setting by setting.")
@click.option("--trust-remote-code", is_flag=True,
              help="Run model code from the checkpoints (off by default; never taken from the build's manifest).")
@click.option("--overwrite", is_flag=True,
              help="Replace this run (and any run that wrote the same settings with other flags).")
@click.option("--quiet", is_flag=True, help="No progress bars and no plan.")
@click.option("--plan", "plan_only", is_flag=True, help="Print the cost plan (settings, answers, token bounds) "
              "and stop; loads no model.")
@click.option("--tokens-per-second", type=float, default=None, metavar="R",
              help="Decoded tokens per second to expect: the plan adds a wall-time estimate.")
def cross_sample(build_dir: str, thresholds: str | None, budgets: str | None, rate: str | None, overwrite: bool,
                 quiet: bool, trust_remote_code: bool, plan_only: bool, tokens_per_second: float | None,
                 **options) -> None:
    """Swap (or mix) a budget of token decisions between base and RL in a build's prompts.

    Each run appends its rows, with its settings as columns, to table cross_samples; the same flags
    again resume or change nothing.
    """
    # torch and transformers load with the cross-sampling machinery, only when the command runs
    from tokenshift.builders.cross_sampling.runner import load_build, resolve, run_cross_sample, unfinished_shards
    from tokenshift.builders.plan import check_speed, cross_sample_plan

    config = cross_sample_config(build_dir, thresholds, budgets, rate, **options)
    check_speed(tokens_per_second)
    plan = cross_sample_plan(config, overwrite)
    if plan_only:
        click.echo("\n".join(plan.lines(tokens_per_second)))
        return
    out = run_planned(plan, lambda: run_cross_sample(config, overwrite=overwrite, progress=not quiet,
                                                     trust_remote_code=trust_remote_code),
                      tokens_per_second, progress=not quiet)
    remaining = unfinished_shards(out, resolve(config, load_build(out)))
    if remaining:
        click.echo(f"cross-sampled shards {config.shard} of {out}; {len(remaining)} shard(s) remain: run the "
                   "other --shard values (the last to finish records cross_samples in the manifest)")
    else:
        click.echo(f"cross_samples written to {out}{ungraded_note(out)}")


def cross_sample_config(build_dir: str, thresholds: str | None, budgets: str | None, rate: str | None,
                        **options) -> CrossSampleConfig:
    """The CrossSampleConfig of `tokenshift cross-sample`'s parsed flags; the lists left out take the config's
    defaults (thresholds: the criterion's, recorded so the run's identity names them)."""
    if budgets is not None and options["match"] is not None:
        raise TokenshiftError("--budgets does not apply to --match (the control takes the matched settings): drop it")
    if thresholds is None:
        chosen = (default_thresholds(options["criterion"], options["sign"]) if options["protocol"] == "threshold"
                  else None)
    else:
        chosen = parse_numbers(thresholds, "--thresholds")
    return CrossSampleConfig(out=build_dir, thresholds=chosen,
                             budgets=_default("budgets") if budgets is None else parse_numbers(budgets, "--budgets"),
                             rate=_default("rate") if rate is None else parse_numbers(rate, "--rate"), **options)
