"""Schema-informed EXI codec for ISO 15118-2, DIN SPEC 70121 and the appHandshake.

The profile is the one ISO 15118 fixes out of band (EXI-NOTES §2): header byte ``0x80``,
bit-packed, non-strict grammars, no string-table hits, no grammar learning.  The code
that does the work is generated from the XSDs (``secc.codec.codegen``) into
``secc.codec._generated``; this module is the public face::

    msg = decode(data, "iso2")          # -> V2G_Message
    data = encode(msg)                  # the same bytes for any valid stream
    frag = encode_fragment(element)     # EXI fragment for xmldsig digests
    got = decode_checked(data, "iso2")  # -> Decoded(root, message, violations)
    data = encode(got.message, lenient=True)  # the received bytes again

Every malformed input raises :class:`DecodeError`; every message that cannot be encoded
raises :class:`EncodeError`; both derive from :class:`CodecError`.

Decoding is liberal: a value that fits its EXI representation but not the schema's
facets (a range, a length) is decoded and reported as a :class:`Violation`
(:func:`decode_checked` returns them; ``strict=True`` refuses them as a DecodeError).
Encoding is strict: such a value is an EncodeError, unless ``lenient=True`` (round
trips of received messages, tools).  See :mod:`secc.codec.exi.facets`.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, NamedTuple

from secc.codec.errors import CodecError, DecodeError, EncodeError
from secc.codec.exi.bits import BitReader, BitWriter
from secc.codec.exi.facets import CheckedReader, LenientWriter, Violation, violations_of
from secc.codec.exi.fragment import decode_relaxed, encode_relaxed
from secc.codec.exi.meta import RootInfo

__all__ = [
    "SCHEMAS",
    "CodecError",
    "DecodeError",
    "Decoded",
    "EncodeError",
    "Violation",
    "decode",
    "decode_checked",
    "decode_document",
    "decode_fragment",
    "encode",
    "encode_fragment",
    "schema_module",
]

HEADER = 0x80

# public schema names -> generated module
SCHEMAS: dict[str, str] = {
    "apphand": "apphand",
    "iso2": "iso2",
    "din": "din",
    "xmldsig": "xmldsig",
    "iso20-common": "iso20_common",
    "iso20-ac": "iso20_ac",
    "iso20-dc": "iso20_dc",
    "iso20-wpt": "iso20_wpt",
    "iso20-acdp": "iso20_acdp",
}
_ALIASES = {"appHandshake": "apphand", "apphandshake": "apphand", "iso-2": "iso2"}
# the generated module names (what _schema_of finds) name their schema too
_ALIASES.update({module: name for name, module in SCHEMAS.items() if module != name})
_MODULES: dict[str, ModuleType] = {}


def schema_module(schema: str) -> ModuleType:
    """The generated module of a schema name (``apphand``, ``iso2``, ``din``, ``xmldsig``,
    ``iso20-common``, ``iso20-ac``, ``iso20-dc``, ``iso20-wpt``, ``iso20-acdp``)."""
    key = _ALIASES.get(schema, schema)
    if key not in SCHEMAS:
        raise ValueError(f"unknown schema {schema!r}: use one of {', '.join(SCHEMAS)}")
    mod = _MODULES.get(key)
    if mod is None:
        mod = importlib.import_module(f"secc.codec._generated.{SCHEMAS[key]}")
        _MODULES[key] = mod
    return mod


def _schema_of(value: object) -> str:
    module = type(value).__module__
    prefix = "secc.codec._generated."
    if not module.startswith(prefix):
        raise EncodeError(f"{type(value).__name__} is not a generated message class")
    return module[len(prefix) :]


def _code_width(n: int) -> int:
    return (n - 1).bit_length() if n > 1 else 0


class Decoded(NamedTuple):
    """What :func:`decode_checked` returns: the root element's info, its value, and the
    facet violations found in it (empty for a valid message)."""

    root: RootInfo
    message: Any
    violations: tuple[Violation, ...]


def _reader(data: bytes, strict: bool = True) -> BitReader:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"expected bytes, got {type(data).__name__}", 0)
    if len(data) == 0:
        raise DecodeError("empty input: no EXI header", 0)
    if data[0] != HEADER:
        raise DecodeError(
            f"EXI header {data[0]:#04x}: ISO 15118 streams start with 0x80 "
            "(no cookie, no options, version 1)",
            0,
        )
    return BitReader(bytes(data), 8) if strict else CheckedReader(bytes(data), 8)


def _check_end(r: BitReader) -> None:
    """After ED: the stream is padded to the octet; whole octets after that must be zero.

    Real EVs append a zero octet (a Tesla does, in DIN and ISO-2) and are accepted; any
    other content after the end is not a stream the schema describes (trailing garbage,
    a second message run together with the first) and is refused.  One integer mask.
    """
    rest = r.end - ((r.pos + 7) & ~7)
    if rest > 0 and r.val & ((1 << rest) - 1):
        first = r.end - rest
        while not (r.val >> (r.end - first - 8)) & 0xFF:
            first += 8
        raise DecodeError(
            f"{rest // 8} octets after the end of the stream, not all zero "
            f"(octet {first // 8} is {(r.val >> (r.end - first - 8)) & 0xFF:#04x}); "
            "only trailing zero octets are tolerated",
            first,
        )


_BY_CLASS: dict[int, dict[type, list[tuple[int, RootInfo]]]] = {}


def _by_class(roots: tuple[RootInfo, ...]) -> dict[type, list[tuple[int, RootInfo]]]:
    """Class -> the elements of that type, per element table (built once)."""
    table = _BY_CLASS.get(id(roots))
    if table is None:
        table = {}
        for i, r in enumerate(roots):
            if r.cls is not None:
                table.setdefault(r.cls, []).append((i, r))
        _BY_CLASS[id(roots)] = table
    return table


def _pick(
    roots: tuple[RootInfo, ...], value: object, name: str | None, what: str
) -> tuple[int, RootInfo]:
    if name is not None:
        ns, _, local = name[1:].partition("}") if name.startswith("{") else ("", "", name)
        hits = [(i, r) for i, r in enumerate(roots) if r.local == local and (not ns or r.ns == ns)]
    else:
        hits = _by_class(roots).get(type(value), [])
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise EncodeError(
            f"no {what} element {'named ' + name if name else 'for ' + type(value).__name__}"
        )
    names = ", ".join(f"{{{r.ns}}}{r.local}" for _, r in hits)
    raise EncodeError(
        f"{type(value).__name__} is the type of several {what} elements ({names}): pass name="
    )


def decode_checked(
    data: bytes, schema: str, *, fragment: bool = False, strict: bool = False
) -> Decoded:
    """Decode a whole EXI stream (``fragment=True``: an EXI fragment) of ``schema`` and
    report the facet violations in it, with their element paths.

    ``strict=True`` refuses the first violation with a :class:`DecodeError` instead (the
    codec's behaviour before violations were reported).  Zero octets after the padded
    end are ignored, any other trailing content is a DecodeError.
    """
    r = _reader(data, strict)
    root, value = _fragment(r, schema) if fragment else _document(r, schema)
    return Decoded(root, value, violations_of(r, root.local))


def _document(r: BitReader, schema: str) -> tuple[RootInfo, Any]:
    mod = schema_module(schema)
    roots: tuple[RootInfo, ...] = mod.DOCUMENT
    code = r.bits(_code_width(len(roots) + 1))
    if code >= len(roots):
        raise DecodeError("document content SE(*) (an undeclared root) is not supported", 8)
    root = roots[code]
    try:
        value = root.decode(r)
    except CodecError as e:
        e.at(root.local)
        raise
    _check_end(r)
    return root, value


def decode_document(data: bytes, schema: str, *, strict: bool = False) -> tuple[RootInfo, Any]:
    """Decode a whole EXI stream; returns the root element's info and its value (facet
    violations are accepted and not reported: :func:`decode_checked` reports them)."""
    return _document(_reader(data, strict), schema)


# schema name as given -> (its document roots, the width of the root event code), from
# the first stream of that name decoded: decode's usual call looks up nothing else
_DOC_ROOTS: dict[str, tuple[tuple[RootInfo, ...], int]] = {}


def decode(data: bytes, schema: str, *, strict: bool = False) -> Any:
    """Decode an EXI stream of ``schema``; zero octets after the padded end are ignored,
    any other trailing content is a :class:`DecodeError`.  Values outside their facets
    are accepted (``strict=True``: refused); :func:`decode_checked` reports them."""
    known = _DOC_ROOTS.get(schema)
    if known is not None and type(data) is bytes and data and data[0] == HEADER:
        # the usual call (_reader's checks passed, the schema known): _document inline
        r = BitReader(data, 8) if strict else CheckedReader(data, 8)
        roots, width = known
        code = r.bits(width)
        if code < len(roots):
            root = roots[code]
            try:
                value = root.decode(r)
            except CodecError as e:
                e.at(root.local)
                raise
            _check_end(r)
            return value
    value = _document(_reader(data, strict), schema)[1]
    if known is None:
        roots = schema_module(schema).DOCUMENT
        _DOC_ROOTS[schema] = (roots, _code_width(len(roots) + 1))
    return value


# class -> (the writer's first bits: sentinel, header and root event code; the root; the
# class's identity cache of encodings, if it has one): a class that is the type of
# exactly one global element of its own schema
_ROOT_BY_CLASS: dict[type, tuple[int, RootInfo, dict[int, Any] | None]] = {}
# id -> (message, its stream): the last messages encoded whose encodings the class's
# identity cache holds (frozen, verified immutable), sent again by the charging loop
_STREAMS: dict[int, tuple[object, bytes]] = {}


def encode(
    message: object, schema: str | None = None, name: str | None = None, *, lenient: bool = False
) -> bytes:
    """Encode ``message`` as a whole EXI stream (header 0x80, padded to the octet).

    Values outside their facets are an :class:`EncodeError`; ``lenient=True`` writes
    them when their EXI representation holds them (what a lenient decode accepted
    re-encodes to the same bytes): for received messages and tools, never for the
    station's own responses."""
    if schema is None and name is None and not lenient:
        known = _ROOT_BY_CLASS.get(type(message))
        if known is not None:  # the usual call: no look-up of the schema and the root
            done = _STREAMS.get(id(message))
            if done is not None and done[0] is message:
                return done[1]
            w = BitWriter()
            w.acc = known[0]
            try:
                known[1].encode(w, message)
            except CodecError as e:
                e.at(known[1].local)
                raise
            data = w.getvalue()
            kept = known[2]
            if kept is not None:
                entry = kept.get(id(message))
                if entry is not None and entry[0] is message:
                    if len(_STREAMS) >= 64:
                        _STREAMS.clear()
                    _STREAMS[id(message)] = (message, data)
            return data
    mod = schema_module(schema or _schema_of(message))
    roots: tuple[RootInfo, ...] = mod.DOCUMENT
    index, root = _pick(roots, message, name, "global")
    w = LenientWriter() if lenient else BitWriter()
    w.bits(HEADER, 8)
    w.bits(index, _code_width(len(roots) + 1))
    if schema is None and name is None and not lenient:
        caches = getattr(mod, "_ECD", {})
        _ROOT_BY_CLASS[type(message)] = (w.acc, root, caches.get(type(message)))
    try:
        root.encode(w, message)
    except CodecError as e:
        e.at(root.local)
        raise
    return w.getvalue()


def encode_fragment(
    element: object,
    schema: str | None = None,
    name: str | None = None,
    *,
    lenient: bool = False,
) -> bytes:
    """Encode one element as an EXI fragment (what xmldsig digests and signatures cover).

    Signed ISO 15118-2 elements are fragments of the full ISO-2 schema set
    (``schema="iso2"``, the default for ISO-2 classes); a SignedInfo is a fragment of
    xmldsig alone (``schema="xmldsig"``, the default for xmldsig classes).  ``name`` picks
    the element where a class is the type of several (``"ContractSignatureCertChain"``).
    ``lenient``: as for :func:`encode` (the digest of a received element covers what
    was received, facet violations included).
    """
    mod = schema_module(schema or _schema_of(element))
    roots: tuple[RootInfo, ...] = mod.FRAGMENT
    index, root = _pick(roots, element, name, "fragment")
    n = len(roots)
    wbits = _code_width(n + 2)
    w = LenientWriter() if lenient else BitWriter()
    w.bits(HEADER, 8)
    w.bits(index, wbits)
    try:
        if root.tinfo == "relaxed":
            encode_relaxed(w, element, mod, n)
        else:
            root.encode(w, element)
    except CodecError as e:
        e.at(root.local)
        raise
    w.bits(n + 1, wbits)  # ED
    return w.getvalue()


def decode_fragment(
    data: bytes, schema: str = "iso2", *, strict: bool = False
) -> tuple[RootInfo, Any]:
    """Decode an EXI fragment holding one element; returns its info and value (facet
    violations as in :func:`decode`)."""
    return _fragment(_reader(data, strict), schema)


def _fragment(r: BitReader, schema: str) -> tuple[RootInfo, Any]:
    mod = schema_module(schema)
    roots: tuple[RootInfo, ...] = mod.FRAGMENT
    n = len(roots)
    wbits = _code_width(n + 2)
    code = r.bits(wbits)
    if code >= n:
        raise DecodeError("fragment holds no declared element", 8)
    root = roots[code]
    try:
        relaxed = root.tinfo == "relaxed"
        value = decode_relaxed(r, root, mod, n) if relaxed else root.decode(r)
    except CodecError as e:
        e.at(root.local)
        raise
    pos = r.pos
    if r.bits(wbits) != n + 1:
        raise DecodeError("expected ED after the fragment's element", pos)
    _check_end(r)
    return root, value
