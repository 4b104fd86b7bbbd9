"""Each CLI default is its config's default and each click choice is its allowed value set: one source for each.

The commands are parsed with no optional flags (as click resolves them) and compared, option by
option, with the config dataclass the command builds; every option must be a config field or named
here as a flag of the command alone, so a new option is classified before it can drift.
"""

from __future__ import annotations

import dataclasses
import inspect
import math

import click
import pytest

from tokenshift.builders.commands import DEFAULT_BENCHMARK, benchmark_check, build, build_config
from tokenshift.builders.cross_commands import cross_sample, cross_sample_config
from tokenshift.builders.cross_sampling.config import (
    DEFAULT_THRESHOLDS,
    DELTA_GE_THRESHOLDS,
    CrossSampleConfig,
    default_thresholds,
    validate_config,
)
from tokenshift.builders.engines.models import DTYPES
from tokenshift.builders.grading.gold_rules import GOLD_TRANSFORMS
from tokenshift.builders.inputs.benchmarks import ANSWER_RULES
from tokenshift.builders.pipeline.config import BuildConfig
from tokenshift.cli import cli
from tokenshift.runtime.arguments import default_of
from tokenshift.runtime.errors import TokenshiftError, either
from tokenshift.schemas import values

# options of a command alone (how it runs or reports), not fields of its config
BUILD_ONLY = {"overwrite", "quiet", "plan_only", "tokens_per_second", "no_chat_template"}
CROSS_ONLY = {"overwrite", "quiet", "plan_only", "tokens_per_second", "trust_remote_code",
              "thresholds", "budgets", "rate"}  # the lists are parsed from text: None means the config's default
CHECK_ONLY = {"examples", "quiet", "limit"}


def _parsed(command: click.Command, args: list[str]) -> dict:
    """The command's parameters as click resolves them from `args` (its defaults for the rest)."""
    return command.make_context(command.name, list(args)).params


def _mismatches(command: click.Command, args: list[str], config_class, only: set[str]) -> list[str]:
    """'--flag: click D, Config.field D'' for each option whose parsed default is not its config field's."""
    fields = {f.name for f in dataclasses.fields(config_class)}
    given = {p.name for p in command.params if p.required}  # --out, DIR: no default to compare
    out = []
    for name, value in _parsed(command, args).items():
        if name in only or name in given:
            continue
        if name not in fields:
            out.append(f"{name}: not a field of {config_class.__name__} (add it there or to the command-only set)")
            continue
        expected = default_of(config_class, name)
        if value != expected or type(value) is not type(expected):
            out.append(f"{name}: click {value!r}, {config_class.__name__}.{name} {expected!r}")
    return out


def test_build_options_default_to_build_config():
    assert _mismatches(build, ["--out", "d"], BuildConfig, BUILD_ONLY | {"benchmark"}) == []
    params = _parsed(build, ["--out", "d"])
    assert params["no_chat_template"] is (not default_of(BuildConfig, "use_chat_template"))
    assert params["benchmark"] is None and DEFAULT_BENCHMARK == default_of(BuildConfig, "benchmark")
    options = {k: v for k, v in params.items() if k not in BUILD_ONLY - {"no_chat_template"}}
    assert build_config(**options) == BuildConfig(out="d")


def test_benchmark_check_options_default_to_build_config():
    assert _mismatches(benchmark_check, ["f.jsonl"], BuildConfig, CHECK_ONLY) == []


def test_cross_sample_options_default_to_cross_sample_config():
    assert _mismatches(cross_sample, ["d"], CrossSampleConfig, CROSS_ONLY) == []
    params = _parsed(cross_sample, ["d"])
    options = {k: v for k, v in params.items() if k not in CROSS_ONLY | {"build_dir"}}
    made = cross_sample_config(params["build_dir"], params["thresholds"], params["budgets"], params["rate"], **options)
    assert made == dataclasses.replace(CrossSampleConfig(out="d"), thresholds=DEFAULT_THRESHOLDS["js"])
    assert default_thresholds(made.criterion) == DEFAULT_THRESHOLDS["js"] == (0.05, 0.1, 0.2)


def _flags(values) -> str:
    return ",".join("inf" if math.isinf(v) else str(int(v)) if float(v).is_integer() else str(v) for v in values)


def test_cross_sample_help_names_the_config_default_lists():
    helps = {p.name: p.help for p in cross_sample.params}
    assert f"(default {_flags(default_of(CrossSampleConfig, 'budgets'))})" in helps["budgets"]
    assert "(default 0,1,2,4,8,16,32,inf)" in helps["budgets"]
    for criterion in ("js", "kl", "entropy"):
        assert f"(default {_flags(DEFAULT_THRESHOLDS[criterion])})" in helps["thresholds"]
    assert DEFAULT_THRESHOLDS["kl_reverse"] == DEFAULT_THRESHOLDS["kl"]  # the help gives them one default
    assert (f"(default {_flags(DEFAULT_THRESHOLDS['delta_logp'])} with --sign le, {_flags(DELTA_GE_THRESHOLDS)} "
            "with --sign ge)") in helps["thresholds"]


def test_the_checker_sees_a_default_changed_on_one_side(monkeypatch):
    samples = next(p for p in build.params if p.name == "samples")
    monkeypatch.setattr(samples, "default", default_of(BuildConfig, "samples") + 1)
    assert _mismatches(build, ["--out", "d"], BuildConfig, BUILD_ONLY | {"benchmark"}) == [
        f"samples: click {samples.default}, BuildConfig.samples {default_of(BuildConfig, 'samples')}"]
    monkeypatch.undo()
    field = next(f for f in dataclasses.fields(CrossSampleConfig) if f.name == "max_branches")
    monkeypatch.setattr(field, "default", 3)
    assert _mismatches(cross_sample, ["d"], CrossSampleConfig, CROSS_ONLY) == [
        "max_branches: click 8, CrossSampleConfig.max_branches 3"]


def test_toy_experiment_card_and_demo_options_match_their_configs():
    """These options restate defaults of configs that live in heavy modules (torch, pandas); checked here."""
    from tokenshift.cards.card import write_card
    from tokenshift.demo import DemoConfig, demo
    from tokenshift.toy.commands import toy_pair
    from tokenshift.toy.controls import ControlsConfig
    from tokenshift.toy.evaluate import EvalConfig
    from tokenshift.toy.experiment import ExperimentConfig
    from tokenshift.toy.experiment_commands import experiment
    from tokenshift.toy.train import TrainConfig

    def defaults(command, args=()):
        return _parsed(command, list(args))

    assert defaults(toy_pair.commands["train"], ["--out", "o"])["seed"] == TrainConfig().seed
    assert defaults(toy_pair.commands["add-controls"], ["--pair", "p"])["rl_seed"] == ControlsConfig().rl_seed
    ev = defaults(toy_pair.commands["eval"])
    assert (ev["n"], ev["seed"], ev["batch_size"]) == (EvalConfig().n, EvalConfig().seed, EvalConfig().batch_size)
    ex = defaults(experiment.commands["dw-advantage"], ["--out", "o"])
    config = ExperimentConfig()
    assert tuple(range(ex.pop("seeds"))) == config.seeds
    assert all(ex[k] == getattr(config, k) for k in ex if k not in ("out", "overwrite")), ex
    assert defaults(cli.commands["card"], ["d"])["license_"] == inspect.signature(write_card).parameters[
        "license"].default
    dm = defaults(demo, ["--out", "o"])
    assert (dm["limit"], dm["samples"], dm["version"]) == (DemoConfig.limit, DemoConfig.samples, DemoConfig.version)


def _choices():
    """(command path, option name, its click.Choice values) of every choice option of the CLI."""
    def walk(command, path):
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(sub, (*path, name))
        else:
            for param in command.params:
                if isinstance(param.type, click.Choice):
                    yield " ".join(path), param.name, tuple(param.type.choices)
    return list(walk(cli, ()))


def _allowed():
    from tokenshift.training.weights import REFERENCES

    return {"direction": values.DIRECTION_CHOICES, "sign": values.SIGNS, "mix_space": values.MIX_SPACES,
            "budget_unit": values.BUDGET_UNITS, "protocol": values.PROTOCOLS, "format": values.IMPORT_FORMATS,
            "engine": values.GENERATION_ENGINES, "dtype": DTYPES, "answer_from": ANSWER_RULES,
            "gold_transform": GOLD_TRANSFORMS, "reference": REFERENCES,
            "fmt": None}  # `query --format`: its values exist only as that option's (no other copy to follow)


def test_every_choice_is_its_allowed_value_set():
    allowed = _allowed()
    found = _choices()
    assert {name for _, name, _ in found} == set(allowed), "a new click.Choice: name its value set in _allowed()"
    wrong = [(path, name, choices) for path, name, choices in found
             if allowed[name] is not None and choices != tuple(allowed[name])]
    assert wrong == []


def test_the_checker_sees_a_choice_that_is_not_its_value_set(monkeypatch):
    monkeypatch.setattr(values, "PROTOCOLS", (*values.PROTOCOLS, "new-protocol"))
    allowed = _allowed()
    assert [(path, name) for path, name, choices in _choices()
            if allowed[name] is not None and choices != tuple(allowed[name])] == [("cross-sample", "protocol")]


@pytest.mark.parametrize("field, flag, allowed", [
    ("protocol", "--protocol", values.PROTOCOLS), ("direction", "--direction", values.DIRECTION_CHOICES),
    ("budget_unit", "--budget-unit", values.BUDGET_UNITS), ("mix_space", "--mix-space", values.MIX_SPACES),
    ("sign", "--sign", values.SIGNS), ("criterion", "--criterion", None)])
def test_cross_sample_refusals_list_the_allowed_values(field, flag, allowed):
    config = CrossSampleConfig(out="d", **{field: "nope"})
    fix = either(allowed) if allowed is not None else ", ".join(values.CRITERIA)
    with pytest.raises(TokenshiftError) as err:
        validate_config(config)
    assert str(err.value) == f"unknown {flag} 'nope': use {fix}"


def test_every_allowed_value_passes_cross_sample_checks():
    for direction in values.DIRECTION_CHOICES:
        for unit in values.BUDGET_UNITS:
            validate_config(CrossSampleConfig(out="d", direction=direction, budget_unit=unit, budgets=(0, 1, math.inf)))
        for protocol in values.PROTOCOLS:
            validate_config(CrossSampleConfig(out="d", direction=direction, protocol=protocol, budgets=(0, 1)))
