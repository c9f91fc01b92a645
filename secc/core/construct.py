"""Positional constructors for the frozen, slotted dataclasses the charging loop builds.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` and
takes keywords: for a CurrentDemandRes (14 fields) that is most of what the session core
spends per loop message.  :func:`builder` gives a function that takes the named fields
positionally (the others get their defaults) and makes a plain object with the class's
slots, filled by plain stores, then given the class (CPython allows that between
classes with the same slots): the same object as the dataclass's constructor makes
(equal, same type, frozen), built several times faster.  The loop uses it only for
values it already checked; ``tests/core/test_construct.py`` compares it with the
dataclass's own constructor.  A class that is not a plain frozen slotted dataclass (a
``__post_init__``, no slots, a default factory) gets its own constructor behind the same
signature instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

_BUILDERS: dict[tuple[type, tuple[str, ...]], Callable[..., Any]] = {}


def builder(cls: type, *names: str) -> Callable[..., Any]:
    """``build(*values)``: an instance of ``cls`` with the fields ``names`` set to
    ``values`` (in that order) and its other fields to their defaults; one function per
    class and names, made on first use.  Keep what it returns: the look-up costs."""
    key = (cls, names)
    hit = _BUILDERS.get(key)
    if hit is None:
        hit = _BUILDERS[key] = _make(cls, names)
    return hit


class Builders(dict[type, Callable[..., Any]]):
    """The builders of ``names`` by class (``Builders(*names)[cls](*values)``): for a
    response that has the same fields in several schema modules (-2 and DIN), looked up
    by the class alone on the hot path."""

    def __init__(self, *names: str) -> None:
        super().__init__()
        self.names = names

    def __missing__(self, cls: type) -> Callable[..., Any]:
        build = self[cls] = builder(cls, *self.names)
        return build


def _make(cls: type, names: tuple[str, ...]) -> Callable[..., Any]:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [n for n in names if n not in fields]
    if unknown or len(set(names)) != len(names):
        raise TypeError(f"{cls.__name__}: unknown or repeated fields {names}")
    missing = [f for n, f in fields.items() if n not in names]
    for f in missing:
        if f.default is dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name} has no default: name it")
    args = ", ".join(f"v{i}" for i in range(len(names)))
    plain = (
        "__slots__" in vars(cls)
        and cls.__bases__ == (object,)
        and not hasattr(cls, "__post_init__")
        and all(f.init for f in fields.values())
    )
    ns: dict[str, Any] = {"_cls": cls}
    lines = [f"def build({args}):"]
    if plain:
        # a plain object with the class's slots (same names, same order: CPython lets
        # it take the class), its slots set by plain stores, then given the class
        slots = cls.__slots__  # type: ignore[attr-defined]
        ns["_plain"] = type(f"{cls.__name__}Plain", (), {"__slots__": slots})
        lines.append("    o = _plain()")
        values = [(n, f"v{i}") for i, n in enumerate(names)]
        for f in missing:
            ns[f"_d_{f.name}"] = f.default
            values.append((f.name, f"_d_{f.name}"))
        lines += [f"    o.{n} = {v}" for n, v in values]
        lines += ["    o.__class__ = _cls", "    return o"]
    else:
        kwargs = ", ".join(f"{n}=v{i}" for i, n in enumerate(names))
        lines.append(f"    return _cls({kwargs})")
    # straight-line code, as dataclasses make their own __init__: no loop, no keyword
    # parsing; the source holds only field names (identifiers of a dataclass) and v<i>
    exec("\n".join(lines), ns)  # noqa: S102 - generated from field names only
    build: Callable[..., Any] = ns["build"]
    build.__qualname__ = build.__name__ = f"build_{cls.__name__}"
    return build
