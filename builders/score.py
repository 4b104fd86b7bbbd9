"""Per-position statistics of two next-token distributions, computed in float32 chunks.

The decoder runs once per model; the output head and every full-vocabulary statistic run on
chunks of positions, so peak memory is chunk × vocabulary, not length × vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

LN2 = math.log(2.0)
# Float32 tensors of one (position, vocabulary) row alive at once in `pair_stats`: two logit
# rows, two log-softmaxes, two probabilities, their difference, the mixture log, temporaries.
_WORK_TENSORS = 10


@dataclass(frozen=True)
class ScoreConfig:
    top_k: int = 10
    chunk_positions: int | None = None  # None: derived from memory_budget_mb
    memory_budget_mb: int = 1024

    def chunk_for(self, vocab_size: int) -> int:
        if self.chunk_positions:
            return self.chunk_positions
        per_position = vocab_size * 4 * _WORK_TENSORS
        return max(1, min(4096, self.memory_budget_mb * 2**20 // per_position))


def _xlogy_sum(p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Σ p·log q with 0·log 0 = 0."""
    return torch.where(p > 0, p * log_q, torch.zeros((), dtype=p.dtype, device=p.device)).sum(-1)


def js_divergence(logp: torch.Tensor, logq: torch.Tensor, p: torch.Tensor | None = None,
                  q: torch.Tensor | None = None) -> torch.Tensor:
    """Jensen–Shannon divergence in nats of rows of log-probabilities, clamped to [0, ln 2]."""
    p = logp.exp() if p is None else p
    q = logq.exp() if q is None else q
    log_m = torch.logaddexp(logp, logq).sub_(LN2)
    js = 0.5 * (_xlogy_sum(p, logp - log_m) + _xlogy_sum(q, logq - log_m))
    return js.clamp_(0.0, LN2)


def rank_of(logp: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """1-based rank of `ids` under each row (ties share the best rank)."""
    chosen = logp.gather(-1, ids[:, None])
    return (logp > chosen).sum(-1) + 1


def pair_stats(logits_base: torch.Tensor, logits_rl: torch.Tensor, token_ids: torch.Tensor,
               top_k: int) -> dict[str, torch.Tensor]:
    """All statistics for rows of base and RL logits (any dtype; computed in float32).

    Divergences sum element-wise terms (not differences of sums), so near-zero values keep
    float32 precision even over a 152k vocabulary.
    """
    lp_b = torch.log_softmax(logits_base.float(), dim=-1)
    lp_r = torch.log_softmax(logits_rl.float(), dim=-1)
    p_b, p_r = lp_b.exp(), lp_r.exp()
    entropy_b, entropy_r = -_xlogy_sum(p_b, lp_b), -_xlogy_sum(p_r, lp_r)
    diff = lp_b - lp_r
    kl_b_r = _xlogy_sum(p_b, diff)
    kl_r_b = -_xlogy_sum(p_r, diff)
    js = js_divergence(lp_b, lp_r, p_b, p_r)
    del p_b, p_r, diff
    top_b = torch.topk(lp_b, top_k, dim=-1)
    top_r = torch.topk(lp_r, top_k, dim=-1)
    ids = token_ids[:, None]
    overlap = (top_b.indices[:, :, None] == top_r.indices[:, None, :]).any(-1).sum(-1)
    return {
        "logp_base": lp_b.gather(-1, ids)[:, 0],
        "logp_rl": lp_r.gather(-1, ids)[:, 0],
        "entropy_base": entropy_b.clamp_(min=0.0),
        "entropy_rl": entropy_r.clamp_(min=0.0),
        "js": js,
        "kl_base_rl": kl_b_r.clamp_(min=0.0),
        "kl_rl_base": kl_r_b.clamp_(min=0.0),
        "rank_base": rank_of(lp_b, token_ids),
        "rank_rl": rank_of(lp_r, token_ids),
        "top1_base": top_b.indices[:, 0],
        "top1_rl": top_r.indices[:, 0],
        "rl_top1_rank_base": rank_of(lp_b, top_r.indices[:, 0]),
        "topk_base_ids": top_b.indices,
        "topk_base_logp": top_b.values,
        "topk_rl_ids": top_r.indices,
        "topk_rl_logp": top_r.values,
        "topk_overlap": overlap.float() / top_k,
    }


def final_hidden_states(model, input_ids: torch.Tensor) -> torch.Tensor:
    """Last-layer hidden states (after the final norm) of one sequence, shape [T, H]."""
    out = model.get_decoder()(input_ids=input_ids[None], use_cache=False)
    return out.last_hidden_state[0]


def head_logits(model, hidden: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Output-head logits of some hidden rows, restricted to the tokenizer's vocabulary."""
    logits = model.get_output_embeddings()(hidden)[:, :vocab_size]
    config = model.config
    scale = getattr(config, "logit_scale", None)
    if scale:
        logits = logits * scale
    softcap = getattr(config, "final_logit_softcapping", None)
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return logits


@torch.inference_mode()
def score_pair(base, rls: dict[str, object], prompt_ids: list[int], response_ids: list[int],
               vocab_size: int, config: ScoreConfig = ScoreConfig()) -> dict[str, dict[str, torch.Tensor]]:
    """Teacher-force prompt+response through base and every RL model; stats per response position.

    Returns {rl_name: {stat: tensor of length len(response_ids) (or [n, K] for top-k lists)}}.
    """
    device = next(base.parameters()).device
    ids = torch.tensor(list(prompt_ids) + list(response_ids), dtype=torch.long, device=device)
    targets = ids[len(prompt_ids):]
    start = len(prompt_ids) - 1  # logits at index i predict token i + 1
    hidden_b = final_hidden_states(base, ids)
    hidden_r = {name: final_hidden_states(model, ids) for name, model in rls.items()}
    chunk = config.chunk_for(vocab_size)
    parts: dict[str, list[dict[str, torch.Tensor]]] = {name: [] for name in rls}
    for lo in range(0, len(response_ids), chunk):
        hi = min(lo + chunk, len(response_ids))
        logits_b = head_logits(base, hidden_b[start + lo:start + hi], vocab_size)
        for name, model in rls.items():
            logits_r = head_logits(model, hidden_r[name][start + lo:start + hi], vocab_size)
            stats = pair_stats(logits_b, logits_r, targets[lo:hi], config.top_k)
            parts[name].append({k: v.cpu() for k, v in stats.items()})
            del logits_r
        del logits_b
    return {name: {k: torch.cat([p[k] for p in chunks]) for k in chunks[0]}
            for name, chunks in parts.items() if chunks}
