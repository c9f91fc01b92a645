"""xmldsig over EXI bytes: signing and verifying round-trips; bad input is refused."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from certs.xmldsig import (
    CANONICALIZATION_EXI,
    DIGEST_SHA256,
    SIGNATURE_ECDSA_SHA256,
    Reference,
    SignatureError,
    SignedInfo,
    check_references,
    digest,
    make_signed_info,
    public_key_from_point,
    sign_signed_info,
    signature_valid,
    verify_signed_info,
)

KEY = ec.generate_private_key(ec.SECP256R1())


def test_algorithm_identifiers_are_the_iso_strings() -> None:
    assert CANONICALIZATION_EXI == "http://www.w3.org/TR/canonical-exi/"
    assert SIGNATURE_ECDSA_SHA256 == "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
    assert DIGEST_SHA256 == "http://www.w3.org/2001/04/xmlenc#sha256"


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=0, max_size=600))
def test_sign_verify_round_trip(fragment: bytes) -> None:
    sig = sign_signed_info(fragment, KEY)
    assert len(sig) == 64
    verify_signed_info(fragment, sig, KEY.public_key())
    assert not signature_valid(fragment + b"\x00", sig, KEY.public_key())


def test_wrong_key_and_malformed_signatures() -> None:
    fragment = b"\x80\x81\x12signed-info"
    sig = sign_signed_info(fragment, KEY)
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(SignatureError, match="does not verify"):
        verify_signed_info(fragment, sig, other)
    for bad in (b"", sig[:63], sig + b"\x00", bytes(64), b"\xff" * 64):
        assert not signature_valid(fragment, bad, KEY.public_key())
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(SignatureError, match="P-256"):
        verify_signed_info(fragment, sig, p384.public_key())
    with pytest.raises(ValueError, match="P-256"):
        sign_signed_info(fragment, p384)


def test_references_round_trip_and_tampering() -> None:
    fragments = {"ID1": b"\x80\x04authorization", "ID2": b"\x80\x22key"}
    signed_info = make_signed_info(fragments)
    assert [r.uri for r in signed_info.references] == ["#ID1", "#ID2"]
    assert signed_info.references[0].digest_value == digest(fragments["ID1"])
    check_references(signed_info, fragments, required_ids={"ID1", "ID2"})
    with pytest.raises(SignatureError, match="#ID2"):
        check_references(signed_info, {**fragments, "ID2": b"\x80\x22kez"})
    with pytest.raises(SignatureError, match="names no element"):
        check_references(signed_info, {"ID1": fragments["ID1"]})
    with pytest.raises(SignatureError, match="ID3 must be signed"):
        check_references(signed_info, fragments, required_ids={"ID3"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"canonicalization_method": "http://www.w3.org/2001/10/xml-exc-c14n#"},
            "Canonicalization",
        ),
        ({"signature_method": "http://www.w3.org/2000/09/xmldsig#rsa-sha1"}, "SignatureMethod"),
        ({"references": ()}, "no Reference"),
    ],
)
def test_algorithms_are_checked(change: dict[str, object], message: str) -> None:
    signed_info = dataclasses.replace(make_signed_info({"ID1": b"x"}), **change)  # type: ignore[arg-type]
    with pytest.raises(SignatureError, match=message):
        check_references(signed_info, {"ID1": b"x"})


@pytest.mark.parametrize(
    "ref",
    [
        Reference("#ID1", digest(b"x"), digest_method="http://www.w3.org/2000/09/xmldsig#sha1"),
        Reference("#ID1", digest(b"x"), transforms=("http://www.w3.org/2000/09/xmldsig#base64",)),
        Reference("ID1", digest(b"x")),
        Reference("#", digest(b"x")),
        Reference("#ID1", digest(b"x")[:20]),
    ],
)
def test_bad_references(ref: Reference) -> None:
    with pytest.raises(SignatureError):
        check_references(SignedInfo((ref,)), {"ID1": b"x"})


def test_duplicate_reference() -> None:
    ref = Reference("#ID1", digest(b"x"))
    with pytest.raises(SignatureError, match="twice"):
        check_references(SignedInfo((ref, ref)), {"ID1": b"x"})


@pytest.mark.parametrize("point", [b"", b"\x04" + bytes(64), b"\x02" + bytes(32), b"\x04" * 66])
def test_bad_points(point: bytes) -> None:
    with pytest.raises(SignatureError):
        public_key_from_point(point)
