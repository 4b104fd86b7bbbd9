"""Immutable publishing of builds: a local registry (TARGET/VERSION) or a tagged Hub dataset commit."""

from tokenshift.schemas.registry import resolve_version

__all__ = ["resolve_version"]
