"""Training probes: divergence-weighted GRPO advantages, live token-shift monitoring, the dw-advantage experiment.

`TokenShiftCallback` needs only transformers; `DivergenceWeightedGRPOTrainer` needs TRL
(`pip install 'tokenshift[train]'`). Names are imported on first use, so `tokenshift` starts fast.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "DivergenceWeightedGRPOTrainer": "tokenshift.training.dw_grpo",
    "TokenShiftCallback": "tokenshift.training.callback",
    "ShiftStatsConfig": "tokenshift.training.stats",
    "REFERENCES": "tokenshift.training.weights",
    "WeightConfig": "tokenshift.training.weights",
    "advantage_weights": "tokenshift.training.weights",
    "k3_kl": "tokenshift.training.weights",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
