"""Scoring speed and peak memory: tokenshift's chunked scorer (`score_pair`) against the floor (the
two bare forward passes that produce the logits) and against the script a researcher would write
(fp32 log-softmax of both models' full logits, then every statistic over the full tensors).

    python benchmarks/bench_scoring.py --quick          # lengths 512, 2048 (≤ 2 minutes on CPU)
    python benchmarks/bench_scoring.py                  # lengths 512, 2048, 8192
    python benchmarks/bench_scoring.py --device cuda --dtype bfloat16 --hidden 3584 --layers 4
    python benchmarks/bench_scoring.py --model BASE_DIR --rl-model RL_DIR --device cuda --dtype bfloat16

    python benchmarks/bench_scoring.py --quick --before-ref main   # and the scorer of another git revision

With --before-ref, "before" is `score_pair` as builders/scoring/score.py of that revision has it (loaded from
git), timed interleaved with today's, so the two are compared side by side in one run.

Without --model the pair is a random-initialised Qwen2 architecture with Qwen2.5's output size
(151,936 rows), a small hidden size and untied embeddings; the RL model is the base with every
weight perturbed. Times are best-of-N with the competitors interleaved in one process; peak
memory is measured once per competitor and length in a fresh process (see common.PeakMemory).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import torch
from common import GIB, MIB, PeakMemory, best_of, machine_line, print_table, resident_bytes, run_isolated

from tokenshift.builders.scoring.score import ScoreConfig, score_pair

QWEN25_VOCAB = 151_936
TOP_K = 10
# fp32 (answer × vocabulary) arrays the full-logits script holds at its peak: two log-softmaxes,
# two probabilities, the mixture's log and two product temporaries.
SCRIPT_ARRAYS = 7


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="lengths 512 and 2048, one timed run each")
    parser.add_argument("--lengths", type=int, nargs="+", help="answer lengths (default 512 2048 8192)")
    parser.add_argument("--prompt", type=int, default=64, help="prompt length in tokens")
    parser.add_argument("--repeats", type=int, help="timed runs per competitor (default 3, quick 1)")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, help=f"vocabulary size (default {QWEN25_VOCAB:,}, or the tokenizer's)")
    parser.add_argument("--model", help="base checkpoint directory (with --rl-model) instead of a random pair")
    parser.add_argument("--rl-model", help="RL checkpoint directory")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared machine idle cores are rare, and "
                             "multi-threaded kernels then stall on descheduled threads)")
    parser.add_argument("--chunk", type=int, help="ScoreConfig.chunk_positions (default: from the budget)")
    parser.add_argument("--memory-budget-mb", type=int, default=ScoreConfig.memory_budget_mb)
    parser.add_argument("--max-gib", type=float, default=8.0,
                        help="skip the full-logits script where the process would need more than this")
    parser.add_argument("--full", action="store_true", help="run the full-logits script at every length")
    parser.add_argument("--before-ref", help="also time builders/scoring/score.py of this git revision ('before')")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one memory measurement
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if bool(args.model) != bool(args.rl_model):
        parser.error("--model and --rl-model go together")
    args.lengths = args.lengths or ([512, 2048] if args.quick else [512, 2048, 8192])
    args.repeats = args.repeats or (1 if args.quick else 3)
    return args


def random_pair(args):
    """A random Qwen2 base and an RL model that is the base with every weight perturbed."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    heads = max(1, args.hidden // 64)
    config = Qwen2Config(vocab_size=args.vocab or QWEN25_VOCAB, hidden_size=args.hidden,
                         intermediate_size=3 * args.hidden, num_hidden_layers=args.layers,
                         num_attention_heads=heads, num_key_value_heads=max(1, heads // 4),
                         max_position_embeddings=32768, tie_word_embeddings=False)
    torch.manual_seed(0)
    with torch.device(args.device):
        base = Qwen2ForCausalLM(config)
    rl = copy.deepcopy(base)
    with torch.no_grad():
        for param in rl.parameters():
            param.add_(torch.randn_like(param) * 0.2 * param.std())
    return base, rl, config.vocab_size


def load_pair(args):
    """(base, rl, vocabulary size) on the device, in eval mode."""
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    if args.model:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        base, rl = (AutoModelForCausalLM.from_pretrained(p, dtype=getattr(torch, args.dtype))
                    for p in (args.model, args.rl_model))
        vocab = args.vocab or len(AutoTokenizer.from_pretrained(args.model))
    else:
        base, rl, vocab = random_pair(args)
    dtype = getattr(torch, args.dtype)
    base, rl = base.to(args.device, dtype).eval(), rl.to(args.device, dtype).eval()
    if args.model and args.device == "cpu":  # page memory-mapped weights in now, not during a run
        for tensor in [*base.parameters(), *base.buffers(), *rl.parameters(), *rl.buffers()]:
            tensor.data = tensor.data.clone()
    return base, rl, vocab


def inputs(length: int, args, vocab: int) -> tuple[list[int], list[int]]:
    """Random prompt and answer token ids (the same for every competitor)."""
    ids = torch.randint(0, vocab, (args.prompt + length,), generator=torch.Generator().manual_seed(length))
    return ids[:args.prompt].tolist(), ids[args.prompt:].tolist()


@torch.inference_mode()
def floor(base, rl, prompt, answer, vocab, args):
    """The two bare forward passes that produce the logits, each discarded before the next."""
    ids = torch.tensor([prompt + answer], device=args.device)
    for model in (base, rl):
        _logits(model, ids)


def _logits(model, ids) -> None:
    model(ids, use_cache=False).logits  # noqa: B018 (the logits are made, then dropped)


def tokenshift(base, rl, prompt, answer, vocab, args):
    """tokenshift's scorer: decoder once per model, head and statistics on chunks."""
    config = ScoreConfig(top_k=TOP_K, chunk_positions=args.chunk, memory_budget_mb=args.memory_budget_mb)
    return score_pair(base, {"rl": rl}, prompt, answer, vocab, config)["rl"]


_BEFORE = {}
MOVED_MODULES = {"tokenshift.errors": "tokenshift.runtime.errors", "tokenshift.arguments": "tokenshift.runtime.arguments",
                 "tokenshift.builders.models": "tokenshift.builders.engines.models"}


def before(base, rl, prompt, answer, vocab, args):
    """The scorer of git revision --before-ref (its score.py loaded from git), same settings."""
    if args.before_ref not in _BEFORE:
        root = Path(__file__).resolve().parent.parent
        for path in ("builders/scoring/score.py", "builders/score.py"):  # where the scorer lived, newest first
            shown = subprocess.run(["git", "-C", str(root), "show", f"{args.before_ref}:{path}"],
                                   capture_output=True, text=True)
            if shown.returncode == 0:
                break
        shown.check_returncode()
        text = shown.stdout
        for old, new in MOVED_MODULES.items():  # an older scorer imports today's helpers by their old names
            text = text.replace(f"from {old} import", f"from {new} import")
        spec = importlib.util.spec_from_loader(f"score_{args.before_ref}", loader=None)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        exec(compile(text, f"{args.before_ref}:{path}", "exec"), module.__dict__)
        _BEFORE[args.before_ref] = module
    module = _BEFORE[args.before_ref]
    config = module.ScoreConfig(top_k=TOP_K, chunk_positions=args.chunk, memory_budget_mb=args.memory_budget_mb)
    return module.score_pair(base, {"rl": rl}, prompt, answer, vocab, config)["rl"]


@torch.inference_mode()
def full_logits_script(base, rl, prompt, answer, vocab, args):
    """What a researcher would write: fp32 log-softmax of full logits, statistics on full tensors."""
    ids = torch.tensor([prompt + answer], device=args.device)
    start = len(prompt) - 1
    lp_b = torch.log_softmax(base(ids, use_cache=False).logits[0, start:-1, :vocab].float(), -1)
    lp_r = torch.log_softmax(rl(ids, use_cache=False).logits[0, start:-1, :vocab].float(), -1)
    p_b, p_r = lp_b.exp(), lp_r.exp()
    tokens = ids[0, len(prompt):, None]
    chosen_b, chosen_r = lp_b.gather(-1, tokens), lp_r.gather(-1, tokens)
    top_b, top_r = lp_b.topk(TOP_K, -1), lp_r.topk(TOP_K, -1)
    log_m = torch.log(0.5 * (p_b + p_r))
    overlap = (top_b.indices[:, :, None] == top_r.indices[:, None, :]).any(-1).sum(-1)
    return {
        "logp_base": chosen_b[:, 0], "logp_rl": chosen_r[:, 0],
        "entropy_base": -(p_b * lp_b).sum(-1), "entropy_rl": -(p_r * lp_r).sum(-1),
        "js": 0.5 * ((p_b * (lp_b - log_m)).sum(-1) + (p_r * (lp_r - log_m)).sum(-1)),
        "kl_base_rl": (p_b * (lp_b - lp_r)).sum(-1), "kl_rl_base": (p_r * (lp_r - lp_b)).sum(-1),
        "rank_base": (lp_b > chosen_b).sum(-1) + 1, "rank_rl": (lp_r > chosen_r).sum(-1) + 1,
        "rl_top1_rank_base": (lp_b > lp_b.gather(-1, top_r.indices[:, :1])).sum(-1) + 1,
        "top1_base": top_b.indices[:, 0], "top1_rl": top_r.indices[:, 0],
        "topk_base_ids": top_b.indices, "topk_base_logp": top_b.values,
        "topk_rl_ids": top_r.indices, "topk_rl_logp": top_r.values,
        "topk_overlap": overlap.float() / TOP_K,
        "p_base_rl_top1": p_b.gather(-1, top_r.indices[:, :1])[:, 0],
        "rl_mass_base_topk": p_r.gather(-1, top_b.indices).sum(-1),
        "base_mass_rl_topk": p_b.gather(-1, top_r.indices).sum(-1),
        "p_rl_rl_top1": p_r.gather(-1, top_r.indices[:, :1])[:, 0],
        "base_mass_base_topk": p_b.gather(-1, top_b.indices).sum(-1),
    }


COMPETITORS = {"floor": floor, "tokenshift": tokenshift, "before": before, "script": full_logits_script}


def competitors(args) -> list[str]:
    """The competitors this run times: 'before' only with --before-ref."""
    return [n for n in COMPETITORS if n != "before" or args.before_ref]


def script_bytes(length: int, vocab: int) -> int:
    return SCRIPT_ARRAYS * length * vocab * 4


def script_fits(length: int, vocab: int, args) -> bool:
    """Whether the full-logits script would stay under --max-gib in all (always true with --full).

    On CPU the limit counts this process's current resident memory too; on a GPU it is the
    smaller of --max-gib and the free GPU memory.
    """
    if args.full:
        return True
    if args.device.startswith("cuda"):
        return script_bytes(length, vocab) <= min(args.max_gib * GIB, torch.cuda.mem_get_info()[0])
    return resident_bytes() + script_bytes(length, vocab) <= args.max_gib * GIB


def compare(ours: dict, theirs: dict) -> tuple[float, str, int, int]:
    """Max |difference| over the float statistics (and which); differing integer entries, and how
    many of those are only tied float32 values listed in another order."""
    worst, where, differing, swaps = 0.0, "", 0, 0
    for key, value in theirs.items():
        a, b = ours[key].cpu(), value.cpu()
        if a.is_floating_point():
            diff = (a.double() - b.double()).abs().max().item()
            worst, where = max((worst, where), (diff, key))
            continue
        mismatch = a != b.to(a.dtype)
        if key.startswith(("topk_", "top1_")):  # a swap of equal values is a tie, not an error
            side = "base" if key.endswith("base") or "_base_" in key else "rl"
            values = [d[f"topk_{side}_logp"].cpu() for d in (ours, theirs)]
            tied = values[0] == values[1] if key.startswith("topk_") else values[0][:, 0] == values[1][:, 0]
            swaps += int((mismatch & tied).sum())
            mismatch &= ~tied
        differing += int(mismatch.sum())
    return worst, where, differing, swaps


def measure_memory(name: str, length: int, args) -> int:
    """Worker: peak bytes of one competitor's run above the level after loading and a warm-up."""
    base, rl, vocab = load_pair(args)
    run = COMPETITORS[name]
    run(base, rl, *inputs(16, args, vocab), vocab, args)
    meter = PeakMemory(args.device)
    meter.start()
    run(base, rl, *inputs(length, args, vocab), vocab, args)
    return meter.peak()


def main(argv=None) -> None:
    args = parse_args(argv)
    from transformers.utils import logging

    logging.disable_progress_bar()
    if args.worker:
        print(json.dumps({"peak": measure_memory(args.worker, args.length, args)}))
        return
    base, rl, vocab = load_pair(args)
    print(machine_line(args.device))
    model = f"{args.model} vs {args.rl_model}" if args.model else (
        f"random Qwen2 pair, hidden {args.hidden}, {args.layers} layers, vocabulary {vocab:,}, untied head")
    chunk = ScoreConfig(chunk_positions=args.chunk, memory_budget_mb=args.memory_budget_mb).chunk_for(vocab)
    print(f"{model} | {args.dtype} | prompt {args.prompt} | chunk {chunk} positions | "
          f"best of {args.repeats} | tokens/s = answer tokens per second, both models")
    for name in competitors(args):  # warm-up
        COMPETITORS[name](base, rl, *inputs(16, args, vocab), vocab, args)
    with tempfile.TemporaryDirectory() as tmp:
        worker_args = [*(argv if argv is not None else sys.argv[1:]), "--vocab", str(vocab)]
        if not args.model:  # workers load the same random pair (faster than making it again)
            base.save_pretrained(f"{tmp}/base")
            rl.save_pretrained(f"{tmp}/rl")
            worker_args += ["--model", f"{tmp}/base", "--rl-model", f"{tmp}/rl"]
        results = {length: measure(length, base, rl, vocab, args, worker_args) for length in args.lengths}
    report(results, vocab, args)


def measure(length: int, base, rl, vocab: int, args, worker_args: list[str]) -> dict:
    """Best times (interleaved, this process) and peaks (a fresh process each) at one length."""
    names = [n for n in competitors(args) if n != "script" or script_fits(length, vocab, args)]
    prompt, answer = inputs(length, args, vocab)
    last = {}  # each competitor's latest output, for the numerical check

    def call(name):
        last[name] = COMPETITORS[name](base, rl, prompt, answer, vocab, args)

    seconds = best_of({n: partial(call, n) for n in names}, args.repeats, args.device)
    check = compare(last["tokenshift"], last["script"]) if "script" in last else None
    last.clear()
    script = str(Path(__file__).resolve())
    peak = {n: run_isolated(script, [*worker_args, "--worker", n, "--length", str(length)])["peak"]
            for n in names}
    print(f"  ... {length} done", file=sys.stderr, flush=True)
    return {"seconds": seconds, "peak": peak, "check": check}


def report(results: dict, vocab: int, args) -> None:
    """The table, the numerical check, and one final line of ratios."""
    rows = []
    for length, r in results.items():
        seconds, peak = r["seconds"], r["peak"]
        for name in competitors(args):
            if name not in seconds:
                need = script_bytes(length, vocab) / GIB
                rows.append([length, name, "skipped", "-", f"needs >{need:.1f} GiB, --full", "-", "-"])
                continue
            rows.append([length, name, f"{length / seconds[name]:,.0f}", f"{seconds[name]:.2f}",
                         f"{peak[name] / MIB:,.0f}", f"{seconds[name] / seconds['floor']:.2f}",
                         f"{peak[name] / peak['floor']:.2f}"])
    print_table(["answer", "competitor", "tokens/s", "seconds", "peak MiB", "time/floor", "peak/floor"], rows)
    for length, r in results.items():
        if r["check"]:
            worst, where, differing, swaps = r["check"]
            print(f"check at {length}: max |tokenshift - script| over float statistics = {worst:.2e} "
                  f"({where}; target 1e-5); differing rank/top-1/top-k id entries = {differing} "
                  f"(+{swaps} tied values in another order)")
    print(ratio_line(results, args))


def ratio_line(results: dict, args) -> str:
    """The one final line: tokenshift against the floor, and the script against tokenshift."""
    def ratios(what: str, num: str, den: str) -> str:
        cells = [f"{n}:{r[what][num] / r[what][den]:.2f}" if num in r[what] else f"{n}:skipped"
                 for n, r in results.items()]
        return f"{num}/{den} {'time' if what == 'seconds' else what} " + " ".join(cells)

    cells = [ratios("seconds", "tokenshift", "floor"), ratios("peak", "tokenshift", "floor"),
             ratios("seconds", "script", "tokenshift"), ratios("peak", "script", "tokenshift")]
    if args.before_ref:
        cells += [ratios("seconds", "tokenshift", "before"), ratios("peak", "tokenshift", "before")]
    return "RATIOS " + " | ".join(cells)


if __name__ == "__main__":
    main()
