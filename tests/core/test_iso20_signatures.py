"""The ISO 15118-20 signature primitives the core uses (certs.xmldsig, suite iso20):
digests SHA-512 and SHAKE256, ECDSA secp521r1 raw r||s and Ed448, and their refusals."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448

from certs import xmldsig


def test_digests() -> None:
    data = b"\x80\x01fragment"
    assert xmldsig.digest(data, xmldsig.DIGEST_SHA512) == hashlib.sha512(data).digest()
    assert xmldsig.digest(data, xmldsig.DIGEST_SHAKE256) == hashlib.shake_256(data).digest(64)
    assert xmldsig.digest(data) == hashlib.sha256(data).digest()  # -2 default unchanged


def _info(method: str, digest_method: str, fragment: bytes) -> xmldsig.SignedInfo:
    ref = xmldsig.Reference("#A", xmldsig.digest(fragment, digest_method), digest_method)
    return xmldsig.SignedInfo((ref,), signature_method=method)


@pytest.mark.parametrize("digest_method", [xmldsig.DIGEST_SHA512, xmldsig.DIGEST_SHAKE256])
def test_iso20_references(digest_method: str) -> None:
    frag = b"\x80element"
    info = _info(xmldsig.SIGNATURE_ECDSA_SHA512, digest_method, frag)
    xmldsig.check_references(info, {"A": frag}, required_ids=("A",), suite="iso20")
    with pytest.raises(xmldsig.SignatureError, match="does not match"):
        xmldsig.check_references(info, {"A": frag + b"x"}, suite="iso20")
    # the -2 suite refuses the -20 algorithms, and the -20 suite the -2 ones
    with pytest.raises(xmldsig.SignatureError):
        xmldsig.check_references(info, {"A": frag})
    old = _info(xmldsig.SIGNATURE_ECDSA_SHA256, xmldsig.DIGEST_SHA256, frag)
    with pytest.raises(xmldsig.SignatureError):
        xmldsig.check_references(old, {"A": frag}, suite="iso20")


@pytest.mark.parametrize("kind", ["p521", "ed448"])
def test_sign_and_verify(kind: str) -> None:
    key = (
        ed448.Ed448PrivateKey.generate()
        if kind == "ed448"
        else ec.generate_private_key(ec.SECP521R1())
    )
    method = xmldsig.iso20_signature_method(key)
    sig = xmldsig.sign_signed_info_iso20(b"signed info", key)
    assert len(sig) == (114 if kind == "ed448" else 132)
    xmldsig.verify_signed_info_iso20(b"signed info", sig, key.public_key(), method)
    with pytest.raises(xmldsig.SignatureError, match="does not verify"):
        xmldsig.verify_signed_info_iso20(b"signed inf0", sig, key.public_key(), method)
    with pytest.raises(xmldsig.SignatureError):  # truncated
        xmldsig.verify_signed_info_iso20(b"signed info", sig[:-1], key.public_key(), method)
    other = (
        xmldsig.SIGNATURE_ECDSA_SHA512 if kind == "ed448" else xmldsig.SIGNATURE_ED448
    )  # the method naming the other algorithm than the key's
    with pytest.raises(xmldsig.SignatureError):
        xmldsig.verify_signed_info_iso20(b"signed info", sig, key.public_key(), other)


def test_wrong_curves_and_out_of_range_values() -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(xmldsig.SignatureError):
        xmldsig.iso20_signature_method(p256)
    with pytest.raises(xmldsig.SignatureError):
        xmldsig.sign_signed_info_iso20(b"x", p256)
    with pytest.raises(xmldsig.SignatureError, match="secp521r1"):
        xmldsig.verify_signed_info_iso20(
            b"x", bytes(132), p256.public_key(), xmldsig.SIGNATURE_ECDSA_SHA512
        )
    p521 = ec.generate_private_key(ec.SECP521R1()).public_key()
    with pytest.raises(xmldsig.SignatureError, match="out of range"):
        xmldsig.verify_signed_info_iso20(b"x", bytes(132), p521, xmldsig.SIGNATURE_ECDSA_SHA512)
    with pytest.raises(xmldsig.SignatureError, match="out of range"):
        xmldsig.verify_signed_info_iso20(b"x", b"\xff" * 132, p521, xmldsig.SIGNATURE_ECDSA_SHA512)
    with pytest.raises(xmldsig.SignatureError):
        xmldsig.verify_signed_info_iso20(b"x", bytes(132), p521, xmldsig.SIGNATURE_ECDSA_SHA256)


def test_the_p521_order_constant() -> None:
    """n - 1 is a valid secp521r1 private value, n is not (n·G is the point at infinity)."""
    n = xmldsig._P521_ORDER
    assert n.bit_length() == 521
    ec.derive_private_key(n - 1, ec.SECP521R1())
    with pytest.raises(ValueError):
        ec.derive_private_key(n, ec.SECP521R1())


def test_iso20_chain_suite() -> None:
    """certs.validate with suite iso20: P-521/SHA-512 and Ed448 chains pass, a P-256 one
    is a chain error there (and a P-521 one in the -2 suite), a leaf not yet valid has its
    own code."""
    import datetime as dt

    from certs import validate

    from .iso20_pki import EMAID, make_chain

    now = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
    for kind in ("p521", "ed448"):
        chain = make_chain(EMAID, now, kind)
        ders = chain.ders
        verdict = validate.validate_contract_chain(
            ders[0], ders[1:], [chain.root], now, suite="iso20"
        )
        assert verdict.ok and verdict.emaid == EMAID, verdict.reason
        old = validate.validate_contract_chain(ders[0], ders[1:], [chain.root], now)
        assert old.response_code == validate.FAILED_CERT_CHAIN_ERROR
    p256 = make_chain(EMAID, now, "p256")
    ders = p256.ders
    verdict = validate.validate_contract_chain(ders[0], ders[1:], [p256.root], now, suite="iso20")
    assert verdict.response_code == validate.FAILED_CERT_CHAIN_ERROR
    early = make_chain(EMAID, now, leaf_start=now + dt.timedelta(days=2))
    ders = early.ders
    verdict = validate.validate_contract_chain(ders[0], ders[1:], [early.root], now, suite="iso20")
    assert verdict.response_code == validate.FAILED_CERTIFICATE_NOT_YET_VALID
    with pytest.raises(ValueError):
        validate.validate_chain(ders[0], ders[1:], [early.root], now, suite="iso21")
