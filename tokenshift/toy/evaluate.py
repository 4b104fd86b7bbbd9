"""Load a model directory safely and measure sampled and greedy accuracy on the toy test split."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from tokenshift.builders.engines import models
from tokenshift.builders.engines.generate import SamplingConfig, generate_hf
from tokenshift.builders.grading.grade import grade_answer
from tokenshift.builders.inputs.arith import N_TEST, toy_problems
from tokenshift.builders.inputs.prompts import format_prompt
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.progress import progress_bar

# Decoding a 1M-parameter model is latency-bound: on 2 shared cores, 2 threads ran ~60x slower than
# 1 (thread barriers wait on busy cores); 1 thread gave identical figures.
GENERATION_THREADS = 1
_FIX = "pass a directory written by save_pretrained (e.g. by `tokenshift toy-pair train --out DIR`)"


@dataclass(frozen=True)
class EvalConfig:
    """Which problems, how to decode, and the seed that makes sampling repeatable."""

    n: int = 200
    seed: int = 0
    batch_size: int = 100
    max_new_tokens: int = 128


def load_model_dir(path: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model and tokenizer from one self-contained directory (the builders' loaders, so the same
    `from_pretrained` path as a real checkpoint); bad paths raise a one-line TokenshiftError."""
    path = Path(path)
    if not path.exists():
        raise TokenshiftError(f"model path {path} does not exist; {_FIX}")
    spec = models.ModelSpec(name=path.name, source=str(path))
    try:
        return models.load_model(spec), models.load_tokenizer(spec)
    except TokenshiftError as err:  # the builders' problem, with this command's fix
        raise TokenshiftError(f"{str(err).rsplit(': ', 1)[0]}; {_FIX}") from None


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with `n` intra-op torch threads, then restore the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def generate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str], *,
             sample: bool, seed: int, batch_size: int, max_new_tokens: int) -> list[str]:
    """One answer per prompt with the build's HF sampler: pure sampling (T=1, top_p=1, no top-k) or greedy."""
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in prompts]
    config = SamplingConfig(max_new_tokens, 1.0 if sample else 0.0, 1.0, batch_size)
    with torch_threads(GENERATION_THREADS):
        samples = generate_hf(model, tokenizer, ids, 1, seed, config)
    return [tokenizer.decode(s.token_ids, skip_special_tokens=True) for s in samples]


def reward(gold: str, completion: str) -> float:
    """1.0 when math-verify accepts the last boxed answer, else 0.0 (ungraded counts as wrong)."""
    return 1.0 if grade_answer(gold, completion).correct else 0.0


def accuracy(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, problems: list[dict], *,
             sample: bool, config: EvalConfig) -> float:
    """Fraction of problems answered correctly with one generation each."""
    prompts = [format_prompt(tokenizer, p["question"]) for p in problems]
    texts = generate(model, tokenizer, prompts, sample=sample, seed=config.seed,
                     batch_size=config.batch_size, max_new_tokens=config.max_new_tokens)
    return sum(reward(p["answer"], t) for p, t in zip(problems, texts)) / len(problems)


def evaluate_dirs(dirs: dict[str, Path], config: EvalConfig) -> dict:
    """`<name>_accuracy` (sampled) and `<name>_greedy_accuracy` for each named model directory."""
    problems = toy_problems("test", min(config.n, N_TEST))
    result: dict = {"n": len(problems), "split": "test", "seed": config.seed}
    for name, path in progress_bar(list(dirs.items()), desc="eval", unit="model"):
        model, tokenizer = load_model_dir(path)
        result[f"{name}_path"] = str(path)
        result[f"{name}_accuracy"] = accuracy(model, tokenizer, problems, sample=True, config=config)
        result[f"{name}_greedy_accuracy"] = accuracy(model, tokenizer, problems, sample=False, config=config)
    return result


def sampled_accuracy(path: Path, config: EvalConfig) -> float:
    """Sampled accuracy of one model directory on the first `config.n` test problems."""
    model, tokenizer = load_model_dir(path)
    problems = toy_problems("test", min(config.n, N_TEST))
    return accuracy(model, tokenizer, problems, sample=True, config=config)
