"""A minuscule end-to-end `toy-pair train` run: SFT, GRPO with an intermediate, eval, manifest."""

import json

from click.testing import CliRunner
from transformers import AutoModelForCausalLM, AutoTokenizer

from tokenshift.cli import cli
from tokenshift.toy.paths import rl_checkpoints


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
