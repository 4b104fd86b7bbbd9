"""Minuscule `toy-pair train` runs (SFT, GRPO with an intermediate, eval, manifest), their determinism, the SFT control."""

import json

import torch
from click.testing import CliRunner
from transformers import AutoModelForCausalLM, AutoTokenizer

from tokenshift.cli import cli
from tokenshift.toy.arith import toy_problems
from tokenshift.toy.evaluate import load_model_dir, reward
from tokenshift.toy.paths import embedded_base_dir, embedded_rl_dir, rl_checkpoints
from tokenshift.toy.sft_control import SFTControlSettings, rejection_sample, train_sft_control
from tokenshift.toy.train import file_digests


def test_quick_train_writes_loadable_pair_and_manifest(tmp_path):
    out = tmp_path / "pair"
    result = CliRunner().invoke(cli, ["toy-pair", "train", "--out", str(out), "--quick", "--seed", "3"])
    assert result.exit_code == 0, result.output
    checkpoints = rl_checkpoints(out)
    assert [p.name for p in checkpoints] == ["rl-step-001", "rl"]
    for d in [out / "base", *checkpoints]:
        model = AutoModelForCausalLM.from_pretrained(d)
        tok = AutoTokenizer.from_pretrained(d)
        assert model.config.vocab_size == len(tok) and model.config.hidden_size == 32
        assert not list(d.glob("optimizer*")) and not list(d.glob("checkpoint-*"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["config"]["grpo"]["steps"] == 2
    assert manifest["models"]["rl_checkpoints"] == ["rl-step-001", "rl"]
    assert "tokenshift toy-pair train" in manifest["command"] and "--quick" in manifest["command"]
    assert set(manifest["versions"]) >= {"torch", "transformers", "trl", "tokenizers"}
    assert 0.0 <= manifest["eval"]["rl_accuracy"] <= 1.0 and manifest["eval"]["n"] == 4
    shift = [e for e in manifest["grpo_log"] if "tokenshift/mean_js" in e]  # TokenShiftCallback, every step
    assert [e["step"] for e in shift] == [1, 2] and all(e["tokenshift/n_tokens"] > 0 for e in shift)

    again = CliRunner().invoke(cli, ["toy-pair", "train", "--out", str(out), "--quick"])
    assert again.exit_code == 2
    assert again.output.strip().splitlines() == [f"Error: --out {out} is not empty; pass --overwrite to replace the pair in it"]


def test_quick_train_is_deterministic_for_a_seed(tmp_path):
    digests = []
    for name in ("a", "b"):
        out = tmp_path / name
        result = CliRunner().invoke(cli, ["toy-pair", "train", "--out", str(out), "--quick", "--seed", "5",
                                          "--eval-n", "0"])
        assert result.exit_code == 0, result.output
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["files"] == file_digests(out, ["base", "rl-step-001", "rl"])  # recorded == recomputed
        digests.append(manifest["files"])
    assert digests[0] == digests[1] and any(k.endswith("model.safetensors") for k in digests[0])


def test_sft_control_step_is_deterministic_and_learns_only_rl_correct_answers():
    base_dir, rl_dir = embedded_base_dir(), embedded_rl_dir()
    settings = SFTControlSettings(n_prompts=12, max_steps=3, batch_size=4, check_every=2, n_check=6,
                                  batch_generate=12, max_new_tokens=80)
    rl, tokenizer = load_model_dir(rl_dir)
    examples, n_tried = rejection_sample(rl, tokenizer, 4000, settings, seed=1)
    gold = {p["question"]: p["answer"] for p in toy_problems("train", 12)}
    assert n_tried == 12 and 0 < len(examples) <= 12
    assert all(q in gold and reward(gold[q], a) == 1.0 for q, a in examples)  # only RL's verified answers
    runs = []
    for _ in range(2):
        base, _ = load_model_dir(base_dir)
        model, record = train_sft_control(base, rl, tokenizer, settings, n_train_prompts=4000, seed=1)
        runs.append(({k: v.clone() for k, v in model.state_dict().items()}, record))
    (w0, r0), (w1, r1) = runs
    assert r0 == r1 and w0.keys() == w1.keys() and all(torch.equal(w0[k], w1[k]) for k in w0)
    assert r0["data"]["n_correct"] == len(examples) and r0["steps"] in (2, 3)
    assert [c["step"] for c in r0["checks"]] == [2] and r0["check_problems"] == "toy-arith train[4000:4006]"
    assert r0["reached_target"] == (r0["steps"] == 2)  # stopped at the check iff it reached RL's accuracy
    untouched, _ = load_model_dir(base_dir)
    assert not torch.equal(untouched.lm_head.weight, model.lm_head.weight)
