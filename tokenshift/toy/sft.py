"""Supervised fine-tuning on toy solutions: the base (planted slips) and the SFT control (RL's correct answers)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from tokenshift.builders.inputs.arith import split_problems
from tokenshift.builders.inputs.prompts import format_prompt
from tokenshift.runtime.progress import progress_bar
from tokenshift.toy.solutions import ForkMix, sample_solution


@dataclass(frozen=True)
class SFTConfig:
    """Plain AdamW + warmup/cosine; loss on the answer tokens (and the closing <|im_end|>) only."""

    steps: int = 900
    batch_size: int = 64
    learning_rate: float = 3e-3
    warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    fork_mix: ForkMix = field(default_factory=ForkMix)


def encode_example(tokenizer: PreTrainedTokenizerBase, question: str, answer_text: str) -> tuple[list[int], int]:
    """Token ids of prompt + answer + eos, and the number of prompt tokens (masked from the loss)."""
    prompt_ids = tokenizer(format_prompt(tokenizer, question), add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer_text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return prompt_ids + answer_ids, len(prompt_ids)


def _collate(examples: list[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (ids, n_prompt) in enumerate(examples):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, n_prompt: len(ids)] = torch.tensor(ids[n_prompt:])
        attention[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def _lr_factor(step: int, config: SFTConfig) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def planted_batches(config: SFTConfig) -> Callable[[random.Random], list[tuple[str, str]]]:
    """Batches of (question, solution with slips drawn from the fork mix) over the toy train split."""
    problems = split_problems("train")

    def draw(rng: random.Random) -> list[tuple[str, str]]:
        return [(p.question, sample_solution(p, config.fork_mix, rng)) for p in rng.sample(problems, config.batch_size)]
    return draw


def example_batches(examples: Sequence[tuple[str, str]], batch_size: int) -> Callable[[random.Random], list[tuple[str, str]]]:
    """Batches drawn without replacement within a batch from fixed (question, answer) examples."""
    def draw(rng: random.Random) -> list[tuple[str, str]]:
        return rng.sample(list(examples), min(batch_size, len(examples)))
    return draw


def train_sft(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, config: SFTConfig, seed: int,
              draw: Callable[[random.Random], list[tuple[str, str]]] | None = None,
              stop: Callable[[int], bool] | None = None) -> list[dict]:
    """Train in place for up to `config.steps` batches (default: planted solutions); `stop(steps_done)`
    is asked after every step and ends training early when true. Returns the loss log."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    draw = draw or planted_batches(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay, betas=(0.9, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, config))
    model.train()
    log: list[dict] = []
    bar = progress_bar(range(config.steps), desc="sft", unit="step")
    for step in bar:
        batch = [encode_example(tokenizer, question, answer) for question, answer in draw(rng)]
        loss = model(**_collate(batch, tokenizer.pad_token_id)).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        done = stop is not None and stop(step + 1)
        if step % 25 == 0 or step == config.steps - 1 or done:
            log.append({"step": step + 1, "loss": round(loss.item(), 4)})
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if done:
            break
    model.eval()
    return log
