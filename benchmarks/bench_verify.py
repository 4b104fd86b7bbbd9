"""What readers pay to verify parts: opening a 10M-token-row dataset with sizes only, sha256 once, and a remembered verdict.

Makes the dataset as bench_queries.py does (copies of a build's parts with fresh ids, `--rows` token
rows), then, each in a fresh process with an empty verdict folder at first: "sizes" (the rule readers
used before: `connect` with the listed parts' sizes checked), "first" (`connect`: every part hashed, the verdicts saved),
"again" (`connect` once more: the verdicts remembered, nothing hashed), and "query" (the accuracy recipe
run with remembered verdicts, `tokenshift query` as it runs, for scale). Wall and CPU seconds of the
step alone; the files are read right after they are written or timed once before, so they sit in the
page cache (what a reader on a warm machine sees; a cold disk adds its read time to "first").

    python benchmarks/bench_verify.py --build DIR            # a build (or registry version) to replicate
    python benchmarks/bench_verify.py --build DIR --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_queries import make_source_build, replicate  # noqa: E402
from common import print_table  # noqa: E402

STEPS = ("sizes", "first", "again", "query")


def worker(step: str, data: Path) -> dict:
    import tokenshift.queries.sources as sources
    from tokenshift.queries.run import connect, run_recipe

    if step == "sizes":  # connect as readers did before: each listed part's size checked, nothing hashed
        listed = sources.listed_paths
        sources.listed_paths = lambda root, recorded, table, check: listed(root, recorded, table, check="bytes")
    wall, cpu = time.perf_counter(), time.process_time()
    if step == "query":
        run_recipe("accuracy", data)
    else:
        connect(data)[0].close()
    return {"wall_s": round(time.perf_counter() - wall, 3), "cpu_s": round(time.process_time() - cpu, 3)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", help="build directory or registry version to replicate (default: build one)")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--data", help="where to write the dataset (default: a temporary directory; reused)")
    parser.add_argument("--worker", choices=STEPS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.data))))
        return
    root = Path(tempfile.gettempdir()) / "tokenshift-bench-verify"
    source = Path(args.build) if args.build else make_source_build(root)
    data = Path(args.data) if args.data else root / f"data-{args.rows}"
    copies = replicate(source, data, args.rows)
    parts = sorted(data.rglob("*.parquet"))
    size = sum(p.stat().st_size for p in parts)
    print(f"dataset {data}: {copies} copies of {source}, {len(parts)} parts, {size / 2**20:,.0f} MiB parquet; "
          f"load average {open('/proc/loadavg').read().split()[0]} before")
    rows = []
    with tempfile.TemporaryDirectory(prefix="tokenshift-verdicts-") as verdicts:
        env = {**os.environ, "TOKENSHIFT_CACHE_DIR": verdicts}
        for step in STEPS:
            cmd = [sys.executable, __file__, "--worker", step, "--data", str(data)]
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append([step, f"{measured['wall_s']:.3f}", f"{measured['cpu_s']:.3f}"])
    print_table(["step", "wall s", "CPU s"], rows)
    print(f"load average {open('/proc/loadavg').read().split()[0]} after")
    cpu = {row[0]: float(row[2]) for row in rows}
    print(f"RATIOS CPU first/sizes {cpu['first'] / max(cpu['sizes'], 1e-3):.1f}, "
          f"again/sizes {cpu['again'] / max(cpu['sizes'], 1e-3):.2f}, first/query {cpu['first'] / max(cpu['query'], 1e-3):.3f}")


if __name__ == "__main__":
    main()
