"""Every per-token score checked against an independent float64 numpy/scipy computation."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from scipy.special import log_softmax, rel_entr
from tiny_pair import make_pair
from transformers import AutoModelForCausalLM

from tokenshift.builders.scoring.score import ScoreConfig, pair_stats, score_pair


@pytest.fixture(scope="module")
def padded_pair(tmp_path_factory):
    """A pair whose output head has 7 rows past the tokenizer's vocabulary (as Qwen2.5's has)."""
    base, (rl,) = make_pair(tmp_path_factory.mktemp("pair"), extra_rows=7)
    return (AutoModelForCausalLM.from_pretrained(base).eval(),
            AutoModelForCausalLM.from_pretrained(rl).eval())


def _reference(base, rl, ids, prompt_len, vocab, k):
    with torch.no_grad():
        lb = base(torch.tensor([ids])).logits[0].double().numpy()[prompt_len - 1:-1, :vocab]
        lr = rl(torch.tensor([ids])).logits[0].double().numpy()[prompt_len - 1:-1, :vocab]
    lpb, lpr = log_softmax(lb, -1), log_softmax(lr, -1)
    pb, pr = np.exp(lpb), np.exp(lpr)
    tok = np.array(ids[prompt_len:])
    rows = np.arange(len(tok))
    ref = {
        "logp_base": lpb[rows, tok], "logp_rl": lpr[rows, tok],
        "entropy_base": -(pb * lpb).sum(-1), "entropy_rl": -(pr * lpr).sum(-1),
        "js": jensenshannon(pb, pr, axis=-1) ** 2,  # scipy returns the square root, natural log
        "kl_base_rl": rel_entr(pb, pr).sum(-1), "kl_rl_base": rel_entr(pr, pb).sum(-1),
        "rank_base": (lpb > lpb[rows, tok][:, None]).sum(-1) + 1,
        "rank_rl": (lpr > lpr[rows, tok][:, None]).sum(-1) + 1,
        "top1_base": lpb.argmax(-1), "top1_rl": lpr.argmax(-1),
    }
    ref["rl_top1_rank_base"] = (lpb > lpb[rows, ref["top1_rl"]][:, None]).sum(-1) + 1
    ref["topk_base_ids"] = np.argsort(-lpb, -1, kind="stable")[:, :k]
    ref["topk_rl_ids"] = np.argsort(-lpr, -1, kind="stable")[:, :k]
    ref["topk_base_logp"] = np.take_along_axis(lpb, ref["topk_base_ids"], -1)
    ref["topk_rl_logp"] = np.take_along_axis(lpr, ref["topk_rl_ids"], -1)
    ref["topk_overlap"] = np.array([len(set(a) & set(b)) / k for a, b in
                                    zip(ref["topk_base_ids"], ref["topk_rl_ids"])])
    ref["p_base_rl_top1"] = pb[rows, ref["top1_rl"]]
    ref["rl_mass_base_topk"] = np.take_along_axis(pr, ref["topk_base_ids"], -1).sum(-1)
    ref["base_mass_rl_topk"] = np.take_along_axis(pb, ref["topk_rl_ids"], -1).sum(-1)
    ref["p_rl_rl_top1"] = pr.max(-1)
    ref["base_mass_base_topk"] = np.sort(pb, -1)[:, -k:].sum(-1)
    return ref


@pytest.mark.parametrize("chunk", [1, 5, None])
def test_scores_match_full_vocabulary_reference(padded_pair, chunk):
    base, rl = padded_pair
    vocab = base.config.vocab_size - 7
    rng = np.random.default_rng(0)
    for length in (3, 23):
        ids = rng.integers(0, vocab, size=length + 6).tolist()
        stats = score_pair(base, {"rl": rl}, ids[:6], ids[6:], vocab,
                           ScoreConfig(top_k=5, chunk_positions=chunk))["rl"]
        ref = _reference(base, rl, ids, 6, vocab, 5)
        for key, expected in ref.items():
            got = stats[key].numpy()
            assert got.shape[0] == length, key
            if key.startswith(("rank", "top1", "topk_base_ids", "topk_rl_ids", "rl_top1")):
                assert np.array_equal(got, expected), key
            else:
                np.testing.assert_allclose(got, expected, atol=2e-5, rtol=1e-4, err_msg=key)
        assert (stats["topk_base_ids"] < vocab).all() and (stats["top1_rl"] < vocab).all()


def test_js_is_bounded_and_zero_for_identical_models(padded_pair):
    base, _ = padded_pair
    vocab = base.config.vocab_size - 7
    ids = list(range(10, 40))
    same = score_pair(base, {"same": base}, ids[:5], ids[5:], vocab)["same"]
    assert same["js"].abs().max() < 1e-6 and same["kl_base_rl"].abs().max() < 1e-5
    assert same["topk_overlap"].eq(1).all() and same["rl_top1_rank_base"].eq(1).all()
    logits = torch.randn(4, 50) * 30  # near-disjoint distributions approach ln 2
    opposite = pair_stats(logits, -logits, torch.zeros(4, dtype=torch.long), 3)
    assert (opposite["js"] <= np.log(2)).all() and (opposite["js"] > 0.6).all()


def test_bfloat16_models_still_give_float32_statistics(padded_pair):
    base, rl = padded_pair
    vocab = base.config.vocab_size - 7
    ids = list(range(5, 30))
    stats = score_pair(base.to(torch.bfloat16), {"rl": rl.to(torch.bfloat16)}, ids[:4], ids[4:], vocab)
    base.float(), rl.float()
    assert stats["rl"]["js"].dtype == torch.float32 and stats["rl"]["entropy_base"].dtype == torch.float32


def test_batched_scoring_equals_one_answer_at_a_time(padded_pair):
    from tokenshift.builders.scoring.score_batch import answer_batches, score_answers

    base, rl = padded_pair
    vocab = base.config.vocab_size - 7
    rng = np.random.default_rng(1)
    answers = [(rng.integers(0, vocab, size=p).tolist(), rng.integers(0, vocab, size=r).tolist())
               for p, r in [(5, 9), (3, 1), (8, 0), (2, 30), (6, 4)]]
    config = ScoreConfig(top_k=4, chunk_positions=7)
    batched = score_answers(base, {"rl": rl}, answers, vocab, config, max_batch_tokens=64)
    assert batched[2] == {}  # an empty answer has no positions
    for (prompt, response), got in zip(answers, batched):
        if not response:
            continue
        one = score_pair(base, {"rl": rl}, prompt, response, vocab, config)["rl"]
        for key, value in one.items():
            assert torch.allclose(got["rl"][key].float(), value.float(), atol=1e-5), key
    assert answer_batches([10, 10, 10, 40], 30) == [range(0, 3), range(3, 4)]
