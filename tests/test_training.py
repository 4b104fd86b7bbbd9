"""Training probes: divergence-weighted advantages (both references), TokenShiftCallback, TRL as an extra."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import torch

pytest.importorskip("trl")

from tokenshift.builders.pipeline.build import _append_token_rows, _tokens_table
from tokenshift.builders.scoring.score_batch import score_answers
from tokenshift.queries.run import run_recipe
from tokenshift.runtime.embedded_pair import embedded_base_dir, embedded_rl_dir
from tokenshift.runtime.files import write_json_atomic
from tokenshift.schemas.manifest import table_entries
from tokenshift.schemas.tables import to_arrow, write_parquet
from tokenshift.toy.evaluate import load_model_dir
from tokenshift.training import TokenShiftCallback, WeightConfig
from tokenshift.training.stats import ShiftStatsConfig

PROMPT = "<|im_start|>user\nWhat is 3 + 4 * 2?<|im_end|>\n<|im_start|>assistant\n"
ANSWERS = ["First multiply: 4 * 2 = 8. Then add: 3 + 8 = 11. The answer is \\boxed{11}.",
           "Add up all the numbers: 3 + 4 + 2 = 9. \\boxed{9}",
           "4 * 2 = 8, 3 + 8 = 11. \\boxed{11}"]


def _trainer(cls, model_dir, tmp_path, **kwargs):
    from datasets import Dataset
    from trl import GRPOConfig

    model, tokenizer = load_model_dir(model_dir)
    args = GRPOConfig(output_dir=str(tmp_path / "trainer"), per_device_train_batch_size=4, num_generations=2,
                      max_completion_length=32, loss_type="dapo", beta=0.0, report_to="none", use_cpu=True, bf16=False,
                      save_strategy="no", top_k=0)
    data = Dataset.from_list([{"prompt": PROMPT, "answer": "11"}] * 4)
    return cls(model=model, reward_funcs=lambda completions, **_: [0.0] * len(completions), args=args,
               train_dataset=data, processing_class=tokenizer, **kwargs)


def _batch(tokenizer, old_noise: float = 0.3) -> dict:
    """One prompt (no left padding), three right-padded answers, fixed advantages, a perturbed π_old."""
    prompt = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    answers = [tokenizer(a, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for a in ANSWERS]
    width = max(map(len, answers))
    completion = torch.full((len(answers), width), tokenizer.pad_token_id)
    mask = torch.zeros((len(answers), width), dtype=torch.long)
    for i, a in enumerate(answers):
        completion[i, :len(a)], mask[i, :len(a)] = torch.tensor(a), 1
    generator = torch.Generator().manual_seed(0)
    return {"prompt_ids": torch.tensor([prompt] * len(answers)), "prompt_mask": torch.ones(len(answers), len(prompt),
                                                                                          dtype=torch.long),
            "completion_ids": completion, "completion_mask": mask,
            "advantages": torch.tensor([1.0, -1.5, 0.5]), "num_items_in_batch": mask.sum(),
            "_old_noise": old_noise * torch.randn(completion.shape, generator=generator)}


def _logp_and_logits(model, batch) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Independent per-token log-probs [B, T] and float64 logits rows per answer, unpadded forward passes."""
    logps, rows = torch.zeros(batch["completion_ids"].shape, dtype=torch.float64), []
    with torch.no_grad():
        for i in range(len(batch["completion_ids"])):
            n = int(batch["completion_mask"][i].sum())
            ids = torch.cat([batch["prompt_ids"][i], batch["completion_ids"][i, :n]])
            logits = model(input_ids=ids[None]).logits[0, len(batch["prompt_ids"][i]) - 1:-1].double()
            rows.append(logits)
            logps[i, :n] = logits.log_softmax(-1).gather(-1, ids[-n:, None])[:, 0]
    return logps, rows


def _with_old(trainer, batch) -> dict:
    """The batch with old_per_token_logps = the model's own log-probs + noise (so π_old ≠ π_θ)."""
    logps, _ = _logp_and_logits(trainer.model, batch)
    inputs = {k: v for k, v in batch.items() if not k.startswith("_")}
    inputs["old_per_token_logps"] = (logps + batch["_old_noise"]).float() * batch["completion_mask"]
    return inputs


def test_weights_old_reference_equal_independent_k3(tmp_path):
    from tokenshift.training import DivergenceWeightedGRPOTrainer

    alpha, scale = 3.0, 0.8
    trainer = _trainer(DivergenceWeightedGRPOTrainer, embedded_base_dir(), tmp_path,
                       weighting=WeightConfig(alpha=alpha, scale=scale, reference="old"))
    batch = _batch(trainer.processing_class)
    inputs = _with_old(trainer, batch)
    trainer._compute_loss(trainer.model, inputs)
    logp, _ = _logp_and_logits(trainer.model, batch)
    old = inputs["old_per_token_logps"].double()
    mask = batch["completion_mask"].bool()
    r = torch.exp(logp - old)
    expected = 1 + scale * (1 / (1 + torch.exp(-alpha * (r - 1 - torch.log(r)))) - 0.5)
    torch.testing.assert_close(trainer.last_weights[mask].double(), expected[mask], rtol=1e-4, atol=1e-5)
    assert float(expected[mask].std()) > 0.01  # the weights really vary
    assert torch.equal(inputs["advantages"], batch["advantages"])  # the caller's (buffered) Â is untouched
    logged = trainer._metrics["eval"]
    w = expected[mask]
    assert logged["dw/weight_mean"][-1] == pytest.approx(float(w.mean()), rel=1e-4)
    assert logged["dw/weight_max"][-1] == pytest.approx(float(w.max()), rel=1e-4)
    assert logged["dw/weight_p95"][-1] == pytest.approx(float(torch.quantile(w, 0.95)), rel=1e-4)


def test_weights_base_reference_equal_independent_full_vocabulary_js(tmp_path):
    from tokenshift.training import DivergenceWeightedGRPOTrainer

    alpha, scale = 20.0, 1.0
    base, _ = load_model_dir(embedded_base_dir())
    trainer = _trainer(DivergenceWeightedGRPOTrainer, embedded_rl_dir(), tmp_path, base_model=base,
                       weighting=WeightConfig(alpha=alpha, scale=scale, reference="base"))
    batch = _batch(trainer.processing_class)
    trainer._compute_loss(trainer.model, _with_old(trainer, batch))
    _, policy_rows = _logp_and_logits(trainer.model, batch)
    _, base_rows = _logp_and_logits(base, batch)
    mask = batch["completion_mask"].bool()
    js = torch.zeros(mask.shape, dtype=torch.float64)
    for i, (lb, lr) in enumerate(zip(base_rows, policy_rows)):
        p, q = lb.softmax(-1), lr.softmax(-1)
        m = (p + q) / 2
        js[i, :len(lb)] = 0.5 * (p * (p / m).log()).nansum(-1) + 0.5 * (q * (q / m).log()).nansum(-1)
    expected = 1 + scale * (torch.sigmoid(alpha * js) - 0.5)
    torch.testing.assert_close(trainer.last_divergence[mask].double(), js[mask], rtol=1e-3, atol=2e-6)
    torch.testing.assert_close(trainer.last_weights[mask].double(), expected[mask], rtol=1e-5, atol=2e-5)
    assert float(js[mask].max()) > 0.05  # base and rl really differ somewhere on these answers


@pytest.mark.parametrize("weighting", [WeightConfig(alpha=0.0, scale=1.0), WeightConfig(alpha=50.0, scale=0.0),
                                       WeightConfig(alpha=0.0, scale=1.0, reference="base")])
def test_identity_weights_give_plain_grpo_loss_exactly(tmp_path, weighting):
    from trl import GRPOTrainer

    from tokenshift.training import DivergenceWeightedGRPOTrainer

    plain = _trainer(GRPOTrainer, embedded_base_dir(), tmp_path)
    batch = _batch(plain.processing_class)
    inputs = _with_old(plain, batch)
    expected = plain._compute_loss(plain.model, dict(inputs))
    weighted = _trainer(DivergenceWeightedGRPOTrainer, embedded_base_dir(), tmp_path, weighting=weighting)
    assert torch.equal(weighted._compute_loss(weighted.model, dict(inputs)), expected)
    boosted = _trainer(DivergenceWeightedGRPOTrainer, embedded_base_dir(), tmp_path,
                       weighting=WeightConfig(alpha=50.0, scale=1.0))
    assert not torch.equal(boosted._compute_loss(boosted.model, dict(inputs)), expected)  # the check can fail


def _tokens_build(out, answers, base, policy, vocab, tokenizer):
    """A minimal build (prompts, generations, tokens) of `answers` scored base vs policy, as the builder writes it."""
    scored = score_answers(base, {"policy": policy}, answers, vocab)
    columns = {f: [] for f in _tokens_table({k: [] for k in _empty_columns()}).schema.names}
    generations = []
    for i, ((_, response), stats) in enumerate(zip(answers, scored)):
        gen = {"generation_id": f"policy/p{i}/0", "sampler": "policy", "token_ids": response}
        _append_token_rows(columns, gen, stats, {t: tokenizer.decode([t]) for t in response})
        generations.append({"generation_id": gen["generation_id"], "problem_id": f"p{i}", "benchmark": "toy-arith",
                            "sampler": "policy", "sample_index": 0, "seed": 0, "response_text": "",
                            "n_tokens": len(response), "finish_reason": "stop", "extracted_answer": None,
                            "correct": None, "engine": "hf"})
    write_parquet(_tokens_table(columns), out / "tokens" / "part-00000.parquet")
    write_parquet(to_arrow("generations", generations), out / "generations" / "part-00000.parquet")
    write_parquet(to_arrow("prompts", [{"problem_id": f"p{i}", "benchmark": "toy-arith", "question": "q",
                                        "gold_answer": "1", "prompt": "q"} for i in range(len(answers))]),
                  out / "prompts" / "part-00000.parquet")
    write_json_atomic(out / "manifest.json", {"tables": table_entries(out)})  # readers read the listed parts
    return out


def _empty_columns():
    from tokenshift.schemas.tables import TABLE_FIELDS

    return [f.name for f in TABLE_FIELDS["tokens"]]


def test_callback_logs_equal_the_tokens_table_statistics(tmp_path):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    def length_reward(completions, **_):  # varied rewards, so the policy moves in two steps
        return [len(c) / 100 for c in completions]

    torch.manual_seed(0)
    model, tokenizer = load_model_dir(embedded_base_dir())
    base, _ = load_model_dir(embedded_base_dir())
    stats = ShiftStatsConfig(thresholds=(0.001, 0.01, 0.1), percentiles=(0.5, 0.9, 0.99), high_js=0.001,
                             edge_tokens=8, top_rank=3)
    args = GRPOConfig(output_dir=str(tmp_path / "t"), max_steps=2, per_device_train_batch_size=8, num_generations=4,
                      max_completion_length=24, learning_rate=1e-2, loss_type="dapo", beta=0.0, top_k=0,
                      logging_steps=1, report_to="none", use_cpu=True, bf16=False, save_strategy="no", seed=0,
                      disable_tqdm=True)
    data = Dataset.from_list([{"prompt": PROMPT, "answer": "11"}, {"prompt": PROMPT.replace("3 +", "5 +"),
                                                                  "answer": "13"}] * 4)
    trainer = GRPOTrainer(model=model, reward_funcs=length_reward, args=args, train_dataset=data,
                          processing_class=tokenizer)
    callback = TokenShiftCallback(every=1, stats=stats).attach(trainer)
    trainer.train()
    unobserved = GRPOTrainer(model=load_model_dir(embedded_base_dir())[0], reward_funcs=length_reward, args=args,
                             train_dataset=data, processing_class=tokenizer)
    unobserved.train()
    observed_weights, plain_weights = trainer.model.state_dict(), unobserved.model.state_dict()
    assert all(torch.equal(observed_weights[k], plain_weights[k]) for k in plain_weights)  # monitoring changes nothing
    assert [step for step, _ in callback.history] == [1, 2]
    assert trainer.callback_handler.callbacks[0] is callback
    logged = [e for e in trainer.state.log_history if "tokenshift/mean_js" in e]
    assert [e["step"] for e in logged] == [1, 2]
    values = {k.removeprefix("tokenshift/"): v for k, v in logged[-1].items() if k.startswith("tokenshift/")}
    answers = callback.last_answers
    assert len(answers) == 8 and all(p and r for p, r in answers)

    build = _tokens_build(tmp_path / "build", answers, base, trainer.model, len(tokenizer), tokenizer)
    tokens = pd.read_parquet(build / "tokens")
    assert values["n_tokens"] == len(tokens) == sum(len(r) for _, r in answers)
    dist = run_recipe("js_distribution", build, {"js_percentiles": "[0.5, 0.9, 0.99]",
                                                 "js_thresholds": "[0.001, 0.01, 0.1]"})
    for row in dist.itertuples():
        key = f"js_p{row.level * 100:g}" if row.measure == "js_percentile" else f"share_js_ge_{row.level:g}"
        assert values[key] == pytest.approx(row.value, rel=1e-9, abs=1e-12), key
    assert values["share_js_ge_0.001"] > 0  # the policy moved: the checks below are not about empty sets
    parts = run_recipe("position_concentration", build, {"js_threshold": 0.001, "edge_tokens": 8})
    parts = parts[parts.segment != "bin"].set_index("segment")
    for part in ("first", "middle", "last"):
        share = parts.share_of_over.get(part, 0.0)
        assert values[f"high_js_share_{part}"] == pytest.approx(0.0 if pd.isna(share) else share, abs=1e-12), part
    evolution = run_recipe("evolution", build, {"top_rank": 3, "js_threshold": 0.001})
    assert values["policy_top1_in_base_top3"] == pytest.approx(evolution.rl_top1_in_base_top.iloc[0], abs=1e-12)
    assert values["mean_js"] == pytest.approx(evolution.mean_js.iloc[0], rel=1e-9)


def test_core_import_and_cli_work_without_trl(tmp_path):
    code = ("import sys; sys.modules['trl'] = None\n"
            "import tokenshift.cli, tokenshift.training, tokenshift.toy.grpo\n"
            "from tokenshift.training import TokenShiftCallback\n"
            "from click.testing import CliRunner\n"
            "for args in (['experiment', 'dw-advantage'], ['toy-pair', 'train']):\n"
            f"    r = CliRunner().invoke(tokenshift.cli.cli, args + ['--out', {str(tmp_path / 'x')!r}])\n"
            "    print(r.exit_code); print(r.output.strip())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    error = "Error: this command needs TRL, which is not installed (trl); run: pip install 'tokenshift[train]'"
    assert out == ["2", error] * 2
    assert not (tmp_path / "x").exists()  # refused before writing anything


def test_weight_config_rejects_unknown_reference():
    from tokenshift.runtime.errors import TokenshiftError

    with pytest.raises(TokenshiftError, match="reference 'ref' is not one of old, base"):
        WeightConfig(reference="ref")


def test_experiment_refuses_a_non_empty_out(tmp_path):
    from click.testing import CliRunner

    from tokenshift.cli import cli

    (tmp_path / "keep.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["experiment", "dw-advantage", "--out", str(tmp_path), "--steps", "2"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: --out {tmp_path} is not empty; pass --overwrite or another directory"]
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_wilson_interval_matches_scipy():
    from scipy.stats import binomtest

    from tokenshift.toy.experiment import wilson

    for k, n in [(149, 200), (0, 10), (10, 10), (77, 200)]:
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_experiment_resumes_only_its_own_settings(tmp_path):
    from click.testing import CliRunner

    from tokenshift.cli import cli
    from tokenshift.toy.experiment import ExperimentConfig, write_settings

    write_settings(tmp_path, ExperimentConfig(steps=7))
    result = CliRunner().invoke(cli, ["experiment", "dw-advantage", "--out", str(tmp_path), "--steps", "8"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: --out {tmp_path} holds an experiment with other settings; pass --overwrite or another directory"]
