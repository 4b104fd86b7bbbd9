"""The recipes' bootstrap restated in numpy, for tests: the same problem draws, percentile intervals."""

from __future__ import annotations

import numpy as np


def draws(seed: int, reps: int, n: int) -> np.ndarray:
    """The recipes' problem numbers: lowbias32 of (seed * 3141592653 + r * 1000003 + j) mod 2^32, mod n."""
    r, j = np.meshgrid(np.arange(reps, dtype=np.uint64), np.arange(n, dtype=np.uint64), indexing="ij")
    m = np.uint64(2**32)
    x = (np.uint64(seed) * np.uint64(3141592653) + r * np.uint64(1000003) + j) % m
    x = ((x ^ (x >> np.uint64(16))) * np.uint64(2146121005)) % m
    x = ((x ^ (x >> np.uint64(15))) * np.uint64(2221713035)) % m
    return ((x ^ (x >> np.uint64(16))) % np.uint64(n)).astype(np.int64)


def ratio_interval(num: np.ndarray, den: np.ndarray, drawn: np.ndarray) -> tuple[float, float]:
    """Percentile interval of sum(num) / sum(den) over the drawn problems (replicates with den 0 left out)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        values = num[drawn].sum(1) / den[drawn].sum(1)
    values = values[np.isfinite(values)]
    return tuple(np.quantile(values, [0.025, 0.975])) if len(values) else (np.nan, np.nan)
