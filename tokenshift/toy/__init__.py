"""The embedded default: the toy-arith benchmark and a tiny base/RL pair trained with real RLVR."""

from tokenshift.builders.inputs.arith import BENCHMARK, toy_problems
from tokenshift.runtime.embedded_pair import (
           EMBEDDED_PAIR_DIR,
           embedded_base_dir,
           embedded_manifest,
           embedded_rl_checkpoints,
           embedded_rl_dir,
)

__all__ = ["BENCHMARK", "EMBEDDED_PAIR_DIR", "embedded_base_dir", "embedded_manifest",
           "embedded_rl_checkpoints", "embedded_rl_dir", "toy_problems"]
