"""Strict mapping of parsed TOML onto frozen dataclasses.

``load(cls, data, source)`` builds ``cls`` from a dict (as ``tomllib`` returns it):
every key must be a field, every value must have the field's type (nested dataclasses,
``tuple[X, ...]`` from arrays, ``X | None``, ``Literal`` choices, StrEnums, ``Path``,
numbers), and a ``__post_init__`` may raise ``ValueError`` for range checks.  Any problem
raises :class:`ConfigError` naming the file, the dotted key and the reason, so a station
refuses to start on a typo instead of silently running with a default.

Pure: the caller reads the file (``secc.cli``), this module only checks values.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from secc.errors import ConfigError

T = TypeVar("T")


def load(cls: type[T], data: Any, source: str, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; ``source`` names the file in errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix or 'the file'} must be a table")
    # a field marked ``metadata={"internal": True}`` is filled by the caller, not the file
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(
            f"{source}: unknown key {_key(prefix, unknown[0])} (known keys here: {known})"
        )
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = _key(prefix, name)
        if name not in data:
            no_default = (
                f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            )
            if no_default:
                raise ConfigError(f"{source}: missing required key {key}")
            continue
        kwargs[name] = _convert(_hint(cls, name), data[name], source, key)
    try:
        return cls(**kwargs)
    except ValueError as e:
        raise ConfigError(f"{source}: {prefix or 'config'}: {e}") from e


_HINTS: dict[tuple[type, str], Any] = {}


def _hint(cls: type, name: str) -> Any:
    """``typing.get_type_hints(cls)[name]``, evaluating that one annotation only: a
    station's file names a few of the ~100 keys, and each evaluation compiles its
    annotation (issue 17: ~10M instructions of ``secc run``'s start for all of them).
    The annotation is evaluated as ``get_type_hints`` evaluates a class's: the module's
    names first, then the class's own."""
    hint = _HINTS.get((cls, name))
    if hint is None:
        owner = next(c for c in cls.__mro__ if name in inspect.get_annotations(c))
        module = sys.modules[owner.__module__]

        def one() -> None: ...

        one.__annotations__ = {name: inspect.get_annotations(owner)[name]}
        hint = typing.get_type_hints(one, globalns=dict(vars(owner)), localns=vars(module))
        hint = _HINTS[cls, name] = hint[name]
    return hint


def _key(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _convert(tp: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, source, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(
            errors[0] if len(errors) == 1 else f"{source}: {key}: bad value {value!r}"
        )
    if origin is typing.Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{source}: {key} must be one of {choices}, not {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key} must be an array")
        item = args[0]
        return tuple(_convert(item, v, source, f"{key}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return load(tp, value, source, key)  # type: ignore[arg-type]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            choices = ", ".join(repr(m.value) for m in tp)
            raise ConfigError(f"{source}: {key} must be one of {choices}, not {value!r}") from None
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{source}: {key} must be a path (a string)")
        return Path(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: {key} must be a number, not {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {key} must be an integer, not {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be true or false, not {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key} must be a string, not {value!r}")
        return value
    raise ConfigError(f"{source}: {key}: unsupported type {tp!r}")
