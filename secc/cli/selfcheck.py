"""``secc selfcheck``: the codec over every public EXI vector, with a summary table.

For each vector in ``../shared/vectors/public_vectors.jsonl`` (or ``--vectors FILE``):

- valid documents (ISO-2, DIN, appHandshake) decode and re-encode to the same bytes
  (trailing zero octets after the padding, which some EVs send, are ignored);
- valid fragments re-encode to the same bytes; ISO-2 fragments hash (SHA-256) to the
  digest the vector records; SignedInfo fragments (xmldsig alone) carry an ECDSA P-256
  signature, raw r||s, that verifies with the signer's key;
- in every signed ISO-2 message, each Reference whose Id exists in the body is encoded as
  a fragment and must hash to its DigestValue (a Reference to an Id the message no longer
  holds, RISE-V2G's stale header, is counted, not failed: EXI-NOTES §9.4);
- the invalid vectors are refused with a DecodeError.

Then the median decode and encode time of a CurrentDemandReq.  Exit 0 only if everything
holds; 1 if anything fails or the vectors file is absent; 2 for usage errors.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

import secc
from secc import codec

# vector schema -> (codec schema, is a fragment)
SCHEMAS: dict[str, tuple[str, bool]] = {
    "appHandshake": ("apphand", False),
    "din": ("din", False),
    "iso2": ("iso2", False),
    "iso2-fragment": ("iso2", True),
    "xmldsig-fragment": ("xmldsig", True),
}


def default_vectors() -> Path:
    return (
        Path(secc.__file__).resolve().parents[1].parent
        / "shared"
        / "vectors"
        / ("public_vectors.jsonl")
    )


@dataclass
class Tally:
    """What happened to the vectors of one schema."""

    total: int = 0
    identical: int = 0
    refused: int = 0
    digests: int = 0
    signatures: int = 0
    references: int = 0
    stale: int = 0
    failures: list[str] = field(default_factory=list)

    def fail(self, name: str, why: str) -> None:
        self.failures.append(f"{name}: {why}")


def _same_stream(original: bytes, encoded: bytes) -> bool:
    return original[: len(encoded)] == encoded and not original[len(encoded) :].strip(b"\0")


def _verify_raw_ecdsa(pub_hex: str, rs: bytes, data: bytes) -> bool:
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes.fromhex(pub_hex))
    if len(rs) != 64:
        return False
    der = encode_dss_signature(int.from_bytes(rs[:32], "big"), int.from_bytes(rs[32:], "big"))
    try:
        key.verify(der, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _with_ids(value: object, mod: Any) -> Iterator[tuple[str, str, object]]:
    """(Id, element name, element) for every element in ``value`` that carries an Id."""
    fields_of = mod.FIELDS.get(type(value))
    if fields_of is None:
        return
    for f in fields_of:
        v = getattr(value, f.name)
        if f.kind != "elem" or v is None:
            continue
        for item in v if f.repeated else (v,):
            if not is_dataclass(item):
                continue
            member = next(
                (m for m in f.tinfo[1] if m[2][0] == "class" and m[2][1] is type(item)), None
            )
            if member is None:
                continue
            ident = getattr(item, "id", None)
            if isinstance(ident, str) and "id" in {x.name for x in fields(item)}:
                yield ident, f"{{{member[0]}}}{member[1]}", item
            yield from _with_ids(item, mod)


_NOTED_DIGEST = re.compile(r"EXIficient \w+ fragment digest = ([A-Za-z0-9+/]+=*)")


def _check_references(name: str, message: Any, note: str, tally: Tally) -> None:
    signature = getattr(getattr(message, "header", None), "signature", None)
    if signature is None:
        return
    mod = codec.schema_module("iso2")
    targets = {ident: (qname, el) for ident, qname, el in _with_ids(message.body, mod)}
    for ref in signature.signed_info.reference:
        uri = ref.uri or ""
        target = targets.get(uri[1:]) if uri.startswith("#") else None
        if target is None:
            tally.stale += 1
            continue
        qname, element = target
        digest = hashlib.sha256(codec.encode_fragment(element, "iso2", name=qname)).digest()
        tally.references += 1
        if digest == ref.digest_value:
            continue
        # demo data with a made-up DigestValue: the note gives the reference codec's digest
        noted = _NOTED_DIGEST.search(note)
        if noted is None or noted.group(1) != base64.b64encode(digest).decode():
            tally.fail(name, f"Reference {uri}: digest of the re-encoded {qname} differs")


def _check_one(v: dict[str, Any], tally: Tally) -> None:
    schema, fragment = SCHEMAS[v["schema"]]
    data = bytes.fromhex(v["exi_hex"])
    name = v["name"]
    tally.total += 1
    if not v["valid"]:
        try:
            if fragment:
                codec.decode_fragment(data, schema)
            else:
                codec.decode(data, schema)
        except codec.DecodeError:
            tally.refused += 1
        else:
            tally.fail(name, "an invalid stream decoded without error")
        return
    try:
        if fragment:
            root, value = codec.decode_fragment(data, schema)
            encoded = codec.encode_fragment(value, schema, name=f"{{{root.ns}}}{root.local}")
            same = encoded == data
        else:
            root, value = codec.decode_document(data, schema)
            encoded = codec.encode(value, schema, name=f"{{{root.ns}}}{root.local}")
            same = _same_stream(data, encoded)
    except codec.CodecError as e:
        tally.fail(name, str(e))
        return
    if not same:
        tally.fail(name, "re-encoded bytes differ")
        return
    tally.identical += 1
    if v["schema"] == "iso2-fragment":
        digest = base64.b64encode(hashlib.sha256(encoded).digest()).decode()
        if digest == v.get("digest_sha256_b64") == v.get("expected_digest_from_message"):
            tally.digests += 1
        else:
            tally.fail(name, "fragment digest differs from the message's DigestValue")
    elif v["schema"] == "xmldsig-fragment":
        rs = bytes.fromhex(v.get("signature_value_hex", ""))
        if not _verify_raw_ecdsa(v.get("signer_pubkey_uncompressed_hex", ""), rs, encoded):
            tally.fail(name, "SignedInfo signature does not verify")
        elif not _signed_by_message(v.get("message_exi_hex"), encoded, rs):
            tally.fail(name, "the message's SignedInfo/SignatureValue differ from the vector")
        else:
            tally.signatures += 1
    elif schema == "iso2":
        _check_references(name, value, v.get("note", ""), tally)


def _signed_by_message(message_hex: str | None, signed_info: bytes, rs: bytes) -> bool:
    """The SignedInfo and SignatureValue of the message itself are the vector's."""
    if not message_hex:
        return True
    message = codec.decode(bytes.fromhex(message_hex), "iso2")
    signature = message.header.signature
    if signature is None:
        return False
    own = codec.encode_fragment(signature.signed_info, "xmldsig")
    return bool(own == signed_info and signature.signature_value.value == rs)


def _median_us(fn: Any, arg: Any, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        fn(arg)
        samples.append(time.perf_counter_ns() - t0)
    return statistics.median(samples) / 1000


def _timings(found: list[dict[str, Any]], rounds: int) -> tuple[float, float] | None:
    for v in found:
        if not (v["valid"] and v["schema"] == "iso2" and "CurrentDemandReq" in v["name"]):
            continue
        data = bytes.fromhex(v["exi_hex"])
        try:
            message = codec.decode(data, "iso2")
            for _ in range(20):  # warm up
                codec.encode(codec.decode(data, "iso2"))
        except codec.CodecError:
            continue  # reported above already
        decode_us = _median_us(lambda d: codec.decode(d, "iso2"), data, rounds)
        encode_us = _median_us(codec.encode, message, rounds)
        return decode_us, encode_us
    return None


def _load(path: Path) -> list[dict[str, Any]]:
    found = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not JSON ({e.msg})") from None
    return found


def run(path: Path, rounds: int = 2000) -> int:
    try:
        found = _load(path)
    except FileNotFoundError:
        print(
            f"selfcheck: the vectors file {path} is absent.\n"
            "  It ships beside the checkout in ../shared/vectors; pass --vectors FILE "
            "to use another copy.",
            file=sys.stderr,
        )
        return 1
    except (OSError, ValueError) as e:
        print(f"selfcheck: cannot read the vectors: {e}", file=sys.stderr)
        return 1
    unknown = Counter(v.get("schema") for v in found if v.get("schema") not in SCHEMAS)
    tallies = {s: Tally() for s in SCHEMAS}
    print(f"secc selfcheck: {len(found)} vectors from {path}")
    for schema, tally in tallies.items():
        t0 = time.perf_counter()
        for v in found:
            if v.get("schema") == schema:
                _check_one(v, tally)
        ms = (time.perf_counter() - t0) * 1000
        state = "ok" if not tally.failures else f"{len(tally.failures)} FAILED"
        print(f"  {schema:<17} {tally.total:4d} vectors in {ms:7.1f} ms: {state}")
        for line in tally.failures[:20]:
            print(f"    FAIL {line}")
    print()
    header = ("schema", "vectors", "identical", "refused", "digests", "signatures", "refs", "stale")
    print("  ".join(f"{h:>10}" if i else f"{h:<17}" for i, h in enumerate(header)))
    total = Tally()
    for schema, t in tallies.items():
        row = (t.total, t.identical, t.refused, t.digests, t.signatures, t.references, t.stale)
        print(f"{schema:<17}  " + "  ".join(f"{n:>10}" for n in row))
        for name in (
            "total",
            "identical",
            "refused",
            "digests",
            "signatures",
            "references",
            "stale",
        ):
            setattr(total, name, getattr(total, name) + getattr(t, name))
        total.failures.extend(t.failures)
    row = (
        *(total.total, total.identical, total.refused, total.digests),
        *(total.signatures, total.references, total.stale),
    )
    print(f"{'all':<17}  " + "  ".join(f"{n:>10}" for n in row))
    print(
        "(identical: re-encoded byte for byte; refused: invalid streams rejected; digests /"
        " signatures: fragment SHA-256 and SignedInfo ECDSA checks; refs: Reference digests"
        " recomputed inside signed messages; stale: References to an Id the message lacks)"
    )
    timing = _timings(found, rounds)
    if timing is not None:
        print(
            f"\nCurrentDemandReq: decode {timing[0]:.1f} us, encode {timing[1]:.1f} us "
            f"(median of {rounds})"
        )
    problems = list(total.failures)
    if unknown:
        problems.append(f"vectors of unknown schemas: {dict(unknown)}")
    if total.total == 0:
        problems.append("the vectors file holds no vectors")
    if problems:
        print(f"\nselfcheck FAILED: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("\nselfcheck passed: every valid stream byte-identical, every invalid one refused")
    return 0


def main(argv: list[str], prog: str) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Run the EXI codec over the public test vectors."
    )
    parser.add_argument(
        "--vectors",
        type=Path,
        default=None,
        help=f"the JSONL vectors file (default: {default_vectors()})",
    )
    parser.add_argument(
        "--rounds", type=int, default=2000, help="timing rounds for the CurrentDemandReq median"
    )
    try:
        ns = parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    if ns.rounds < 1:
        print(f"{prog}: error: --rounds must be at least 1", file=sys.stderr)
        return 2
    return run(ns.vectors or default_vectors(), ns.rounds)
