"""`tokenshift experiment`: training probes run end to end on the embedded pair."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("experiment")
def experiment() -> None:
    """Training experiments on the embedded toy pair (needs TRL: pip install 'tokenshift[train]')."""


@experiment.command("dw-advantage")
@click.option("--seeds", default=3, show_default=True, type=click.IntRange(min=1),
              help="Runs per arm, seeds 0..N-1 (the same seeds and data order for every arm).")
@click.option("--steps", default=30, show_default=True, type=click.IntRange(min=1), help="GRPO optimizer steps per run.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Output directory.")
@click.option("--eval-every", default=10, show_default=True, type=click.IntRange(min=1),
              help="Evaluate sampled accuracy every K steps (and at the last step).")
@click.option("--eval-n", default=200, show_default=True, type=click.IntRange(min=1, max=500),
              help="Toy test problems per evaluation (one sampled answer each).")
@click.option("--alpha", default=2000.0, show_default=True, type=float,
              help="|alpha| of the weights; arm high uses +alpha, arm low -alpha.")
@click.option("--scale", default=1.0, show_default=True, type=float, help="s in w = 1 + s(sigmoid(alpha D) - 1/2).")
@click.option("--reference", default="old", show_default=True, type=click.Choice(["old", "base"]),
              help="D: k3 KL(pi_old || pi_theta) on the sampled token, or full-vocabulary JS(base, pi_theta).")
@click.option("--steps-per-generation", default=4, show_default=True, type=click.IntRange(min=2),
              help="Optimizer steps per generation batch (>= 2, so the policy moves between generation and update).")
@click.option("--overwrite", is_flag=True, help="Discard the runs already in --out.")
def dw_advantage(seeds: int, steps: int, out: Path, eval_every: int, eval_n: int, alpha: float, scale: float,
                 reference: str, steps_per_generation: int, overwrite: bool) -> None:
    """Plain GRPO (DAPO loss) vs high- and low-divergence advantage boosts from the embedded base.

    Each finished (arm, seed) run is kept in DIR/runs/; rerunning the same command after a kill resumes.
    """
    # torch, transformers and TRL load when the experiment runs
    from tokenshift.toy.experiment import ExperimentConfig, check_out, run_experiment
    from tokenshift.training.trl_extra import require_trl

    require_trl()
    config = ExperimentConfig(seeds=tuple(range(seeds)), steps=steps, eval_every=eval_every, eval_n=eval_n,
                              alpha=alpha, scale=scale, reference=reference,
                              steps_per_generation=steps_per_generation)
    check_out(out, config, overwrite)
    meta = run_experiment(config, out, progress=click.echo)
    final = (out / "final.csv").read_text()
    click.echo(f"wrote {out} in {meta['wall_s']:.0f} s\n{final}")
