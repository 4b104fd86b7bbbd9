"""Token-shift statistics of a set of scored answers, defined as the query recipes define them.

share over each JS threshold and JS percentiles (js_distribution), where the high-JS tokens sit
(first / middle / last `edge_tokens` of each answer, as position_concentration) and the share of
positions whose policy top-1 is in the base top-k (reranking, evolution).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PARTS = ("first", "middle", "last")


@dataclass(frozen=True)
class ShiftStatsConfig:
    """Thresholds in nats; percentiles as fractions; defaults are the recipes' defaults."""

    thresholds: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2)
    percentiles: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99)
    high_js: float = 0.1
    edge_tokens: int = 32
    top_rank: int = 3


def _part(position: np.ndarray, n: int, edge: int) -> np.ndarray:
    """'first' / 'middle' / 'last' of each position of an n-token answer (position_concentration's rule)."""
    return np.where(position < edge, "first", np.where(position >= n - edge, "last", "middle"))


def shift_stats(answers: list[dict], config: ShiftStatsConfig = ShiftStatsConfig()) -> dict[str, float]:
    """Statistics over every position of `answers` (each a dict with 1-D arrays js, rl_top1_rank_base)."""
    answers = [a for a in answers if len(a["js"])]
    if not answers:
        return {}
    js = np.concatenate([np.asarray(a["js"], dtype=np.float32) for a in answers]).astype(np.float64)
    rank = np.concatenate([np.asarray(a["rl_top1_rank_base"]) for a in answers])
    parts = np.concatenate([_part(np.arange(len(a["js"])), len(a["js"]), config.edge_tokens) for a in answers])
    out = {"n_tokens": float(len(js)), "mean_js": float(js.mean())}
    for level in config.percentiles:
        out[f"js_p{level * 100:g}"] = float(np.quantile(js, level))
    for threshold in config.thresholds:
        out[f"share_js_ge_{threshold:g}"] = float((js >= threshold).mean())
    over = js >= config.high_js
    for part in PARTS if over.any() else ():  # no high-JS token: no shares (loggers reject NaN)
        out[f"high_js_share_{part}"] = float((over & (parts == part)).sum() / over.sum())
    out[f"policy_top1_in_base_top{config.top_rank}"] = float((rank <= config.top_rank).mean())
    return out
