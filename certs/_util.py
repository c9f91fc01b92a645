"""Small helpers shared by the certs modules: loading, naming, fingerprints. Pure."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import NameOID

# (defined without cryptography, for the start-up path: certs.files)
from certs.files import MAX_CERT_FILE, CertificateFormatError, CertsError

__all__ = [  # (the errors and MAX_CERT_FILE are defined in certs.files: no cryptography)
    "MAX_CERT_FILE",
    "PARSE_ERRORS",
    "PEM_MARKER",
    "CertificateFormatError",
    "CertsError",
    "Issued",
    "PrivateKey",
    "basic_constraints",
    "common_name",
    "der",
    "domain_component",
    "fingerprint",
    "is_ca",
    "is_self_signed",
    "key_description",
    "key_pem",
    "key_usage",
    "load_certificate",
    "load_certificates",
    "not_after",
    "not_before",
    "pem",
    "public_key_fingerprint",
    "require_aware",
    "signed_by",
]

PEM_MARKER = b"-----BEGIN CERTIFICATE-----"
# What cryptography raises on certificate bytes it cannot make sense of.
PARSE_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    x509.InvalidVersion,
)


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """All certificates in ``data``: one DER certificate or one or more PEM blocks."""
    if not data:
        raise CertificateFormatError("empty input: no certificate")
    if len(data) > MAX_CERT_FILE:
        raise CertificateFormatError(f"{len(data)} bytes is too large for a certificate file")
    try:
        if PEM_MARKER in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
        for cert in certs:  # force parsing of the lazily decoded fields
            _ = cert.subject, cert.issuer, cert.extensions, cert.public_key()
    except PARSE_ERRORS as exc:
        raise CertificateFormatError(f"not a certificate in PEM or DER form: {exc}") from exc
    return certs


def load_certificate(data: bytes) -> x509.Certificate:
    """Exactly one certificate (PEM or DER)."""
    certs = load_certificates(data)
    if len(certs) != 1:
        raise CertificateFormatError(f"expected one certificate, found {len(certs)}")
    return certs[0]


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def pem(certs: Iterable[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


# An ISO 15118-2 key is ECDSA P-256; an ISO 15118-20 key ECDSA P-521 or Ed448.
PrivateKey = ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey


def key_pem(key: PrivateKey, password: bytes | None = None) -> bytes:
    """PEM PKCS#8, encrypted when ``password`` is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint of the DER encoding as lower-case hex."""
    return hashlib.sha256(der(cert)).hexdigest()


def common_name(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


def domain_component(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)
    return str(attrs[0].value) if attrs else None


def basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def key_usage_of(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def is_ca(cert: x509.Certificate) -> bool:
    bc = basic_constraints(cert)
    return bc is not None and bc.ca


def is_self_signed(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer and signed_by(cert, cert)


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer``'s name and key issued ``cert``."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def not_after(cert: x509.Certificate) -> dt.datetime:
    return cert.not_valid_after_utc


def not_before(cert: x509.Certificate) -> dt.datetime:
    return cert.not_valid_before_utc


def key_description(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name} ({key.curve.key_size} bit)"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    size = getattr(key, "key_size", None)
    return f"{type(key).__name__.removesuffix('PublicKey').lstrip('_')} {size or ''}".strip()


def public_key_fingerprint(cert: x509.Certificate) -> str:
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def require_aware(utc_now: dt.datetime) -> dt.datetime:
    if utc_now.tzinfo is None:
        raise ValueError("utc_now must be timezone-aware")
    return utc_now


SHA256 = hashes.SHA256


_ALL_FALSE = dict.fromkeys(
    (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    ),
    False,
)


def key_usage(*names: str) -> x509.KeyUsage:
    """A KeyUsage with the named bits set (cryptography's argument names)."""
    flags = dict(_ALL_FALSE)
    for name in names:
        if name not in flags:
            raise ValueError(f"unknown key usage {name!r}")
        flags[name] = True
    return x509.KeyUsage(**flags)


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate and its private key."""

    name: str
    certificate: x509.Certificate
    key: PrivateKey  # ECDSA P-256 (-2), P-521 or Ed448 (-20)
