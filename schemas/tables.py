"""The table contract: one pyarrow schema per table, each field with its type, meaning and valid values.

Builders write through these schemas, `tokenshift validate` generates its great-expectations suite
from them (schemas/expectations.py) and the dataset card prints them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from tokenshift.runtime.files import atomic_path
from tokenshift.schemas.values import (
    BUDGET_UNITS,
    CRITERIA,
    DIRECTIONS,
    ENGINES,
    FINISH_REASONS,
    FLOAT32_TOL,
    GENERATION_ENGINES,
    LN2,
    LN_VOCAB,
    MATCHABLE,
    MIX_SPACES,
    PROTOCOLS,
    RL_MODELS,
    SAMPLERS,
    SIGNS,
    TOP_K,
)

# The version of the contract below; past versions' contracts are frozen in schemas/contracts/ (schemas/versions.py).
SCHEMA_VERSION = "2.2"
Bound = float | str  # a number, or a name in schemas/values.py resolved per build (LN_VOCAB)


@dataclass(frozen=True)
class Field:
    """One column: arrow type, description (stored in the parquet metadata) and valid values.

    low/high bound the values (inclusive, ± tol for float rounding); allowed is a tuple of values or a
    per-build set (RL_MODELS, SAMPLERS); length fixes every list's length (TOP_K); item_high bounds a
    list's elements; descending makes every list non-increasing (recipes read its last entry as its
    smallest); unit names what a number measures (docs/reference/tables.md prints it; "" for ids, text
    and flags). Only name, type, description and nullable reach the parquet files.
    """

    name: str
    type: pa.DataType
    description: str
    nullable: bool = False
    low: Bound | None = field(default=None, kw_only=True)
    high: Bound | None = field(default=None, kw_only=True)
    tol: float = field(default=0.0, kw_only=True)
    allowed: tuple | str | None = field(default=None, kw_only=True)
    length: str | int | None = field(default=None, kw_only=True)
    item_high: float | None = field(default=None, kw_only=True)
    descending: bool = field(default=False, kw_only=True)  # every list non-increasing (most probable first)
    unit: str = field(default="", kw_only=True)  # what a number measures: "nats", "tokens", "fraction", ...
    import_null: str | None = field(default=None, kw_only=True)  # why the field may be null in an imported build

    def nullable_in(self, imported: bool) -> bool:
        """Whether the field may be null: in every build, or (import_null) in one of imported answers."""
        return self.nullable or (imported and self.import_null is not None)

    def to_arrow(self, imported: bool = False) -> pa.Field:
        """The parquet field; an imported build's (`tokenshift build --completions`) adds the import_null note."""
        description = self.description
        if imported and self.import_null is not None:
            description = f"{description}; null in an imported build when {self.import_null}"
        return pa.field(self.name, self.type, nullable=self.nullable_in(imported),
                        metadata={"description": description})

    def valid_values(self) -> str:
        """The valid values in words, e.g. "[0, ln 2]", "'stop' or 'length'", "length K; each <= 0"."""
        parts = []
        if isinstance(self.allowed, tuple):
            parts.append(" or ".join(repr(v) for v in self.allowed))
        elif self.allowed:
            parts.append({RL_MODELS: "an RL model of the build",
                          SAMPLERS: "'base', an RL model of the build, or a sampler its imported answers name"}
                         .get(self.allowed, self.allowed))
        if self.low is not None or self.high is not None:
            if self.high is None:
                parts.append(f">= {_bound_text(self.low)}")
            elif self.low is None:
                parts.append(f"<= {_bound_text(self.high)}")
            else:
                parts.append(f"[{_bound_text(self.low)}, {_bound_text(self.high)}]")
        if self.length is not None:
            parts.append(f"length {self.length}")
        if self.item_high is not None:
            parts.append(f"each <= {_bound_text(self.item_high)}")
        if self.descending:
            parts.append("non-increasing")
        return "; ".join(parts) or "any"


def _bound_text(value: Bound) -> str:
    if value == LN2:
        return "ln 2"
    return f"{value:g}" if isinstance(value, float) else str(value)


_LOGP = "log-probability in nats (natural log), <= 0"
_TOPK_NOTE = "K = the build's top_k_candidates, most probable first"
_EXACT_NULL = ("computed in float32 from both full distributions at build time; null only in builds migrated from "
               "schema version < 2.1 (`tokenshift migrate`: not computable without the models)")
_LIST_SCALAR = ("float32, written beside the list so that readers need not scan it; `tokenshift migrate` computes it "
                "from the list for builds of schema version < 2.2")

PROMPTS = (
    Field("problem_id", pa.string(), "problem identifier from the benchmark, as a string"),
    Field("benchmark", pa.string(), "benchmark name (toy-arith, aime24, amc23, gsm8k or a file stem)"),
    Field("question", pa.string(), "problem statement as given by the benchmark"),
    Field("gold_answer", pa.string(), "reference answer (GSM8K: the text after ####)",
          import_null="neither the source nor --benchmark gives one (correct is then null, or the source's verdict)"),
    Field("prompt", pa.string(), "exact text fed to the models: chat template applied to question + instruction"),
)

GENERATIONS = (
    Field("generation_id", pa.string(), "unique id: '<sampler>/<problem_id>/<sample_index>'"),
    Field("problem_id", pa.string(), "problem this answers (prompts.problem_id)"),
    Field("benchmark", pa.string(), "benchmark name"),
    Field("sampler", pa.string(), "model that sampled the response: 'base' or an RL model name", allowed=SAMPLERS),
    Field("sample_index", pa.int32(), "0-based index of the sample for this problem and sampler", low=0),
    Field("seed", pa.int64(), "torch seed of the generation batch this response came from",
          import_null="engine = 'import' (the answer was sampled elsewhere)"),
    Field("response_text", pa.string(), "decoded response, special tokens removed"),
    Field("n_tokens", pa.int32(), "number of response tokens (including the end-of-sequence token if emitted)", low=0, unit="tokens"),
    Field("finish_reason", pa.string(), "'stop' (end-of-sequence emitted) or 'length' (hit max_new_tokens)",
          allowed=FINISH_REASONS, import_null="engine = 'import' (the source does not record it)"),
    Field("extracted_answer", pa.string(), "content of the last \\boxed{} in the response; null if none", True),
    Field("correct", pa.bool_(), "math-verify verdict against gold_answer; null if grading failed or timed out", True),
    Field("engine", pa.string(), "generation engine: " + " or ".join(map(repr, GENERATION_ENGINES)), allowed=ENGINES),
)

TOKENS = (
    Field("generation_id", pa.string(), "generation this token belongs to (generations.generation_id)"),
    Field("sampler", pa.string(), "model that sampled the response (copied from generations for easy filtering)",
          allowed=SAMPLERS),
    Field("rl_model", pa.string(), "RL model compared with base at this position", allowed=RL_MODELS),
    Field("position", pa.int32(), "0-based index of the token in the response", low=0, unit="tokens"),
    Field("rel_position", pa.float32(), "position / (n_tokens - 1), in [0, 1]; 0 when n_tokens = 1",
          low=0.0, high=1.0, tol=FLOAT32_TOL, unit="fraction"),
    Field("token_id", pa.int32(), "sampled token id", low=0),
    Field("token", pa.string(), "sampled token decoded on its own"),
    Field("logp_base", pa.float32(), f"base {_LOGP} of the sampled token", high=0.0, tol=FLOAT32_TOL, unit="nats"),
    Field("logp_rl", pa.float32(), f"RL {_LOGP} of the sampled token", high=0.0, tol=FLOAT32_TOL, unit="nats"),
    Field("entropy_base", pa.float32(), "entropy of the base next-token distribution, nats, in [0, ln V]",
          low=0.0, high=LN_VOCAB, tol=FLOAT32_TOL, unit="nats"),
    Field("entropy_rl", pa.float32(), "entropy of the RL next-token distribution, nats, in [0, ln V]",
          low=0.0, high=LN_VOCAB, tol=FLOAT32_TOL, unit="nats"),
    Field("js", pa.float32(), "Jensen-Shannon divergence of p_base and p_rl, nats, in [0, ln 2]",
          low=0.0, high=LN2, tol=FLOAT32_TOL, unit="nats"),
    Field("kl_base_rl", pa.float32(), "KL(p_base || p_rl), nats, >= 0", low=0.0, tol=FLOAT32_TOL, unit="nats"),
    Field("kl_rl_base", pa.float32(), "KL(p_rl || p_base), nats, >= 0", low=0.0, tol=FLOAT32_TOL, unit="nats"),
    Field("rank_base", pa.int32(), "1-based rank of the sampled token under base (1 = most probable; ties share the best rank)",
          low=1, unit="rank"),
    Field("rank_rl", pa.int32(), "1-based rank of the sampled token under RL", low=1, unit="rank"),
    Field("top1_base", pa.int32(), "most probable token id under base", low=0),
    Field("top1_rl", pa.int32(), "most probable token id under RL", low=0),
    Field("rl_top1_rank_base", pa.int32(), "1-based rank under base of the RL top-1 token", low=1, unit="rank"),
    Field("topk_base_ids", pa.list_(pa.int32()), f"base top-K token ids; {_TOPK_NOTE}", length=TOP_K),
    Field("topk_base_logp", pa.list_(pa.float32()), f"base top-K {_LOGP}; {_TOPK_NOTE}",
          length=TOP_K, item_high=0.0, tol=FLOAT32_TOL, descending=True, unit="nats"),
    Field("topk_rl_ids", pa.list_(pa.int32()), f"RL top-K token ids; {_TOPK_NOTE}", length=TOP_K),
    Field("topk_rl_logp", pa.list_(pa.float32()), f"RL top-K {_LOGP}; {_TOPK_NOTE}",
          length=TOP_K, item_high=0.0, tol=FLOAT32_TOL, descending=True, unit="nats"),
    Field("topk_overlap", pa.float32(), "|top-K base ∩ top-K RL| / K, in [0, 1]", low=0.0, high=1.0, tol=FLOAT32_TOL, unit="fraction"),
    Field("p_base_rl_top1", pa.float32(), f"base probability of the RL top-1 token (top1_rl), in [0, 1]; {_EXACT_NULL}",
          True, low=0.0, high=1.0, tol=FLOAT32_TOL, unit="probability"),
    Field("rl_mass_base_topk", pa.float32(), f"RL probability mass on base's top-K tokens (topk_base_ids), in [0, 1]; {_EXACT_NULL}",
          True, low=0.0, high=1.0, tol=FLOAT32_TOL, unit="probability"),
    Field("base_mass_rl_topk", pa.float32(), f"base probability mass on RL's top-K tokens (topk_rl_ids), in [0, 1]; {_EXACT_NULL}",
          True, low=0.0, high=1.0, tol=FLOAT32_TOL, unit="probability"),
    Field("p_rl_rl_top1", pa.float32(), f"RL probability of its own top-1 token (top1_rl), in [0, 1]: exp of topk_rl_logp's "
          f"first entry; {_LIST_SCALAR}", low=0.0, high=1.0, tol=FLOAT32_TOL, unit="probability"),
    Field("base_mass_base_topk", pa.float32(), f"base probability mass on its own top-K tokens (topk_base_ids), in [0, 1]: "
          f"the sum of exp(topk_base_logp); {_LIST_SCALAR}", low=0.0, high=1.0, tol=FLOAT32_TOL, unit="probability"),
)

CROSS_SAMPLES = (
    Field("cross_id", pa.string(), "unique id: '<protocol>/<direction>/<rl_model>/<threshold>/<budget>/<problem_id>/<sample_index>', prefixed by '<criterion>[@<match_criterion> or /r<rate>][/<sign>][/w<mix_weight> or /logw<mix_weight>][/c<control_seed>]/' unless criterion = 'js', mix_weight = 1 and mix_space = 'prob'"),
    Field("problem_id", pa.string(), "problem answered (prompts.problem_id)"),
    Field("rl_model", pa.string(), "RL model paired with base", allowed=RL_MODELS),
    Field("protocol", pa.string(), "'threshold' (intervene where the criterion selects, within the budget) or 'resample'",
          allowed=PROTOCOLS),
    Field("direction", pa.string(), "'forward' (base drives, RL intervenes) or 'reverse' (RL drives, base intervenes)",
          allowed=DIRECTIONS),
    Field("threshold", pa.float64(), "criterion threshold for an intervention: nats of JS (in [0, ln 2]) for 'js', of KL for 'kl' and 'kl_reverse', of the driver's entropy for 'entropy' (each >= 0); nats of delta log p, any finite value, for 'delta_logp' (defaults -1, -0.3, -0.1 with sign 'le'; 0.1, 0.3, 1 with 'ge'); random with match_criterion: the matched setting's; null for resample, top1_differs, all and random with a rate", True,
          unit="nats"),
    Field("budget", pa.float64(), "most interventions allowed; +inf = unlimited; a fraction of tokens when budget_unit = 'fraction'; random with match_criterion: the matched setting's budget (not applied)",
          low=0.0, unit="tokens or fraction (budget_unit)"),
    Field("budget_unit", pa.string(), "'tokens' or 'fraction'", allowed=BUDGET_UNITS),
    Field("sample_index", pa.int32(), "0-based sample index for this problem and setting", low=0),
    Field("seed", pa.int64(), "torch seed of the decoding batch"),
    Field("response_text", pa.string(), "decoded response, special tokens removed"),
    Field("n_tokens", pa.int32(), "number of response tokens", low=0, unit="tokens"),
    Field("n_interventions", pa.int32(), "number of tokens taken from the intervening model", low=0, unit="tokens"),
    Field("intervention_positions", pa.list_(pa.int32()), "0-based response positions of the interventions", unit="tokens"),
    Field("intervention_fraction", pa.float64(), "n_interventions / n_tokens, in [0, 1]",
          low=0.0, high=1.0, tol=FLOAT32_TOL, unit="fraction"),
    Field("extracted_answer", pa.string(), "content of the last \\boxed{}; null if none", True),
    Field("correct", pa.bool_(), "math-verify verdict; null if grading failed or timed out", True),
    Field("finish_reason", pa.string(), "'stop' or 'length'", allowed=FINISH_REASONS),
    Field("criterion", pa.string(), "what selects a position: 'js' (JS(p_driver, p_other)), 'kl' (KL(p_driver || p_other)), 'kl_reverse' (KL(p_other || p_driver)), 'entropy' (of p_driver), each >= threshold; 'delta_logp' (log p_other(t) - log p_driver(t) of the token t the driver draws there, <= or >= threshold by sign); full vocabulary, float32; 'top1_differs' (the two argmaxes differ); 'all' (every position); 'random'",
          allowed=CRITERIA),
    Field("mix_weight", pa.float64(), "W: at a selected position the token is sampled from (1 - W) p_driver + W p_other, W in (0, 1] (mix_space 'prob'), or from softmax((1 - W) log p_driver + W log p_other), any finite W (mix_space 'log'; W > 1 extrapolates past the other model, 0 = the driver's token); 1 = the other model's token",
          unit="weight"),
    Field("rate", pa.float64(), "random: probability of intervening at each position (--rate, or the matched answer's intervention_fraction when match_criterion is set); null otherwise", True,
          low=0.0, high=1.0, tol=FLOAT32_TOL, unit="probability"),
    Field("match_criterion", pa.string(), "random --match: the criterion whose per-answer intervention fraction this control matches (threshold and budget name its setting); null otherwise", True,
          allowed=MATCHABLE),
    Field("control_seed", pa.int32(), "random: 0-based repetition of the control (--control-seeds); its selection draws have their own seed; null otherwise", True,
          low=0),
    Field("run_id", pa.string(), "the cross-sampling run that wrote the row (manifest cross_sampling_runs[].run_id): '<criterion>-<hash of its settings>'"),
    Field("sign", pa.string(), "delta_logp (and random matched to delta_logp): 'le' selects where delta log p <= threshold (the other model disfavours the driver's token), 'ge' where >= threshold; null otherwise", True,
          allowed=SIGNS),
    Field("mix_space", pa.string(), "how mix_weight mixes the two distributions: 'prob' ((1 - W) p_driver + W p_other) or 'log' (softmax((1 - W) log p_driver + W log p_other)); null: 'prob'", True,
          allowed=MIX_SPACES),
)

TABLE_FIELDS: dict[str, tuple[Field, ...]] = {
    "prompts": PROMPTS,
    "generations": GENERATIONS,
    "tokens": TOKENS,
    "cross_samples": CROSS_SAMPLES,
}

TABLE_NAMES = tuple(TABLE_FIELDS)
OPTIONAL_TABLES = ("cross_samples",)  # written only by `tokenshift cross-sample`
REQUIRED_TABLES = tuple(t for t in TABLE_NAMES if t not in OPTIONAL_TABLES)

PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "prompts": ("problem_id",),
    "generations": ("generation_id",),
    "tokens": ("generation_id", "rl_model", "position"),
    "cross_samples": ("cross_id",),
}


def schema(table: str, imported: bool = False) -> pa.Schema:
    """The pyarrow schema of `table`, with field descriptions and the schema version as metadata.

    imported: the schema of a build of imported answers, whose import_null fields are nullable.
    """
    fields = TABLE_FIELDS[table]
    return pa.schema([f.to_arrow(imported) for f in fields],
                     metadata={"schema_version": SCHEMA_VERSION, "table": table})


def to_arrow(table: str, rows: list[dict], imported: bool = False) -> pa.Table:
    """Rows (dicts) to an Arrow table of `table`'s schema; fails on a missing or mistyped column."""
    return pa.Table.from_pylist(rows, schema=schema(table, imported))


def write_parquet(table: pa.Table, path: str | os.PathLike) -> None:
    """Write atomically: a temporary file in the same directory, renamed into place."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
