"""The renewal job through the test CSMS: an about-to-expire SECC certificate is renewed
(SignCertificate -> CertificateSigned) and the next TLS session serves the new chain; a
refused SignCertificate, a malformed CertificateSigned or a chain that does not end at a
V2G root leaves the old chain in service.  `secc renew` as a subprocess, online and
--local-only."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cryptography import x509

from certs.store import Store
from certs.testpki import read_issued
from secc.aio.tls import SeccChain, secc_context
from secc.maintenance import (
    CsrSubject,
    MaintenanceReport,
    SignedInstaller,
    plan,
    run_maintenance,
)
from secc.ocpp_bridge.client import ClientConfig, OcppClient, StoreTls
from tests.commission.conftest import (
    EVSE_ID,
    PASSWORD,
    STATION,
    StationDir,
    ca_loop,
    pem,
    v2g_chain_for,
)
from tests.ocpp.csms import Behaviour, TestCsms

SUBJECT = CsrSubject(EVSE_ID, STATION, "Test CPO", "DE")


def nearly_a_year_on() -> dt.datetime:
    """The injected clock: 360 days after the test PKI was made, so the SECC leaf (365
    days) has 5 days left and renewal (30 days before) is due."""
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=360)


async def serve_once(store: Store) -> x509.Certificate:
    """Start a TLS server with the store's SECC chain (as `secc run` does at each new
    session), connect as an EV would, return the leaf the server presented."""
    certfile, keyfile = store.leaf_paths("v2g")
    root_pem = pem(*store.roots("v2g"))
    ctx = secc_context(SeccChain(certfile, keyfile, store.roots("v2g")[0]))

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.load_verify_locations(cadata=root_pem)
    client.set_ciphers("ECDHE-ECDSA-AES128-SHA256")
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        peer = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    return x509.load_der_x509_certificate(peer)


async def maintain(
    station: StationDir,
    *,
    behaviour: Behaviour | None = None,
    answer: Callable[[str | None, str], str | None],
    sign_timeout: float = 10.0,
    utc_now: Callable[[], dt.datetime] = nearly_a_year_on,
) -> tuple[MaintenanceReport, list[Any], TestCsms]:
    csms = TestCsms(password=PASSWORD, behaviour=behaviour)
    await csms.start()
    store = station.store()
    installer = SignedInstaller(store, utc_now)
    client = OcppClient(
        ClientConfig(csms.url, STATION, basic_auth_password=PASSWORD),
        handlers={"CertificateSigned": installer},
        tls=StoreTls(store),
    )
    link = asyncio.ensure_future(client.run())
    sent: list[Any] = []
    ca = asyncio.ensure_future(ca_loop(csms, answer, sent))
    try:
        await asyncio.wait_for(client.online.wait(), 10)
        report = await run_maintenance(
            client, store, installer, SUBJECT, utc_now, sign_timeout=sign_timeout
        )
    finally:
        for task in (ca, link):
            task.cancel()
        await asyncio.gather(ca, link, return_exceptions=True)
        await csms.stop()
    return report, sent, csms


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


def test_plan_sees_the_renewal_due(station: StationDir) -> None:
    due = plan(station.store(), nearly_a_year_on())
    assert "V2GCertificate" in due.renew and not due.expired
    assert plan(station.store(), dt.datetime.now(dt.UTC)).renew == ()
    roots_soon = plan(station.store(), dt.datetime.now(dt.UTC) + dt.timedelta(days=3600))
    assert any(e.label == "trust/v2g" for e in roots_soon.anchors_expiring)


def test_renewal_serves_the_new_chain_in_the_next_tls_session(station: StationDir) -> None:
    async def main() -> None:
        store = station.store()
        old_leaf = store.leaf_chain("v2g")[0]
        assert await serve_once(store) == old_leaf
        report, sent, _ = await maintain(
            station, answer=lambda kind, csr: v2g_chain_for(station.pki, csr)
        )
        assert [o.accepted for o in report.renewals] == [True] * len(report.renewals)
        assert "V2GCertificate" in [o.certificate_type for o in report.renewals]
        assert dict(sent)["V2GCertificate"].status == "Accepted"
        new_leaf = store.leaf_chain("v2g")[0]
        assert new_leaf != old_leaf
        assert new_leaf.public_key() != old_leaf.public_key()  # a fresh key
        assert await serve_once(store) == new_leaf
        assert store.pending_key("v2g") is None

    run(main())


def _refused(station: StationDir, **kw: Any) -> tuple[MaintenanceReport, list[Any]]:
    async def main() -> tuple[MaintenanceReport, list[Any]]:
        store = station.store()
        old_leaf = store.leaf_chain("v2g")[0]
        report, sent, _ = await maintain(station, **kw)
        assert store.leaf_chain("v2g")[0] == old_leaf  # the old chain is still in service
        assert await serve_once(store) == old_leaf
        return report, sent

    result: tuple[MaintenanceReport, list[Any]] = run(main())
    return result


def test_refused_sign_certificate_keeps_the_old_chain(station: StationDir) -> None:
    report, sent = _refused(
        station,
        behaviour=Behaviour(sign_certificate_status="Rejected"),
        answer=lambda kind, csr: v2g_chain_for(station.pki, csr),
    )
    v2g = next(o for o in report.renewals if o.certificate_type == "V2GCertificate")
    assert not v2g.accepted and "SignCertificate Rejected" in v2g.reason
    assert sent == [] and not report.ok


def test_malformed_certificate_signed_keeps_the_old_chain(station: StationDir) -> None:
    garbage = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
    report, sent = _refused(station, answer=lambda kind, csr: garbage)
    v2g = next(o for o in report.renewals if o.certificate_type == "V2GCertificate")
    assert not v2g.accepted and "malformed chain" in v2g.reason
    answered = dict(sent)["V2GCertificate"]
    assert answered.status == "Rejected"
    assert "malformed" in answered.status_info["additional_info"]


def test_chain_outside_the_v2g_pki_keeps_the_old_chain(station: StationDir) -> None:
    """Signed for the right key but by the MO's CA: the store alone would accept it (it
    links and fits the key); the pre-check against the V2G roots refuses it."""
    from certs.csr import sign_csr

    def wrong_ca(kind: str | None, csr: str) -> str:
        mo_sub2, mo_sub1 = read_issued(station.pki, "mo/sub2"), read_issued(station.pki, "mo/sub1")
        leaf = sign_csr(csr.encode(), mo_sub2, dt.datetime.now(dt.UTC))
        return pem(leaf, mo_sub2.certificate, mo_sub1.certificate)

    report, sent = _refused(station, answer=wrong_ca)
    v2g = next(o for o in report.renewals if o.certificate_type == "V2GCertificate")
    assert not v2g.accepted and "FAILED_NoCertificateAvailable" in v2g.reason
    assert dict(sent)["V2GCertificate"].status == "Rejected"


def test_no_answer_times_out_and_keeps_the_old_chain(station: StationDir) -> None:
    report, _ = _refused(station, answer=lambda kind, csr: None, sign_timeout=0.5)
    v2g = next(o for o in report.renewals if o.certificate_type == "V2GCertificate")
    assert not v2g.accepted and "no CertificateSigned within" in v2g.reason


async def renew_cli(station: StationDir, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "secc.cli.main",
        "renew",
        "--config",
        str(station.config),
        "--state-dir",
        str(station.state),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def test_secc_renew_cli_online_and_local_only(station: StationDir, tmp_path: Path) -> None:
    async def main() -> None:
        csms = TestCsms(password=PASSWORD)
        await csms.start()
        station.write_config(csms.url, profile=1)
        sent: list[Any] = []
        ca = asyncio.ensure_future(
            ca_loop(csms, lambda kind, csr: v2g_chain_for(station.pki, csr), sent)
        )
        store = station.store()
        old_leaf = store.leaf_chain("v2g")[0]
        try:
            code, out, err = await renew_cli(station, "--local-only")
            assert code == 0, out + err
            # with a renewal window longer than the leaf's life, renewal is due now
            code, out, err = await renew_cli(station, "--local-only", "--renew-before-days", "400")
            assert code == 0 and "due for renewal: V2GCertificate" in out, out + err
            assert csms.csrs == []
            code, out, err = await renew_cli(
                station, "--renew-before-days", "400", "--json", "--timeout", "20"
            )
            data = json.loads(out)
            renewed = {r["type"]: r["accepted"] for r in data["renewals"]}
            assert renewed["V2GCertificate"] is True, out + err
        finally:
            ca.cancel()
            await asyncio.gather(ca, return_exceptions=True)
            await csms.stop()
        assert store.leaf_chain("v2g")[0] != old_leaf
        # anchors expiring within the window: exit 1 even locally
        code, out, _ = await renew_cli(station, "--local-only", "--anchor-warn-days", "4000")
        assert code == 1 and "WARN trust anchor trust/v2g" in out

    run(main())


def test_ocsp_refresh_fills_the_cache_and_commission_sees_it(station: StationDir) -> None:
    from secc.commission.context import Context, Deps
    from secc.commission.model import Answers, Status
    from secc.commission.pki_checks import check_ocsp
    from secc.maintenance import ocsp_states
    from tests.commission.conftest import ocsp_responder

    def now() -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    async def main(revoked: bool) -> tuple[MaintenanceReport, str]:
        report, _, csms = await maintain(
            station,
            behaviour=Behaviour(ocsp_for=ocsp_responder(station.pki, revoked)),
            answer=lambda kind, csr: None,
            utc_now=now,
        )
        assert len(csms.ocsp_requests) == 3  # the SECC leaf and both CPO sub-CAs
        ctx = Context(station.config, Answers(), Deps())
        ctx.load()
        result = await check_ocsp(ctx)
        return report, f"{result.status} {result.reason}"

    assert {s.state for s in ocsp_states(station.store(), now())} == {"missing"}
    report, verdict = asyncio.run(main(False))
    assert report.renewals == [] and report.ocsp_stored == 3 and report.ok
    assert {s.state for s in ocsp_states(station.store(), now())} == {"fresh"}
    assert verdict == f"{Status.PASS} 3 fresh OCSP answer(s)"
    _, verdict = asyncio.run(main(True))
    assert verdict.startswith(f"{Status.FAIL} revoked: ")


def test_installer_refuses_bad_input_and_keeps_the_chain(station: StationDir) -> None:
    """CertificateSigned bytes come from the CSMS: truncated, oversized, empty, wrong type,
    an unknown certificate type, no CSR outstanding: each refused with a reason."""
    from certs.csr import request_certificate

    store = station.store()
    before = store.leaf_chain("v2g")
    installer = SignedInstaller(store, lambda: dt.datetime.now(dt.UTC))
    csr = request_certificate(store, "V2GCertificate", common_name=EVSE_ID, organization="X")
    good = v2g_chain_for(station.pki, csr.decode())
    cases = {
        "truncated": good[: len(good) // 2],
        "oversized": good + "A" * (2 << 20),
        "empty": "",
        "not PEM": "\x30\x82\x01",
    }
    for name, chain in cases.items():
        outcome = installer.install("V2GCertificate", chain)
        assert not outcome.accepted and outcome.reason, (name, outcome)
        # the truncated chain parses up to its last whole block, then fails the path check
        assert ("malformed" in outcome.reason) != (name == "truncated"), (name, outcome)
    reply = installer({"certificateType": "V2GCertificate", "certificateChain": 42})
    assert reply.payload["status"] == "Rejected"
    assert not installer.install("SomethingElse", good).accepted
    assert store.leaf_chain("v2g") == before
    assert installer.install("V2GCertificate", good).accepted  # the real one still fits
    assert store.leaf_chain("v2g") != before
    again = installer.install("V2GCertificate", good)  # no CSR outstanding any more
    assert not again.accepted and "no pending" in again.reason


def test_rollback_when_the_installed_chain_does_not_load(station: StationDir) -> None:
    """The after-install check fails (here: forced, standing in for a TLS library that
    refuses the new files): the previous chain and key go back into service."""
    from certs.csr import request_certificate

    class Unlucky(SignedInstaller):
        def _postcheck(self, use: str) -> str | None:
            return "the installed chain does not load for TLS: forced for the test"

    store = station.store()
    old_leaf = store.leaf_chain("v2g")[0]
    installer = Unlucky(store, lambda: dt.datetime.now(dt.UTC))
    csr = request_certificate(store, "V2GCertificate", common_name=EVSE_ID, organization="X")
    outcome = installer.install("V2GCertificate", v2g_chain_for(station.pki, csr.decode()))
    assert not outcome.accepted and "previous chain is back in service" in outcome.reason
    assert store.leaf_chain("v2g")[0] == old_leaf
    assert asyncio.run(serve_once(store)) == old_leaf  # and its key still matches
