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


# --- the plain TOML station files are written in, without tomllib ---------------------------

_BARE_KEY = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_DIGITS = frozenset("0123456789")
_VALUE_END = frozenset(" ,]#")


class _Unsure(Exception):  # noqa: N818 - not an error: the caller falls back to tomllib
    """Something the plain reader does not read: ``tomllib`` reads the file."""


def read_plain_toml(text: str) -> dict[str, Any] | None:
    """``tomllib.loads(text)`` for the plain TOML station files are written in, without
    importing ``tomllib`` (issue 17: its import, with the regular expressions it compiles,
    is ~10M instructions of ``secc run``'s start); None for anything else, which the
    caller gives to ``tomllib`` (its result or its error, as before).

    Read here, one line at a time: comments; ``[a.b]`` and ``[[a.b]]`` headers of bare
    keys, each table defined once (no super-table after its sub-table); ``key = value``
    with a bare key defined once per table; values: basic strings without escapes,
    decimal integers, decimal fractions (``-1.5``), ``true``, ``false``, and one-line
    arrays of those.  A line with anything else (a tab, a non-printable or ``\\r``,
    literal or multi-line strings, escapes, exponents, ``_`` in numbers, dates, inline
    tables, dotted or quoted keys, spaces in headers, arrays over several lines) gives
    None.  ``tests/test_plain_toml.py`` checks the result equals tomllib's (values and
    types) on the project's files and on mutations of them."""
    try:
        return _read_plain(text)
    except _Unsure:
        return None


def _read_plain(text: str) -> dict[str, Any]:
    root: dict[str, Any] = {}
    table = root
    arrays: set[int] = set()  # the ids of lists made by [[...]] headers
    for raw in text.split("\n"):
        if not raw.isprintable():  # (tabs, \r, control and other non-printing characters)
            raise _Unsure
        line = raw.lstrip(" ")
        if not line or line[0] == "#":
            continue
        if line[0] == "[":
            many = line.startswith("[[")
            close = line.find("]]" if many else "]")
            if close < 0:
                raise _Unsure
            _rest(line, close + (2 if many else 1))
            path = line[2 if many else 1 : close].split(".")
            table = _header(root, path, many, arrays)
            continue
        key, equals, value = line.partition("=")
        key = key.rstrip(" ")
        if not equals or not _bare(key) or key in table:
            raise _Unsure
        value = value.lstrip(" ")
        table[key], end = _value(value, 0)
        _rest(value, end)
    return root


def _bare(key: str) -> bool:
    return bool(key) and all(c in _BARE_KEY for c in key)


def _rest(line: str, start: int) -> None:
    """Only spaces and a comment after ``start``."""
    rest = line[start:].lstrip(" ")
    if rest and rest[0] != "#":
        raise _Unsure


def _header(root: dict[str, Any], path: list[str], many: bool, arrays: set[int]) -> dict[str, Any]:
    """The table a ``[path]`` (``many``: ``[[path]]``) header opens."""
    node = root
    for key in path[:-1]:
        if not _bare(key):
            raise _Unsure
        child = node.setdefault(key, {})
        if isinstance(child, list) and id(child) in arrays:
            child = child[-1]
        if not isinstance(child, dict):
            raise _Unsure
        node = child
    last = path[-1]
    if not _bare(last):
        raise _Unsure
    made: dict[str, Any] = {}
    if many:
        items = node.setdefault(last, [])
        if not isinstance(items, list) or (items and id(items) not in arrays):
            raise _Unsure
        arrays.add(id(items))
        items.append(made)
    elif last in node:
        raise _Unsure
    else:
        node[last] = made
    return made


def _value(s: str, i: int) -> tuple[Any, int]:
    """The value starting at ``s[i]`` and the index after it."""
    if i >= len(s):
        raise _Unsure
    c = s[i]
    if c == '"':
        close = s.find('"', i + 1)
        if close < 0 or "\\" in s[i + 1 : close]:
            raise _Unsure
        return s[i + 1 : close], close + 1
    if c == "[":
        items: list[Any] = []
        i += 1
        while True:
            while i < len(s) and s[i] == " ":
                i += 1
            if i < len(s) and s[i] == "]":
                return items, i + 1
            if i >= len(s) or s[i] == "[":
                raise _Unsure
            item, i = _value(s, i)
            items.append(item)
            while i < len(s) and s[i] == " ":
                i += 1
            if i < len(s) and s[i] == ",":
                i += 1
            elif i < len(s) and s[i] == "]":
                return items, i + 1
            else:
                raise _Unsure
    end = i
    while end < len(s) and s[end] not in _VALUE_END:
        end += 1
    word = s[i:end]
    if word == "true":
        return True, end
    if word == "false":
        return False, end
    digits = word[1:] if word[:1] == "-" else word
    whole, point, fraction = digits.partition(".")
    if not whole or not all(d in _DIGITS for d in whole) or (whole[0] == "0" and whole != "0"):
        raise _Unsure
    if not point:
        return int(word), end
    if not fraction or not all(d in _DIGITS for d in fraction):
        raise _Unsure
    return float(word), end
