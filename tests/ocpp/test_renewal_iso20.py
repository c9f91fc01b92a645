"""Renewal of the ISO 15118-20 SECC leaf (store slot ``v2g20``) by the OCPP bridge, against
the test CSMS (OCPP 2.0.1 A03 started by the station, M-block TriggerMessage
SignV2GCertificate started by the CSMS).

OCPP 2.0.1 has one certificateType (``V2GCertificate``) for both SECC leaves; the station
sends a CSR of the -20 kind (the key algorithm of the leaf in service: P-521 signed with
SHA-512, or Ed448) and recognises the answering CertificateSigned by the leaf's public key:
only the pending ``v2g20`` key fits it.  The chain must also lead to a -20 V2G root with the
-20 profile.  At a whole station the renewed leaf is then what a new TLS 1.3 handshake
presents, without a restart."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from ocpp.v201 import call

from certs.csr import CsrError, load_csr, sign_csr
from certs.store import Store
from certs.testpki import read_issued
from hal.backends.simulated import build_board
from secc.config import CertsSection, EvseSection, HalSection, StationConfig, StationSection
from secc.core.config import DcLimits, Timers
from secc.ocpp_bridge.bridge import Bridge, BridgeConfig
from secc.runtime import Station
from tests.ocpp.csms import TestCsms, wait_for
from tests.ocpp.station import STATION, build, running

NOW = dt.datetime.now(dt.UTC)
EVSE_ID = "DE*ABC*E1234567*1"
VARIABLES = {
    ("ISO15118Ctrlr", "SeccId"): EVSE_ID,
    ("ISO15118Ctrlr", "OrganizationName"): "Test CPO",
    ("SecurityCtrlr", "OrganizationName"): "Test CPO",
}


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))


def pem(*certs: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def _pki(directory: Path, *extra: str) -> Path:
    make = [sys.executable, "-m", "secc.cli.main", "certs", "make-test-pki", *extra]
    subprocess.run([*make, str(directory)], check=True, capture_output=True)
    return directory


@pytest.fixture(scope="module")
def pki_p521(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _pki(tmp_path_factory.mktemp("renew20-p521") / "pki")


@pytest.fixture(scope="module")
def pki_ed448(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _pki(tmp_path_factory.mktemp("renew20-ed448") / "pki", "--iso20-algorithm", "ed448")


def _store(pki_dir: Path, tmp_path: Path) -> Store:
    shutil.copytree(pki_dir / "station", tmp_path / "store", symlinks=True)
    store = Store(tmp_path / "store")
    store.initialize()
    return store


def _csr_of(csms: TestCsms, kind: str) -> list[x509.CertificateSigningRequest]:
    """The V2GCertificate CSRs the CSMS got whose key is of ``kind`` (as a CA reads them)."""
    out = []
    for ctype, text in csms.csrs:
        csr = load_csr(text.encode())
        key = csr.public_key()
        if ctype != "V2GCertificate":
            continue
        named = (
            "ed448"
            if isinstance(key, ed448.Ed448PublicKey)
            else key.curve.name
            if isinstance(key, ec.EllipticCurvePublicKey)
            else None
        )
        if named == kind:
            out.append(csr)
    return out


def _config(store: Path) -> StationConfig:
    section = EvseSection(
        dc=DcLimits(max_voltage=500, max_current=125, max_power=50_000),
        evse_id=EVSE_ID,
        address="::1",
        tls_port=0,
        tcp_port=-1,
        sdp_port=0,
        energy_modes=("DC_extended",),
        protocols=("iso20-dc", "iso2"),
        hal=HalSection(control="none"),
        timers=Timers(sequence_timeout=10.0),
    )
    return StationConfig(
        station=StationSection(trace_dir=None), certs=CertsSection(store=store), evse=(section,)
    )


def _tls13_leaf(pki_dir: Path, port: int) -> x509.Certificate:
    """The leaf the station presents to a TLS 1.3 (ISO 15118-20) client with the vehicle
    certificate, trusting the -20 V2G root only."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.load_verify_locations(pki_dir / "v2g20" / "root.pem")
    ctx.load_cert_chain(pki_dir / "oem20" / "vehicle_chain.pem", pki_dir / "oem20" / "vehicle.key")
    with (
        socket.create_connection(("::1", port), timeout=10) as raw,
        ctx.wrap_socket(raw) as tls,
    ):
        assert tls.version() == "TLSv1.3"
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_v2g20_renewal_due_at_a_station_then_tls13_presents_it(
    pki_p521: Path, tmp_path: Path
) -> None:
    """The v2g20 leaf is due: the station sends a P-521/SHA-512 CSR as V2GCertificate; a
    chain for another key and a chain under the -2 hierarchy are Rejected and change
    nothing; the right chain lands in v2g20 (the -2 chain untouched) and the next TLS 1.3
    handshake presents it."""

    async def main() -> None:
        store = _store(pki_p521, tmp_path)
        old20 = store.leaf_chain("v2g20")
        old2 = store.leaf_chain("v2g")
        csms = TestCsms()
        await csms.start()
        bridges: list[Bridge] = []
        tasks: list[asyncio.Task[None]] = []

        def factory(section: EvseSection, emit: Any) -> Bridge:
            config = BridgeConfig(link_retry=0.05, meter_interval=3600, renew_before_days=4000)
            bridge = build(
                tmp_path, csms.url, store=store, emit=emit, config=config, variables=VARIABLES
            ).bridge
            bridges.append(bridge)
            tasks.append(asyncio.ensure_future(bridge.run()))
            return bridge

        board, plant = build_board()
        plant.clock = time.monotonic
        try:
            async with Station(
                _config(tmp_path / "store"), boards={EVSE_ID: board}, backend_factory=factory
            ) as st:
                port = st.evse(EVSE_ID).ports["tls"]
                before = await asyncio.to_thread(_tls13_leaf, pki_p521, port)
                assert before == old20[0]
                bridge = bridges[0]
                assert "V2GCertificate20" in bridge.renewal_due()
                await wait_for(lambda: bool(_csr_of(csms, "secp521r1")), timeout=30)
                (csr,) = _csr_of(csms, "secp521r1")
                assert csr.signature_hash_algorithm is not None
                assert csr.signature_hash_algorithm.name == "sha512"
                assert csr.subject.rfc4514_string().startswith("DC=CPO")
                cp = await csms.station(STATION)
                sub2, sub1 = (
                    read_issued(pki_p521, "v2g20/sub2"),
                    read_issued(pki_p521, "v2g20/sub1"),
                )
                # a -20 chain for a key the station never asked for
                stranger = ec.generate_private_key(ec.SECP521R1())
                other = (
                    x509.CertificateSigningRequestBuilder()
                    .subject_name(csr.subject)
                    .sign(stranger, hashes.SHA512())
                )
                wrong = sign_csr(other.public_bytes(serialization.Encoding.PEM), sub2, NOW)
                bad = await cp.call(
                    call.CertificateSigned(
                        certificate_chain=pem(wrong, sub2.certificate, sub1.certificate),
                        certificate_type="V2GCertificate",
                    )
                )
                assert bad.status == "Rejected"
                # the pending -20 key, but issued under the ISO 15118-2 V2G hierarchy
                sub2_2, sub1_2 = (
                    read_issued(pki_p521, "v2g/sub2"),
                    read_issued(pki_p521, "v2g/sub1"),
                )
                csr_pem = csr.public_bytes(serialization.Encoding.PEM)
                foreign = sign_csr(csr_pem, sub2_2, NOW)
                bad = await cp.call(
                    call.CertificateSigned(
                        certificate_chain=pem(foreign, sub2_2.certificate, sub1_2.certificate),
                        certificate_type="V2GCertificate",
                    )
                )
                assert bad.status == "Rejected"
                assert store.leaf_chain("v2g20") == old20
                assert store.leaf_chain("v2g") == old2
                assert await asyncio.to_thread(_tls13_leaf, pki_p521, port) == old20[0]
                leaf = sign_csr(csr_pem, sub2, NOW)
                good = await cp.call(
                    call.CertificateSigned(
                        certificate_chain=pem(leaf, sub2.certificate, sub1.certificate),
                        certificate_type="V2GCertificate",
                    )
                )
                assert good.status == "Accepted"
                assert store.leaf_chain("v2g20")[0] == leaf
                assert store.leaf_chain("v2g") == old2  # the -2 chain untouched
                assert store.pending_key("v2g20") is None
                after = await asyncio.to_thread(_tls13_leaf, pki_p521, port)
                assert after == leaf != old20[0]
                await wait_for(lambda: "V2GCertificate20" not in bridge.signing)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await csms.stop()

    run(main())


def test_trigger_sign_v2g_renews_both_leaves_told_apart_by_key(
    pki_ed448: Path, tmp_path: Path
) -> None:
    """TriggerMessage(SignV2GCertificate) with an Ed448 -20 hierarchy: two V2GCertificate
    CSRs (P-256 for -2, Ed448 for -20); each CertificateSigned goes to the slot whose
    pending key it carries, whatever the order."""

    async def main() -> None:
        store = _store(pki_ed448, tmp_path)
        old2, old20 = store.leaf_chain("v2g"), store.leaf_chain("v2g20")
        csms = TestCsms()
        await csms.start()
        station = build(tmp_path, csms.url, store=store, variables=VARIABLES)
        async with running(station):
            cp = await csms.station(STATION)
            answer = await cp.call(call.TriggerMessage(requested_message="SignV2GCertificate"))
            assert answer.status == "Accepted"
            await wait_for(lambda: len(csms.csrs) == 2)
            (csr20,) = _csr_of(csms, "ed448")
            (csr2,) = _csr_of(csms, "secp256r1")
            ku = csr20.extensions.get_extension_for_class(x509.KeyUsage).value
            assert ku.digital_signature and not ku.key_agreement  # RFC 9295: Ed448 signs only
            sub2, sub1 = read_issued(pki_ed448, "v2g20/sub2"), read_issued(pki_ed448, "v2g20/sub1")
            leaf20 = sign_csr(csr20.public_bytes(serialization.Encoding.PEM), sub2, NOW)
            assert isinstance(leaf20.public_key(), ed448.Ed448PublicKey)
            s2, s1 = read_issued(pki_ed448, "v2g/sub2"), read_issued(pki_ed448, "v2g/sub1")
            leaf2 = sign_csr(csr2.public_bytes(serialization.Encoding.PEM), s2, NOW)
            # the -20 answer first, then the -2 one
            good = await cp.call(
                call.CertificateSigned(
                    certificate_chain=pem(leaf20, sub2.certificate, sub1.certificate),
                    certificate_type="V2GCertificate",
                )
            )
            assert good.status == "Accepted"
            assert store.leaf_chain("v2g20")[0] == leaf20
            assert store.leaf_chain("v2g") == old2
            good = await cp.call(
                call.CertificateSigned(
                    certificate_chain=pem(leaf2, s2.certificate, s1.certificate),
                    certificate_type="V2GCertificate",
                )
            )
            assert good.status == "Accepted"
            assert store.leaf_chain("v2g")[0] == leaf2
            assert store.leaf_chain("v2g20")[0] == leaf20 != old20[0]
            await wait_for(lambda: not station.bridge.signing)
        await csms.stop()

    run(main())


@pytest.mark.parametrize("algorithm", ["secp521r1", "ed448"])
def test_iso20_csr_and_the_test_ca(
    algorithm: str, pki_p521: Path, pki_ed448: Path, tmp_path: Path
) -> None:
    """The -20 CSR (P-521 signed with SHA-512, or Ed448 without keyAgreement) verifies as
    a CA reads it, and the test CA's certificate for it passes the -20 SECC checks
    (certs.validate suite iso20) under the -20 V2G root of the same algorithm."""
    from certs._util import der
    from certs.csr import request_iso20_certificate
    from certs.validate import validate_chain

    pki = pki_ed448 if algorithm == "ed448" else pki_p521
    store = _store(pki, tmp_path)
    request = request_iso20_certificate(
        store, algorithm, common_name=EVSE_ID, organization="Test CPO", country="de"
    )
    csr = load_csr(request)
    pending = store.pending_key("v2g20")
    assert pending is not None and csr.public_key() == pending.public_key()
    if algorithm == "ed448":
        assert csr.signature_hash_algorithm is None
    else:
        assert csr.signature_hash_algorithm is not None
        assert csr.signature_hash_algorithm.name == "sha512"
    sub2, sub1 = read_issued(pki, "v2g20/sub2"), read_issued(pki, "v2g20/sub1")
    leaf = sign_csr(request, sub2, NOW)
    if algorithm != "ed448":
        assert leaf.signature_hash_algorithm is not None
        assert leaf.signature_hash_algorithm.name == "sha512"
    verdict = validate_chain(
        der(leaf),
        [der(sub2.certificate), der(sub1.certificate)],
        store.roots_for("v2g", iso20=True),
        NOW,
        profile="secc",
        suite="iso20",
    )
    assert verdict.ok, verdict.reason
    with pytest.raises(CsrError, match="ISO 15118-20 key"):
        request_iso20_certificate(store, "secp256r1", common_name="x", organization="y")
