"""Untrusted bytes: the decoder either decodes or raises DecodeError, quickly, in bounded memory.

Inputs: every prefix of several vectors; seeded random bit flips, byte inserts and
deletes and splices of vectors; hypothesis-driven mutations and random streams; crafted
streams whose length fields claim huge strings, binaries and integers.  Anything other
than DecodeError fails the test.  Bounds (safety nets, not speed targets): each decode
finishes in under 1 s and, where measured, allocates under 20 MB at its peak.

Codec bugs found this way are pinned at the end with their minimal inputs: the decoder
now refuses what the encoder would refuse (facets checked on both sides).
"""

from __future__ import annotations

import random
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from secc import codec
from secc.codec.exi.bits import BitWriter

from .vectors import CODEC_SCHEMA, ISO20_VECTORS, load_vectors, require_vectors

# a hang guard, in CPU seconds of this thread (time.thread_time): a loaded machine does
# not stretch it the way it stretches wall-clock time
TIME_BOUND_S = 1.0
MEMORY_BOUND = 20 * 1024 * 1024
SCHEMAS = ("iso2", "din", "apphand", "xmldsig")
ISO20 = ("iso20-common", "iso20-ac", "iso20-dc", "iso20-wpt", "iso20-acdp")


def decode_or_error(data: bytes, schema: str, fragment: bool, *, measure: bool = False) -> bool:
    """Decode; True if it decoded, False on DecodeError; anything else propagates."""
    if measure:
        tracemalloc.start()
    start = time.thread_time()
    try:
        if fragment:
            codec.decode_fragment(data, schema)
        else:
            codec.decode(data, schema)
        ok = True
    except codec.DecodeError:
        ok = False
    finally:
        elapsed = time.thread_time() - start
        if measure:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    assert elapsed < TIME_BOUND_S, f"decode of {data[:32].hex()}... took {elapsed:.2f} s of CPU"
    if measure:
        assert peak < MEMORY_BOUND, f"decode of {data[:32].hex()}... peaked at {peak} bytes"
    return ok


@pytest.fixture(scope="module", autouse=True)
def _warm_up() -> None:
    # import every generated module first: the first decode pays for it, not a fuzz input
    for schema in SCHEMAS + ISO20:
        codec.schema_module(schema)


def _valid() -> list[dict[str, Any]]:
    return [v for v in load_vectors() if v["valid"]]


def _target(v: dict[str, Any]) -> tuple[bytes, str, bool]:
    return bytes.fromhex(v["exi_hex"]), CODEC_SCHEMA[v["schema"]], "fragment" in v["schema"]


# ------------------------------------------------------------------------ truncation


TRUNCATED = (
    "iso2_CurrentDemandReq_ISO-2_DC",
    "iso2_CertificateInstallationRes_Signature",
    "iso2_ChargeParameterDiscoveryRes_signedSalesTariff",
    "iso2_ServiceDetailRes",
    "din_ChargeParameterDiscoveryRes",
    "din_ContractAuthenticationReq_TeslaModelY",
    "appHand_Req",
    "iso2frag_ContractSignatureCertChain",
    "xmldsigfrag_SignedInfo_AuthorizationReq",
)


@pytest.mark.parametrize("name_part", TRUNCATED)
def test_every_prefix_is_refused(name_part: str) -> None:
    v = next((v for v in require_vectors() if v["valid"] and name_part in v["name"]), None)
    assert v is not None, name_part
    data, schema, fragment = _target(v)
    if fragment:
        root, value = codec.decode_fragment(data, schema)
        canonical = len(codec.encode_fragment(value, schema, name=f"{{{root.ns}}}{root.local}"))
    else:
        canonical = len(codec.encode(codec.decode(data, schema)))
    for n in range(canonical):
        # a prefix shorter than the canonical stream lacks bits the decoder needs
        assert not decode_or_error(data[:n], schema, fragment, measure=n % 97 == 0), n
    for n in range(canonical, len(data) + 1):
        assert decode_or_error(data[:n], schema, fragment)


# -------------------------------------------------------------- seeded random mutation


def _mutate(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    d = bytearray(data)
    op = rng.randrange(5)
    if op == 0:
        for _ in range(rng.randint(1, 4)):
            bit = rng.randrange(8, len(d) * 8) if len(d) > 1 else 0
            d[bit // 8] ^= 1 << (bit % 8)
    elif op == 1:
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(1, len(d) + 1)
            d[at:at] = bytes([rng.randrange(256)])
    elif op == 2 and len(d) > 2:
        at = rng.randrange(1, len(d))
        del d[at : at + rng.randint(1, 3)]
    elif op == 3:
        other = rng.choice(others)
        a, b = rng.randrange(len(d)), rng.randrange(len(other))
        d = d[:a] + bytearray(other[b:])
    else:
        at = rng.randrange(1, len(d) + 1)
        d[at:at] = bytes([rng.choice([0xFF, 0x80, 0x7F, 0x00])]) * rng.randint(1, 40)
    return bytes(d)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_mutated_vectors_give_only_decode_errors(seed: int) -> None:
    found = _valid()
    if not found:
        pytest.skip("the vectors in ../shared are absent")
    rng = random.Random(seed)
    others = [bytes.fromhex(v["exi_hex"]) for v in found]
    decoded = refused = 0
    for i in range(5000):
        data, schema, fragment = _target(rng.choice(found))
        mutated = _mutate(rng, data, others)
        if i % 3 == 0:  # also against a schema it was not made for
            schema, fragment = rng.choice(SCHEMAS), rng.random() < 0.4
        if decode_or_error(mutated, schema, fragment, measure=i % 250 == 0):
            decoded += 1
        else:
            refused += 1
    assert refused > decoded > 0  # both paths were exercised


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_hypothesis_mutations(data: st.DataObject) -> None:
    found = _valid()
    if not found:
        pytest.skip("the vectors in ../shared are absent")
    v = data.draw(st.sampled_from(found))
    stream, schema, fragment = _target(v)
    d = bytearray(stream)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(1, len(d)))
        kind = data.draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        if kind == "flip" and at < len(d):
            d[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set" and at < len(d):
            d[at] = data.draw(st.integers(0, 255))
        elif kind == "insert":
            d[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del d[at : at + data.draw(st.integers(1, 4))]
    decode_or_error(bytes(d), schema, fragment)


@settings(max_examples=400, deadline=None)
@given(
    body=st.binary(min_size=0, max_size=64),
    schema=st.sampled_from(SCHEMAS),
    fragment=st.booleans(),
)
@example(body=b"", schema="iso2", fragment=False)
@example(body=b"\xff" * 64, schema="iso2", fragment=True)
@example(body=b"\x98\x02" + b"\xff" * 40, schema="iso2", fragment=False)
def test_random_streams(body: bytes, schema: str, fragment: bool) -> None:
    decode_or_error(b"\x80" + body, schema, fragment)


def test_not_bytes_and_bad_headers() -> None:
    for bad in (b"", b"\x00", b"\x81\x00", b"$EXI\x80", b"\xa0"):
        assert not decode_or_error(bad, "iso2", False)
        assert not decode_or_error(bad, "iso2", True)
    with pytest.raises(codec.DecodeError):
        codec.decode("8098", "iso2")  # type: ignore[arg-type]


# ---------------------------------------------------------- crafted huge length fields


def _fragment_stream(schema: str, local: str, write: Callable[[BitWriter], None]) -> bytes:
    roots = codec.schema_module(schema).FRAGMENT
    index = [r.local for r in roots].index(local)
    w = BitWriter()
    w.bits(0x80, 8)
    w.bits(index, (len(roots) + 1).bit_length())
    w.bits(0, 1)  # CH: the first production of a simple element
    write(w)
    return w.getvalue() + b"A" * 64


HUGE = (9, 4096, 2**31, 2**62, 2**100)
# (schema, simple-typed fragment element, kind): strings and binaries with and without
# maxLength, the unbounded xs:integer
CRAFTED = (
    ("iso2", "X509IssuerName", "str"),
    ("iso2", "EVSEID", "str"),
    ("iso2", "X509Certificate", "bytes"),
    ("iso2", "Certificate", "bytes"),
    ("iso2", "SessionID", "bytes"),
    ("iso2", "X509SerialNumber", "int"),
    ("din", "EVSEID", "bytes"),
    ("xmldsig", "DigestValue", "bytes"),
    ("xmldsig", "KeyName", "str"),
)


@pytest.mark.parametrize(("schema", "local", "kind"), CRAFTED)
@pytest.mark.parametrize("claimed", HUGE)
def test_huge_length_fields_are_refused_without_allocating(
    schema: str, local: str, kind: str, claimed: int
) -> None:
    def write(w: BitWriter) -> None:
        if kind == "int":
            w.bits(0, 1)  # sign
        w.uint(claimed + 2 if kind == "str" else claimed)

    data = _fragment_stream(schema, local, write)
    assert not decode_or_error(data, schema, True, measure=True)


def test_endless_unsigned_integer_is_refused() -> None:
    # continuation bit set in every octet: the reader stops after 20 octets
    data = _fragment_stream("iso2", "X509SerialNumber", lambda w: w.bits(0, 1)) + b"\xff" * 4096
    assert not decode_or_error(data, "iso2", True, measure=True)
    data = _fragment_stream("iso2", "X509IssuerName", lambda w: None) + b"\xff" * 4096
    assert not decode_or_error(data, "iso2", True, measure=True)


def test_string_of_huge_code_points_is_refused() -> None:
    def write(w: BitWriter) -> None:
        w.uint(3 + 2)
        for cp in (0x41, 0x110000, 0x41):
            w.uint(cp)

    data = _fragment_stream("iso2", "X509IssuerName", write)
    assert not decode_or_error(data, "iso2", True, measure=True)


def test_long_genuine_value_is_decoded_in_proportion() -> None:
    # a 64 kB certificate that is really there decodes; memory stays near its size
    payload = bytes(range(256)) * 256
    roots = codec.schema_module("xmldsig").FRAGMENT
    w = BitWriter()
    w.bits(0x80, 8)
    width = (len(roots) + 1).bit_length()
    w.bits([r.local for r in roots].index("X509Certificate"), width)
    w.bits(0, 1)
    w.binary(payload)
    w.bits(0, 1)
    w.bits(len(roots) + 1, width)
    data = w.getvalue()
    assert decode_or_error(data, "xmldsig", True, measure=True)
    assert codec.decode_fragment(data, "xmldsig")[1] == payload


# ------------------------------------------ codec bugs found by fuzzing (now fixed)


def test_relaxed_emaid_fragment_without_id_is_a_decode_error() -> None:
    # 80 | ec: eMAID (236) in 8 bits | 9 bits 255: EE in the relaxed start state | 8 bits
    # 244: ED -> 80 ec 7f fa 00
    data = bytes.fromhex("80ec7ffa00")
    with pytest.raises(codec.DecodeError):
        codec.decode_fragment(data, "iso2")


def test_oversized_session_id_is_reported_or_refused() -> None:
    data = bytes.fromhex("80980274b1e264a3398e7a11900800")
    with pytest.raises(codec.DecodeError, match="longer than 8 octets"):
        codec.decode(data, "iso2", strict=True)
    got = codec.decode_checked(data, "iso2")
    (v,) = got.violations
    assert (v.path, v.facet, v.limit) == ("/V2G_Message/Header/SessionID", "maxLength", 8)
    assert len(v.value) > 8  # type: ignore[arg-type]
    again = codec.encode(got.message, lenient=True)
    assert data.startswith(again) and not data[len(again) :].strip(b"\0")


def test_out_of_range_unsigned_short_is_reported_or_refused() -> None:
    data = bytes.fromhex("80980217bf2c4e29b7cece919323704c00")
    with pytest.raises(codec.DecodeError, match="outside"):
        codec.decode(data, "iso2", strict=True)
    got = codec.decode_checked(data, "iso2")
    assert [v.facet for v in got.violations] == ["maxInclusive"]
    assert got.violations[0].limit == 65535
    with pytest.raises(codec.EncodeError):
        codec.encode(got.message)
    assert codec.encode(got.message, lenient=True) == data


def test_missing_required_repeated_element_is_refused() -> None:
    with pytest.raises(codec.DecodeError, match="required element"):
        codec.decode(bytes.fromhex("809a0011b2401280"), "din")


def test_decoded_mutants_reencode() -> None:
    """Every mutant that decodes re-encodes: the decoder checks the encoder's facets."""
    found = _valid()
    if not found:
        pytest.skip("the vectors in ../shared are absent")
    rng = random.Random(7)
    others = [bytes.fromhex(v["exi_hex"]) for v in found]
    checked = violated = 0
    for _ in range(4000):
        data, schema, fragment = _target(rng.choice(found))
        if fragment:
            continue
        mutated = _mutate(rng, data, others)
        try:
            got = codec.decode_checked(mutated, schema)
        except codec.DecodeError:
            continue
        checked += 1
        message = got.message
        # lenient decode + lenient encode round-trip; the strict encoder refuses exactly
        # the messages with a violation the encoder checks (it does not check minLength)
        again = codec.encode(message, lenient=True)
        assert codec.decode(again, schema) == message
        if any(v.facet != "minLength" for v in got.violations):
            violated += 1
            with pytest.raises(codec.EncodeError):
                codec.encode(message)
            with pytest.raises(codec.DecodeError):
                codec.decode(mutated, schema, strict=True)
        else:
            assert codec.encode(message) == again
    assert checked > 100 and violated > 10


def test_oversized_string_is_reported_or_refused() -> None:
    def write(w: BitWriter) -> None:
        w.string("DE*ABC*E" + "1" * 30)
        w.bits(0, 1)  # EE

    roots = codec.schema_module("iso2").FRAGMENT
    w = BitWriter()
    w.bits(0x80, 8)
    width = (len(roots) + 1).bit_length()
    index = next(i for i, r in enumerate(roots) if r.local == "EVSEID" and r.ns.endswith("MsgBody"))
    w.bits(index, width)
    w.bits(0, 1)
    write(w)
    w.bits(len(roots) + 1, width)
    data = w.getvalue()
    with pytest.raises(codec.DecodeError, match="longer than 37 characters"):
        codec.decode_fragment(data, "iso2", strict=True)
    got = codec.decode_checked(data, "iso2", fragment=True)
    assert [(v.path, v.facet, v.limit) for v in got.violations] == [("/EVSEID", "maxLength", 37)]
    assert codec.encode_fragment(got.message, "iso2", name="EVSEID", lenient=True) == data


# ------------------------------------------------------------------- ISO 15118-20


def _iso20_valid() -> list[dict[str, Any]]:
    return [v for v in load_vectors(ISO20_VECTORS) if v["valid"] and v["schema"] != "apphand"]


@pytest.mark.parametrize("message", ["DC_ChargeLoopReq", "ServiceDiscoveryRes", "AC_ChargeLoopRes"])
def test_iso20_every_prefix_is_refused(message: str) -> None:
    v = next((v for v in _iso20_valid() if v["message"] == message), None)
    if v is None:
        pytest.skip(f"{ISO20_VECTORS} is absent")
    data, schema = bytes.fromhex(v["exi_hex"]), v["schema"]
    assert len(codec.encode(codec.decode(data, schema))) == len(data)
    for n in range(len(data)):
        assert not decode_or_error(data[:n], schema, False, measure=n % 31 == 0), n
    assert decode_or_error(data, schema, False)


@pytest.mark.parametrize("seed", [1, 2])
def test_iso20_mutated_vectors_give_only_decode_errors(seed: int) -> None:
    found = _iso20_valid()
    if not found:
        pytest.skip(f"{ISO20_VECTORS} is absent")
    rng = random.Random(seed)
    others = [bytes.fromhex(v["exi_hex"]) for v in found]
    decoded = refused = 0
    for i in range(4000):
        v = rng.choice(found)
        mutated = _mutate(rng, bytes.fromhex(v["exi_hex"]), others)
        schema, fragment = v["schema"], False
        if i % 3 == 0:  # also against another -20 set, as a document or a fragment
            schema, fragment = rng.choice(ISO20), rng.random() < 0.4
        if decode_or_error(mutated, schema, fragment, measure=i % 250 == 0):
            decoded += 1
        else:
            refused += 1
    assert refused > decoded > 0


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(min_size=0, max_size=64),
    schema=st.sampled_from(ISO20),
    fragment=st.booleans(),
)
def test_iso20_random_streams(body: bytes, schema: str, fragment: bool) -> None:
    decode_or_error(b"\x80" + body, schema, fragment)
