"""OCSP data for OCPP 2.0.1 and the station's OCSP cache. Pure (no network, no files).

- :class:`CertificateHashData` is OCPP's CertificateHashDataType (hashAlgorithm,
  issuerNameHash and issuerKeyHash as hex, serialNumber as hex without leading zeros), the
  key of GetInstalledCertificateIds / DeleteCertificate.
- :class:`OcspRequestData` adds the responderURL from the certificate's AIA extension: the
  ``iso15118CertificateHashData`` entries of Authorize and the request of
  GetCertificateStatus.
- :func:`build_request` makes a DER OCSP request (RFC 6960) for a certificate;
  :func:`judge_response` parses a DER OCSP response and judges it: status
  (good / revoked / unknown), signer (the issuer itself or a responder it delegated to with
  id-kp-OCSPSigning), freshness (thisUpdate / nextUpdate against an explicit ``utc_now``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from certs._util import PARSE_ERRORS, CertsError, require_aware, signed_by

HASH_ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}
MAX_RESPONSE = 64 * 1024  # an OCSP response larger than this is refused
CLOCK_SKEW = dt.timedelta(minutes=5)
_HEX = set("0123456789abcdefABCDEF")


class OcspError(CertsError):
    """Malformed OCSP input (request data from a CSMS, a response that does not parse)."""


def _hex_field(value: object, name: str, max_len: int) -> str:
    if not isinstance(value, str) or not value or len(value) > max_len or set(value) - _HEX:
        raise OcspError(f"{name}: expected hex text of at most {max_len} characters, got {value!r}")
    return value.lower()


@dataclass(frozen=True, slots=True)
class CertificateHashData:
    """OCPP 2.0.1 CertificateHashDataType."""

    hash_algorithm: str
    issuer_name_hash: str
    issuer_key_hash: str
    serial_number: str

    def to_ocpp(self) -> dict[str, str]:
        return {
            "hashAlgorithm": self.hash_algorithm,
            "issuerNameHash": self.issuer_name_hash,
            "issuerKeyHash": self.issuer_key_hash,
            "serialNumber": self.serial_number,
        }

    @classmethod
    def from_ocpp(cls, data: Mapping[str, object]) -> CertificateHashData:
        """From an OCPP JSON object (camelCase) or the ``ocpp`` package's snake_case dict."""

        def get(camel: str, snake: str) -> object:
            return data.get(camel, data.get(snake))

        algorithm = get("hashAlgorithm", "hash_algorithm")
        if algorithm not in HASH_ALGORITHMS:
            raise OcspError(
                f"hashAlgorithm must be one of {sorted(HASH_ALGORITHMS)}: {algorithm!r}"
            )
        serial = _hex_field(get("serialNumber", "serial_number"), "serialNumber", 40)
        return cls(
            hash_algorithm=str(algorithm),
            issuer_name_hash=_hex_field(
                get("issuerNameHash", "issuer_name_hash"), "issuerNameHash", 128
            ),
            issuer_key_hash=_hex_field(
                get("issuerKeyHash", "issuer_key_hash"), "issuerKeyHash", 128
            ),
            serial_number=serial.lstrip("0") or "0",
        )

    def matches(self, other: CertificateHashData) -> bool:
        return (
            self.hash_algorithm == other.hash_algorithm
            and self.issuer_name_hash.lower() == other.issuer_name_hash.lower()
            and self.issuer_key_hash.lower() == other.issuer_key_hash.lower()
            and (self.serial_number.lower().lstrip("0") or "0")
            == (other.serial_number.lower().lstrip("0") or "0")
        )


@dataclass(frozen=True, slots=True)
class OcspRequestData:
    """OCPP 2.0.1 OCSPRequestDataType: hash data plus the responder URL."""

    hash_data: CertificateHashData
    responder_url: str

    def to_ocpp(self) -> dict[str, str]:
        return {**self.hash_data.to_ocpp(), "responderURL": self.responder_url}


def serial_hex(serial: int) -> str:
    """Serial number as lower-case hex without leading zeros (OCPP)."""
    return format(serial, "x")


def hash_data(
    cert: x509.Certificate, issuer: x509.Certificate, algorithm: str = "SHA256"
) -> CertificateHashData:
    """The OCSP CertID of ``cert`` (issued by ``issuer``) as OCPP hash data."""
    if algorithm not in HASH_ALGORITHMS:
        raise OcspError(f"unsupported hash algorithm {algorithm!r}")
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, issuer, HASH_ALGORITHMS[algorithm]())
        .build()
    )
    return CertificateHashData(
        hash_algorithm=algorithm,
        issuer_name_hash=request.issuer_name_hash.hex(),
        issuer_key_hash=request.issuer_key_hash.hex(),
        serial_number=serial_hex(request.serial_number),
    )


def responder_url(cert: x509.Certificate) -> str | None:
    """The first OCSP access location of the AIA extension, if any."""
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    for desc in aia:
        if desc.access_method == AuthorityInformationAccessOID.OCSP and isinstance(
            desc.access_location, x509.UniformResourceIdentifier
        ):
            return desc.access_location.value
    return None


def chain_request_data(
    chain: Sequence[x509.Certificate], root: x509.Certificate, algorithm: str = "SHA256"
) -> list[OcspRequestData]:
    """``iso15118CertificateHashData`` for a chain (leaf first, without the root).

    Each certificate is paired with its issuer (the next one, the root for the last).
    Certificates without an OCSP responder URL are left out: OCPP requires the URL.
    """
    out: list[OcspRequestData] = []
    issuers = [*chain[1:], root]
    for cert, issuer in zip(chain, issuers, strict=True):
        url = responder_url(cert)
        if url:
            out.append(OcspRequestData(hash_data(cert, issuer, algorithm), url))
    return out


def build_request(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    algorithm: str = "SHA256",
    nonce: bytes | None = None,
) -> bytes:
    """A DER OCSP request for one certificate, with an optional nonce extension."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, HASH_ALGORITHMS[algorithm]())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(Encoding.DER)


@dataclass(frozen=True, slots=True)
class OcspJudgement:
    """What the station makes of an OCSP response for one certificate."""

    status: str  # "good" | "revoked" | "unknown" | "invalid"
    reason: str
    fresh: bool = False
    this_update: dt.datetime | None = None
    next_update: dt.datetime | None = None
    revocation_time: dt.datetime | None = None

    @property
    def usable(self) -> bool:
        """A verified, fresh answer (good or revoked) the station may act on."""
        return self.fresh and self.status in {"good", "revoked"}


def _verify_signature(
    key: object, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None
) -> bool:
    if algorithm is None:
        return False
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _is_delegated_responder(responder: x509.Certificate, issuer: x509.Certificate) -> bool:
    if not signed_by(responder, issuer):
        return False
    try:
        eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.OCSP_SIGNING in eku


def judge_response(
    der: bytes,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    utc_now: dt.datetime,
    *,
    max_age: dt.timedelta = dt.timedelta(days=7),
) -> OcspJudgement:
    """Parse and judge a DER OCSP response about ``cert``; never raises on bad bytes."""
    require_aware(utc_now)
    if not der or len(der) > MAX_RESPONSE:
        return OcspJudgement("invalid", f"response of {len(der)} bytes (must be 1..{MAX_RESPONSE})")
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        return OcspJudgement("invalid", f"not an OCSP response: {exc}")
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return OcspJudgement("invalid", f"responder answered {response.response_status.name}")
    try:
        single = _find_single(response, cert, issuer)
        if single is None:
            return OcspJudgement("invalid", "the response does not cover this certificate")
        signer_key = _signer_key(response, issuer)
        if signer_key is None:
            return OcspJudgement(
                "invalid", "signed neither by the issuer nor by a delegated responder"
            )
        if not _verify_signature(
            signer_key,
            response.signature,
            response.tbs_response_bytes,
            response.signature_hash_algorithm,
        ):
            return OcspJudgement("invalid", "the response signature does not verify")
        this_update = single.this_update_utc
        next_update = single.next_update_utc
    except PARSE_ERRORS as exc:
        return OcspJudgement("invalid", f"malformed response: {exc}")
    if this_update > utc_now + CLOCK_SKEW:
        fresh, why = False, f"thisUpdate {this_update:%Y-%m-%d %H:%M} is in the future"
    elif next_update is not None:
        fresh = utc_now <= next_update + CLOCK_SKEW
        why = "fresh" if fresh else f"stale: nextUpdate {next_update:%Y-%m-%d %H:%M} has passed"
    else:
        fresh = utc_now - this_update <= max_age
        why = "fresh" if fresh else f"stale: older than {max_age} and no nextUpdate"
    status = {
        ocsp.OCSPCertStatus.GOOD: "good",
        ocsp.OCSPCertStatus.REVOKED: "revoked",
        ocsp.OCSPCertStatus.UNKNOWN: "unknown",
    }[single.certificate_status]
    revoked_at = single.revocation_time_utc if status == "revoked" else None
    return OcspJudgement(status, f"{status}, {why}", fresh, this_update, next_update, revoked_at)


def _find_single(
    response: ocsp.OCSPResponse, cert: x509.Certificate, issuer: x509.Certificate
) -> ocsp.OCSPSingleResponse | None:
    for single in response.responses:
        algo = single.hash_algorithm
        name = algo.name.upper().replace("-", "")
        if name not in HASH_ALGORITHMS:
            continue
        want = hash_data(cert, issuer, name)
        if (
            single.serial_number == cert.serial_number
            and single.issuer_name_hash.hex() == want.issuer_name_hash
            and single.issuer_key_hash.hex() == want.issuer_key_hash
        ):
            return single
    return None


def _signer_key(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> object | None:
    if _responder_is(response, issuer):
        return issuer.public_key()
    for candidate in response.certificates:
        if _responder_is(response, candidate) and _is_delegated_responder(candidate, issuer):
            return candidate.public_key()
    return None


def _responder_is(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    if response.responder_name is not None:
        return response.responder_name == cert.subject
    key_hash = response.responder_key_hash
    if key_hash is None:
        return False
    # ResponderID byKey: SHA-1 of the subjectPublicKey BIT STRING value (RFC 6960 §4.2.1).
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA1())  # noqa: S303 - mandated by RFC 6960
    digest.update(_spki_bit_string(spki))
    return digest.finalize() == key_hash


def _spki_bit_string(spki: bytes) -> bytes:
    from asn1crypto import keys  # (here: only OCSP responder checks need it; 1.4 MiB)

    info = keys.PublicKeyInfo.load(spki)
    bits: bytes = info["public_key"].contents[1:]  # drop the unused-bits octet
    return bits
