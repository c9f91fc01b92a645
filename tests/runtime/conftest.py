"""Fixtures for the runtime transport tests: a small V2G test PKI (two V2G roots, each
root -> CPO sub-CA -> SECC leaf, ECDSA P-256), written as files the TLS contexts load."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from secc.aio.tls import SeccChain

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _name(cn: str, org: str, dc: str | None = None) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
    ]
    if dc:
        attrs.append(x509.NameAttribute(NameOID.DOMAIN_COMPONENT, dc))
    return x509.Name(attrs)


def _issue(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    path_len: int | None = None,
) -> x509.Certificate:
    usage = dict.fromkeys(
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
    if ca:
        usage.update(key_cert_sign=True, crl_sign=True)
    else:
        usage.update(digital_signature=True, key_agreement=True)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_len if ca else None), critical=True
        )
        .add_extension(x509.KeyUsage(**usage), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


@dataclass(frozen=True)
class PkiChain:
    chain: SeccChain
    root: x509.Certificate
    root_file: Path  # PEM of the root alone (what an EV trusts)
    sub_ca: x509.Certificate
    leaf: x509.Certificate


@dataclass(frozen=True)
class Pki:
    a: PkiChain
    b: PkiChain


def make_chain(directory: Path, tag: str) -> PkiChain:
    root_key, sub_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root_name = _name(f"V2G Root {tag}", f"V2G {tag}", "V2G")
    sub_name = _name(f"CPO Sub-CA {tag}", f"CPO {tag}", "CPO")
    root = _issue(root_name, root_key, root_name, root_key, ca=True, path_len=2)
    sub = _issue(sub_name, sub_key, root_name, root_key, ca=True, path_len=0)
    leaf = _issue(
        _name(f"DE*ABC*E{tag}", f"CPO {tag}", "CPO"), leaf_key, sub_name, sub_key, ca=False
    )
    certfile = directory / f"secc_{tag}.pem"
    keyfile = directory / f"secc_{tag}.key"
    root_file = directory / f"root_{tag}.pem"
    certfile.write_bytes(_pem(leaf, sub))
    keyfile.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    root_file.write_bytes(_pem(root))
    return PkiChain(SeccChain(certfile, keyfile, root), root, root_file, sub, leaf)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    directory = tmp_path_factory.mktemp("pki")
    yield Pki(make_chain(directory, "A"), make_chain(directory, "B"))
