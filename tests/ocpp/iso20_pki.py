"""A small ISO 15118-20 contract PKI for the OCPP tests: an MO root, two sub-CAs and a
contract leaf on P-521 (ECDSA with SHA-512), the leaf with an OCSP responder URL and the
eMAID as common name; plus an independent computation of OCPP's CertificateHashData
(RFC 6960 CertID: hash of the issuer's DER name and of its public key's bit string)."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

EMAID = "DEABCC1234567X"
OCSP_URL = "http://ocsp.mo.example/"


@dataclass(frozen=True)
class Chain20:
    root: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # leaf, sub2, sub1
    leaf_key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> tuple[bytes, ...]:
        return tuple(c.public_bytes(Encoding.DER) for c in self.chain)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    ocsp: bool,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ocsp:
        desc = x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(OCSP_URL)
        )
        builder = builder.add_extension(x509.AuthorityInformationAccess([desc]), critical=False)
    return builder.sign(issuer_key, hashes.SHA512())


def make_chain(emaid: str = EMAID) -> Chain20:
    keys = [ec.generate_private_key(ec.SECP521R1()) for _ in range(4)]
    root = _cert("MO Root 20", keys[0], "MO Root 20", keys[0], ca=True, ocsp=False)
    sub1 = _cert("MO Sub1 20", keys[1], "MO Root 20", keys[0], ca=True, ocsp=True)
    sub2 = _cert("MO Sub2 20", keys[2], "MO Sub1 20", keys[1], ca=True, ocsp=True)
    leaf = _cert(emaid, keys[3], "MO Sub2 20", keys[2], ca=False, ocsp=True)
    return Chain20(root, (leaf, sub2, sub1), keys[3])


def cert_id(cert: x509.Certificate, issuer: x509.Certificate, algorithm: str) -> dict[str, str]:
    """CertificateHashDataType of ``cert`` (OCPP 2.0.1: issuerNameHash, issuerKeyHash as
    hex of the hash of the issuer's DER name / public key bit string; serialNumber hex)."""
    h = {"SHA256": hashlib.sha256, "SHA384": hashlib.sha384, "SHA512": hashlib.sha512}[algorithm]
    point = issuer.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return {
        "hashAlgorithm": algorithm,
        "issuerNameHash": h(issuer.subject.public_bytes()).hexdigest(),
        "issuerKeyHash": h(point).hexdigest(),
        "serialNumber": format(cert.serial_number, "x"),
    }
