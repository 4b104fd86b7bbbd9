"""Progress a log can hold: plain lines when stderr is not a terminal, tqdm bars when it is."""

import re

from click.testing import CliRunner
from tqdm.auto import tqdm

import tokenshift.runtime.progress as progress
from tokenshift.cli import cli

_LINE = re.compile(r"^(?P<desc>[\w ]+): (?P<count>\d+(/\d+)?) (?P<unit>\w+) \(\d+\.\d s(, [^)]*)?\)$")


def test_captured_build_prints_one_plain_line_per_shard_and_step(tmp_path, benchmark_files):
    out = tmp_path / "build"
    result = CliRunner().invoke(cli, ["build", "--out", str(out), "--benchmark", str(benchmark_files / "gsm8k.jsonl"),
                                      "--limit", "2", "--shard-size", "1", "--samples", "1",
                                      "--max-new-tokens", "4"])
    assert result.exit_code == 0, result.output
    assert "\r" not in result.output and "\x1b[" not in result.output
    lines = result.output.splitlines()
    assert lines[-1] == f"build written to {out}"
    # the cost plan comes first (indented lines under its title), then the first batch's estimate;
    # the decoded count precedes the last line (builders/plan.py)
    assert lines[0] == "plan for tokenshift build (2 pending shard(s)):"
    plan = 1 + next(i for i, line in enumerate(lines[1:]) if not line.startswith("  "))
    first = [line for line in lines[plan:] if line.startswith("first batch: ")]
    assert len(first) == 1 and lines[-2].startswith("decoded ") and "(plan bound 16)" in lines[-2]
    lines = [line for line in lines[plan:-2] if line not in first] + lines[-1:]
    matches = [_LINE.match(line) for line in lines[:-1]]
    assert all(matches), lines
    descs = [m["desc"] for m in matches]
    shards = [m["count"] for m in matches if m["desc"] == "shards"]
    assert shards == ["1/2", "2/2"]  # one line per shard, as it finishes
    per_shard = ["generate base", "generate rl", "grade", "score", "shards"]
    assert descs == per_shard * 2  # each nested step: one summary line per shard
    assert [m["count"] for m in matches if m["desc"] == "score"] == ["2", "2"]  # base + rl answer, scored


def test_line_progress_iterates_with_postfix_and_nested_bars_print_once(capsys):
    for _ in progress.LineProgress(range(3), desc="sft", unit="step"):
        pass
    nested = progress.LineProgress(total=5, desc="grade", unit="answer", nested=True)
    nested.set_postfix(loss="0.5")
    nested.update(2)
    nested.update(3)
    nested.close()
    nested.close()
    lines = capsys.readouterr().err.splitlines()
    assert [re.sub(r"\(\d+\.\d s", "(T s", line) for line in lines] == [
        "sft: 1/3 step (T s)", "sft: 2/3 step (T s)", "sft: 3/3 step (T s)", "grade: 5 answer (T s, loss=0.5)"]


def test_a_terminal_keeps_tqdm_bars_and_disabled_stays_silent(monkeypatch, capsys):
    monkeypatch.setattr(progress, "interactive", lambda: True)
    terminal = progress.progress_bar(total=3, desc="shards", unit="shard")
    assert isinstance(terminal, tqdm)
    terminal.close()
    capsys.readouterr()
    monkeypatch.setattr(progress, "interactive", lambda: False)
    assert isinstance(progress.progress_bar(total=3, desc="shards"), progress.LineProgress)
    bar = progress.progress_bar(total=3, desc="shards", disable=True)
    bar.update(3)
    bar.close()
    assert capsys.readouterr().err == ""
