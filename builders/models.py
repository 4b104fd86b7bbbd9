"""Load checkpoints (local directory or Hub id) through `from_pretrained`, and describe them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from tokenshift.errors import TokenshiftError

DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class ModelSpec:
    """A checkpoint to load: a local directory or a Hub id, at an optional revision."""

    name: str
    source: str
    revision: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    name: str
    source: str
    revision: str | None
    sha256: str | None  # content hash of a local checkpoint's config and weights


def parse_model_spec(text: str, name: str, revision: str | None = None) -> ModelSpec:
    """`PATH`, `ORG/NAME` or `ORG/NAME@REVISION`; local paths win over Hub ids."""
    if not Path(text).exists() and "@" in text:
        text, revision = text.rsplit("@", 1)
    return ModelSpec(name=name, source=text, revision=revision)


def model_name(text: str) -> str:
    """A short readable name for a model argument: a directory's name or a Hub id."""
    path = Path(text.split("@")[0])
    return path.name if path.exists() else text.split("@")[0]


def _check_local(source: str) -> None:
    path = Path(source)
    looks_like_hub_id = source.count("/") == 1 and not source.startswith((".", "/", "~"))
    if not path.exists():
        if looks_like_hub_id:
            return
        raise TokenshiftError(f"model path {source} does not exist: pass a checkpoint directory "
                              "or a Hub id ORG/NAME")
    if not path.is_dir() or not (path / "config.json").is_file():
        raise TokenshiftError(f"{source} is not a model directory (no config.json): pass a "
                              "directory saved with save_pretrained")


def load_tokenizer(spec: ModelSpec, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    _check_local(spec.source)
    try:
        return AutoTokenizer.from_pretrained(spec.source, revision=spec.revision,
                                             trust_remote_code=trust_remote_code)
    except Exception as err:
        raise TokenshiftError(f"could not load the tokenizer of {spec.source} "
                              f"({_first_line(err)}): check the path or Hub id") from None


def load_model(spec: ModelSpec, device: str = "cpu", dtype: str = "float32",
               trust_remote_code: bool = False):
    """The model in eval mode on `device`; every failure becomes a one-line TokenshiftError."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    _check_local(spec.source)
    hf_logging.disable_progress_bar()  # one bar per weight file is noise beside the build's own bars
    if dtype not in DTYPES:
        raise TokenshiftError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    check_device(device)
    placement = {"device_map": "auto"} if device == "auto" else {}
    try:
        model = AutoModelForCausalLM.from_pretrained(
            spec.source, revision=spec.revision, dtype=getattr(torch, dtype),
            trust_remote_code=trust_remote_code, **placement)
    except Exception as err:
        raise TokenshiftError(f"could not load model {spec.source} ({_first_line(err)}): "
                              "check the path or Hub id") from None
    return (model if placement else model.to(device)).eval()


def check_device(device: str, here: bool = True) -> None:
    """A known device name, and (here=True) one this process can use. 'auto' splits each model
    over the visible GPUs (accelerate's device_map), or means cpu where there is none."""
    import torch

    cuda = device == "cuda" or device.startswith("cuda:")
    if not cuda and device not in ("cpu", "auto"):
        raise TokenshiftError(f"unknown device {device!r}: use cpu, cuda, cuda:N or auto")
    if here and cuda and not torch.cuda.is_available():
        raise TokenshiftError(f"--device {device} was asked but no CUDA GPU is available: use --device cpu")
    if here and device.startswith("cuda:"):
        index = device.split(":", 1)[1]
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise TokenshiftError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s) "
                                  "numbered from 0: use --device cuda or cuda:N with N below that")


def context_length(spec: ModelSpec, trust_remote_code: bool = False) -> int | None:
    """The model's context window (max_position_embeddings) from its config, or None when it records none."""
    from transformers import AutoConfig

    _check_local(spec.source)
    try:
        config = AutoConfig.from_pretrained(spec.source, revision=spec.revision, trust_remote_code=trust_remote_code)
    except Exception as err:
        raise TokenshiftError(f"could not read the config of {spec.source} ({_first_line(err)}): "
                              "check the path or Hub id") from None
    value = getattr(config, "max_position_embeddings", None)
    return value if isinstance(value, int) and value > 0 else None


def input_device(model):
    """Where a model's input ids go: its input embedding's device (the first of several under 'auto')."""
    return model.get_input_embeddings().weight.device


def describe(spec: ModelSpec) -> ModelInfo:
    """Name, source, revision (the Hub commit when known) and a content hash for local models."""
    path = Path(spec.source)
    revision = spec.revision
    if not path.is_dir():
        from transformers import AutoConfig

        revision = getattr(AutoConfig.from_pretrained(spec.source, revision=spec.revision),
                           "_commit_hash", None) or revision
    digest = directory_sha256(path, ("config.json", "*.safetensors", "*.bin")) if path.is_dir() else None
    return ModelInfo(spec.name, spec.source, revision, digest)


def directory_sha256(path: Path, patterns: tuple[str, ...]) -> str:
    """sha256 over the sorted files of `path` that match `patterns` (names and bytes)."""
    digest = hashlib.sha256()
    files = sorted({f for pattern in patterns for f in path.glob(pattern) if f.is_file()})
    for file in files:
        digest.update(file.name.encode())
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def tokenizer_sha256(tokenizer) -> str:
    """Hash of the vocabulary (token → id, added tokens included) and the chat template."""
    payload = json.dumps([sorted(tokenizer.get_vocab().items()), tokenizer.chat_template or ""],
                         ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def check_same_vocabulary(base_tok, other_tok, base_name: str, other_name: str) -> None:
    """Refuse a pair whose tokenizers map tokens to ids differently: scores would be meaningless."""
    a, b = base_tok.get_vocab(), other_tok.get_vocab()
    if a == b:
        return
    if len(a) != len(b):
        raise TokenshiftError(f"{base_name} and {other_name} have different vocabularies "
                              f"({len(a)} vs {len(b)} tokens): use checkpoints that share a tokenizer")
    differing = sorted(set(a.items()) ^ set(b.items()), key=lambda kv: kv[1])
    token, token_id = differing[0]
    raise TokenshiftError(f"{base_name} and {other_name} have different vocabularies "
                          f"({len(differing) // 2 or 1} tokens differ, e.g. {token!r} at id {token_id}): "
                          "use checkpoints that share a tokenizer")


def check_vocab_fits(model, vocab_size: int, name: str) -> None:
    rows = model.get_output_embeddings().weight.shape[0]
    if rows < vocab_size:
        raise TokenshiftError(f"{name} has {rows} output rows but its tokenizer has {vocab_size} "
                              "tokens: the tokenizer does not belong to this model")


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:200]
