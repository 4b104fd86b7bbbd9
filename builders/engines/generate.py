"""Sample responses from one model for a batch of prompts: the generation engines and their registry.

Import-light (torch and vLLM load when an engine runs), so the CLI can read ENGINES.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tokenshift.builders.engines.models import input_device
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.meter import record_decoded
from tokenshift.schemas.values import GENERATION_ENGINES


@dataclass(frozen=True)
class SamplingConfig:
    max_new_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 64


@dataclass(frozen=True)
class Sample:
    prompt_index: int
    sample_index: int
    token_ids: list[int]  # response tokens, the end-of-sequence token included when emitted
    finish_reason: str  # 'stop' or 'length'


def stop_token_ids(model, tokenizer) -> set[int]:
    """End-of-sequence ids from the generation config and the tokenizer."""
    ids = getattr(model.generation_config, "eos_token_id", None)
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def trim_response(generated: list[int], stop_ids: set[int], max_new_tokens: int) -> tuple[list[int], str]:
    """Cut a generated row after its first stop token; pad tokens after it are dropped."""
    for i, token in enumerate(generated):
        if token in stop_ids:
            return generated[:i + 1], "stop"
    return generated[:max_new_tokens], "length"


def sampling_kwargs(config: SamplingConfig) -> dict:
    """generate() arguments for pure temperature/top-p sampling (no default top-k of 50)."""
    if config.temperature == 0:
        return {"do_sample": False, "top_k": None, "top_p": None, "temperature": None}
    return {"do_sample": True, "temperature": config.temperature, "top_p": config.top_p,
            "top_k": 0}


def generate_hf(model, tokenizer, prompt_ids: list[list[int]], samples: int, seed: int,
                config: SamplingConfig, progress=None) -> list[Sample]:
    """`samples` responses per prompt, batched with left padding and a KV cache, seeded once."""
    import torch

    with torch.inference_mode():
        return _generate_hf(model, tokenizer, prompt_ids, samples, seed, config, progress)


def _generate_hf(model, tokenizer, prompt_ids, samples, seed, config, progress) -> list[Sample]:
    import torch


    device = input_device(model)
    stop_ids = stop_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(stop_ids)
    jobs = [(p, s) for p in range(len(prompt_ids)) for s in range(samples)]
    torch.manual_seed(seed)
    out: list[Sample] = []
    for lo in range(0, len(jobs), config.batch_size):
        started = time.perf_counter()
        batch = jobs[lo:lo + config.batch_size]
        rows = [prompt_ids[p] for p, _ in batch]
        width = max(map(len, rows))
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, width - len(row):] = torch.tensor(row)
            attention[i, width - len(row):] = 1
        generated = model.generate(
            input_ids=input_ids.to(device), attention_mask=attention.to(device),
            max_new_tokens=config.max_new_tokens, pad_token_id=pad_id,
            eos_token_id=sorted(stop_ids), **sampling_kwargs(config))
        for (p, s), row in zip(batch, generated[:, width:].tolist()):
            tokens, reason = trim_response(row, stop_ids, config.max_new_tokens)
            out.append(Sample(p, s, tokens, reason))
        record_decoded(sum(len(s.token_ids) for s in out[-len(batch):]), time.perf_counter() - started)
        if progress is not None:
            progress.update(len(batch))
    return out


def generate_vllm(model_source: str, revision: str | None, tokenizer, prompt_ids: list[list[int]],
                  samples: int, seed: int, config: SamplingConfig, dtype: str) -> list[Sample]:
    """The same samples through vLLM (optional extra); scoring still uses the HF models."""
    try:
        from vllm import LLM, SamplingParams
        from vllm.inputs import TokensPrompt
    except ImportError:
        raise TokenshiftError("--engine vllm needs vLLM: pip install 'tokenshift[vllm]', "
                              "or use --engine hf") from None

    llm = LLM(model=model_source, revision=revision, dtype=dtype, seed=seed,
              trust_remote_code=False)
    vocab = len(tokenizer)
    padded = {"allowed_token_ids": list(range(vocab))} if llm.llm_engine.model_config.get_vocab_size() > vocab else {}
    params = SamplingParams(n=samples, temperature=config.temperature, top_p=config.top_p,
                            top_k=-1 if config.temperature > 0 else 1,
                            max_tokens=config.max_new_tokens, seed=seed, **padded)  # no padded row sampled
    started = time.perf_counter()
    results = llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids], params)
    out = []
    for p, result in enumerate(results):
        for s, completion in enumerate(result.outputs):
            reason = "stop" if completion.finish_reason == "stop" else "length"
            out.append(Sample(p, s, list(completion.token_ids), reason))
            if any(t >= vocab for t in completion.token_ids):
                raise TokenshiftError(f"vLLM sampled a token id past the tokenizer's {vocab} ids (a padded "
                                      "vocabulary row): use --engine hf")
    record_decoded(sum(len(s.token_ids) for s in out), time.perf_counter() - started)
    return out


@dataclass(frozen=True)
class EngineJob:
    """One model's sampling job, the single argument of every engine."""

    spec: object  # models.ModelSpec: name, source (directory or Hub id), revision
    model: object  # the loaded HF model (scoring needs it anyway); an engine may load its own instead
    tokenizer: object
    prompt_ids: list[list[int]]
    samples: int  # responses per prompt
    seed: int
    config: SamplingConfig
    dtype: str  # weights dtype of the build (float32 or bfloat16)
    progress: object = None  # a tqdm bar to update by answers done, or None


Engine = Callable[[EngineJob], list[Sample]]
ENGINES: dict[str, Engine] = {}  # --engine NAME -> engine; the CLI choices and the schema read it
ENGINE_PACKAGES: dict[str, str] = {}  # engine -> the importable package it needs beyond the core install


def engine(name: str, needs: str | None = None) -> Callable[[Engine], Engine]:
    """Register an engine under `name` (needing package `needs`, checked before a build starts); the name must be
    one of schemas/values.py's GENERATION_ENGINES, the allowed values of --engine and generations.engine."""
    if name not in GENERATION_ENGINES:
        raise ValueError(f"engine {name!r} is not in schemas/values.py GENERATION_ENGINES: add it there first")

    def register(fn: Engine) -> Engine:
        ENGINES[name] = fn
        if needs:
            ENGINE_PACKAGES[name] = needs
        return fn
    return register


@engine("hf")
def hf_engine(job: EngineJob) -> list[Sample]:
    """transformers' generate() on the loaded model."""
    return generate_hf(job.model, job.tokenizer, job.prompt_ids, job.samples, job.seed, job.config, job.progress)


@engine("vllm", needs="vllm")
def vllm_engine(job: EngineJob) -> list[Sample]:
    """vLLM on the checkpoint's source (the loaded HF model is used for scoring only)."""
    samples = generate_vllm(job.spec.source, job.spec.revision, job.tokenizer, job.prompt_ids, job.samples,
                            job.seed, job.config, job.dtype)
    if job.progress is not None:
        job.progress.update(len(samples))
    return samples
