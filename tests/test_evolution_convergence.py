"""evolution's convergence columns: Jaccard with the final model's high-JS set, JS percentiles per checkpoint."""

import numpy as np
import pandas as pd
import pytest

from tokenshift.queries.run import run_recipe


def _sets(tokens: pd.DataFrame, threshold: float) -> dict[tuple[str, str], set]:
    over = tokens[tokens.js.astype("float64") >= threshold]
    return {(rl, sampler): set(zip(g.generation_id, g.position)) for (rl, sampler), g in over.groupby(["rl_model", "sampler"])}


@pytest.mark.parametrize("threshold", [0.05, 0.1, 0.3])
def test_jaccard_equals_python_sets(build, threshold):
    tokens = pd.read_parquet(build / "tokens")
    res = run_recipe("evolution", build, {"js_threshold": threshold})
    models = sorted(tokens.rl_model.unique(), key=lambda m: int(m.rsplit("step", 1)[1]))
    final = models[-1]
    sets = _sets(tokens, threshold)
    assert (res.final_model == final).all()
    for row in res.itertuples():
        mine, theirs = sets.get((row.rl_model, row.sampler), set()), sets.get((final, row.sampler), set())
        union = mine | theirs
        assert row.n_over == len(mine)
        if union:
            assert row.jaccard_final == pytest.approx(len(mine & theirs) / len(union), abs=1e-12)
        else:
            assert pd.isna(row.jaccard_final)
        g = tokens[(tokens.rl_model == row.rl_model) & (tokens.sampler == row.sampler)].js.astype("float64")
        assert row.p50_js == pytest.approx(np.quantile(g, 0.5), rel=1e-9)
        assert row.p95_js == pytest.approx(np.quantile(g, 0.95), rel=1e-9)
    assert (res[res.rl_model == final].jaccard_final == 1.0).all()
    assert res[res.rl_model != final].jaccard_final.lt(1.0).any()  # the check can fail


def test_final_model_parameter_picks_the_reference(build):
    tokens = pd.read_parquet(build / "tokens")
    first = sorted(tokens.rl_model.unique(), key=lambda m: int(m.rsplit("step", 1)[1]))[0]
    res = run_recipe("evolution", build, {"final_model": first})
    assert (res.final_model == first).all()
    assert (res[res.rl_model == first].jaccard_final == 1.0).all()
