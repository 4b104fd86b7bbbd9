"""Full-vocabulary divergence between the starting model and the current policy on a training batch.

Padding is stripped first, so each answer is scored exactly as the builders score it (`score_answers`,
the chunked scorer behind the tokens table).
"""

from __future__ import annotations

import torch

from tokenshift.builders.scoring.score import ScoreConfig
from tokenshift.builders.scoring.score_batch import score_answers

POLICY = "policy"


def unpadded_answers(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
                     completion_mask: torch.Tensor) -> list[tuple[list[int], list[int]]]:
    """(prompt tokens, completion tokens) of each row of a padded batch, masks applied."""
    return [(p[pm.bool()].tolist(), c[cm.bool()].tolist())
            for p, pm, c, cm in zip(prompt_ids.cpu(), prompt_mask.cpu(), completion_ids.cpu(), completion_mask.cpu())]


def score_batch(base, policy, answers: list[tuple[list[int], list[int]]], vocab_size: int,
                config: ScoreConfig = ScoreConfig()) -> list[dict[str, torch.Tensor]]:
    """The builders' per-position statistics (base vs policy) of each answer, in order ({} if empty)."""
    was_training = policy.training
    policy.eval()
    try:
        scored = score_answers(base, {POLICY: policy}, answers, vocab_size, config)
    finally:
        policy.train(was_training)
    return [s.get(POLICY, {}) for s in scored]


def base_js(base, policy, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
            completion_mask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """JS(base ‖ policy) in nats at each completion position, [B, T] aligned with completion_ids (0 at padding)."""
    answers = unpadded_answers(prompt_ids, prompt_mask, completion_ids, completion_mask)
    js = torch.zeros(completion_ids.shape, dtype=torch.float32)
    for row, (stats, mask) in enumerate(zip(score_batch(base, policy, answers, vocab_size), completion_mask.cpu())):
        if stats:
            js[row, mask.bool()] = stats["js"].float()
    return js.to(completion_ids.device)
