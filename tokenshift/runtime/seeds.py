"""Every seed a build or a cross-sampling run draws from, derived from the run's one seed, and the
descriptions of the scheme the manifests record (kept beside the functions they describe)."""

from __future__ import annotations

import hashlib


def derive_seed(*parts) -> int:
    """A stable 31-bit seed from the build seed and a shard's coordinates (no Python hash())."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def generation_seed(seed: int, shard: int, sampler: str) -> int:
    """The generator of one sampler's answers in one prompt shard of a build; a cross-sampling driver
    replays it (so its budget 0 is the build's answers)."""
    return derive_seed(seed, shard, sampler)


def resample_seed(seed: int, shard: int, driver: str, step: int) -> int:
    """The generator of resample step `step` >= 1 of one driver in one prompt shard."""
    return derive_seed(seed, shard, "resample", driver, step)


def selection_seed(driver_seed: int, control_seed: int, label: str, batch: int) -> int:
    """A random control's selection draws for one setting and batch; `driver_seed` is the driver's
    generation_seed, `label` the setting's rate or the digest of its matched rates."""
    return derive_seed(driver_seed, "random", control_seed, label, batch)


# The manifest's "seeds" block: {"build": seed, "generation": ..., "cross_sampling": ...}.
GENERATION_SEEDS = "derive_seed(seed, shard, sampler); per row in generations.seed"
IMPORTED_SEEDS = "none: imported answers (generations.seed is null)"
CROSS_SAMPLING_SEEDS = ("derive_seed(seed, shard, driver) per driver, replayed per batch; resample step k >= 1: "
                        "derive_seed(seed, shard, 'resample', driver, k); random selection draws: "
                        "derive_seed(derive_seed(seed, shard, driver), 'random', control_seed, rate or digest of "
                        "the matched rates, batch); "
                        "per row in cross_samples.seed")
