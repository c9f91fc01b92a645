"""Fixtures for the runtime transport tests: a small V2G test PKI (two V2G roots, each
root -> CPO sub-CA -> SECC leaf, ECDSA P-256), written as files the TLS contexts load."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs.testpki import CA_USAGE, SECC_USAGE, Issued, issue_certificate, make_name
from secc.aio.tls import SeccChain

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


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
    """V2G root -> CPO sub-CA -> SECC leaf, built with the test PKI's certificate maker."""

    def issue(
        name: str, subject: x509.Name, issuer: Issued | None, ca: bool, path_len: int | None
    ) -> Issued:
        return issue_certificate(
            name=name,
            subject=subject,
            issuer=issuer,
            not_before=NOW - dt.timedelta(days=1),
            not_after=NOW + dt.timedelta(days=3650),
            ca=ca,
            path_len=path_len,
            usage=CA_USAGE if ca else SECC_USAGE,
        )

    root_i = issue("root", make_name(f"V2G Root {tag}", f"V2G {tag}", dc="V2G"), None, True, 2)
    sub_i = issue("sub", make_name(f"CPO Sub-CA {tag}", f"CPO {tag}", dc="CPO"), root_i, True, 0)
    leaf_i = issue("leaf", make_name(f"DE*ABC*E{tag}", f"CPO {tag}", dc="CPO"), sub_i, False, None)
    root, sub, leaf, leaf_key = (
        root_i.certificate,
        sub_i.certificate,
        leaf_i.certificate,
        leaf_i.key,
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
