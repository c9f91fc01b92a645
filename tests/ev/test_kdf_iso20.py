"""The ISO 15118-20 contract-key encryption of CertificateInstallationRes, checked against a
reference written here from the documented steps, not by calling the code under test:

- session key: NIST SP 800-56A concatenation KDF, SHA-512, 256 bits, Z the ECDH shared
  secret (secp521r1: the x-coordinate, 66 bytes), OtherInfo = AlgorithmID 0x01 ||
  PartyUInfo "U" (0x55, the back end) || PartyVInfo "V" (0x56, the EV) [V2G20-2535];
- AES-GCM-256, a 96-bit IV, a 128-bit tag; the field is IV || ciphertext || tag, the
  plaintext the 521-bit scalar big-endian in 66 bytes (7 leading zero bits)
  [V2G20-2497..2499, 2505];
- AAD = PCID (18 characters) || the contract certificate's SKI in upper-case hex
  [V2G20-2492].

The reference uses only ``hashlib`` and the ``cryptography`` primitives (ECDH, AES-GCM);
a pinned digest of one fully deterministic blob (fixed scalars and IV) guards against a
drift that would move both sides at once."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from secc.ev.install20 import InstallError, open_contract_key, seal_contract_key, session_key

PCID = "ABCDEFGHIJ12345678"  # 18 characters
IV = bytes.fromhex("000102030405060708090a0b")
OEM_SCALAR = int("1" * 150) % (2**520)
EPHEMERAL_SCALAR = int("2" * 150) % (2**520)
CONTRACT_SCALAR = int("3" * 150) % (2**519)  # fewer than 521 bits: leading zero bytes too
# secp521r1's base-point order n (SEC 2, 2.6.1)
N521 = int(
    "01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
    "a51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409",
    16,
)
# SHA-256 of the SECP521_EncryptedPrivateKey the reference makes from the fixed inputs
PINNED = "16aa9b92300b5e9a68c77888eed305cb8ac19cc65f136cb093a05890b28d51ba"


def concat_kdf_sha512(z: bytes, other_info: bytes, length: int) -> bytes:
    """NIST SP 800-56A 5.8.1: Hash(counter || Z || OtherInfo), counter from 1, 32 bits."""
    out = b""
    counter = 1
    while len(out) < length:
        out += hashlib.sha512(counter.to_bytes(4, "big") + z + other_info).digest()
        counter += 1
    return out[:length]


def reference_key(z: bytes) -> bytes:
    return concat_kdf_sha512(z, bytes([0x01, 0x55, 0x56]), 32)


def reference_aad(pcid: str, leaf: x509.Certificate) -> bytes:
    ski = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    return pcid.encode("ascii") + ski.hex().upper().encode("ascii")


def p521(scalar: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(scalar, ec.SECP521R1())


def contract_leaf(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "DEABCC12345678")])
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=30))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA512())
    )


def reference_seal(
    plaintext: bytes, oem_public: ec.EllipticCurvePublicKey, leaf: x509.Certificate
) -> tuple[bytes, bytes]:
    """The back end's steps with the fixed ephemeral scalar and IV: (DHPublicKey, field)."""
    ephemeral = p521(EPHEMERAL_SCALAR)
    z = ephemeral.exchange(ec.ECDH(), oem_public)
    sealed = IV + AESGCM(reference_key(z)).encrypt(IV, plaintext, reference_aad(PCID, leaf))
    point = ephemeral.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return point, sealed


def test_session_key_is_the_concatenation_kdf_with_sha512() -> None:
    for z in (bytes(66), bytes(range(66)), b"\xff" * 56):
        assert session_key(z) == reference_key(z)
        assert len(session_key(z)) == 32
    # one SHA-512 block suffices for 256 bits: the key is the block's first half
    z = bytes(range(66))
    assert reference_key(z) == hashlib.sha512(b"\x00\x00\x00\x01" + z + b"\x01UV").digest()[:32]


def test_backend_seal_opens_by_the_documented_steps() -> None:
    oem = p521(OEM_SCALAR)
    contract = p521(CONTRACT_SCALAR)
    leaf = contract_leaf(contract)
    dh, sealed = seal_contract_key(contract, oem.public_key(), PCID, leaf, random=lambda n: IV)
    assert len(dh) == 133 and dh[0] == 0x04
    assert len(sealed) == 12 + 66 + 16 and sealed[:12] == IV
    z = oem.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP521R1(), dh))
    assert len(z) == 66
    plain = AESGCM(reference_key(z)).decrypt(sealed[:12], sealed[12:], reference_aad(PCID, leaf))
    assert len(plain) == 66 and plain[0] & 0xFE == 0
    assert int.from_bytes(plain, "big") == CONTRACT_SCALAR


def test_ev_opens_a_blob_sealed_by_the_documented_steps() -> None:
    oem = p521(OEM_SCALAR)
    leaf = contract_leaf(p521(CONTRACT_SCALAR))
    dh, sealed = reference_seal(CONTRACT_SCALAR.to_bytes(66, "big"), oem.public_key(), leaf)
    opened = open_contract_key(oem, dh, sealed, PCID, leaf)
    assert opened.private_numbers().private_value == CONTRACT_SCALAR
    with pytest.raises(InstallError):  # another PCID: another AAD
        open_contract_key(oem, dh, sealed, "ZBCDEFGHIJ12345678", leaf)


def test_pinned_vector() -> None:
    """All inputs fixed: the blob is deterministic; its digest is pinned (computed once
    with the reference above)."""
    oem = p521(OEM_SCALAR)
    leaf = contract_leaf(p521(CONTRACT_SCALAR))
    # the SKI is the SHA-1 of the public key (RFC 5280 method 1): independent of the date
    dh, sealed = reference_seal(CONTRACT_SCALAR.to_bytes(66, "big"), oem.public_key(), leaf)
    assert hashlib.sha256(dh + sealed).hexdigest() == PINNED


@pytest.mark.parametrize(
    ("plaintext", "reason"),
    [
        ((CONTRACT_SCALAR | (1 << 527)).to_bytes(66, "big"), "padding"),  # V2G20-2678
        (N521.to_bytes(66, "big"), "out of range"),  # V2G20-2507
        (bytes(66), "out of range"),
        (((N521 - 1) % (2**521)).to_bytes(66, "big"), "does not belong"),
    ],
)
def test_ev_refuses_a_decrypted_value_that_is_no_contract_key(
    plaintext: bytes, reason: str
) -> None:
    oem = p521(OEM_SCALAR)
    leaf = contract_leaf(p521(CONTRACT_SCALAR))
    dh, sealed = reference_seal(plaintext, oem.public_key(), leaf)
    with pytest.raises(InstallError, match=reason):
        open_contract_key(oem, dh, sealed, PCID, leaf)
