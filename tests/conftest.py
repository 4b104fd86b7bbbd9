"""Shared test fixtures: benchmark files (small in-test copies, and the real ones when present) and a quiet
environment."""

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

SHARED_BENCHMARKS = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks"


REAL_BENCHMARKS = "real_benchmarks"  # the marker of every test that reads them (`pytest -m real_benchmarks`)


def pytest_configure(config):
    config.addinivalue_line("markers", f"{REAL_BENCHMARKS}: reads the real benchmark files in ../shared/benchmarks "
                                       "(skips in a bare clone)")


def pytest_collection_modifyitems(items):
    """Mark the tests that request `shared_benchmarks`, so CI can run just those where the files are."""
    for item in items:
        if "shared_benchmarks" in getattr(item, "fixturenames", ()):
            item.add_marker(REAL_BENCHMARKS)


@pytest.fixture(scope="session")
def shared_benchmarks() -> Path:
    """The full real benchmark files beside the checkout; tests using them skip in a bare clone."""
    if not SHARED_BENCHMARKS.is_dir():
        pytest.skip(f"real benchmark files not found at {SHARED_BENCHMARKS} (only beside the dev checkout)")
    return SHARED_BENCHMARKS


@pytest.fixture(scope="session")
def benchmark_files(tmp_path_factory) -> Path:
    """A folder with small aime24/amc23/gsm8k.jsonl files in the real layouts (tests/benchmark_fixtures.py)."""
    from benchmark_fixtures import write_benchmarks

    return write_benchmarks(tmp_path_factory.mktemp("benchmarks"))


@pytest.fixture(scope="session")
def pristine(tmp_path_factory) -> Path:
    """A small schema-valid synthetic build (tests/synthetic_build.py), made once per session."""
    from synthetic_build import make_build

    return make_build(tmp_path_factory.mktemp("pristine") / "build")


@pytest.fixture()
def build(pristine, tmp_path) -> Path:
    """A private copy of the synthetic build that a test may corrupt."""
    return Path(shutil.copytree(pristine, tmp_path / "build"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models decode fastest on one thread (and far faster than two on shared, busy cores)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="session")
def _verdict_cache(tmp_path_factory):
    """Readers' remembered sha256 verdicts go to a folder of the test session, not the user's cache."""
    from tokenshift.schemas.verdicts import CACHE_ENV

    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("verdicts"))
    yield
