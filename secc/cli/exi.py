"""``secc exi``: decode EXI to XML or JSON and encode it back, for lab engineers.

::

    secc exi decode [--schema SCHEMA] [--json] HEX_OR_@FILE
    secc exi encode [--schema SCHEMA] [--v2gtp] FILE_OR_-

SCHEMA is one of ``apphand``, ``iso2``, ``din``, ``iso20-common``, ``iso20-ac``,
``iso20-dc``, ``iso20-wpt``, ``iso20-acdp``.

``decode`` takes hex on the command line (whitespace allowed, also split over several
arguments) or ``@FILE`` holding binary EXI or hex text.  A V2GTP header (``01 FE`` +
payload type + 4-byte length) in front of the EXI is checked and removed, and its payload
type names the schema: 0x8002 ``iso20-common``, 0x8003 ``iso20-ac``, 0x8004 ``iso20-dc``,
0x8005 ``iso20-acdp``, 0x8006 ``iso20-wpt`` (ISO 15118-20 Table 13); 0x8001 carries the
appHandshake, ISO-2 and DIN alike, so ``--schema`` must say which.  The schema used is
reported on stderr; a ``--schema`` that contradicts the payload type is an error.  Without
a header, ``--schema`` is required: the schema cannot be guessed by trial decoding (an
18-byte AuthorizationReq also decodes as an ACDP message).

``encode`` reads the XML (or the JSON form, when the text starts with ``{``) and prints the
EXI as hex, with ``--v2gtp`` behind the V2GTP header of its payload type.  Without
``--schema`` the schema is the one whose global elements include the root (the XML root's
namespace and name; the JSON form's root key).  For every valid stream, ``decode`` then
``encode`` gives back the same bytes.

Exit codes: 0 ok, 1 the input is not a valid stream / document (one line on stderr),
2 usage error.
"""

from __future__ import annotations

import argparse
import json
import string
import sys
from pathlib import Path
from typing import Any

from lxml import etree

from secc import codec
from secc.codec.xml import from_json, from_xml, to_json, to_xml
from secc.v2gtp import PayloadType, encode_frame

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
_HEX = set(string.hexdigits)


class UsageError(Exception):
    """A bad argument (exit 2)."""


class InputError(Exception):
    """The input is not what it should be (exit 1)."""


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Decode EXI (ISO 15118-20, ISO 15118-2, DIN 70121, appHandshake) and back.",
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    dec = sub.add_parser("decode", help="EXI (hex or @FILE, V2GTP header allowed) -> XML/JSON")
    dec.add_argument(
        "--schema",
        choices=SCHEMAS,
        help="required unless a V2GTP header with an ISO 15118-20 payload type names it",
    )
    dec.add_argument("--json", action="store_true", help="print the JSON form instead of XML")
    dec.add_argument(
        "data", nargs="+", metavar="HEX_OR_@FILE", help="hex (whitespace allowed) or @FILE"
    )
    enc = sub.add_parser("encode", help="XML or JSON (FILE or - for stdin) -> EXI hex")
    enc.add_argument(
        "--schema", choices=SCHEMAS, help="default: the schema declaring the root element"
    )
    enc.add_argument(
        "--v2gtp", action="store_true", help="print the V2GTP frame (header + EXI) instead"
    )
    enc.add_argument("source", metavar="FILE_OR_-", help="XML or JSON file, - for stdin")
    return parser


def _hex_bytes(text: str, what: str) -> bytes:
    compact = "".join(text.split())
    if compact[:2].lower() == "0x":
        compact = compact[2:]
    bad = next((c for c in compact if c not in _HEX), None)
    if bad is not None:
        raise UsageError(f"{what}: {bad!r} is not a hex digit")
    if len(compact) % 2:
        raise UsageError(f"{what}: odd number of hex digits ({len(compact)})")
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


def _input_bytes(args: list[str]) -> bytes:
    if len(args) == 1 and args[0].startswith("@"):
        raw = _read_file(args[0][1:])
        return _hex_bytes(raw.decode("ascii"), args[0]) if _looks_like_hex(raw) else raw
    if any(a.startswith("@") for a in args):
        raise UsageError("@FILE must be the only input argument")
    return _hex_bytes(" ".join(args), "hex input")


def split_v2gtp(data: bytes) -> tuple[int | None, bytes]:
    """(payload type or None, the EXI body): a V2GTP header in front is checked and
    removed.  EXI streams start with 0x80, so ``01 FE`` can only be a header."""
    if data[:2] != b"\x01\xfe":
        return None, data
    if len(data) < 8:
        raise InputError(f"V2GTP header truncated: {len(data)} octets")
    ptype = int.from_bytes(data[2:4], "big")
    if ptype != PayloadType.EXI and ptype not in BY_PAYLOAD_TYPE:
        raise InputError(
            f"V2GTP payload type {ptype:04x} is not an EXI message "
            "(8001 SAP/ISO-2/DIN, 8002-8006 ISO 15118-20)"
        )
    length = int.from_bytes(data[4:8], "big")
    if length > len(data) - 8:
        raise InputError(f"V2GTP header announces {length} octets, {len(data) - 8} follow")
    return ptype, data[8 : 8 + length]


def strip_v2gtp(data: bytes) -> bytes:
    """The EXI body: a V2GTP EXI header in front is checked and removed."""
    return split_v2gtp(data)[1]


def _schema_for_frame(ptype: int | None, given: str | None) -> str:
    """The schema to decode with: the payload type's, checked against ``--schema``."""
    if ptype is None:
        if given is None:
            raise UsageError(
                f"--schema is required for EXI without a V2GTP header (one of {', '.join(SCHEMAS)})"
            )
        return given
    implied = BY_PAYLOAD_TYPE.get(ptype)
    if implied is None:  # 0x8001: appHandshake, ISO-2 or DIN
        if given is None:
            raise UsageError(
                "V2GTP payload type 8001 carries the appHandshake, ISO-2 and DIN alike: "
                "pass --schema apphand, iso2 or din"
            )
        if PAYLOAD_TYPE_OF[given] != ptype:
            raise InputError(
                f"V2GTP payload type 8001 does not carry {given} "
                f"(that is {PAYLOAD_TYPE_OF[given]:04x})"
            )
        return given
    if given is not None and given != implied:
        raise InputError(f"V2GTP payload type {ptype:04x} carries {implied}, not {given}")
    return implied


def _decode(ns: argparse.Namespace, prog: str) -> int:
    ptype, data = split_v2gtp(_input_bytes(ns.data))
    schema = _schema_for_frame(ptype, ns.schema)
    root, value = codec.decode_document(data, schema)
    if ptype is not None:
        how = "from --schema" if ptype == PayloadType.EXI else "from the payload type"
        print(f"{prog}: V2GTP payload type {ptype:04x}: schema {schema} ({how})", file=sys.stderr)
    if ns.json:
        out: Any = to_json(value, root=root, schema=schema)
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(to_xml(value, root=root, schema=schema))
    return 0


def schema_of_root(ns: str | None, local: str) -> str:
    """The schema whose global elements include ``{ns}local`` (``ns`` None: any namespace)."""
    hits = [
        schema
        for schema in SCHEMAS
        if any(
            r.local == local and (ns is None or r.ns == ns)
            for r in codec.schema_module(schema).DOCUMENT
        )
    ]
    shown = local if ns is None else f"{{{ns}}}{local}"
    if not hits:
        raise InputError(f"{shown} is not a global element of any schema ({', '.join(SCHEMAS)})")
    if len(hits) > 1:
        raise UsageError(f"{shown} is a global element of {', '.join(hits)}: pass --schema")
    return hits[0]


def _encode(ns: argparse.Namespace) -> int:
    raw = sys.stdin.buffer.read() if ns.source == "-" else _read_file(ns.source)
    schema = ns.schema
    if raw.lstrip()[:1] == b"{":
        try:
            obj = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"not valid JSON: {e}") from None
        if schema is None:
            if not isinstance(obj, dict) or len(obj) != 1:
                raise InputError("JSON form: expected an object with exactly one key, the root")
            key = str(next(iter(obj)))
            root_ns, _, local = key[1:].partition("}") if key.startswith("{") else ("", "", key)
            schema = schema_of_root(root_ns or None, local)
        root, value = from_json(obj, schema)
    else:
        if schema is None:
            schema = schema_of_root(*_xml_root_name(raw))
        root, value = from_xml(raw, schema)
    data = codec.encode(value, schema, name=f"{{{root.ns}}}{root.local}")
    print((encode_frame(data, PAYLOAD_TYPE_OF[schema]) if ns.v2gtp else data).hex())
    return 0


def _xml_root_name(raw: bytes) -> tuple[str, str]:
    """The root element's namespace and local name (the parse errors are from_xml's)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        q = etree.QName(etree.fromstring(raw, parser))
    except (etree.XMLSyntaxError, ValueError) as e:
        raise InputError(f"not well-formed XML: {e}") from None
    return q.namespace or "", q.localname


def main(argv: list[str], prog: str) -> int:
    parser = _parser(prog)
    try:
        ns = parser.parse_args(argv)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2)
        return e.code if isinstance(e.code, int) else 2
    try:
        result: int = _decode(ns, prog) if ns.action == "decode" else _encode(ns)
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except (InputError, codec.CodecError) as e:
        print(f"{prog} {ns.action}: {e}", file=sys.stderr)
        return 1
    return result
