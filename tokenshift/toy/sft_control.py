"""The SFT control: the base fine-tuned on answers the RL model sampled and got right (rejection sampling).

Same prompts (the RL training prompts) and the same behaviour as RL, a different training method:
supervised fine-tuning until its sampled accuracy is within `tolerance` of the RL model's.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from tokenshift.builders.inputs.arith import split_problems, toy_problems
from tokenshift.builders.inputs.prompts import format_prompt
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.toy.evaluate import generate, reward
from tokenshift.toy.sft import SFTConfig, example_batches, train_sft


@dataclass(frozen=True)
class SFTControlSettings:
    """Rejection-sampling data from the RL model, then SFT from the base with an accuracy stop."""

    n_prompts: int = 2000  # the first RL training prompts, one RL answer each; the correct ones are the data
    max_steps: int = 300
    batch_size: int = 64
    learning_rate: float = 1e-3
    warmup_steps: int = 10
    check_every: int = 5  # steps between accuracy checks
    n_check: int = 500  # held-out train problems (after the RL prompts) for the accuracy checks
    tolerance: float = 0.02  # stop once sampled accuracy >= RL's - tolerance on the check problems
    max_new_tokens: int = 128
    batch_generate: int = 100


def _answers(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, rows: list[tuple[str, str]],
             seed: int, settings: SFTControlSettings) -> list[str]:
    prompts = [format_prompt(tokenizer, q) for q, _ in rows]
    return generate(model, tokenizer, prompts, sample=True, seed=seed, batch_size=settings.batch_generate,
                    max_new_tokens=settings.max_new_tokens)


def _accuracy(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, rows: list[tuple[str, str]],
              seed: int, settings: SFTControlSettings) -> float:
    texts = _answers(model, tokenizer, rows, seed, settings)
    return sum(reward(gold, t) for (_, gold), t in zip(rows, texts)) / len(rows)


def rejection_sample(rl: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, n_train_prompts: int,
                     settings: SFTControlSettings, seed: int) -> tuple[list[tuple[str, str]], int]:
    """(question, answer) pairs the RL model sampled correctly on its own training prompts, and how many were tried."""
    rows = [(p["question"], p["answer"]) for p in toy_problems("train", min(settings.n_prompts, n_train_prompts))]
    texts = _answers(rl, tokenizer, rows, seed, settings)
    return [(q, t) for (q, gold), t in zip(rows, texts) if reward(gold, t) == 1.0], len(rows)


def train_sft_control(base: PreTrainedModel, rl: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                      settings: SFTControlSettings, n_train_prompts: int, seed: int) -> tuple[PreTrainedModel, dict]:
    """Fine-tune `base` in place on RL's correct samples until it is within tolerance of RL; returns it and a record."""
    examples, n_tried = rejection_sample(rl, tokenizer, n_train_prompts, settings, seed)
    if not examples:
        raise TokenshiftError(f"the RL model answered none of {n_tried} training prompts correctly, so the SFT "
                              "control has no data; train RL longer or sample more prompts")
    base, record = train_to_rl_accuracy(base, rl, tokenizer, examples, settings, n_train_prompts, seed)
    data = {"source": "rl", "prompts": f"toy-arith train[0:{n_tried}] (the RL training prompts)",
            "n_sampled": n_tried, "n_correct": len(examples)}
    return base, {"data": data, **record}


def train_to_rl_accuracy(base: PreTrainedModel, rl: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                         examples: list[tuple[str, str]], settings: SFTControlSettings, n_train_prompts: int,
                         seed: int) -> tuple[PreTrainedModel, dict]:
    """SFT `base` in place on (question, answer) examples, stopped at the first check within tolerance of
    RL's sampled accuracy on held-out train problems; returns it and the record of steps and checks."""
    held_out = split_problems("train")[n_train_prompts: n_train_prompts + settings.n_check]
    check_rows = [(p.question, str(p.answer)) for p in held_out]
    target = _accuracy(rl, tokenizer, check_rows, seed, settings)
    checks: list[dict] = []

    def stop(step: int) -> bool:
        if step % settings.check_every:
            return False
        base.eval()
        acc = _accuracy(base, tokenizer, check_rows, seed, settings)
        base.train()
        checks.append({"step": step, "check_accuracy": acc})
        return acc >= target - settings.tolerance

    config = SFTConfig(steps=settings.max_steps, batch_size=settings.batch_size,
                       learning_rate=settings.learning_rate, warmup_steps=settings.warmup_steps)
    log = train_sft(base, tokenizer, config, seed, draw=example_batches(examples, settings.batch_size), stop=stop)
    record = {"steps": log[-1]["step"], "rl_check_accuracy": target,
              "check_problems": f"toy-arith train[{n_train_prompts}:{n_train_prompts + len(check_rows)}]",
              "reached_target": bool(checks) and checks[-1]["check_accuracy"] >= target - settings.tolerance,
              "checks": checks, "loss_log": log}
    return base, record
