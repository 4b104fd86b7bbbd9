"""Decode with two models in lockstep, each with its own KV cache, sharing one random draw per step.

Sampling mirrors `generate()`: temperature then top-p (the warpers `generate()` itself uses),
softmax, then `torch.multinomial(probs, 1)`, which torch computes as argmax(probs / E) with
E ~ Exp(1) drawn by `exponential_` on a tensor shaped like `probs`. Drawing E once per step and
taking that argmax for both models gives the driver exactly the token multinomial would, and
couples the other model's token to the same draw (Gumbel-max coupling): where the two
distributions agree the two tokens agree, so a protocol differs from the driver only at its
interventions.

Which positions intervene is decided per step by a criterion computed in float32 over the full
vocabulary from the two models' log-softmaxes (as the scorer does): 'js', 'kl' = KL(p_driver ‖ p_other),
'kl_reverse' = KL(p_other ‖ p_driver) or 'entropy' (the driver's) at or above a threshold; 'delta_logp'
= log p_other(t) − log p_driver(t) of the token t the driver draws at this step (same Exp(1) draw, so
selecting never changes the driver's own token) at or below (sign 'le') or at or above ('ge') a
threshold; 'top1_differs' where the two argmaxes differ; 'all' at every position; 'random' where a
uniform draw from a separate generator is below the row's rate. At an intervention the token is drawn,
with the same Exp(1) noise, from (1 − W)·p_driver + W·p_other (mix space 'prob', W in (0, 1]) or from
softmax((1 − W)·log p_driver + W·log p_other) then temperature and top-p (mix space 'log', any finite W:
W > 1 extrapolates past the other model). W = 1 is the other model's token in both spaces; W = 0 in
'log' space is the driver's token.
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, field

import torch

from tokenshift.builders.engines.generate import SamplingConfig
from tokenshift.builders.engines.models import input_device
from tokenshift.builders.scoring.score import entropy, js_divergence, kl_divergence
from tokenshift.runtime.meter import record_decoded


@dataclass
class Decoded:
    """One decoded row: response tokens (stop token included) and what happened at each position."""

    token_ids: list[int]
    finish_reason: str  # 'stop' or 'length'
    # js and scores cover the positions decoded: a driver-alone row read from the build's answers
    # (shared_prefix.decode_shared's `known`) has them only up to where its decoding stopped, or none
    js: list[float] = field(default_factory=list)  # JS(p_driver, p_other) per position, nats
    interventions: list[int] = field(default_factory=list)  # positions whose token came from `other` (or the mix)
    scores: list[float] = field(default_factory=list)  # the criterion's value per position (random: the draw)


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


def _left_pad(prefixes: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, prefixes))
    ids = torch.full((len(prefixes), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prefixes), width), dtype=torch.long)
    for i, row in enumerate(prefixes):
        ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row):] = 1
    return ids.to(device), mask.to(device)


class _Stepper:
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


def _widen(probs: torch.Tensor, width: int, fill: float = 0.0) -> torch.Tensor:
    """Values over exactly `width` ids (`fill`: zero probability, or −inf log-probability, for ids the other
    model lacks)."""
    if probs.shape[-1] == width:
        return probs
    if probs.shape[-1] > width:
        return probs[:, :width]
    return torch.nn.functional.pad(probs, (0, width - probs.shape[-1]), value=fill)


@torch.inference_mode()
def decode_batch(driver, other, prefixes: list[list[int]], limits: list[int], sampling: SamplingConfig,
                 stop_ids: set[int], pad_id: int, vocab_size: int, generator: torch.Generator | None,
                 threshold: float = math.inf, caps: list[float] | None = None,
                 force_first: list[bool] | None = None, criterion: str = "js", mix_weight: float = 1.0,
                 rates: list[float] | None = None, selector: torch.Generator | None = None,
                 sign: str = "ge", mix_space: str = "prob") -> list[Decoded]:
    """Decode one left-padded batch; `other` takes over where the criterion selects while a row's cap allows.

    Each step runs each model once on the new token (prefill once, no prefix recomputation). Row i
    stops at a stop token or after limits[i] tokens; finished rows are fed the pad token like
    `generate()` does. force_first[i]: row i's first token comes from `other` regardless of the
    criterion and cap (the resample protocol's insertion). criterion 'random' selects where a uniform
    draw from `selector` (one per row and step) is below rates[i]; the others where their score is
    >= threshold (sign 'ge') or <= threshold ('le'). With caps all 0 and no forcing,
    the driver's tokens equal `generate()` with the same generator state (and `sample_alone`).
    """
    started = time.perf_counter()
    device = input_device(driver)
    n = len(prefixes)
    caps_t = torch.tensor(caps if caps is not None else [0.0] * n, dtype=torch.float64, device=device)
    forced = torch.tensor(force_first or [False] * n, dtype=torch.bool, device=device)
    limit_t = torch.tensor(limits, dtype=torch.long, device=device)
    stops = torch.tensor(sorted(stop_ids), dtype=torch.long, device=device)
    ids, mask = _left_pad(prefixes, pad_id, device)
    steppers = [_Stepper(driver, device), _Stepper(other, device)]
    warps = warpers(sampling)
    greedy = sampling.temperature == 0
    alive = limit_t > 0
    n_int = torch.zeros(n, dtype=torch.long, device=device)
    rate_t = torch.tensor(rates if rates is not None else [0.0] * n, dtype=torch.float64, device=device)
    tokens, js_rows, took, score_rows = [], [], [], []
    logits_d, logits_o = (s(ids, mask) for s in steppers)
    for step in range(int(limit_t.max().item()) if n else 0):
        lp_d, lp_o = torch.log_softmax(logits_d[:, :vocab_size], -1), torch.log_softmax(logits_o[:, :vocab_size], -1)
        js = js_divergence(lp_d, lp_o)
        if greedy:
            token = logits_d.argmax(-1)
        else:
            probs_d = sampling_probs(logits_d, sampling, warps)
            noise = exp_noise(probs_d, generator)
            token = (probs_d / noise).argmax(-1)
        if criterion == "random":
            score = torch.rand(n, generator=selector, dtype=torch.float64, device=device)
            selected = score < rate_t
        else:
            score = selection_score(criterion, lp_d, lp_o, js, token)
            selected = selects(score, threshold, sign)
        swap = alive & ((selected & (n_int.double() < caps_t)) | (forced & (step == 0)))
        if swap.any():
            token = torch.where(swap, _other_token(logits_d, logits_o, sampling, warps, greedy,
                                                   None if greedy else noise, mix_weight, mix_space), token)
            n_int += swap.long()
        token = torch.where(alive, token, torch.full_like(token, pad_id))
        tokens.append(token)
        js_rows.append(js)
        took.append(swap)
        score_rows.append(score)
        alive = alive & ~torch.isin(token, stops) & (step + 1 < limit_t)
        if not alive.any():
            break
        mask = torch.cat([mask, mask.new_ones((n, 1))], dim=-1)
        logits_d, logits_o = (s(token[:, None], mask) for s in steppers)
    rows = _rows(tokens, js_rows, took, limits, stop_ids, score_rows)
    record_decoded(sum(len(r.token_ids) for r in rows), time.perf_counter() - started)
    return rows


def criterion_score(criterion: str, lp_d: torch.Tensor, lp_o: torch.Tensor, js: torch.Tensor) -> torch.Tensor:
    """Per row: the value a threshold criterion compares (nats), or 1 / 0 for top1_differs (argmaxes differ / agree)."""
    if criterion == "js":
        return js
    if criterion == "kl":
        return kl_divergence(lp_d, lp_o)
    if criterion == "kl_reverse":
        return kl_divergence(lp_o, lp_d)
    if criterion == "entropy":
        return entropy(lp_d)
    if criterion == "top1_differs":
        return (lp_d.argmax(-1) != lp_o.argmax(-1)).to(torch.float32)
    raise ValueError(f"unknown criterion {criterion!r}")


def selection_score(criterion: str, lp_d: torch.Tensor, lp_o: torch.Tensor, js: torch.Tensor,
                    token_d: torch.Tensor) -> torch.Tensor:
    """Per row: what a non-random criterion compares with its threshold (token_d: the driver's draw this step)."""
    if criterion == "delta_logp":
        return delta_logp(lp_d, lp_o, token_d)
    if criterion == "all":
        return torch.ones_like(js)
    return criterion_score(criterion, lp_d, lp_o, js)


def delta_logp(lp_d: torch.Tensor, lp_o: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
    """log p_other(token) − log p_driver(token) per row, float32 nats; NaN (never selected) for a token id
    outside the vocabulary the log-softmaxes cover."""
    width = lp_d.shape[-1]
    index = token.clamp(max=width - 1)[:, None]
    delta = (lp_o.gather(-1, index) - lp_d.gather(-1, index))[:, 0]
    return torch.where(token < width, delta, torch.full_like(delta, math.nan))


def selects(score: torch.Tensor, threshold: float, sign: str = "ge") -> torch.Tensor:
    """Where a score selects its position: score >= threshold (sign 'ge') or score <= threshold ('le')."""
    return score <= threshold if sign == "le" else score >= threshold


def _other_token(logits_d, logits_o, sampling: SamplingConfig, warps: list, greedy: bool,
                 noise: torch.Tensor | None, mix_weight: float, mix_space: str = "prob") -> torch.Tensor:
    """The intervention's token: from p_other (W = 1, exactly the swap, in both spaces), from (1 − W)·p_driver +
    W·p_other ('prob'), or from softmax((1 − W)·log p_driver + W·log p_other) warped ('log'; W = 0: the driver's)."""
    if mix_weight == 1.0:
        if greedy:
            return logits_o.argmax(-1)
        return (_widen(sampling_probs(logits_o, sampling, warps), noise.shape[-1]) / noise).argmax(-1)
    if mix_space == "log":
        return _log_mix_token(logits_d, logits_o, sampling, warps, greedy, noise, mix_weight)
    if greedy:
        probs_d, probs_o = torch.softmax(logits_d, -1), torch.softmax(logits_o, -1)
    else:
        probs_d, probs_o = sampling_probs(logits_d, sampling, warps), sampling_probs(logits_o, sampling, warps)
    mix = (1.0 - mix_weight) * probs_d + mix_weight * _widen(probs_o, probs_d.shape[-1])
    return mix.argmax(-1) if greedy else (mix / noise).argmax(-1)


def log_mix_logits(logits_d: torch.Tensor, logits_o: torch.Tensor, mix_weight: float) -> torch.Tensor:
    """(1 − W)·log p_driver + W·log p_other over the driver's logit ids, float32; −inf where either model gives
    the id probability 0 (an id the other model lacks included), so no W makes an impossible token likely."""
    lp_d = torch.log_softmax(logits_d, -1)
    lp_o = _widen(torch.log_softmax(logits_o, -1), lp_d.shape[-1], -math.inf)
    both = torch.isfinite(lp_d) & torch.isfinite(lp_o)
    mixed = (1.0 - mix_weight) * lp_d + mix_weight * lp_o
    return torch.where(both, mixed, torch.full_like(mixed, -math.inf))


def _log_mix_token(logits_d, logits_o, sampling: SamplingConfig, warps: list, greedy: bool,
                   noise: torch.Tensor | None, mix_weight: float) -> torch.Tensor:
    """The token of a log-space mix: its argmax (greedy), else temperature and top-p on the mixed log-probs and
    the step's Exp(1) draw; W = 0 is exactly the driver's token."""
    if mix_weight == 0.0:
        logits = logits_d
    else:
        logits = log_mix_logits(logits_d, logits_o, mix_weight)
    if greedy:
        return logits.argmax(-1)
    return (sampling_probs(logits, sampling, warps) / noise).argmax(-1)


def _rows(tokens, js_rows, took, limits, stop_ids, score_rows) -> list[Decoded]:
    """Per-row Decoded from the step-major tensors, each cut after its stop token or limit."""
    if not tokens:
        return [Decoded([], "length") for _ in limits]
    tok = torch.stack(tokens, 1).tolist()
    js = torch.stack(js_rows, 1).tolist()
    swap = torch.stack(took, 1).tolist()
    scores = torch.stack([r.double() for r in score_rows], 1).tolist()
    out = []
    for i, limit in enumerate(limits):
        length, reason = len(tok[i][:limit]), "length"
        for t, token in enumerate(tok[i][:limit]):
            if token in stop_ids:
                length, reason = t + 1, "stop"
                break
        out.append(Decoded(tok[i][:length], reason, js[i][:length],
                           [t for t in range(length) if swap[i][t]], scores[i][:length]))
    return out


@torch.inference_mode()
def sample_alone(model, prefixes: list[list[int]], max_new_tokens: int, sampling: SamplingConfig,
                 stop_ids: set[int], pad_id: int, generator: torch.Generator | None) -> list[list[int]]:
    """Reference single-model sampler: `generate()`'s loop with `torch.multinomial` on one generator."""
    device = input_device(model)
    ids, mask = _left_pad(prefixes, pad_id, device)
    stepper, warps = _Stepper(model, device), warpers(sampling)
    stops = torch.tensor(sorted(stop_ids), dtype=torch.long, device=device)
    alive = torch.ones(len(prefixes), dtype=torch.bool, device=device)
    logits, generated = stepper(ids, mask), []
    for _ in range(max_new_tokens):
        if sampling.temperature == 0:
            token = logits.argmax(-1)
        else:
            token = torch.multinomial(sampling_probs(logits, sampling, warps), 1, generator=generator)[:, 0]
        token = torch.where(alive, token, torch.full_like(token, pad_id))
        generated.append(token)
        alive &= ~torch.isin(token, stops)
        if not alive.any():
            break
        mask = torch.cat([mask, mask.new_ones((len(prefixes), 1))], dim=-1)
        logits = stepper(token[:, None], mask)
    from tokenshift.builders.engines.generate import trim_response

    rows = torch.stack(generated, 1).tolist() if generated else [[] for _ in prefixes]
    return [trim_response(row, stop_ids, max_new_tokens)[0] for row in rows]
