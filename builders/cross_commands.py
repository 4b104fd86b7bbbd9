"""The `tokenshift cross-sample` command: flags → a frozen CrossSampleConfig → run_cross_sample."""

from __future__ import annotations

import click

from tokenshift.schemas.values import BUDGET_UNITS, DIRECTION_CHOICES, PROTOCOLS


@click.command("cross-sample")
@click.argument("build_dir", metavar="DIR")
@click.option("--direction", type=click.Choice(DIRECTION_CHOICES), default="both", show_default=True,
              help="forward: base drives, RL intervenes; reverse: RL drives, base intervenes.")
@click.option("--thresholds", default="0.05,0.1,0.2", show_default=True,
              help="JS thresholds in nats, in [0, ln 2] (protocol threshold).")
@click.option("--budgets", default="0,1,2,4,8,16,32,inf", show_default=True,
              help="Most interventions per answer; inf = unlimited. Resample: steps 0..max.")
@click.option("--budget-unit", type=click.Choice(BUDGET_UNITS), default="tokens", show_default=True,
              help="fraction: a budget b allows floor(b x max_new_tokens) interventions.")
@click.option("--samples", type=int, default=None, help="Answers per prompt per setting. Default: the build's.")
@click.option("--seed", type=int, default=None, help="Default: the build's seed (budget 0 = the build's answers).")
@click.option("--rl-model", default=None, help="RL model paired with base. Default: the build's first.")
@click.option("--protocol", type=click.Choice(PROTOCOLS), default="threshold", show_default=True)
@click.option("--shard", default="0/1", show_default=True, metavar="I/N",
              help="Run only the build's prompt shards k with k % N == I (N processes may share DIR; "
                   "the one finishing the last shard writes the manifest).")
@click.option("--ray", "ray", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Run the shards on a Ray cluster (as for `tokenshift build --ray`).")
@click.option("--ray-workers", type=int, default=None, metavar="N",
              help="Ray actors (default: one per GPU for a cuda build, else one per CPU).")
@click.option("--trust-remote-code", is_flag=True,
              help="Run model code from the checkpoints (off by default; never taken from the build's manifest).")
@click.option("--overwrite", is_flag=True, help="Replace cross_samples made with another config.")
@click.option("--quiet", is_flag=True, help="No progress bars and no plan.")
@click.option("--plan", "plan_only", is_flag=True, help="Print the cost plan (settings, answers, token bounds) "
              "and stop; loads no model.")
@click.option("--tokens-per-second", type=float, default=None, metavar="R",
              help="Decoded tokens per second to expect: the plan adds a wall-time estimate.")
def cross_sample(build_dir: str, thresholds: str, budgets: str, overwrite: bool, quiet: bool,
                 trust_remote_code: bool, plan_only: bool, tokens_per_second: float | None, **options) -> None:
    """Swap a budget of token decisions between base and RL in a build's prompts; adds table cross_samples."""
    from tokenshift.builders.cross_sample import (CrossSampleConfig, parse_numbers, run_cross_sample,
                                                  unfinished_shards)
    from tokenshift.builders.plan import check_speed, cross_sample_plan, run_planned

    config = CrossSampleConfig(out=build_dir, thresholds=parse_numbers(thresholds, "--thresholds"),
                               budgets=parse_numbers(budgets, "--budgets"), **options)
    check_speed(tokens_per_second)
    plan = cross_sample_plan(config, overwrite)
    if plan_only:
        click.echo("\n".join(plan.lines(tokens_per_second)))
        return
    out = run_planned(plan, lambda: run_cross_sample(config, overwrite=overwrite, progress=not quiet,
                                                     trust_remote_code=trust_remote_code),
                      tokens_per_second, progress=not quiet)
    remaining = unfinished_shards(out)
    if remaining:
        click.echo(f"cross-sampled shards {config.shard} of {out}; {len(remaining)} shard(s) remain: run the "
                   "other --shard values (the last to finish records cross_samples in the manifest)")
    else:
        from tokenshift.builders.commands import ungraded_note

        click.echo(f"cross_samples written to {out}{ungraded_note(out)}")
