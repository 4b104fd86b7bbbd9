"""The dw-advantage experiment: plain GRPO (DAPO loss) vs high- and low-divergence boosts, from the
embedded base, same seeds and data order; sampled test accuracy every K steps.

The policy moves between generation and update: each generation batch (steps_per_generation × the
per-step batch) is split into steps_per_generation optimizer steps, so TRL keeps π_old's log-probs and
the k3 KL(π_old ‖ π_θ) of later steps is non-zero.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from transformers import TrainerCallback

from tokenshift.builders.inputs.arith import N_TEST, toy_problems
from tokenshift.builders.inputs.prompts import format_prompt
from tokenshift.runtime.embedded_pair import embedded_base_dir
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.toy.evaluate import EvalConfig, generate, load_model_dir, reward
from tokenshift.toy.grpo import correctness_reward
from tokenshift.training.trl_extra import require_trl
from tokenshift.training.weights import WeightConfig

ARMS = ("dapo", "high", "low")
Z95 = 1.959963984540054


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that determines the experiment; written verbatim to DIR/config.json."""

    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 30
    eval_every: int = 10
    eval_n: int = 200
    eval_seed: int = 0  # the same sampled problems and seeds for every arm, step and run
    alpha: float = 2000.0  # arm high: +alpha, arm low: -alpha (k3 KL values are ~1e-4..1e-3)
    scale: float = 1.0
    reference: str = "old"
    steps_per_generation: int = 4
    prompts_per_step: int = 8
    num_generations: int = 8
    learning_rate: float = 1e-4
    loss_type: str = "dapo"
    max_completion_length: int = 96
    n_train_prompts: int = 4000
    threads: int = 1
    arms: tuple[str, ...] = ARMS

    def __post_init__(self):
        if self.eval_n < 1 or self.steps < 1 or self.eval_every < 1:
            raise TokenshiftError("--steps, --eval-every and --eval-n must be >= 1")
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown:
            raise TokenshiftError(f"unknown arm {unknown[0]!r}; pick from {', '.join(ARMS)}")
        WeightConfig(reference=self.reference)  # validates the reference

    def weighting(self, arm: str) -> WeightConfig:
        """dapo: every weight 1; high: alpha > 0; low: alpha < 0."""
        alpha = {"dapo": 0.0, "high": abs(self.alpha), "low": -abs(self.alpha)}[arm]
        return WeightConfig(alpha=alpha, scale=self.scale if arm != "dapo" else 0.0, reference=self.reference)

    def eval_steps(self) -> list[int]:
        return sorted({0, self.steps, *range(self.eval_every, self.steps + 1, self.eval_every)})


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% by default)."""
    if n == 0:
        return float("nan"), float("nan")
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def eval_accuracy(model, tokenizer, config: ExperimentConfig) -> tuple[int, int]:
    """(correct, n) of one sampled answer per test problem; the caller's RNG state is left untouched."""
    problems = toy_problems("test", min(config.eval_n, N_TEST))
    prompts = [format_prompt(tokenizer, p["question"]) for p in problems]
    evaluation = EvalConfig(n=len(problems), seed=config.eval_seed)
    was_training = model.training
    model.eval()
    with torch.random.fork_rng(), torch.no_grad():
        texts = generate(model, tokenizer, prompts, sample=True, seed=evaluation.seed,
                         batch_size=evaluation.batch_size, max_new_tokens=evaluation.max_new_tokens)
    model.train(was_training)
    return int(sum(reward(p["answer"], t) for p, t in zip(problems, texts))), len(problems)


class EvalEvery(TrainerCallback):
    """Sampled test accuracy after every optimizer step in `steps`, appended to `rows`."""

    def __init__(self, steps: list[int], config: ExperimentConfig, tokenizer, rows: list[dict], run: dict):
        self.steps, self.config, self.tokenizer, self.rows, self.run = set(steps), config, tokenizer, rows, run

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step in self.steps:
            correct, n = eval_accuracy(model, self.tokenizer, self.config)
            self.rows.append(accuracy_row(self.run, state.global_step, correct, n))
        return control


def accuracy_row(run: dict, step: int, correct: int, n: int) -> dict:
    lo, hi = wilson(correct, n)
    return {**run, "step": step, "n": n, "correct": correct, "accuracy": correct / n, "ci95_low": lo, "ci95_high": hi}


def train_arm(config: ExperimentConfig, arm: str, seed: int, base_dir: Path, rows: list[dict]) -> list[dict]:
    """One GRPO run of `arm` from the base in `base_dir`; appends accuracy rows; returns the trainer's log."""
    from datasets import Dataset

    # TRL, an optional dependency, loads only when an arm trains
    from tokenshift.training.dw_grpo import DivergenceWeightedGRPOTrainer

    trl = require_trl()
    model, tokenizer = load_model_dir(base_dir)
    problems = toy_problems("train", config.n_train_prompts)
    dataset = Dataset.from_list([{"prompt": format_prompt(tokenizer, p["question"]), "answer": p["answer"]}
                                 for p in problems])
    run = {"arm": arm, "seed": seed}
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory(prefix="dw-advantage-") as scratch:
        args = trl.GRPOConfig(
            output_dir=scratch, max_steps=config.steps,
            per_device_train_batch_size=config.prompts_per_step * config.num_generations,
            num_generations=config.num_generations, steps_per_generation=config.steps_per_generation,
            num_iterations=1, gradient_accumulation_steps=1, learning_rate=config.learning_rate,
            lr_scheduler_type="constant", warmup_steps=0, beta=0.0, loss_type=config.loss_type,
            temperature=1.0, top_p=1.0, top_k=0, max_completion_length=config.max_completion_length,
            logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, bf16=False, fp16=False,
            seed=seed, data_seed=seed, dataloader_num_workers=0, disable_tqdm=True)
        evaluator = EvalEvery([s for s in config.eval_steps() if s > 0], config, tokenizer, rows, run)
        common = dict(model=model, reward_funcs=correctness_reward, args=args, train_dataset=dataset,
                      processing_class=tokenizer, callbacks=[evaluator])
        if arm == "dapo":  # plain TRL, no hook at all
            trainer = trl.GRPOTrainer(**common)
        else:
            trainer = DivergenceWeightedGRPOTrainer(**common, weighting=config.weighting(arm))
        trainer.train()
    return [{**run, **entry} for entry in trainer.state.log_history]


SETTINGS = "experiment.json"


def settings_json(config: ExperimentConfig) -> str:
    import json

    return json.dumps(asdict(config), indent=2) + "\n"


def write_settings(out: Path, config: ExperimentConfig) -> None:
    """Record the config a directory's runs belong to (checked before resuming into it)."""
    (out / SETTINGS).write_text(settings_json(config))


def check_out(out: Path, config: ExperimentConfig, overwrite: bool) -> None:
    """Accept an empty or missing DIR, or one started with this exact config (resume); --overwrite clears runs."""
    import shutil

    if out.exists() and not out.is_dir():
        raise TokenshiftError(f"--out {out} is a file; pass a directory path")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if overwrite:
        shutil.rmtree(out / "runs", ignore_errors=True)
        return
    settings = out / SETTINGS
    if not settings.is_file():
        raise TokenshiftError(f"--out {out} is not empty; pass --overwrite or another directory")
    if settings.read_text() != settings_json(config):
        raise TokenshiftError(f"--out {out} holds an experiment with other settings; pass --overwrite or another "
                              f"directory")


def run_path(out: Path, arm: str, seed: int) -> Path:
    return out / "runs" / f"{arm}-seed{seed}.csv"


def run_one(config: ExperimentConfig, arm: str, seed: int, out: Path) -> Path:
    """Train and evaluate one (arm, seed); its accuracy rows (with wall and CPU seconds) go to runs/ atomically."""
    import pandas as pd


    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    torch.set_num_threads(config.threads)
    wall, cpu = time.time(), time.process_time()
    base_dir = embedded_base_dir()
    model, tokenizer = load_model_dir(base_dir)
    rows = [accuracy_row({"arm": arm, "seed": seed}, 0, *eval_accuracy(model, tokenizer, config))]
    log = train_arm(config, arm, seed, base_dir, rows)
    frame = pd.DataFrame(rows).assign(run_wall_s=round(time.time() - wall, 1),
                                      run_cpu_s=round(time.process_time() - cpu, 1))
    path = run_path(out, arm, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(log).to_csv(path.with_suffix(".log.csv"), index=False)
    frame.to_csv(path.with_suffix(".tmp"), index=False)
    os.replace(path.with_suffix(".tmp"), path)
    return path


def run_experiment(config: ExperimentConfig, out: Path, progress=print) -> dict:
    """Every arm × seed not already in out/runs/ (a killed run resumes), then the tables and the figure:
    accuracy.csv, summary.csv, final.csv, train_log.csv, accuracy.png, config.json."""
    import json

    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    write_settings(out, config)
    started, load_before = time.time(), os.getloadavg()
    for seed in config.seeds:
        for arm in config.arms:
            if run_path(out, arm, seed).exists():
                continue
            path = run_one(config, arm, seed, out)
            last = pd.read_csv(path).iloc[-1]
            progress(f"{arm} seed {seed}: {last.run_wall_s:.0f} s wall, {last.run_cpu_s:.0f} s CPU, "
                     f"final accuracy {last.accuracy:.3f}")
    runs = [(arm, seed) for seed in config.seeds for arm in config.arms]
    frames = [pd.read_csv(run_path(out, arm, seed)) for arm, seed in runs]
    accuracy = pd.concat(frames).sort_values(["arm", "seed", "step"], kind="stable").reset_index(drop=True)
    summary, final = summarise(accuracy)
    accuracy.to_csv(out / "accuracy.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    final.to_csv(out / "final.csv", index=False)
    pd.concat([pd.read_csv(run_path(out, arm, seed).with_suffix(".log.csv")) for arm, seed in runs]).to_csv(
        out / "train_log.csv", index=False)
    plot_accuracy(summary, accuracy, out / "accuracy.png", config)
    per_run = accuracy.groupby(["arm", "seed"])[["run_wall_s", "run_cpu_s"]].first()
    meta = {"config": asdict(config), "wall_s": round(time.time() - started, 1),
            "runs_wall_s": round(float(per_run.run_wall_s.sum()), 1),
            "runs_cpu_s": round(float(per_run.run_cpu_s.sum()), 1),
            "host": {"cpu_count": os.cpu_count(), "torch_threads": config.threads,
                     "loadavg_1m_before": round(load_before[0], 2),
                     "loadavg_1m_after": round(os.getloadavg()[0], 2)}}
    (out / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def summarise(accuracy):
    """Per arm and step: mean, sample std, min, max over seeds; the final step's row per arm."""
    grouped = accuracy.groupby(["arm", "step"], sort=True)["accuracy"]
    summary = grouped.agg(["mean", "std", "min", "max", "count"]).reset_index()
    summary = summary.rename(columns={"mean": "accuracy_mean", "std": "accuracy_std", "min": "accuracy_min",
                                      "max": "accuracy_max", "count": "n_seeds"})
    final = summary[summary.step == summary.step.max()].reset_index(drop=True)
    return summary, final


def plot_accuracy(summary, accuracy, path: Path, config: ExperimentConfig) -> None:
    """Mean sampled accuracy vs step per arm, band = min–max over seeds, thin lines = single seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"dapo": "black", "high": "tab:red", "low": "tab:blue"}
    labels = {"dapo": "DAPO (plain GRPO)", "high": f"high-KL boost (α=+{abs(config.alpha):g}, s={config.scale:g})",
              "low": f"low-KL boost (α=−{abs(config.alpha):g}, s={config.scale:g})"}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for arm, g in summary.groupby("arm", sort=False):
        ax.plot(g.step, 100 * g.accuracy_mean, "-o", color=colors[arm], label=labels[arm])
        ax.fill_between(g.step, 100 * g.accuracy_min, 100 * g.accuracy_max, color=colors[arm], alpha=0.15)
        for _, run in accuracy[accuracy.arm == arm].groupby("seed"):
            ax.plot(run.step, 100 * run.accuracy, "-", color=colors[arm], alpha=0.25, lw=0.8)
    ax.set_xlabel("GRPO optimizer step")
    ax.set_ylabel(f"sampled accuracy, toy test (n={config.eval_n}) (%)")
    ax.set_title(f"Divergence-weighted advantage, {len(config.seeds)} seeds (band: min–max over seeds)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def with_overrides(config: ExperimentConfig, **overrides) -> ExperimentConfig:
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})
