"""Load checkpoints (local directory or Hub id) through `from_pretrained`, and describe them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from tokenshift.runtime.errors import TokenshiftError

DTYPES = ("float32", "bfloat16")

# The files of a checkpoint folder that decide the tokens it produces: weights, config, generation config,
# tokenizer, chat template (and the remote code only --trust-remote-code runs). Each is hashed on its own
# (models.NAME.files_sha256 in the manifest), so a refusal names the file that changed.
CHECKPOINT_FILES = ("config.json", "generation_config.json", "*.safetensors", "*.safetensors.index.json", "*.bin",
                    "*.bin.index.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                    "added_tokens.json", "vocab.json", "vocab.txt", "merges.txt", "*.model", "*.tiktoken",
                    "chat_template.jinja", "chat_template.json", "additional_chat_templates/*.jinja", "*.py")
# What models.NAME.sha256 covers (config and weights, as builds have always recorded it).
WEIGHTS_FILES = ("config.json", "*.safetensors", "*.bin")


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
    files_sha256: dict[str, str] | None = None  # sha256 of each of its CHECKPOINT_FILES, by relative path


def parse_model_spec(text: str, name: str, revision: str | None = None) -> ModelSpec:
    """`PATH`, `ORG/NAME` or `ORG/NAME@REVISION`; local paths win over Hub ids."""
    if not Path(text).exists() and "@" in text:
        text, revision = text.rsplit("@", 1)
    return ModelSpec(name=name, source=text, revision=revision)


def model_name(text: str) -> str:
    """A short readable name for a model argument: a directory's name (`.` and `..` resolved) or a Hub id."""
    path = Path(text.split("@")[0])
    if not path.exists():
        return text.split("@")[0]
    name = path.name if path.name not in ("", ".", "..") else path.resolve().name
    if not name:
        raise TokenshiftError(f"model path {text!r} has no folder name to call the model by: "
                              "pass the checkpoint folder itself")
    return name


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
    """Name, source, revision (the Hub commit when known) and content hashes for local models."""
    path = Path(spec.source)
    revision = spec.revision
    if not path.is_dir():
        from transformers import AutoConfig

        revision = getattr(AutoConfig.from_pretrained(spec.source, revision=spec.revision),
                           "_commit_hash", None) or revision
        return ModelInfo(spec.name, spec.source, revision, None)
    digest, files = checkpoint_hashes(path)
    return ModelInfo(spec.name, spec.source, revision, digest, files)


def _matching(path: Path, patterns: tuple[str, ...]) -> set[Path]:
    return {f for pattern in patterns for f in path.glob(pattern) if f.is_file()}


def checkpoint_hashes(path: Path) -> tuple[str, dict[str, str]]:
    """(sha256 over config and weights as `directory_sha256` takes it, {relpath: sha256} of every
    CHECKPOINT_FILES file), reading each file once."""
    combined = hashlib.sha256()
    weights = _matching(path, WEIGHTS_FILES)
    files = {}
    for file in sorted(weights | _matching(path, CHECKPOINT_FILES)):
        own = hashlib.sha256()
        if file in weights:
            combined.update(file.name.encode())
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                own.update(block)
                if file in weights:
                    combined.update(block)
        files[file.relative_to(path).as_posix()] = own.hexdigest()
    return combined.hexdigest(), files


def directory_sha256(path: Path, patterns: tuple[str, ...]) -> str:
    """sha256 over the sorted files of `path` that match `patterns` (names and bytes)."""
    digest = hashlib.sha256()
    for file in sorted(_matching(path, patterns)):
        digest.update(file.name.encode())
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def pinned(spec: ModelSpec, recorded: dict | None) -> ModelSpec:
    """A Hub model at the commit the build recorded (a local folder is checked by its hashes instead)."""
    revision = (recorded or {}).get("revision") if isinstance(recorded, dict) else None
    if Path(spec.source).exists() or not isinstance(revision, str) or not revision:
        return spec
    return ModelSpec(spec.name, spec.source, revision)


def verify_checkpoint(spec: ModelSpec, recorded: dict | None) -> None:
    """Refuse a checkpoint that differs from what the build recorded, or that the record cannot vouch for.

    A local folder: each recorded file hash (files_sha256) must match, no file missing or added; a
    build that recorded only `sha256` (config and weights) is checked by that. A Hub model must carry
    the commit it was built at (it is then loaded at that commit, see `pinned`).
    """
    entry = recorded if isinstance(recorded, dict) else {}
    where = f"model {spec.name} at {spec.source}"
    fix = "cross-sample with the build's checkpoints (or rebuild with these)"
    if not Path(spec.source).is_dir():
        if not entry.get("revision"):
            raise TokenshiftError(f"{where}: the manifest records no Hub commit for it, so the build cannot "
                                  f"vouch for what would be loaded: {fix}")
        return
    want_files, want = entry.get("files_sha256"), entry.get("sha256")
    if not (isinstance(want_files, dict) and want_files) and not (isinstance(want, str) and want):
        raise TokenshiftError(f"{where}: the manifest records no content hash for it, so the build cannot "
                              f"vouch for these files: {fix}")
    have, have_files = checkpoint_hashes(Path(spec.source))
    if isinstance(want_files, dict) and want_files:
        for rel in sorted(set(want_files) | set(have_files)):
            if rel not in have_files:
                raise TokenshiftError(f"{where}: {rel} is gone since the build: {fix}")
            if rel not in want_files:
                raise TokenshiftError(f"{where}: {rel} was added since the build (it may change the tokens): {fix}")
            if have_files[rel] != want_files[rel]:
                raise TokenshiftError(f"{where} changed since the build: {rel} (sha256 {have_files[rel][:12]} != "
                                      f"{str(want_files[rel])[:12]}): {fix}")
    elif have != want:
        raise TokenshiftError(f"{where} changed since the build (sha256 {have[:12]} != {want[:12]}): {fix}")


def verify_tokenizer(tokenizer, recorded: dict, name: str = "base") -> None:
    """Refuse a tokenizer whose vocabulary or chat template differs from the build's (tokenizer.sha256)."""
    want = (recorded.get("tokenizer") or {}).get("sha256") if isinstance(recorded.get("tokenizer"), dict) else None
    if isinstance(want, str) and want and tokenizer_sha256(tokenizer) != want:
        raise TokenshiftError(f"the tokenizer of {name} differs from the build's (vocabulary or chat template; "
                              "sha256 differs from manifest.tokenizer): use the build's checkpoints")


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


def fit_head_to_vocabulary(model, vocab_size: int, name: str) -> None:
    """Refuse a model with fewer output rows than tokenizer ids; cut padded rows past them off its head.

    Checkpoints often pad the embedding to a round size (a base and its RL model even differently):
    the rows past the tokenizer are no tokens, so every logit of every decoder and scorer is taken over
    the tokenizer's ids only (a softmax without the padded rows), and no id past them can be sampled.
    """
    import torch

    head = model.get_output_embeddings()
    rows = head.weight.shape[0]
    if rows < vocab_size:
        raise TokenshiftError(f"{name} has {rows} output rows but its tokenizer has {vocab_size} "
                              "tokens: the tokenizer does not belong to this model")
    if rows > vocab_size:
        head.weight = torch.nn.Parameter(head.weight.detach()[:vocab_size], requires_grad=False)
        if getattr(head, "bias", None) is not None:
            head.bias = torch.nn.Parameter(head.bias.detach()[:vocab_size], requires_grad=False)
        if hasattr(head, "out_features"):
            head.out_features = vocab_size


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:200]


check_vocab_fits = fit_head_to_vocabulary  # its former name, still called by the reference commit's code that tests run
