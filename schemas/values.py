"""The allowed value sets and constants of the table contract, defined once.

schemas/tables.py attaches them to fields; the great-expectations suite, the builders' checks,
the click choices and the queries import them from here. Import-light (no torch, no pandas).
"""

from __future__ import annotations

import math

LN2 = math.log(2.0)  # the upper bound of the Jensen-Shannon divergence in nats
FLOAT32_TOL = 1e-6  # float32 statistics may overshoot an exact bound by rounding
REL_POSITION_TOL = 1e-5  # rel_position is float32 of position / (n_tokens - 1)
TOPK_SUM_TOL = 1e-5  # a float32 sum of K top-K probabilities against the same sum in float64

BASE_SAMPLER = "base"  # the sampler name of the base model; RL models go by their own names
IMPORT_ENGINE = "import"  # generations.engine of answers read from a file (`tokenshift build --completions`)
GENERATION_ENGINES = ("hf", "vllm")  # --engine: builders/engines/generate.py registers one function per name
ENGINES = (*GENERATION_ENGINES, IMPORT_ENGINE)  # generations.engine: the generation engines, and imported answers
IMPORT_FORMATS = ("lm-eval", "trl", "fields")  # --format of `tokenshift build --completions`
FINISH_REASONS = ("stop", "length")
PROTOCOLS = ("threshold", "resample")
DIRECTIONS = ("forward", "reverse")
DIRECTION_CHOICES = (*DIRECTIONS, "both")  # what --direction accepts: one direction or both
BUDGET_UNITS = ("tokens", "fraction")
CRITERIA = ("js", "kl", "kl_reverse", "entropy", "delta_logp", "top1_differs", "all",
            "random")  # cross-sampling position selection
MATCHABLE = tuple(c for c in CRITERIA if c != "random")  # what a random control can be matched to
SIGNS = ("le", "ge")  # delta_logp selects where Δlog p <= threshold ('le') or >= threshold ('ge')
MIX_SPACES = ("prob", "log")  # mix (1 - W) p_driver + W p_other, or (1 - W) log p_driver + W log p_other

# Valid values that depend on the build, resolved from its manifest when validating.
RL_MODELS = "rl_models"  # the build's RL model names
SAMPLERS = "samplers"  # 'base', the build's RL model names and the samplers its imported answers name
LN_VOCAB = "ln V"  # ln of the tokenizer's vocabulary size (the largest entropy)
TOP_K = "K"  # the build's top_k_candidates
