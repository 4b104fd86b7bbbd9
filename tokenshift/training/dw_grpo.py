"""TRL's GRPOTrainer with divergence-weighted advantages (Ã_t = w_t·Â_t); everything else of its loss unchanged.

The weights are computed inside `_compute_loss`, right after TRL's own forward pass of the policy, from
its (detached) per-token log-probs: no extra forward for reference "old". With one optimisation step per
generation batch π_old = π_θ and every weight is 1; use steps_per_generation > gradient_accumulation_steps
or num_iterations > 1 so the policy moves between generation and update.
"""

from __future__ import annotations

import copy

import torch

from tokenshift.training.divergence import base_js
from tokenshift.training.trl_extra import require_trl
from tokenshift.training.weights import WeightConfig, advantage_weights, k3_kl

GRPOTrainer = require_trl().GRPOTrainer
WEIGHT_METRICS = ("dw/weight_mean", "dw/weight_p95", "dw/weight_max")


class DivergenceWeightedGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose per-token advantages are scaled by w_t = 1 + s·(σ(α·D_t) − ½).

    `weighting` sets alpha, scale and reference ("old": k3 KL(π_old ‖ π_θ) on the sampled token;
    "base": full-vocabulary JS between `base_model` — by default a frozen copy of the model at
    construction — and π_θ). Logs dw/weight_mean, dw/weight_p95, dw/weight_max over completion tokens.
    """

    def __init__(self, *args, weighting: WeightConfig = WeightConfig(), base_model=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.weighting = weighting
        self.base_model = None
        if weighting.reference == "base" and not weighting.is_identity:
            self.base_model = base_model if base_model is not None else copy.deepcopy(self.model)
            self.base_model.eval().requires_grad_(False)
        self._pending: dict | None = None
        self.last_divergence: torch.Tensor | None = None
        self.last_weights: torch.Tensor | None = None

    def _compute_loss(self, model, inputs):
        pending = dict(inputs)  # a copy: buffered inputs are reused across iterations and must keep Â
        self._pending = pending
        try:
            loss = super()._compute_loss(model, pending)
        finally:
            unapplied, self._pending = self._pending is not None, None
        if unapplied:
            raise RuntimeError("TRL's GRPOTrainer no longer scores the policy through "
                               "_get_per_token_logps_and_entropies; the advantage weights were not applied")
        return loss

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, *args, **kwargs):
        result = super()._get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep,
                                                            *args, **kwargs)
        inputs, self._pending = self._pending, None  # only the first call inside _compute_loss is the policy's
        if inputs is not None:
            self._weight_advantages(model, inputs, result[0].detach())
        return result

    def divergence(self, model, inputs: dict, per_token_logps: torch.Tensor) -> torch.Tensor:
        """D_t for every completion position of the batch, [B, T]."""
        if self.weighting.reference == "old":
            old = inputs.get("old_per_token_logps")
            return torch.zeros_like(per_token_logps) if old is None else k3_kl(old, per_token_logps)
        policy = self.accelerator.unwrap_model(model)
        return base_js(self.base_model, policy, inputs["prompt_ids"], inputs["prompt_mask"],
                       inputs["completion_ids"], inputs["completion_mask"], len(self.processing_class))

    def _weight_advantages(self, model, inputs: dict, per_token_logps: torch.Tensor) -> None:
        advantages = inputs["advantages"]
        advantages = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages
        if self.weighting.is_identity and self.base_model is None and self.weighting.reference == "base":
            divergence = torch.zeros_like(per_token_logps)  # no starting model kept: every weight is 1
            weights = torch.ones_like(per_token_logps)
        else:
            divergence = self.divergence(model, inputs, per_token_logps)
            weights = advantage_weights(divergence, self.weighting.alpha, self.weighting.scale)
        inputs["advantages"] = advantages * weights
        self.last_divergence, self.last_weights = divergence, weights
        mask = inputs["completion_mask"].bool()
        if "tool_mask" in inputs:
            mask = mask & inputs["tool_mask"].bool()
        values = weights[mask].float()
        if values.numel():
            mode = "train" if self.model.training else "eval"
            stats = (values.mean(), torch.quantile(values, 0.95), values.max())
            for name, value in zip(WEIGHT_METRICS, stats):
                self._metrics[mode][name].append(float(value))
