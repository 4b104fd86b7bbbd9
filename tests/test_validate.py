"""`tokenshift validate`: a clean build passes; each kind of corruption is named (expectation, column, count)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from synthetic_build import add_cross_samples, refresh_manifest_tables

from tokenshift.cli import cli
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.schemas.validate import validate_build


def first_part(build: Path, table: str) -> Path:
    return sorted((build / table).glob("*.parquet"))[0]


def rewrite(path: Path, change) -> pa.Table:
    """Replace a parquet part by change(table), written as is (no schema enforcement)."""
    table = change(pq.read_table(path))
    pq.write_table(table, path)
    return table


def set_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


def replace_first(table: pa.Table, name: str, n: int, value) -> pa.Table:
    column = table.column(name).to_pylist()
    column[:n] = [value] * n
    return set_column(table, name, pa.array(column, type=table.schema.field(name).type))


def only_failure(report, expectation: str, column: str | None, table: str):
    failure = report.failure(expectation, column, table)
    assert failure is not None, [(f.expectation, f.column, f.unexpected_count) for f in report.failures]
    return failure


def test_clean_build_passes_and_writes_report(build):
    result = CliRunner().invoke(cli, ["validate", str(build)])
    assert result.exit_code == 0, result.output
    assert "all checks passed" in result.output
    for table in ("prompts", "generations", "tokens"):
        assert any(line.startswith(table) and line.rstrip().endswith("ok") for line in result.output.splitlines())
    report = json.loads((build / "validation.json").read_text())
    assert report["ok"] is True and report["failures"] == []
    groups = {(row["table"], row["group"]) for row in report["summary"]}
    assert {("tokens", g) for g in ("files", "schema", "values", "keys", "references", "consistency")} <= groups
    assert all(check["success"] for check in report["checks"])
    # the report beside the tables is not parquet: validating again still passes
    assert validate_build(build).ok


def test_cross_samples_are_validated(build):
    add_cross_samples(build)
    report = validate_build(build)
    assert report.ok, [f for f in report.failures]
    assert any(r.table == "cross_samples" and r.group == "references" for r in report.results)
    rewrite(first_part(build, "cross_samples"), lambda t: replace_first(t, "intervention_fraction", 2, 1.5))
    refresh_manifest_tables(build)
    failure = only_failure(validate_build(build), "expect_column_values_to_be_between", "intervention_fraction",
                           "cross_samples")
    assert failure.unexpected_count == 2
    rewrite(first_part(build, "cross_samples"), lambda t: replace_first(t, "threshold", 3, -0.01))
    refresh_manifest_tables(build)  # a negative threshold breaks the field's contract (KL thresholds may pass ln 2)
    failure = only_failure(validate_build(build), "expect_column_values_to_be_between", "threshold", "cross_samples")
    assert failure.unexpected_count == 3


def test_js_out_of_range(build):
    rewrite(first_part(build, "tokens"), lambda t: replace_first(t, "js", 3, math.log(2) + 0.01))
    refresh_manifest_tables(build)
    result = CliRunner().invoke(cli, ["validate", str(build), "--json-report", str(build.parent / "r.json")])
    assert result.exit_code == 1
    assert "expect_column_values_to_be_between on tokens.js: 3 bad rows" in result.output
    report = json.loads((build.parent / "r.json").read_text())
    assert report["ok"] is False
    assert [(f["expectation"], f["column"], f["unexpected_count"]) for f in report["failures"]] == [
        ("expect_column_values_to_be_between", "js", 3)]


def test_topk_logp_out_of_order(build):
    """Top-K log-prob lists are most probable first (recipes read the last entry as the smallest): a list with a
    rise is named, counted once per list."""
    def swap_two(t: pa.Table) -> pa.Table:
        lists = t.column("topk_rl_logp").to_pylist()
        for i in (0, 5):
            lists[i] = [lists[i][1], lists[i][0]] + lists[i][2:]  # a strict rise where the first two differ
        assert all(lists[i][0] < lists[i][1] for i in (0, 5))
        return set_column(t, "topk_rl_logp", pa.array(lists, type=t.schema.field("topk_rl_logp").type))

    rewrite(first_part(build, "tokens"), swap_two)
    refresh_manifest_tables(build)
    report = validate_build(build)
    failure = only_failure(report, "expect_column_values_to_be_between", "topk_rl_logp", "tokens")
    assert failure.unexpected_count == 2
    assert report.failure("expect_column_values_to_be_between", "topk_base_logp", "tokens") is None

def test_duplicate_key(build):
    rewrite(first_part(build, "tokens"), lambda t: pa.concat_tables([t, t.slice(0, 1)]))
    refresh_manifest_tables(build)
    report = validate_build(build)
    failure = only_failure(report, "expect_compound_columns_to_be_unique", "generation_id+rl_model+position", "tokens")
    assert failure.group == "keys" and failure.unexpected_count == 2  # the row and its copy


def test_dangling_generation_id(build):
    rewrite(first_part(build, "tokens"), lambda t: replace_first(t, "generation_id", 4, "ghost/p0/0"))
    refresh_manifest_tables(build)
    failure = only_failure(validate_build(build), "expect_column_values_to_be_in_set", "generation_id", "tokens")
    assert failure.group == "references" and failure.unexpected_count == 4
    assert "ghost/p0/0" in failure.examples


def test_wrong_row_count_in_manifest(build):
    manifest = json.loads((build / "manifest.json").read_text())
    manifest["tables"]["tokens"]["rows"] += 7
    (build / "manifest.json").write_text(json.dumps(manifest))
    report = validate_build(build)
    failure = only_failure(report, "expect_table_row_count_to_equal", None, "tokens")
    assert failure.unexpected_count == 7 and failure.observed == manifest["tables"]["tokens"]["rows"] - 7
    assert len(report.failures) == 1


def test_modified_file_fails_sha256(build):
    part = first_part(build, "generations")
    pq.write_table(pq.read_table(part), part, compression="gzip")  # same rows, other bytes
    report = validate_build(build)
    failure = only_failure(report, "expect_column_pair_values_to_be_equal", "sha256", "generations")
    assert failure.unexpected_count == 1 and failure.unit == "files"
    assert failure.examples == (part.relative_to(build).as_posix(),)
    assert report.failure("expect_column_pair_values_to_be_equal", "rows", "generations") is None


def test_unlisted_parquet_file(build):
    shutil.copy(first_part(build, "prompts"), build / "prompts" / "part-99999.parquet")
    failure = only_failure(validate_build(build), "expect_column_values_to_be_in_set", "in_manifest", "prompts")
    assert failure.unexpected_count == 1 and failure.examples == ("prompts/part-99999.parquet",)


def test_n_tokens_inconsistency(build):
    part = first_part(build, "generations")
    changed = rewrite(part, lambda t: set_column(t, "n_tokens", pc.add(t.column("n_tokens"), pa.array(
        [1] + [0] * (t.num_rows - 1), pa.int32()))))
    refresh_manifest_tables(build)
    gen_id = changed.column("generation_id")[0].as_py()
    tokens = pq.read_table(build / "tokens", columns=["generation_id", "rl_model"])
    groups = len(set(tokens.filter(pc.equal(tokens.column("generation_id"), gen_id)).column("rl_model").to_pylist()))
    failure = only_failure(validate_build(build), "expect_column_pair_values_to_be_equal", "n_tokens", "tokens")
    assert failure.group == "consistency" and failure.unit == "groups"
    assert failure.unexpected_count == groups >= 1
    assert all(str(e).startswith(gen_id + " @ ") for e in failure.examples)


def test_wrong_column_type_and_missing_column(build):
    part = first_part(build, "tokens")

    def retype(t: pa.Table) -> pa.Table:
        t = set_column(t, "position", t.column("position").cast(pa.int64()))
        t = set_column(t, "topk_base_ids", t.column("topk_base_ids").cast(pa.list_(pa.int64())))
        return t.drop_columns(["entropy_rl"])

    changed = rewrite(part, retype)
    refresh_manifest_tables(build)
    report = validate_build(build)
    failure = only_failure(report, "expect_column_values_to_be_of_type", "position", "tokens")
    assert failure.group == "schema" and failure.unexpected_count == changed.num_rows
    assert failure.observed == "int64" and failure.files == (part.relative_to(build).as_posix(),)
    # pandas sees any list as "list": the element type is checked on the arrow schema
    nested = only_failure(report, "arrow_type_matches_schema", "topk_base_ids", "tokens")
    assert nested.unexpected_count == changed.num_rows and nested.observed == "list<int64>"
    missing = only_failure(report, "expect_column_to_exist", "entropy_rl", "tokens")
    assert missing.unexpected_count == changed.num_rows
    columns = only_failure(report, "expect_table_columns_to_match_set", None, "tokens")
    assert columns.observed["missing"] == ["entropy_rl"]
    assert len(report.failures) == 4  # the values themselves are still checked, and fine
    assert all(r.error is None for r in report.results)


def test_secret_in_manifest_is_named_not_echoed(build):
    manifest = json.loads((build / "manifest.json").read_text())
    secret = "hf_" + "a1B2" * 9
    manifest["config"]["hub_token"] = secret
    (build / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(cli, ["validate", str(build)])
    assert result.exit_code == 1 and "manifest_has_no_secrets" in result.output
    assert secret not in result.output and secret not in (build / "validation.json").read_text()


def test_not_a_build_is_a_one_line_error(tmp_path):
    with pytest.raises(TokenshiftError, match="not a tokenshift build"):
        validate_build(tmp_path)
    result = CliRunner().invoke(cli, ["validate", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1
