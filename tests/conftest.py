"""Shared test fixtures: paths to the shared benchmark files and a quiet environment."""

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

SHARED_BENCHMARKS = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks"


@pytest.fixture(scope="session")
def shared_benchmarks() -> Path:
    if not SHARED_BENCHMARKS.is_dir():
        pytest.fail(f"shared benchmark files not found at {SHARED_BENCHMARKS}")
    return SHARED_BENCHMARKS


@pytest.fixture(scope="session")
def pristine(tmp_path_factory) -> Path:
    """A small schema-valid synthetic build (tests/synthetic_build.py), made once per session."""
    from synthetic_build import make_build

    return make_build(tmp_path_factory.mktemp("pristine") / "build")


@pytest.fixture()
def build(pristine, tmp_path) -> Path:
    """A private copy of the synthetic build that a test may corrupt."""
    return Path(shutil.copytree(pristine, tmp_path / "build"))
