"""Minuscule `toy-pair train` runs (SFT, GRPO with an intermediate, eval, manifest), their determinism, the SFT control."""

import json

import torch
from click.testing import CliRunner
from transformers import AutoModelForCausalLM, AutoTokenizer

from tokenshift.builders.inputs.arith import toy_problems
from tokenshift.cli import cli
from tokenshift.runtime.embedded_pair import embedded_base_dir, embedded_rl_dir, rl_checkpoints
from tokenshift.toy.evaluate import load_model_dir, reward
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


def _add_controls(pair, *extra):
    return CliRunner().invoke(cli, ["toy-pair", "add-controls", "--pair", str(pair), "--quick", *extra])


def test_add_controls_is_deterministic_and_leaves_the_pair_untouched(tmp_path):
    import shutil

    first = tmp_path / "a"
    result = CliRunner().invoke(cli, ["toy-pair", "train", "--out", str(first), "--quick", "--seed", "5",
                                      "--eval-n", "0"])
    assert result.exit_code == 0, result.output
    second = tmp_path / "b"
    shutil.copytree(first, second)
    before = json.loads((first / "manifest.json").read_text())["files"]
    added = []
    for pair in (first, second):
        result = _add_controls(pair)
        assert result.exit_code == 0, result.output
        manifest = json.loads((pair / "manifest.json").read_text())
        assert manifest["files"] == file_digests(pair, ["base", "rl-step-001", "rl", "rl-seed1", "sft-offpolicy"])
        assert {k: v for k, v in manifest["files"].items() if k in before} == before  # old files byte-identical
        assert manifest["models"]["sft_offpolicy"] == "sft-offpolicy" and manifest["models"]["rl_seed1"] == "rl-seed1"
        record = manifest["added_models"]
        assert record["config"]["grpo"]["steps"] == 2 and record["rl_seed"]["seed"] == 1  # the pair's GRPO run
        assert "tokenshift toy-pair add-controls" in record["command"]
        data = record["sft_offpolicy"]["data_vs_base_greedy"]["sft-offpolicy"]
        assert data["n_examples"] == 16 and 0 <= data["n_differ"] <= data["n_positions"]
        added.append({k: v for k, v in manifest["files"].items() if k not in before})
    assert added[0] == added[1] and any(k.endswith("model.safetensors") for k in added[0])
    assert [p.name for p in rl_checkpoints(first)] == ["rl-step-001", "rl"]  # the seed run adds no checkpoints
    base = AutoModelForCausalLM.from_pretrained(first / "base")
    tuned = AutoModelForCausalLM.from_pretrained(first / "sft-offpolicy")
    assert not torch.equal(base.lm_head.weight, tuned.lm_head.weight)

    again = _add_controls(first)
    assert again.exit_code != 0 and again.output.strip().splitlines() == [
        f"Error: {first / 'rl-seed1'} already exists; pass --overwrite to replace it"]
    same_seed = _add_controls(first, "--rl-seed", "5", "--overwrite")
    assert same_seed.output.strip().splitlines() == [
        "Error: --rl-seed 5 is the seed `rl` was trained with; pass another seed"]
    (second / "base" / "config.json").write_text("{}")
    tampered = _add_controls(second, "--overwrite")
    assert tampered.exit_code != 0 and tampered.output.strip().splitlines() == [
        f"Error: {second / 'base' / 'config.json'} does not match the manifest's sha256/size; restore the pair "
        "(e.g. git checkout) before adding models to it"]


def test_reference_solutions_are_correct_and_differ_from_the_base_habit():
    from tokenshift.builders.inputs.arith import split_problems
    from tokenshift.builders.inputs.prompts import format_prompt
    from tokenshift.toy.controls import greedy_disagreement, reference_examples
    from tokenshift.toy.evaluate import generate

    problems = split_problems("train")[:40]
    examples = reference_examples(40)
    assert [q for q, _ in examples] == [p.question for p in problems]
    assert all(reward(str(p.answer), a) == 1.0 for p, (_, a) in zip(problems, examples))
    base, tokenizer = load_model_dir(embedded_base_dir())
    greedy = generate(base, tokenizer, [format_prompt(tokenizer, q) for q, _ in examples[:3]], sample=False, seed=0,
                      batch_size=1, max_new_tokens=96)
    own = greedy_disagreement(base, tokenizer, [(q, a) for (q, _), a in zip(examples[:3], greedy)])
    assert own["n_differ"] == 0 and own["n_positions"] > 30  # base's own greedy answers: no position differs
    other = greedy_disagreement(base, tokenizer, examples)
    assert other["share_differ"] > 0.2
