"""Flows a CSMS operator uses every day, checked against the test CSMS's rules (issue 13):
remote start before and after plug-in with the token's real type (F01, F02), the password
and every other device-model variable in force from the first connection after a restart
(A01, B05), settings in effect as reported (HeartbeatInterval, MessageAttempts*),
deauthorization reasons (E05), triggered meter values (F06), BootNotification reason on a
reconnect, DataTransfer with an unknown vendor, NotifyReport with EVSE and Connector."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from ocpp.v201 import call

from secc.core.actions import EndReason, RequestAuthorization, SessionEnded, SessionStarted
from secc.core.events import AuthorizationResult, EvseStatus, StopRequested
from secc.ocpp_bridge.bridge import BridgeConfig
from tests.ocpp.csms import Behaviour, TestCsms, wait_for
from tests.ocpp.station import STATION, build, running

FAST = BridgeConfig(link_retry=0.05, meter_interval=3600)
PLUG = SessionStarted(b"\x01" * 8, b"\x02" * 6, "urn:iso:15118:2:2013:MsgDef")


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))  # type: ignore[arg-type]


def _set(component: str, variable: str, value: str) -> dict[str, Any]:
    return {
        "component": {"name": component},
        "variable": {"name": variable},
        "attribute_value": value,
    }


def _get(component: str, variable: str) -> dict[str, Any]:
    return {"component": {"name": component}, "variable": {"name": variable}}


def test_remote_start_before_plug_in_keeps_the_token_type(tmp_path: Path) -> None:
    """F02 with AuthorizeRemoteStart=false: the remote token is Central everywhere, so a
    CSMS that looks tokens up by (idToken, type) accepts the transaction."""

    async def main() -> None:
        csms = TestCsms(behaviour=Behaviour(known_tokens={}))
        await csms.start()
        station = build(tmp_path, csms.url, config=FAST)
        bridge = station.bridge
        async with running(station):
            cp = await csms.station(STATION)
            answer = await cp.remote_start("REMOTE-0001", "Central", 7)
            assert answer.status == "Accepted"
            bridge.perform(PLUG)
            bridge.perform(RequestAuthorization("ExternalPayment", ""))
            result = await station.next_event(AuthorizationResult)
            assert result.accepted
            await wait_for(lambda: len(csms.tx_raw) >= 2 and len(bridge.queue) == 0)
            await asyncio.sleep(0.2)
            assert not any(isinstance(e, StopRequested) for e in station.events)
            bridge.perform(SessionEnded(EndReason.EV_STOP))
            await wait_for(lambda: bridge.transaction is None and len(bridge.queue) == 0)
        await csms.stop()
        stream = csms.transaction_stream()
        assert stream[0]["triggerReason"] == "RemoteStart"
        assert stream[0]["transactionInfo"]["remoteStartId"] == 7
        tokens = [e["idToken"] for e in stream if "idToken" in e]
        assert tokens and all(t == {"idToken": "REMOTE-0001", "type": "Central"} for t in tokens)

    run(main())


def test_remote_start_with_the_cable_first_authorizes_the_waiting_session(
    tmp_path: Path,
) -> None:
    """F01: the EV is plugged and waits in EIM authorization; RequestStartTransaction is
    Accepted with the running transactionId and authorizes it; the TransactionEvent says
    RemoteStart with the remoteStartId and the token."""

    async def main() -> None:
        csms = TestCsms(behaviour=Behaviour(known_tokens={}))
        await csms.start()
        station = build(tmp_path, csms.url, config=FAST)
        bridge = station.bridge
        async with running(station):
            cp = await csms.station(STATION)
            bridge.perform(PLUG)
            bridge.perform(RequestAuthorization("ExternalPayment", ""))
            await wait_for(lambda: bridge.transaction is not None and len(csms.tx_raw) == 1)
            assert bridge.transaction is not None
            tx_id = bridge.transaction["id"]
            answer = await cp.remote_start("REMOTE-0002", "Central", 8)
            assert answer.status == "Accepted", answer
            assert answer.transaction_id == tx_id
            result = await station.next_event(AuthorizationResult)
            assert result.accepted and result.id_token == "REMOTE-0002"
            await wait_for(lambda: len(csms.tx_raw) >= 2 and len(bridge.queue) == 0)
            # a second remote start for the now authorized transaction is refused
            again = await cp.remote_start("REMOTE-0003", "Central", 9)
            assert again.status == "Rejected"
        await csms.stop()
        stream = csms.transaction_stream()
        assert stream[0]["triggerReason"] == "CablePluggedIn"
        update = stream[1]
        assert update["triggerReason"] == "RemoteStart"
        assert update["transactionInfo"]["remoteStartId"] == 8
        assert update["idToken"] == {"idToken": "REMOTE-0002", "type": "Central"}
        assert not any(isinstance(e, StopRequested) for e in station.events)

    run(main())


def test_password_and_settings_in_force_after_a_restart(tmp_path: Path) -> None:
    """A01/B05: a password set by the CSMS is used from the first connection after a
    restart, and so is every other persisted variable (MessageAttemptsTransactionEvent);
    a transaction event queued before the restart is delivered."""

    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        port = csms.port
        station = build(tmp_path, csms.url, config=FAST)
        async with running(station):
            cp = await csms.station(STATION)
            assert await cp.set_password("a-new-password-0123456789") == "Accepted"
            await wait_for(lambda: station.client.connects >= 2 and station.client.online.is_set())
            cp = await csms.station(STATION)
            answer = await cp.call(
                call.SetVariables(
                    set_variable_data=[
                        _set("OCPPCommCtrlr", "MessageAttemptsTransactionEvent", "1"),
                    ]
                )
            )
            assert answer.set_variable_result[0]["attribute_status"] == "Accepted"
            await csms.stop()
            await wait_for(lambda: not station.client.online.is_set())
            station.bridge.perform(PLUG)  # queued while the CSMS is down
            await wait_for(lambda: len(station.bridge.queue) == 1)
        # the station restarts (same state directory); the CSMS comes back
        csms.behaviour.tx_errors = 1
        await csms.start(port)
        rejected = csms.rejected_auth
        again = build(tmp_path, csms.url, config=FAST)
        async with running(again):
            await wait_for(lambda: len(again.bridge.queue) == 0)
            assert csms.rejected_auth == rejected
        await csms.stop()
        # MessageAttemptsTransactionEvent=1: the CallError'd Started was not sent again;
        # the transaction open at the restart was ended (PowerLoss)
        assert [p["eventType"] for _, p in csms.tx_raw] == ["Started", "Ended"]

    run(main())


def test_settings_take_effect_and_get_variables_reports_them(tmp_path: Path) -> None:
    """B05/B06: HeartbeatInterval from the boot answer is what GetVariables reports;
    a HeartbeatInterval set by the CSMS changes the heartbeat; MessageAttempts*
    TransactionEvent set by the CSMS govern the retries of a CallError'd event."""

    async def main() -> None:
        csms = TestCsms(behaviour=Behaviour(heartbeat_interval=3600))
        await csms.start()
        station = build(tmp_path, csms.url, config=FAST)
        bridge = station.bridge
        async with running(station):
            cp = await csms.station(STATION)
            got = await cp.call(
                call.GetVariables(get_variable_data=[_get("OCPPCommCtrlr", "HeartbeatInterval")])
            )
            assert got.get_variable_result[0]["attribute_value"] == "3600"
            answer = await cp.call(
                call.SetVariables(
                    set_variable_data=[
                        _set("OCPPCommCtrlr", "HeartbeatInterval", "1"),
                        _set("OCPPCommCtrlr", "MessageAttemptsTransactionEvent", "2"),
                        _set("OCPPCommCtrlr", "MessageAttemptIntervalTransactionEvent", "0"),
                    ]
                )
            )
            assert {r["attribute_status"] for r in answer.set_variable_result} == {"Accepted"}
            before = csms.heartbeats
            await wait_for(lambda: csms.heartbeats >= before + 2, timeout=30)
            csms.behaviour.tx_errors = 5
            bridge.perform(PLUG)
            await wait_for(lambda: len(csms.tx_raw) >= 2 and len(bridge.queue) == 0)
            await asyncio.sleep(0.3)
        await csms.stop()
        assert len(csms.tx_raw) == 2  # two attempts, then dropped

    run(main())


def test_deauthorized_trigger_labels_boot_reason_data_transfer_report(tmp_path: Path) -> None:
    """E05: a token the CSMS deauthorizes in a TransactionEventResponse ends the
    transaction with DeAuthorized / Deauthorized.  F06: triggered meter values say
    Trigger.  B01: the BootNotification after a reconnect without restart is not PowerUp.
    P01: DataTransfer for an unknown vendor is UnknownVendorId.  B07: the base report
    has the EVSE and Connector components."""

    async def main() -> None:
        tokens: dict[tuple[str, str], str] = {}
        csms = TestCsms(behaviour=Behaviour(known_tokens=tokens))
        await csms.start()
        station = build(tmp_path, csms.url, config=FAST)
        bridge = station.bridge
        async with running(station):
            cp = await csms.station(STATION)
            assert (await cp.remote_start("04A1B2C3", "ISO14443", 5)).status == "Accepted"
            tokens[("04A1B2C3", "ISO14443")] = "Blocked"  # blocked before the EV arrives
            bridge.evse_status(EvseStatus(230.0, 16.0, energy_wh=500.0, power_w=3680.0))
            bridge.perform(PLUG)
            bridge.perform(RequestAuthorization("ExternalPayment", ""))
            assert (await station.next_event(AuthorizationResult)).accepted
            stop = await station.next_event(StopRequested)  # the CSMS's answer deauthorizes
            assert "Blocked" in stop.reason

            triggered = await cp.call(call.TriggerMessage(requested_message="TransactionEvent"))
            assert triggered.status == "Accepted"
            await wait_for(lambda: any(p["triggerReason"] == "Trigger" for _, p in csms.tx_raw))

            unknown = await cp.call(call.DataTransfer(vendor_id="com.example.nobody"))
            assert unknown is not None and unknown.status == "UnknownVendorId"

            report = await cp.call(call.GetBaseReport(request_id=4, report_base="FullInventory"))
            assert report.status == "Accepted"
            await wait_for(lambda: bool(csms.reports))

            bridge.perform(SessionEnded(EndReason.STATION_STOP))  # what the core does next
            await wait_for(lambda: bridge.transaction is None and len(bridge.queue) == 0)

            await station.client.close()  # the link drops; the process keeps running
            await wait_for(lambda: len(csms.boots) >= 2 and station.client.online.is_set())
        await csms.stop()
        stream = csms.transaction_stream()
        trigger = next(e for e in stream if e["triggerReason"] == "Trigger")
        assert {v["context"] for v in trigger["meterValue"][0]["sampledValue"]} == {"Trigger"}
        ended = stream[-1]
        assert ended["eventType"] == "Ended"
        assert ended["transactionInfo"]["stoppedReason"] == "DeAuthorized"
        assert ended["triggerReason"] == "Deauthorized"
        reasons = [p["reason"] for a, p in csms.calls if a == "BootNotification"]
        assert reasons[0] == "PowerUp" and reasons[1] != "PowerUp"
        data = [d for r in csms.reports for d in r["report_data"]]
        evse = [d for d in data if d["component"]["name"] == "EVSE"]
        connector = [d for d in data if d["component"]["name"] == "Connector"]
        assert {d["component"]["evse"]["id"] for d in evse} == {1}
        assert {d["variable"]["name"] for d in evse} >= {"AvailabilityState", "Available"}
        assert {(d["component"]["evse"]["id"], d["component"]["evse"]["connector_id"])
                for d in connector} == {(1, 1)}  # fmt: skip
        assert {d["variable"]["name"] for d in connector} >= {
            "AvailabilityState",
            "Available",
            "ConnectorType",
        }

    run(main())


def test_measurands_and_authorization_switch_take_effect(tmp_path: Path) -> None:
    """SampledDataCtrlr.TxUpdatedMeasurands / TxEndedMeasurands select the measurands
    sent; a measurand the station does not have is Rejected.  AuthCtrlr.Enabled=false:
    the session is authorized without a token and without Authorize (C01)."""

    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        station = build(tmp_path, csms.url, config=FAST)
        bridge = station.bridge
        async with running(station):
            cp = await csms.station(STATION)
            answer = await cp.call(
                call.SetVariables(
                    set_variable_data=[
                        _set("SampledDataCtrlr", "TxUpdatedMeasurands", "Power.Active.Import"),
                        _set(
                            "SampledDataCtrlr", "TxEndedMeasurands", "Energy.Active.Import.Register"
                        ),
                        _set("SampledDataCtrlr", "TxStartedMeasurands", "Frequency"),
                        _set("AuthCtrlr", "Enabled", "false"),
                    ]
                )
            )
            statuses = [r["attribute_status"] for r in answer.set_variable_result]
            assert statuses == ["Accepted", "Accepted", "Rejected", "Accepted"]
            bridge.evse_status(EvseStatus(230.0, 16.0, energy_wh=500.0, power_w=3680.0))
            bridge.perform(PLUG)
            bridge.perform(RequestAuthorization("ExternalPayment", ""))
            assert (await station.next_event(AuthorizationResult)).accepted
            await wait_for(lambda: bridge.transaction is not None)
            triggered = await cp.call(call.TriggerMessage(requested_message="TransactionEvent"))
            assert triggered.status == "Accepted"
            await wait_for(lambda: any(p["triggerReason"] == "Trigger" for _, p in csms.tx_raw))
            bridge.perform(SessionEnded(EndReason.EV_STOP))
            await wait_for(lambda: bridge.transaction is None and len(bridge.queue) == 0)
        await csms.stop()
        assert not csms.authorizations
        stream = csms.transaction_stream()

        def measurands(event: dict[str, Any]) -> set[str]:
            return {v["measurand"] for v in event["meterValue"][0]["sampledValue"]}

        trigger = next(e for e in stream if e["triggerReason"] == "Trigger")
        assert measurands(trigger) == {"Power.Active.Import"}
        assert measurands(stream[-1]) == {"Energy.Active.Import.Register"}
        assert len(measurands(stream[0])) == 4  # the default TxStartedMeasurands

    run(main())
