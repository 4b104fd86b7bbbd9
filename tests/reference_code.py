"""Run `tokenshift cross-sample` with the code of an earlier commit, in a subprocess, for byte-identity tests.

The commit's tracked files of tokenshift/, builders/, schemas/, publish/, cards/ and queries/ come from
git and are laid out as the package installs them (the folders at their import paths under
tokenshift/); only the embedded pair's weights are today's. The subprocess finds that tree first on
its path, and so do the grading workers it starts. Skips where the git history is not available (a
shallow clone, an exported tree).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("schemas", "builders", "publish", "cards", "queries")  # the top-level folders installed as tokenshift.*
SOURCES = (".py", ".json", ".sql", ".html")
PAIR = "tokenshift/toy/pair/"  # the weights: today's, linked


def reference_tree(commit: str, tmp_path: Path, schema_version: str | None = None) -> Path:
    """A folder holding `commit`'s package as installed (tokenshift/ and its parts), the pair's weights linked;
    schema_version: the label its schemas/tables.py writes and reads instead of its own (for a test whose table the
    version bumps since `commit` left unchanged)."""
    site = tmp_path / f"code-{commit}"
    try:
        listed = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "-r", "--name-only", commit, *PARTS, "tokenshift"],
                                check=True, capture_output=True, text=True).stdout.split()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, *[p for p in listed if p.endswith(SOURCES) and not p.startswith(PAIR)]],
                                 check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"git history with commit {commit} is not available")
    raw = tmp_path / f"raw-{commit}"
    raw.mkdir()
    subprocess.run(["tar", "-x", "-C", str(raw)], input=archive, check=True)
    (site / "tokenshift").parent.mkdir(parents=True)
    (raw / "tokenshift").rename(site / "tokenshift")
    for part in PARTS:
        (raw / part).rename(site / "tokenshift" / part)
    (site / "tokenshift" / "toy" / "pair").symlink_to(ROOT / "tokenshift" / "toy" / "pair")
    if schema_version is not None:
        tables = site / "tokenshift" / "schemas" / "tables.py"
        text, n = re.subn(r'^SCHEMA_VERSION = "[^"]*"', f'SCHEMA_VERSION = "{schema_version}"',
                          tables.read_text(encoding="utf-8"), flags=re.M)
        assert n == 1, f"{commit}'s schemas/tables.py defines SCHEMA_VERSION {n} times"
        tables.write_text(text, encoding="utf-8")
    return site


def run_reference_cross_sample(commit: str, tmp_path: Path, out: Path, settings: str | list[str],
                               schema_version: str | None = None) -> None:
    """cross-sample `out` with CrossSampleConfig(out=..., <settings>) as `commit`'s code runs it (a list: one run
    after another, in one process); schema_version as in reference_tree."""
    runs = [settings] if isinstance(settings, str) else settings
    site = reference_tree(commit, tmp_path, schema_version)
    script = textwrap.dedent(f"""
        import importlib, math
        import torch
        import tokenshift
        assert tokenshift.__file__.startswith({str(site)!r}), tokenshift.__file__
        torch.set_num_threads(1)
        cs = importlib.import_module("tokenshift.builders.cross_sample")
        inf = math.inf
        if __name__ == "__main__":
            for settings in {runs!r}:
                config = eval(f"cs.CrossSampleConfig(out={str(out)!r}, {{settings}})")
                cs.run_cross_sample(config, progress=False)
    """)
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
