"""Reset (OCPP 2.0.1 B11 without / B12 with an ongoing transaction), against the test CSMS.

From the use cases' requirements: the station answers Accepted (idle, or Immediate) or
Scheduled (OnIdle while a transaction runs); Immediate ends the transaction with
stoppedReason ImmediateReset and triggerReason ResetCommand before restarting; OnIdle
waits for the transaction to end by itself; a security event ResetOrReboot is sent
(A04); the BootNotification after the restart says RemoteReset.  A reset of a single
EVSE, which this station does not support, is Rejected and the station keeps serving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from ocpp.v201 import call

from hal.hooks import SimulatedReset, StationHooks
from secc.core.actions import EndReason, RequestAuthorization, SessionEnded, SessionStarted
from secc.core.events import AuthorizationResult, StopRequested
from secc.ocpp_bridge.bridge import BridgeConfig
from tests.ocpp.csms import TestCsms, wait_for
from tests.ocpp.station import STATION, Station, build, running

FAST = BridgeConfig(link_retry=0.05, meter_interval=3600)
PLUG = SessionStarted(b"\x01" * 8, b"\x02" * 6, "urn:iso:15118:2:2013:MsgDef")


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))  # type: ignore[arg-type]


class RecordingReset(SimulatedReset):
    """A simulated reset that notes what the CSMS had received when it was called."""

    def __init__(self, csms: TestCsms) -> None:
        super().__init__()
        self.csms = csms
        self.seen: list[list[str]] = []

    def reset(self, kind: str) -> None:
        self.seen.append([p["eventType"] for _, p in self.csms.tx_raw])
        super().reset(kind)


def _station(tmp_path: Path, csms: TestCsms) -> tuple[Station, RecordingReset]:
    station = build(tmp_path, csms.url, config=FAST)
    hook = RecordingReset(csms)
    station.bridge.ops.hooks = StationHooks(reset=hook)
    return station, hook


def _boot_reasons(csms: TestCsms) -> list[Any]:
    return [p["reason"] for action, p in csms.calls if action == "BootNotification"]


def test_immediate_reset_when_idle_restarts_with_remote_reset(tmp_path: Path) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        station, hook = _station(tmp_path, csms)
        async with running(station):
            cp = await csms.station(STATION)
            answer = await cp.call(call.Reset(type="Immediate"))
            assert answer.status == "Accepted"
            await wait_for(lambda: hook.resets == ["Immediate"])
            # B11: the security event is delivered before the restart
            assert [e["type"] for e in csms.raised_events()] == ["ResetOrReboot"]
            assert len(station.bridge.queue) == 0
        # the process restarts on the same state: BootNotification says RemoteReset once
        again, _ = _station(tmp_path, csms)
        async with running(again):
            await wait_for(lambda: len(_boot_reasons(csms)) == 2)
        third, _ = _station(tmp_path, csms)
        async with running(third):
            await wait_for(lambda: len(_boot_reasons(csms)) == 3)
        await csms.stop()
        assert _boot_reasons(csms) == ["PowerUp", "RemoteReset", "PowerUp"]

    run(main())


def test_immediate_reset_ends_the_transaction_with_immediate_reset(tmp_path: Path) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        station, hook = _station(tmp_path, csms)
        bridge = station.bridge
        async with running(station):
            cp = await csms.station(STATION)
            bridge.perform(PLUG)
            bridge.perform(RequestAuthorization("ExternalPayment", ""))
            bridge.present_token("04A1B2C3", "ISO14443")
            assert (await station.next_event(AuthorizationResult)).accepted
            await wait_for(lambda: len(csms.tx_raw) >= 2 and len(bridge.queue) == 0)
            answer = await cp.call(call.Reset(type="Immediate"))
            assert answer.status == "Accepted"
            stop = await station.next_event(StopRequested)
            assert "Reset" in stop.reason
            assert hook.resets == []  # not before the transaction has ended
            bridge.perform(SessionEnded(EndReason.STATION_STOP))  # the core ends it
            await wait_for(lambda: hook.resets == ["Immediate"])
        await csms.stop()
        ended = csms.transaction_stream()[-1]
        assert ended["eventType"] == "Ended"
        assert ended["transactionInfo"]["stoppedReason"] == "ImmediateReset"
        assert ended["triggerReason"] == "ResetCommand"
        assert hook.seen == [["Started", "Updated", "Ended"]]  # delivered before the reset

    run(main())


def test_on_idle_reset_waits_for_the_transaction_and_refuses_new_sessions(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        station, hook = _station(tmp_path, csms)
        bridge = station.bridge
        async with running(station):
            cp = await csms.station(STATION)
            bridge.perform(PLUG)
            await wait_for(lambda: len(csms.tx_raw) == 1 and len(bridge.queue) == 0)
            answer = await cp.call(call.Reset(type="OnIdle"))
            assert answer.status == "Scheduled"
            again = await cp.call(call.Reset(type="OnIdle"))  # asked twice: still Scheduled
            assert again.status == "Scheduled"
            start = await cp.remote_start("REMOTE-9", "Central", 3)
            assert start.status == "Rejected"  # B12: no new transaction meanwhile
            assert not any(isinstance(e, StopRequested) for e in station.events)
            assert hook.resets == []
            bridge.perform(SessionEnded(EndReason.EV_STOP))  # the EV ends its session
            await wait_for(lambda: hook.resets == ["OnIdle"])
            # a simulated reset returns: the station serves on
            answer = await cp.call(call.TriggerMessage(requested_message="Heartbeat"))
            assert answer.status == "Accepted"
        await csms.stop()
        ended = csms.transaction_stream()[-1]
        assert ended["transactionInfo"]["stoppedReason"] == "StoppedByEV"
        assert hook.seen == [["Started", "Ended"]]

    run(main())


def test_reset_of_one_evse_is_rejected_and_nothing_changes(tmp_path: Path) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        station, hook = _station(tmp_path, csms)
        async with running(station):
            cp = await csms.station(STATION)
            answer = await cp.call(call.Reset(type="Immediate", evse_id=1))
            assert answer.status == "Rejected"
            assert answer.status_info["reason_code"]
            beats = csms.heartbeats
            trigger = await cp.call(call.TriggerMessage(requested_message="Heartbeat"))
            assert trigger.status == "Accepted"
            await wait_for(lambda: csms.heartbeats > beats)
            station.bridge.perform(PLUG)  # sessions still start
            await wait_for(lambda: len(csms.tx_raw) == 1)
        await csms.stop()
        assert hook.resets == []
        assert csms.raised_events() == []

    run(main())


def test_immediate_reset_when_the_session_does_not_end(tmp_path: Path) -> None:
    """A session that does not end within the stop timeout does not block the reset;
    its transaction is ended at the restart (PowerLoss), nothing is lost."""

    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        station, hook = _station(tmp_path, csms)
        station.bridge.ops.stop_timeout = 0.5
        async with running(station):
            cp = await csms.station(STATION)
            station.bridge.perform(PLUG)
            await wait_for(lambda: len(csms.tx_raw) == 1)
            answer = await cp.call(call.Reset(type="Immediate"))
            assert answer.status == "Accepted"
            await station.next_event(StopRequested)  # the core never answers
            await wait_for(lambda: hook.resets == ["Immediate"])
        again, _ = _station(tmp_path, csms)
        async with running(again):
            await wait_for(lambda: len(csms.tx_raw) == 2 and len(again.bridge.queue) == 0)
        await csms.stop()
        stream = csms.transaction_stream()
        assert [e["eventType"] for e in stream] == ["Started", "Ended"]
        assert stream[1]["transactionInfo"]["stoppedReason"] == "PowerLoss"
        assert _boot_reasons(csms) == ["PowerUp", "RemoteReset"]

    run(main())
