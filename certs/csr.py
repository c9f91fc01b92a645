"""Certificate signing requests for OCPP 2.0.1 SignCertificate, and their answer.

- ``V2GCertificate``: the SECC leaf, CN = SECC ID (ISO15118Ctrlr.SeccId), O = organization,
  C = country, DC = CPO; key usage digitalSignature + keyAgreement.
- ``ChargingStationCertificate``: the OCPP client certificate, CN = the station's serial
  number, O = the CPO name (security profile 3).

The fresh P-256 key stays in the store (``pending/``) until CertificateSigned brings the
chain; :func:`accept_certificate_signed` checks the chain against that key and installs both
atomically. :func:`sign_csr` is a tiny CA for tests and labs (the CSMS side).

The ISO 15118-20 SECC leaf (store slot ``v2g20``, renewal name :data:`ISO20_V2G`) is asked
for with the same OCPP type ``V2GCertificate`` (OCPP 2.0.1 has no other) and a CSR of the
-20 kind (:func:`build_iso20_csr`): the key algorithm of the leaf it renews, P-521 signed
with SHA-512 or Ed448 [V2G20-2674, V2G20-2319].  The CertificateSigned that answers it is
told apart from a -2 one by the leaf's public key: only the pending ``v2g20`` key fits it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import NameOID

from certs._util import PARSE_ERRORS, CertsError, Issued, PrivateKey, key_usage
from certs.store import InstallRefused, Store, StoreError

CERTIFICATE_TYPES = {"V2GCertificate": "v2g", "ChargingStationCertificate": "csms"}
MAX_CSR = 16 * 1024
ISO20_V2G = "V2GCertificate20"  # the -20 SECC leaf's renewal; on the wire: V2GCertificate


class CsrError(CertsError):
    """A CSR that cannot be made or read."""


def _subject(
    common_name: str, organization: str, country: str | None, *, cpo: bool
) -> list[x509.NameAttribute[str]]:
    """CN, O, C (two letters) and, for a V2G SECC leaf, DC=CPO."""
    if not common_name or not organization:
        raise CsrError("common name and organization are required")
    attrs = [
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
    ]
    if country:
        if len(country) != 2:
            raise CsrError(f"country must be a 2-letter code, got {country!r}")
        attrs.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country.upper()))
    if cpo:
        attrs.append(x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "CPO"))
    return attrs


def build_csr(
    key: ec.EllipticCurvePrivateKey,
    certificate_type: str,
    *,
    common_name: str,
    organization: str,
    country: str | None = None,
) -> bytes:
    """A PEM CSR for ``certificate_type`` (OCPP CertificateSigningUseEnumType)."""
    if certificate_type not in CERTIFICATE_TYPES:
        raise CsrError(f"certificate type must be one of {sorted(CERTIFICATE_TYPES)}")
    attrs = _subject(common_name, organization, country, cpo=certificate_type == "V2GCertificate")
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(attrs))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage("digital_signature", "key_agreement"), critical=True)
    )
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def iso20_algorithm(key: object) -> str:
    """The -20 key kind of a P-521 or Ed448 key (public or private): the store's name."""
    if isinstance(key, (ed448.Ed448PrivateKey, ed448.Ed448PublicKey)):
        return "ed448"
    if (
        isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey))
        and key.curve.name == "secp521r1"
    ):
        return "secp521r1"
    raise CsrError("an ISO 15118-20 key is ECDSA P-521 or Ed448")


def build_iso20_csr(
    key: PrivateKey,
    *,
    common_name: str,
    organization: str,
    country: str | None = None,
) -> bytes:
    """The PEM CSR of the ISO 15118-20 SECC leaf: the subject of a V2GCertificate CSR
    (CN = SECC ID, O, C, DC=CPO), a P-521 key signed with SHA-512 (key usage
    digitalSignature + keyAgreement) or an Ed448 key (digitalSignature only: RFC 9295
    forbids keyAgreement on an Ed448 key)."""
    algorithm = iso20_algorithm(key)
    attrs = _subject(common_name, organization, country, cpo=True)
    usage = (
        ("digital_signature",) if algorithm == "ed448" else ("digital_signature", "key_agreement")
    )
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(attrs))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(*usage), critical=True)
    )
    if isinstance(key, ed448.Ed448PrivateKey):
        csr = builder.sign(key, None)
    else:
        csr = builder.sign(key, hashes.SHA512())
    return csr.public_bytes(serialization.Encoding.PEM)


def request_iso20_certificate(
    store: Store,
    algorithm: str,
    *,
    common_name: str,
    organization: str,
    country: str | None = None,
) -> bytes:
    """SignCertificate for the -20 SECC leaf: a fresh ``algorithm`` key (``secp521r1`` or
    ``ed448``) kept as the pending ``v2g20`` key, and the PEM CSR to send."""
    try:
        key = store.new_pending_iso20_key(algorithm)
    except StoreError as exc:
        raise CsrError(str(exc)) from exc
    return build_iso20_csr(key, common_name=common_name, organization=organization, country=country)


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    if not data or len(data) > MAX_CSR:
        raise CsrError(f"{len(data)} bytes is not a CSR")
    try:
        if b"-----BEGIN" in data:
            csr = x509.load_pem_x509_csr(data)
        else:
            csr = x509.load_der_x509_csr(data)
        _ = csr.subject, csr.extensions, csr.public_key()
        signature_ok = csr.is_signature_valid
    except PARSE_ERRORS as exc:
        raise CsrError(f"not a CSR: {exc}") from exc
    if not signature_ok:
        raise CsrError("the CSR's self-signature does not verify")
    return csr


def request_certificate(
    store: Store,
    certificate_type: str,
    *,
    common_name: str,
    organization: str,
    country: str | None = None,
) -> bytes:
    """SignCertificate: a fresh key kept as pending in ``store`` and the PEM CSR to send."""
    if certificate_type not in CERTIFICATE_TYPES:
        raise CsrError(f"certificate type must be one of {sorted(CERTIFICATE_TYPES)}")
    key = store.new_pending_key(CERTIFICATE_TYPES[certificate_type])
    return build_csr(
        key, certificate_type, common_name=common_name, organization=organization, country=country
    )


@dataclass(frozen=True, slots=True)
class SignedResult:
    """The answer to CertificateSigned: "Accepted" or "Rejected" and why."""

    status: str
    reason: str


def accept_certificate_signed(
    store: Store, certificate_type: str, chain_pem: bytes, *, utc_now: dt.datetime | None
) -> SignedResult:
    """CertificateSigned: install the chain if it fits the pending key (atomically)."""
    use = CERTIFICATE_TYPES.get(certificate_type)
    if use is None:
        return SignedResult("Rejected", f"unknown certificate type {certificate_type!r}")
    try:
        store.accept_signed_chain(use, chain_pem, utc_now=utc_now)
    except (InstallRefused, StoreError) as exc:
        return SignedResult("Rejected", str(exc))
    return SignedResult("Accepted", f"{certificate_type} installed")


def sign_csr(
    csr_data: bytes,
    issuer: Issued,
    utc_now: dt.datetime,
    *,
    days: int = 365,
    ocsp_url: str | None = None,
) -> x509.Certificate:
    """Test/lab CA: issue the leaf a CSR asks for (subject and extensions from the CSR;
    ECDSA P-256/P-521 or Ed448 keys)."""
    csr = load_csr(csr_data)
    key = csr.public_key()
    if not isinstance(key, (ec.EllipticCurvePublicKey, ed448.Ed448PublicKey)):
        raise CsrError("only EC and Ed448 keys are signed")
    builder = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(issuer.certificate.subject)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(utc_now - dt.timedelta(minutes=5))
        .not_valid_after(utc_now + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False
        )
    )
    for ext in csr.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    if ocsp_url:
        from cryptography.x509.oid import AuthorityInformationAccessOID

        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
                    )
                ]
            ),
            False,
        )
    # the issuer's key chooses the signature: Ed448, ECDSA-SHA-512 from a P-521 CA (the
    # ISO 15118-20 hierarchies [V2G20-2674]), ECDSA-SHA-256 otherwise (ISO 15118-2, OCPP)
    if isinstance(issuer.key, ed448.Ed448PrivateKey):
        return builder.sign(issuer.key, None)
    if issuer.key.curve.name == "secp521r1":
        return builder.sign(issuer.key, hashes.SHA512())
    return builder.sign(issuer.key, hashes.SHA256())
