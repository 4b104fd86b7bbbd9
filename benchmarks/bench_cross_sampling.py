"""Paired decoding speed: tokenshift's lockstep base+RL decoder (`decoding.decoder.decode`, one setting, with JS
and interventions at every step) against the two plain `generate()` calls that sample as many tokens;
with --sweep, a cross-sampling sweep decoded one setting per tree (--max-branches 1) against the
shared-prefix tree, side by side.

    python benchmarks/bench_cross_sampling.py --quick          # ≤ 2 minutes on CPU
    python benchmarks/bench_cross_sampling.py                  # more batch sizes and lengths
    python benchmarks/bench_cross_sampling.py --random --vocab 151936 --hidden 256
    python benchmarks/bench_cross_sampling.py --model BASE_DIR --rl-model RL_DIR --device cuda --dtype bfloat16
    python benchmarks/bench_cross_sampling.py --sweep          # default sweep: embedded pair and a 152k-vocab pair

The pair is the embedded toy pair when it is installed (else, or with --random, a random Qwen2 pair
whose RL model is the base with a perturbed output head). Every competitor produces exactly
max_new_tokens per row: the paired decoder with no stop token, `generate()` with
min_new_tokens = max_new_tokens. The paired decoder runs forward protocol with threshold 0.1 and an
unlimited budget, so its intervention path is exercised. Times are best-of-N, interleaved; on CPU
one torch thread unless --threads says otherwise.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from common import best_of, machine_line, print_table

from tokenshift.builders.cross_sampling.config import CrossSampleConfig
from tokenshift.builders.decoding.decoder import Member, Pair, Rule, decode
from tokenshift.builders.engines.generate import SamplingConfig, sampling_kwargs


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 1 and 16, 64 new tokens, 2 repeats")
    parser.add_argument("--batches", type=int, nargs="+", help="batch sizes (default 1 8 32)")
    parser.add_argument("--new-tokens", type=int, nargs="+", help="max_new_tokens (default 64 256)")
    parser.add_argument("--prompt", type=int, default=32, help="prompt length in tokens")
    parser.add_argument("--repeats", type=int, help="timed runs per competitor (default 3, quick 2)")
    parser.add_argument("--threshold", type=float, default=0.1, help="JS threshold of the paired run")
    parser.add_argument("--random", action="store_true", help="a random pair even if the toy pair exists")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--rl-noise", type=float, default=0.1, help="std of the random RL head perturbation")
    parser.add_argument("--model", help="base checkpoint directory (with --rl-model)")
    parser.add_argument("--rl-model", help="RL checkpoint directory")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--sweep", action="store_true",
                        help="the default cross-sampling sweep (3 JS thresholds x 8 budgets x 2 directions), per-setting "
                             "path vs shared-prefix tree: decoded tokens, paired rows computed, wall and CPU seconds")
    parser.add_argument("--sweep-prompts", type=int, default=32, help="--sweep: toy-arith prompts (embedded pair)")
    parser.add_argument("--sweep-samples", type=int, default=2, help="--sweep: answers per prompt (embedded pair)")
    parser.add_argument("--sweep-random", type=int, nargs=3, default=[16, 96, 2], metavar=("ROWS", "TOKENS", "BATCH"),
                        help="--sweep, random 152k pair: answers, max new tokens, batch size")
    parser.add_argument("--sweep-pairs", nargs="+", default=["embedded", "random"], choices=["embedded", "random"],
                        help="--sweep: which pairs")
    parser.add_argument("--max-branches", type=int, default=CrossSampleConfig.max_branches,
                        help="--sweep: settings per tree (as `tokenshift cross-sample --max-branches`)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: tiny models decode fastest on one, and shared cores "
                             "make more threads slower and noisy; 0 = torch's default)")
    args = parser.parse_args(argv)
    if bool(args.model) != bool(args.rl_model):
        parser.error("--model and --rl-model go together")
    args.batches = args.batches or ([1, 16] if args.quick else [1, 8, 32])
    args.new_tokens = args.new_tokens or ([64] if args.quick else [64, 256])
    args.repeats = args.repeats or (2 if args.quick else 3)
    return args


def random_pair(hidden: int, layers: int, vocab: int, noise: float, root: Path) -> tuple[str, str, str]:
    """A random Qwen2 base and an RL model with a perturbed output head, saved under root."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=4 * hidden,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=4096, tie_word_embeddings=False, bos_token_id=None,
                         eos_token_id=0, pad_token_id=0)
    torch.manual_seed(0)
    base = Qwen2ForCausalLM(config)
    rl = Qwen2ForCausalLM(config)
    rl.load_state_dict(base.state_dict())
    with torch.no_grad():
        rl.lm_head.weight.add_(torch.randn_like(rl.lm_head.weight) * noise)
    for name, model in (("base", base), ("rl", rl)):
        model.save_pretrained(root / name)
    return str(root / "base"), str(root / "rl"), f"random Qwen2 (hidden {hidden}, {layers} layers, vocab {vocab})"


def pick_pair(args, root: Path) -> tuple[str, str, str]:
    if args.model:
        return args.model, args.rl_model, f"{args.model} / {args.rl_model}"
    if not args.random:
        try:
            from tokenshift.runtime.embedded_pair import embedded_base_dir, embedded_rl_dir

            if (embedded_base_dir() / "config.json").is_file() and (embedded_rl_dir() / "config.json").is_file():
                return str(embedded_base_dir()), str(embedded_rl_dir()), "embedded toy pair"
        except ImportError:
            pass
    return random_pair(args.hidden, args.layers, args.vocab, args.rl_noise, root)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads and args.device == "cpu":
        torch.set_num_threads(args.threads)
    if args.sweep:
        from cross_sweep import run_sweeps

        return run_sweeps(args, random_pair)
    from transformers import AutoModelForCausalLM

    with tempfile.TemporaryDirectory() as tmp:
        base_dir, rl_dir, label = pick_pair(args, Path(tmp))
        base, rl = (AutoModelForCausalLM.from_pretrained(d, dtype=getattr(torch, args.dtype)).to(args.device).eval()
                    for d in (base_dir, rl_dir))
    vocab = base.get_output_embeddings().weight.shape[0]
    pad = 0
    print(f"pair: {label} ({sum(p.numel() for p in base.parameters()) / 1e6:.2f}M parameters each)")
    print(machine_line(args.device))
    headers = ["batch", "new tokens", "paired s", "2x generate s", "ratio", "interventions/row"]
    rows, ratios = [], []
    for new_tokens in args.new_tokens:
        for batch in args.batches:
            gen = torch.Generator(device=args.device).manual_seed(0)
            prompts = torch.randint(1, vocab, (batch, args.prompt), generator=gen, device=args.device).tolist()
            sampling = SamplingConfig(new_tokens, 1.0, 1.0, batch)
            ids = torch.tensor(prompts, device=args.device)
            mask = torch.ones_like(ids)
            stats = {}

            @torch.inference_mode()
            def paired():
                out = decode(Pair(base, rl, sampling, frozenset(), pad, vocab), Rule(), prompts, [new_tokens] * batch,
                             torch.Generator(device=args.device).manual_seed(1),
                             [Member(math.inf, args.threshold)])[0]
                assert all(len(d.token_ids) == new_tokens for d in out)
                stats["interventions"] = statistics.mean(len(d.interventions) for d in out)

            @torch.inference_mode()
            def two_generates():
                for model in (base, rl):
                    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                                         min_new_tokens=new_tokens, pad_token_id=pad, **sampling_kwargs(sampling))
                    assert out.shape[1] == args.prompt + new_tokens

            paired()  # warm-up
            two_generates()
            best = best_of({"paired": paired, "generate": two_generates}, args.repeats, args.device)
            ratio = best["paired"] / best["generate"]
            ratios.append(ratio)
            rows.append([batch, new_tokens, f"{best['paired']:.3f}", f"{best['generate']:.3f}", f"{ratio:.2f}",
                         f"{stats['interventions']:.1f}"])
    print_table(headers, rows)
    geo = math.exp(statistics.mean(math.log(r) for r in ratios))
    print("ratio paired / (2 x generate): " + ", ".join(f"b{r[0]}x{r[1]} {float(r[4]):.2f}" for r in rows)
          + f"; geometric mean {geo:.2f}, max {max(ratios):.2f}")


if __name__ == "__main__":
    sys.exit(main())
