"""Per-position statistics of two next-token distributions, computed in float32 chunks.

The decoder runs once per model; the output head and every full-vocabulary statistic run on
chunks of positions, so peak memory is chunk × vocabulary, not length × vocabulary.
Each chunk's statistics make few passes over the (position, vocabulary) arrays, reuse one
workspace, and on CPU run on blocks of a few rows so that the temporaries stay in cache.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch

from tokenshift.builders.engines.models import input_device
from tokenshift.runtime.arguments import check_field_types
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.schemas.values import LN2

# Float32 (position, vocabulary) rows alive at once per chunk position: the two models' logits
# (model dtype, kept for the chunk) and the six rows of the statistics workspace (log-softmaxes,
# probabilities, two scratch rows). On CPU the workspace covers a block of rows of about _CPU_BLOCK_BYTES at a time.
_WORK_TENSORS = 8
_CPU_BLOCK_BYTES = 32 * 2**20  # statistics workspace per CPU block: 9 rows at 152k, more for small vocabularies
_PIECES_MIN_VOCAB = 16384  # below this, per-row BLAS calls cost more in Python overhead than they save
_DOT_PIECE = 1024  # vocabulary piece of the CPU dot products (see _dots)
_TOPK_BLOCK = 128  # vocabulary block size of the two-stage top-k
_TINY = torch.finfo(torch.float32).tiny


@dataclass(frozen=True)
class ScoreConfig:
    top_k: int = 10
    chunk_positions: int | None = None  # None: derived from memory_budget_mb
    memory_budget_mb: int = 1024

    def __post_init__(self):
        check_field_types(self)

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


def kl_divergence(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) in nats of rows of log-probabilities (0·log 0 = 0), clamped to >= 0."""
    return _xlogy_sum(logp.exp(), logp - logq).clamp_(min=0.0)


def entropy(logp: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of rows of log-probabilities (0·log 0 = 0), clamped to >= 0."""
    return (-_xlogy_sum(logp.exp(), logp)).clamp_(min=0.0)


def _ranks(planes, values: torch.Tensor, top_values: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """1-based rank of values[j] under planes[j] (ties share the best rank): counted within the top-k for rows
    whose value is in it.

    Other rows are counted over the vocabulary: on CPU one row at a time into the same scratch row,
    which stays in cache (a block-sized comparison array would not); elsewhere one pass per plane.
    """
    ranks = (top_values > values[..., None]).sum(-1) + 1
    outside = values < top_values[..., -1]
    if values.device.type != "cpu":
        for j, plane in enumerate(planes):
            if bool(outside[j].any()):
                counts = torch.gt(plane, values[j, :, None], out=scratch).sum(-1) + 1
                ranks[j] = torch.where(outside[j], counts.long(), ranks[j])
        return ranks
    for j, i in outside.nonzero().tolist():
        ranks[j, i] = int(torch.gt(planes[j][i], float(values[j, i]), out=scratch[0]).sum()) + 1
    return ranks


def _top(values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k along the last dimension, ties to the lower position (a stable sort only where a tie is near)."""
    top = values.topk(min(k + 1, values.shape[-1]), dim=-1)
    if bool((top.values[..., 1:] == top.values[..., :-1]).any()):
        top = torch.sort(values, dim=-1, descending=True, stable=True)
    return top.values[..., :k], top.indices[..., :k]


def _topk(logp: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k values and ids along the last dimension, ties to the lower id, from the k best blocks.

    Any of a row's k largest values lies in one of the k blocks with the largest maxima, so one
    cheap pass (block maxima) leaves k blocks of candidates, kept in id order.
    """
    *lead, vocab = logp.shape
    blocks = vocab // _TOPK_BLOCK
    if blocks < 4 * k:
        return _top(logp, k)
    body = logp[..., :blocks * _TOPK_BLOCK].unflatten(-1, (blocks, _TOPK_BLOCK))
    best = body.amax(-1).topk(k, dim=-1).indices.sort(-1).values
    candidates = (best[..., None] * _TOPK_BLOCK + torch.arange(_TOPK_BLOCK, device=logp.device)).flatten(-2)
    if vocab > blocks * _TOPK_BLOCK:  # the last, partial block is always a candidate
        tail = torch.arange(blocks * _TOPK_BLOCK, vocab, device=logp.device).expand(*lead, -1)
        candidates = torch.cat([candidates, tail], -1)
    values, where = _top(logp.gather(-1, candidates), k)
    return values, candidates.gather(-1, where)


def _dots(probs: torch.Tensor, planes: torch.Tensor) -> torch.Tensor:
    """[i, a, b] = probs[a, i] · planes[b, i] for (a, rows, vocabulary) and (b, rows, vocabulary) arrays.

    On CPU a large vocabulary is summed in pieces of _DOT_PIECE: one batched BLAS product per row,
    then a sum over the pieces. That is faster than a BLAS dot product per pair and, unlike one
    float32 accumulation over the whole vocabulary, about as accurate as torch's pairwise sums.
    """
    if probs.device.type != "cpu":
        return torch.stack([torch.stack([torch.einsum("iv,iv->i", q, plane) for plane in planes], 1)
                            for q in probs], 1)
    rows, vocab = probs.shape[1:]
    pieces = vocab // _DOT_PIECE if vocab >= _PIECES_MIN_VOCAB else 0
    body = pieces * _DOT_PIECE
    dots = torch.zeros(rows, len(probs), len(planes))
    if pieces:
        p = probs[..., :body].unflatten(-1, (pieces, _DOT_PIECE)).permute(1, 2, 0, 3)  # row, piece, a, v
        q = planes[..., :body].unflatten(-1, (pieces, _DOT_PIECE)).permute(1, 2, 3, 0)  # row, piece, v, b
        partial = torch.empty(rows, pieces, len(probs), len(planes))
        for i in range(rows):
            torch.bmm(p[i], q[i], out=partial[i])
        dots += partial.sum(1)
    if body < vocab:
        dots += torch.bmm(probs[..., body:].transpose(0, 1), planes[..., body:].permute(1, 2, 0))
    return dots


def _divergences(work: torch.Tensor):
    """Entropies, both KLs and JS, each from sums of element-wise terms (not a difference of entropies).

    `work` holds the planes lp_b, u_b, u_r, lp_r, p_b, p_r; u_b = log(p_b / m) and u_r = log(p_r / m),
    with m the mixture, are filled here, then both probabilities meet the four log planes in one
    matrix product. JS = (p_b·u_b + p_r·u_r) / 2 and, as u_b - u_r = lp_b - lp_r,
    KL(b‖r) = p_b·u_b - p_b·u_r and KL(r‖b) = p_r·u_r - p_r·u_b.
    """
    lp_b, u_b, u_r, lp_r = work[:4]
    p_b, p_r = work[4:]
    log_m = torch.lerp(p_b, p_r, 0.5, out=u_r).clamp_min_(_TINY).log_()  # tiny: log m stays finite
    torch.sub(lp_b, log_m, out=u_b)
    torch.sub(lp_r, log_m, out=u_r)
    (bb, bu_b, bu_r, _), (_, ru_b, ru_r, rr) = _dots(work[4:], work[:4]).permute(1, 2, 0)
    return -bb, -rr, bu_b - bu_r, ru_r - ru_b, 0.5 * (bu_b + ru_r)


def _safe_divergences(lp_b, lp_r):
    """The same statistics with 0·log 0 = 0, for rows with -inf log-probabilities (masked logits)."""
    p_b, p_r = lp_b.exp(), lp_r.exp()
    diff = lp_b - lp_r
    return (-_xlogy_sum(p_b, lp_b), -_xlogy_sum(p_r, lp_r), _xlogy_sum(p_b, diff),
            -_xlogy_sum(p_r, diff), js_divergence(lp_b, lp_r, p_b, p_r))


def _block_stats(logits_b, logits_r, token_ids, top_k, workspace) -> dict[str, torch.Tensor]:
    """All statistics for one block of rows, computed in the float32 `workspace`."""
    work = workspace[:, :len(token_ids)]
    lp, scratch = work[0:4:3], work[1]  # lp = (lp_b, lp_r): both models at once where an op allows
    torch.log_softmax(logits_b, -1, dtype=torch.float32, out=lp[0])
    torch.log_softmax(logits_r, -1, dtype=torch.float32, out=lp[1])
    (top_b, top_r), (ids_b, ids_r) = _topk(lp, top_k)
    logp_b, logp_r = lp.gather(-1, token_ids.expand(2, -1)[..., None])[..., 0]
    values = torch.stack([logp_b, logp_r, lp[0].gather(-1, ids_r[:, :1])[:, 0]])
    rank_b, rank_r, rank_top1_r = _ranks((lp[0], lp[1], lp[0]), values, torch.stack([top_b, top_r, top_b]),
                                         scratch)
    torch.exp(lp, out=work[4:])
    divergences = _divergences(work)
    if not bool(torch.isfinite(torch.stack(divergences)).all()):
        divergences = _safe_divergences(lp[0], lp[1])
    entropy_b, entropy_r, kl_b_r, kl_r_b, js = divergences
    overlap = (ids_b[:, :, None] == ids_r[:, None, :]).any(-1).sum(-1)
    p_b, p_r = work[4], work[5]  # exact reallocation quantities from the full distributions (float32 sums of K)
    rl_mass_base_topk = p_r.gather(-1, ids_b).sum(-1).clamp_(0.0, 1.0)
    base_mass_rl_topk = p_b.gather(-1, ids_r).sum(-1).clamp_(0.0, 1.0)
    return {
        "logp_base": logp_b,
        "logp_rl": logp_r,
        "entropy_base": entropy_b.clamp_(min=0.0),
        "entropy_rl": entropy_r.clamp_(min=0.0),
        "js": js.clamp_(0.0, LN2),
        "kl_base_rl": kl_b_r.clamp_(min=0.0),
        "kl_rl_base": kl_r_b.clamp_(min=0.0),
        "rank_base": rank_b,
        "rank_rl": rank_r,
        "top1_base": ids_b[:, 0],
        "top1_rl": ids_r[:, 0],
        "rl_top1_rank_base": rank_top1_r,
        "topk_base_ids": ids_b,
        "topk_base_logp": top_b,
        "topk_rl_ids": ids_r,
        "topk_rl_logp": top_r,
        "topk_overlap": overlap.float() / top_k,
        "p_base_rl_top1": values[2].exp(),
        "rl_mass_base_topk": rl_mass_base_topk,
        "base_mass_rl_topk": base_mass_rl_topk,
        "p_rl_rl_top1": top_r[:, 0].exp(),  # the lists' own scalars, so readers need not scan the lists
        "base_mass_base_topk": top_b.exp().sum(-1).clamp_(0.0, 1.0),
    }


@torch.no_grad()
def pair_stats(logits_base: torch.Tensor, logits_rl: torch.Tensor, token_ids: torch.Tensor,
               top_k: int) -> dict[str, torch.Tensor]:
    """All statistics for rows of base and RL logits (any dtype; computed in float32).

    Divergences sum element-wise terms (not differences of sums), so near-zero values keep
    float32 precision even over a 152k vocabulary.
    """
    rows, vocab = logits_base.shape
    step = max(4, _CPU_BLOCK_BYTES // (6 * 4 * vocab)) if logits_base.device.type == "cpu" else max(rows, 1)
    workspace = torch.empty(6, min(step, rows), vocab, device=logits_base.device)
    blocks = [_block_stats(logits_base[lo:lo + step], logits_rl[lo:lo + step],
                           token_ids[lo:lo + step], top_k, workspace)
              for lo in range(0, max(rows, 1), step)]
    return {key: torch.cat([b[key] for b in blocks]) for key in blocks[0]}


def final_hidden_states(model, input_ids: torch.Tensor) -> torch.Tensor:
    """Last-layer hidden states (after the final norm) of one sequence, shape [T, H]."""
    out = model.get_decoder()(input_ids=input_ids[None].to(input_device(model)), use_cache=False)
    return out.last_hidden_state[0]


def head_logits(model, hidden: torch.Tensor, vocab_size: int,
                out: torch.Tensor | None = None) -> torch.Tensor:
    """Output-head logits of some hidden rows, restricted to the tokenizer's vocabulary.

    With `out`, a plain linear head on out's device writes straight into it (no new rows ×
    vocabulary array); a head on another device (a model split over GPUs) is copied into it.
    """
    head = model.get_output_embeddings()
    weight = getattr(head, "weight", None)
    hidden = hidden.to(weight.device) if weight is not None else hidden
    if (out is not None and type(head) is torch.nn.Linear and head.bias is None
            and weight.dtype == hidden.dtype == out.dtype and weight.device == out.device):
        logits = torch.mm(hidden, weight[:vocab_size].T, out=out)
    else:
        logits = head(hidden)[:, :vocab_size]
        logits = logits if out is None else out.copy_(logits)
    config = model.config
    scale = getattr(config, "logit_scale", None)
    if scale:
        logits.mul_(scale)
    softcap = getattr(config, "final_logit_softcapping", None)
    if softcap:
        logits.div_(softcap).tanh_().mul_(softcap)
    return logits


def rows_stats(base, rls: dict[str, object], hidden_b: torch.Tensor, hidden_r: dict[str, torch.Tensor],
               targets: torch.Tensor, vocab_size: int, config: ScoreConfig) -> dict[str, dict[str, torch.Tensor]]:
    """Statistics of rows of final hidden states (row i predicts targets[i]), chunk by chunk.

    The output heads write into one reused logits buffer (on base's head device); only the reduced
    statistics are kept.
    """
    device = base.get_output_embeddings().weight.device
    targets = targets.to(device)
    chunk = min(config.chunk_for(vocab_size), max(len(targets), 1))
    logits = torch.empty(2, chunk, vocab_size, dtype=hidden_b.dtype, device=device)  # reused
    parts: dict[str, list[dict[str, torch.Tensor]]] = {name: [] for name in rls}
    for lo in range(0, len(targets), chunk):
        hi = min(lo + chunk, len(targets))
        logits_b = head_logits(base, hidden_b[lo:hi], vocab_size, logits[0, :hi - lo])
        for name, model in rls.items():
            logits_r = head_logits(model, hidden_r[name][lo:hi], vocab_size, logits[1, :hi - lo])
            stats = pair_stats(logits_b, logits_r, targets[lo:hi], config.top_k)
            parts[name].append({k: v.cpu() for k, v in stats.items()})
    return {name: {k: torch.cat([p[k] for p in chunks]) for k in chunks[0]}
            for name, chunks in parts.items() if chunks}


def _check_score_arguments(base, rls, prompt_ids, response_ids, vocab_size, config) -> None:
    """score_pair's arguments, each refused in one line when of the wrong kind."""
    def is_model(m):
        return isinstance(m, torch.nn.Module) and hasattr(m, "get_input_embeddings")

    def is_ids(ids):
        return isinstance(ids, (list, tuple)) and all(isinstance(t, numbers.Integral) and not isinstance(t, bool) for t in ids)

    checks = [
        (is_model(base), f"base must be a loaded causal LM (a torch module), got {type(base).__name__}"),
        (isinstance(rls, dict) and rls and all(isinstance(k, str) and is_model(m) for k, m in rls.items()),
         f"rls must be a non-empty dict of name -> loaded causal LM, got {type(rls).__name__}"),
        (is_ids(prompt_ids) and len(prompt_ids) >= 1, "prompt_ids must be a non-empty list of token ids (ints)"),
        (is_ids(response_ids), "response_ids must be a list of token ids (ints)"),
        (isinstance(vocab_size, int) and not isinstance(vocab_size, bool) and vocab_size >= 1,
         f"vocab_size must be a positive integer, got {vocab_size!r}"),
        (isinstance(config, ScoreConfig), f"config must be a ScoreConfig, got {type(config).__name__}"),
    ]
    for ok, message in checks:
        if not ok:
            raise TokenshiftError(f"score_pair: {message}")
    if any(not 0 <= t < vocab_size for t in [*prompt_ids, *response_ids]):
        raise TokenshiftError(f"score_pair: a token id is outside 0..{vocab_size - 1}: pass ids of the tokenizer")


@torch.inference_mode()  # statistics, not training: no autograd even for a model fresh from training
def score_pair(base, rls: dict[str, object], prompt_ids: list[int], response_ids: list[int],
               vocab_size: int, config: ScoreConfig = ScoreConfig()) -> dict[str, dict[str, torch.Tensor]]:
    """Teacher-force prompt+response through base and every RL model; stats per response position.

    Returns {rl_name: {stat: tensor of length len(response_ids) (or [n, K] for top-k lists)}}.
    """
    _check_score_arguments(base, rls, prompt_ids, response_ids, vocab_size, config)
    ids = torch.tensor(list(prompt_ids) + list(response_ids), dtype=torch.long, device=input_device(base))
    rows = slice(len(prompt_ids) - 1, len(ids) - 1)  # logits at index i predict token i + 1
    hidden_b = final_hidden_states(base, ids)[rows]
    hidden_r = {name: final_hidden_states(model, ids)[rows] for name, model in rls.items()}
    return rows_stats(base, rls, hidden_b, hidden_r, ids[len(prompt_ids):], vocab_size, config)
