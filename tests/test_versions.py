"""Schema versions: builds of every past version stay readable (validate, every recipe, card, view), are refused by
every writer in one line, and migrate to the current version; a build never mixes two versions.

The fixtures under tests/fixtures/schema/<version>/ are tiny builds written by the tokenshift of that version
(embedded pair, 3 toy problems x 2 answers of <= 40 tokens, then cross-sampling), see their README.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from synthetic_build import make_build, refresh_manifest_tables

from tokenshift.builders.maintenance.merge import merge_builds
from tokenshift.builders.maintenance.migrate import migrate_build
from tokenshift.cards.card import write_card
from tokenshift.cli import cli
from tokenshift.queries import recipe_names, run_recipe
from tokenshift.queries.sources import resolve_source
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.schemas.tables import SCHEMA_VERSION, TABLE_FIELDS, schema, write_parquet
from tokenshift.schemas.validate import validate_build
from tokenshift.schemas.versions import PAST_VERSIONS, build_version, contract, contract_json

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "schema"
EXACT = ("p_base_rl_top1", "rl_mass_base_topk", "base_mass_rl_topk")
SCALARS = ("p_rl_rl_top1", "base_mass_base_topk")  # 2.2: the top-K lists' scalars
FAST = {"bootstrap_reps": 20}  # the interval recipes' replicates (their intervals are checked elsewhere)


@pytest.fixture(params=PAST_VERSIONS)
def old(request, tmp_path) -> tuple[str, Path]:
    """A copy of the fixture build of a past version."""
    out = tmp_path / f"v{request.param}"
    shutil.copytree(FIXTURES / request.param, out, ignore=shutil.ignore_patterns("README.md"))
    return request.param, out


def _params(name: str) -> dict:
    from tokenshift.queries.recipes import load_recipe

    return {k: v for k, v in FAST.items() if k in load_recipe(name).params}


def test_every_past_version_has_a_fixture_and_a_frozen_contract():
    for version in PAST_VERSIONS:
        assert (FIXTURES / version / "manifest.json").is_file()
        assert set(contract(version)) == set(TABLE_FIELDS)
    # 1.0 had no criteria columns and JS-only thresholds; 2.0 had no exact reallocation columns
    assert "criterion" not in {f.name for f in contract("1.0")["cross_samples"]}
    assert ({f.name for f in contract("2.0")["cross_samples"]} | {"sign", "mix_space"}
            == {f.name for f in TABLE_FIELDS["cross_samples"]})
    assert not set(EXACT) & {f.name for f in contract("2.0")["tokens"]}
    assert set(EXACT) <= {f.name for f in contract("2.1")["tokens"]}
    assert not set(SCALARS) & {f.name for f in contract("2.1")["tokens"]}
    assert set(EXACT + SCALARS) <= {f.name for f in TABLE_FIELDS["tokens"]}


def test_contract_json_round_trips_the_current_contract(tmp_path, monkeypatch):
    import tokenshift.schemas.versions as versions

    (tmp_path / "9.9.json").write_text(json.dumps(contract_json(TABLE_FIELDS, "9.9")), encoding="utf-8")
    monkeypatch.setattr(versions, "CONTRACT_DIR", tmp_path)
    monkeypatch.setattr(versions, "PAST_VERSIONS", ("9.9",))
    versions.contract.cache_clear()
    try:
        assert versions.contract("9.9") == TABLE_FIELDS
    finally:
        versions.contract.cache_clear()


def test_fixture_versions_are_resolved(old):
    version, build = old
    manifest = json.loads((build / "manifest.json").read_text())
    # 1.0 and 2.0 were both written labelled 1.0; 2.0 is told by cross_samples.run_id
    assert manifest["schema_version"] == ("1.0" if version in ("1.0", "2.0") else version)
    assert build_version(build, manifest) == version
    assert resolve_source(build).version == version


def test_old_builds_validate_against_their_own_contract(old):
    version, build = old
    report = validate_build(build)
    assert report.ok, report.failures[:3]
    # the same files fail the current contract: its required columns are not there
    current = json.loads((build / "manifest.json").read_text())
    if version == "1.0":
        (build / "manifest.json").write_text(json.dumps({**current, "schema_version": SCHEMA_VERSION}))
        bad = validate_build(build)
        assert not bad.ok
        assert any(r.expectation == "schema_version_matches" and not r.success for r in bad.results)


def test_every_recipe_runs_on_old_builds(old):
    version, build = old
    src = resolve_source(build)
    for name in recipe_names():
        from tokenshift.queries.recipes import load_recipe

        if any(t not in src.tables for t in load_recipe(name).tables):
            continue
        result = run_recipe(name, build, _params(name))  # runs, with its columns (some need more data than this)
        assert len(result.columns) > 0, name
        if name in ("js_distribution", "reranking", "mass_reallocation", "accuracy", "cross_sampling_curve", "evolution"):
            assert len(result) > 0, name
    mass = run_recipe("mass_reallocation", build)
    if version in ("1.0", "2.0"):
        assert (mass.exact_topk_share < 1).any()  # no exact columns: the bounds, said by the exact shares
    else:
        filled = mass[mass.n_tokens > 0]
        assert (filled.exact_topk_share == 1).all() and (filled.mean_gain_lo == filled.mean_gain_hi).all()
    assert (mass.mean_gain_lo <= mass.mean_gain_hi + 1e-12).all()
    curve = run_recipe("cross_sampling_curve", build, _params("cross_sampling_curve"))
    assert len(curve) > 0


def test_old_cross_samples_read_as_their_version_implies(old):
    version, build = old
    from tokenshift.queries.run import connect

    con, _ = connect(build)
    try:
        rows = con.execute("SELECT DISTINCT criterion, mix_weight, run_id IS NULL FROM cross_samples "
                           "WHERE criterion = 'js'").fetchall()
        exact = con.execute("SELECT count(*), count(p_base_rl_top1), count(p_rl_rl_top1), "
                            "count(base_mass_base_topk) FROM tokens").fetchone()
    finally:
        con.close()
    assert rows == [("js", 1.0, version == "1.0")]
    assert exact[0] > 0 and exact[2] == exact[3] == 0  # the 2.2 columns read as NULL
    assert exact[1] == (exact[0] if version == "2.1" else 0)  # and the 2.1 columns before 2.1


def test_card_publish_and_view_of_an_old_build(old, tmp_path):
    """The card describes the build's own version; the old build publishes (validated against that version) and
    the published version is queried and viewed like any other."""
    from tokenshift.publish.local import publish_local
    from tokenshift.queries.viewer import write_viewer

    version, build = old
    text = write_card(build).read_text(encoding="utf-8")
    assert f"schema version {version}." in text and "tokenshift migrate" in text
    if version == "1.0":
        assert "JS threshold in nats for an intervention" in text and "`criterion`" not in text
    assert "`p_rl_rl_top1`" not in text and ("`p_base_rl_top1`" in text) == (version == "2.1")
    published = publish_local(build, tmp_path / "registry", "1.0.0")
    label = json.loads((build / "manifest.json").read_text())["schema_version"]
    assert json.loads((published / "manifest.json").read_text())["schema_version"] == label
    assert len(run_recipe("mass_reallocation", f"{tmp_path / 'registry'}@latest")) > 0
    index = write_viewer(f"{tmp_path / 'registry'}@1.0.0", tmp_path / "view", top=1)
    assert Path(index).is_file() and len(list((tmp_path / "view").rglob("*.html"))) > 1


def test_writers_refuse_old_builds_in_one_line(old):
    version, build = old
    result = CliRunner().invoke(cli, ["cross-sample", str(build), "--thresholds", "0.05", "--budgets", "0",
                                      "--quiet"])
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and f"schema version {version}" in line
    assert f"tokenshift migrate {build} --out NEW_DIR" in line


def test_migrate_keeps_every_old_column_and_validates(old, tmp_path):
    version, build = old
    out = tmp_path / "migrated"
    result = CliRunner().invoke(cli, ["migrate", str(build), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "computed from the top-K lists: tokens.p_rl_rl_top1, tokens.base_mass_base_topk" in result.output
    assert ("tokens.p_base_rl_top1" in result.output and "rebuild to fill them" in result.output) == (version != "2.1")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["migrated_from"]["schema_version"] == version
    assert validate_build(out).ok
    for table, entry in manifest["tables"].items():
        new = pa.concat_tables([pq.read_table(out / rel) for rel in sorted(entry["files"])])
        old_parts = sorted((build / table).glob("*.parquet"))
        before = pa.concat_tables([pq.read_table(p) for p in old_parts])
        assert new.num_rows == before.num_rows
        for name in before.column_names:  # every column the old version had, value for value
            assert new.column(name).to_pylist() == before.column(name).to_pylist(), (table, name)
        assert pq.read_schema(out / sorted(entry["files"])[0]).metadata[b"schema_version"].decode() == SCHEMA_VERSION
    tokens = pa.concat_tables([pq.read_table(p) for p in sorted((out / "tokens").glob("*.parquet"))])
    if version in ("1.0", "2.0"):
        assert all(tokens.column(c).null_count == tokens.num_rows for c in EXACT)
    # the lists' scalars are computed from the lists: RL's top-1 probability and base's top-K mass
    rl_logp, base_logp = (np.array(tokens.column(c).to_pylist(), np.float64) for c in ("topk_rl_logp", "topk_base_logp"))
    np.testing.assert_allclose(tokens.column("p_rl_rl_top1").to_numpy(), np.exp(rl_logp[:, 0]), rtol=1e-6)
    np.testing.assert_allclose(tokens.column("base_mass_base_topk").to_numpy(),
                               np.minimum(np.exp(base_logp).sum(-1), 1.0), rtol=1e-6)
    cross = pa.concat_tables([pq.read_table(p) for p in sorted((out / "cross_samples").glob("*.parquet"))])
    run_ids = {r["run_id"] for r in manifest["cross_sampling_runs"]}
    assert set(cross.column("run_id").to_pylist()) <= run_ids
    assert all(rel.endswith(tuple(f"-{r}.parquet" for r in run_ids)) for rel in manifest["tables"]["cross_samples"]["files"])
    for name in recipe_names():
        run_recipe(name, out, _params(name))
    again = CliRunner().invoke(cli, ["migrate", str(out), "--out", str(tmp_path / "twice")])
    assert again.exit_code == 2 and "nothing to migrate" in again.output


def test_migrate_refuses_a_non_empty_out(old, tmp_path):
    _, build = old
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(TokenshiftError, match="not empty"):
        migrate_build(build, tmp_path / "full")


def test_a_build_is_one_version(tmp_path):
    """A part of another version in a current build: refused by readers, failed by validate, refused by merge."""
    build = make_build(tmp_path / "b")
    part = sorted((build / "tokens").glob("*.parquet"))[0]
    table = pq.read_table(part)
    old = table.drop_columns(list(EXACT)).replace_schema_metadata({b"schema_version": b"1.0", b"table": b"tokens"})
    write_parquet(old, part)
    refresh_manifest_tables(build)
    with pytest.raises(TokenshiftError, match=rf"follows schema version 1\.0 but .* is version {re.escape(SCHEMA_VERSION)}: "
                                              "the build mixes"):
        resolve_source(build)
    report = validate_build(build)
    assert any(r.expectation == "schema_version_matches" and not r.success for r in report.results)


def test_merge_refuses_shards_of_two_versions(old, tmp_path):
    version, build = old
    current = make_build(tmp_path / "cur")
    for path, shard in ((build, "0/2"), (current, "1/2")):
        m = json.loads((path / "manifest.json").read_text())
        m["config"]["shard"] = shard
        (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(TokenshiftError, match=rf"schema version {SCHEMA_VERSION}, .* version {version}: a build is "
                                              rf"one version; .* `tokenshift migrate {build} --out NEW_DIR`"):
        merge_builds([build, current], tmp_path / "merged")


def test_resume_under_another_version_is_refused(tmp_path):
    from tokenshift.builders.pipeline.build import CONFIG_FILE, BuildConfig, prepare_out
    from tokenshift.runtime.shards import WORK_DIR

    config = BuildConfig(out=str(tmp_path / "b"))
    (tmp_path / "b" / WORK_DIR).mkdir(parents=True)
    (tmp_path / "b" / WORK_DIR / CONFIG_FILE).write_text(json.dumps(config.identity()))  # no version: before 2.1
    with pytest.raises(TokenshiftError, match="started by a tokenshift writing schema version 1.0 or 2.0"):
        prepare_out(config, overwrite=False)
    (tmp_path / "b" / WORK_DIR / CONFIG_FILE).write_text(json.dumps({**config.identity(),
                                                                    "schema_version": SCHEMA_VERSION}))
    assert prepare_out(config, overwrite=False) == tmp_path / "b"


def test_validation_checks_the_invariants_recipes_trust(tmp_path):
    """topk_overlap against the two id lists, rl_top1_rank_base against t*'s place in base's list, and the lists'
    scalars against the lists."""
    build = make_build(tmp_path / "b")
    assert validate_build(build).ok
    part = sorted((build / "tokens").glob("*.parquet"))[0]
    table = pq.read_table(part)
    rows = table.to_pylist()
    inside = next(i for i, r in enumerate(rows) if r["top1_rl"] in r["topk_base_ids"][1:]
                  and r["topk_base_logp"][0] > r["topk_base_logp"][1])
    rows[inside]["rl_top1_rank_base"] = 1  # t* is below base's top-1, so its rank cannot be 1
    rows[0]["topk_overlap"] = 1.0 if rows[0]["topk_overlap"] < 1 else 0.0
    rows[1]["p_rl_rl_top1"] *= 0.999  # within [0, 1], but not exp(topk_rl_logp[1])
    rows[2]["base_mass_base_topk"] += 2e-5 if rows[2]["base_mass_base_topk"] < 0.5 else -2e-5  # beyond TOPK_SUM_TOL
    write_parquet(pa.Table.from_pylist(rows, schema=schema("tokens")), part)
    refresh_manifest_tables(build)
    failed = {(r.column, r.unexpected_count) for r in validate_build(build).results if not r.success}
    assert ("rl_top1_rank_base", 1) in failed and ("topk_overlap", 1) in failed
    assert ("p_rl_rl_top1", 1) in failed and ("base_mass_base_topk", 1) in failed


def test_a_hub_dataset_of_an_old_version_reads_missing_columns_as_null(monkeypatch):
    """A Hub source has no manifest to read the version from: each view's columns are looked up once opened.
    (The fixture folder stands in for the Hub: the same views, without httpfs.)"""
    import tokenshift.queries.run as run
    from tokenshift.queries.sources import TABLES, Source, preamble_statements

    local = [(t, s) for t, s in preamble_statements(Source("hf", (FIXTURES / "1.0").as_posix(), TABLES, "hub"))
             if "httpfs" not in s and "SECRET" not in s]
    monkeypatch.setattr(run, "preamble_statements", lambda src: local)
    con, src = run.connect(Source("hf", (FIXTURES / "1.0").as_posix(), TABLES, "hub"))
    try:
        assert con.execute("SELECT DISTINCT criterion, mix_weight FROM cross_samples").fetchall() == [("js", 1.0)]
        assert con.execute("SELECT count(p_base_rl_top1) FROM tokens").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM tokens_reallocation").fetchone()[0] > 0
    finally:
        con.close()
