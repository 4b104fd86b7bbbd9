"""Run `tokenshift cross-sample` with the code of an earlier commit, in a subprocess, for byte-identity tests.

The commit's builders/, schemas/ and tokenshift/*.py come from git (its module paths, whatever they
were); only the embedded pair's files are today's (`tokenshift.toy.paths` points at them). Skips
where the git history is not available (a shallow clone, an exported tree).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_reference_cross_sample(commit: str, tmp_path: Path, out: Path, settings: str) -> None:
    """cross-sample `out` with CrossSampleConfig(out=..., <settings>) as `commit`'s code runs it."""
    old = tmp_path / f"code-{commit}"
    old.mkdir()
    try:
        listed = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "-r", "--name-only", commit,
                                 "builders", "schemas", "tokenshift"], check=True, capture_output=True,
                                text=True).stdout.split()
        paths = [p for p in listed if p.endswith((".py", ".json")) and not p.startswith("tokenshift/toy/")]
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, *paths], check=True,
                                 capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"git history with commit {commit} is not available")
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    script = textwrap.dedent(f"""
        import importlib.util, math, sys, types
        def package(name, paths):
            spec = importlib.util.spec_from_file_location(name, paths[0] + "/__init__.py",
                                                          submodule_search_locations=paths)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        package("tokenshift", [{str(old / "tokenshift")!r}])
        for sub in ("schemas", "builders"):
            package("tokenshift." + sub, [{str(old)!r} + "/" + sub])
        toy = types.ModuleType("tokenshift.toy")
        toy.__path__ = []
        sys.modules["tokenshift.toy"] = toy
        spec = importlib.util.spec_from_file_location("tokenshift.toy.paths",
                                                      {str(ROOT / "tokenshift" / "runtime" / "embedded_pair.py")!r})
        paths = importlib.util.module_from_spec(spec)
        sys.modules["tokenshift.toy.paths"] = paths
        spec.loader.exec_module(paths)
        import torch
        torch.set_num_threads(1)
        cs = importlib.import_module("tokenshift.builders.cross_sample")
        assert cs.__file__.startswith({str(old)!r})
        inf = math.inf
        cs.run_cross_sample(cs.CrossSampleConfig(out={str(out)!r}, {settings}), progress=False)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
