"""ChangeAvailability (OCPP 2.0.1 G03 for an EVSE or a connector, G04 for the station),
against the test CSMS.

From the use cases' requirements: Accepted when the change takes effect now, Scheduled
while a transaction runs on the target (it goes on; the target becomes Unavailable when
it ends), Accepted without a change when the target already has that state; a
StatusNotification with the new status of each affected connector; an inoperative EVSE
starts no transaction (authorization refused, RequestStartTransaction Rejected) and
reports Unavailable; the state persists across a restart; an unknown EVSE or connector
is Rejected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from ocpp.v201 import call

from secc.core.actions import EndReason, RequestAuthorization, SessionEnded, SessionStarted
from secc.core.events import AuthorizationResult
from secc.ocpp_bridge.bridge import BridgeConfig
from tests.ocpp.conftest import OpsLink
from tests.ocpp.csms import TestCsms, wait_for
from tests.ocpp.station import STATION, build, running

FAST = BridgeConfig(link_retry=0.05, meter_interval=3600)
PLUG = SessionStarted(b"\x01" * 8, b"\x02" * 6, "urn:iso:15118:2:2013:MsgDef")


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))  # type: ignore[arg-type]


def statuses(csms: TestCsms) -> list[tuple[int, int, str]]:
    return [
        (p["evseId"], p["connectorId"], p["connectorStatus"])
        for action, p in csms.calls
        if action == "StatusNotification"
    ]


def change(status: str, evse: dict[str, Any] | None = None) -> call.ChangeAvailability:
    return call.ChangeAvailability(operational_status=status, evse=evse)


def test_inoperative_evse_refuses_sessions_and_stays_so_after_a_restart(tmp_path: Path) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        station = build(tmp_path, csms.url, config=FAST)
        bridge = station.bridge
        async with running(station):
            cp = await csms.station(STATION)
            await wait_for(lambda: statuses(csms) == [(1, 1, "Available")])
            answer = await cp.call(change("Inoperative", {"id": 1}))
            assert answer.status == "Accepted"
            await wait_for(lambda: statuses(csms)[-1] == (1, 1, "Unavailable"))
            # a car arrives: no transaction, its authorization is refused cleanly
            bridge.perform(PLUG)
            bridge.perform(RequestAuthorization("ExternalPayment", ""))
            result = await station.next_event(AuthorizationResult)
            assert not result.accepted and "unavailable" in result.reason
            bridge.perform(SessionEnded(EndReason.EV_STOP))
            start = await cp.remote_start("REMOTE-1", "Central", 1)
            assert start.status == "Rejected"
            trigger = await cp.call(
                call.TriggerMessage(
                    requested_message="StatusNotification", evse={"id": 1, "connector_id": 1}
                )
            )
            assert trigger.status == "Accepted"
            await wait_for(lambda: len(statuses(csms)) == 3)
            assert statuses(csms)[-1] == (1, 1, "Unavailable")
        # restart: the EVSE is still inoperative and says so at boot
        again = build(tmp_path, csms.url, config=FAST)
        async with running(again):
            cp = await csms.station(STATION)
            await wait_for(lambda: len(statuses(csms)) == 4)
            assert statuses(csms)[-1] == (1, 1, "Unavailable")
            same = await cp.call(change("Inoperative", {"id": 1}))
            assert same.status == "Accepted"  # already so: nothing changes
            answer = await cp.call(change("Operative", {"id": 1}))
            assert answer.status == "Accepted"
            await wait_for(lambda: statuses(csms)[-1] == (1, 1, "Available"))
            assert len(statuses(csms)) == 5
            again.bridge.perform(PLUG)  # sessions start again
            await wait_for(lambda: len(csms.tx_raw) == 1)
        await csms.stop()
        assert [p["eventType"] for _, p in csms.tx_raw] == ["Started"]

    run(main())


def test_inoperative_during_a_transaction_is_scheduled(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            csms, station, cp = link.csms, link.station, link.cp
            bridge = station.bridge
            bridge.perform(PLUG)
            await wait_for(lambda: statuses(csms)[-1:] == [(1, 1, "Occupied")])
            answer = await cp.call(change("Inoperative", {"id": 1, "connector_id": 1}))
            assert answer.status == "Scheduled"
            bridge.perform(RequestAuthorization("ExternalPayment", ""))
            bridge.present_token("04A1B2C3", "ISO14443")
            assert (await station.next_event(AuthorizationResult)).accepted  # it goes on
            bridge.perform(SessionEnded(EndReason.EV_STOP))
            await wait_for(lambda: statuses(csms)[-1] == (1, 1, "Unavailable"))
            # the Ended event comes through the outbox, the status directly: wait for both
            await wait_for(lambda: len(csms.transaction_stream()) == 3)
        assert (1, 1, "Available") not in statuses(csms)[1:]
        assert [p["eventType"] for p in csms.transaction_stream()] == [
            "Started",
            "Updated",
            "Ended",
        ]

    run(main())


def test_station_level_change_and_bad_targets(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            csms, station, cp = link.csms, link.station, link.cp
            await wait_for(lambda: len(statuses(csms)) == 1)
            for evse in ({"id": 7}, {"id": 1, "connector_id": 2}):
                answer = await cp.call(change("Inoperative", evse))
                assert answer.status == "Rejected"
                assert answer.status_info["reason_code"]
            assert station.bridge.ops.operative(1)
            answer = await cp.call(change("Inoperative"))  # G04: the whole station
            assert answer.status == "Accepted"
            await wait_for(lambda: statuses(csms)[-1] == (1, 1, "Unavailable"))
            # the EVSE level is operative, the station level is not: still unavailable
            answer = await cp.call(change("Operative", {"id": 1}))
            assert answer.status == "Accepted"
            answer = await cp.call(change("Operative"))
            assert answer.status == "Accepted"
            await wait_for(lambda: statuses(csms)[-1] == (1, 1, "Available"))
        assert statuses(csms) == [(1, 1, "Available"), (1, 1, "Unavailable"), (1, 1, "Available")]

    run(main())
