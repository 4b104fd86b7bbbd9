"""The embedded toy pair through the real build path, on the toy benchmark and files in the real layouts."""

import pyarrow.parquet as pq
import pytest

from tokenshift.builders.pipeline.build import BuildConfig, run_build


@pytest.mark.parametrize("name", ["aime24", "amc23", "gsm8k"])
def test_build_on_three_problems_in_each_real_layout(tmp_path, benchmark_files, name):
    out = run_build(BuildConfig(out=str(tmp_path / name), benchmark=str(benchmark_files / f"{name}.jsonl"),
                                limit=3, samples=1, max_new_tokens=16), progress=False)
    prompts = pq.read_table(out / "prompts").to_pandas()
    gens = pq.read_table(out / "generations").to_pandas()
    tokens = pq.read_table(out / "tokens").to_pandas()
    assert len(prompts) == 3 and set(prompts.benchmark) == {name}
    assert all(q in p for q, p in zip(prompts.question, prompts.prompt))  # the template kept the text
    assert len(gens) == 3 * 2 and set(gens.sampler) == {"base", "rl"}
    assert len(tokens) == gens.n_tokens.sum()
    assert tokens.js.between(0, 0.6932).all()


def test_default_toy_build_has_rl_ahead_of_base(tmp_path):
    out = run_build(BuildConfig(out=str(tmp_path / "toy"), limit=40, samples=2), progress=False)
    gens = pq.read_table(out / "generations").to_pandas()
    accuracy = gens.groupby("sampler").correct.mean()
    assert accuracy["rl"] > accuracy["base"]
    assert (gens.finish_reason == "stop").mean() > 0.9  # toy answers end with the stop token
