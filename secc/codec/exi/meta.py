"""Metadata the generated modules publish about their classes (for XML, JSON, tests)."""

from __future__ import annotations

from typing import Any, NamedTuple


class FieldInfo(NamedTuple):
    """One field of a generated class.

    ``kind`` is ``attr``, ``elem`` or ``value`` (simple content).  ``tinfo`` describes
    the values: ``('int', lo, hi)``, ``('bool',)``, ``('str', minlen, maxlen)``,
    ``('bytes', minlen, maxlen, 'hex'|'b64')``, ``('enum', EnumClass)`` or, for
    elements, ``('elem', ((ns, local, member_tinfo), ...))`` where a member's tinfo is
    one of the above or ``('class', Class)``.
    """

    name: str
    kind: str
    ns: str
    local: str
    optional: bool
    repeated: bool
    max: int  # -1 for unbounded
    tinfo: tuple[Any, ...]


class RootInfo(NamedTuple):
    """A global element (document grammar) or a fragment element."""

    ns: str
    local: str
    cls: type | None  # None for simple-typed elements
    encode: Any  # (BitWriter, value) -> None, or None for the relaxed grammar
    decode: Any  # (BitReader) -> value
    tinfo: Any  # simple-typed: the value tinfo; 'relaxed' for the relaxed grammar
