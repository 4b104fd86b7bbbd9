"""`tokenshift card`: a Hub dataset card that parses back, describes the build and loads it (offline)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from huggingface_hub import DatasetCard
from synthetic_build import add_cross_samples

from tokenshift.cards.card import check_card, write_card
from tokenshift.cards.render import size_category
from tokenshift.cli import cli
from tokenshift.queries.report import write_report
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.schemas.manifest import manifest_fingerprint, public_manifest, read_manifest
from tokenshift.schemas.tables import PRIMARY_KEYS, TABLE_FIELDS


@pytest.fixture()
def carded(build) -> Path:
    result = CliRunner().invoke(cli, ["card", str(build)])
    assert result.exit_code == 0, result.output
    return build


def code_blocks(text: str, lang: str = "python") -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_card_metadata_parses_back(carded):
    manifest = read_manifest(carded)
    card = DatasetCard.load(carded / "README.md")
    data = card.data.to_dict()
    assert data["license"] == "apache-2.0" and data["task_categories"] == ["text-generation"]
    assert data["pretty_name"] and "tokenshift" in data["tags"]
    assert data["size_categories"] == ["1K<n<10K"]  # the largest table (tokens) has a few thousand rows
    configs = {c["config_name"]: c["data_files"] for c in data["configs"]}
    assert list(configs) == [t for t in TABLE_FIELDS if t in manifest["tables"]]
    assert all(files == [{"split": "train", "path": f"{t}/*.parquet"}] for t, files in configs.items())
    assert data["tokenshift"]["manifest_sha256"] == manifest_fingerprint(manifest)
    assert check_card(carded) == carded / "README.md"


def test_card_body_has_provenance_schema_figures_and_rebuild_command(carded):
    manifest = public_manifest(read_manifest(carded))  # the card names models and paths as published
    text = DatasetCard.load(carded / "README.md").text
    for model in [manifest["models"]["base"], *manifest["models"]["rl"]]:
        assert all(str(model[k]) in text for k in ("name", "source", "revision", "sha256"))
    assert manifest["grader"] in text and str(manifest["config"]["benchmark"]) in text
    assert f"```bash\n{manifest['command']}\n```" in text
    for table in manifest["tables"]:
        assert f"Primary key: ({', '.join(PRIMARY_KEYS[table])})" in text
        for field in TABLE_FIELDS[table]:
            assert f"| `{field.name}` | `{field.type}` |" in text
            description = field.description.replace("|", "\\|")
            assert f"| {description} | {field.valid_values()} |" in text
    for row in accuracy_rows(carded):
        assert row + " |" in text
    for row in js_share_rows(carded):
        assert row + " |" in text
    # the intervals' method, with the recipes' defaults (the SET VARIABLE lines of queries/accuracy.sql)
    sql = (Path(__file__).resolve().parent.parent / "queries" / "accuracy.sql").read_text()
    reps = re.search(r"getvariable\('bootstrap_reps'\), (\d+)\)", sql).group(1)
    assert f"95% Poisson percentile bootstrap intervals over problems ({int(reps):,} replicates, seed 0)" in text


def accuracy_rows(build: Path) -> list[str]:
    """The card's accuracy rows (up to the accuracy cell), computed independently: correct / graded responses."""
    generations = pq.read_table(build / "generations").to_pandas()
    assert generations["correct"].isna().any()  # some answers are ungraded: correct / all would differ
    rows = []
    for (sampler, benchmark), g in generations.groupby(["sampler", "benchmark"]):
        graded = int(g["correct"].notna().sum())
        correct = int((g["correct"] == True).sum())  # noqa: E712  (nullable booleans)
        rows.append(f"| {sampler} | {benchmark} | {g['problem_id'].nunique()} | {len(g)} | {graded} | "
                    f"{len(g) - graded} | {correct / graded:.4g}")
    return rows


def js_share_rows(build: Path) -> list[str]:
    """The card's JS share rows, computed independently: per (sampler, rl_model), share of tokens with js >= t."""
    tokens = pq.read_table(build / "tokens", columns=["sampler", "rl_model", "js"]).to_pandas()
    rows = []
    for (sampler, rl_model), group in tokens.groupby(["sampler", "rl_model"]):
        js = group["js"].to_numpy().astype("float64")
        shares = " | ".join(f"{(js >= t).mean():.4g}" for t in (0.01, 0.05, 0.1, 0.2))
        rows.append(f"| {sampler} | {rl_model} | {len(js)} | {shares}")
    return rows


def test_card_and_report_show_the_same_figures(carded, tmp_path):
    """Both run the same recipes: each accuracy and JS share row of the card is in the report, equal to numpy's."""
    card_text = DatasetCard.load(carded / "README.md").text
    report_text = write_report(carded, tmp_path / "report").read_text(encoding="utf-8")
    for row in accuracy_rows(carded):  # the report's accuracy rows go on with pass@k
        assert row + " |" in card_text and row + " |" in report_text
    for row in js_share_rows(carded):
        sampler, rl_model, _, *shares = row.strip("| ").split(" | ")
        assert row + " |" in card_text
        for t, share in zip(("0.01", "0.05", "0.1", "0.2"), shares, strict=True):
            assert f"| {sampler} | {rl_model} | share_over | {t} | {share} |" in report_text


def test_card_loading_lines_work_on_a_local_copy(carded, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    manifest = read_manifest(carded)
    text = (carded / "README.md").read_text(encoding="utf-8")
    python_blocks = code_blocks(text)
    namespace: dict = {}
    exec(python_blocks[0].replace('DATA = "ORG/NAME"', f"DATA = {str(carded)!r}"), namespace)
    for table in manifest["tables"]:
        loaded = namespace[table]
        assert loaded.num_rows == manifest["tables"][table]["rows"]
        assert loaded.column_names == [f.name for f in TABLE_FIELDS[table]]
    local_sql = re.search(r'duckdb\.sql\("SELECT sampler.*?\.show\(\)', python_blocks[1], flags=re.S).group(0)
    exec("import duckdb\n" + local_sql.replace("path/to/dataset", str(carded)), {})
    assert "accuracy" in capsys.readouterr().out


def test_stale_missing_and_foreign_cards(carded):
    (carded / "validation.json").write_text("{}")  # a report beside the tables does not make the card stale
    check_card(carded)
    add_cross_samples(carded)
    with pytest.raises(TokenshiftError, match=r"stale .*run `tokenshift card "):
        check_card(carded)
    write_card(carded)
    check_card(carded)
    card = DatasetCard.load(carded / "README.md")
    assert "cross_samples" in [c["config_name"] for c in card.data.to_dict()["configs"]]
    assert "### Cross-sampling" in card.text
    (carded / "README.md").unlink()
    with pytest.raises(TokenshiftError, match=r"missing: run `tokenshift card "):
        check_card(carded)


def test_card_never_replaces_a_foreign_readme(build):
    readme = build / "README.md"
    readme.write_text("# my notes\n")
    result = CliRunner().invoke(cli, ["card", str(build)])
    assert result.exit_code == 2 and "not written by `tokenshift card`" in result.output
    assert readme.read_text() == "# my notes\n"
    assert CliRunner().invoke(cli, ["card", str(build), "--force", "--repo-id", "org/data",
                                    "--license", "mit"]).exit_code == 0
    card = DatasetCard.load(readme)
    assert card.data.license == "mit" and card.data.to_dict()["tokenshift"]["repo_id"] == "org/data"
    assert 'DATA = "org/data"' in card.text and "hf://datasets/org/data@" in card.text
    with pytest.raises(TokenshiftError, match="written for org/data, not org/other"):
        check_card(build, repo_id="org/other")
    assert json.loads((build / "manifest.json").read_text())  # the manifest is untouched


def test_size_categories_follow_the_hub_buckets():
    assert [size_category(n) for n in (0, 999, 1000, 5_000_000, 10**9, 10**13)] == [
        "n<1K", "n<1K", "1K<n<10K", "1M<n<10M", "1B<n<10B", "n>1T"]

