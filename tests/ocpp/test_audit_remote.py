"""Remote control answers (F01-F03, F06) checked against what the station then does,
written from OCPP 2.0.1 part 2:

* F06.FR.12: TriggerMessage StatusNotification names one connector (evse.id and
  evse.connectorId); without them, or for a connector the station does not have:
  Rejected; for its connector: Accepted and one StatusNotification of that connector;
* F02 (remote start first): the token waits for the EV at most TxCtrlr.EVConnectionTimeOut;
  an EV within it starts the transaction with triggerReason RemoteStart and the
  remoteStartId, a car plugged in after it is not charged on the token (its transaction
  starts CablePluggedIn and waits for its own authorization);
* with AuthorizeRemoteStart true an idToken the CSMS does not accept starts no charging;
* RequestStopTransaction with a transactionId the station does not have: Rejected,
  nothing stops;
* without evseId, a remote start goes to an EVSE that takes sessions, not to an
  inoperative one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from ocpp.v201 import call

from secc.core.actions import RequestAuthorization, SessionStarted
from secc.core.events import AuthorizationResult, StopRequested
from secc.ocpp_bridge import security_events as sec
from secc.ocpp_bridge.bridge import Bridge, BridgeConfig
from tests.ocpp.conftest import OpsLink
from tests.ocpp.csms import Behaviour, TestCsms, wait_for
from tests.ocpp.station import STATION, build, running

PLUG = SessionStarted(b"\x01" * 8, b"\x02" * 6, "urn:iso:15118:2:2013:MsgDef")


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))  # type: ignore[arg-type]


def setting(component: str, variable: str, value: str) -> call.SetVariables:
    return call.SetVariables(
        set_variable_data=[
            {
                "attribute_value": value,
                "component": {"name": component},
                "variable": {"name": variable},
            }
        ]
    )


def statuses(csms: TestCsms) -> list[tuple[Any, Any]]:
    return [(p["evseId"], p["connectorId"]) for a, p in csms.calls if a == "StatusNotification"]


def test_trigger_status_notification_names_one_connector(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            cp, csms = link.cp, link.csms
            await wait_for(lambda: len(statuses(csms)) == 1)  # the boot one
            for evse in (
                None,
                {"id": 1},
                {"id": 1, "connector_id": 2},
                {"id": 2, "connector_id": 1},
            ):
                answer = await cp.call(
                    call.TriggerMessage(requested_message="StatusNotification", evse=evse)
                )
                assert answer.status == "Rejected", evse
            ok = await cp.call(
                call.TriggerMessage(
                    requested_message="StatusNotification", evse={"id": 1, "connector_id": 1}
                )
            )
            assert ok.status == "Accepted"
            await wait_for(lambda: len(statuses(csms)) == 2)
            assert statuses(csms) == [(1, 1), (1, 1)]

    run(main())


def test_remote_start_waits_for_the_ev_only_ev_connection_timeout(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            cp, csms, bridge, station = link.cp, link.csms, link.bridge, link.station
            answer = await cp.call(setting("TxCtrlr", "EVConnectionTimeOut", "1"))
            assert answer.set_variable_result[0]["attribute_status"] == "Accepted"
            start = await cp.remote_start("REMOTE-LATE", "Central", 21)
            assert start.status == "Accepted"
            await wait_for(lambda: bridge._token is None, 10)  # the wait is over
            bridge.perform(PLUG)  # a car comes later
            bridge.perform(RequestAuthorization("ExternalPayment", ""))
            await wait_for(lambda: len(csms.tx_raw) == 1 and bridge._waiting_eim is not None)
            started = csms.transaction_stream()[0]
            assert started["triggerReason"] == "CablePluggedIn"
            assert "remoteStartId" not in started["transactionInfo"]
            assert not any(isinstance(e, AuthorizationResult) for e in station.events)

    run(main())


def test_remote_start_within_the_timeout_starts_the_transaction(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            cp, csms, bridge, station = link.cp, link.csms, link.bridge, link.station
            start = await cp.remote_start("REMOTE-ON-TIME", "Central", 22)
            assert start.status == "Accepted"
            bridge.perform(PLUG)
            bridge.perform(RequestAuthorization("ExternalPayment", ""))
            result = await station.next_event(AuthorizationResult)
            assert result.accepted and result.id_token == "REMOTE-ON-TIME"
            await wait_for(lambda: len(csms.tx_raw) >= 1)
            started = csms.transaction_stream()[0]
            assert started["triggerReason"] == "RemoteStart"
            assert started["transactionInfo"]["remoteStartId"] == 22
            # an unknown transactionId stops nothing
            stop = await cp.call(call.RequestStopTransaction(transaction_id="no-such-tx"))
            assert stop.status == "Rejected"
            assert bridge.transaction is not None
            assert not any(isinstance(e, StopRequested) for e in station.events)
            stop = await cp.call(
                call.RequestStopTransaction(transaction_id=str(bridge.transaction["id"]))
            )
            assert stop.status == "Accepted"
            await station.next_event(StopRequested)

    run(main())


def test_remote_start_token_the_csms_refuses_charges_nothing(ops_link: OpsLink) -> None:
    async def main() -> None:
        behaviour = Behaviour(known_tokens={})
        async with ops_link(behaviour=behaviour) as link:
            cp, csms, bridge, station = link.cp, link.csms, link.bridge, link.station
            answer = await cp.call(setting("AuthCtrlr", "AuthorizeRemoteStart", "true"))
            assert answer.set_variable_result[0]["attribute_status"] == "Accepted"
            start = await cp.remote_start("REMOTE-BLOCKED", "Central", 23)
            assert start.status == "Accepted"  # answered before the idToken is checked
            behaviour.known_tokens[("REMOTE-BLOCKED", "Central")] = "Blocked"  # type: ignore[index]
            bridge.perform(PLUG)
            bridge.perform(RequestAuthorization("ExternalPayment", ""))
            result = await station.next_event(AuthorizationResult)
            assert not result.accepted
            assert [a["id_token"]["id_token"] for a in csms.authorizations] == ["REMOTE-BLOCKED"]
            await wait_for(lambda: len(csms.tx_raw) >= 1 and len(bridge.queue) == 0)
            stream = csms.transaction_stream()
            assert all(e.get("triggerReason") != "Authorized" for e in stream)
            assert all(
                e.get("transactionInfo", {}).get("chargingState") != "Charging" for e in stream
            )

    run(main())


def test_remote_start_without_evse_avoids_an_inoperative_evse(tmp_path: Path) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        try:
            station = build(
                tmp_path,
                csms.url,
                config=BridgeConfig(link_retry=0.05, meter_interval=3600),
                client={"connectors": ((1, 1), (2, 1))},
            )
            first = station.bridge
            second = Bridge(
                BridgeConfig(evse_id=2, link_retry=0.05, meter_interval=3600),
                first.client,
                first.queue,
                first.auth,
                first.dm,
                station.events.append,
                primary=first,
            )
            task = asyncio.ensure_future(second.run())
            try:
                async with running(station):
                    cp = await csms.station(STATION)
                    off = await cp.call(
                        call.ChangeAvailability(operational_status="Inoperative", evse={"id": 1})
                    )
                    assert off.status == "Accepted"
                    start = await cp.remote_start("REMOTE-ANY", "Central", 24, evse_id=None)
                    assert start.status == "Accepted"
                    assert first._token is None
                    assert second._token is not None
                    assert second._token.remote_start_id == 24
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        finally:
            await csms.stop()

    run(main())


def test_transaction_status_counts_transaction_messages(ops_link: OpsLink) -> None:
    """E14: messagesInQueue says whether transaction-related messages wait for delivery:
    a queued security event is none; a TransactionEvent not yet answered is one."""

    async def main() -> None:
        behaviour = Behaviour()
        async with ops_link(behaviour=behaviour) as link:
            cp, csms, bridge = link.cp, link.csms, link.bridge
            await wait_for(lambda: bool(csms.security_events) and len(bridge.queue) == 0)
            gate = asyncio.Event()
            original = cp.route_map["SecurityEventNotification"]["_on_action"]

            async def slow(**kw: Any) -> Any:  # this CSMS answers security events late
                await gate.wait()
                return original(**kw)

            cp.route_map["SecurityEventNotification"]["_on_action"] = slow
            await bridge.security.record(sec.TAMPER, "queued, not transaction-related")
            await wait_for(
                lambda: any(
                    a == "SecurityEventNotification" and p["type"] == sec.TAMPER
                    for a, p in csms.calls
                )
            )
            assert len(bridge.queue) >= 1
            status = await cp.call(call.GetTransactionStatus())
            assert status.messages_in_queue is False
            unknown = await cp.call(call.GetTransactionStatus(transaction_id="no-such-tx"))
            assert (unknown.ongoing_indicator, unknown.messages_in_queue) == (False, False)
            gate.set()
            await wait_for(lambda: len(bridge.queue) == 0)
            behaviour.tx_delay = 60.0  # the next TransactionEvent stays unanswered
            bridge.perform(PLUG)
            await wait_for(lambda: len(csms.tx_raw) == 1)
            assert bridge.transaction is not None
            tx_id = str(bridge.transaction["id"])
            status = await cp.call(call.GetTransactionStatus())
            assert status.messages_in_queue is True
            mine = await cp.call(call.GetTransactionStatus(transaction_id=tx_id))
            assert (mine.ongoing_indicator, mine.messages_in_queue) == (True, True)

    run(main())
