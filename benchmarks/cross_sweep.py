"""`bench_cross_sampling.py --sweep`: one cross-sampling sweep decoded setting by setting, as a shared-prefix tree,
and as that tree with budget 0 read from the build's answers.

Every path runs `cross_sampling.protocols.setting_runs` on the same prompts, seeds and settings (the
per-setting path with --max-branches 1), and must return identical rows (checked). The build's
answers are what `tokenshift build` samples with the HF engine: `generate()` per driver from
generation_seed(0, 0, driver) over the same batches (made before the clock starts). Counted:
decoded tokens (sampled tokens, as the plan meter counts them: a token shared by settings counts
once in the tree), paired rows computed (rows of the driver's forward passes: a batch row costs
one whether it holds a live answer or not), wall and CPU seconds (this process, all threads).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path

import torch
from common import machine_line, print_table

import tokenshift.builders.cross_sampling.protocols as protocols
from tokenshift.builders import plan
from tokenshift.builders.cross_sampling.build_answers import Known
from tokenshift.builders.cross_sampling.config import DEFAULT_THRESHOLDS, CrossSampleConfig
from tokenshift.builders.engines import generate
from tokenshift.runtime.meter import metering
from tokenshift.runtime.seeds import generation_seed

DEFAULT = CrossSampleConfig(out="")  # the default sweep: budgets 0,1,2,4,8,16,32,inf, both directions


class _Tokenizer:
    """What the paired decoder reads of a tokenizer, for a pair that has none."""

    def __init__(self, vocab: int, eos: int):
        self.vocab, self.eos_token_id, self.pad_token_id = vocab, eos, eos

    def __len__(self) -> int:
        return self.vocab


def _embedded(args):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tokenshift.builders.inputs.benchmarks import load_benchmark
    from tokenshift.builders.inputs.prompts import format_prompt
    from tokenshift.runtime.embedded_pair import embedded_base_dir, embedded_rl_dir

    tok = AutoTokenizer.from_pretrained(embedded_base_dir())
    base, rl = (AutoModelForCausalLM.from_pretrained(d).eval() for d in (embedded_base_dir(), embedded_rl_dir()))
    problems = load_benchmark("toy-arith", args.sweep_prompts)
    ids = [tok(format_prompt(tok, p.question), add_special_tokens=False)["input_ids"] for p in problems]
    prefixes = [row for row in ids for _ in range(args.sweep_samples)]
    sampling = generate.SamplingConfig(512, 1.0, 1.0, 64)  # the build's defaults
    label = (f"embedded pair, {len(problems)} toy-arith prompts x {args.sweep_samples} answers, batch 64, "
             "max 512 new tokens, JS thresholds 0.05,0.1,0.2 (the defaults)")
    return base, rl, tok, prefixes, sampling, DEFAULT_THRESHOLDS["js"], label


def _random(args, random_pair):
    from transformers import AutoModelForCausalLM

    rows, tokens, batch = args.sweep_random
    with tempfile.TemporaryDirectory() as tmp:
        base_dir, rl_dir, name = random_pair(args.hidden, args.layers, 151936, args.rl_noise, Path(tmp))
        base, rl = (AutoModelForCausalLM.from_pretrained(d).eval() for d in (base_dir, rl_dir))
    gen = torch.Generator().manual_seed(0)
    prefixes = torch.randint(1, 151936, (rows, 16), generator=gen).tolist()
    sampling = generate.SamplingConfig(tokens, 1.0, 1.0, batch)
    tok = _Tokenizer(151936, 0)
    # JS of a random pair has no natural scale: thresholds at the 90th, 95th and 98th percentile of the
    # driver-alone positions select 10%, 5% and 2% of them (the embedded pair's defaults select a few %)
    run = protocols.Run(DEFAULT, None, tok, base, rl, sampling, False)
    decoder = protocols.PairDecoder(run, base, rl)
    alone = decoder(prefixes[:batch], [tokens] * batch, decoder.generator(1))
    js = torch.tensor([v for d in alone for v in d.js])
    thresholds = tuple(round(float(q), 6) for q in torch.quantile(js, torch.tensor([0.9, 0.95, 0.98])))
    label = (f"{name}, {rows} answers of 16-token random prompts, batch {batch}, {tokens} new tokens, "
             f"JS thresholds {', '.join(map(str, thresholds))} (90/95/98th percentiles)")
    return base, rl, tok, prefixes, sampling, thresholds, label


def _build_answers(base, rl, tok, prefixes, sampling) -> dict[str, list[Known]]:
    """Per direction, the driver's answers as a build samples them (HF engine, the build's seed formula and batches)."""
    out = {}
    for direction, name, driver in (("forward", "base", base), ("reverse", "rl", rl)):
        samples = generate.generate_hf(driver, tok, prefixes, 1, generation_seed(0, 0, name), sampling)
        out[direction] = [Known(tuple(s.token_ids), s.finish_reason) for s in samples]
    return out


def _measure(base, rl, tok, prefixes, sampling, thresholds, branches: int,
             known: dict[str, list[Known]] | None = None) -> tuple[dict, dict]:
    """Both directions of the sweep with --max-branches `branches` (and the build's answers of budget 0, if
    given): (rows by direction and setting, counts)."""
    config = CrossSampleConfig(out="", thresholds=thresholds, max_branches=branches)
    run = protocols.Run(config, None, tok, base, rl, sampling, False)
    computed = []
    hook = base.register_forward_pre_hook(lambda _m, _a, kw: computed.append(kw["input_ids"].shape[0]),
                                          with_kwargs=True)
    rows = {}
    bound = plan.Plan("cross-sample", (), 0, 1, 0, 0)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        with metering(bound, lambda _line: None, progress=False) as meter:
            for direction, (name, driver, other) in (("forward", ("base", base, rl)), ("reverse", ("rl", rl, base))):
                decoder = protocols.PairDecoder(run, driver, other)
                out = protocols.setting_runs(run, decoder, prefixes, generation_seed(0, 0, name), direction,
                                             protocols.selections(config), known and known[direction])
                rows[direction] = {(sel.threshold, budget): [(d.token_ids, d.interventions, d.finish_reason)
                                                             for d in decoded]
                                   for (sel, budget), decoded in out.items()}
    finally:
        hook.remove()
    counts = {"decoded": meter.decoded, "computed": sum(computed), "wall": time.perf_counter() - wall,
              "cpu": time.process_time() - cpu, "reproduced": protocols.NOT_REPRODUCED not in run.said}
    return rows, counts


def run_sweeps(args, random_pair) -> None:
    """Print, per pair, the per-setting path and the tree side by side, and their ratios."""
    print(machine_line(args.device) + f" | pid {os.getpid()} | --max-branches {args.max_branches}")
    pairs = [("embedded", lambda: _embedded(args)), ("random 152k", lambda: _random(args, random_pair))]
    pairs = [p for p in pairs if p[0].split()[0] in args.sweep_pairs]
    table, ratios = [], []
    for short, make in pairs:
        base, rl, tok, prefixes, sampling, thresholds, label = make()
        print(f"{short}: {label}")
        known = _build_answers(base, rl, tok, prefixes, sampling)
        ref_rows, ref = _measure(base, rl, tok, prefixes, sampling, thresholds, 1)
        new_rows, new = _measure(base, rl, tok, prefixes, sampling, thresholds, args.max_branches)
        reuse_rows, reuse = _measure(base, rl, tok, prefixes, sampling, thresholds, args.max_branches, known)
        assert new_rows == ref_rows, "the tree's rows differ from the per-setting path's"
        assert reuse_rows == ref_rows, "the tree's rows with budget 0 read from the build differ"
        same = sum(rows[(thresholds[0], 0.0)] == [(list(k.token_ids), [], k.finish_reason) for k in known[d]]
                   for d, rows in ref_rows.items())
        interventions = sum(len(r[1]) for rows in new_rows.values() for setting in rows.values() for r in setting)
        for path, c in (("per setting", ref), (f"tree of {args.max_branches}", new),
                        (f"tree of {args.max_branches}, budget 0 from the build", reuse)):
            table.append([short, path, f"{c['decoded']:,}", f"{c['computed']:,}", f"{c['wall']:.1f}", f"{c['cpu']:.1f}"])
        ratios.append(f"{short}: decoded tokens {new['decoded'] / ref['decoded']:.3f}, paired rows computed "
                      f"{new['computed'] / ref['computed']:.3f}, wall {new['wall'] / ref['wall']:.3f}, "
                      f"CPU {new['cpu'] / ref['cpu']:.3f} (new / old; rows identical, {interventions:,} interventions)")
        ratios.append(f"{short}, budget 0 from the build: decoded tokens {reuse['decoded'] / ref['decoded']:.3f}, "
                      f"paired rows computed {reuse['computed'] / ref['computed']:.3f}, wall "
                      f"{reuse['wall'] / ref['wall']:.3f}, CPU {reuse['cpu'] / ref['cpu']:.3f} (/ old); vs the tree: "
                      f"decoded {reuse['decoded'] / new['decoded']:.3f}, CPU {reuse['cpu'] / new['cpu']:.3f}; build's "
                      f"answers reproduced in {same}/2 directions{'' if reuse['reproduced'] else ' (the run said not)'}")
    print_table(["pair", "path", "decoded tokens", "paired rows computed", "wall s", "CPU s"], table)
    for line in ratios:
        print(line)
    print(f"default sweep: {len(DEFAULT.budgets)} budgets x 3 thresholds x 2 directions "
          f"({', '.join('inf' if math.isinf(b) else f'{b:g}' for b in DEFAULT.budgets)})")
