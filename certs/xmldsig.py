"""ISO 15118-2 XML signatures over EXI: digests, SignedInfo checks, ECDSA sign/verify. Pure.

ISO 15118-2 signs messages (AuthorizationReq, MeteringReceiptReq, CertificateInstallation /
Update Req and Res) with a detached XML signature whose canonical form is EXI
[V2G2-???]:

- each ``Reference`` names an element by ``URI="#<Id>"``; its ``DigestValue`` is the SHA-256
  of that element encoded as an EXI *fragment* (the bytes the caller's codec produced);
- ``SignatureValue`` is ECDSA P-256 / SHA-256 over the ``SignedInfo`` element encoded as an
  EXI fragment against the xmldsig schema, written raw as r || s (2 x 32 bytes).

ISO 15118-20 (``suite="iso20"``) signs the same way with its own algorithms: digests
SHA-512 (or SHAKE256 with 64 bytes of output), signatures ECDSA secp521r1 / SHA-512 raw
r || s (2 x 66 bytes) or Ed448 (114 bytes), the SignatureMethod naming the one used.

This module works on those bytes and on small value objects for SignedInfo; it neither
encodes EXI nor does I/O. Failures raise :class:`SignatureError`, which carries the ISO
response code FAILED_SignatureError.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from certs._util import CertsError

CANONICALIZATION_EXI = "http://www.w3.org/TR/canonical-exi/"
SIGNATURE_ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
DIGEST_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
RESPONSE_CODE = "FAILED_SignatureError"
SIGNATURE_LENGTH = 64
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
# ISO 15118-20
SIGNATURE_ECDSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"
SIGNATURE_ED448 = "http://www.w3.org/2021/04/xmldsig-more#eddsa-ed448"
DIGEST_SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
DIGEST_SHAKE256 = "http://www.w3.org/2021/04/xmldsig-more#shake256"
P521_SIGNATURE_LENGTH = 132
ED448_SIGNATURE_LENGTH = 114
# the order of secp521r1's base point: 0x01FF...FFFA51868783BF2F966B7FCC0148F709A5D03B...
_P521_ORDER = int(
    "01FF"
    + "FFFFFFFF" * 7
    + "FFFFFFFA"
    + "51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409",
    16,
)
_ISO20_DIGESTS = frozenset({DIGEST_SHA512, DIGEST_SHAKE256})
_ISO20_SIGNATURES = frozenset({SIGNATURE_ECDSA_SHA512, SIGNATURE_ED448})


class SignatureError(CertsError):
    """A signature or digest that does not check; answered with FAILED_SignatureError."""

    response_code = RESPONSE_CODE


@dataclass(frozen=True, slots=True)
class Reference:
    """xmldsig Reference: URI ``#Id``, Transforms, DigestMethod, DigestValue."""

    uri: str
    digest_value: bytes
    digest_method: str = DIGEST_SHA256
    transforms: tuple[str, ...] = (CANONICALIZATION_EXI,)

    @property
    def element_id(self) -> str:
        if not self.uri.startswith("#") or len(self.uri) < 2:
            raise SignatureError(
                f"Reference URI {self.uri!r} is not a same-document '#Id' reference"
            )
        return self.uri[1:]


@dataclass(frozen=True, slots=True)
class SignedInfo:
    """xmldsig SignedInfo with the ISO 15118-2 algorithms as defaults."""

    references: tuple[Reference, ...]
    canonicalization_method: str = CANONICALIZATION_EXI
    signature_method: str = SIGNATURE_ECDSA_SHA256


def digest(fragment: bytes, method: str = DIGEST_SHA256) -> bytes:
    """The DigestValue of a Reference to an EXI fragment: SHA-256 (-2), SHA-512 or
    SHAKE256/512 bits (-20)."""
    if method == DIGEST_SHA512:
        return hashlib.sha512(fragment).digest()
    if method == DIGEST_SHAKE256:
        return hashlib.shake_256(fragment).digest(64)
    return hashlib.sha256(fragment).digest()


def make_reference(element_id: str, fragment: bytes) -> Reference:
    return Reference(uri=f"#{element_id}", digest_value=digest(fragment))


def make_signed_info(fragments_by_id: Mapping[str, bytes]) -> SignedInfo:
    """A SignedInfo referencing each fragment (in the mapping's order)."""
    if not fragments_by_id:
        raise ValueError("a SignedInfo needs at least one Reference")
    return SignedInfo(tuple(make_reference(i, f) for i, f in fragments_by_id.items()))


def check_algorithms(signed_info: SignedInfo, suite: str = "iso2") -> None:
    """The algorithms ISO 15118-2 (``suite="iso2"``) or -20 (``"iso20"``) allows, or
    :class:`SignatureError`."""
    iso20 = suite == "iso20"
    signatures = _ISO20_SIGNATURES if iso20 else {SIGNATURE_ECDSA_SHA256}
    digests = _ISO20_DIGESTS if iso20 else {DIGEST_SHA256}
    if signed_info.canonicalization_method != CANONICALIZATION_EXI:
        raise SignatureError(f"CanonicalizationMethod {signed_info.canonicalization_method!r}")
    if signed_info.signature_method not in signatures:
        raise SignatureError(f"SignatureMethod {signed_info.signature_method!r}")
    if not signed_info.references:
        raise SignatureError("SignedInfo has no Reference")
    for ref in signed_info.references:
        if ref.digest_method not in digests:
            raise SignatureError(f"DigestMethod {ref.digest_method!r} in {ref.uri}")
        if any(t != CANONICALIZATION_EXI for t in ref.transforms):
            raise SignatureError(f"Transform {ref.transforms!r} in {ref.uri}")


def check_references(
    signed_info: SignedInfo,
    fragments_by_id: Mapping[str, bytes],
    *,
    required_ids: Collection[str] = (),
    suite: str = "iso2",
) -> None:
    """Every Reference's digest matches its fragment, and ``required_ids`` are all signed.

    ``fragments_by_id`` maps an element's Id to its EXI fragment bytes (encoded by the
    caller). Raises :class:`SignatureError` naming the first problem.
    """
    check_algorithms(signed_info, suite)
    size = 64 if suite == "iso20" else 32
    seen: set[str] = set()
    for ref in signed_info.references:
        element_id = ref.element_id
        if element_id in seen:
            raise SignatureError(f"element {element_id!r} is referenced twice")
        seen.add(element_id)
        fragment = fragments_by_id.get(element_id)
        if fragment is None:
            raise SignatureError(f"Reference {ref.uri} names no element of the message")
        if len(ref.digest_value) != size:
            raise SignatureError(
                f"DigestValue of {ref.uri} is {len(ref.digest_value)} bytes, not {size}"
            )
        if digest(fragment, ref.digest_method) != ref.digest_value:
            raise SignatureError(f"digest of {ref.uri} does not match the element")
    missing = sorted(set(required_ids) - seen)
    if missing:
        raise SignatureError(f"element(s) {', '.join(missing)} must be signed but are not")


def sign_signed_info(fragment: bytes, private_key: ec.EllipticCurvePrivateKey) -> bytes:
    """ECDSA P-256 / SHA-256 over the SignedInfo fragment, as 64 raw bytes r || s."""
    if private_key.curve.name != "secp256r1":
        raise ValueError("ISO 15118-2 signatures use P-256 keys")
    der_sig = private_key.sign(fragment, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der_sig)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify_signed_info(
    fragment: bytes, signature_rs: bytes, public_key: ec.EllipticCurvePublicKey
) -> None:
    """Check a raw r || s signature over the SignedInfo fragment; raise if it fails."""
    if (
        not isinstance(public_key, ec.EllipticCurvePublicKey)
        or public_key.curve.name != "secp256r1"
    ):
        raise SignatureError("the signer's key is not an ECDSA P-256 key")
    if len(signature_rs) != SIGNATURE_LENGTH:
        raise SignatureError(f"SignatureValue is {len(signature_rs)} bytes, not {SIGNATURE_LENGTH}")
    r = int.from_bytes(signature_rs[:32], "big")
    s = int.from_bytes(signature_rs[32:], "big")
    if not (0 < r < _P256_ORDER and 0 < s < _P256_ORDER):
        raise SignatureError("SignatureValue r or s is out of range")
    try:
        public_key.verify(encode_dss_signature(r, s), fragment, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise SignatureError("SignatureValue does not verify over SignedInfo") from exc


def signature_valid(
    fragment: bytes, signature_rs: bytes, public_key: ec.EllipticCurvePublicKey
) -> bool:
    """:func:`verify_signed_info` as a boolean."""
    try:
        verify_signed_info(fragment, signature_rs, public_key)
    except SignatureError:
        return False
    return True


def public_key_from_point(point: bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from its uncompressed point (0x04 || X || Y, 65 bytes)."""
    if len(point) != 65 or point[0] != 4:
        raise SignatureError(f"not an uncompressed P-256 point ({len(point)} bytes)")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError as exc:
        raise SignatureError(f"not a point on P-256: {exc}") from exc


Iso20PrivateKey = ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey
Iso20PublicKey = ec.EllipticCurvePublicKey | ed448.Ed448PublicKey


def iso20_signature_method(key: Iso20PrivateKey | Iso20PublicKey) -> str:
    """The -20 SignatureMethod for a key: ecdsa-sha512 (secp521r1) or eddsa-ed448."""
    if isinstance(key, ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
        return SIGNATURE_ED448
    ec_key = isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey)
    if ec_key and key.curve.name == "secp521r1":
        return SIGNATURE_ECDSA_SHA512
    raise SignatureError("ISO 15118-20 signs with secp521r1 or Ed448 keys only")


def sign_signed_info_iso20(fragment: bytes, private_key: Iso20PrivateKey) -> bytes:
    """-20: ECDSA secp521r1 / SHA-512 as 132 raw bytes r || s, or Ed448 (114 bytes)."""
    if isinstance(private_key, ed448.Ed448PrivateKey):
        return private_key.sign(fragment)
    iso20_signature_method(private_key)  # secp521r1 or SignatureError
    r, s = decode_dss_signature(private_key.sign(fragment, ec.ECDSA(hashes.SHA512())))
    return r.to_bytes(66, "big") + s.to_bytes(66, "big")


def verify_signed_info_iso20(
    fragment: bytes, signature: bytes, public_key: object, signature_method: str
) -> None:
    """-20: check ``signature`` over the SignedInfo fragment with the signer's key, whose
    type must be the one ``signature_method`` names; raise :class:`SignatureError`."""
    if signature_method == SIGNATURE_ED448:
        if not isinstance(public_key, ed448.Ed448PublicKey):
            raise SignatureError("SignatureMethod is Ed448 but the signer's key is not")
        if len(signature) != ED448_SIGNATURE_LENGTH:
            raise SignatureError(f"Ed448 SignatureValue is {len(signature)} bytes, not 114")
        try:
            public_key.verify(signature, fragment)
        except InvalidSignature as exc:
            raise SignatureError("SignatureValue does not verify over SignedInfo") from exc
        return
    if signature_method != SIGNATURE_ECDSA_SHA512:
        raise SignatureError(f"SignatureMethod {signature_method!r} is not an ISO 15118-20 one")
    if (
        not isinstance(public_key, ec.EllipticCurvePublicKey)
        or public_key.curve.name != "secp521r1"
    ):
        raise SignatureError("the signer's key is not an ECDSA secp521r1 key")
    if len(signature) != P521_SIGNATURE_LENGTH:
        raise SignatureError(
            f"SignatureValue is {len(signature)} bytes, not {P521_SIGNATURE_LENGTH}"
        )
    r = int.from_bytes(signature[:66], "big")
    s = int.from_bytes(signature[66:], "big")
    if not (0 < r < _P521_ORDER and 0 < s < _P521_ORDER):
        raise SignatureError("SignatureValue r or s is out of range")
    try:
        public_key.verify(encode_dss_signature(r, s), fragment, ec.ECDSA(hashes.SHA512()))
    except InvalidSignature as exc:
        raise SignatureError("SignatureValue does not verify over SignedInfo") from exc
