"""One OCPP 2.0.1 connection for a station with two EVSEs: `secc run`'s Station with an
``[ocpp]`` section and two ``[[evse]]`` sections, two cars charging at once (Plug & Charge)
against the test CSMS on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

from ocpp.v201 import call

from hal.backends.simulated import build_board
from secc.aio.ev_client import run_ev_sdp
from secc.cli.ev import load_credentials
from secc.config import parse
from secc.core.events import StopRequested
from secc.ocpp_bridge.bridge import Bridge
from secc.runtime import Evse, Station
from secc.sdp import Security
from tests.ocpp.csms import TestCsms
from tests.station.conftest import EVSE_ID, run, script, wait_until
from tests.station.test_ocpp_section import _config

STATION = "CS-SECC-0001"
IDS = [EVSE_ID[:-1] + "1", EVSE_ID[:-1] + "2"]


def _by_transaction(stream: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for event in stream:
        out.setdefault(event["transactionInfo"]["transactionId"], []).append(event)
    return out


def _charging(csms: TestCsms, evse_id: int) -> bool:
    for events in _by_transaction(csms.transaction_stream()).values():
        if events[0].get("evse", {}).get("id") == evse_id and any(
            e.get("transactionInfo", {}).get("chargingState") == "Charging" for e in events
        ):
            return True
    return False


def test_two_evses_share_one_connection(pki_dir: Path, tmp_path: Path) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        port = csms.port
        creds = load_credentials(pki_dir, dt.datetime.now(dt.UTC))
        config = parse(_config(pki_dir, tmp_path, csms.url, evses=2), "secc.toml")
        boards = {evse_id: build_board()[0] for evse_id in IDS}
        try:
            async with Station(config, boards=boards) as station:
                e1, e2 = station.evse(IDS[0]), station.evse(IDS[1])
                b1, b2 = e1.backend, e2.backend
                assert isinstance(b1, Bridge) and isinstance(b2, Bridge)
                assert b1.client is b2.client and b1.queue is b2.queue and b1.dm is b2.dm
                assert (b1.config.evse_id, b2.config.evse_id) == (1, 2)
                await asyncio.wait_for(b1.client.online.wait(), 10)

                def car(e: Evse) -> asyncio.Task[Any]:
                    assert e.sdp is not None
                    return asyncio.create_task(
                        run_ev_sdp(
                            script("ac", payment="Contract", credentials=creds, charge_loops=10**6),
                            security=Security.TLS,
                            address="::1",
                            sdp_port=e.sdp.port,
                            cafile=pki_dir / "v2g" / "root.pem",
                        )
                    )

                cars = [car(e1), car(e2)]
                # both cars charge at the same time, each in a transaction of its own EVSE
                await wait_until(lambda: _charging(csms, 1) and _charging(csms, 2), timeout=20)
                assert b1.transaction is not None and b2.transaction is not None
                tx1, tx2 = str(b1.transaction["id"]), str(b2.transaction["id"])
                assert tx1 != tx2
                assert csms.boots == ["Accepted"]  # one BootNotification for the station
                statuses = {
                    (p["evseId"], p["connectorStatus"])
                    for action, p in csms.calls
                    if action == "StatusNotification"
                }
                assert {(1, "Occupied"), (2, "Occupied")} <= statuses
                assert {evse for evse, _ in statuses} == {1, 2}

                cp = await csms.station(STATION)
                triggered = await cp.call(
                    call.TriggerMessage(requested_message="TransactionEvent", evse={"id": 2})
                )
                assert triggered.status == "Accepted"
                await wait_until(
                    lambda: any(
                        e["triggerReason"] == "Trigger"
                        and e["transactionInfo"]["transactionId"] == tx2
                        for e in csms.transaction_stream()
                    ),
                    timeout=10,
                )
                status = await cp.call(call.GetTransactionStatus(transaction_id=tx2))
                assert status.ongoing_indicator is True

                # RequestStopTransaction stops only the addressed transaction
                answer = await cp.call(call.RequestStopTransaction(transaction_id=tx1))
                assert answer.status == "Accepted"
                first = await asyncio.wait_for(cars[0], 20)
                assert first.ended == "done", first.ended
                await wait_until(lambda: bool(e1.ended) and b1.transaction is None, timeout=10)
                assert not e2.ended and not cars[1].done()
                assert b2.transaction is not None and b2.transaction["id"] == tx2

                # the CSMS drops; EVSE 2's session ends locally meanwhile (outbox holds it)
                await csms.stop()
                await wait_until(lambda: not b1.client.online.is_set(), timeout=10)
                b2.emit(StopRequested("local stop button"))
                second = await asyncio.wait_for(cars[1], 20)
                assert second.ended == "done", second.ended
                await wait_until(lambda: b2.transaction is None, timeout=10)
                assert len(b2.queue) >= 1
                await csms.start(port)
                await wait_until(lambda: len(b1.queue) == 0, timeout=20)
        finally:
            await csms.stop()

        groups = _by_transaction(csms.transaction_stream())
        assert set(groups) == {tx1, tx2}
        for tx_id, events in groups.items():
            # each transaction: its own seqNo sequence, in order, Started first, Ended last
            assert [e["seqNo"] for e in events] == list(range(len(events))), tx_id
            assert events[0]["eventType"] == "Started"
            assert events[-1]["eventType"] == "Ended"
            assert {e["eventType"] for e in events[1:-1]} <= {"Updated"}
        assert groups[tx1][0]["evse"] == {"id": 1, "connectorId": 1}
        assert groups[tx2][0]["evse"] == {"id": 2, "connectorId": 1}
        end1, end2 = groups[tx1][-1], groups[tx2][-1]
        assert end1["triggerReason"] == "RemoteStop"
        assert end1["transactionInfo"]["stoppedReason"] == "Remote"
        assert end2["triggerReason"] != "RemoteStop"
        assert end2.get("offline") is True  # it waited in the outbox over the drop
        assert all(e["triggerReason"] != "RemoteStop" for e in groups[tx2])

    run(main, timeout=90)


def test_evses_are_numbered_in_config_order(pki_dir: Path, tmp_path: Path) -> None:
    """Three [[evse]] sections: OCPP evseId 1..3 in config order, one client, and the
    CSMS's evse-addressed commands refuse an evseId the station does not have."""

    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        config = parse(_config(pki_dir, tmp_path, csms.url, evses=3), "secc.toml")
        boards = {EVSE_ID[:-1] + str(i): build_board()[0] for i in (1, 2, 3)}
        try:
            async with Station(config, boards=boards) as station:
                bridges = [station.evse(EVSE_ID[:-1] + str(i)).backend for i in (1, 2, 3)]
                assert all(isinstance(b, Bridge) for b in bridges)
                numbers = [b.config.evse_id for b in bridges]  # type: ignore[attr-defined]
                assert numbers == [1, 2, 3]
                client = bridges[0].client  # type: ignore[attr-defined]
                assert all(b.client is client for b in bridges)  # type: ignore[attr-defined]
                assert client.config.connectors == ((1, 1), (2, 1), (3, 1))
                await asyncio.wait_for(client.online.wait(), 10)
                cp = await csms.station(STATION)
                await wait_until(
                    lambda: (
                        {p["evseId"] for a, p in csms.calls if a == "StatusNotification"}
                        == {1, 2, 3}
                    ),
                    timeout=10,
                )
                bad = await cp.call(
                    call.TriggerMessage(requested_message="StatusNotification", evse={"id": 9})
                )
                assert bad.status == "Rejected"
                bad_start = await cp.call(
                    call.RequestStartTransaction(
                        id_token={"idToken": "04AABBCCDD", "type": "ISO14443"},
                        remote_start_id=7,
                        evse_id=9,
                    )
                )
                assert bad_start.status == "Rejected"
                start = await cp.call(
                    call.RequestStartTransaction(
                        id_token={"idToken": "04AABBCCDD", "type": "ISO14443"},
                        remote_start_id=8,
                        evse_id=3,
                    )
                )
                assert start.status == "Accepted"
                token = bridges[2]._token  # type: ignore[attr-defined]
                assert token is not None and token.remote_start_id == 8
                assert bridges[0]._token is None  # type: ignore[attr-defined]
                before = len(csms.calls)
                ok = await cp.call(
                    call.TriggerMessage(
                        requested_message="StatusNotification", evse={"id": 2, "connector_id": 1}
                    )
                )
                assert ok.status == "Accepted"
                await wait_until(
                    lambda: any(a == "StatusNotification" for a, _ in csms.calls[before:]),
                    timeout=10,
                )
                await asyncio.sleep(0.2)
                triggered = [p for a, p in csms.calls[before:] if a == "StatusNotification"]
                assert [p["evseId"] for p in triggered] == [2]
        finally:
            await csms.stop()
        assert csms.boots == ["Accepted"]

    run(main, timeout=60)
