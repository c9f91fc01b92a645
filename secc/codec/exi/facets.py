"""Facet violations: values that fit their EXI representation but not the schema's facets.

The EXI representation of a value is wider than its facets in several places: an integer
range of 1..3 is coded in 2 bits (code 3 stands for 4), a ``maxLength`` is not coded at
all (a string carries its own length), an unsigned integer's varint has no upper bound.
Production peers send such values (a car's ChargingProfileEntryMaxNumberOfPhasesInUse of
4, a back end's 16-character eMAID) and the deployed C and Java codecs accept them, so
the decoder decodes them and *reports* each one as a :class:`Violation`; the caller (the
station core) decides what to do with the value.  ``strict`` decoding refuses them as
before; the encoder is strict unless asked for its lenient mode (round trips of what
was received, tools), which writes any value its representation holds.  Both strict
modes check the same facets (ranges, maxLength), so what decodes strictly encodes
strictly; a length below ``minLength`` is only reported (no reference codec checks it).

What stays a hard :class:`DecodeError` in every mode: whatever has no value to report
(an enumeration index past the last value, a string-table hit, an invalid code point),
and the limits that guard memory and time (a string or binary longer than the input
that holds it, an integer of more than 41 varint groups); the input itself is bounded
by the V2GTP payload limit before it reaches the codec.

The element path of a violation is taken from the decoder's call stack when the
violation happens (each generated decode function keeps the name of the field it reads
in ``_p``): nothing is tracked on the hot path, and the cost is paid by the rare message
that has a violation.
"""

from __future__ import annotations

import sys
from typing import Any, NamedTuple

from secc.codec.errors import DecodeError, EncodeError
from secc.codec.exi.bits import BitReader, BitWriter

_GENERATED = "secc.codec._generated."
MAX_VIOLATIONS = 256  # more than this in one message: refused (each costs a stack walk)


class Violation(NamedTuple):
    """One value outside its facet.

    ``path`` is the element path from the root (``/V2G_Message/Body/PowerDeliveryReq/
    ChargingProfile/ProfileEntry[0]/ChargingProfileEntryMaxNumberOfPhasesInUse``;
    attributes as ``@Id``, repeated elements with their index), ``facet`` one of
    ``minInclusive``, ``maxInclusive``, ``minLength``, ``maxLength``, ``limit`` the
    facet's value, ``value`` the decoded value (for strings and binaries too; ``str()``
    shortens it), ``bit_offset`` where the value ended in the stream.
    """

    path: str
    facet: str
    limit: int
    value: object
    bit_offset: int

    @property
    def element(self) -> str:
        """The local name of the element (or ``@attribute``) that holds the value."""
        last = self.path.rsplit("/", 1)[-1]
        return last.split("[", 1)[0]

    def __str__(self) -> str:
        value: Any = self.value
        shown = f"length {len(value)}" if self.facet.endswith("Length") else _shown(value)
        return f"{self.path}: {shown} violates {self.facet} {self.limit}"

    def as_dict(self) -> dict[str, object]:
        """JSON-ready (traces, the CLI): binary values as hex."""
        value = self.value
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).hex()
        return {"path": self.path, "facet": self.facet, "limit": self.limit, "value": value}


class CheckedReader(BitReader):
    """A reader for lenient decoding: facet violations are collected in ``violations``
    (a plain :class:`BitReader` is strict: the first violation raises)."""

    __slots__ = ("violations",)

    def __init__(self, data: bytes, bit_offset: int = 0) -> None:
        BitReader.__init__(self, data, bit_offset)  # (no super(): one call less)
        self.violations: list[tuple[tuple[str, ...], str, int, object, int]] = []


class LenientWriter(BitWriter):
    """A writer for lenient encoding: values outside their facets are written as long as
    their EXI representation holds them (a plain :class:`BitWriter` refuses them)."""

    __slots__ = ()


def _path() -> tuple[str, ...]:
    """The element path of the value being decoded, from the generated decoders' frames."""
    parts: list[str] = []
    f = sys._getframe(2)
    while f is not None:
        g = f.f_globals
        if g.get("__name__", "").startswith(_GENERATED):
            local = f.f_locals
            p = local.get("_p")
            if isinstance(p, str):
                var = g.get("_REPEATED", {}).get(f.f_code.co_name, {}).get(p)
                if var is not None and isinstance(local.get(var), list):
                    p = f"{p}[{len(local[var])}]"
                parts.append(p)
        f = f.f_back  # type: ignore[assignment]
    return tuple(reversed(parts))


def _record(r: BitReader, name: str, value: object, facet: str, limit: int, why: str) -> None:
    found = getattr(r, "violations", None)
    if found is None:
        raise DecodeError(f"{name}: {_shown(value)} {why}", r.pos)
    if len(found) >= MAX_VIOLATIONS:
        raise DecodeError(f"more than {MAX_VIOLATIONS} facet violations in one message", r.pos)
    found.append((_path(), facet, limit, value, r.pos))


def _shown(value: object) -> str:
    shown = repr(value)
    return shown[:57] + "..." if len(shown) > 60 else shown


def range_violation(r: BitReader, name: str, value: int, lo: int | None, hi: int | None) -> None:
    """A decoded integer outside [lo, hi]: recorded (lenient) or a DecodeError (strict)."""
    if hi is not None and value > hi:
        _record(r, name, value, "maxInclusive", hi, f"is above {hi} (outside [{lo}, {hi}])")
    else:
        assert lo is not None
        _record(r, name, value, "minInclusive", lo, f"is below {lo} (outside [{lo}, {hi}])")


def length_violation(
    r: BitReader, name: str, value: str | bytes, minl: int | None, maxl: int | None
) -> None:
    """A decoded string or binary whose length is outside [minl, maxl]."""
    n = len(value)
    unit = "characters" if isinstance(value, str) else "octets"
    if maxl is not None and n > maxl:
        _record(r, name, value, "maxLength", maxl, f"of {n} {unit} is longer than {maxl} {unit}")
    elif getattr(r, "violations", None) is not None:
        # reported, never refused: strict decoding refuses what the strict encoder
        # refuses, and neither it nor the reference codecs check minLength (valid public
        # -20 vectors carry a 4-byte SessionID where the schema fixes 8)
        assert minl is not None
        _record(r, name, value, "minLength", minl, f"of {n} {unit} is shorter than {minl} {unit}")


def encode_range(
    w: BitWriter,
    name: str,
    value: object,
    lo: int | None,
    hi: int | None,
    rlo: int | None,
    rhi: int | None,
) -> None:
    """An integer the encoder's facet check refused: written anyway by a lenient writer
    when it is an int inside its representation's range [rlo, rhi]; else EncodeError."""
    if (
        type(w) is LenientWriter
        and type(value) is int
        and (rlo is None or value >= rlo)
        and (rhi is None or value <= rhi)
    ):
        return
    raise EncodeError(f"{name}: {_shown(value)} is not an integer in [{lo}, {hi}]", w.bit_position)


def encode_length(w: BitWriter, name: str, value: object, maxl: int | None, kind: str) -> None:
    """A string or binary the encoder's facet check refused: a lenient writer writes any
    length (the length is part of the representation); else EncodeError."""
    ok = isinstance(value, str) if kind == "str" else isinstance(value, (bytes, bytearray))
    if ok and type(w) is LenientWriter:
        return
    what = "characters" if kind == "str" else "octets"
    raise EncodeError(
        f"{name}: {_shown(value)} is not a {kind} of at most {maxl} {what}", w.bit_position
    )


def violations_of(r: BitReader, root: str) -> tuple[Violation, ...]:
    """The violations a :class:`CheckedReader` collected, with paths from ``root``."""
    found = getattr(r, "violations", None) or ()
    return tuple(
        Violation("/" + "/".join((root, *parts)), facet, limit, value, pos)
        for parts, facet, limit, value, pos in found
    )
