"""The notebook API (`import tokenshift`): light to import, each name what it says, results equal to independent ones."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

import tokenshift
from tokenshift.runtime.errors import TokenshiftError


def test_import_loads_no_heavy_library():
    code = ("import sys, tokenshift; tokenshift.__all__; "
            "print(','.join(m for m in ('torch', 'duckdb', 'pandas', 'pyarrow', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_public_name_resolves_to_its_implementation():
    from tokenshift.builders.cross_sampling import runner as cross_sample
    from tokenshift.builders.pipeline import build
    from tokenshift.builders.scoring import score
    from tokenshift.schemas.validate import validate_build

    assert set(tokenshift.__all__) <= set(dir(tokenshift))
    assert tokenshift.build is build.run_build and tokenshift.BuildConfig is build.BuildConfig
    assert tokenshift.cross_sample is cross_sample.run_cross_sample
    assert tokenshift.CrossSampleConfig is cross_sample.CrossSampleConfig
    assert tokenshift.score_pair is score.score_pair and tokenshift.ScoreConfig is score.ScoreConfig
    assert tokenshift.validate is validate_build and tokenshift.TokenshiftError is TokenshiftError
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tokenshift.nope  # noqa: B018


def test_open_gives_one_view_per_table(pristine):
    con = tokenshift.open(pristine)
    try:
        for table in ("prompts", "generations", "tokens"):
            rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            assert rows == pq.read_table(pristine / table).num_rows > 0
    finally:
        con.close()


def test_query_runs_a_recipe_with_parameters(pristine):
    assert "js_distribution" in tokenshift.recipes()
    df = tokenshift.query("js_distribution", pristine, js_thresholds=[0.05, 0.3])
    shares = df[df["measure"] == "share_over"]
    assert sorted(shares["level"].unique()) == [0.05, 0.3]
    tokens = pq.read_table(pristine / "tokens", columns=["sampler", "rl_model", "js"]).to_pandas()
    for row in shares.itertuples():
        js = tokens[(tokens.sampler == row.sampler) & (tokens.rl_model == row.rl_model)]["js"].to_numpy(np.float64)
        assert row.value == pytest.approx((js >= row.level).mean(), abs=1e-12)
    with pytest.raises(TokenshiftError, match="unknown parameter bogus for recipe js_distribution"):
        tokenshift.query("js_distribution", pristine, bogus=1)


def test_score_pair_on_the_embedded_pair_matches_numpy():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tokenshift.runtime.embedded_pair import embedded_base_dir, embedded_rl_dir

    tokenizer = AutoTokenizer.from_pretrained(embedded_base_dir())
    base = AutoModelForCausalLM.from_pretrained(embedded_base_dir()).eval()
    rl = AutoModelForCausalLM.from_pretrained(embedded_rl_dir()).eval()
    prompt = tokenizer("What is 3 + 4?", add_special_tokens=False)["input_ids"]
    response = tokenizer("3 + 4 = 7. \\boxed{7}", add_special_tokens=False)["input_ids"]
    assert all(w.requires_grad for w in base.parameters())  # as loaded: a graph would be recorded if allowed
    stats = tokenshift.score_pair(base, {"rl": rl}, prompt, response, len(tokenizer))["rl"]
    assert all(t.is_inference() and not t.requires_grad for t in stats.values())  # as score_answers: inference mode
    with torch.no_grad():
        ids = torch.tensor([prompt + response])
        rows = slice(len(prompt) - 1, len(prompt) + len(response) - 1)
        lp = torch.log_softmax(base(ids).logits[0, rows, :len(tokenizer)].double(), -1).numpy()
        lq = torch.log_softmax(rl(ids).logits[0, rows, :len(tokenizer)].double(), -1).numpy()
    p, q = np.exp(lp), np.exp(lq)
    m = (p + q) / 2
    js = 0.5 * (p * (lp - np.log(m))).sum(-1) + 0.5 * (q * (lq - np.log(m))).sum(-1)
    np.testing.assert_allclose(stats["js"].numpy(), js, atol=2e-5)
    np.testing.assert_allclose(stats["logp_base"].numpy(), lp[np.arange(len(response)), response], atol=2e-5)
