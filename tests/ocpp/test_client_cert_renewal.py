"""A02 / A03: what the station checks before it answers CertificateSigned Accepted, and
the renewed charging-station certificate on trial, against the test CSMS over TLS
(security profile 3, mutual TLS with a generated PKI). Written from OCPP 2.0.1 part 2
and its errata 2025-01:

* A02.FR.06 / A03.FR.06: the signed certificate is valid: the current date within its
  validity (also not before it), the certificate properties (A00.FR.509 an O RDN, the
  organization; A00.FR.511 CN the station's serial number; keys and signatures strong
  enough, A00.FR.502-506), part of the operator's hierarchy (it leads to an installed
  CSMSRootCertificate, not a V2G root nor an unknown CA); a V2G leaf has the subject its
  CSR named. A02.FR.07: otherwise it is discarded (Rejected, the store unchanged, the
  CSR's key still waiting) with the security event InvalidChargingStationCertificate;
* A02.FR.08: valid: Accepted, and the station reconnects with it;
* A02.FR.28 (B10.FR.07/08): when no connection succeeds with the new certificate
  through the network profiles, the station falls back to the old one, and alternates
  between both after each further round;
* A02.FR.10: once connected with either, the other one is discarded; A02.FR.29: the
  renewed one discarded is reported with DiscardedRenewedClientCertificate.

The test CSMS's TLS server verifies client certificates against its own client CA(s)
only, as a CSMS does: a renewed certificate issued under a root it does not trust for
clients cannot connect; a CSMS may also refuse a certificate it verified (HTTP 403).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from ocpp.v201 import call

from certs._util import Issued, fingerprint
from certs.csr import load_csr
from certs.store import Store
from certs.testpki import read_issued
from secc.ocpp_bridge import security_events as sec
from tests.ocpp.conftest import OpsLink, server_context
from tests.ocpp.csms import TestCsms, wait_for
from tests.ocpp.station import STATION, Station, build, running

SEC = "SecurityCtrlr"
ORG = "Test CPO"


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 120))  # type: ignore[arg-type]


def pem(*certs: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_root(name: str, *, rsa_bits: int = 0) -> Issued:
    """A CA of the test (another operator root, or an unknown one): P-256, or RSA of
    ``rsa_bits``."""
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        rsa.generate_private_key(65537, rsa_bits)
        if rsa_bits
        else ec.generate_private_key(ec.SECP256R1())
    )
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
        ]
    )
    usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now() - dt.timedelta(days=1))
        .not_valid_after(now() + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(name, cert, key)  # type: ignore[arg-type]


def issue(
    csr_pem: str,
    issuer: Issued,
    *,
    subject: x509.Name | None = None,
    valid: tuple[dt.timedelta, dt.timedelta] = (dt.timedelta(minutes=-5), dt.timedelta(days=90)),
    extended: list[x509.ObjectIdentifier] | None = None,
    digest: hashes.HashAlgorithm | None = None,
) -> x509.Certificate:
    """The CA's side of SignCertificate: a leaf for the CSR's key; by default the CSR's
    subject and extensions (what a faithful CA issues), else what the case needs."""
    csr = load_csr(csr_pem.encode())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject or csr.subject)
        .issuer_name(issuer.certificate.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now() + valid[0])
        .not_valid_after(now() + valid[1])
    )
    for ext in csr.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    if extended is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
    assert isinstance(issuer.key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey))
    return builder.sign(issuer.key, digest or hashes.SHA256())


def name(cn: str, org: str | None = ORG) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org is not None:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def events(csms: TestCsms, kind: str) -> list[dict[str, Any]]:
    return [e for e in csms.security_events if e["type"] == kind]


async def csr_for(cp: Any, csms: TestCsms, trigger: str) -> str:
    before = len(csms.csrs)
    answer = await cp.call(call.TriggerMessage(requested_message=trigger))
    assert answer.status == "Accepted"
    await wait_for(lambda: len(csms.csrs) == before + 1)
    return csms.csrs[-1][1]


def test_certificate_signed_is_checked_before_accepted(
    ops_link: OpsLink, pki_dir: Path, store: Store
) -> None:
    """Each chain below fits the key of the station's CSR and would have been installed
    by a station that only checks the key; each breaks one rule of A02.FR.06."""

    async def main() -> None:
        async with ops_link(store=store) as link:
            cp, csms, dm = link.cp, link.csms, link.bridge.dm
            dm.set_local(SEC, "OrganizationName", ORG)
            before = store.leaf_chain("csms")[0]
            csr = await csr_for(cp, csms, "SignChargingStationCertificate")
            root = read_issued(pki_dir, "csms/root")
            sub2, sub1 = read_issued(pki_dir, "v2g/sub2"), read_issued(pki_dir, "v2g/sub1")
            weak = make_root("Weak CSMS Root", rsa_bits=1024)
            installed = await cp.call(
                call.InstallCertificate(
                    certificate_type="CSMSRootCertificate", certificate=pem(weak.certificate)
                )
            )
            assert installed.status == "Accepted"
            cases = {
                # not of the operator's (CSMS) hierarchy: a V2G chain, an unknown CA
                "V2G hierarchy": pem(issue(csr, sub2), sub2.certificate, sub1.certificate),
                "unknown CA": pem(issue(csr, make_root("Unknown Root"))),
                # A00.FR.511 / A00.FR.509: the subject the station's CSR named
                "other CN": pem(issue(csr, root, subject=name("CS-OTHER-0002"))),
                "no O": pem(issue(csr, root, subject=name(STATION, None))),
                "other O": pem(issue(csr, root, subject=name(STATION, "Other CPO"))),
                # the current date within the validity (errata 2025-01: not in the future)
                "not yet valid": pem(
                    issue(csr, root, valid=(dt.timedelta(hours=2), dt.timedelta(days=90)))
                ),
                "expired": pem(
                    issue(csr, root, valid=(dt.timedelta(days=-30), dt.timedelta(days=-1)))
                ),
                # A00.FR.502: an installed operator root, but a 1024-bit RSA key
                "weak root key": pem(issue(csr, weak)),
                # a certificate no CSMS takes as a TLS client's
                "server-only usage": pem(
                    issue(csr, root, extended=[ExtendedKeyUsageOID.SERVER_AUTH])
                ),
            }
            for n, (case, chain) in enumerate(cases.items(), start=1):
                answer = await cp.call(
                    call.CertificateSigned(
                        certificate_chain=chain, certificate_type="ChargingStationCertificate"
                    )
                )
                assert answer.status == "Rejected", case
                assert answer.status_info["reason_code"] == "InvalidCertificate", case
                assert store.leaf_chain("csms")[0] == before, case  # nothing changed
                assert store.pending_key("csms") is not None, case  # the CSR still waits
                await wait_for(lambda n=n: len(events(csms, sec.INVALID_STATION_CERTIFICATE)) == n)
            good = issue(csr, root)
            answer = await cp.call(
                call.CertificateSigned(
                    certificate_chain=pem(good), certificate_type="ChargingStationCertificate"
                )
            )
            assert answer.status == "Accepted"
            assert store.leaf_chain("csms")[0] == good
            assert len(events(csms, sec.INVALID_STATION_CERTIFICATE)) == len(cases)

            # a V2G leaf must carry the subject its CSR named (SECC ID, organization)
            dm.set_local("ISO15118Ctrlr", "SeccId", "DE*ABC*E1234567*1")
            dm.set_local("ISO15118Ctrlr", "OrganizationName", ORG)
            old_secc = store.leaf_chain("v2g")[0]
            csr = await csr_for(cp, csms, "SignV2GCertificate")
            requested = load_csr(csr.encode()).subject
            renamed = x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "DE*ABC*E9999999*1")
                    if a.oid == NameOID.COMMON_NAME
                    else a
                    for a in requested
                ]
            )
            wrong = issue(csr, sub2, subject=renamed)
            answer = await cp.call(
                call.CertificateSigned(
                    certificate_chain=pem(wrong, sub2.certificate, sub1.certificate),
                    certificate_type="V2GCertificate",
                )
            )
            assert answer.status == "Rejected"
            assert store.leaf_chain("v2g")[0] == old_secc
            right = issue(csr, sub2)
            answer = await cp.call(
                call.CertificateSigned(
                    certificate_chain=pem(right, sub2.certificate, sub1.certificate),
                    certificate_type="V2GCertificate",
                )
            )
            assert answer.status == "Accepted"
            assert store.leaf_chain("v2g")[0] == right

    run(main())


class Profile3:
    """The station on a profile-3 link to a test CSMS whose TLS server takes client
    certificates of the PKI's CSMS root only; ``failures`` records, for each failed
    connection attempt, the client certificate the station had in service then."""

    def __init__(self, tmp_path: Path, pki_dir: Path, store: Store) -> None:
        self.tmp_path, self.pki_dir, self.store = tmp_path, pki_dir, store
        self.csms = TestCsms(password=None, ssl_context=server_context(pki_dir, client_auth=True))
        self.failures: list[str] = []

    def build(self) -> Station:
        """The station (state in ``tmp_path``: built again, it is the station after a
        restart), with the failure recorder."""
        station = build(
            self.tmp_path,
            self.csms.url.replace("127.0.0.1", "localhost"),  # the CSMS certificate's name
            store=self.store,
            client={"security_profile": 3},
            variables={
                (SEC, "OrganizationName"): ORG,
                ("OCPPCommCtrlr", "NetworkProfileConnectionAttempts"): "2",
            },
        )
        station.client.on_connect_failed.insert(0, self._failed)
        return station

    def _failed(self) -> None:
        self.failures.append(fingerprint(self.store.leaf_chain("csms")[0]))

    def served_serials(self) -> list[int]:
        """The client certificates the CSMS saw, in order (serial numbers)."""
        return [int(c["serialNumber"], 16) for c in self.csms.peer_certs]


async def renew(rig: Profile3, issuer: Issued) -> x509.Certificate:
    """TriggerMessage SignChargingStationCertificate, the CSR signed by ``issuer``, sent
    with CertificateSigned: Accepted (the chain is valid for the station)."""
    cp = await rig.csms.station(STATION)
    csr = await csr_for(cp, rig.csms, "SignChargingStationCertificate")
    leaf = issue(csr, issuer)
    answer = await cp.call(
        call.CertificateSigned(
            certificate_chain=pem(leaf), certificate_type="ChargingStationCertificate"
        )
    )
    assert answer.status == "Accepted"
    return leaf


async def install_root(rig: Profile3, root: Issued) -> None:
    """M05: a second operator root, given to the station by the CSMS."""
    cp = await rig.csms.station(STATION)
    installed = await cp.call(
        call.InstallCertificate(
            certificate_type="CSMSRootCertificate", certificate=pem(root.certificate)
        )
    )
    assert installed.status == "Accepted"


def leaf_generations(store: Store) -> int:
    return sum(1 for g in (store.root / "leaf" / "csms").glob("g*") if g.is_dir())


def test_renewed_certificate_that_connects_replaces_the_old(
    tmp_path: Path, pki_dir: Path, store: Store
) -> None:
    async def main() -> None:
        rig = Profile3(tmp_path, pki_dir, store)
        await rig.csms.start()
        station = rig.build()
        trial = station.bridge.cert_trial
        assert trial is not None
        async with running(station):
            old = store.leaf_chain("csms")[0]
            new = await renew(rig, read_issued(pki_dir, "csms/root"))
            # A02.FR.08: the station reconnects with the new certificate
            await wait_for(lambda: new.serial_number in rig.served_serials())
            await wait_for(lambda: trial.state() is None)
            assert rig.served_serials()[0] == old.serial_number
            assert store.leaf_chain("csms")[0] == new
            # A02.FR.10: the old one is discarded, no copy of it is kept
            assert not (store.root / "fallback" / "csms").exists()
            assert leaf_generations(store) == 1
            assert not events(rig.csms, sec.DISCARDED_RENEWED_CERTIFICATE)
            assert not rig.failures
        await rig.csms.stop()

    run(main())


def test_renewed_certificate_that_cannot_connect_falls_back(
    tmp_path: Path, pki_dir: Path, store: Store
) -> None:
    """The CSMS's CA issues the renewed certificate under a second operator root (one
    the station was given over InstallCertificate), but its TLS server still takes
    clients of the first root only: the renewed certificate cannot connect."""

    async def main() -> None:
        rig = Profile3(tmp_path, pki_dir, store)
        await rig.csms.start()
        station = rig.build()
        trial = station.bridge.cert_trial
        assert trial is not None
        async with running(station):
            old = store.leaf_chain("csms")[0]
            second = make_root("CSMS Root CA 2")
            await install_root(rig, second)
            new = await renew(rig, second)
            # A02.FR.28: a round of failed connections with the new one (2 attempts x 1
            # network profile), then the old one connects
            await wait_for(lambda: bool(events(rig.csms, sec.DISCARDED_RENEWED_CERTIFICATE)))
            assert rig.failures == [fingerprint(new)] * 2
            assert store.leaf_chain("csms")[0] == old
            assert new.serial_number not in rig.served_serials()
            assert rig.served_serials()[-1] == old.serial_number
            # A02.FR.10: the renewed one is discarded; A02.FR.29 told the CSMS
            assert trial.state() is None
            assert not (store.root / "fallback" / "csms").exists()
            assert leaf_generations(store) == 1
            assert len(events(rig.csms, sec.DISCARDED_RENEWED_CERTIFICATE)) == 1
            assert not events(rig.csms, sec.INVALID_STATION_CERTIFICATE)
            # the CSMS refused the station's certificate, not the other way round
            assert not events(rig.csms, sec.INVALID_CSMS_CERTIFICATE)
        await rig.csms.stop()

    run(main())


def test_both_certificates_refused_alternate_until_one_connects(
    tmp_path: Path, pki_dir: Path, store: Store
) -> None:
    """B10.FR.08 / A02.FR.28: while neither certificate connects the station alternates
    between them after each round (and never gives up, B10.FR.09); the first that
    connects stays. Here the CSMS's TLS server trusts both operator roots but the CSMS
    refuses, from the moment it sends CertificateSigned, every client certificate of the
    station (HTTP 403), later takes the renewed one: it connects after the alternation
    and no DiscardedRenewedClientCertificate is raised. The trial survives a restart of
    the station."""

    async def main() -> None:
        rig = Profile3(tmp_path, pki_dir, store)
        second = make_root("CSMS Root CA 2")
        ctx = server_context(pki_dir, client_auth=True)
        ctx.load_verify_locations(cadata=pem(second.certificate))
        rig.csms.ssl_context = ctx
        allowed: set[int] = set()
        rig.csms.client_filter = lambda peer: (
            peer is not None and int(peer["serialNumber"], 16) in allowed
        )
        await rig.csms.start()
        old = store.leaf_chain("csms")[0]
        allowed.add(old.serial_number)
        station = rig.build()
        async with running(station):
            await install_root(rig, second)
            allowed.clear()  # new connections only: the link in place stays
            new = await renew(rig, second)
            old_fp, new_fp = fingerprint(old), fingerprint(new)
            # new (2 failures: a round), old (2), new again: the alternation
            await wait_for(lambda: len(rig.failures) >= 5, 60)
            assert rig.failures[:5] == [new_fp, new_fp, old_fp, old_fp, new_fp]
        # a restart in the middle: the trial goes on from the store and the outbox state
        restarted = rig.build()
        trial = restarted.bridge.cert_trial
        assert trial is not None and trial.state() is not None
        allowed.add(new.serial_number)  # the CSMS now takes the renewed certificate
        async with running(restarted):
            await wait_for(lambda: trial.state() is None, 60)
            assert store.leaf_chain("csms")[0] == new
            assert rig.served_serials()[-1] == new.serial_number
            assert not (store.root / "fallback" / "csms").exists()
        assert rig.served_serials() == [old.serial_number, new.serial_number]
        assert not events(rig.csms, sec.DISCARDED_RENEWED_CERTIFICATE)
        await rig.csms.stop()

    run(main())
