"""`secc renew` (the systemd timer's job) renews the charging-station certificate with
the same checks and the same trial as `secc run`'s OCPP client: `secc renew` as a
subprocess against a test CSMS over mutual TLS (security profile 3) whose TLS server
takes client certificates of the PKI's CSMS root only, as a CSMS does.  Written from OCPP
2.0.1 part 2 and its errata 2025-01:

* A02.FR.06 / A03.FR.06: a CertificateSigned chain is accepted only when valid for the
  station (the operator's hierarchy, the subject its CSR named, ...); A02.FR.07: otherwise
  Rejected, nothing changed, and the security event InvalidChargingStationCertificate;
* A00.FR.509: the charging-station certificate's O is SecurityCtrlr.OrganizationName
  (while the V2G leaf's is ISO15118Ctrlr's): the CSR names it, the check requires it;
* A02.FR.08 / A03.FR.08: an accepted client certificate is used by reconnecting;
  A02.FR.10: once it connects the old one is discarded;
* A02.FR.28: no connection with the new one through a round of attempts
  (NetworkProfileConnectionAttempts for the one network profile): the old one again;
  A02.FR.29: when the old one connects, the new one is discarded and the CSMS told with
  DiscardedRenewedClientCertificate.

The CA side answers each CSR the test CSMS records with CertificateSigned: a V2G leaf
under the CPO sub-CA, a client certificate under the CSMS root (or whatever the case
needs), each for the CSR's key and subject (what a faithful CA issues)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from ocpp.v201 import call

from certs._util import Issued
from certs.store import Store
from certs.testpki import read_issued
from secc.ocpp_bridge import security_events as sec
from secc.ocpp_bridge.device_model import DeviceModel
from tests.ocpp.conftest import server_context
from tests.ocpp.csms import TestCsms
from tests.ocpp.station import STATION
from tests.ocpp.test_client_cert_renewal import issue, make_root, name, pem

EVSE_ID = "DE*ABC*E1234567*1"
ORG = "Test CPO"  # SecurityCtrlr.OrganizationName: the client certificate's O
ISO_ORG = "Test CPO Chargers"  # ISO15118Ctrlr.OrganizationName: the SECC leaf's O
Answer = Callable[[str | None, str], str | None]


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 180))  # type: ignore[arg-type]


class Rig:
    """A station directory (config, certificate store, OCPP state) and the test CSMS."""

    def __init__(self, tmp_path: Path, pki_dir: Path, store: Store) -> None:
        self.tmp_path, self.pki_dir, self.store = tmp_path, pki_dir, store
        self.state = tmp_path / "state"
        self.state.mkdir(parents=True)
        dm = DeviceModel(self.state / "device_model.json")
        dm.set_local("SecurityCtrlr", "OrganizationName", ORG)
        dm.set_local("ISO15118Ctrlr", "OrganizationName", ISO_ORG)
        dm.set_local("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", "2")
        self.csms = TestCsms(password=None, ssl_context=server_context(pki_dir, client_auth=True))
        self.sent: list[tuple[str | None, str]] = []  # (type, CertificateSigned status)

    def write_config(self) -> Path:
        url = self.csms.url.replace("127.0.0.1", "localhost")  # the CSMS certificate's name
        config = self.tmp_path / "secc.toml"
        config.write_text(
            f'[certs]\nstore = "{self.store.root}"\n\n[[evse]]\nevse_id = "{EVSE_ID}"\n'
            '[evse.hal]\nbackend = "simulated"\n\n'
            f'[ocpp]\nurl = "{url}"\nstation_id = "{STATION}"\nsecurity_profile = 3\n'
            f'state_dir = "{self.state}"\n'
        )
        return config

    def v2g_chain(self, csr: str) -> str:
        sub2, sub1 = read_issued(self.pki_dir, "v2g/sub2"), read_issued(self.pki_dir, "v2g/sub1")
        return pem(issue(csr, sub2), sub2.certificate, sub1.certificate)

    async def ca(self, client_chain: Callable[[str], str]) -> None:
        """Answer every CSR with CertificateSigned (V2G: the CPO chain; the client
        certificate: ``client_chain(csr)``)."""
        handled = 0
        while True:
            while handled < len(self.csms.csrs):
                kind, csr = self.csms.csrs[handled]
                handled += 1
                chain = self.v2g_chain(csr) if kind == "V2GCertificate" else client_chain(csr)
                cp = self.csms.stations[STATION]
                result = await cp.call(
                    call.CertificateSigned(certificate_chain=chain, certificate_type=kind)
                )
                self.sent.append((kind, result.status))
            await asyncio.sleep(0.02)

    async def renew(self, client_chain: Callable[[str], str]) -> tuple[int, dict[str, Any], str]:
        """`secc renew` with every leaf due; the JSON report."""
        config = self.write_config()
        ca = asyncio.ensure_future(self.ca(client_chain))
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "secc.cli.main",
                "renew",
                "--config",
                str(config),
                "--renew-before-days",
                "400",
                "--timeout",
                "30",
                "--json",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 150)
        finally:
            ca.cancel()
            await asyncio.gather(ca, return_exceptions=True)
        assert proc.returncode is not None
        return proc.returncode, json.loads(out), err.decode()

    def served_serials(self) -> list[int]:
        """The client certificates the CSMS's TLS server saw, in order."""
        return [int(c["serialNumber"], 16) for c in self.csms.peer_certs]

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.csms.security_events if e["type"] == kind]


def renewal(report: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in report["renewals"] if r["type"] == kind)
    return found


def attribute(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> object:
    return cert.subject.get_attributes_for_oid(oid)[0].value


def leaf_generations(store: Store) -> int:
    return sum(1 for g in (store.root / "leaf" / "csms").glob("g*") if g.is_dir())


def signed_by(issuer: Issued) -> Callable[[str], str]:
    return lambda csr: pem(issue(csr, issuer))


def test_renew_installs_a_client_certificate_that_connects(
    tmp_path: Path, pki_dir: Path, store: Store
) -> None:
    async def main() -> None:
        rig = Rig(tmp_path, pki_dir, store)
        await rig.csms.start()
        old = store.leaf_chain("csms")[0]
        try:
            code, report, err = await rig.renew(signed_by(read_issued(pki_dir, "csms/root")))
        finally:
            await rig.csms.stop()
        assert code == 0, (report, err)
        client = renewal(report, "ChargingStationCertificate")
        assert client["accepted"] and "connected with it" in client["reason"], report
        assert renewal(report, "V2GCertificate")["accepted"], report
        new = store.leaf_chain("csms")[0]
        assert new != old and new.public_key() != old.public_key()
        # the CSR named the SecurityCtrlr organization, the SECC one ISO15118Ctrlr's
        assert attribute(new, NameOID.COMMON_NAME) == STATION
        assert attribute(new, NameOID.ORGANIZATION_NAME) == ORG
        assert attribute(store.leaf_chain("v2g")[0], NameOID.ORGANIZATION_NAME) == ISO_ORG
        # A02.FR.08: it reconnected with the new one; A02.FR.10: the old one is gone
        assert rig.served_serials() == [old.serial_number, new.serial_number]
        assert not (store.root / "fallback" / "csms").exists()
        assert leaf_generations(store) == 1
        assert rig.sent.count(("ChargingStationCertificate", "Accepted")) == 1
        assert not rig.events(sec.DISCARDED_RENEWED_CERTIFICATE)
        assert not rig.events(sec.INVALID_STATION_CERTIFICATE)

    run(main())


def test_renew_falls_back_when_the_new_client_certificate_cannot_connect(
    tmp_path: Path, pki_dir: Path, store: Store
) -> None:
    """The CA issues under a second operator root the station has installed, but the
    CSMS's TLS server takes clients of the first root only."""

    async def main() -> None:
        rig = Rig(tmp_path, pki_dir, store)
        second = make_root("CSMS Root CA 2")
        now = dt.datetime.now(dt.UTC)
        store.install_root("csms", pem(second.certificate).encode(), utc_now=now)
        await rig.csms.start()
        old = store.leaf_chain("csms")[0]
        try:
            code, report, err = await rig.renew(signed_by(second))
        finally:
            await rig.csms.stop()
        assert code == 1, (report, err)
        client = renewal(report, "ChargingStationCertificate")
        assert not client["accepted"], report
        assert "DiscardedRenewedClientCertificate" in client["reason"], report
        # the new one was Accepted (valid for the station), then never connected
        assert ("ChargingStationCertificate", "Accepted") in rig.sent
        assert store.leaf_chain("csms")[0] == old
        assert rig.served_serials() == [old.serial_number, old.serial_number]
        # A02.FR.29: the CSMS is told, once, by `secc renew` itself
        assert len(rig.events(sec.DISCARDED_RENEWED_CERTIFICATE)) == 1
        assert not (store.root / "fallback" / "csms").exists()
        assert leaf_generations(store) == 1
        assert not rig.events(sec.INVALID_STATION_CERTIFICATE)

    run(main())


def test_renew_rejects_a_chain_the_station_must_not_accept(
    tmp_path: Path, pki_dir: Path, store: Store
) -> None:
    """A leaf for the CSR's key but with another CN (A00.FR.511), then one of the V2G
    hierarchy: each Rejected, nothing changed, InvalidChargingStationCertificate."""

    async def main() -> None:
        root = read_issued(pki_dir, "csms/root")
        sub2, sub1 = read_issued(pki_dir, "v2g/sub2"), read_issued(pki_dir, "v2g/sub1")
        cases: dict[str, Callable[[str], str]] = {
            "other CN": lambda csr: pem(issue(csr, root, subject=name("CS-OTHER-0002", ORG))),
            "V2G hierarchy": lambda csr: pem(issue(csr, sub2), sub2.certificate, sub1.certificate),
        }
        for n, (case, chain) in enumerate(cases.items(), start=1):
            rig = Rig(tmp_path / f"case{n}", pki_dir, store)
            await rig.csms.start()
            old = store.leaf_chain("csms")[0]
            try:
                code, report, err = await rig.renew(chain)
            finally:
                await rig.csms.stop()
            assert code == 1, (case, report, err)
            client = renewal(report, "ChargingStationCertificate")
            assert not client["accepted"], (case, report)
            assert ("ChargingStationCertificate", "Rejected") in rig.sent, case
            assert store.leaf_chain("csms")[0] == old, case
            assert store.pending_key("csms") is not None, case  # the CSR's key still waits
            assert rig.served_serials() == [old.serial_number], case  # no reconnect
            assert len(rig.events(sec.INVALID_STATION_CERTIFICATE)) == 1, case
            assert renewal(report, "V2GCertificate")["accepted"], (case, report)

    run(main())
