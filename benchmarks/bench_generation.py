"""Generation throughput: tokenshift's HF engine (`generate_hf`) batched against unbatched, and
vLLM when it is installed.

    python benchmarks/bench_generation.py --quick       # 32 prompts, 64 new tokens (≤ 2 minutes on CPU)
    python benchmarks/bench_generation.py               # 64 prompts, 128 new tokens, batch 1 vs 64
    python benchmarks/bench_generation.py --model DIR --device cuda --batch-sizes 1 16 64

The model is the embedded toy base model (tokenshift/toy/pair/base) when it has been trained, else
a tiny random Qwen2 of the same shape with random prompts. Sampling is pure (T=1, top_p=1);
tokens/s counts generated response tokens (up to and including the stop token). Times are
best-of-N with the batch sizes interleaved in one process; peak memory is measured once per batch
size in a fresh process (see common.PeakMemory).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import torch
from common import MIB, PeakMemory, best_of, machine_line, print_table, run_isolated

from tokenshift.builders.engines.generate import SamplingConfig, generate_hf


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 prompts, 64 new tokens, batch 1 vs 32")
    parser.add_argument("--prompts", type=int, help="number of prompts, one sample each (default 64, quick 32)")
    parser.add_argument("--max-new-tokens", type=int, help="default 128, quick 64")
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="default 1 64, quick 1 32")
    parser.add_argument("--repeats", type=int, help="timed runs per batch size (default 2, quick 1)")
    parser.add_argument("--model", help="model directory (default: the embedded toy base model if trained)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared machine idle cores are rare)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # internal: peak at this batch size
    args = parser.parse_args(argv)
    args.prompts = args.prompts or (32 if args.quick else 64)
    args.max_new_tokens = args.max_new_tokens or (64 if args.quick else 128)
    args.batch_sizes = args.batch_sizes or ([1, 32] if args.quick else [1, 64])
    args.repeats = args.repeats or (1 if args.quick else 2)
    return args


def toy_base_dir() -> Path | None:
    """The embedded toy base model's directory, when the toy pair has been trained."""
    from tokenshift.runtime.embedded_pair import embedded_base_dir

    path = embedded_base_dir()
    return path if (path / "config.json").is_file() else None


def random_model(out: Path) -> Path:
    """A tiny random Qwen2 (the toy model's shape, 400-token vocabulary) saved under `out`."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=400, hidden_size=128, intermediate_size=512, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096,
                         tie_word_embeddings=True, bos_token_id=None, eos_token_id=1, pad_token_id=0)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = 1, 0
    model.save_pretrained(out)
    return out


def load(args, path: Path):
    """(model, tokenizer, prompt ids) for the benchmark; random prompts for the random model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, args.dtype)).to(args.device).eval()
    if (path / "tokenizer_config.json").is_file():
        from tokenshift.builders.inputs.arith import toy_problems
        from tokenshift.builders.inputs.prompts import format_prompt

        tokenizer = AutoTokenizer.from_pretrained(path)
        texts = [format_prompt(tokenizer, p["question"]) for p in toy_problems("test", args.prompts)]
        prompts = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    else:
        tokenizer = SimpleNamespace(eos_token_id=1, pad_token_id=0)
        rng = torch.Generator().manual_seed(args.seed)
        prompts = [torch.randint(2, model.config.vocab_size, (32,), generator=rng).tolist()
                   for _ in range(args.prompts)]
    return model, tokenizer, prompts


def run_hf(model, tokenizer, prompts, batch_size: int, args) -> int:
    """Generated tokens of one `generate_hf` run at this batch size."""
    config = SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=1.0, top_p=1.0,
                            batch_size=batch_size)
    samples = generate_hf(model, tokenizer, prompts, samples=1, seed=args.seed, config=config)
    return sum(len(s.token_ids) for s in samples)


def run_vllm(path: Path, tokenizer, prompts, args) -> tuple[float, int] | str:
    """(seconds, generated tokens) through vLLM, or why it was skipped."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        return "skipped (vLLM not installed)"
    from tokenshift.builders.engines.generate import generate_vllm

    config = SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=1.0, top_p=1.0)
    try:
        generate_vllm(str(path), None, tokenizer, prompts[:2], 1, args.seed, config, args.dtype)  # warm-up
        start = time.perf_counter()
        samples = generate_vllm(str(path), None, tokenizer, prompts, 1, args.seed, config, args.dtype)
        return time.perf_counter() - start, sum(len(s.token_ids) for s in samples)
    except Exception as err:  # vLLM on an unsupported device or build: report, don't fail the run
        return f"skipped ({type(err).__name__}: {str(err).splitlines()[0][:80]})"


def measure_memory(batch_size: int, path: Path, args) -> int:
    """Worker: peak bytes of one run above the level after loading and a warm-up."""
    model, tokenizer, prompts = load(args, path)
    run_hf(model, tokenizer, prompts[:2], batch_size, args)
    meter = PeakMemory(args.device)
    meter.start()
    run_hf(model, tokenizer, prompts, batch_size, args)
    return meter.peak()


def main(argv=None) -> None:
    args = parse_args(argv)
    from transformers.utils import logging

    logging.disable_progress_bar()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.model) if args.model else (toy_base_dir() or random_model(Path(tmp) / "random"))
        if args.worker:
            print(json.dumps({"peak": measure_memory(args.worker, path, args)}))
            return
        model, tokenizer, prompts = load(args, path)
        print(machine_line(args.device))
        name = "embedded toy base model" if path == toy_base_dir() else (
            "tiny random Qwen2 (toy shape; the toy pair is not trained yet)" if not args.model else str(path))
        print(f"{name} | {args.dtype} | {len(prompts)} prompts, 1 sample each, up to {args.max_new_tokens} "
              f"new tokens, T=1 | best of {args.repeats} | tokens/s = generated tokens per second")
        run_hf(model, tokenizer, prompts[:2], 2, args)  # warm-up
        tokens: dict[int, int] = {}

        def call(batch_size):
            tokens[batch_size] = run_hf(model, tokenizer, prompts, batch_size, args)

        seconds = best_of({b: partial(call, b) for b in args.batch_sizes}, args.repeats, args.device)
        worker_args = [*(argv if argv is not None else sys.argv[1:]), "--model", str(path)]
        peak = {b: run_isolated(str(Path(__file__).resolve()), [*worker_args, "--worker", str(b)])["peak"]
                for b in args.batch_sizes}
        vllm = run_vllm(path, tokenizer, prompts, args)
    report(seconds, tokens, peak, vllm, args)


def report(seconds: dict, tokens: dict, peak: dict, vllm, args) -> None:
    """The table and one final line of ratios."""
    one = args.batch_sizes[0]
    speed = {b: tokens[b] / seconds[b] for b in seconds}
    rows = [[f"hf batch {b}", f"{speed[b]:,.0f}", tokens[b], f"{seconds[b]:.2f}", f"{peak[b] / MIB:,.1f}",
             f"{speed[b] / speed[one]:.2f}"] for b in args.batch_sizes]
    if isinstance(vllm, str):
        rows.append(["vllm", vllm, "-", "-", "-", "-"])
    else:
        rows.append(["vllm", f"{vllm[1] / vllm[0]:,.0f}", vllm[1], f"{vllm[0]:.2f}", "-",
                     f"{vllm[1] / vllm[0] / speed[one]:.2f}"])
    print_table(["engine", "tokens/s", "tokens", "seconds", "peak MiB", f"speed/batch {one}"], rows)
    ratios = " ".join(f"batch{b}/batch{one}:{speed[b] / speed[one]:.2f}" for b in args.batch_sizes[1:])
    vllm_ratio = "skipped" if isinstance(vllm, str) else f"{vllm[1] / vllm[0] / speed[one]:.2f}"
    print(f"RATIOS hf tokens/s {ratios} | vllm/hf batch{one}: {vllm_ratio}")


if __name__ == "__main__":
    main()
