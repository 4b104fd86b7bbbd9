"""The `tokenshift` command line: one click group; each part registers its own commands."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import click

from tokenshift.builders.commands import benchmark, build, merge, migrate, regrade
from tokenshift.builders.cross_commands import cross_sample
from tokenshift.cards.commands import card
from tokenshift.demo import demo
from tokenshift.publish.commands import publish
from tokenshift.queries.commands import query, report, view
from tokenshift.runtime.errors import TokenshiftError
from tokenshift.runtime.files import describe_os_error
from tokenshift.runtime.version import __version__
from tokenshift.schemas.commands import validate
from tokenshift.toy.commands import toy_pair
from tokenshift.toy.experiment_commands import experiment


class _Group(click.Group):
    """A group that prints TokenshiftError as one line and exits 2, with no traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except TokenshiftError as err:
            click.echo(f"Error: {err}", err=True)
            sys.exit(2)
        except OSError as err:  # permission, disk full, read-only: one line naming the path and free space
            click.echo(f"Error: {describe_os_error(err)}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tokenshift")
def cli() -> None:
    """Build, validate, publish and query token-level base-vs-RL shift datasets."""


cli.add_command(toy_pair)
cli.add_command(build)
cli.add_command(benchmark)
cli.add_command(merge)
cli.add_command(regrade)
cli.add_command(migrate)
cli.add_command(cross_sample)
cli.add_command(query)
cli.add_command(report)
cli.add_command(view)
cli.add_command(validate)
cli.add_command(card)
cli.add_command(publish)
cli.add_command(demo)
cli.add_command(experiment)


def main() -> None:
    cli()
