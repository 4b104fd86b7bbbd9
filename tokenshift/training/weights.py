"""Divergence-weighted advantages: w_t = 1 + s·(σ(α·D_t) − ½), applied as Ã_t = w_t·Â_t, detached.

D_t is either KL(π_old ‖ π_θ) on the sampled token (k3 estimate; reference "old", the study's choice)
or the exact full-vocabulary JS between the starting model and π_θ (reference "base").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tokenshift.runtime.errors import TokenshiftError

REFERENCES = ("old", "base")


@dataclass(frozen=True)
class WeightConfig:
    """alpha > 0 boosts high-divergence tokens, alpha < 0 low-divergence ones; scale s sets the range."""

    alpha: float = 0.0
    scale: float = 1.0
    reference: str = "old"

    def __post_init__(self):
        if self.reference not in REFERENCES:
            raise TokenshiftError(f"reference {self.reference!r} is not one of {', '.join(REFERENCES)}; "
                                  f"pick one of them")

    @property
    def is_identity(self) -> bool:
        """True when every weight is exactly 1 (the loss is plain GRPO's)."""
        return self.alpha == 0.0 or self.scale == 0.0


def k3_kl(logp_old: torch.Tensor, logp_new: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(π_old ‖ π_θ) on tokens sampled from π_old: r − 1 − log r, r = π_θ/π_old."""
    log_ratio = logp_new - logp_old
    return torch.expm1(log_ratio) - log_ratio


def advantage_weights(divergence: torch.Tensor, alpha: float, scale: float) -> torch.Tensor:
    """w = 1 + s·(σ(α·D) − ½), detached from the graph."""
    return 1.0 + scale * (torch.sigmoid(alpha * divergence.detach()) - 0.5)
