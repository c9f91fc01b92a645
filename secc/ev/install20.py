"""The EV's side of ISO 15118-20 certificate installation: open the contract key.

CertificateInstallationRes carries SignedInstallationData: the contract chain, the
ECDHCurve (SECP521 or X448), the back end's ephemeral DHPublicKey and the encrypted contract
private key.  ISO 15118-20 7.9.2.5 (V2G20-2491..2502):

1. ECDH between the EV's OEM provisioning private key and DHPublicKey gives a shared secret;
2. a session key of exactly 256 bits is derived from it with the NIST SP 800-56A
   concatenation KDF, hash SHA-512 (V2G20-2535: one-pass DH C(1e, 1s), the back end is
   party U, the EV party V; OtherInfo = AlgorithmID 0x01 || PartyUInfo "U" (0x55) ||
   PartyVInfo "V" (0x56), one byte each, no length prefixes — the -2 OtherInfo of
   V2G2-818 with SHA-512 instead of SHA-256).  For secp521r1 the shared secret Z is the
   x-coordinate, 66 bytes big-endian; for X448 the 56-byte RFC 7748 output;
3. AES-GCM-256 decrypts (V2G20-2497..2499, 2505): the field is IV (12 random bytes) ||
   ciphertext || tag (16 bytes), the ciphertext the private scalar (66 bytes big-endian for
   secp521r1: the 521 bits after 7 leading zero bits; 56 for X448); the AAD is the PCID
   (18 characters) followed by the contract certificate's SubjectKeyIdentifier as
   upper-case hex (V2G20-2492).  The EV refuses a plaintext whose 7 top bits are not zero
   (V2G20-2678) or whose value is not a private key of the contract certificate
   (V2G20-2507).

:func:`seal_contract_key` is the back end's side (test peers), :func:`open_contract_key`
the EV's.  :func:`check_signature` is the EV's check of the header Signature over
SignedInstallationData (SHA-512 digest of its EXI fragment, signed by the CPS leaf, whose
chain must lead to a V2G root the EV trusts); the opened key must match the contract
certificate.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash

from secc import codec
from secc.ev.pnc2 import emaid_of
from secc.ev.pnc20 import (
    DIGEST_SHA512,
    SIGNATURE_ECDSA_SHA512,
    SIGNATURE_ED448,
    Ev20Credentials,
)

OTHER_INFO = b"\x01\x55\x56"
IV_LENGTH = 12
P521_LENGTH = 66
# the order of secp521r1's base point (SEC 2 / FIPS 186-4)
P521_ORDER = int(
    "01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
    "a51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409",
    16,
)


class InstallError(Exception):
    """A CertificateInstallationRes the EV cannot use."""


@dataclass(frozen=True, slots=True)
class Installed:
    """What an installation gave the EV."""

    emaid: str
    contract_chain: tuple[bytes, ...]
    signed: bool  # the answer carried a CPS signature, and it checked


def session_key(shared_secret: bytes) -> bytes:
    """The 256-bit AES-GCM key from the ECDH shared secret."""
    return ConcatKDFHash(hashes.SHA512(), 32, OTHER_INFO).derive(shared_secret)


def aad(pcid: str, contract_leaf: x509.Certificate) -> bytes:
    """PCID followed by the contract certificate's SKI in upper-case hex (V2G20-2492)."""
    ski = contract_leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return pcid.encode() + ski.digest.hex().upper().encode()


def pcid_of(oem_leaf_der: bytes) -> str:
    leaf = x509.load_der_x509_certificate(oem_leaf_der)
    return str(leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def seal_contract_key(
    contract_key: ec.EllipticCurvePrivateKey,
    oem_public: ec.EllipticCurvePublicKey,
    pcid: str,
    contract_leaf: x509.Certificate,
    *,
    random: Callable[[int], bytes] = os.urandom,
) -> tuple[bytes, bytes]:
    """The back end's side: (DHPublicKey (133 bytes), SECP521_EncryptedPrivateKey (94))."""
    ephemeral = ec.generate_private_key(ec.SECP521R1())
    key = session_key(ephemeral.exchange(ec.ECDH(), oem_public))
    iv = random(IV_LENGTH)
    scalar = contract_key.private_numbers().private_value.to_bytes(P521_LENGTH, "big")
    sealed = iv + AESGCM(key).encrypt(iv, scalar, aad(pcid, contract_leaf))
    point = ephemeral.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return point, sealed


def open_contract_key(
    oem_key: Any, dh_public: bytes, sealed: bytes, pcid: str, contract_leaf: x509.Certificate
) -> ec.EllipticCurvePrivateKey:
    """The EV's side: the contract private key (secp521r1), or :class:`InstallError`."""
    if not isinstance(oem_key, ec.EllipticCurvePrivateKey) or oem_key.curve.name != "secp521r1":
        raise InstallError("the OEM provisioning key is not a secp521r1 key")
    if len(sealed) != IV_LENGTH + P521_LENGTH + 16:
        raise InstallError(f"SECP521_EncryptedPrivateKey is {len(sealed)} bytes, not 94")
    try:
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP521R1(), dh_public)
    except ValueError as exc:
        raise InstallError(f"DHPublicKey is not a secp521r1 point: {exc}") from exc
    key = session_key(oem_key.exchange(ec.ECDH(), peer))
    try:
        scalar = AESGCM(key).decrypt(
            sealed[:IV_LENGTH], sealed[IV_LENGTH:], aad(pcid, contract_leaf)
        )
    except InvalidTag as exc:
        raise InstallError("the encrypted contract key does not decrypt (tag)") from exc
    if scalar[0] & 0xFE:
        raise InstallError("the decrypted contract key has non-zero padding bits (V2G20-2678)")
    value = int.from_bytes(scalar, "big")
    if not 0 < value < P521_ORDER:
        raise InstallError("the decrypted contract key is out of range (V2G20-2507)")
    private = ec.derive_private_key(value, ec.SECP521R1())
    leaf_key = contract_leaf.public_key()
    if (
        not isinstance(leaf_key, ec.EllipticCurvePublicKey)
        or private.public_key().public_numbers() != leaf_key.public_numbers()
    ):
        raise InstallError("the decrypted key does not belong to the contract certificate")
    return private


def check_signature(res: Any, v2g_roots: Sequence[x509.Certificate]) -> None:
    """The CPS signature of a CertificateInstallationRes, as the EV checks it: the
    Reference to SignedInstallationData (SHA-512 of its fragment), the SignatureValue by
    the CPS leaf (ECDSA secp521r1 / SHA-512 raw r||s, or Ed448), the CPS chain up to one
    of ``v2g_roots``.  Raises :class:`InstallError`."""
    signature = res.header.signature
    if signature is None:
        raise InstallError("CertificateInstallationRes is not signed")
    data = res.signed_installation_data
    info = signature.signed_info
    refs = [r for r in info.reference if r.uri == "#" + data.id]
    if len(refs) != 1 or refs[0].digest_method.algorithm != DIGEST_SHA512:
        raise InstallError("the signature has no SHA-512 Reference to SignedInstallationData")
    # lenient: the digest covers what was received, values outside their facets included
    fragment = codec.encode_fragment(
        data, "iso20-common", name="SignedInstallationData", lenient=True
    )
    if hashlib.sha512(fragment).digest() != bytes(refs[0].digest_value):
        raise InstallError("SignedInstallationData does not match its digest")
    chain = res.cps_certificate_chain
    subs = chain.sub_certificates.certificate if chain.sub_certificates is not None else ()
    certs = [x509.load_der_x509_certificate(bytes(d)) for d in (chain.certificate, *subs)]
    key = certs[0].public_key()
    value = bytes(signature.signature_value.value)
    signed = codec.encode_fragment(info)
    method = info.signature_method.algorithm
    try:
        if method == SIGNATURE_ED448 and isinstance(key, ed448.Ed448PublicKey):
            key.verify(value, signed)
        elif (
            method == SIGNATURE_ECDSA_SHA512
            and isinstance(key, ec.EllipticCurvePublicKey)
            and key.curve.name == "secp521r1"
            and len(value) == 2 * P521_LENGTH
        ):
            r, s_ = (
                int.from_bytes(value[:P521_LENGTH], "big"),
                int.from_bytes(value[P521_LENGTH:], "big"),
            )
            key.verify(encode_dss_signature(r, s_), signed, ec.ECDSA(hashes.SHA512()))
        else:
            raise InstallError(f"SignatureMethod {method} does not fit the CPS key")
    except InvalidSignature as exc:
        raise InstallError("the CPS signature does not verify") from exc
    for cert, issuer in itertools.pairwise(certs):
        _issued_by(cert, issuer)
    top = certs[-1]
    for root in v2g_roots:
        if root.subject == top.issuer:
            _issued_by(top, root)
            return
    raise InstallError(
        f"the CPS chain does not lead to a trusted V2G root ({top.issuer.rfc4514_string()})"
    )


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise InstallError(f"{cert.subject.rfc4514_string()} is not issued by its CA") from exc


def take_installation(res: Any, credentials: Ev20Credentials) -> tuple[Ev20Credentials, Installed]:
    """The EV's credentials with the contract a CertificateInstallationRes installs; its
    CPS signature is checked where it has one (:attr:`Installed.signed`)."""
    signed = res.header.signature is not None
    if signed:
        check_signature(res, credentials.v2g_roots)
    data = res.signed_installation_data
    curve = str(getattr(data.ecdh_curve, "value", data.ecdh_curve))
    if curve != "SECP521" or data.secp521_encrypted_private_key is None:
        raise InstallError(f"this EV decrypts SECP521 contract keys only, not {curve}")
    chain = data.contract_certificate_chain
    der = (bytes(chain.certificate), *(bytes(c) for c in chain.sub_certificates.certificate))
    leaf = x509.load_der_x509_certificate(der[0])
    if not credentials.oem_chain:
        raise InstallError("no OEM provisioning certificate")
    pcid = pcid_of(credentials.oem_chain[0])
    key = open_contract_key(
        credentials.oem_key,
        bytes(data.dh_public_key),
        bytes(data.secp521_encrypted_private_key),
        pcid,
        leaf,
    )
    emaid = emaid_of(der[0])
    return (
        replace(credentials, contract_chain=der, contract_key=key, emaid=emaid),
        Installed(emaid, der, signed),
    )
