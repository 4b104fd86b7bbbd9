"""The `tokenshift publish` command (heavy imports happen only when it runs)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("publish")
@click.argument("build_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--to", "target", required=True, metavar="TARGET",
              help="hf://datasets/ORG/NAME, or a local registry folder (one subfolder per version).")
@click.option("--version", "version", required=True, help="Version name, e.g. v1.0.0; never reused.")
@click.option("--dry-run", is_flag=True, help="Print what would be published (files, sizes, tag); change nothing.")
def publish(build_dir: Path, target: str, version: str, dry_run: bool) -> None:
    """Validate BUILD_DIR and publish it, with its card and manifest, as an immutable VERSION of TARGET.

    The Hub token comes from HF_TOKEN or `hf auth login`; it is never a flag and never printed.
    """
    # great-expectations and huggingface_hub load when publishing runs
    from tokenshift.publish.targets import publish_to

    publish_to(build_dir, target, version, dry_run=dry_run, echo=click.echo)
