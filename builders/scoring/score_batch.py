"""Score many answers at once: one right-padded decoder pass per model per batch of answers,
then the chunked statistics over all their response positions together.

Short answers are dominated by per-call overhead when scored one by one; batching them keeps
the same numbers (right padding never reaches a real token under a causal mask).
"""

from __future__ import annotations

import torch

from tokenshift.builders.engines.models import input_device
from tokenshift.builders.scoring.score import ScoreConfig, rows_stats


def answer_batches(lengths: list[int], max_batch_tokens: int) -> list[range]:
    """Consecutive groups of answers whose padded size (count × longest) stays within the budget."""
    groups, start, longest = [], 0, 0
    for i, n in enumerate(lengths):
        longest_with = max(longest, n)
        if i > start and longest_with * (i - start + 1) > max_batch_tokens:
            groups.append(range(start, i))
            start, longest_with = i, n
        longest = longest_with
    if lengths:
        groups.append(range(start, len(lengths)))
    return groups


def _hidden(model, ids: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Final-norm hidden states of a right-padded batch at the flattened positions `rows`, [len(rows), H]."""
    out = model.get_decoder()(input_ids=ids.to(input_device(model)), use_cache=False)
    hidden = out.last_hidden_state.reshape(-1, out.last_hidden_state.shape[-1])
    return hidden[rows.to(hidden.device)]


@torch.inference_mode()
def score_answers(base, rls: dict[str, object], answers: list[tuple[list[int], list[int]]],
                  vocab_size: int, config: ScoreConfig = ScoreConfig(),
                  max_batch_tokens: int = 8192) -> list[dict[str, dict[str, torch.Tensor]]]:
    """`score_pair` for every (prompt_ids, response_ids): [{rl_name: {stat: tensor}}] in order."""
    device = input_device(base)
    results: list[dict] = [{} for _ in answers]
    lengths = [len(p) + len(r) for p, r in answers]
    for group in answer_batches(lengths, max_batch_tokens):
        members = [i for i in group if answers[i][1]]
        if not members:
            continue
        width = max(lengths[i] for i in members)
        ids = torch.zeros((len(members), width), dtype=torch.long)
        rows, targets, sizes = [], [], []
        for b, i in enumerate(members):
            prompt, response = answers[i]
            ids[b, :lengths[i]] = torch.tensor(list(prompt) + list(response))
            rows.append(torch.arange(len(prompt) - 1, lengths[i] - 1) + b * width)
            targets += response
            sizes.append(len(response))
        ids, rows = ids.to(device), torch.cat(rows).to(device)
        targets = torch.tensor(targets, dtype=torch.long, device=device)
        hidden_b = _hidden(base, ids, rows)
        hidden_r = {name: _hidden(model, ids, rows) for name, model in rls.items()}
        joined_by_model = rows_stats(base, rls, hidden_b, hidden_r, targets, vocab_size, config)
        for name, joined in joined_by_model.items():
            for i, piece in zip(members, zip(*(joined[k].split(sizes) for k in joined))):
                results[i][name] = dict(zip(joined, piece))
    return results
