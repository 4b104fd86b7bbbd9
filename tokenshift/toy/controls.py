"""Two models added to a trained pair without touching its files: an off-policy SFT control and a second RL seed.

`sft-offpolicy`: the base fine-tuned on reference solutions in a wording of their own (not the model's own
samples), stopped like `sft` at the first check within tolerance of `rl`'s sampled accuracy.
`rl-seed<N>`: the pair's GRPO run (its recorded settings) from the same base with another seed.
The pair's existing files are checked against the manifest first and never rewritten; the manifest gains
the new files' digests, their test accuracies and an `added_models` record.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from tokenshift.builders.inputs.arith import split_problems
from tokenshift.runtime.embedded_pair import BASE_NAME, MANIFEST_NAME, RL_NAME, SFT_OFFPOLICY_NAME, rl_seed_name
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.toy.evaluate import EvalConfig, evaluate_dirs, load_model_dir
from tokenshift.toy.grpo import GRPOSettings, train_grpo
from tokenshift.toy.model import save_model_dir
from tokenshift.toy.reference_style import reference_solution
from tokenshift.toy.sft import encode_example
from tokenshift.toy.sft_control import SFTControlSettings, rejection_sample, train_to_rl_accuracy
from tokenshift.toy.train import TORCH_THREADS, _versions, file_digests

DEFAULT_RL_SEED = 1


@dataclass(frozen=True)
class ControlsConfig:
    """The added models' settings; GRPO's come from the pair's manifest (the same run, another seed)."""

    rl_seed: int = DEFAULT_RL_SEED
    sft_offpolicy: SFTControlSettings = field(default_factory=SFTControlSettings)  # same stop rule as `sft`
    measure_sft_data: bool = True  # also measure how `sft`'s own data (rl's correct samples) differ from base


def quick_controls_config(rl_seed: int = DEFAULT_RL_SEED) -> ControlsConfig:
    """Seconds-long settings for tests (the GRPO run is whatever the pair recorded, e.g. `--quick`'s)."""
    return ControlsConfig(rl_seed=rl_seed, measure_sft_data=False,
                          sft_offpolicy=SFTControlSettings(n_prompts=16, max_steps=3, batch_size=4, check_every=2,
                                                           n_check=4, batch_generate=4, max_new_tokens=24))


def reference_examples(n_prompts: int) -> list[tuple[str, str]]:
    """(question, reference solution) for the first RL training prompts: the off-policy control's data."""
    return [(p.question, reference_solution(p)) for p in split_problems("train")[:n_prompts]]


@torch.no_grad()
def greedy_disagreement(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                        examples: list[tuple[str, str]]) -> dict:
    """Share of answer positions (answer tokens and the closing eos) where the model's teacher-forced
    argmax differs from the example's token: how far the data sit from the model's own habits."""
    model.eval()
    differ = total = 0
    for question, answer in examples:
        ids, n_prompt = encode_example(tokenizer, question, answer)
        logits = model(input_ids=torch.tensor([ids])).logits[0]
        predicted = logits[n_prompt - 1: len(ids) - 1].argmax(-1)
        target = torch.tensor(ids[n_prompt:])
        differ += int((predicted != target).sum())
        total += len(target)
    return {"n_examples": len(examples), "n_positions": total, "n_differ": differ,
            "share_differ": round(differ / total, 4) if total else None}


def check_pair_files(pair: Path) -> dict:
    """The pair's manifest, after checking every recorded file is on disk with its recorded size and sha256."""
    path = pair / MANIFEST_NAME
    if not path.is_file():
        raise TokenshiftError(f"--pair {pair} has no {MANIFEST_NAME}; pass a directory written by "
                              "`tokenshift toy-pair train --out DIR`")
    manifest = json.loads(path.read_text())
    for rel, recorded in file_digests(pair, sorted({r.split("/", 1)[0] for r in manifest["files"]})).items():
        if manifest["files"].get(rel) != recorded:
            raise TokenshiftError(f"{pair / rel} does not match the manifest's sha256/size; restore the pair "
                                  "(e.g. git checkout) before adding models to it")
    return manifest


def prepare_targets(pair: Path, names: list[str], manifest: dict, overwrite: bool) -> None:
    """Refuse to touch a recorded model dir; replace an added one only with overwrite."""
    recorded = {r.split("/", 1)[0] for r in manifest["files"]}
    added = set(manifest.get("added_models", {}).get("models", {}).values())
    for name in names:
        if name in recorded and name not in added:
            raise TokenshiftError(f"{pair / name} is one of the pair's trained models; choose another --rl-seed")
        if (pair / name).exists():
            if not overwrite:
                raise TokenshiftError(f"{pair / name} already exists; pass --overwrite to replace it")
            shutil.rmtree(pair / name)


def _grpo_settings(manifest: dict) -> GRPOSettings:
    recorded = dict(manifest["config"]["grpo"])
    recorded["checkpoint_fractions"] = ()  # the seed run ships its final model only
    return GRPOSettings(**recorded)


def add_controls(pair: Path, config: ControlsConfig, overwrite: bool = False, command: str | None = None) -> dict:
    """Train rl-seed<N> and sft-offpolicy from the pair's base, evaluate them, and extend the manifest."""
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    torch.set_num_threads(TORCH_THREADS)
    manifest = check_pair_files(pair)
    rl_name = rl_seed_name(config.rl_seed)
    if config.rl_seed == manifest["seed"]:
        raise TokenshiftError(f"--rl-seed {config.rl_seed} is the seed `rl` was trained with; pass another seed")
    prepare_targets(pair, [rl_name, SFT_OFFPOLICY_NAME], manifest, overwrite)
    seed, grpo = manifest["seed"], _grpo_settings(manifest)
    started, cpu_started, load_before = time.time(), time.process_time(), os.getloadavg()
    durations: dict[str, float] = {}

    model, tokenizer = load_model_dir(pair / BASE_NAME)
    torch.manual_seed(config.rl_seed)
    t = time.time()
    model, grpo_log, _ = train_grpo(model, tokenizer, grpo, config.rl_seed, pair)
    durations["rl_seed_grpo_s"] = time.time() - t
    rl_seed_dir = save_model_dir(model, tokenizer, pair / rl_name)

    base, tokenizer = load_model_dir(pair / BASE_NAME)
    rl, _ = load_model_dir(pair / RL_NAME)
    settings = config.sft_offpolicy
    examples = reference_examples(settings.n_prompts)
    t = time.time()
    base, record = train_to_rl_accuracy(base, rl, tokenizer, examples, settings, grpo.n_train_prompts, seed)
    durations["sft_offpolicy_s"] = time.time() - t
    offpolicy_dir = save_model_dir(base, tokenizer, pair / SFT_OFFPOLICY_NAME)
    durations["training_total_s"] = time.time() - started
    cpu_s = time.process_time() - cpu_started
    load_after_training = os.getloadavg()

    t = time.time()
    original, _ = load_model_dir(pair / BASE_NAME)
    data_vs_base = {"sft-offpolicy": greedy_disagreement(original, tokenizer, examples)}
    if config.measure_sft_data and manifest["config"].get("sft_control"):  # `sft`'s data, drawn again as
        recorded = SFTControlSettings(**manifest["config"]["sft_control"])  # its training drew them
        sft_examples, _ = rejection_sample(rl, tokenizer, grpo.n_train_prompts, recorded, seed)
        data_vs_base["sft"] = greedy_disagreement(original, tokenizer, sft_examples)
    durations["data_measure_s"] = time.time() - t

    figures: dict = {}
    if manifest["config"].get("eval"):
        t = time.time()
        names = {"sft_offpolicy": offpolicy_dir, f"rl_seed{config.rl_seed}": rl_seed_dir}
        figures = evaluate_dirs(names, EvalConfig(**manifest["config"]["eval"]))
        figures.update({f"{name}_path": path.name for name, path in names.items()})
        durations["eval_s"] = time.time() - t

    new_files = file_digests(pair, [rl_name, SFT_OFFPOLICY_NAME])
    manifest["files"].update(new_files)
    manifest["weights_mb"] = round(sum(r["bytes"] for r in manifest["files"].values()) / 1e6, 2)
    manifest["models"].update({"sft_offpolicy": SFT_OFFPOLICY_NAME, f"rl_seed{config.rl_seed}": rl_name})
    manifest["eval"].update({k: v for k, v in figures.items() if k not in ("n", "split", "seed")})
    manifest["added_models"] = {
        "description": "added to the trained pair without retraining it: off-policy SFT control and a second "
                       "GRPO seed, both from the shipped base",
        "command": command or " ".join(sys.argv), "argv": sys.argv,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "models": {"sft_offpolicy": SFT_OFFPOLICY_NAME, "rl_seed": rl_name},
        "durations_s": {k: round(v, 1) for k, v in durations.items()},
        "training_process_cpu_s": round(cpu_s, 1),
        "host": {"cpu_count": os.cpu_count(), "torch_threads": TORCH_THREADS, "platform": platform.platform(),
                 "niceness": os.nice(0), "loadavg_before": [round(x, 2) for x in load_before],
                 "loadavg_after_training": [round(x, 2) for x in load_after_training],
                 "note": "CPU shared with other jobs; wall times may be inflated"},
        "versions": _versions(),
        "config": {"rl_seed": config.rl_seed, "grpo": asdict(grpo), "sft_offpolicy": asdict(settings)},
        "sft_offpolicy": {"method": "SFT from base on reference solutions in a fixed wording of their own "
                                    "(tokenshift/toy/reference_style.py), not the model's own samples",
                          "seed": seed,
                          "data": {"source": "reference solutions",
                                   "prompts": f"toy-arith train[0:{len(examples)}] (the RL training prompts)",
                                   "n_examples": len(examples)},
                          "data_vs_base_greedy": data_vs_base, **record},
        "rl_seed": {"seed": config.rl_seed, "grpo_log": grpo_log},
    }
    (pair / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
