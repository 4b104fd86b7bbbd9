"""evolution keeps one run's checkpoints: the numbered models sharing a stem plus the un-numbered model of
that name; another model (an SFT control, another run) is left out and never becomes the final model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from bootstrap_reference import build_weights, ratio_interval
from synthetic_tables import ExtraModel, make_tables, write_manifest

from tokenshift.queries import run_recipe
from tokenshift.schemas.tables import to_arrow, write_parquet

RL = ExtraModel("rl", accuracy=0.8, strength=1.2)  # the un-numbered final model of the run
SFT = ExtraModel("sft", accuracy=0.7, strength=1.5, dense=True)


def _build(out: Path, extra: tuple[ExtraModel, ...], rename: dict[str, str] | None = None) -> Path:
    """A cross-scored synthetic build (every answer scored against every model), models renamed by `rename`."""
    tables = make_tables(seed=1, n_per_benchmark=3, n_samples=2, with_cross=False, extra_models=extra,
                         cross_scored=True)
    rename = rename or {}
    for name, rows in tables.items():
        for row in rows:
            for column in ("sampler", "rl_model"):
                if column in row:
                    row[column] = rename.get(row[column], row[column])
        write_parquet(to_arrow(name, rows), out / name / "part-00000.parquet")
    return write_manifest(out, seed=1)


@pytest.fixture(scope="module")
def with_final_and_sft(tmp_path_factory) -> Path:
    return _build(tmp_path_factory.mktemp("family") / "b", (RL, SFT))


def test_sft_is_left_out_and_the_unnumbered_model_is_final(with_final_and_sft):
    tokens = pd.read_parquet(with_final_and_sft / "tokens")
    assert "sft" in set(tokens.rl_model) and "sft" in set(tokens[tokens.rl_model == "rl"].sampler)  # can fail
    res = run_recipe("evolution", with_final_and_sft)
    assert set(res.rl_model) == {"rl-step100", "rl-step200", "rl"}
    assert set(res.sampler) == {"base", "rl-step100", "rl-step200", "rl"}
    assert (res.final_model == "rl").all()
    assert list(res.rl_model.drop_duplicates()) == ["rl-step100", "rl-step200", "rl"]
    assert (res[res.rl_model == "rl"].jaccard_final == 1.0).all()


def test_final_model_parameter_chooses_the_family(with_final_and_sft):
    res = run_recipe("evolution", with_final_and_sft, {"final_model": "sft"})
    assert set(res.rl_model) == {"sft"} and set(res.sampler) == {"base", "sft"}
    res = run_recipe("evolution", with_final_and_sft, {"final_model": "rl-step100"})
    assert set(res.rl_model) == {"rl-step100", "rl-step200", "rl"} and (res.final_model == "rl-step100").all()


def test_without_an_unnumbered_model_the_last_checkpoint_is_final(tmp_path):
    res = run_recipe("evolution", _build(tmp_path / "b", (SFT,)))
    assert set(res.rl_model) == {"rl-step100", "rl-step200"} and (res.final_model == "rl-step200").all()


def test_stems_with_separators_and_the_largest_family(tmp_path):
    """'dapo_step_100', 'dapo_Step_200' and 'dapo' are one run (3 models); 'grpo-step-050' and 'sft' are not."""
    rename = {"rl-step100": "dapo_step_100", "rl-step200": "dapo_Step_200", "rl": "dapo", "sft": "grpo-step-050"}
    res = run_recipe("evolution", _build(tmp_path / "b", (RL, SFT), rename))
    assert list(res.rl_model.drop_duplicates()) == ["dapo_step_100", "dapo_Step_200", "dapo"]
    steps = res.drop_duplicates("rl_model").checkpoint_step
    assert list(steps.iloc[:2]) == [100, 200] and pd.isna(steps.iloc[2])
    assert (res.final_model == "dapo").all()


def test_rl_accuracy_interval_is_the_bootstrap_over_each_models_problems(with_final_and_sft):
    reps, seed = 300, 3
    res = run_recipe("evolution", with_final_and_sft, {"bootstrap_reps": reps, "bootstrap_seed": seed})
    gen = pd.read_parquet(with_final_and_sft / "generations")
    for model, row in res.drop_duplicates("rl_model").set_index("rl_model").iterrows():
        g = gen[gen.sampler == model].assign(c=lambda d: d.correct.fillna(False).astype(int),
                                             n=lambda d: d.correct.notna().astype(int))
        per = g.groupby(["benchmark", "problem_id"])[["c", "n"]].sum().sort_index()
        lo, hi = ratio_interval(per.c.to_numpy(float), per.n.to_numpy(float), build_weights(with_final_and_sft, seed, reps, per.index.get_level_values("problem_id")))
        assert row.rl_accuracy == pytest.approx(per.c.sum() / per.n.sum())
        assert (row.rl_accuracy_lo, row.rl_accuracy_hi) == pytest.approx((lo, hi))
        assert row.rl_accuracy_lo < row.rl_accuracy_hi
