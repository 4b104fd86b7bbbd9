"""`write_report` / `tokenshift report`: every CSV, every PNG, index.md, skipping absent tables, safe --out."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from synthetic_tables import write_build

from tokenshift.queries import recipe_names, run_recipe, write_report
from tokenshift.queries.report import MARKER, is_report_dir
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.schemas.manifest import table_entries
from tokenshift.schemas.tables import to_arrow, write_parquet

PLOTTED = ["js_distribution", "entropy_vs_divergence", "position_concentration", "reranking",
           "mass_reallocation", "accuracy", "cross_sampling_curve", "criteria_comparison", "evolution",
           "method_comparison"]
CROSS = ["cross_sampling_curve", "criteria_comparison", "extrapolation", "study_table"]  # the recipes that need cross_samples
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("report")
    full = write_build(root / "full", seed=3)
    no_cross = write_build(root / "no_cross", seed=4, with_cross=False)
    empty_cross = root / "empty_cross"
    shutil.copytree(no_cross, empty_cross)
    write_parquet(to_arrow("cross_samples", []), empty_cross / "cross_samples" / "part-00000.parquet")
    listed = json.loads((empty_cross / "manifest.json").read_text())  # readers read only what the manifest lists
    (empty_cross / "manifest.json").write_text(json.dumps({**listed, "tables": table_entries(empty_cross)}))
    return {"full": full, "no_cross": no_cross, "empty_cross": empty_cross}


@pytest.fixture(scope="module")
def full_report(builds, tmp_path_factory) -> Path:
    return write_report(builds["full"], tmp_path_factory.mktemp("out") / "report")


def test_report_writes_every_csv_png_and_index(builds, full_report):
    out = full_report.parent
    assert full_report.name == "index.md"
    text = full_report.read_text(encoding="utf-8")
    assert text.splitlines()[0] == MARKER and is_report_dir(out)
    for name in recipe_names():
        csv = out / f"{name}.csv"
        assert csv.is_file(), name
        assert f"]({name}.csv)" in text
    for name in PLOTTED:
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000, name
        assert f"]({name}.png)" in text
    assert not (out / "divergent_tokens.png").exists() and not (out / "study_table.png").exists()
    # every relative link in index.md resolves inside the report
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        assert (out / target).is_file(), target
    assert "Skipped" not in text
    assert "nats" in text


def test_report_csv_equals_recipe(builds, full_report):
    out = full_report.parent
    for name in ("accuracy", "mass_reallocation", "divergent_tokens"):
        from_csv = pd.read_csv(out / f"{name}.csv", keep_default_na=False, na_values=[""])
        direct = run_recipe(name, builds["full"])
        assert list(from_csv.columns) == list(direct.columns)
        assert len(from_csv) == len(direct)
        numeric = direct.select_dtypes("number").columns
        pd.testing.assert_frame_equal(from_csv[numeric].astype(float), direct[numeric].astype(float))


def test_report_skips_absent_cross_samples(builds, tmp_path):
    index = write_report(builds["no_cross"], tmp_path / "r")
    text = index.read_text(encoding="utf-8")
    for name in CROSS:
        assert re.search(rf"\*\*Skipped\*\*: recipe {name} needs table cross_samples", text)
        assert not (tmp_path / "r" / f"{name}.csv").exists()
        assert not (tmp_path / "r" / f"{name}.png").exists()
    assert all((tmp_path / "r" / f"{n}.csv").is_file() for n in recipe_names() if n not in CROSS)


def test_report_empty_table_gives_empty_csv_and_placeholder_png(builds, tmp_path):
    index = write_report(builds["empty_cross"], tmp_path / "r")
    csv = pd.read_csv(tmp_path / "r" / "cross_sampling_curve.csv")
    assert csv.empty and "accuracy" in csv.columns
    assert (tmp_path / "r" / "cross_sampling_curve.png").read_bytes()[:8] == PNG_MAGIC
    assert "_(no rows)_" in index.read_text(encoding="utf-8")


def test_report_refuses_foreign_nonempty_out(builds, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(TokenshiftError, match="not empty") as err:
        write_report(builds["no_cross"], out)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    write_report(builds["no_cross"], out, overwrite=True)
    assert (out / "notes.txt").read_text() == "keep me" and is_report_dir(out)


def test_report_rerun_replaces_previous_report(builds, tmp_path):
    out = tmp_path / "r"
    write_report(builds["full"], out)
    assert (out / "cross_sampling_curve.png").exists()
    write_report(builds["no_cross"], out)  # a previous report: allowed, stale files removed
    assert not (out / "cross_sampling_curve.png").exists()
    assert str(builds["no_cross"]) in (out / "index.md").read_text(encoding="utf-8")


def test_report_bad_source_touches_nothing(tmp_path):
    with pytest.raises(TokenshiftError, match="not a tokenshift build"):
        write_report(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_report(builds, tmp_path):
    try:
        from tokenshift.cli import cli
    except ImportError as err:
        pytest.skip(f"tokenshift.cli does not import: {err}")
    from click.testing import CliRunner

    runner = CliRunner()
    out = tmp_path / "r"
    result = runner.invoke(cli, ["report", "--data", str(builds["no_cross"]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "index.md" in result.output and is_report_dir(out)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("x")
    result = runner.invoke(cli, ["report", "--data", str(builds["no_cross"]), "--out", str(tmp_path / "other")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "--overwrite" in lines[0]


def test_report_fails_when_a_figure_fails_and_writes_no_index(builds, tmp_path, monkeypatch):
    """The CSVs and PNGs are written on a second thread: its error still fails the report, before index.md."""
    import tokenshift.queries.report as report

    def broken(name, df, path, params=None):
        raise RuntimeError(f"cannot draw {name}")

    monkeypatch.setattr(report, "save_plot", broken)
    with pytest.raises(RuntimeError, match="cannot draw js_distribution"):
        write_report(builds["full"], tmp_path / "report")
    assert not (tmp_path / "report" / "index.md").exists()
