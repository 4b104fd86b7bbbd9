"""Mixing rules: which token an intervention takes. One function per rule (a --mix-space value), registered by name.

Every rule samples with the step's Exp(1) draw (greedy: takes the argmax), so where the mix equals
the driver's distribution the token is the driver's. W = 1 is the other model's own token in every
rule (`intervention_token` takes it directly). The names are schemas/values.py's MIX_SPACES.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from tokenshift.builders.decoding.sampling import sampling_probs, widen
from tokenshift.builders.engines.generate import SamplingConfig
from tokenshift.schemas.values import MIX_SPACES

Mix = Callable[..., torch.Tensor]
RULES: dict[str, Mix] = {}  # mix space -> rule(logits_d, logits_o, weight, sampling, warps, greedy, noise)


def mixing(name: str) -> Callable[[Mix], Mix]:
    """Register the mixing rule `name` (one of schemas/values.py's MIX_SPACES)."""
    if name not in MIX_SPACES:
        raise ValueError(f"mixing rule {name!r} is not in schemas/values.py MIX_SPACES: add it there first")

    def register(fn: Mix) -> Mix:
        RULES[name] = fn
        return fn
    return register


def _draw(probs_or_logits: torch.Tensor, greedy: bool, noise: torch.Tensor | None) -> torch.Tensor:
    return probs_or_logits.argmax(-1) if greedy else (probs_or_logits / noise).argmax(-1)


@mixing("prob")
def prob_mix(logits_d, logits_o, weight: float, sampling: SamplingConfig, warps: list, greedy: bool, noise):
    """A token of (1 − W)·p_driver + W·p_other (each after temperature and top-p), W in (0, 1]."""
    if greedy:
        probs_d, probs_o = torch.softmax(logits_d, -1), torch.softmax(logits_o, -1)
    else:
        probs_d, probs_o = sampling_probs(logits_d, sampling, warps), sampling_probs(logits_o, sampling, warps)
    return _draw((1.0 - weight) * probs_d + weight * widen(probs_o, probs_d.shape[-1]), greedy, noise)


def log_mix_logits(logits_d: torch.Tensor, logits_o: torch.Tensor, weight: float) -> torch.Tensor:
    """(1 − W)·log p_driver + W·log p_other over the driver's logit ids, float32; −inf where either model gives
    the id probability 0 (an id the other model lacks included), so no W makes an impossible token likely."""
    lp_d = torch.log_softmax(logits_d, -1)
    lp_o = widen(torch.log_softmax(logits_o, -1), lp_d.shape[-1], -math.inf)
    both = torch.isfinite(lp_d) & torch.isfinite(lp_o)
    mixed = (1.0 - weight) * lp_d + weight * lp_o
    return torch.where(both, mixed, torch.full_like(mixed, -math.inf))


@mixing("log")
def log_mix(logits_d, logits_o, weight: float, sampling: SamplingConfig, warps: list, greedy: bool, noise):
    """A token of softmax((1 − W)·log p_driver + W·log p_other), then temperature and top-p; any finite W
    (W > 1 extrapolates past the other model; W = 0 is exactly the driver's token)."""
    logits = logits_d if weight == 0.0 else log_mix_logits(logits_d, logits_o, weight)
    if greedy:
        return logits.argmax(-1)
    return _draw(sampling_probs(logits, sampling, warps), False, noise)


def intervention_token(logits_d, logits_o, weight: float, space: str, sampling: SamplingConfig, warps: list,
                       greedy: bool, noise: torch.Tensor | None) -> torch.Tensor:
    """Per row, the token an intervention takes: the other model's (W = 1, in every space) or the rule's mix."""
    if weight == 1.0:
        if greedy:
            return logits_o.argmax(-1)
        return (widen(sampling_probs(logits_o, sampling, warps), noise.shape[-1]) / noise).argmax(-1)
    if space not in RULES:
        raise ValueError(f"unknown mix space {space!r}")
    return RULES[space](logits_d, logits_o, weight, sampling, warps, greedy, noise)
