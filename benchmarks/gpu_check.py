"""GPU check: scoring vs floor, HF generation, vLLM, paired decoding, on a 7B-shaped random pair; one table.

    bash benchmarks/gpu_check.sh                 # on a GPU: 7B shape, bf16, scoring at 4k and 16k (<= 8 min)
    bash benchmarks/gpu_check.sh --quick         # a tiny setting on CPU (what the test suite runs)

Rows:
- scoring floor / tokenshift at each length: the two bare forward passes (bench_scoring.floor)
  against tokenshift's scorer (bench_scoring.tokenshift): tokens/s (answer tokens, both models),
  seconds (best of N), peak memory above the loaded models, time/floor, and MFU = model FLOPs /
  (seconds x the device's peak dense bf16 FLOP/s); model FLOPs per token and model = 2 N + 2 L T d
  (N = parameters without the embedding, L layers, T tokens, d hidden size; Kaplan et al. 2020).
  The check column: max |logp_base - log_softmax(floor logits)| over the answer.
- hf generate batch B: builders.generate.generate_hf (bench_generation.run_hf), random prompts,
  pure sampling; tokens/s = generated tokens per second; ratio = against batch 1.
- vllm: the same prompts through vLLM when it is installed (a fresh engine over the saved base).
- paired decode batch B: builders.decoding.decoder.decode, one setting (forward protocol, JS at every step,
  unlimited budget) against two model.generate() calls producing as many tokens; ratio = paired /
  two generates (bench_cross_sampling's comparison).
A section that would start after --budget-s seconds is reported as skipped.
"""

from __future__ import annotations

import argparse
import copy
import gc
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_generation  # noqa: E402
import bench_scoring  # noqa: E402
from common import MIB, PeakMemory, best_of, print_table  # noqa: E402

from tokenshift.builders.decoding.decoder import Member, Pair, Rule, decode  # noqa: E402
from tokenshift.builders.engines.generate import SamplingConfig, sampling_kwargs  # noqa: E402

QWEN_7B = dict(hidden=3584, layers=28, heads=28, kv_heads=4, intermediate=18944, vocab=152064)
TINY = dict(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, vocab=2048)
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0,
                    "A10G": 70.0, "L4": 121.0, "RTX 4090": 165.0}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny random pair, short lengths, CPU (the test)")
    parser.add_argument("--device", help="default: cuda when available, else cpu")
    parser.add_argument("--lengths", type=int, nargs="+", help="scored answer lengths (default 4096 16384)")
    parser.add_argument("--batches", type=int, nargs="+", help="generation batch sizes (default 1 64)")
    parser.add_argument("--paired-batches", type=int, nargs="+", help="paired decoding batch sizes (default 1 16)")
    parser.add_argument("--new-tokens", type=int, help="generated tokens per row (default 128)")
    parser.add_argument("--repeats", type=int, help="timed runs per competitor (default 3, quick 1)")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak dense bf16 TFLOP/s (for MFU)")
    parser.add_argument("--budget-s", type=float, default=450.0, help="start no section after this many seconds")
    parser.add_argument("--no-vllm", action="store_true", help="skip vLLM even when installed")
    args = parser.parse_args(argv)
    args.device = args.device or ("cuda" if torch.cuda.is_available() and not args.quick else "cpu")
    args.shape = TINY if args.quick else QWEN_7B
    args.dtype = "float32" if args.device == "cpu" else "bfloat16"
    args.lengths = args.lengths or ([128, 256] if args.quick else [4096, 16384])
    args.batches = args.batches or ([1, 8] if args.quick else [1, 64])
    args.paired_batches = args.paired_batches or ([1, 4] if args.quick else [1, 16])
    args.new_tokens = args.new_tokens or (16 if args.quick else 128)
    args.repeats = args.repeats or (1 if args.quick else 3)
    return args


def make_pair(args):
    """A random Qwen2 base of the shape asked and an RL model = base with every weight perturbed."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    s = args.shape
    config = Qwen2Config(vocab_size=s["vocab"], hidden_size=s["hidden"], intermediate_size=s["intermediate"],
                         num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
                         num_key_value_heads=s["kv_heads"], max_position_embeddings=32768,
                         tie_word_embeddings=False, bos_token_id=None, eos_token_id=s["vocab"] - 1, pad_token_id=0)
    dtype = getattr(torch, args.dtype)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(0)
        with torch.device(args.device):
            base = Qwen2ForCausalLM(config).eval()
        rl = copy.deepcopy(base)
        with torch.no_grad():
            for param in rl.parameters():
                param.add_(torch.randn_like(param) * 0.2 * param.float().std().to(dtype))
    finally:
        torch.set_default_dtype(default)
    for model in (base, rl):
        model.generation_config.eos_token_id, model.generation_config.pad_token_id = s["vocab"] - 1, 0
    return base, rl


def peak_tflops(args) -> float | None:
    if args.peak_tflops:
        return args.peak_tflops
    if not args.device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def forward_flops(model, tokens: int) -> float:
    """2 N T + 2 L T^2 d: one forward pass over `tokens` positions (N without the input embedding)."""
    n = sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()
    c = model.config
    return 2.0 * n * tokens + 2.0 * c.num_hidden_layers * tokens * tokens * c.hidden_size


def device_name(args) -> str:
    if args.device.startswith("cuda"):
        return torch.cuda.get_device_name()
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads, load {os.getloadavg()[0]:.1f})"


def scoring_rows(base, rl, args) -> list[list[str]]:
    """Floor and tokenshift at every length: tokens/s, seconds, peak, time/floor, MFU, check."""
    vocab = args.shape["vocab"]
    opts = SimpleNamespace(prompt=64, device=args.device, chunk=None,
                           memory_budget_mb=bench_scoring.ScoreConfig.memory_budget_mb)
    peak_flops = peak_tflops(args)
    rows = []
    for name in ("floor", "tokenshift"):  # warm-up
        getattr(bench_scoring, name)(base, rl, *bench_scoring.inputs(16, opts, vocab), vocab, opts)
    for length in args.lengths:
        prompt, answer = bench_scoring.inputs(length, opts, vocab)
        calls = {n: (lambda n=n: getattr(bench_scoring, n)(base, rl, prompt, answer, vocab, opts))
                 for n in ("floor", "tokenshift")}
        seconds = best_of(calls, args.repeats, args.device)
        peaks = {}
        for name, call in calls.items():
            meter = PeakMemory(args.device)
            meter.start()
            out = call()
            peaks[name] = meter.peak()
        check = _check(base, prompt, answer, out["logp_base"], vocab, args)
        flops = forward_flops(base, len(prompt) + length) + forward_flops(rl, len(prompt) + length)
        for name in ("floor", "tokenshift"):
            mfu = f"{flops / seconds[name] / (peak_flops * 1e12):.1%}" if peak_flops else "-"
            rows.append([f"scoring {name}", f"{length:,} tokens", f"{length / seconds[name]:,.0f}",
                         f"{seconds[name]:.3f}", f"{peaks[name] / MIB:,.0f}",
                         f"{seconds[name] / seconds['floor']:.2f} x floor", mfu,
                         f"{check:.1e}" if name == "tokenshift" else "-"])
        del out
        _free(args)
    return rows


@torch.inference_mode()
def _check(base, prompt, answer, logp_base, vocab, args) -> float:
    """max |tokenshift's logp_base - log_softmax of the floor's logits| at the answer's tokens."""
    ids = torch.tensor([prompt + answer], device=args.device)
    hidden = base.model(ids).last_hidden_state[0, len(prompt) - 1:-1]
    worst = 0.0
    for lo in range(0, len(answer), 1024):  # the head on a slice of positions at a time: flat memory
        logp = torch.log_softmax(base.lm_head(hidden[lo:lo + 1024])[:, :vocab].float(), -1)
        ref = logp.gather(-1, ids[0, len(prompt) + lo:len(prompt) + lo + 1024, None])[:, 0]
        worst = max(worst, (ref - logp_base[lo:lo + 1024].to(ref)).abs().max().item())
    return worst


def generation_rows(base, args) -> tuple[list[list[str]], list[list[int]], float]:
    """HF generation tokens/s at each batch size (bench_generation.run_hf on random prompts); also
    the prompts and the batch-1 speed, for the vLLM row."""
    opts = SimpleNamespace(max_new_tokens=args.new_tokens, seed=0)
    tokenizer = SimpleNamespace(eos_token_id=args.shape["vocab"] - 1, pad_token_id=0)
    rng = torch.Generator().manual_seed(0)
    prompts = [torch.randint(2, args.shape["vocab"] - 1, (32,), generator=rng).tolist()
               for _ in range(max(args.batches))]
    bench_generation.run_hf(base, tokenizer, prompts[:2], 2, opts)  # warm-up
    tokens = {}

    def call(batch):
        tokens[batch] = bench_generation.run_hf(base, tokenizer, prompts[:batch], batch, opts)

    seconds = best_of({b: (lambda b=b: call(b)) for b in args.batches}, args.repeats, args.device)
    speed = {b: tokens[b] / seconds[b] for b in args.batches}
    one = args.batches[0]
    return [[f"hf generate batch {b}", f"{b} x {args.new_tokens} new", f"{speed[b]:,.0f}", f"{seconds[b]:.3f}", "-",
             f"{speed[b] / speed[one]:.2f} x batch {one}", "-", "-"] for b in args.batches], prompts, speed[one]


def vllm_row(base, prompts, hf_one: float, args) -> list[str]:
    """vLLM generation of the same prompts from the saved base (skipped when vLLM is absent)."""
    label = f"{len(prompts)} x {args.new_tokens} new"
    if args.no_vllm:
        return ["vllm", label, "skipped (--no-vllm)", "-", "-", "-", "-", "-"]
    try:
        from vllm import LLM, SamplingParams
        from vllm.inputs import TokensPrompt
    except ImportError:
        return ["vllm", label, "skipped (not installed)", "-", "-", "-", "-", "-"]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base.save_pretrained(tmp)
            llm = LLM(model=tmp, skip_tokenizer_init=True, dtype=args.dtype, seed=0, gpu_memory_utilization=0.45)
            params = SamplingParams(temperature=1.0, top_p=1.0, top_k=-1, max_tokens=args.new_tokens,
                                    ignore_eos=True, detokenize=False)
            batch = [TokensPrompt(prompt_token_ids=p) for p in prompts]
            llm.generate(batch[:2], params)  # warm-up
            start = time.perf_counter()
            outs = llm.generate(batch, params)
            seconds = time.perf_counter() - start
        tokens = sum(len(c.token_ids) for o in outs for c in o.outputs)
        return ["vllm", label, f"{tokens / seconds:,.0f}", f"{seconds:.3f}", "-",
                f"{tokens / seconds / hf_one:.2f} x hf batch 1", "-", "-"]
    except Exception as err:  # noqa: BLE001 - report why, keep the other rows
        return ["vllm", label, f"skipped ({type(err).__name__}: {str(err).splitlines()[0][:60]})",
                "-", "-", "-", "-", "-"]


def paired_rows(base, rl, args) -> list[list[str]]:
    """Paired decoding (decoding.decoder.decode, one setting) vs two generate() calls producing the same number of tokens."""
    vocab, new = args.shape["vocab"], args.new_tokens
    rows = []
    for batch in args.paired_batches:
        gen = torch.Generator(device=args.device).manual_seed(0)
        prompts = torch.randint(1, vocab - 1, (batch, 32), generator=gen, device=args.device).tolist()
        sampling = SamplingConfig(new, 1.0, 1.0, batch)
        ids = torch.tensor(prompts, device=args.device)
        mask = torch.ones_like(ids)

        @torch.inference_mode()
        def paired():
            out = decode(Pair(base, rl, sampling, frozenset(), 0, vocab), Rule(), prompts, [new] * batch,
                         torch.Generator(device=args.device).manual_seed(1), [Member(math.inf, 0.1)])[0]
            assert all(len(d.token_ids) == new for d in out)

        @torch.inference_mode()
        def two_generates():
            for model in (base, rl):
                out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                                     pad_token_id=0, **sampling_kwargs(sampling))
                assert out.shape[1] == ids.shape[1] + new

        paired()
        two_generates()
        best = best_of({"paired": paired, "generate": two_generates}, args.repeats, args.device)
        rows.append([f"paired decode batch {batch}", f"{batch} x {new} new, 2 models",
                     f"{batch * new / best['paired']:,.0f}", f"{best['paired']:.3f}", "-",
                     f"{best['paired'] / best['generate']:.2f} x 2 generate ({best['generate']:.3f} s)", "-", "-"])
    return rows


def _free(args) -> None:
    gc.collect()
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()


def main(argv=None) -> None:
    args = parse_args(argv)
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
    if args.device == "cpu":
        torch.set_num_threads(1)
    started = time.perf_counter()
    base, rl = make_pair(args)
    s = args.shape
    params = sum(p.numel() for p in base.parameters())
    print(f"device: {device_name(args)} | torch {torch.__version__} | {args.dtype}")
    print(f"pair: random Qwen2, hidden {s['hidden']}, {s['layers']} layers, {s['heads']}/{s['kv_heads']} heads, "
          f"vocabulary {s['vocab']:,}, {params / 1e6:,.1f} M parameters each; made in "
          f"{time.perf_counter() - started:.0f} s")
    rows: list[list[str]] = []

    def time_left(section: str) -> bool:
        if time.perf_counter() - started <= args.budget_s:
            print(f"... {section}", file=sys.stderr, flush=True)
            return True
        rows.append([section, "-", f"skipped (past --budget-s {args.budget_s:.0f})", "-", "-", "-", "-", "-"])
        return False

    if time_left("scoring"):
        rows += scoring_rows(base, rl, args)
    if time_left("paired decode"):
        rows += paired_rows(base, rl, args)
    del rl
    _free(args)
    if time_left("hf generate"):
        generated, prompts, hf_one = generation_rows(base, args)
        rows += generated
        if time_left("vllm"):
            rows.append(vllm_row(base, prompts, hf_one, args))
    print_table(["row", "setting", "tokens/s", "seconds", "peak MiB", "ratio", "MFU", "max |diff|"], rows)
    print(f"total {time.perf_counter() - started:.0f} s on {device_name(args)}")
    picks = [(r[0].replace("scoring tokenshift", "tokenshift/floor").replace("paired decode", "paired/2gen")
              .replace("hf generate", "hf"), r[1].split(" ")[0], r[5].split(" x ")[0]) for r in rows
             if r[0].startswith(("scoring tokenshift", "paired decode", "hf generate")) and r[5] != "-"]
    print("RATIOS " + " | ".join(f"{what} {setting}: {ratio}" for what, setting, ratio in picks))


if __name__ == "__main__":
    main()
