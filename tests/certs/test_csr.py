"""SignCertificate → CertificateSigned: CSR contents, pending key, chain check, install."""

from __future__ import annotations

import datetime as dt
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certs._util import pem
from certs.csr import (
    CsrError,
    accept_certificate_signed,
    build_csr,
    load_csr,
    request_certificate,
    sign_csr,
)
from certs.store import Store
from certs.testpki import CHAINS, TestPki, key_pem
from tests.certs.conftest import openssl


@pytest.fixture
def store(tmp_path: Path, pki: TestPki, now: dt.datetime) -> Store:
    s = Store(tmp_path / "store")
    s.initialize()
    s.install_root("v2g", pem([pki.cert("v2g_root")]), utc_now=now)
    s.install_root("csms", pem([pki.cert("csms_root")]), utc_now=now)
    s.install_leaf("v2g", pem(pki.chain(*CHAINS["secc"])), key_pem(pki["secc"].key), utc_now=now)
    return s


def _attr(csr: x509.CertificateSigningRequest, oid: x509.ObjectIdentifier) -> str:
    return str(csr.subject.get_attributes_for_oid(oid)[0].value)


def test_v2g_csr_and_renewal(store: Store, pki: TestPki, now: dt.datetime, tmp_path: Path) -> None:
    csr_pem = request_certificate(
        store,
        "V2GCertificate",
        common_name="DE*ABC*E1234567*1",
        organization="Test CPO",
        country="de",
    )
    csr = load_csr(csr_pem)
    assert _attr(csr, NameOID.COMMON_NAME) == "DE*ABC*E1234567*1"
    assert _attr(csr, NameOID.ORGANIZATION_NAME) == "Test CPO"
    assert _attr(csr, NameOID.COUNTRY_NAME) == "DE"
    assert _attr(csr, NameOID.DOMAIN_COMPONENT) == "CPO"
    pending_file = store.root / "pending" / "v2g.key.pem"
    assert stat.S_IMODE(pending_file.stat().st_mode) == 0o600
    pending = store.pending_key("v2g")
    assert pending is not None and csr.public_key() == pending.public_key()
    assert isinstance(pending, ec.EllipticCurvePrivateKey) and pending.curve.name == "secp256r1"
    (tmp_path / "req.pem").write_bytes(csr_pem)
    check = subprocess.run(
        [openssl(), "req", "-in", "req.pem", "-verify", "-noout"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert check.returncode == 0 and "verify OK" in (check.stdout + check.stderr)

    # The CSMS answers with a chain for some other key: rejected, nothing changes.
    other = sign_csr(
        build_csr(
            ec.generate_private_key(ec.SECP256R1()),
            "V2GCertificate",
            common_name="x",
            organization="y",
        ),
        pki["cpo_sub2"],
        now,
    )
    wrong = pem([other, pki.cert("cpo_sub2"), pki.cert("cpo_sub1")])
    result = accept_certificate_signed(store, "V2GCertificate", wrong, utc_now=now)
    assert result.status == "Rejected" and "does not belong" in result.reason
    assert store.leaf_chain("v2g")[0] == pki.cert("secc")
    assert store.pending_key("v2g") is not None

    leaf = sign_csr(csr_pem, pki["cpo_sub2"], now, days=90)
    chain = pem([leaf, pki.cert("cpo_sub2"), pki.cert("cpo_sub1")])
    result = accept_certificate_signed(store, "V2GCertificate", chain, utc_now=now)
    assert result.status == "Accepted", result.reason
    assert store.leaf_chain("v2g")[0] == leaf
    assert store.leaf_key("v2g").public_key() == pending.public_key()
    assert store.pending_key("v2g") is None
    assert not pending_file.exists()
    again = accept_certificate_signed(store, "V2GCertificate", chain, utc_now=now)
    assert again.status == "Rejected" and "no pending" in again.reason


def test_charging_station_certificate(store: Store, pki: TestPki, now: dt.datetime) -> None:
    csr_pem = request_certificate(
        store, "ChargingStationCertificate", common_name="CS-SECC-0001", organization="Test CPO"
    )
    csr = load_csr(csr_pem)
    assert _attr(csr, NameOID.COMMON_NAME) == "CS-SECC-0001"
    assert not csr.subject.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)
    leaf = sign_csr(csr_pem, pki["csms_root"], now)
    result = accept_certificate_signed(
        store, "ChargingStationCertificate", pem([leaf]), utc_now=now
    )
    assert result.status == "Accepted", result.reason
    (entry,) = store.list_installed(("ChargingStationCertificate",))
    assert entry.certificate == leaf
    assert accept_certificate_signed(store, "Bogus", b"", utc_now=now).status == "Rejected"


def test_csr_input_errors(pki: TestPki) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CsrError):
        build_csr(key, "V2GCertificate", common_name="", organization="x")
    with pytest.raises(CsrError):
        build_csr(key, "Other", common_name="a", organization="x")
    with pytest.raises(CsrError):
        build_csr(key, "V2GCertificate", common_name="a", organization="x", country="DEU")
    good = build_csr(key, "V2GCertificate", common_name="a", organization="x")
    for bad in (b"", b"junk", good[:100], b"-" * 20_000):
        with pytest.raises(CsrError):
            load_csr(bad)
    body = bytearray(load_csr(good).public_bytes(serialization.Encoding.DER))
    body[-3] ^= 1  # inside the signature
    with pytest.raises(CsrError):
        load_csr(bytes(body))
