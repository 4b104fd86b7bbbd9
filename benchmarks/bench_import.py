"""Importing answers vs generating them: `tokenshift build` against `tokenshift build --completions`
for the same answers of the embedded pair, side by side in one process.

    python benchmarks/bench_import.py --quick     # 16 problems x 2 answers per model, one round
    python benchmarks/bench_import.py             # 32 problems x 2 answers per model, best of 2 rounds
    python benchmarks/bench_import.py --problems 64 --samples 4 --rounds 3

Each round builds into a fresh folder (generate, grade, score), exports that build's answers to a
jsonl file (prompt, token ids, text, sampler, gold), then imports them three times: with the token
ids (the exact tokens are scored), with the text alone (tokenized again), and with the token ids
but no gold answer (scoring alone: correct stays null). The first two grade with math-verify
against the same gold answers as the build, so their difference to it is generation. The imported
tokens table is checked against the build's (largest |difference| of every float statistic).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from common import machine_line, print_table

from tokenshift.builders.pipeline.build import BuildConfig, run_build
from tokenshift.builders.pipeline.import_build import run_import

FLOATS = ("logp_base", "logp_rl", "entropy_base", "entropy_rl", "js", "kl_base_rl", "kl_rl_base")


def export(build: Path, path: Path) -> int:
    """Write every answer of `build` as one jsonl row; returns the number of answers."""
    prompts = {r["problem_id"]: r for r in pq.read_table(build / "prompts").to_pylist()}
    tokens = pq.read_table(build / "tokens", columns=["generation_id", "rl_model", "position", "token_id"]).to_pandas()
    tokens = tokens[tokens.rl_model == tokens.rl_model.iloc[0]].sort_values(["generation_id", "position"])
    ids = tokens.groupby("generation_id").token_id.apply(list).to_dict()
    rows = pq.read_table(build / "generations").to_pylist()
    with path.open("w") as fh:
        for g in rows:
            p = prompts[g["problem_id"]]
            fh.write(json.dumps({"id": g["problem_id"], "prompt": p["prompt"], "ids": ids[g["generation_id"]],
                                 "text": g["response_text"], "model": g["sampler"], "gold": p["gold_answer"]}) + "\n")
    return len(rows)


def imported(src: Path, out: Path, with_ids: bool, with_gold: bool = True) -> Path:
    return run_import(BuildConfig(out=str(out), benchmark=None, completions=str(src), format="fields",
                                  prompt_field="prompt", completion_field="text", id_field="id",
                                  token_ids_field="ids" if with_ids else None, sampler_field="model",
                                  gold_field="gold" if with_gold else None), progress=False)


def largest_difference(a: Path, b: Path) -> float:
    keys = ["generation_id", "rl_model", "position"]
    x = pq.read_table(a / "tokens").to_pandas().sort_values(keys).reset_index(drop=True)
    y = pq.read_table(b / "tokens").to_pandas().sort_values(keys).reset_index(drop=True)
    if len(x) != len(y) or not (x[keys] == y[keys]).all().all():
        return float("inf")
    return max(float(np.abs(x[c].to_numpy() - y[c].to_numpy()).max()) for c in FLOATS)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 problems, 2 answers per model, one round")
    parser.add_argument("--problems", type=int, default=32)
    parser.add_argument("--samples", type=int, default=2, help="answers per problem and model")
    parser.add_argument("--rounds", type=int, default=2, help="best of this many rounds")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: fastest on shared cores)")
    args = parser.parse_args(argv)
    limit, samples, rounds = (16, 2, 1) if args.quick else (args.problems, args.samples, args.rounds)
    torch.set_num_threads(args.threads)
    print(machine_line("cpu"))
    print(f"embedded pair, toy-arith: {limit} problems x {samples} answers per model (base, rl), "
          f"max 512 new tokens; best of {rounds} round(s)")
    runs = {"import, token ids (grade + score)": (True, True), "import, text (tokenize + grade + score)": (False, True),
            "import, token ids, no gold (score)": (True, False)}
    best = {"build (generate + grade + score)": float("inf"), **dict.fromkeys(runs, float("inf"))}
    worst_difference, answers, rows = 0.0, 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for r in range(rounds):
            started = time.perf_counter()
            build = run_build(BuildConfig(out=str(root / f"build-{r}"), limit=limit, samples=samples), progress=False)
            best["build (generate + grade + score)"] = min(best["build (generate + grade + score)"],
                                                           time.perf_counter() - started)
            answers = export(build, root / f"answers-{r}.jsonl")
            rows = pq.read_metadata(build / "tokens" / "part-00000.parquet").num_rows
            for i, (label, (with_ids, with_gold)) in enumerate(runs.items()):
                started = time.perf_counter()
                out = imported(root / f"answers-{r}.jsonl", root / f"import-{r}-{i}", with_ids, with_gold)
                best[label] = min(best[label], time.perf_counter() - started)
                if with_ids:
                    worst_difference = max(worst_difference, largest_difference(build, out))
                shutil.rmtree(out)
            shutil.rmtree(build)
    print(f"{answers} answers; first shard's tokens rows {rows:,}")
    base = best["build (generate + grade + score)"]
    print_table(["run", "wall s", "x build"], [[k, f"{v:.1f}", f"{v / base:.2f}"] for k, v in best.items()])
    print(f"imported (token ids) vs built tokens: largest |difference| of a float statistic {worst_difference:.2e}")
    print("RATIOS " + json.dumps({k: round(v / base, 3) for k, v in best.items()}))


if __name__ == "__main__":
    sys.exit(main())
