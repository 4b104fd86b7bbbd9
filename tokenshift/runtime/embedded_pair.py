"""Where the embedded toy pair lives inside the package, and how its model directories are named."""

from __future__ import annotations

import re
from pathlib import Path

EMBEDDED_PAIR_DIR = Path(__file__).resolve().parent.parent / "toy" / "pair"
BASE_NAME, RL_NAME, SFT_NAME, MANIFEST_NAME = "base", "rl", "sft", "manifest.json"
_CHECKPOINT = re.compile(r"^rl-step-(\d+)$")


def embedded_base_dir() -> Path:
    return EMBEDDED_PAIR_DIR / BASE_NAME


def embedded_rl_dir() -> Path:
    return EMBEDDED_PAIR_DIR / RL_NAME


def embedded_sft_dir() -> Path:
    """The SFT control: the base fine-tuned on the RL model's correct samples (not an RL checkpoint)."""
    return EMBEDDED_PAIR_DIR / SFT_NAME


def embedded_manifest() -> Path:
    return EMBEDDED_PAIR_DIR / MANIFEST_NAME


def rl_checkpoints(pair_dir: Path) -> list[Path]:
    """Intermediate RL model dirs of a pair, ordered by step, then the final RL model last."""
    steps = sorted((int(m.group(1)), p) for p in pair_dir.glob("rl-step-*")
                   if p.is_dir() and (m := _CHECKPOINT.match(p.name)))
    final = [pair_dir / RL_NAME] if (pair_dir / RL_NAME).is_dir() else []
    return [p for _, p in steps] + final


def embedded_rl_checkpoints() -> list[Path]:
    """The embedded RL checkpoints (25%, 50%, 75% of training), final RL model last."""
    return rl_checkpoints(EMBEDDED_PAIR_DIR)


SFT_OFFPOLICY_NAME = "sft-offpolicy"


def rl_seed_name(seed: int) -> str:
    """Directory of the pair's GRPO run repeated with another seed."""
    return f"rl-seed{seed}"


def embedded_sft_offpolicy_dir() -> Path:
    """The off-policy SFT control: the base fine-tuned on reference solutions in a wording of their own."""
    return EMBEDDED_PAIR_DIR / SFT_OFFPOLICY_NAME


def embedded_rl_seed_dir(seed: int = 1) -> Path:
    """The pair's GRPO run with another seed (the shipped one: seed 1)."""
    return EMBEDDED_PAIR_DIR / rl_seed_name(seed)
