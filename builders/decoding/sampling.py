"""The pieces of `generate()`'s sampling the decoder reproduces: warpers, probabilities, the Exp(1) draw, KV-cache steps.

`torch.multinomial(probs, 1)` computes argmax(probs / E) with E ~ Exp(1) drawn by `exponential_` on a
tensor shaped like `probs`. Drawing E once per step and taking that argmax for both models gives the
driver exactly the token multinomial would, and couples the other model's token to the same draw
(Gumbel-max coupling, the common random numbers of the decoder).
"""

from __future__ import annotations

import inspect

import torch

from tokenshift.builders.engines.generate import SamplingConfig


def warpers(sampling: SamplingConfig) -> list:
    """The logits warpers `generate()` adds for this sampling config (temperature, then top-p)."""
    from transformers import TemperatureLogitsWarper, TopPLogitsWarper

    out = []
    if sampling.temperature not in (0, 1.0):
        out.append(TemperatureLogitsWarper(sampling.temperature))
    if sampling.temperature != 0 and sampling.top_p < 1.0:
        out.append(TopPLogitsWarper(sampling.top_p))
    return out


def sampling_probs(logits: torch.Tensor, sampling: SamplingConfig, warps: list) -> torch.Tensor:
    """float32 next-token probabilities after the warpers, as `generate()` computes them."""
    scores = logits
    for warp in warps:
        scores = warp(None, scores)
    return torch.softmax(scores, dim=-1)


def exp_noise(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """The Exp(1) draw `torch.multinomial(probs, 1)` makes (same shape, same generator calls)."""
    return torch.empty_like(probs).exponential_(1, generator=generator)


def widen(values: torch.Tensor, width: int, fill: float = 0.0) -> torch.Tensor:
    """Values over exactly `width` ids (`fill`: zero probability, or −inf log-probability, for ids the other
    model lacks)."""
    if values.shape[-1] == width:
        return values
    if values.shape[-1] > width:
        return values[:, :width]
    return torch.nn.functional.pad(values, (0, width - values.shape[-1]), value=fill)


def left_pad(prefixes: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and attention mask of a batch of prefixes, as `generate()` takes them."""
    width = max(map(len, prefixes))
    ids = torch.full((len(prefixes), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prefixes), width), dtype=torch.long)
    for i, row in enumerate(prefixes):
        ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row):] = 1
    return ids.to(device), mask.to(device)


class Stepper:
    """One model and its KV cache, fed exactly the inputs `generate()` feeds it."""

    def __init__(self, model, device):
        from transformers import DynamicCache

        self.model, self.device = model, device  # where the logits go: the driver's input device
        params = inspect.signature(model.forward).parameters
        self.cache_key = "cache" if "cache" in params else "past_key_values"
        self.cache = DynamicCache(config=model.config)

    def __call__(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=mask, use_cache=True,
                         **{self.cache_key: self.cache})
        return out.logits[:, -1].to(device=self.device, dtype=torch.float32, copy=True)


def supports_forks(model) -> bool:
    """Whether the model's KV cache holds only plain key/value layers, whose rows a fork copies (other layers,
    e.g. linear-attention states: settings decode one per tree, which never forks)."""
    from transformers.cache_utils import DynamicCache, DynamicLayer, DynamicSlidingWindowLayer

    return all(type(layer) in (DynamicLayer, DynamicSlidingWindowLayer)
               for layer in DynamicCache(config=model.config).layers)


def logits_width(model) -> int:
    """Width of the model's next-token logits: its output layer's rows (what exp_noise's draw is shaped by)."""
    head = model.get_output_embeddings()
    return head.weight.shape[0] if head is not None else model.config.vocab_size
