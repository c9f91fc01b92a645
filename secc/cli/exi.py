"""``secc exi``: decode EXI to XML or JSON and encode it back, for lab engineers.

::

    secc exi decode --schema {apphand,iso2,din} [--json] HEX_OR_@FILE
    secc exi encode --schema {apphand,iso2,din} FILE_OR_-

``decode`` takes hex on the command line (whitespace allowed, also split over several
arguments) or ``@FILE`` holding binary EXI or hex text; a V2GTP header (``01 FE 80 01`` +
4-byte length) in front of the EXI is recognised and skipped.  ``encode`` reads the XML
(or the JSON form, when the text starts with ``{``) and prints the EXI as hex.  For every
valid stream, ``decode`` then ``encode`` gives back the same bytes.

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

from secc import codec
from secc.codec.xml import from_json, from_xml, to_json, to_xml

SCHEMAS = ("apphand", "iso2", "din")
V2GTP_EXI = b"\x01\xfe\x80\x01"
_HEX = set(string.hexdigits)


class UsageError(Exception):
    """A bad argument (exit 2)."""


class InputError(Exception):
    """The input is not what it should be (exit 1)."""


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Decode EXI (ISO 15118-2, DIN 70121, appHandshake) and back."
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    dec = sub.add_parser("decode", help="EXI (hex or @FILE, V2GTP header allowed) -> XML/JSON")
    dec.add_argument("--schema", required=True, choices=SCHEMAS)
    dec.add_argument("--json", action="store_true", help="print the JSON form instead of XML")
    dec.add_argument(
        "data", nargs="+", metavar="HEX_OR_@FILE", help="hex (whitespace allowed) or @FILE"
    )
    enc = sub.add_parser("encode", help="XML or JSON (FILE or - for stdin) -> EXI hex")
    enc.add_argument("--schema", required=True, choices=SCHEMAS)
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


def strip_v2gtp(data: bytes) -> bytes:
    """The EXI body: a V2GTP EXI header in front is checked and removed."""
    if data[:2] != V2GTP_EXI[:2]:
        return data
    if len(data) < 8:
        raise InputError(f"V2GTP header truncated: {len(data)} octets")
    if data[:4] != V2GTP_EXI:
        raise InputError(
            f"V2GTP payload type {data[2:4].hex()} is not 8001 (EXI encoded V2G message)"
        )
    length = int.from_bytes(data[4:8], "big")
    if length > len(data) - 8:
        raise InputError(f"V2GTP header announces {length} octets, {len(data) - 8} follow")
    return data[8 : 8 + length]


def _decode(ns: argparse.Namespace) -> int:
    data = strip_v2gtp(_input_bytes(ns.data))
    root, value = codec.decode_document(data, ns.schema)
    if ns.json:
        out: Any = to_json(value, root=root, schema=ns.schema)
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(to_xml(value, root=root, schema=ns.schema))
    return 0


def _encode(ns: argparse.Namespace) -> int:
    raw = sys.stdin.buffer.read() if ns.source == "-" else _read_file(ns.source)
    if raw.lstrip()[:1] == b"{":
        try:
            obj = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"not valid JSON: {e}") from None
        root, value = from_json(obj, ns.schema)
    else:
        root, value = from_xml(raw, ns.schema)
    data = codec.encode(value, ns.schema, name=f"{{{root.ns}}}{root.local}")
    print(data.hex())
    return 0


def main(argv: list[str], prog: str) -> int:
    parser = _parser(prog)
    try:
        ns = parser.parse_args(argv)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2)
        return e.code if isinstance(e.code, int) else 2
    try:
        result: int = _decode(ns) if ns.action == "decode" else _encode(ns)
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except (InputError, codec.CodecError) as e:
        print(f"{prog} {ns.action}: {e}", file=sys.stderr)
        return 1
    return result
