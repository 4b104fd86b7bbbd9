"""Estimated GPU memory for scoring one answer with a base/RL pair (an estimate, not a measurement).

    python benchmarks/memory_estimate.py                 # Qwen2.5-7B and -32B pairs, 16k-token answer
    python benchmarks/memory_estimate.py --answer 32768 --budget-mb 2048

Parts: both models' bf16 weights (parameters counted on the meta device from the Hub configs);
the largest prefill activation of one decoder layer without a KV cache (the MLP's three
[tokens × intermediate] arrays plus three [tokens × hidden] arrays, one model at a time;
attention through SDPA is linear in length); the final hidden states `score_pair` keeps for both
models; and the scorer's chunk working set, `ScoreConfig.chunk_for(vocab)` positions ×
vocabulary × 4 bytes × `_WORK_TENSORS`. CUDA context and allocator slack (~1 GiB) come on top.
"""

from __future__ import annotations

import argparse

import torch

from tokenshift.builders.scoring import score

GIB = 2**30
QWEN25_TOKENIZER = 151_665  # tokens in the Qwen2.5 tokenizer; the output head has 152,064 rows
# From the Hub config.json of Qwen/Qwen2.5-7B and Qwen/Qwen2.5-32B (untied embeddings, QKV bias).
QWEN25 = {
    "Qwen2.5-7B": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                       num_attention_heads=28, num_key_value_heads=4, vocab_size=152064),
    "Qwen2.5-32B": dict(hidden_size=5120, intermediate_size=27648, num_hidden_layers=64,
                        num_attention_heads=40, num_key_value_heads=8, vocab_size=152064),
}


def n_parameters(shape: dict) -> int:
    """Parameters of a Qwen2 model of this shape (built on the meta device: no memory used)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    with torch.device("meta"):
        model = Qwen2ForCausalLM(Qwen2Config(**shape, tie_word_embeddings=False))
    return sum(p.numel() for p in model.parameters())


def scoring_memory(shape: dict, answer: int, prompt: int = 256, vocab: int = QWEN25_TOKENIZER,
                   config: score.ScoreConfig = score.ScoreConfig(), n_rl: int = 1,
                   dtype_bytes: int = 2) -> dict[str, float]:
    """GiB per part for scoring one answer against `n_rl` RL models, and their total."""
    tokens, hidden, inter = prompt + answer, shape["hidden_size"], shape["intermediate_size"]
    chunk = config.chunk_for(vocab)
    parts = {
        "weights": (1 + n_rl) * n_parameters(shape) * dtype_bytes,
        "prefill activations": tokens * (3 * inter + 3 * hidden) * dtype_bytes,
        "hidden states kept": (1 + n_rl) * tokens * hidden * dtype_bytes,
        "scorer working set": min(chunk, answer) * vocab * 4 * score._WORK_TENSORS,
    }
    parts = {k: v / GIB for k, v in parts.items()}
    parts["total"] = sum(parts.values())
    return parts


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answer", type=int, default=16384, help="answer tokens")
    parser.add_argument("--prompt", type=int, default=256, help="prompt tokens")
    parser.add_argument("--budget-mb", type=int, default=score.ScoreConfig.memory_budget_mb,
                        help="ScoreConfig.memory_budget_mb")
    args = parser.parse_args(argv)
    config = score.ScoreConfig(memory_budget_mb=args.budget_mb)
    print(f"estimate: base + 1 RL model, bf16 weights, {args.prompt}-token prompt + {args.answer}-token answer, "
          f"chunk {config.chunk_for(QWEN25_TOKENIZER)} positions (budget {args.budget_mb} MB, "
          f"_WORK_TENSORS {score._WORK_TENSORS}); GiB, CUDA context not included")
    rows = {name: scoring_memory(shape, args.answer, args.prompt, config=config) for name, shape in QWEN25.items()}
    keys = list(next(iter(rows.values())))
    print(f"{'pair':12s}" + "".join(f"{k:>22s}" for k in keys))
    for name, parts in rows.items():
        print(f"{name:12s}" + "".join(f"{parts[k]:22.1f}" for k in keys))


if __name__ == "__main__":
    main()
