"""Token viewer: page size and time to open for one long answer, in headless Chromium (the test browser).

    python benchmarks/bench_viewer.py                      # an 8,192-token answer, top-10 candidates, 5 opens
    python benchmarks/bench_viewer.py --tokens 16384 --k 20

Writes a one-answer build like a real one at scale: a 151,936-token vocabulary, token ids and candidates drawn
from a Zipf law (so the answer uses a few thousand distinct ids, as text does), 4-character token texts, and 48
cross-sampled answers of the same problem (3 thresholds × 8 budgets × 2 directions) as long as the answer.
Then `write_viewer` makes the page; "open" is the wall time from `page.goto` to the page's script having drawn
every token (body[data-ready]), median of --repeats fresh tabs; "hover" is a hover until the tooltip shows the
hovered position; "recolour" is switching to base entropy. Targets: page < 2 MB, open < 2 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tokenshift.queries.viewer import write_viewer
from tokenshift.schemas.tables import to_arrow, write_parquet

VOCAB = 151_936


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=8192, help="answer length")
    parser.add_argument("--k", type=int, default=10, help="top-K candidates per model (the build's default: 10)")
    parser.add_argument("--cross", type=int, default=48, help="cross-sampled answers of the same problem")
    parser.add_argument("--repeats", type=int, default=5, help="fresh tabs opened (median reported)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    return parser.parse_args(argv)


def _zipf_ids(rng: np.random.Generator, shape) -> np.ndarray:
    return np.minimum(rng.zipf(1.2, size=shape), VOCAB) - 1


def write_long_build(out: Path, n: int, k: int, n_cross: int, seed: int = 0) -> Path:
    """A schema-valid build holding one answer of n tokens, with n_cross cross-samples of its problem."""
    rng = np.random.default_rng(seed)
    ids = _zipf_ids(rng, n)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    text = {int(i): " " + "".join(rng.choice(letters, 3)) for i in np.unique(ids)}
    cand_b, cand_r = _zipf_ids(rng, (n, k)), _zipf_ids(rng, (n, k))
    cand_b[:, 0] = ids
    cand_r[:, 0] = np.where(rng.random(n) < 0.95, ids, cand_r[:, 0])
    logp_b = np.sort(-rng.exponential(3.0, (n, k)), axis=1)[:, ::-1].astype(np.float32)
    logp_r = np.sort(-rng.exponential(3.0, (n, k)), axis=1)[:, ::-1].astype(np.float32)
    js = (rng.random(n) ** 8 * 0.5).astype(np.float32)
    tokens = [{"generation_id": "rl/p-0/0", "sampler": "rl", "rl_model": "rl", "position": i,
               "rel_position": i / (n - 1), "token_id": int(ids[i]), "token": text[int(ids[i])],
               "logp_base": float(logp_b[i, 0]), "logp_rl": float(logp_r[i, 0]),
               "entropy_base": float(rng.exponential(0.5)), "entropy_rl": float(rng.exponential(0.4)),
               "js": float(js[i]), "kl_base_rl": float(2 * js[i]), "kl_rl_base": float(2.1 * js[i]),
               "rank_base": 1, "rank_rl": 1, "top1_base": int(ids[i]), "top1_rl": int(cand_r[i, 0]),
               "rl_top1_rank_base": 1, "topk_base_ids": cand_b[i].tolist(), "topk_base_logp": logp_b[i].tolist(),
               "topk_rl_ids": cand_r[i].tolist(), "topk_rl_logp": logp_r[i].tolist(), "topk_overlap": 0.5}
              for i in range(n)]
    answer = "".join(t["token"] for t in tokens)
    tables = {
        "prompts": [{"problem_id": "p-0", "benchmark": "bench", "question": "Q " * 200, "gold_answer": "42",
                     "prompt": "Q " * 200}],
        "generations": [{"generation_id": "rl/p-0/0", "problem_id": "p-0", "benchmark": "bench", "sampler": "rl",
                         "sample_index": 0, "seed": 0, "response_text": answer, "n_tokens": n,
                         "finish_reason": "length", "extracted_answer": "42", "correct": True, "engine": "hf"}],
        "tokens": tokens,
        "cross_samples": [{"cross_id": f"threshold/forward/rl/0.1/{b}/p-0/{j}", "problem_id": "p-0", "rl_model": "rl",
                           "protocol": "threshold", "direction": "forward", "threshold": 0.1, "budget": float(b),
                           "budget_unit": "tokens", "sample_index": j, "seed": 0, "response_text": answer,
                           "n_tokens": n, "n_interventions": 8,
                           "intervention_positions": sorted(rng.choice(n, 8, replace=False).tolist()),
                           "intervention_fraction": 8 / n, "extracted_answer": "42", "correct": True,
                           "finish_reason": "length"} for j, b in enumerate(range(n_cross))],
    }
    for name, rows in tables.items():
        write_parquet(to_arrow(name, rows), out / name / "part-00000.parquet")
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        build = write_long_build(Path(tmp) / "build", args.tokens, args.k, args.cross)
        made = time.perf_counter() - t
        t = time.perf_counter()
        index = write_viewer(build, Path(tmp) / "view", top=1)
        written = time.perf_counter() - t
        page_path = next(p for p in index.parent.glob("*.html") if p.name != "index.html")
        size = page_path.stat().st_size
        opens, hovers, recolours = [], [], []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium)
            for _ in range(args.repeats):
                context = browser.new_context(viewport={"width": 1200, "height": 900})
                tab = context.new_page()
                t = time.perf_counter()
                tab.goto(page_path.as_uri())
                tab.wait_for_selector("body[data-ready='1']", state="attached")
                opens.append(time.perf_counter() - t)
                target = args.tokens // 2
                t = time.perf_counter()
                tab.hover(f"#t{target}")
                tab.wait_for_selector(f"#tip[data-position='{target}']")
                hovers.append(time.perf_counter() - t)
                t = time.perf_counter()
                tab.check("input[name=colour][value=entropy_base]")
                tab.wait_for_selector("body[data-colour='entropy_base']", state="attached")
                recolours.append(time.perf_counter() - t)
                context.close()
            version = browser.version
            browser.close()
    print(f"answer: {args.tokens} tokens, top-{args.k}, {args.cross} cross-samples; build written in {made:.1f} s, "
          f"page in {written:.2f} s; Chromium {version}")
    print(f"page size: {size / 1e6:.2f} MB ({size / args.tokens:.0f} bytes per token); target < 2 MB")
    print(f"open (median of {args.repeats}): {statistics.median(opens):.2f} s "
          f"(min {min(opens):.2f}, max {max(opens):.2f}); target < 2 s")
    print(f"hover to tooltip: {statistics.median(hovers) * 1000:.0f} ms; "
          f"recolour: {statistics.median(recolours) * 1000:.0f} ms (playwright round trips included)")
    opened = statistics.median(opens)
    verdict = "OK" if size < 2e6 and opened < 2.0 else "MISSED"
    print(f"RATIOS size/target={size / 2e6:.2f} open/target={opened / 2.0:.2f} {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
