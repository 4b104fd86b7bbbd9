"""The per-setting paired decoder, kept as the oracle the one decoding loop must equal bit for bit.

This is the loop cross-sampling ran before its settings were decoded as a tree: one setting, one
left-padded batch, both models stepped in lockstep, one Exp(1) draw per step. It uses the decoder's
criteria, mixing rules and sampling pieces (what a step computes) but none of its loop (how rows are
carried, forked and ended), so a test comparing the two checks the loop. `sample_alone` is the
single-model reference: `generate()`'s loop with `torch.multinomial`.
"""

from __future__ import annotations

import math

import torch

from tokenshift.builders.decoding import criteria
from tokenshift.builders.decoding.decoder import Decoded
from tokenshift.builders.decoding.mixing import intervention_token
from tokenshift.builders.decoding.sampling import Stepper, exp_noise, left_pad, sampling_probs, warpers
from tokenshift.builders.engines.generate import SamplingConfig, trim_response
from tokenshift.builders.engines.models import input_device
from tokenshift.builders.scoring.score import js_divergence


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
    device = input_device(driver)
    n = len(prefixes)
    caps_t = torch.tensor(caps if caps is not None else [0.0] * n, dtype=torch.float64, device=device)
    forced = torch.tensor(force_first or [False] * n, dtype=torch.bool, device=device)
    limit_t = torch.tensor(limits, dtype=torch.long, device=device)
    stops = torch.tensor(sorted(stop_ids), dtype=torch.long, device=device)
    ids, mask = left_pad(prefixes, pad_id, device)
    steppers = [Stepper(driver, device), Stepper(other, device)]
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
            score = criteria.score(criterion, lp_d, lp_o, js, token)
            selected = criteria.selects(score, threshold, sign)
        swap = alive & ((selected & (n_int.double() < caps_t)) | (forced & (step == 0)))
        if swap.any():
            token = torch.where(swap, intervention_token(logits_d, logits_o, mix_weight, mix_space, sampling, warps,
                                                         greedy, None if greedy else noise), token)
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
    return _rows(tokens, js_rows, took, limits, stop_ids, score_rows)


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
    ids, mask = left_pad(prefixes, pad_id, device)
    stepper, warps = Stepper(model, device), warpers(sampling)
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
    rows = torch.stack(generated, 1).tolist() if generated else [[] for _ in prefixes]
    return [trim_response(row, stop_ids, max_new_tokens)[0] for row in rows]


def tree_decode(driver, other, prefixes: list[list[int]], limit: int, sampling: SamplingConfig, stop_ids: set[int],
                pad_id: int, vocab_size: int, generator: torch.Generator | None, members: list,
                criterion: str = "js", mix_weight: float = 1.0, selectors: tuple = (), rates: tuple = (),
                state_of: int | None = None, known=None, sign: str = "ge",
                mix_space: str = "prob") -> list[list[Decoded]]:
    """The production decoder (decoding.decoder.decode) called with the oracle's argument list, one limit for
    every row, so a test writes the same settings for both."""
    from tokenshift.builders.decoding.decoder import Pair, Rule, decode

    pair = Pair(driver, other, sampling, frozenset(stop_ids), pad_id, vocab_size)
    return decode(pair, Rule(criterion, sign, mix_weight, mix_space), prefixes, [limit] * len(prefixes), generator,
                  members, selectors, rates, None, state_of, known)


def setting_decode(driver, other, prefixes: list[list[int]], limits: list[int], sampling: SamplingConfig,
                   stop_ids: set[int], pad_id: int, vocab_size: int, generator: torch.Generator | None,
                   threshold: float = math.inf, caps: list[float] | None = None,
                   force_first: list[bool] | None = None, criterion: str = "js", mix_weight: float = 1.0,
                   rates: list[float] | None = None, selector: torch.Generator | None = None,
                   sign: str = "ge", mix_space: str = "prob") -> list[Decoded]:
    """The production decoder for one setting, called with `decode_batch`'s argument list (caps: one cap for all
    rows, as every caller gives)."""
    from tokenshift.builders.decoding.decoder import Member, Pair, Rule, decode

    cap = caps[0] if caps else 0.0
    assert caps is None or len(set(caps)) <= 1, "the decoder takes one cap per setting"
    pair = Pair(driver, other, sampling, frozenset(stop_ids), pad_id, vocab_size)
    if criterion == "random":
        member, selectors, row_rates = Member(cap, group=0), (selector,), (list(rates),)
    else:
        member, selectors, row_rates = Member(cap, threshold), (), ()
    return decode(pair, Rule(criterion, sign, mix_weight, mix_space), prefixes, limits, generator, [member],
                  selectors, row_rates, force_first)[0]
