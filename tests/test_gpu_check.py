"""benchmarks/gpu_check.sh runs end to end in its tiny CPU setting, so the GPU check cannot rot before a GPU is lent."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADERS = ["row", "setting", "tokens/s", "seconds", "peak MiB", "ratio", "MFU", "max |diff|"]


def test_gpu_check_quick_prints_one_table_with_every_section():
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--quick"], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("device: cpu") and lines[-2].startswith("total ") and lines[-1].startswith("RATIOS ")
    cells = [re.split(r"\s{2,}", line.strip()) for line in lines]
    header = cells.index(HEADERS)
    rows = {row[0] + " " + row[1]: dict(zip(HEADERS, row, strict=True)) for row in cells[header + 2:-2]}
    assert [r.split(" ")[0] for r in rows] == ["scoring"] * 4 + ["paired"] * 2 + ["hf"] * 2 + ["vllm"], rows
    for key, row in rows.items():
        if key.startswith("vllm"):
            assert row["tokens/s"].startswith("skipped") or float(row["tokens/s"].replace(",", "")) > 0
            continue
        assert float(row["tokens/s"].replace(",", "")) > 0 and float(row["seconds"]) > 0, row
    # tokenshift's log-probs equal the log-softmax of the floor's logits, at both quick lengths
    scored = [row for key, row in rows.items() if key.startswith("scoring tokenshift")]
    assert [r["setting"] for r in scored] == ["128 tokens", "256 tokens"]
    assert all(float(r["max |diff|"]) < 1e-4 for r in scored), scored
