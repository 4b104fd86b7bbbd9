"""The `tokenshift card` command (heavy imports happen only when it runs)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("card")
@click.argument("build_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--license", "license_", default="apache-2.0", show_default=True,
              help="License identifier for the card's metadata (a Hub license id).")
@click.option("--repo-id", default=None, metavar="ORG/NAME",
              help="Hub repository the card's loading lines name (default: a placeholder).")
@click.option("--force", is_flag=True, help="Replace a README.md that `tokenshift card` did not write.")
def card(build_dir: Path, license_: str, repo_id: str | None, force: bool) -> None:
    """Write BUILD_DIR/README.md: a Hugging Face dataset card with provenance, schemas, figures and loading lines."""
    # DuckDB and matplotlib load when the card is written
    from tokenshift.cards.card import write_card

    path = write_card(build_dir, license=license_, repo_id=repo_id, force=force)
    click.echo(f"dataset card written to {path}")
