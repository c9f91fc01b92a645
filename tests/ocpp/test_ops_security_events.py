"""Security events (OCPP 2.0.1 A04), against the test CSMS: a security setting changed by
the CSMS raises ReconfigurationOfSecurityParameters, written to the security log on disk
and sent as SecurityEventNotification (schema-checked by the CSMS); an event raised while
the CSMS is unreachable survives a restart and is delivered exactly once (A04: queued
like transaction events).  StartupOfTheDevice at every start, FailedToAuthenticateAtCsms
and InvalidCsmsCertificate when the link is refused.  The log rotates at its bound and
survives a torn line."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable
from pathlib import Path

from ocpp.v201 import call

from certs.store import Store
from secc.ocpp_bridge.bridge import BridgeConfig
from secc.ocpp_bridge.security_events import SECURITY_LOG, SecurityLog
from tests.ocpp.conftest import OpsLink, server_context
from tests.ocpp.csms import TestCsms, wait_for
from tests.ocpp.station import STATION, build, running

FAST = BridgeConfig(link_retry=0.05, meter_interval=3600)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))  # type: ignore[arg-type]


def test_security_setting_change_is_logged_and_notified(tmp_path: Path, ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            csms, station, cp = link.csms, link.station, link.cp
            answer = await cp.call(
                call.SetVariables(
                    set_variable_data=[
                        {
                            "component": {"name": "SecurityCtrlr"},
                            "variable": {"name": "CertSigningRepeatTimes"},
                            "attribute_value": "2",
                        }
                    ]
                )
            )
            assert answer.set_variable_result[0]["attribute_status"] == "Accepted"
            await wait_for(lambda: len(csms.raised_events()) == 1)
            # a non-security setting raises none
            await cp.call(
                call.SetVariables(
                    set_variable_data=[
                        {
                            "component": {"name": "OCPPCommCtrlr"},
                            "variable": {"name": "HeartbeatInterval"},
                            "attribute_value": "600",
                        }
                    ]
                )
            )
            await cp.call(call.TriggerMessage(requested_message="Heartbeat"))
            await wait_for(lambda: csms.heartbeats >= 1 and len(station.bridge.queue) == 0)
        event = csms.raised_events()[0]
        assert event["type"] == "ReconfigurationOfSecurityParameters"
        assert "CertSigningRepeatTimes" in event["tech_info"]
        assert len(csms.raised_events()) == 1
        logged = SecurityLog(tmp_path / SECURITY_LOG).entries()
        assert [e["type"] for e in logged] == [
            "StartupOfTheDevice",
            "ReconfigurationOfSecurityParameters",
        ]
        assert logged[1]["timestamp"] == event["timestamp"]

    run(main())


def test_event_raised_offline_survives_a_restart_and_arrives_once(tmp_path: Path) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        port = csms.port
        station = build(tmp_path, csms.url, config=FAST)
        async with running(station):
            await csms.station(STATION)
            await wait_for(lambda: len(station.bridge.queue) == 0)  # StartupOfTheDevice sent
            await csms.stop()
            await wait_for(lambda: not station.client.online.is_set())
            await station.bridge.security.record("TamperDetectionActivated", "lid opened")
            assert len(station.bridge.queue) == 1
        await csms.start(port)
        again = build(tmp_path, csms.url, config=FAST)
        async with running(again):
            await wait_for(lambda: len(again.bridge.queue) == 0)
        await csms.stop()
        assert [(e["type"], e.get("tech_info")) for e in csms.raised_events()] == [
            ("TamperDetectionActivated", "lid opened")
        ]

    run(main())


def test_security_log_rotates_and_skips_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "security.log"
    sec_log = SecurityLog(path, max_bytes=400)
    for i in range(12):
        sec_log.append({"timestamp": f"t{i}", "type": "InvalidMessages", "techInfo": "x" * 20})
    assert path.stat().st_size <= 400
    assert path.with_name("security.log.1").exists()
    with path.open("ab") as f:
        f.write(b'{"timestamp":"torn')  # power lost in the middle of a write
    entries = sec_log.entries()
    stamps = [e["timestamp"] for e in entries]
    assert stamps == sorted(stamps, key=lambda s: int(s[1:]))  # oldest first, no gap inside
    assert stamps[-1] == "t11"
    assert len(entries) >= 6  # the rotated file is read too


def test_startup_refused_password_and_untrusted_csms_certificate(
    tmp_path: Path, pki_dir: Path, store: Store
) -> None:
    """A04: StartupOfTheDevice at every start; a CSMS refusing the password (HTTP 401)
    raises FailedToAuthenticateAtCsms, a CSMS certificate not under the station's CSMS
    roots InvalidCsmsCertificate: each once however often the connection is retried,
    delivered once the link is up."""

    async def main() -> None:
        wrong = TestCsms(password="not-the-stations-password")
        await wrong.start()
        port = wrong.port
        station = build(tmp_path, wrong.url, config=FAST)
        failures: list[int] = []
        station.client.on_connect_failed.append(lambda: failures.append(1))
        async with running(station, online=False):
            await wait_for(lambda: len(failures) >= 3)
            await wrong.stop()
            right = TestCsms()
            await right.start(port)
            await wait_for(
                lambda: len(station.bridge.queue) == 0 and len(right.security_events) == 2
            )
        await right.stop()
        assert [e["type"] for e in right.security_events] == [
            "StartupOfTheDevice",
            "FailedToAuthenticateAtCsms",
        ]
        assert "401" in right.security_events[1]["tech_info"]

        # profile 2 against a CSMS whose certificate (the SECC's) no CSMS root vouches for
        untrusted = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        untrusted.load_cert_chain(pki_dir / "v2g" / "secc_chain.pem", pki_dir / "v2g" / "secc.key")
        bad = TestCsms(ssl_context=untrusted)
        await bad.start()
        port = bad.port
        tls_dir = tmp_path / "tls"
        station = build(tls_dir, bad.url, config=FAST, store=store, client={"security_profile": 2})
        failures.clear()
        station.client.on_connect_failed.append(lambda: failures.append(1))
        async with running(station, online=False):
            await wait_for(lambda: len(failures) >= 3)
            await bad.stop()
            good = TestCsms(ssl_context=server_context(pki_dir, client_auth=False))
            await good.start(port)
            await wait_for(
                lambda: len(station.bridge.queue) == 0 and len(good.security_events) == 2
            )
        await good.stop()
        assert [e["type"] for e in good.security_events] == [
            "StartupOfTheDevice",
            "InvalidCsmsCertificate",
        ]
        assert bad.boots == []

    run(main())
