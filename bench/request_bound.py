"""The largest request an EV may legally send, bounded from the schemas (issue 17): the
V2GTP payload limit for requests is derived from it.  Prints the bound per request;
asserts nothing.

    .venv/bin/python bench/request_bound.py

Walks each request's type through the generated ``FIELDS`` metadata: every field at its
maxOccurs, strings and octet strings at their maxLength, every optional element present,
the largest member of a substitution group.  EXI sizes, generously: an event code 2
octets, a length or an integer 10 octets, a character 3 octets (an EXI Unsigned Integer
code point), an octet 1.  What the schemas leave unbounded is capped, and said so:

- xmldsig's open parts (the header ``Signature``): ISO 15118 signs at most 4 elements
  per message ([V2G2-771], -20 [V20-2330]: the signed body element, plus the
  certificate-installation parts), each Reference with at most 2 Transforms, one
  XPath each; no ``KeyInfo`` / ``Object`` (the signer's certificate travels in the
  message body); ``X509IssuerName`` (an RFC 4514 issuer name, unbounded in xmldsig) at
  most 256 characters, as the V2G certificate profile's names are far shorter;
- DIN SPEC 70121's unbounded lists at the bounds ISO 15118-2 gives the same elements
  (4 sub-certificates, 20 root certificate IDs, 24 profile entries, 16 services);
- xs:string / xs:anyURI without maxLength (``Id`` attributes, algorithm URIs) at 256
  characters.
"""

from __future__ import annotations

import sys
from typing import Any

from secc import codec

EVENT = 2  # octets per event code (generous: ISO grammars use at most 8 bits)
NUMBER = 10  # octets for a length or an integer
CHAR = 3  # octets per character
OPEN_STRING = 256  # characters for a string without maxLength
# lists the schemas leave unbounded: xmldsig's, and DIN's, capped at ISO 15118-2's
# bounds for the same elements
OPEN_OCCURS = {
    "Reference": 4,
    "Transform": 2,
    "XPath": 1,
    "Certificate": 4,
    "RootCertificateID": 20,
    "SelectedService": 16,
    "ProfileEntry": 24,
}
LEFT_OUT = {"KeyInfo", "Object"}  # never in an ISO 15118 signature
SCHEMAS = ("iso2", "din", "iso20-common", "iso20-ac", "iso20-dc")


def simple_size(tinfo: tuple[Any, ...]) -> int:
    kind = tinfo[0]
    if kind == "str":
        return NUMBER + CHAR * (tinfo[2] if tinfo[2] is not None else OPEN_STRING)
    if kind == "bytes":
        return NUMBER + (tinfo[2] if tinfo[2] is not None else OPEN_STRING)
    return NUMBER  # int, bool, enum


def type_size(mod: Any, cls: type, seen: tuple[type, ...] = ()) -> int:
    if cls in seen:  # a recursive type (none in a request): counted once
        return 0
    fields = getattr(mod, "FIELDS", {}).get(cls)
    if fields is None:
        owner = codec.schema_module("xmldsig") if cls.__module__.endswith("xmldsig") else mod
        fields = owner.FIELDS[cls]
        mod = owner
    total = EVENT  # the end element
    for f in fields:
        if f.local in LEFT_OUT:
            continue
        occurs = f.max if f.max >= 0 else OPEN_OCCURS.get(f.local)
        if occurs is None:
            raise ValueError(f"{cls.__name__}.{f.local}: unbounded and not capped")
        if f.kind in ("attr", "value"):
            one = simple_size(f.tinfo)
        else:
            sizes = []
            for _ns, _local, member in f.tinfo[1]:
                if member[0] == "class":
                    sizes.append(type_size(mod, member[1], (*seen, cls)))
                else:
                    sizes.append(simple_size(member))
            one = max(sizes)
        if f.local == "X509IssuerName":
            one = NUMBER + CHAR * OPEN_STRING
        total += occurs * (EVENT + one)
    return total


def requests(schema: str) -> list[tuple[str, type]]:
    mod = codec.schema_module(schema)
    if schema in ("iso2", "din"):
        (f,) = mod.FIELDS[mod.Body]
        return [(m[1], m[2][1]) for m in f.tinfo[1] if m[1].endswith("Req")]
    return [
        (r.local, r.cls)
        for r in mod.DOCUMENT
        if r.cls is not None and r.local.endswith("Req") and r.ns.startswith("urn:iso:std")
    ]


def bound(schema: str, cls: type) -> int:
    """Octets at most for a whole request message of ``cls`` (header included)."""
    mod = codec.schema_module(schema)
    size = type_size(mod, cls)
    if schema in ("iso2", "din"):
        size += type_size(mod, mod.MessageHeader) + 4 * EVENT  # V2G_Message, Body
    return size + 2  # EXI header, document code


def largest() -> tuple[int, str]:
    return max((bound(s, cls), f"{s} {name}") for s in SCHEMAS for name, cls in requests(s))


def main() -> int:
    rows = sorted(
        ((bound(s, cls), s, name) for s in SCHEMAS for name, cls in requests(s)), reverse=True
    )
    for size, schema, name in rows[:12]:
        print(f"{size:8,} octets  {schema:13} {name}")
    size, what = largest()
    print(f"largest legal request: {what}, at most {size:,} octets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
