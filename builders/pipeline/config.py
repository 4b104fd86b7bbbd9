"""What one build is: its frozen config (recorded verbatim in the manifest), its identity and its defaults.

Import-light (no torch, numpy or pyarrow), so the CLI reads the defaults of its options from here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tokenshift.builders.inputs import prompts
from tokenshift.runtime import executor
from tokenshift.runtime.arguments import check_field_types
from tokenshift.runtime.errors import TokenshiftError


@dataclass(frozen=True)
class BuildConfig:
    """Everything that determines a build's tables; recorded verbatim in the manifest."""

    out: str
    base: str | None = None  # None: the embedded toy base
    rl: tuple[str, ...] = ()  # empty: the embedded toy rl
    revision: str | None = None
    benchmark: str | None = "toy-arith"  # with completions: None (no join) or the benchmark to join by id
    question_field: str | None = None
    answer_field: str | None = None
    id_field: str | None = None
    question_template: str | None = None  # Python format fields of the row, e.g. "{Body} {Question}"
    answer_from: str = "field"  # benchmarks.ANSWER_RULES
    gold_transform: tuple[str, ...] = ()  # gold_rules.GOLD_TRANSFORMS, in order
    skip_invalid: bool = False  # skip rows with an empty gold, no box or a repeated id (listed in the manifest)
    benchmark_name: str | None = None  # None: the named benchmark or the file stem
    limit: int | None = None
    samples: int = 4
    max_new_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    top_k_candidates: int = 10
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    engine: str = "hf"
    instruction: str = prompts.DEFAULT_INSTRUCTION
    use_chat_template: bool = True
    batch_size: int = 64
    shard_size: int = 32
    shard: str = "0/1"
    score_memory_mb: int = 1024
    score_batch_tokens: int = 8192
    grade_timeout_s: float = 30.0
    trust_remote_code: bool = False
    ray: str | None = None  # None: this process; else a Ray address ("local": ray.init()'s default)
    ray_workers: int | None = None  # None: one per GPU (cuda) or per CPU of the cluster
    # answers to import instead of generating them (builders/pipeline/import_build.py); None: generate
    completions: str | None = None
    format: str | None = None  # values.IMPORT_FORMATS
    prompt_field: str | None = None
    completion_field: str | None = None
    gold_field: str | None = None
    token_ids_field: str | None = None
    sampler_field: str | None = None
    sampler: str | None = None
    correct_field: str | None = None

    def recorded(self) -> dict:
        """The config as the manifest records it; a generating build records no import field."""
        values = dataclasses.asdict(self)
        return values if self.completions is not None else {k: v for k, v in values.items()
                                                            if k not in IMPORT_FIELDS}

    def __post_init__(self):
        check_field_types(self)

    def identity(self) -> dict:
        """The fields that decide the tables (a resumed or re-run build must match them)."""
        return {k: v for k, v in self.recorded().items() if k not in EXECUTION_FIELDS}

    @classmethod
    def from_manifest(cls, recorded: dict, trust_remote_code: bool = False) -> "BuildConfig":
        """The config a manifest records; trust_remote_code comes from the caller's command line, never from data."""
        config = recorded.get("config")
        if not isinstance(config, dict):
            raise TokenshiftError("the manifest has no config block: rebuild with `tokenshift build`")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in config.items() if k in known}
        values["rl"] = tuple(values.get("rl") or ())
        values["gold_transform"] = tuple(values.get("gold_transform") or ())
        values["trust_remote_code"] = trust_remote_code
        try:
            return cls(**{"out": "", **values})
        except TypeError as err:
            raise TokenshiftError(f"the manifest's config is not a build config ({err}): rebuild with "
                                  "`tokenshift build`") from None

    def placement(self) -> executor.RayPlacement | None:
        """Where the shards run: None for this process, else the Ray actor pool."""
        return executor.ray_placement(self.ray, self.ray_workers, self.device)


EXECUTION_FIELDS = ("out", "ray", "ray_workers")  # where a build runs, not what it contains
IMPORT_FIELDS = ("completions", "format", "prompt_field", "completion_field", "gold_field", "token_ids_field",
                 "sampler_field", "sampler", "correct_field")  # set only by `tokenshift build --completions`
