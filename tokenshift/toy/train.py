"""Train the toy pair end to end (tokenizer -> SFT base -> GRPO rl -> SFT control -> eval) and write its manifest."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from tokenshift.builders.inputs.arith import N_TEST
from tokenshift.runtime.embedded_pair import BASE_NAME, MANIFEST_NAME, RL_NAME, SFT_NAME, rl_checkpoints
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.toy.evaluate import EvalConfig, evaluate_dirs, load_model_dir, sampled_accuracy
from tokenshift.toy.grpo import GRPOSettings, train_grpo
from tokenshift.toy.model import ModelConfig, n_parameters, new_model, save_model_dir
from tokenshift.toy.sft import SFTConfig, train_sft
from tokenshift.toy.sft_control import SFTControlSettings, train_sft_control
from tokenshift.toy.tokenizer import TokenizerConfig, train_tokenizer

DEFAULT_SEED = 0
TORCH_THREADS = 1  # on 2 shared cores, 2 threads ran up to 3x slower than 1 (each waits on the busy core)
LIBRARIES = ("torch", "transformers", "trl", "tokenizers", "accelerate", "datasets", "math-verify", "safetensors")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines the pair; recorded verbatim in manifest.json."""

    seed: int = DEFAULT_SEED
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    grpo: GRPOSettings = field(default_factory=GRPOSettings)
    sft_control: SFTControlSettings | None = field(default_factory=SFTControlSettings)  # None: no sft model
    eval: EvalConfig | None = field(default_factory=lambda: EvalConfig(n=N_TEST))  # the whole test split; None: skip


def quick_config(seed: int = DEFAULT_SEED) -> TrainConfig:
    """A minuscule run (seconds) that exercises every code path; for tests, not for use."""
    return TrainConfig(
        seed=seed, model=ModelConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=512),
        sft=SFTConfig(steps=4, batch_size=8, warmup_steps=1),
        grpo=GRPOSettings(steps=2, prompts_per_step=2, num_generations=4, max_completion_length=24,
                          n_train_prompts=16, checkpoint_fractions=(0.5,), logging_steps=1, shift_every=1),
        sft_control=None,  # a seconds-old RL model answers nothing right: no data to fine-tune on
        eval=EvalConfig(n=4, batch_size=4, max_new_tokens=24, seed=seed))


def with_overrides(config: TrainConfig, sft_steps: int | None = None, grpo_steps: int | None = None,
                   eval_n: int | None = None, **fork_mix: float | None) -> TrainConfig:
    """Apply command-line overrides (fork_mix: ForkMix fields); eval_n=0 skips the evaluation."""
    mix = replace(config.sft.fork_mix, **{k: v for k, v in fork_mix.items() if v is not None})
    sft = replace(config.sft, fork_mix=mix, **({"steps": sft_steps} if sft_steps is not None else {}))
    grpo = replace(config.grpo, **({"steps": grpo_steps} if grpo_steps is not None else {}))
    ev = config.eval
    if eval_n is not None:
        ev = None if eval_n <= 0 else replace(ev or EvalConfig(seed=config.seed), n=eval_n)
    return replace(config, sft=sft, grpo=grpo, eval=ev)


def prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty output dir unless overwrite; then remove only a previous pair's entries."""
    if out.exists() and not out.is_dir():
        raise TokenshiftError(f"--out {out} is a file; pass a directory path")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise TokenshiftError(f"--out {out} is not empty; pass --overwrite to replace the pair in it")
        for entry in [out / BASE_NAME, out / RL_NAME, out / SFT_NAME, *out.glob("rl-step-*")]:
            if entry.is_dir():
                shutil.rmtree(entry)
        (out / MANIFEST_NAME).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _versions() -> dict[str, str]:
    return {"python": platform.python_version(), **{lib: version(lib) for lib in LIBRARIES}}


def _dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def file_digests(out: Path, model_dirs: list[str]) -> dict[str, dict]:
    """sha256 and size of every file in the pair's model directories, keyed by path relative to `out`."""
    return {f.relative_to(out).as_posix(): {"sha256": hashlib.sha256(f.read_bytes()).hexdigest(),
                                            "bytes": f.stat().st_size}
            for d in model_dirs for f in sorted((out / d).rglob("*")) if f.is_file()}


def train_pair(out: Path, config: TrainConfig, command: str | None = None) -> dict:
    """Tokenizer, SFT base, GRPO rl with intermediates, optional eval; returns the written manifest."""
    import torch

    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    torch.set_num_threads(TORCH_THREADS)
    started, cpu_started, load_before = time.time(), time.process_time(), os.getloadavg()
    durations: dict[str, float] = {}

    t = time.time()
    tokenizer = train_tokenizer(config.tokenizer)
    durations["tokenizer_s"] = time.time() - t

    torch.manual_seed(config.seed)
    model = new_model(config.model, tokenizer)
    t = time.time()
    sft_log = train_sft(model, tokenizer, config.sft, config.seed)
    durations["sft_s"] = time.time() - t
    base_dir = save_model_dir(model, tokenizer, out / BASE_NAME)

    model, tokenizer = load_model_dir(base_dir)  # RL starts from exactly the shipped base
    torch.manual_seed(config.seed)
    t = time.time()
    model, grpo_log, _ = train_grpo(model, tokenizer, config.grpo, config.seed, out)
    durations["grpo_s"] = time.time() - t
    rl_dir = save_model_dir(model, tokenizer, out / RL_NAME)
    checkpoints = rl_checkpoints(out)

    sft_record, dirs = None, {"base": base_dir, "rl": rl_dir}
    if config.sft_control is not None:
        control, _ = load_model_dir(base_dir)  # from exactly the shipped base, like RL
        t = time.time()
        control, sft_record = train_sft_control(control, model, tokenizer, config.sft_control,
                                                config.grpo.n_train_prompts, config.seed)
        durations["sft_control_s"] = time.time() - t
        dirs["sft"] = save_model_dir(control, tokenizer, out / SFT_NAME)

    figures: dict = {}
    if config.eval is not None:
        t = time.time()
        figures = evaluate_dirs(dirs, config.eval)
        figures["rl_checkpoints_accuracy"] = {p.name: sampled_accuracy(p, config.eval) for p in checkpoints[:-1]}
        durations["eval_s"] = time.time() - t
    durations["total_s"] = time.time() - started
    cpu_s = time.process_time() - cpu_started
    model_dirs = [BASE_NAME, *[c.name for c in checkpoints], *([SFT_NAME] if sft_record else [])]

    manifest = {
        "description": ("Embedded toy base/RL pair: SFT base with planted slips (start, middle, end), GRPO (TRL) rl, "
                        "SFT control (rejection sampling from rl), toy-arith benchmark."),
        "command": command or " ".join(sys.argv),
        "argv": sys.argv,
        "seed": config.seed,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "durations_s": {k: round(v, 1) for k, v in durations.items()},
        "process_cpu_s": round(cpu_s, 1),
        "host": {"cpu_count": os.cpu_count(), "torch_threads": TORCH_THREADS, "platform": platform.platform(),
                 "niceness": os.nice(0),
                 "loadavg_1m_before": round(load_before[0], 2), "loadavg_1m_after": round(os.getloadavg()[0], 2),
                 "note": "CPU shared with other jobs; wall times may be inflated"},
        "versions": _versions(),
        "config": asdict(config),
        "n_parameters": n_parameters(model),
        "models": {"base": BASE_NAME, "rl": RL_NAME, "rl_checkpoints": [p.name for p in checkpoints],
                   **({"sft": SFT_NAME} if sft_record else {})},
        "weights_mb": round(sum(_dir_mb(out / p) for p in model_dirs), 2),
        "files": file_digests(out, model_dirs),
        "eval": figures,
        "sft_control": sft_record and {"method": "rejection sampling: SFT from base on the rl model's correct "
                                                 "samples on its training prompts",
                                       "command": command or " ".join(sys.argv), "seed": config.seed,
                                       **sft_record},
        "sft_log": sft_log,
        "grpo_log": grpo_log,
    }
    if figures:  # paths inside the manifest are relative to the pair dir
        figures.update({f"{name}_path": Path(path).name for name, path in dirs.items()})
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
