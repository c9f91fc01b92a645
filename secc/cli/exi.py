"""``secc exi``: decode EXI to XML or JSON and encode it back, for lab engineers.

::

    secc exi decode [--schema SCHEMA] [--fragment ELEMENT] [--json] INPUT [INPUT ...]
    secc exi encode [--schema SCHEMA] [--fragment] [--v2gtp] FILE_OR_- [FILE_OR_- ...]

SCHEMA is one of ``apphand``, ``iso2``, ``din``, ``iso20-common``, ``iso20-ac``,
``iso20-dc``, ``iso20-wpt``, ``iso20-acdp`` (and ``xmldsig`` for fragments).

Every argument is one message.  A ``decode`` INPUT is hex (whitespace allowed inside the
argument: quote it), ``@FILE`` (binary EXI or hex text) or ``-`` (the same read from
stdin).  A V2GTP header (``01 FE`` + payload type + 4-byte length) in front of the EXI is
checked and removed; binary input may hold several V2GTP frames back to back (a TCP
stream saved from Wireshark), each decoded as a message of its own.  The schema comes, in
this order, from ``--schema``, from the V2GTP payload type (0x8002 ``iso20-common``,
0x8003 ``iso20-ac``, 0x8004 ``iso20-dc``, 0x8005 ``iso20-acdp``, 0x8006 ``iso20-wpt``,
ISO 15118-20 Table 13), or by trial decoding (0x8001 carries the appHandshake, ISO-2 and
DIN alike: a trial among those three).  A trial keeps the schemas the stream decodes
with and re-encodes to the same bytes; when several fit (an 18-byte -20
AuthorizationReq is also a valid ACDP message) the first in the order of ``SCHEMAS`` is
taken, and the stderr line names the others.  Every guess is reported on stderr.  When
the stream does not decode with the ``--schema`` given, the error names the schemas it
does decode with.

``--fragment ELEMENT`` decodes an EXI fragment (what an xmldsig digest or signature
covers: ``SignedInfo``, ``AuthorizationReq``, ``SignedInstallationData``, ...); the
element name picks the schemas to try (``*``: any element); a SignedInfo is a fragment of
``xmldsig`` alone, as ISO 15118-2 and -20 sign it.  ``encode --fragment`` encodes the root
element of the XML as a fragment.

``encode`` reads XML (or the JSON form, when the text starts with ``{``) and prints the
EXI as hex, one line per input, with ``--v2gtp`` behind the V2GTP header of its payload
type.  Without ``--schema`` the schema is the one declaring the root (the XML root's
namespace and name; the JSON form's root key).  For every valid stream, ``decode`` then
``encode`` gives back the same bytes.

Several messages: XML documents are each preceded by a ``<!-- secc exi: message N ...
-->`` line, JSON forms are printed one per line (JSON Lines); a message that fails is
reported and the others are still processed.  Every error is one stderr line starting
``secc exi: error:``.  Exit codes: 0 ok, 1 an input is not a valid stream or document,
2 usage error.  A closed output pipe (``| head``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import json
import os
import string
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from lxml import etree

from secc import codec
from secc.codec.exi.meta import RootInfo
from secc.codec.xml import from_json, from_xml, to_json, to_xml
from secc.v2gtp import PayloadType, encode_frame

# the document schemas, in the order a trial prefers them (the rarest last)
SCHEMAS = (
    "apphand",
    "iso2",
    "din",
    "iso20-common",
    "iso20-ac",
    "iso20-dc",
    "iso20-wpt",
    "iso20-acdp",
)
# fragments: xmldsig first (a SignedInfo is signed as a fragment of xmldsig alone)
FRAGMENT_SCHEMAS = ("xmldsig", *SCHEMAS)
# V2GTP payload type -> schema (ISO 15118-20 Table 13); 0x8001 is ambiguous
BY_PAYLOAD_TYPE: dict[int, str] = {
    PayloadType.ISO20_COMMON: "iso20-common",
    PayloadType.ISO20_AC: "iso20-ac",
    PayloadType.ISO20_DC: "iso20-dc",
    PayloadType.ISO20_ACDP: "iso20-acdp",
    PayloadType.ISO20_WPT: "iso20-wpt",
}
PAYLOAD_TYPE_OF: dict[str, int] = {schema: int(t) for t, schema in BY_PAYLOAD_TYPE.items()}
PAYLOAD_TYPE_OF.update(dict.fromkeys(("apphand", "iso2", "din"), int(PayloadType.EXI)))
_EXI_8001 = ("apphand", "iso2", "din")
_HEX = set(string.hexdigits)

EPILOG = """\
Every error is one line on stderr starting "secc exi: error:"; the schema used is
reported on stderr whenever it was not given by --schema.
exit codes: 0 ok, 1 an input is not a valid stream / document (the other inputs are
still processed), 2 usage error (bad option, unreadable file, bad hex).
A closed output pipe (secc exi decode ... | head -1) ends the command quietly."""


class UsageError(Exception):
    """A bad argument (exit 2)."""


class InputError(Exception):
    """The input is not what it should be (exit 1)."""


class _Parser(argparse.ArgumentParser):
    """argparse whose errors go out with the command's one prefix (``secc exi: error:``)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(message)


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="Decode EXI (ISO 15118-20, ISO 15118-2, DIN 70121, appHandshake) and back.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    dec = sub.add_parser(
        "decode",
        help="EXI (hex, @FILE or -; V2GTP frames allowed) -> XML/JSON",
        description="Decode EXI streams (one per INPUT) to XML or JSON.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dec.add_argument(
        "--schema",
        choices=FRAGMENT_SCHEMAS,
        metavar="SCHEMA",
        help="one of " + ", ".join(FRAGMENT_SCHEMAS) + " (default: from the V2GTP payload "
        "type, else guessed by trial decoding in the order " + ", ".join(SCHEMAS) + "; "
        "the guess is reported on stderr)",
    )
    dec.add_argument(
        "--fragment",
        metavar="ELEMENT",
        help="decode an EXI fragment holding ELEMENT (e.g. SignedInfo, AuthorizationReq, "
        "SignedInstallationData; * for any) instead of a whole message (default: whole "
        "messages)",
    )
    dec.add_argument("--json", action="store_true", help="print the JSON form (default: XML)")
    dec.add_argument(
        "--strict",
        action="store_true",
        help="refuse values outside the schema's facets (default: decode them as sent, "
        "as the station does, with one warning line each on stderr)",
    )
    dec.add_argument(
        "data",
        nargs="+",
        metavar="INPUT",
        help="one message each: hex (quote it if it holds spaces), @FILE (binary or hex "
        "text) or - for stdin",
    )
    enc = sub.add_parser(
        "encode",
        help="XML or JSON (FILE or - for stdin) -> EXI hex",
        description="Encode XML or JSON documents (one per FILE) to EXI hex, one line each.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    enc.add_argument(
        "--schema",
        choices=FRAGMENT_SCHEMAS,
        metavar="SCHEMA",
        help="one of " + ", ".join(FRAGMENT_SCHEMAS) + " (default: the schema declaring the "
        "root element, from its namespace)",
    )
    enc.add_argument(
        "--fragment",
        action="store_true",
        help="encode the root element as an EXI fragment (default: a whole message)",
    )
    enc.add_argument(
        "--v2gtp",
        action="store_true",
        help="print the V2GTP frame, header + EXI (default: the EXI alone)",
    )
    enc.add_argument(
        "--lenient",
        action="store_true",
        help="write values outside the schema's facets as they are, to rebuild what a peer "
        "sent (default: refused, as the station encodes its own messages)",
    )
    enc.add_argument("source", nargs="+", metavar="FILE_OR_-", help="XML or JSON file, - for stdin")
    return parser


# ----------------------------------------------------------------------------- input


def _hex_bytes(text: str, what: str) -> bytes:
    compact = "".join(text.split())
    if compact[:2].lower() == "0x":
        compact = compact[2:]
    bad = next((c for c in compact if c not in _HEX), None)
    if bad is not None:
        raise UsageError(f"{what}: {bad!r} is not a hex digit")
    if len(compact) % 2:
        raise UsageError(f"{what}: odd number of hex digits ({len(compact)})")
    if not compact:
        raise UsageError(f"{what}: empty")
    return bytes.fromhex(compact)


def _looks_like_hex(raw: bytes) -> bool:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return False
    compact = "".join(text.split())
    return bool(compact) and all(c in _HEX for c in compact) and len(compact) % 2 == 0


def _read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None


@dataclass
class Message:
    """One EXI stream to decode: where it came from, its V2GTP payload type (None: no
    header) and the EXI body."""

    label: str
    ptype: int | None
    data: bytes


def _inputs(args: list[str]) -> list[tuple[str, bytes]]:
    """(label, raw bytes) per argument; usage errors before anything is decoded."""
    if args.count("-") > 1:
        raise UsageError("- (stdin) can be given only once")
    out: list[tuple[str, bytes]] = []
    for n, arg in enumerate(args, 1):
        if arg == "-" or arg.startswith("@"):
            label = "stdin" if arg == "-" else arg[1:]
            raw = sys.stdin.buffer.read() if arg == "-" else _read_file(arg[1:])
            if not raw:
                raise UsageError(f"{label}: empty")
            data = _hex_bytes(raw.decode("ascii"), label) if _looks_like_hex(raw) else raw
        else:
            label = f"argument {n}" if len(args) > 1 else "hex input"
            data = _hex_bytes(arg, label)
            if len(args) > 1 and len(data) == 1:
                raise UsageError(
                    f"argument {n} ({arg}) is a single octet: every argument is one message; "
                    "quote a message that holds spaces ('80 98 02 ...')"
                )
        out.append((label, data))
    return out


def split_v2gtp(data: bytes) -> tuple[int | None, bytes]:
    """(payload type or None, the EXI body): a V2GTP header in front is checked and
    removed.  EXI streams start with 0x80, so ``01 FE`` can only be a header."""
    frames = split_frames(data)
    if len(frames) > 1:
        raise InputError(f"{len(frames)} V2GTP frames where one was expected")
    return frames[0]


def split_frames(data: bytes) -> list[tuple[int | None, bytes]]:
    """The (payload type, EXI body) of every V2GTP frame in ``data``, back to back; a
    stream without a header is one body with payload type None.  Octets after the last
    frame that are not a frame are an error, never dropped."""
    frames, error = _split(data)
    if error is not None:
        raise error
    return frames


def _split(data: bytes) -> tuple[list[tuple[int | None, bytes]], InputError | None]:
    """The frames up to the first broken one, and the error about that one (if any)."""
    if data[:2] != b"\x01\xfe":
        return [(None, data)], None
    frames: list[tuple[int | None, bytes]] = []
    offset = 0
    while offset < len(data):
        at = f" at octet {offset}" if offset else ""
        head = data[offset : offset + 8]
        if head[:2] != b"\x01\xfe":
            return frames, InputError(
                f"{len(data) - offset} octets after V2GTP frame {len(frames)} are not a frame"
            )
        if len(head) < 8:
            return frames, InputError(f"V2GTP header truncated{at}: {len(head)} octets")
        ptype = int.from_bytes(head[2:4], "big")
        if ptype != PayloadType.EXI and ptype not in BY_PAYLOAD_TYPE:
            return frames, InputError(
                f"V2GTP payload type {ptype:04x}{at} is not an EXI message "
                "(8001 SAP/ISO-2/DIN, 8002-8006 ISO 15118-20)"
            )
        length = int.from_bytes(head[4:8], "big")
        body = data[offset + 8 : offset + 8 + length]
        if len(body) < length:
            return frames, InputError(
                f"V2GTP header{at} announces {length} octets, {len(body)} follow"
            )
        frames.append((ptype, body))
        offset += 8 + length
    return frames, None


def strip_v2gtp(data: bytes) -> bytes:
    """The EXI body: a V2GTP EXI header in front is checked and removed."""
    return split_v2gtp(data)[1]


def _messages(args: list[str]) -> list[Message | tuple[str, Exception]]:
    """The messages of every argument, in order; broken framing is kept as (label,
    error) after the frames before it, so that it is reported in its place."""
    out: list[Message | tuple[str, Exception]] = []
    for label, raw in _inputs(args):
        frames, error = _split(raw)
        several = len(frames) + (error is not None) > 1
        for n, (ptype, body) in enumerate(frames, 1):
            out.append(Message(f"{label}, frame {n}" if several else label, ptype, body))
        if error is not None:
            out.append((f"{label}, frame {len(frames) + 1}" if several else label, error))
    return out


# ---------------------------------------------------------------------------- decode


@dataclass
class Decoded:
    schema: str
    root: RootInfo
    value: Any
    how: str | None  # how the schema was chosen; None: --schema, nothing to report
    frame: str = ""  # "V2GTP payload type 8001" when the stream came in a frame
    violations: tuple[Any, ...] = ()  # values outside their facets, decoded as sent


def _decode_with(data: bytes, schema: str, fragment: str | None) -> codec.Decoded:
    got = codec.decode_checked(data, schema, fragment=fragment is not None)
    root = got.root
    if fragment not in (None, "*", root.local, f"{{{root.ns}}}{root.local}"):
        raise InputError(f"the fragment holds {root.local}, not {fragment}")
    return got


def _round_trips(data: bytes, schema: str, root: RootInfo, value: Any, fragment: bool) -> bool:
    name = f"{{{root.ns}}}{root.local}"
    try:
        encode = codec.encode_fragment if fragment else codec.encode
        enc = encode(value, schema, name=name, lenient=True)  # what a peer sent, as it is
    except codec.CodecError:
        return False
    # a trailing 00 after the padding (a Tesla does that) is accepted by the decoder
    return data[: len(enc)] == enc and not data[len(enc) :].strip(b"\0")


def _trial(
    data: bytes, candidates: tuple[str, ...], fragment: str | None
) -> list[tuple[str, codec.Decoded]]:
    """The schemas ``data`` decodes with and re-encodes to the same bytes, in the order
    of ``candidates`` (those that only decode when none round-trips)."""
    fits: list[tuple[str, codec.Decoded, bool]] = []
    for schema in candidates:
        try:
            got = _decode_with(data, schema, fragment)
        except (codec.CodecError, InputError):
            continue
        exact = _round_trips(data, schema, got.root, got.message, fragment is not None)
        fits.append((schema, got, exact))
    exact_fits = [f for f in fits if f[2]]
    return [(s, got) for s, got, _ in (exact_fits or fits)]


def _fragment_schemas(element: str) -> tuple[str, ...]:
    """The schemas with ``element`` (local or {ns}local; ``*`` any) among their fragment
    elements, in the order of FRAGMENT_SCHEMAS."""
    if element == "*":
        return FRAGMENT_SCHEMAS
    ns, _, local = element[1:].partition("}") if element.startswith("{") else ("", "", element)
    hits = tuple(
        s
        for s in FRAGMENT_SCHEMAS
        if any(r.local == local and (not ns or r.ns == ns) for r in codec.schema_module(s).FRAGMENT)
    )
    if not hits:
        raise UsageError(f"{element} is a fragment element of no schema")
    return hits


def _guess(data: bytes, candidates: tuple[str, ...], fragment: str | None) -> Decoded:
    fits = _trial(data, candidates, fragment)
    if not fits:
        raise InputError(
            f"decodes with none of {', '.join(candidates)} (pass --schema to see why it fails)"
        )
    schema, got = fits[0]
    others = [s for s, _ in fits[1:]]
    if not others:
        how = "guessed by trial decoding: the only schema that fits"
        if len(candidates) == 1:
            how = "the only schema with that fragment element"
    else:
        how = (
            f"guessed by trial decoding: it also fits {', '.join(others)}; "
            f"{schema} comes first in the order {', '.join(candidates)}; "
            "pass --schema to choose"
        )
    return Decoded(schema, got.root, got.message, how, violations=got.violations)


def _decode_given(
    data: bytes, schema: str, candidates: tuple[str, ...], fragment: str | None
) -> codec.Decoded:
    """Decode with the schema the user named; when it fails, say which schemas fit."""
    try:
        return _decode_with(data, schema, fragment)
    except (codec.CodecError, InputError) as e:
        fits = [s for s, _ in _trial(data, tuple(c for c in candidates if c != schema), fragment)]
        if not fits:
            raise
        raise InputError(
            f"does not decode as {schema} ({e}); it decodes as {', '.join(fits)}: "
            f"pass --schema {fits[0]}"
        ) from None


def decode_message(msg: Message, schema: str | None, fragment: str | None) -> Decoded:
    """Decode one message with the schema given, implied by its frame, or guessed."""
    if fragment is not None:
        if msg.ptype is not None:
            raise InputError("a V2GTP frame carries a whole message, not a fragment")
        candidates = _fragment_schemas(fragment)
        if schema is not None:
            if schema not in candidates:
                raise UsageError(f"{fragment} is not a fragment element of {schema}")
            got = _decode_given(msg.data, schema, candidates, fragment)
            return Decoded(schema, got.root, got.message, None, violations=got.violations)
        return _guess(msg.data, candidates, fragment)
    if schema == "xmldsig":
        raise UsageError("xmldsig has no messages, only fragments: use --fragment")
    if msg.ptype is None:
        if schema is not None:
            got = _decode_given(msg.data, schema, SCHEMAS, None)
            return Decoded(schema, got.root, got.message, None, violations=got.violations)
        return _guess(msg.data, SCHEMAS, None)
    frame = f"V2GTP payload type {msg.ptype:04x}"
    implied = BY_PAYLOAD_TYPE.get(msg.ptype)
    if implied is None:  # 0x8001: appHandshake, ISO-2 or DIN
        if schema is None:
            d = _guess(msg.data, _EXI_8001, None)
            d.frame = frame
            return d
        if PAYLOAD_TYPE_OF[schema] != msg.ptype:
            raise InputError(
                f"{frame} does not carry {schema} (that is {PAYLOAD_TYPE_OF[schema]:04x}); "
                f"it carries {', '.join(_EXI_8001)}"
            )
        got = _decode_given(msg.data, schema, _EXI_8001, None)
        return Decoded(schema, got.root, got.message, "from --schema", frame, got.violations)
    if schema is not None and schema != implied:
        raise InputError(f"{frame} carries {implied}, not {schema}")
    try:
        got = codec.decode_checked(msg.data, implied)
    except codec.CodecError as e:
        fits = [s for s, _ in _trial(msg.data, tuple(c for c in SCHEMAS if c != implied), None)]
        if not fits:
            raise
        raise InputError(
            f"{frame} carries {implied}, and the body does not decode as {implied} ({e}); "
            f"it decodes as {', '.join(fits)}: a wrong payload type? (the body alone, "
            f"without the header, decodes with --schema {fits[0]})"
        ) from None
    return Decoded(implied, got.root, got.message, "from the payload type", frame, got.violations)


def _decode(ns: argparse.Namespace, report: Callable[[str], None]) -> int:
    messages = _messages(ns.data)
    several = len(messages) > 1
    failed = 0
    for n, item in enumerate(messages, 1):
        label = item[0] if isinstance(item, tuple) else item.label
        prefix = f"message {n} ({label}): " if several else ""
        try:
            if isinstance(item, tuple):
                raise item[1]
            d = decode_message(item, ns.schema, ns.fragment)
        except (InputError, codec.CodecError) as e:
            report(f"error: {prefix}{e}")
            failed += 1
            continue
        if d.how is not None:
            frame = f"{d.frame}: " if d.frame else ""
            report(f"{prefix}{frame}schema {d.schema} ({d.how})")
        for v in d.violations:  # decoded as sent; the station's core decides
            report(f"warning: {prefix}outside the schema's facets: {v}")
        if d.violations and ns.strict:
            report(f"error: {prefix}refused (--strict): {len(d.violations)} value(s) "
                   "outside the schema's facets")  # fmt: skip
            failed += 1
            continue
        where: dict[str, Any] = {
            "root": d.root,
            "schema": d.schema,
            "fragment": ns.fragment is not None,
        }
        if ns.json:
            obj = to_json(d.value, **where)
            text = (
                json.dumps(obj, ensure_ascii=False)
                if several
                else json.dumps(obj, indent=2, ensure_ascii=False)
            )
            _write(text + "\n")
        else:
            head = f"<!-- secc exi: message {n} ({label}): {d.schema} -->\n" if several else ""
            _write(("\n" if several and n > 1 else "") + head + to_xml(d.value, **where))
    return 1 if failed else 0


# ---------------------------------------------------------------------------- encode


def schema_of_root(ns: str | None, local: str, *, fragment: bool = False) -> str:
    """The schema whose global (or, with ``fragment``, fragment) elements include
    ``{ns}local`` (``ns`` None: any namespace).  A document root several schemas declare
    is a usage error (pass --schema); a fragment element takes the first in
    FRAGMENT_SCHEMAS (xmldsig for SignedInfo, iso20-common for -20 CommonTypes)."""
    order = FRAGMENT_SCHEMAS if fragment else SCHEMAS
    hits = [
        schema
        for schema in order
        if any(
            r.local == local and (ns is None or r.ns == ns)
            for r in (
                codec.schema_module(schema).FRAGMENT
                if fragment
                else codec.schema_module(schema).DOCUMENT
            )
        )
    ]
    shown = local if ns is None else f"{{{ns}}}{local}"
    kind = "fragment" if fragment else "global"
    if not hits:
        raise InputError(f"{shown} is not a {kind} element of any schema ({', '.join(order)})")
    if len(hits) > 1 and not fragment:
        raise UsageError(f"{shown} is a global element of {', '.join(hits)}: pass --schema")
    return hits[0]


def _encode_one(raw: bytes, ns: argparse.Namespace, report: Callable[[str], None]) -> str:
    schema: str | None = ns.schema
    fragment: bool = ns.fragment
    if schema == "xmldsig" and not fragment:
        raise UsageError("xmldsig has no messages, only fragments: use --fragment")
    if fragment and ns.v2gtp:
        raise UsageError("a fragment is not sent in a V2GTP frame: --v2gtp with --fragment")
    root_ns, local = "", ""
    if raw.lstrip()[:1] == b"{":
        try:
            obj = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"not valid JSON: {e}") from None
        if not isinstance(obj, dict) or len(obj) != 1:
            raise InputError("JSON form: expected an object with exactly one key, the root")
        key = str(next(iter(obj)))
        root_ns, _, local = key[1:].partition("}") if key.startswith("{") else ("", "", key)
        if schema is None:
            schema = _schema_reported(root_ns or None, local, fragment, report)
        root, value = _parse_checked(
            lambda s: from_json(obj, s, fragment=fragment, lenient=ns.lenient),
            schema, root_ns or None, local, fragment,
        )  # fmt: skip
    else:
        root_ns, local = _xml_root_name(raw)
        if schema is None:
            schema = _schema_reported(root_ns, local, fragment, report)
        root, value = _parse_checked(
            lambda s: from_xml(raw, s, fragment=fragment, lenient=ns.lenient),
            schema, root_ns, local, fragment,
        )  # fmt: skip
    name = f"{{{root.ns}}}{root.local}"
    if fragment:
        return codec.encode_fragment(value, schema, name=name, lenient=ns.lenient).hex()
    data = codec.encode(value, schema, name=name, lenient=ns.lenient)
    return (encode_frame(data, PAYLOAD_TYPE_OF[schema]) if ns.v2gtp else data).hex()


def _schema_reported(
    ns: str | None, local: str, fragment: bool, report: Callable[[str], None]
) -> str:
    schema = schema_of_root(ns, local, fragment=fragment)
    if fragment:
        report(f"fragment {local}: schema {schema} (from the root element)")
    return schema


def _parse_checked(
    parse: Callable[[str], tuple[RootInfo, Any]],
    schema: str,
    ns: str | None,
    local: str,
    fragment: bool,
) -> tuple[RootInfo, Any]:
    """``parse(schema)``; when the root is not an element of that schema, the error
    names the schema that declares it."""
    try:
        return parse(schema)
    except codec.CodecError as e:
        try:
            right = schema_of_root(ns, local, fragment=fragment)
        except (InputError, UsageError):
            raise e from None
        if right == schema:
            raise
        raise InputError(f"{e}; the root is an element of {right}: pass --schema {right}") from None


def _xml_root_name(raw: bytes) -> tuple[str, str]:
    """The root element's namespace and local name (the parse errors are from_xml's)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        q = etree.QName(etree.fromstring(raw, parser))
    except (etree.XMLSyntaxError, ValueError) as e:
        raise InputError(f"not well-formed XML: {e}") from None
    return q.namespace or "", q.localname


def _encode(ns: argparse.Namespace, report: Callable[[str], None]) -> int:
    sources: list[str] = ns.source
    if sources.count("-") > 1:
        raise UsageError("- (stdin) can be given only once")
    raws = [sys.stdin.buffer.read() if s == "-" else _read_file(s) for s in sources]
    several = len(sources) > 1
    failed = 0
    for n, (source, raw) in enumerate(zip(sources, raws, strict=True), 1):
        label = "stdin" if source == "-" else source
        prefix = f"message {n} ({label}): " if several else ""

        def say(line: str, prefix: str = prefix) -> None:
            report(prefix + line)

        try:
            out = _encode_one(raw, ns, say)
        except (InputError, codec.CodecError) as e:
            report(f"error: {prefix}{e}")
            failed += 1
            continue
        _write(out + "\n")
    return 1 if failed else 0


# ------------------------------------------------------------------------------ main


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _messages_out(prog: str) -> Callable[[str], None]:
    def report(line: str) -> None:
        print(f"{prog}: {line}", file=sys.stderr, flush=True)

    return report


def main(argv: list[str], prog: str) -> int:
    report = _messages_out(prog)
    try:
        parser = _parser(prog)
        try:
            ns = parser.parse_args(argv)
        except SystemExit as e:  # --help (0)
            return e.code if isinstance(e.code, int) else 2
        action = _decode if ns.action == "decode" else _encode
        return action(ns, report)
    except UsageError as e:
        report(f"error: {e}")
        return 2
    except BrokenPipeError:
        # the reader went away (| head): stop quietly, and keep the interpreter's final
        # flush of stdout from raising again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
