"""Decoding is linear in the message size (issue 17): the reads per octet stay the same from
a small message to 64 kB, and each read works on an integer of bounded size (the bit
reader's window), so no read costs more near the end of a large input than at its start.
Counted, not timed: the counts do not depend on the machine's load."""

from __future__ import annotations

from typing import Any

import pytest

from secc import codec
from secc.codec.exi.bits import BitReader, BitWriter

iso2 = codec.schema_module("iso2")
ds = codec.schema_module("xmldsig")


_POS = BitReader.pos  # the slot's descriptor


class CountingReader(BitReader):
    """A BitReader that counts its reads and records the largest window integer.

    Every read moves ``pos`` once, whether the generated code reads the window inline or
    calls a method: a property over the slot counts them."""

    reads = 0
    widest = 0

    @property  # type: ignore[override]
    def pos(self) -> int:
        return _POS.__get__(self)  # type: ignore[no-any-return]

    @pos.setter
    def pos(self, value: int) -> None:
        _POS.__set__(self, value)
        self.reads += 1
        width = BitReader.val.__get__(self).bit_length() if hasattr(self, "val") else 0
        self.widest = max(self.widest, width)


def signed_header_message(references: int) -> bytes:
    """A valid ISO-2 message made of many small values: a header Signature whose
    SignedInfo holds ``references`` References (the schema leaves their number unbounded)."""
    sha = "http://www.w3.org/2001/04/xmlenc#sha256"
    ref = ds.Reference(
        uri="#id1", digest_method=ds.DigestMethod(algorithm=sha), digest_value=bytes(32)
    )
    signature = ds.Signature(
        signed_info=ds.SignedInfo(
            canonicalization_method=ds.CanonicalizationMethod(
                algorithm="http://www.w3.org/TR/canonical-exi/"
            ),
            signature_method=ds.SignatureMethod(
                algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
            ),
            reference=(ref,) * references,
        ),
        signature_value=ds.SignatureValue(value=bytes(64)),
    )
    msg = iso2.V2G_Message(
        header=iso2.MessageHeader(session_id=bytes(8), signature=signature),
        body=iso2.Body(
            body_element=iso2.SessionStopReq(charging_session=next(iter(iso2.ChargingSession)))
        ),
    )
    return codec.encode(msg)


def decode_counting(data: bytes) -> tuple[Any, CountingReader]:
    r = CountingReader(data, 8)
    roots = iso2.DOCUMENT
    code = r.bits((len(roots)).bit_length())
    return roots[code].decode(r), r


def test_reads_per_octet_are_constant_from_100_octets_to_64_kB() -> None:
    per_octet = {}
    widest = {}
    for refs in (1, 12, 100, 820):
        data = signed_header_message(refs)
        value, r = decode_counting(data)
        assert value == codec.decode(data, "iso2")
        per_octet[len(data)] = r.reads / len(data)
        widest[len(data)] = r.widest
    sizes = sorted(per_octet)
    assert sizes[0] < 300 and sizes[-1] > 65_000, sizes
    assert max(per_octet.values()) <= 2 * min(per_octet.values()), per_octet
    # each read shifts an integer no wider than the window (plus one read), at any size
    bound = (BitReader.WINDOW + 8) * 8
    assert all(w <= bound for w in widest.values()), widest


def test_trailing_octets_do_not_widen_the_reads() -> None:
    """Trailing bytes after ED are ignored, and cost nothing per read either."""
    small = signed_header_message(1)
    value, r = decode_counting(small + bytes(65_000))
    assert value == codec.decode(small, "iso2")
    assert r.widest <= (BitReader.WINDOW + 8) * 8


def test_reads_across_window_boundaries_match_the_written_bits() -> None:
    w = BitWriter()
    widths = [(i % 37) + 1 for i in range(3000)]
    for i, n in enumerate(widths):
        w.bits(i & ((1 << n) - 1), n)
    r = BitReader(w.getvalue())
    for i, n in enumerate(widths):
        assert r.bits(n) == i & ((1 << n) - 1)
        if i % 5 == 0:  # the generated fast paths step back to the start of a read
            r.pos -= n
            assert r.bits(n) == i & ((1 << n) - 1)


def test_string_length_facet_is_checked_before_the_characters() -> None:
    w = BitWriter()
    w.uint(1_000_000 + 2)  # claims a million characters; the input holds none of them
    r = BitReader(w.getvalue())
    with pytest.raises(codec.DecodeError, match="longer than 37 characters"):
        r.string(37)
    w = BitWriter()
    w.uint(1_000_000)
    with pytest.raises(codec.DecodeError, match="longer than 8 octets"):
        BitReader(w.getvalue()).binary(8)
