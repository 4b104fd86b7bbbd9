"""Training probes: divergence-weighted GRPO advantages, live token-shift monitoring, the dw-advantage experiment.

`TokenShiftCallback` needs only transformers; the GRPO trainer needs TRL (`pip install 'tokenshift[train]'`)
and is imported on first use.
"""

from __future__ import annotations

from tokenshift.training.callback import TokenShiftCallback
from tokenshift.training.weights import REFERENCES, WeightConfig, advantage_weights, k3_kl

__all__ = ["REFERENCES", "DivergenceWeightedGRPOTrainer", "TokenShiftCallback", "WeightConfig",
           "advantage_weights", "k3_kl"]


def __getattr__(name: str):
    if name == "DivergenceWeightedGRPOTrainer":  # imports trl: only on first use
        from tokenshift.training.dw_grpo import DivergenceWeightedGRPOTrainer

        return DivergenceWeightedGRPOTrainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
