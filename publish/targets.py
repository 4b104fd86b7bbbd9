"""The publish targets, one registry: each recognises its --to form and publishes a prepared build there."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tokenshift.publish.local import publish_local


@dataclass(frozen=True)
class Target:
    """A kind of destination: `parse` turns --to into its own destination (None: not this kind), `publish` ships."""

    name: str
    parse: Callable[[str], object | None]
    publish: Callable[..., object]  # (build_dir, destination, version, dry_run=, echo=)


def _targets() -> tuple[Target, ...]:
    # huggingface_hub loads with the Hub target, only when publishing runs
    from tokenshift.publish.hub import parse_hub_target, publish_hub

    return (Target("hub", parse_hub_target, publish_hub),
            Target("local", lambda text: text, publish_local))  # the fallback: any other --to is a folder


def publish_to(build_dir: str | Path, target: str, version: str, dry_run: bool = False,
               echo: Callable[[str], None] = print):
    """Publish through the first target whose `parse` accepts `target`."""
    for kind in _targets():
        destination = kind.parse(target)
        if destination is not None:
            return kind.publish(build_dir, destination, version, dry_run=dry_run, echo=echo)
    raise AssertionError("the local target accepts every --to")
