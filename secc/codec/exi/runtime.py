"""Helpers the generated codec modules call (kept tiny: the hot path is in bits.py)."""

from __future__ import annotations

from typing import Any

from secc.codec.errors import DecodeError, EncodeError
from secc.codec.exi.bits import _NOT_XML_ASCII, _NOT_XML_ASCII_STR, _STRINGS, BitReader, BitWriter

__all__ = [
    "EE",
    "ESC",
    "WMISS",
    "BitReader",
    "BitWriter",
    "DecodeError",
    "EmptyBytes",
    "EmptyStr",
    "EncodeError",
    "EncodeWindowMiss",
    "WindowMiss",
    "bad_value",
    "builders",
    "empty_value",
    "ev",
    "ev_special",
    "ewmiss",
    "expect_ee",
    "expect_ee_failed",
    "missing",
    "not_allowed",
    "unexpected",
    "wascii",
    "wbinary",
    "wint",
    "winteger",
    "wmiss",
    "wstarts",
    "wstring",
    "wuint",
]

# special field ids in decode tables
EE = -1
ESC = -2
INVALID = -3
ANY = -4
CHU = -5


class EmptyStr(str):
    """An empty string value that arrived as a second-level EE (EXIficient's encoding).

    Decoding keeps the form so that re-encoding gives the same bytes; an encoder given
    one writes the same form (EXI-NOTES §8).  Plain ``""`` is written as CH("").
    """

    __slots__ = ()


class EmptyBytes(bytes):
    """The binary counterpart of :class:`EmptyStr`."""

    __slots__ = ()


class _Builder:
    """Stands for ``_B_X`` (a plain class with the slots of the generated frozen class
    ``X``) until a decoder first needs it: then makes the class, puts it in the module's
    namespace in its own place and returns an instance; later decodes call the class
    directly.  The decoders set the slots of the plain instance with plain stores and
    then assign ``__class__ = X`` (both classes have the same slots, so CPython allows
    it): a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``, and a slot descriptor's ``__set__`` is a call each."""

    __slots__ = ("cls", "ns")

    def __init__(self, ns: dict[str, Any], cls: type) -> None:
        self.ns = ns
        self.cls = cls

    def __call__(self) -> Any:
        cls = self.cls
        plain = type(f"{cls.__name__}Builder", (), {"__slots__": cls.__slots__})  # type: ignore[attr-defined]
        plain.__module__ = cls.__module__
        self.ns[f"_B_{cls.__name__}"] = plain
        return plain()


def builders(ns: dict[str, Any], classes: tuple[type, ...]) -> None:
    """``_B_X`` for each class ``X`` of a generated module (made on first use)."""
    for cls in classes:
        ns[f"_B_{cls.__name__}"] = _Builder(ns, cls)


def ev(r: BitReader, table: tuple[Any, ...], st: int) -> tuple[int, int, int]:
    """Read one event code in state ``st``; returns (field id, member, next state)."""
    w, ee2, row = table[st]
    e: tuple[int, int, int] = row[r.bits(w)] if w else row[0]
    if e[0] >= EE:
        return e
    return ev_special(r, e, st, ee2)


def ev_special(r: BitReader, e: tuple[int, int, int], st: int, ee2: int) -> tuple[int, int, int]:
    """The escape to second-level events, wildcards and invalid codes."""
    fid = e[0]
    if fid == ESC:
        pos = r.pos
        code = r.bits(ee2) if ee2 else 0
        if code == 0 and e[1] == 0:  # e[1] == 0: EE is not first-level here
            return (EE, 0, st)
        raise DecodeError(
            f"second-level event {code} (xsi:type, xsi:nil, undeclared content) is not supported",
            pos,
        )
    if fid == ANY:
        raise DecodeError("wildcard element content (SE(*)) is not supported", r.pos)
    if fid == CHU:
        raise DecodeError("untyped character content in a mixed type is not supported", r.pos)
    raise DecodeError("invalid event code", r.pos)


def empty_value(r: BitReader, ee2: int, kind: str) -> Any:
    """After the escape bit in a simple element's first state: the 2nd-level EE."""
    pos = r.pos
    code = r.bits(ee2)
    if code != 0:
        raise DecodeError(f"second-level event {code} in a simple value is not supported", pos)
    if kind == "str":
        return EmptyStr("")
    if kind == "bytes":
        return EmptyBytes(b"")
    raise DecodeError(f"empty value for a {kind} element", pos)


def expect_ee(r: BitReader) -> None:
    if r.bit():
        raise DecodeError("expected the end of a simple element", r.pos - 1)


def expect_ee_failed(r: BitReader) -> None:
    raise DecodeError("expected the end of a simple element", r.pos - 1)


def unexpected(r: BitReader, fid: int, names: tuple[str, ...]) -> DecodeError:
    if fid >= 0:
        return DecodeError(f"element {names[fid]} out of order", r.pos)
    return DecodeError("unexpected event", r.pos)


def missing(name: str, w: BitWriter | BitReader) -> Exception:
    if isinstance(w, BitReader):
        return DecodeError(f"required element {name} is missing", w.pos)
    return EncodeError(f"required field {name} is missing", w.bit_position)


def not_allowed(name: str, w: BitWriter) -> EncodeError:
    return EncodeError(
        f"{name} is not allowed here (a choice already taken, too many occurrences, or"
        " too few of a repeated element before it)",
        w.bit_position,
    )


def bad_value(name: str, value: object, why: str, w: BitWriter | BitReader) -> Exception:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    if isinstance(w, BitReader):
        return DecodeError(f"{name}: {shown} {why}", w.pos)
    return EncodeError(f"{name}: {shown} {why}", w.bit_position)


class WindowMiss(Exception):  # noqa: N818 (a signal, not an error)
    """A window decoder (``_dw_X``, see ``codegen/window.py``) does not decode these bits:
    the generic decoder decodes them again (and gives the value or the precise error)."""


# what ends a window decoder: its own miss, a read past the end (a negative shift), an
# index past a table of values or event codes
WMISS = (WindowMiss, ValueError, IndexError)


def wmiss(val: int, q: int) -> Any:
    """A substitution-group member without a window decoder."""
    raise WindowMiss


def wint(val: int, q: int, signed: int) -> tuple[int, int]:
    """An integer simple element of any number of 7-bit groups on the window (``q``:
    the bits left): CH, [the sign,] the groups, EE; (value, the bits left after it)."""
    q -= 1
    if (val >> q) & 1:
        raise WindowMiss
    neg = 0
    if signed:
        q -= 1
        neg = (val >> q) & 1
    result = 0
    shift = 0
    while True:
        q -= 8
        b = (val >> q) & 0xFF
        result |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 7 * 40:
            raise WindowMiss
    q -= 1
    if (val >> q) & 1:
        raise WindowMiss
    return (-result - 1 if neg else result), q


def wascii(b: bytes) -> str:
    """Octets of a string read on the window: ASCII XML characters, else a miss."""
    if not b.isascii() or _NOT_XML_ASCII.search(b):
        raise WindowMiss
    return b.decode("ascii")


class EncodeWindowMiss(Exception):  # noqa: N818 (a signal, not an error)
    """A window encoder (``_ew_X``) does not encode this value (an error, a value it
    does not handle): the generic encoder encodes it in the stream's writer."""


def ewmiss(v: Any) -> tuple[int, int]:
    """A substitution-group member without a window encoder."""
    raise EncodeWindowMiss


def wuint(a: int, value: int) -> int:
    """``a`` followed by an Unsigned Integer (7-bit groups, least significant first).
    Up to five groups (35 bits: meter readings, Unix times) computed without a loop."""
    if value < 0x80:
        return (a << 8) | value
    if value < 0x4000:
        return (a << 16) | ((value & 0x7F) << 8) | 0x8000 | (value >> 7)
    if value < 0x200000:
        return (
            (a << 24)
            | ((value & 0x7F) << 16)
            | 0x808000
            | (((value >> 7) & 0x7F) << 8)
            | (value >> 14)
        )
    if value < 0x10000000:
        return (
            (a << 32)
            | ((value & 0x7F) << 24)
            | (((value >> 7) & 0x7F) << 16)
            | (((value >> 14) & 0x7F) << 8)
            | (value >> 21)
            | 0x80808000
        )
    if value < 0x800000000:
        return (
            (a << 40)
            | ((value & 0x7F) << 32)
            | (((value >> 7) & 0x7F) << 24)
            | (((value >> 14) & 0x7F) << 16)
            | (((value >> 21) & 0x7F) << 8)
            | (value >> 28)
            | 0x8080808000
        )
    b = 0
    n = 0
    while value >= 0x80:
        b = (b << 8) | 0x80 | (value & 0x7F)
        value >>= 7
        n += 8
    return (a << (n + 8)) | (b << 8) | value


def winteger(a: int, value: int) -> int:
    """``a`` followed by an Integer (sign bit, then the magnitude)."""
    if value < 0:
        return wuint((a << 1) | 1, -value - 1)
    return wuint(a << 1, value)


def wstarts(starts: tuple[int, ...], moved: dict[int, int]) -> tuple[int, ...]:
    """A run memo's field starts (``codegen/window.py`` ``_ew_run``) after some fields
    were encoded to another width: ``moved`` maps the index of the field after each of
    them to its change; every start after it moves by that much."""
    out = []
    d = 0
    for j, e in enumerate(starts):
        d += moved.get(j, 0)
        out.append(e + d)
    return tuple(out)


def wstring(a: int, value: str) -> int:
    """``a`` followed by a String of ASCII XML characters (others: a miss)."""
    hit = _STRINGS.get(value)
    if hit is not None:
        return (a << hit[1]) | hit[0]
    if not value.isascii() or _NOT_XML_ASCII_STR.search(value):
        raise EncodeWindowMiss
    n = len(value)
    data = int.from_bytes(value.encode("ascii"), "big")
    if n < 64:
        bits = ((n + 2) << (n << 3)) | data
        if len(_STRINGS) >= 256:
            _STRINGS.clear()
        _STRINGS[value] = (bits, (n + 1) << 3)
        return (a << ((n + 1) << 3)) | bits
    return (wuint(a, n + 2) << (n << 3)) | data


def wbinary(a: int, value: bytes) -> int:
    """``a`` followed by a Binary (the length, then the octets)."""
    n = len(value)
    return (wuint(a, n) << (n << 3)) | int.from_bytes(value, "big")
