"""The recipes' bootstrap restated in numpy, for tests: the same Poisson weights, percentile intervals."""

from __future__ import annotations

from decimal import Decimal, getcontext
from pathlib import Path

import numpy as np


def poisson_cuts() -> np.ndarray:
    """round(2^32 * P(Poisson(1) <= k)) for the k whose cut is below 2^32, in 60-digit decimal arithmetic."""
    getcontext().prec = 60
    cuts, term, total, k = [], Decimal(-1).exp(), Decimal(0), 0
    while True:
        total += term
        cut = int((total * 2**32).to_integral_value())
        if cut >= 2**32:
            return np.array(cuts, dtype=np.uint64)
        cuts.append(cut)
        k += 1
        term /= k


def numbers(all_problem_ids, problem_ids) -> np.ndarray:
    """Each of `problem_ids`' number: its rank among the dataset's prompts.problem_id, ascending, from 0."""
    order = {pid: p for p, pid in enumerate(sorted(set(all_problem_ids)))}
    return np.array([order[pid] for pid in problem_ids], dtype=np.uint64)


def weights(seed: int, reps: int, problem_numbers) -> np.ndarray:
    """(reps, problems) Poisson(1) weights: the quantile of lowbias32((seed * 3141592653 + r * 1000003 + p) mod 2^32)."""
    r, p = np.meshgrid(np.arange(reps, dtype=np.uint64), np.asarray(problem_numbers, dtype=np.uint64), indexing="ij")
    m = np.uint64(2**32)
    x = (np.uint64(seed) * np.uint64(3141592653) + r * np.uint64(1000003) + p) % m
    x = ((x ^ (x >> np.uint64(16))) * np.uint64(2146121005)) % m
    x = ((x ^ (x >> np.uint64(15))) * np.uint64(2221713035)) % m
    x = x ^ (x >> np.uint64(16))
    return np.searchsorted(poisson_cuts(), x, side="right").astype(float)


def ratio_interval(num: np.ndarray, den: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Percentile interval of sum(w * num) / sum(w * den) over the replicates (rows of w; den 0 left out)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        values = (w @ np.asarray(num, float)) / (w @ np.asarray(den, float))
    values = values[np.isfinite(values)]
    return tuple(np.quantile(values, [0.025, 0.975])) if len(values) else (np.nan, np.nan)


def build_weights(build, seed: int, reps: int, problem_ids) -> np.ndarray:
    """weights() of these problems, numbered among the prompts of the build directory `build`."""
    import pyarrow.parquet as pq

    all_ids = [pid for part in sorted((Path(build) / "prompts").glob("*.parquet"))
               for pid in pq.read_table(part, columns=["problem_id"]).column(0).to_pylist()]
    return weights(seed, reps, numbers(all_ids, problem_ids))
