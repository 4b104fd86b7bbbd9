"""The `tokenshift validate` command (heavy imports happen only when it runs)."""

from __future__ import annotations

from pathlib import Path

import click

# great-expectations loads when validation runs
from tokenshift.schemas.report import REPORT_NAME


@click.command("validate")
@click.argument("build_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json-report", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"Where to write the JSON report. Default: BUILD_DIR/{REPORT_NAME} (none for a published version).")
def validate(build_dir: Path, json_report: Path | None) -> None:
    """Check a build's tables against the schema, each other and its manifest; exit 1 if any check fails."""
    # great-expectations loads when validation runs
    from tokenshift.schemas.report import format_summary, report_path, write_report
    from tokenshift.schemas.validate import validate_build

    path = report_path(build_dir, json_report)  # refused before any work when it would overwrite data
    report = validate_build(build_dir)
    click.echo(format_summary(report))
    if path is not None:
        click.echo(f"report: {write_report(report, path)}")
    if not report.ok:
        raise SystemExit(1)
