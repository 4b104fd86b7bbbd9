"""The toy model architecture (a tiny Qwen2) and the generation defaults saved with every model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase, Qwen2Config, Qwen2ForCausalLM


@dataclass(frozen=True)
class ModelConfig:
    """Qwen2 shape: ~1.1M parameters at the defaults (tied input/output embeddings)."""

    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 512
    max_position_embeddings: int = 4096


def new_model(config: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> Qwen2ForCausalLM:
    """A freshly initialised Qwen2 whose special-token ids match the tokenizer."""
    qcfg = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size, num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads, num_key_value_heads=config.num_attention_heads,
        max_position_embeddings=config.max_position_embeddings, tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = Qwen2ForCausalLM(qcfg)
    model.generation_config = sampling_config(tokenizer)
    return model


def sampling_config(tokenizer: PreTrainedTokenizerBase) -> GenerationConfig:
    """Pure sampling (T=1, top_p=1, top_k=0) so HF's top_k=50 default never applies silently."""
    return GenerationConfig(do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                            bos_token_id=None, max_new_tokens=128)


def save_model_dir(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out: Path) -> Path:
    """A self-contained directory: safetensors weights, config, generation config, tokenizer."""
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config = sampling_config(tokenizer)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def n_parameters(model: PreTrainedModel) -> int:
    return sum(p.numel() for p in model.parameters())
