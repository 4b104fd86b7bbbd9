"""The one decoding loop writes the cross_samples parts byte for byte as the three decoders it replaced did.

REFERENCE_COMMIT is the last commit with the per-setting decoder, the shared-prefix tree and the
per-setting runs as separate code; its whole tree runs in a subprocess (tests/reference_code.py) on a
copy of the same build, and every parquet part of every run must have the same bytes. Its code writes
schema version 2.1; the bumps since added tokens columns only, so it runs labelled with today's version
(which every part records) and its cross_samples contract is checked to be today's.
"""
# ruff: noqa: F811  (pytest fixtures imported from test_cross_sample are parameters here, by design)

import hashlib
import math
import shutil

import pytest
from reference_code import run_reference_cross_sample
from test_cross_sample import build, pair, thresholds  # noqa: F401

import tokenshift.builders.cross_sampling.runner as cs
from tokenshift.schemas.tables import SCHEMA_VERSION, TABLE_FIELDS
from tokenshift.schemas.versions import contract

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REFERENCE_COMMIT = "0fc0d9d"  # main before the decoders became one module

SETTINGS = {  # one run each, as CrossSampleConfig keywords (after out=); no two share a setting's ids
    "js-trees": "thresholds={t}, budgets=(0, 1, 2, inf)",
    "js-per-setting": "thresholds=(0.0,), budgets=(1, 2), max_branches=1, direction='reverse'",
    "kl-mix-fraction": "criterion='kl', thresholds=(0.01, 0.05), budgets=(0, 0.1, inf), budget_unit='fraction', "
                       "mix_weight=0.5",
    "delta-log-extrapolate": "criterion='delta_logp', sign='le', thresholds=(-0.2,), budgets=(1, inf), "
                             "mix_space='log', mix_weight=1.5",
    "random-rate": "criterion='random', rate=(0.1, 0.3), control_seeds=2, budgets=(0, 2, inf)",
    "resample": "protocol='resample', budgets=(0, 1, 2)",
}


def _hashes(out) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "cross_samples").glob("*.parquet"))}


def test_cross_samples_parts_are_byte_identical_to_the_reference_commit(tmp_path, build, thresholds):
    """Every setting of SETTINGS, one run after another into one build (their runs share the table, as users'
    do), with the reference commit's code and today's: the same parts with the same bytes."""
    settings = [s.format(t=tuple(thresholds)) for s in SETTINGS.values()]
    before, after = tmp_path / "old" / "b", tmp_path / "new" / "b"
    shutil.copytree(build, before)
    shutil.copytree(build, after)
    assert contract("2.1")["cross_samples"] == TABLE_FIELDS["cross_samples"]  # REFERENCE_COMMIT's table is today's
    run_reference_cross_sample(REFERENCE_COMMIT, tmp_path, before, settings, schema_version=SCHEMA_VERSION)
    for one in settings:
        config = eval(f"dict({one})", {"inf": math.inf})  # noqa: S307 (the test's own literal)
        cs.run_cross_sample(cs.CrossSampleConfig(out=str(after), **config), progress=False)
    want, got = _hashes(before), _hashes(after)
    assert len(want) >= 2 * len(SETTINGS) and got == want  # two prompt shards per run
