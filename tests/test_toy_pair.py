"""The embedded toy pair: loadable, tokenizer round trips real text, CLI errors are one line."""

import hashlib
import json

import pytest
import torch
from click.testing import CliRunner
from transformers import AutoModelForCausalLM, AutoTokenizer

from tokenshift.builders.inputs.arith import toy_problems
from tokenshift.builders.inputs.prompts import format_prompt
from tokenshift.cli import cli
from tokenshift.runtime.embedded_pair import (
    embedded_base_dir,
    embedded_manifest,
    embedded_rl_checkpoints,
    embedded_rl_dir,
    embedded_rl_seed_dir,
    embedded_sft_dir,
    embedded_sft_offpolicy_dir,
)
from tokenshift.toy.evaluate import EvalConfig, evaluate_dirs


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(embedded_base_dir())


def _benchmark_texts(folder):
    texts = []
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines()[:40]:
            texts += [v for v in json.loads(line).values() if isinstance(v, str)]
    return texts


def test_embedded_models_load_with_from_pretrained_and_share_one_vocabulary():
    dirs = [embedded_base_dir(), *embedded_rl_checkpoints()]
    assert dirs[-1] == embedded_rl_dir() and len(dirs) >= 5  # base + 3 intermediates + final
    steps = [int(d.name.rsplit("-", 1)[1]) for d in dirs[1:-1]]
    assert steps == sorted(steps)
    models = [AutoModelForCausalLM.from_pretrained(d) for d in (dirs[0], dirs[-1])]
    assert models[0].config.model_type == "qwen2" and models[0].config.tie_word_embeddings
    assert 0.9e6 < sum(p.numel() for p in models[0].parameters()) < 1.3e6
    assert models[0].get_input_embeddings().weight.shape == models[1].get_input_embeddings().weight.shape
    assert not torch.equal(models[0].lm_head.weight, models[1].lm_head.weight)  # RL changed something
    for d in dirs:
        assert (d / "model.safetensors").is_file() and not list(d.glob("optimizer*"))
        assert AutoModelForCausalLM.from_pretrained(d).generation_config.top_k == 0


def test_embedded_weights_are_small_and_manifest_has_figures():
    total = sum(f.stat().st_size for d in [embedded_base_dir(), *embedded_rl_checkpoints()]
                for f in d.glob("*.safetensors"))
    assert total <= 30e6
    manifest = json.loads(embedded_manifest().read_text())
    figures = manifest["eval"]
    assert figures["n"] >= 200
    assert 0.25 <= figures["base_accuracy"] <= 0.60
    assert figures["rl_accuracy"] >= figures["base_accuracy"] + 0.30
    assert manifest["seed"] == 0 and manifest["durations_s"]["sft_s"] > 0


def test_embedded_manifest_matches_its_files():
    manifest = json.loads(embedded_manifest().read_text())
    pair = embedded_manifest().parent
    dirs = [manifest["models"]["base"], *manifest["models"]["rl_checkpoints"], manifest["models"]["sft"],
            manifest["models"]["sft_offpolicy"], manifest["models"]["rl_seed1"]]
    on_disk = sorted(f.relative_to(pair).as_posix() for d in dirs for f in (pair / d).rglob("*") if f.is_file())
    assert sorted(manifest["files"]) == on_disk and len(on_disk) >= 6 * 3
    for rel, recorded in manifest["files"].items():
        data = (pair / rel).read_bytes()
        assert recorded == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}, rel
    assert round(sum(r["bytes"] for r in manifest["files"].values()) / 1e6, 2) == manifest["weights_mb"]


def test_embedded_sft_control_is_recorded_and_lands_near_rl():
    manifest = json.loads(embedded_manifest().read_text())
    record, figures = manifest["sft_control"], manifest["eval"]
    assert (embedded_sft_dir() / "model.safetensors").is_file() and manifest["models"]["sft"] == "sft"
    assert record["seed"] == manifest["seed"] and "tokenshift toy-pair train" in record["command"]
    assert 0 < record["data"]["n_correct"] <= record["data"]["n_sampled"] and record["steps"] >= 1
    assert record["reached_target"] and record["checks"][-1]["step"] == record["steps"]
    assert abs(figures["sft_accuracy"] - figures["rl_accuracy"]) <= 0.10  # "within a few points", on test


def test_tokenizer_round_trips_real_benchmark_text(tokenizer, shared_benchmarks):
    texts = _benchmark_texts(shared_benchmarks)
    assert len(texts) > 100 and any("\\frac" in t for t in texts)
    for text in texts:
        assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    assert tokenizer.decode(tokenizer("naïve 🙂 ∑ 日本")["input_ids"]) == "naïve 🙂 ∑ 日本"


def test_tokenizer_round_trips_benchmark_text_in_the_real_layouts(tokenizer, benchmark_files):
    texts = _benchmark_texts(benchmark_files)
    assert len(texts) > 30 and any("\\frac" in t for t in texts) and any("\u2019" in t for t in texts)
    for text in texts:
        assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_tokenizer_special_tokens_and_chat_template(tokenizer):
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|im_end|>", "<|endoftext|>")
    assert 400 <= len(tokenizer) <= 600
    prompt = format_prompt(tokenizer, "What is 2 + 3?")
    assert prompt == ("<|im_start|>user\nWhat is 2 + 3?\nPlease reason step by step, and put your final "
                      "answer within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n")
    assert [tokenizer.decode([i]) for i in tokenizer("123")["input_ids"]] == ["1", "2", "3"]


def test_rl_beats_base_on_a_small_sample():
    figures = evaluate_dirs({"base": embedded_base_dir(), "rl": embedded_rl_dir()},
                            EvalConfig(n=48, seed=0, batch_size=48))
    assert figures["rl_accuracy"] > figures["base_accuracy"] + 0.15


def test_eval_cli_json_on_a_few_problems():
    result = CliRunner().invoke(cli, ["toy-pair", "eval", "--n", "8", "--json"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip(), result.output
    figures = json.loads(result.stdout)  # progress goes to stderr; stdout is exactly one JSON object
    assert figures["n"] == 8 and figures["rl_path"] == str(embedded_rl_dir())
    for key in ("base_accuracy", "rl_accuracy", "base_greedy_accuracy", "rl_greedy_accuracy"):
        assert 0.0 <= figures[key] <= 1.0


@pytest.mark.parametrize("kind", ["missing", "not_a_model", "broken_config"])
def test_eval_cli_rejects_bad_model_paths_in_one_line(tmp_path, kind):
    bad = tmp_path / "model"
    if kind != "missing":
        bad.mkdir()
        (bad / "notes.txt").write_text("not a model")
    if kind == "broken_config":
        (bad / "config.json").write_text("{not json")
    result = CliRunner().invoke(cli, ["toy-pair", "eval", "--rl", str(bad), "--n", "2"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and str(bad) in lines[0]
    assert "Traceback" not in result.output and "save_pretrained" in lines[0]


def test_embedded_added_models_are_recorded_and_the_offpolicy_control_lands_near_rl():
    manifest = json.loads(embedded_manifest().read_text())
    record, figures = manifest["added_models"], manifest["eval"]
    assert (embedded_sft_offpolicy_dir() / "model.safetensors").is_file()
    assert (embedded_rl_seed_dir(1) / "model.safetensors").is_file() and record["rl_seed"]["seed"] == 1
    assert record["config"]["grpo"] == {**manifest["config"]["grpo"], "checkpoint_fractions": []}  # rl's run
    control = record["sft_offpolicy"]
    assert control["reached_target"] and control["checks"][-1]["step"] == control["steps"]
    assert control["rl_check_accuracy"] == manifest["sft_control"]["rl_check_accuracy"]  # the same target as sft
    shares = control["data_vs_base_greedy"]
    assert shares["sft-offpolicy"]["share_differ"] > 5 * shares["sft"]["share_differ"]  # off-policy data
    assert control["checks"][-1]["check_accuracy"] >= control["rl_check_accuracy"] - 0.02  # the stop rule
    assert figures["sft_offpolicy_accuracy"] >= figures["base_accuracy"] + 0.30  # (13 points below rl on test)
    assert figures["rl_seed1_accuracy"] >= figures["base_accuracy"] + 0.30


def test_toy_problems_feed_the_shared_prompt_format(tokenizer):
    prompt = format_prompt(tokenizer, toy_problems("test", 1)[0]["question"])
    assert prompt.endswith("<|im_start|>assistant\n") and "\\boxed{}" in prompt


def test_demo_scores_every_checkpoint_and_the_sft_control_against_base():
    from tokenshift.demo import DemoConfig, compared_models

    names = [p.rsplit("/", 1)[1] for p in compared_models(DemoConfig(out="x"))]
    controls = ["sft", "sft-offpolicy", "rl-seed1"]
    assert names == [d.name for d in embedded_rl_checkpoints()] + controls
    assert [p.rsplit("/", 1)[1] for p in compared_models(DemoConfig(out="x", checkpoints=False))] == ["rl", *controls]
    assert compared_models(DemoConfig(out="x", sft_control=False)) == tuple(str(d) for d in embedded_rl_checkpoints())
