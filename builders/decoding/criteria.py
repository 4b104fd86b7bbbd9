"""Selection criteria: where the other model intervenes. One function per criterion, registered by name.

Each function takes the step's two log-softmaxes over the full vocabulary (float32, as the scorer
computes them), their JS divergence and the driver's drawn token, and returns one score per row; a
threshold criterion selects where score >= threshold (sign 'ge') or <= threshold (sign 'le'). The
names are schemas/values.py's CRITERIA (the CLI, the table and validation read them there); 'random'
selects by its own draws and has no score function here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from tokenshift.builders.scoring.score import entropy, kl_divergence
from tokenshift.schemas.values import CRITERIA

Score = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
SCORES: dict[str, Score] = {}  # criterion -> score(lp_driver, lp_other, js, driver_token)
RANDOM = "random"


def criterion(name: str) -> Callable[[Score], Score]:
    """Register the score function of criterion `name` (one of schemas/values.py's CRITERIA)."""
    if name not in CRITERIA or name == RANDOM:
        raise ValueError(f"criterion {name!r} is not in schemas/values.py CRITERIA: add it there first")

    def register(fn: Score) -> Score:
        SCORES[name] = fn
        return fn
    return register


@criterion("js")
def js(lp_d, lp_o, js, token_d):
    """JS(p_driver, p_other) in nats."""
    return js


@criterion("kl")
def kl(lp_d, lp_o, js, token_d):
    """KL(p_driver ‖ p_other) in nats."""
    return kl_divergence(lp_d, lp_o)


@criterion("kl_reverse")
def kl_reverse(lp_d, lp_o, js, token_d):
    """KL(p_other ‖ p_driver) in nats."""
    return kl_divergence(lp_o, lp_d)


@criterion("entropy")
def driver_entropy(lp_d, lp_o, js, token_d):
    """The driver's entropy in nats."""
    return entropy(lp_d)


@criterion("delta_logp")
def delta_logp(lp_d, lp_o, js, token_d):
    """log p_other(t) − log p_driver(t) of the token t the driver draws at this step (same Exp(1) draw, so
    selecting never changes the driver's own token); NaN (never selected) for an id outside the vocabulary."""
    width = lp_d.shape[-1]
    index = token_d.clamp(max=width - 1)[:, None]
    delta = (lp_o.gather(-1, index) - lp_d.gather(-1, index))[:, 0]
    return torch.where(token_d < width, delta, torch.full_like(delta, math.nan))


@criterion("top1_differs")
def top1_differs(lp_d, lp_o, js, token_d):
    """1 where the two argmaxes differ, 0 where they agree."""
    return (lp_d.argmax(-1) != lp_o.argmax(-1)).to(torch.float32)


@criterion("all")
def every_position(lp_d, lp_o, js, token_d):
    """1 at every position."""
    return torch.ones_like(js)


def score(name: str, lp_d: torch.Tensor, lp_o: torch.Tensor, js: torch.Tensor, token_d: torch.Tensor) -> torch.Tensor:
    """Per row: what criterion `name` compares with its threshold."""
    if name not in SCORES:
        raise ValueError(f"unknown criterion {name!r}")
    return SCORES[name](lp_d, lp_o, js, token_d)


def selects(values: torch.Tensor, threshold: float, sign: str = "ge") -> torch.Tensor:
    """Where a score selects its position: score >= threshold (sign 'ge') or score <= threshold ('le')."""
    return values <= threshold if sign == "le" else values >= threshold
