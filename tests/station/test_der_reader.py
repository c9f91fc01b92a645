"""The small X.509 reader ``secc run`` uses before SDP-ready (:mod:`certs.der`, no
cryptography) reads what cryptography reads, refuses malformed input with
``CertificateFormatError`` only, and the trust anchors it gives the sessions
(:class:`secc.runtime.StoreTrust`) are the store's roots once the core reads them."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certs.der import Cert, read_certificates
from certs.files import CertificateFormatError, StoreFiles
from certs.store import Store, is_iso20_certificate
from secc.aio.tls import authority_ids
from secc.config import parse
from secc.runtime import StoreTrust, load_credentials, load_trust, load_vehicle_roots
from tests.station.conftest import EVSE_ID

DER = serialization.Encoding.DER


def _all_certificates(pki_dir: Path) -> list[tuple[Path, bytes]]:
    out = []
    for path in sorted(pki_dir.rglob("*.pem")):
        data = path.read_bytes()
        if b"BEGIN CERTIFICATE" in data:
            out.append((path, data))
    assert len(out) > 20  # the -2 and -20 trees and the station store
    return out


def _point(cert: x509.Certificate) -> bytes:
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(DER.X962, serialization.PublicFormat.UncompressedPoint)
    return key.public_bytes(DER.Raw, serialization.PublicFormat.Raw)


def test_it_reads_what_cryptography_reads(pki_dir: Path) -> None:
    everything: list[tuple[Cert, x509.Certificate]] = []
    for path, data in _all_certificates(pki_dir):
        mine = read_certificates(data)
        theirs = x509.load_pem_x509_certificates(data)
        assert len(mine) == len(theirs), path
        everything += zip(mine, theirs, strict=True)
    for a, b in everything:
        assert a.der == b.public_bytes(DER)
        assert a.subject_der == b.subject.public_bytes()
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        assert a.spki == b.public_key().public_bytes(DER, spki)
        assert a.public_key_bits == _point(b)
        assert (a.not_valid_before, a.not_valid_after) == (
            b.not_valid_before_utc,
            b.not_valid_after_utc,
        )
        cns = b.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        assert a.common_name == (cns[0].value if cns else None)
        assert a.is_iso20 == is_iso20_certificate(b)
        assert a.self_issued == (b.subject == b.issuer)
        assert authority_ids(a) == authority_ids(b)
    # names compare as cryptography compares them (issuer links across all certificates)
    for a, b in everything[:12]:
        for c, d in everything:
            assert (a.issuer == c.subject) == (b.issuer == d.subject)
    assert {a.curve for a, _ in everything} >= {"secp256r1", "secp521r1"}


def test_malformed_input_is_a_format_error(pki_dir: Path) -> None:
    _, data = _all_certificates(pki_dir)[0]
    der = read_certificates(data)[0].der
    for n in range(0, len(der), 7):  # every truncation is refused
        with pytest.raises(CertificateFormatError):
            Cert(der[:n])
    for case in (der + b"\x00", b"\x30\x84\xff\xff\xff\xff" + der[2:], b"\x1f" * 8):
        with pytest.raises(CertificateFormatError):
            Cert(case)
    rng = random.Random(17)
    for _ in range(300):  # damaged octets: read, or refused with this error, nothing else
        broken = bytearray(der)
        for _ in range(rng.randint(1, 4)):
            broken[rng.randrange(len(broken))] = rng.randrange(256)
        with contextlib.suppress(CertificateFormatError):
            Cert(bytes(broken))
    with pytest.raises(CertificateFormatError):
        read_certificates(b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n")
    with pytest.raises(CertificateFormatError):
        read_certificates(b"")


def test_the_station_trust_is_the_store_roots(pki_dir: Path) -> None:
    import datetime as dt

    config = parse(
        {
            "certs": {"store": str(pki_dir / "station")},
            "evse": [{"evse_id": EVSE_ID, "address": "::1", "hal": {"backend": "simulated"}}],
        },
        "secc.toml",
    )
    store = Store(pki_dir / "station")
    trust = load_trust(config)
    assert isinstance(trust, StoreTrust) and trust == load_trust(config)
    assert hash(trust) == hash(load_trust(config))
    assert list(trust.roots) == [*store.roots("mo"), *store.roots("v2g")]
    oem = [*store.roots_for("oem", iso20=True), *store.roots_for("v2g", iso20=True)]
    assert list(trust.oem_roots) == oem
    assert [c.der for c in load_vehicle_roots(config)] == [c.public_bytes(DER) for c in oem]
    creds = load_credentials(config, dt.datetime.now(dt.UTC))
    assert [c.name for c in creds.chains] == [u for u in store.leaf_uses() if u == "v2g"]
    assert [c.name for c in creds.iso20_chains] == ["v2g20"]
    for chain in (*creds.chains, *creds.iso20_chains):
        served = store.leaf_chain(chain.name)
        assert any(r.subject == served[-1].issuer for r in store.roots("v2g"))
        assert (
            isinstance(chain.root, Cert)
            and chain.root.subject == Cert(served[-1].public_bytes(DER)).issuer
        )
    assert StoreFiles(pki_dir / "station").leaf_uses() == store.leaf_uses()
