"""A small ISO 15118-20 contract PKI for the OCPP tests: an MO root, two sub-CAs and a
contract leaf on P-521 (ECDSA with SHA-512), the leaf with an OCSP responder URL and the
eMAID as common name, the certificates made by the project's test PKI code
(:func:`certs.testpki.issue_certificate`, :func:`certs.testpki.new_key`); plus an
independent computation of OCPP's CertificateHashData (RFC 6960 CertID: hash of the
issuer's DER name and of its public key's bit string), written here from the RFC, not
taken from the station's mapping."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from certs._util import Issued
from certs.testpki import CA_USAGE, CONTRACT_USAGE, issue_certificate, make_name, new_key

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


def _issue(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: Issued | None,
    *,
    ca: bool,
    path_len: int | None = None,
    ocsp: bool = True,
) -> Issued:
    """One certificate (CN only), valid from a day ago for a year, ECDSA with SHA-512,
    signed by ``issuer`` (None: self-signed)."""
    now = dt.datetime.now(dt.UTC)
    return issue_certificate(
        name=cn,
        subject=make_name(cn),
        issuer=issuer,
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=365),
        ca=ca,
        path_len=path_len,
        usage=CA_USAGE if ca else CONTRACT_USAGE,
        key=key,
        ocsp_url=OCSP_URL if ocsp else None,
        hash_algorithm=hashes.SHA512(),
    )


def make_chain(emaid: str = EMAID) -> Chain20:
    """MO root -> sub-CA 1 -> sub-CA 2 -> contract leaf (CN = ``emaid``), all P-521."""
    leaf_key = new_key(ec.SECP521R1())
    root = _issue("MO Root 20", new_key(ec.SECP521R1()), None, ca=True, path_len=2, ocsp=False)
    sub1 = _issue("MO Sub1 20", new_key(ec.SECP521R1()), root, ca=True, path_len=1)
    sub2 = _issue("MO Sub2 20", new_key(ec.SECP521R1()), sub1, ca=True, path_len=0)
    leaf = _issue(emaid, leaf_key, sub2, ca=False)
    chain = (leaf.certificate, sub2.certificate, sub1.certificate)
    return Chain20(root.certificate, chain, leaf_key)


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
