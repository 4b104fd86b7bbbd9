"""Python API arguments checked like the command line's: a wrong type is a one-line TokenshiftError, not a TypeError."""

from __future__ import annotations

import dataclasses
import numbers
import os
import types
import typing

from tokenshift.runtime.errors import TokenshiftError

_KINDS = {int: "an integer", float: "a number", str: "text", bool: "True or False", type(None): "None"}


def _fits(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint in (str, bool, type(None)):
        return isinstance(value, hint)
    if origin is tuple:
        args = typing.get_args(hint)
        return isinstance(value, (tuple, list)) and all(_fits(v, args[0]) for v in value)
    return True  # other annotations are not checked here


def _kind(hint) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_kind(arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return f"a list of {_kind(typing.get_args(hint)[0]).removeprefix('an ').removeprefix('a ')}s"
    return _KINDS.get(hint, getattr(hint, "__name__", str(hint)))


def check_field_types(config) -> None:
    """Refuse a dataclass field whose value is not of its annotated type, naming the flag that sets it."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if not _fits(value, hints[field.name]):
            raise TokenshiftError(f"--{field.name.replace('_', '-')} must be {_kind(hints[field.name])} "
                                  f"(got {value!r}) in {type(config).__name__}")


def check_path(value, what: str) -> str:
    """`value` as a path string: str or os.PathLike of str; anything else is refused in one line."""
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(text, str):
        raise TokenshiftError(f"{what} must be a path or text (got {type(value).__name__} {value!r:.60}): "
                              "pass a str or pathlib.Path")
    return text


def default_of(config_class, name: str):
    """The default of `config_class`'s field `name`: where a command-line option takes its default from."""
    for field in dataclasses.fields(config_class):
        if field.name == name:
            if field.default is not dataclasses.MISSING:
                return field.default
            if field.default_factory is not dataclasses.MISSING:
                return field.default_factory()
            raise ValueError(f"{config_class.__name__}.{name} has no default")
    raise ValueError(f"{config_class.__name__} has no field {name!r}")
