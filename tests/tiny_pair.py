"""A tiny random base/RL pair (Qwen2 architecture, byte-level BPE) saved like a Hub checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def make_tokenizer(vocab_size: int = 300):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size,
                                  special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = ["Tom has 12 apples. He buys 7 more. The answer is \\boxed{19}.",
              "Please reason step by step, and put your final answer within \\boxed{}."] * 20
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", chat_template=CHAT_TEMPLATE)


def make_pair(root: Path, seed: int = 0, n_rl: int = 1, rl_noise: float = 2.0,
              extra_rows: int = 0) -> tuple[Path, list[Path]]:
    """Save base and `n_rl` RL models (base with a perturbed output head) under `root`."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = make_tokenizer()
    vocab = len(tokenizer) + extra_rows  # extra_rows: padded embedding rows past the tokenizer
    config = Qwen2Config(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=False, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    torch.manual_seed(seed)
    base = Qwen2ForCausalLM(config)
    paths = []
    for name, noise in [("base", 0.0)] + [(f"rl{i}" if n_rl > 1 else "rl", rl_noise * (i + 1))
                                          for i in range(n_rl)]:
        model = Qwen2ForCausalLM(config)
        model.load_state_dict(base.state_dict())
        if noise:
            with torch.no_grad():
                model.lm_head.weight.add_(torch.randn_like(model.lm_head.weight) * noise * 0.05)
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        path = root / name
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        paths.append(path)
    return paths[0], paths[1:]
