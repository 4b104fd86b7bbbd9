"""What one cross-sampling run is: its frozen config, its checks, its defaults and its identity.

A run is one `tokenshift cross-sample` invocation's settings; its rows carry the settings as columns
and its `run_id` (a hash of the settings that decide the rows), so several runs share one table.
Import-light (no torch), so the CLI reads the defaults of its options from here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shlex
from dataclasses import dataclass

from tokenshift.runtime import executor
from tokenshift.runtime.arguments import check_field_types
from tokenshift.runtime.errors import TokenshiftError, either
from tokenshift.runtime.shards import ShardSpec
from tokenshift.schemas.values import (
    BUDGET_UNITS,
    CRITERIA,
    DIRECTION_CHOICES,
    DIRECTIONS,
    LN2,
    MATCHABLE,
    MIX_SPACES,
    PROTOCOLS,
    SIGNS,
)

# Default thresholds per threshold criterion (builders/decoding/criteria.py scores them), in the criterion's units
# (nats of divergence, of entropy, or of Δlog p); delta_logp's are for --sign le, DELTA_GE_THRESHOLDS for --sign ge.
DEFAULT_THRESHOLDS = {"js": (0.05, 0.1, 0.2), "kl": (0.1, 0.5, 1.0), "kl_reverse": (0.1, 0.5, 1.0),
                      "entropy": (0.5, 1.0, 2.0), "delta_logp": (-1.0, -0.3, -0.1)}
# select where the criterion's value >= threshold (delta_logp: <= with --sign le, the default, or >= with ge);
# the other criteria select where their score is 1 (top1_differs, all) or by a random draw
THRESHOLD_CRITERIA = tuple(DEFAULT_THRESHOLDS)
DELTA_GE_THRESHOLDS = (0.1, 0.3, 1.0)
DEFAULT_SIGN = "le"  # delta_logp: where the other model disfavours the driver's token (the companion paper's)
THRESHOLD_UNITS = {"js": "nats of JS(p_driver, p_other), in [0, ln 2]",
                   "kl": "nats of KL(p_driver || p_other), >= 0",
                   "kl_reverse": "nats of KL(p_other || p_driver), >= 0",
                   "entropy": "nats of the driver's entropy, in [0, ln V]",
                   "delta_logp": "nats of log p_other(t) - log p_driver(t) of the driver's token t, any finite"}
INF = math.inf


def default_thresholds(criterion: str, sign: str | None = None) -> tuple[float, ...] | None:
    """The thresholds a run of `criterion` (delta_logp: with `sign`) uses when none are given."""
    if criterion == "delta_logp" and (sign or DEFAULT_SIGN) == "ge":
        return DELTA_GE_THRESHOLDS
    return DEFAULT_THRESHOLDS.get(criterion)


@dataclass(frozen=True)
class CrossSampleConfig:
    """Everything that decides one cross-sampling run; recorded verbatim in the manifest."""

    out: str  # the build directory
    protocol: str = "threshold"
    direction: str = "both"
    thresholds: tuple[float, ...] | None = None  # None: the criterion's DEFAULT_THRESHOLDS
    budgets: tuple[float, ...] = (0, 1, 2, 4, 8, 16, 32, INF)
    budget_unit: str = "tokens"
    samples: int | None = None  # None: the build's samples
    seed: int | None = None  # None: the build's seed
    rl_model: str | None = None  # None: the build's first RL model
    shard: str = "0/1"  # run only the build's prompt shards k with k % N == I
    ray: str | None = None  # None: this process; else a Ray address ("local": ray.init()'s default)
    ray_workers: int | None = None
    max_branches: int = 8  # settings decoded as one tree of shared prefixes: up to this many copies of a batch's caches
    criterion: str = "js"
    mix_weight: float = 1.0  # at a selected position sample from (1 - W) p_driver + W p_other (mix_space)
    rate: tuple[float, ...] = ()  # random: per-position intervention probabilities
    match: str | None = None  # random: intervene at the per-answer rate this criterion's runs realised
    control_seeds: int = 1  # random: repetitions, each with its own selection draws
    matched_runs: tuple[str, ...] = ()  # resolved for --match: run_ids of the runs whose rates are matched
    sign: str | None = None  # delta_logp (and random --match delta_logp): 'le' or 'ge'; None: 'le' there
    mix_space: str = "prob"  # 'log': sample from softmax((1 - W) log p_driver + W log p_other), any finite W

    def __post_init__(self):
        check_field_types(self)

    def as_json(self) -> dict:
        """The fields as JSON values (JSON has no infinity: inf is written as the string 'inf')."""
        return {k: _json_value(v) for k, v in dataclasses.asdict(self).items()}

    def identity(self) -> dict:
        """The fields that decide the rows (a resumed or re-run cross-sampling must match them); sign and
        mix_space only where they are not their defaults, so the runs without them keep their run_ids."""
        return {k: v for k, v in self.as_json().items()
                if k not in EXECUTION_FIELDS and not (k in QUIET_DEFAULTS and v == QUIET_DEFAULTS[k])}

    def run_id(self) -> str:
        """'<criterion>-<8 hex digits of sha256 of the identity>': names the run's parts, markers and rows."""
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return f"{self.criterion}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"

    @classmethod
    def from_json(cls, block: dict) -> "CrossSampleConfig":
        """The config recorded in a manifest ('inf' back to infinity, lists back to tuples)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in block.items() if k in known}
        for key in ("thresholds", "budgets", "rate"):
            if values.get(key) is not None:
                values[key] = tuple(float(v) for v in values[key])
        if "matched_runs" in values:
            values["matched_runs"] = tuple(values["matched_runs"])
        return cls(**values)

    def command_line(self) -> str:
        """The `tokenshift cross-sample` command that reproduces this run (non-default flags only)."""
        defaults = CrossSampleConfig(out=self.out, thresholds=default_thresholds(self.criterion, self.sign) or ())
        parts = ["tokenshift", "cross-sample", self.out]
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("out", "matched_runs") or value is None or value == getattr(defaults, f.name):
                continue
            if f.name == "ray" and value == executor.LOCAL:
                parts.append("--ray")
            elif isinstance(value, tuple):
                if value:  # resample, top1_differs and random record no thresholds
                    parts += ["--" + f.name, ",".join(_exact(v) for v in value)]
            else:
                parts += ["--" + f.name.replace("_", "-"), _exact(value) if isinstance(value, float) else str(value)]
        return shlex.join(parts)


EXECUTION_FIELDS = ("out", "shard", "ray", "ray_workers", "max_branches")  # how shards run, not what they hold
QUIET_DEFAULTS = {"sign": None, "mix_space": "prob"}  # fields left out of the identity at these values


def _json_value(value):
    if isinstance(value, (tuple, list)):
        return [_json_value(v) for v in value]
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return value


def parse_numbers(text: str, flag: str) -> tuple[float, ...]:
    """'0,1,2,inf' → (0.0, 1.0, 2.0, inf); a one-line error for anything else."""
    values = []
    for item in (text or "").split(","):
        item = item.strip()
        try:
            value = float(item)
        except ValueError:
            raise TokenshiftError(f"{flag} {text!r} is not a comma-separated list of numbers "
                                  "(use e.g. 0,1,2,inf)") from None
        if math.isnan(value):
            raise TokenshiftError(f"{flag} {text!r} contains nan: use numbers or inf")
        values.append(value)
    return tuple(values)


def directions(config: CrossSampleConfig) -> tuple[str, ...]:
    """The directions a run decodes: its --direction, or every direction for 'both'."""
    return DIRECTIONS if config.direction not in DIRECTIONS else (config.direction,)


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:g}"


def _exact(x: float) -> str:
    """`_fmt` where it reads back as the same float, else every digit."""
    return _fmt(x) if math.isinf(x) or float(_fmt(x)) == x else repr(x)


def _criterion_checks(config: CrossSampleConfig) -> list[tuple[bool, str]]:
    """Criterion, mix weight, rate, match and control seeds: each flag only where it means something."""
    c = config.criterion
    w = config.mix_weight
    finite = isinstance(w, (int, float)) and math.isfinite(w)
    signed = c == "delta_logp" or (c == "random" and config.match == "delta_logp")
    checks = [
        (c in CRITERIA, f"unknown --criterion {c!r}: use {', '.join(CRITERIA)}"),
        (config.mix_space in MIX_SPACES, f"unknown --mix-space {config.mix_space!r}: use {either(MIX_SPACES)}"),
        (config.mix_space != "prob" or (finite and 0 < w <= 1),
         f"--mix-weight must be in (0, 1] (got {w}): 1 takes the other model's token, smaller W samples from "
         "(1 - W) p_driver + W p_other; --mix-space log allows any finite W (W > 1 extrapolates)"),
        (config.mix_space != "log" or finite, f"--mix-weight must be a finite number with --mix-space log (got {w})"),
        (config.sign is None or config.sign in SIGNS, f"unknown --sign {config.sign!r}: use {either(SIGNS)}"),
        (config.sign is None or signed,
         f"--sign applies to --criterion delta_logp only (got --criterion {c}): drop it"),
        (isinstance(config.control_seeds, int) and config.control_seeds >= 1,
         f"--control-seeds must be >= 1 (got {config.control_seeds})"),
        (all(0 <= r <= 1 for r in config.rate),
         f"--rate must be in [0, 1] (got {', '.join(_fmt(r) for r in config.rate if not 0 <= r <= 1)})"),
    ]
    if c == "random":
        checks += [
            (bool(config.rate) != (config.match is not None),
             "--criterion random needs exactly one of --rate P (a fixed probability per position) or "
             "--match CRITERION (the per-answer rate CRITERION realised)"),
            (config.match is None or config.match in MATCHABLE,
             f"unknown --match {config.match!r}: use {', '.join(MATCHABLE)}"),
            (config.protocol == "threshold", "--criterion random needs --protocol threshold"),
        ]
    else:
        checks += [
            (not config.rate, f"--rate applies to --criterion random only (got --criterion {c})"),
            (config.match is None, f"--match applies to --criterion random only (got --criterion {c})"),
            (config.control_seeds == 1, f"--control-seeds applies to --criterion random only (got --criterion {c})"),
        ]
    if c in CRITERIA and c not in THRESHOLD_CRITERIA:
        checks.append((not config.thresholds, f"--thresholds does not apply to --criterion {c}: drop it"))
    if config.protocol == "resample":
        checks.append((c == "js", f"--protocol resample selects by JS: drop --criterion {c}"))
    return checks


def _threshold_checks(config: CrossSampleConfig) -> list[tuple[bool, str]]:
    thresholds = config.thresholds if config.thresholds is not None else default_thresholds(config.criterion,
                                                                                            config.sign)
    if config.criterion == "delta_logp":
        bad = [t for t in thresholds if not math.isfinite(t)]
        return [(config.thresholds != (), "--thresholds is empty: give at least one, e.g. -0.3"),
                (not bad, "--thresholds must be finite nats of delta log p for --criterion delta_logp "
                          f"(got {', '.join(_fmt(t) for t in bad)})")]
    high = LN2 if config.criterion == "js" else INF
    bad = [t for t in thresholds if not 0 <= t <= high]
    unit = "[0, ln 2 = 0.6931] nats" if config.criterion == "js" else ">= 0 nats"
    return [(config.thresholds != (), "--thresholds is empty: give at least one, e.g. 0.1"),
            (not bad, f"--thresholds must be in {unit} for --criterion {config.criterion} "
                      f"(got {', '.join(_fmt(t) for t in bad)})")]


def validate_config(config: CrossSampleConfig) -> None:
    """Reject bad parameters before anything is read, loaded or written."""
    if not isinstance(config, CrossSampleConfig):
        raise TokenshiftError(f"cross-sampling takes a CrossSampleConfig, got {type(config).__name__}: "
                              "tokenshift.cross_sample(tokenshift.CrossSampleConfig(out=DIR, ...))")
    checks = [
        (config.protocol in PROTOCOLS, f"unknown --protocol {config.protocol!r}: use {either(PROTOCOLS)}"),
        (config.direction in DIRECTION_CHOICES,
         f"unknown --direction {config.direction!r}: use {either(DIRECTION_CHOICES)}"),
        (config.budget_unit in BUDGET_UNITS, f"unknown --budget-unit {config.budget_unit!r}: use {either(BUDGET_UNITS)}"),
        (bool(config.budgets), "--budgets is empty: give at least one budget, e.g. 0,1,inf"),
        (all(b >= 0 for b in config.budgets),
         f"--budgets must be >= 0 (got {', '.join(_fmt(b) for b in config.budgets if b < 0)})"),
        (config.samples is None or config.samples >= 1, f"--samples must be >= 1 (got {config.samples})"),
        (isinstance(config.max_branches, int) and config.max_branches >= 1,
         f"--max-branches must be >= 1 (got {config.max_branches}): 1 decodes setting by setting"),
        *_criterion_checks(config),
    ]
    if config.protocol == "threshold":
        if config.criterion in THRESHOLD_CRITERIA:
            checks += _threshold_checks(config)
        if config.budget_unit == "fraction":
            checks.append((all(b <= 1 or math.isinf(b) for b in config.budgets),
                           "--budget-unit fraction needs budgets in [0, 1] or inf"))
    else:
        checks += [
            (config.budget_unit == "tokens", "--protocol resample counts inserted tokens: use --budget-unit tokens"),
            (all(float(b).is_integer() for b in config.budgets if not math.isinf(b)),
             "--protocol resample needs whole-number budgets (steps)"),
            (not any(math.isinf(b) for b in config.budgets),
             "--protocol resample needs finite budgets (it runs max(--budgets) steps): drop inf"),
        ]
    for ok, message in checks:
        if not ok:
            raise TokenshiftError(message)
    ShardSpec.parse(config.shard)
    if config.ray is not None:
        executor.check_ray(config.ray)


def recorded_runs(build: dict) -> list[dict]:
    """The finished runs a manifest records (`cross_sampling_runs`), oldest first."""
    return list(build.get("cross_sampling_runs") or [])


def _matched_runs(config: CrossSampleConfig, build: dict) -> tuple[str, ...]:
    """run_ids of the finished runs whose per-answer rates a --match control matches."""
    keys = []
    for run in recorded_runs(build):
        other = CrossSampleConfig.from_json(run["config"])
        if (other.criterion == config.match and other.mix_weight == config.mix_weight
                and other.mix_space == config.mix_space and other.sign == config.sign
                and other.rl_model == config.rl_model and other.protocol == "threshold"):
            keys.append(run["run_id"])
    if not keys:
        sign = f" --sign {config.sign}" if config.sign else ""
        space = " --mix-space log" if config.mix_space == "log" else ""
        raise TokenshiftError(f"--match {config.match}: {config.out} has no finished --criterion {config.match}"
                              f"{sign} run with --mix-weight {_fmt(config.mix_weight)}{space} for "
                              f"{config.rl_model}: cross-sample it first")
    return tuple(sorted(keys))


def resolve(config: CrossSampleConfig, build: dict) -> CrossSampleConfig:
    """Fill defaults from the build's manifest and normalise the lists (sorted, unique)."""
    rl_names = [m["name"] for m in build["models"]["rl"]]
    rl_model = config.rl_model or rl_names[0]
    if rl_model not in rl_names:
        raise TokenshiftError(f"unknown --rl-model {rl_model!r}: this build has {', '.join(rl_names)}")
    thresholds = ()
    if config.protocol == "threshold" and config.criterion in THRESHOLD_CRITERIA:
        given = config.thresholds if config.thresholds is not None else default_thresholds(config.criterion,
                                                                                          config.sign)
        thresholds = tuple(sorted(set(map(float, given))))
    vocab = (build.get("tokenizer") or {}).get("vocab_size")
    if config.criterion == "entropy" and vocab and max(thresholds, default=0) > math.log(vocab):
        raise TokenshiftError(f"--thresholds must be in [0, ln V = {math.log(vocab):.4f}] nats of entropy "
                              f"(V = {vocab}): got {_fmt(max(thresholds))}")
    resolved = dataclasses.replace(
        config, thresholds=thresholds, budgets=tuple(sorted(set(map(float, config.budgets)))),
        samples=config.samples or build["config"]["samples"],
        seed=build["config"]["seed"] if config.seed is None else config.seed, rl_model=rl_model,
        mix_weight=float(config.mix_weight), rate=tuple(sorted(set(map(float, config.rate)))),
        sign=(config.sign or DEFAULT_SIGN) if config.criterion == "delta_logp" or config.match == "delta_logp"
        else None)
    if config.match is not None:
        resolved = dataclasses.replace(resolved, budgets=(), matched_runs=_matched_runs(resolved, build))
    return resolved
