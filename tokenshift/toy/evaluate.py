"""Load a model directory safely and measure sampled and greedy accuracy on the toy test split."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from tokenshift.builders.grade import grade_answer
from tokenshift.builders.prompts import format_prompt
from tokenshift.errors import TokenshiftError
from tokenshift.toy.arith import N_TEST, toy_problems

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
    """Model and tokenizer from one self-contained directory; bad paths raise a one-line TokenshiftError."""
    path = Path(path)
    if not path.exists():
        raise TokenshiftError(f"model path {path} does not exist; {_FIX}")
    if not path.is_dir() or not (path / "config.json").is_file():
        raise TokenshiftError(f"{path} is not a model directory (no config.json); {_FIX}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=False, dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TokenshiftError(f"cannot load model from {path} ({first}); {_FIX}") from None
    model.eval()
    return model, tokenizer


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with `n` intra-op torch threads, then restore the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def generate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str], *,
             sample: bool, seed: int, batch_size: int, max_new_tokens: int) -> list[str]:
    """Batched KV-cached generation; sampling is pure (T=1, top_p=1, top_k=0), else greedy."""
    torch.manual_seed(seed)
    decode = ({"do_sample": True, "temperature": 1.0, "top_p": 1.0, "top_k": 0} if sample
              else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None})
    texts: list[str] = []
    for start in range(0, len(prompts), batch_size):
        tokenizer.padding_side = "left"  # not persisted by save_pretrained: set before every batch
        enc = tokenizer(prompts[start: start + batch_size], return_tensors="pt", padding=True,
                        add_special_tokens=False)
        with torch_threads(GENERATION_THREADS):
            out = model.generate(**enc, max_new_tokens=max_new_tokens, use_cache=True,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                 **decode)
        texts += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return texts


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
    for name, path in tqdm(list(dirs.items()), desc="eval", unit="model"):
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
