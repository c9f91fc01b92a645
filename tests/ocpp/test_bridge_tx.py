"""Transactions through the durable outbox: a full session, a CSMS that drops mid-transaction
(events flagged offline, delivered in order after reconnect), CallErrors, remote stop and
triggered events, and the exactly-once check on the CSMS side."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from ocpp.v201 import call

from certs.store import Store
from secc.core.actions import (
    ChargingStateChanged,
    EndReason,
    RequestAuthorization,
    SessionEnded,
    SessionStarted,
)
from secc.core.events import AuthorizationResult, EvseStatus, StopRequested
from secc.ocpp_bridge.bridge import BridgeConfig
from tests.ocpp.csms import Behaviour, TestCsms, wait_for
from tests.ocpp.station import STATION, build, contract_request, running

FAST = BridgeConfig(link_retry=0.05, meter_interval=0.2)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


def check_stream(stream: list[dict[str, Any]]) -> None:
    """One transaction, Started first, Ended last, seqNo 0..n without gaps."""
    assert [e["seqNo"] for e in stream] == list(range(len(stream)))
    assert stream[0]["eventType"] == "Started"
    assert stream[-1]["eventType"] == "Ended"
    assert {e["eventType"] for e in stream[1:-1]} <= {"Updated"}
    assert len({e["transactionInfo"]["transactionId"] for e in stream}) == 1


def test_full_plug_and_charge_session(tmp_path: Path, pki_dir: Path, store: Store) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        station = build(tmp_path, csms.url, store=store, config=FAST)
        bridge = station.bridge
        async with running(station):
            bridge.evse_status(EvseStatus(400.0, 0.0, energy_wh=1000.0))
            bridge.perform(SessionStarted(b"\x01" * 8, b"\x02" * 6, "urn:iso:15118:2:2013:MsgDef"))
            request = contract_request(pki_dir)
            bridge.perform(request)
            assert (await station.next_event(AuthorizationResult)).accepted
            bridge.perform(ChargingStateChanged(True, soc=42))
            bridge.evse_status(EvseStatus(400.0, 25.0, energy_wh=1500.0, power_w=10000.0))
            await asyncio.sleep(0.5)  # a few periodic samples
            bridge.perform(ChargingStateChanged(False, soc=80))
            bridge.perform(SessionEnded(EndReason.EV_STOP))
            await wait_for(lambda: any(e["eventType"] == "Ended" for _, e in csms.tx_raw))
            await wait_for(lambda: len(bridge.queue) == 0)
            await wait_for(lambda: [a for a, _ in csms.calls].count("StatusNotification") == 3)
        stream = csms.transaction_stream()
        check_stream(stream)
        assert len(csms.tx_raw) == len(stream)  # nothing was sent twice
        assert stream[0]["triggerReason"] == "CablePluggedIn"
        assert stream[0]["evse"] == {"id": 1, "connectorId": 1}
        begin = stream[0]["meterValue"][0]["sampledValue"][0]
        assert (begin["context"], begin["value"]) == ("Transaction.Begin", 1000.0)
        authorized = stream[1]
        assert authorized["triggerReason"] == "Authorized"
        assert authorized["idToken"] == {"idToken": request.id_token, "type": "eMAID"}
        triggers = [e["triggerReason"] for e in stream]
        assert "MeterValuePeriodic" in triggers
        charging = next(
            e for e in stream if e["transactionInfo"].get("chargingState") == "Charging"
        )
        soc = [v for v in charging["meterValue"][0]["sampledValue"] if v["measurand"] == "SoC"]
        assert soc[0]["value"] == 42
        ended = stream[-1]
        assert ended["transactionInfo"]["stoppedReason"] == "StoppedByEV"
        assert ended["meterValue"][0]["sampledValue"][0]["context"] == "Transaction.End"
        assert not any(e.get("offline") for e in stream)
        statuses = [p["connectorStatus"] for a, p in csms.calls if a == "StatusNotification"]
        assert statuses == ["Available", "Occupied", "Available"]
        await csms.stop()

    run(main())


def test_csms_drops_mid_transaction(tmp_path: Path, pki_dir: Path) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        port = csms.port
        station = build(tmp_path, csms.url, config=FAST)
        bridge = station.bridge
        async with running(station):
            bridge.perform(SessionStarted(b"\x01" * 8, b"\x02" * 6, "urn:iso:15118:2:2013:MsgDef"))
            bridge.present_token("04AABBCCDD")
            bridge.perform(RequestAuthorization("ExternalPayment", ""))
            assert (await station.next_event(AuthorizationResult)).accepted
            bridge.perform(ChargingStateChanged(True))
            await wait_for(lambda: len(csms.tx_raw) >= 3)
            await csms.stop()  # the CSMS goes away while the car charges
            await wait_for(lambda: not station.client.online.is_set())
            await asyncio.sleep(0.5)  # periodic samples pile up in the outbox
            bridge.perform(SessionEnded(EndReason.CONNECTION_LOST))
            await wait_for(lambda: bridge.transaction is None)
            waiting = len(bridge.queue)
            assert waiting >= 2
            await csms.start(port)
            await wait_for(lambda: len(bridge.queue) == 0)
        stream = csms.transaction_stream()
        check_stream(stream)
        offline = [e for e in stream if e.get("offline")]
        assert len(offline) >= waiting - 1  # events that happened while the link was down
        assert stream[-1]["offline"] is True
        assert stream[-1]["transactionInfo"]["stoppedReason"] == "EVDisconnected"
        await csms.stop()

    run(main())


def test_callerror_retry_remote_stop_and_trigger(tmp_path: Path) -> None:
    async def main() -> None:
        b = Behaviour(tx_errors=1, tx_malformed=1)
        csms = TestCsms(behaviour=b)
        await csms.start()
        station = build(tmp_path, csms.url, config=FAST)
        bridge = station.bridge
        async with running(station):
            bridge.perform(SessionStarted(b"\x01" * 8, b"\x02" * 6, "urn:iso:15118:2:2013:MsgDef"))
            await wait_for(lambda: len(csms.transaction_stream()) == 1 and len(bridge.queue) == 0)
            assert len(csms.tx_raw) == 3  # a CallError, a malformed answer, then accepted
            assert len({mid for mid, _ in csms.tx_raw}) == 1
            tx_id = bridge.transaction["id"]  # type: ignore[index]
            cp = await csms.station(STATION)
            answer = await cp.call(call.TriggerMessage(requested_message="TransactionEvent"))
            assert answer.status == "Accepted"
            await wait_for(lambda: any(e["triggerReason"] == "Trigger" for _, e in csms.tx_raw))
            status = await cp.call(call.GetTransactionStatus(transaction_id=tx_id))
            assert (status.ongoing_indicator, status.messages_in_queue) == (True, False)
            status = await cp.call(call.GetTransactionStatus())
            assert status.messages_in_queue is False
            assert (await cp.call(call.RequestStopTransaction(transaction_id="nope"))).status == (
                "Rejected"
            )
            answer = await cp.call(call.RequestStopTransaction(transaction_id=tx_id))
            assert answer.status == "Accepted"
            stop = await station.next_event(StopRequested)
            assert "RequestStopTransaction" in stop.reason
            bridge.perform(SessionEnded(EndReason.STATION_STOP))
            await wait_for(lambda: any(e["eventType"] == "Ended" for _, e in csms.tx_raw))
            await wait_for(lambda: len(bridge.queue) == 0)
        stream = csms.transaction_stream()
        check_stream(stream)
        assert stream[-1]["triggerReason"] == "RemoteStop"
        assert stream[-1]["transactionInfo"]["stoppedReason"] == "Remote"
        await csms.stop()

    run(main())


def test_started_after_restart_recovers_the_open_transaction(tmp_path: Path) -> None:
    """A process that died with a transaction open ends it with PowerLoss at start-up
    (the kill -9 variant is in test_kill.py)."""

    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        await csms.stop()  # down: everything stays in the outbox
        first = build(tmp_path, csms.url, config=FAST)
        async with running(first, online=False):
            first.bridge.perform(SessionStarted(b"\x01" * 8, b"\x02" * 6, "ns"))
            await wait_for(lambda: first.bridge.transaction is not None)
        await csms.start()
        second = build(tmp_path, csms.url, config=FAST)
        async with running(second):
            await wait_for(lambda: len(second.bridge.queue) == 0)
        stream = csms.transaction_stream()
        check_stream(stream)
        assert [e["eventType"] for e in stream] == ["Started", "Ended"]
        assert stream[0]["offline"] is True
        assert stream[-1]["transactionInfo"]["stoppedReason"] == "PowerLoss"
        assert stream[-1]["triggerReason"] == "AbnormalCondition"
        await csms.stop()

    run(main())
