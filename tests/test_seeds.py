"""The seed scheme: each named seed is sha256 of its parts joined by '/', first 4 bytes, 31 bits."""

from __future__ import annotations

import hashlib

from tokenshift.runtime.seeds import derive_seed, generation_seed, resample_seed, selection_seed


def _sha31(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 2**31


def test_named_seeds_are_their_documented_parts():
    assert generation_seed(7, 3, "rl") == _sha31("7/3/rl") == derive_seed(7, 3, "rl")
    assert resample_seed(7, 3, "base", 2) == _sha31("7/3/resample/base/2")
    driver = generation_seed(0, 1, "base")
    assert selection_seed(driver, 0, "0.1", 4) == _sha31(f"{driver}/random/0/0.1/4")
    assert 0 <= generation_seed(2**40, 0, "x") < 2**31
