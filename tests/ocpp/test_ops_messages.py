"""The remaining messages a CSMS sends, against the test CSMS (OCPP 2.0.1):

* TriggerMessage (F06) for every MessageTriggerEnumType value: each Accepted one is
  followed by its message (schema-checked by the CSMS), the others get a clear status;
* UnlockConnector (F05) through the HAL's connector lock (the simulated board's), a
  jammed lock, an authorized transaction, an unknown connector;
* DataTransfer (P01 with the vendor hook, P02 from the station);
* clock-aligned meter values (J01): MeterValues outside a transaction, a TransactionEvent
  MeterValueClock inside one;
* Set/Get/ClearDisplayMessage(s) on a station without a display (O01-O06).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable

from ocpp.v201 import call

from hal.backends.simulated import build_board
from hal.hooks import EchoDataTransfer, HalConnectorLock, StationHooks
from secc.core.actions import RequestAuthorization, SessionStarted
from secc.core.events import AuthorizationResult, EvseStatus
from secc.ocpp_bridge.operations import Operations
from tests.ocpp.conftest import OpsLink
from tests.ocpp.csms import wait_for

PLUG = SessionStarted(b"\x01" * 8, b"\x02" * 6, "urn:iso:15118:2:2013:MsgDef")
METER = EvseStatus(400.0, 16.0, "Valid", True, 1234.0, 6400.0)
# MessageTriggerEnumType of OCPP 2.0.1 and what this station answers with no transaction
TRIGGERS = {
    "BootNotification": "Rejected",  # F06.FR.17: already accepted
    "LogStatusNotification": "Accepted",
    "FirmwareStatusNotification": "Accepted",
    "Heartbeat": "Accepted",
    "MeterValues": "Accepted",
    "SignChargingStationCertificate": "Rejected",  # no certificate store in this station
    "SignV2GCertificate": "Rejected",
    "StatusNotification": "Rejected",  # F06.FR.12: without evse.id and connectorId
    "TransactionEvent": "Rejected",  # no transaction
    "SignCombinedCertificate": "Rejected",
    "PublishFirmwareStatusNotification": "NotImplemented",  # not a local controller
}


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))  # type: ignore[arg-type]


def test_trigger_message_for_every_triggerable_message(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            csms, cp = link.csms, link.cp
            link.bridge.evse_status(METER)
            for message, expected in TRIGGERS.items():
                answer = await cp.call(call.TriggerMessage(requested_message=message))
                assert answer.status == expected, (message, answer)
                if message in {"BootNotification", "SignCombinedCertificate"}:
                    assert answer.status_info["reason_code"]
            await wait_for(
                lambda: csms.meter_values and csms.log_statuses and csms.firmware_statuses
            )
            unknown = await cp.call(
                call.TriggerMessage(requested_message="MeterValues", evse={"id": 9})
            )
            assert unknown.status == "Rejected"
        assert csms.log_statuses == [{"status": "Idle"}]
        assert csms.firmware_statuses == [{"status": "Idle"}]
        evse_id, values = csms.meter_values[0]
        assert evse_id == 1
        sampled = values[0]["sampled_value"]
        assert {s["context"] for s in sampled} == {"Trigger"}
        assert [s["value"] for s in sampled if s.get("measurand", "")] == [1234.0]
        actions = [a for a, _ in csms.calls]
        assert actions.count("Heartbeat") >= 1 and actions.count("StatusNotification") == 1

    run(main())


def test_unlock_connector_through_the_hal_lock(ops_link: OpsLink) -> None:
    async def main() -> None:
        board, plant = build_board()
        assert board.lock is not None
        await board.lock.lock()
        lock_hook = HalConnectorLock({(1, 1): board.lock}, timeout=0.5)
        async with ops_link(hooks=StationHooks(connector_lock=lock_hook)) as link:
            station, bridge, cp = link.station, link.bridge, link.cp
            unknown = await cp.call(call.UnlockConnector(evse_id=1, connector_id=2))
            assert unknown.status == "UnknownConnector"
            answer = await cp.call(call.UnlockConnector(evse_id=1, connector_id=1))
            assert answer.status == "Unlocked"
            assert plant.lock_command is False
            await board.lock.lock()
            plant.lock_jammed = True  # the lock does not report unlocked
            jammed = await cp.call(call.UnlockConnector(evse_id=1, connector_id=1))
            assert jammed.status == "UnlockFailed"
            plant.lock_jammed = False
            await board.lock.lock()  # the EV plugs in: the station locks the cable
            bridge.perform(PLUG)
            bridge.perform(RequestAuthorization("ExternalPayment", ""))
            bridge.present_token("04A1B2C3", "ISO14443")
            assert (await station.next_event(AuthorizationResult)).accepted
            await wait_for(lambda: bridge._authorized)
            busy = await cp.call(call.UnlockConnector(evse_id=1, connector_id=1))
            assert busy.status == "OngoingAuthorizedTransaction"
            assert plant.lock_command is True  # the cable stays locked

    run(main())


def test_unlock_without_a_lock_hook_fails_clearly(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            answer = await link.cp.call(call.UnlockConnector(evse_id=1, connector_id=1))
            assert answer.status == "UnlockFailed"
            assert answer.status_info["reason_code"] == "NoConnectorLock"

    run(main())


def test_data_transfer_both_ways(ops_link: OpsLink) -> None:
    async def main() -> None:
        vendor = EchoDataTransfer()
        async with ops_link(hooks=StationHooks(data_transfer=vendor)) as link:
            csms, station, cp = link.csms, link.station, link.cp
            echo = await cp.call(
                call.DataTransfer(
                    vendor_id="org.secc.simulated", message_id="Echo", data={"n": [1, 2]}
                )
            )
            assert echo.status == "Accepted" and echo.data == {"n": [1, 2]}
            other = await cp.call(
                call.DataTransfer(vendor_id="org.secc.simulated", message_id="Nope")
            )
            assert other.status == "UnknownMessageId"
            foreign = await cp.call(call.DataTransfer(vendor_id="com.other", data="x"))
            assert foreign.status == "UnknownVendorId"
            # P02: the station's own DataTransfer; this CSMS knows no vendor
            answer = await station.bridge.ops.data_transfer("org.secc.simulated", "Hello", 5)
            assert answer["status"] == "UnknownVendorId"
        assert vendor.received == [("Echo", {"n": [1, 2]}), ("Nope", None)]
        assert (
            "DataTransfer",
            {"vendorId": "org.secc.simulated", "messageId": "Hello", "data": 5},
        ) in csms.calls

    run(main())


def test_clock_aligned_meter_values_inside_and_outside_a_transaction(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            csms, bridge, cp = link.csms, link.bridge, link.cp
            bridge.evse_status(METER)
            answer = await cp.call(
                call.SetVariables(
                    set_variable_data=[
                        {
                            "component": {"name": "AlignedDataCtrlr"},
                            "variable": {"name": "Interval"},
                            "attribute_value": "1",
                        }
                    ]
                )
            )
            assert answer.set_variable_result[0]["attribute_status"] == "Accepted"
            await wait_for(lambda: len(csms.meter_values) >= 2)
            bridge.perform(PLUG)
            await wait_for(
                lambda: any(p["triggerReason"] == "MeterValueClock" for _, p in csms.tx_raw)
            )
        for evse_id, values in csms.meter_values:
            assert evse_id == 1
            stamp = dt.datetime.fromisoformat(values[0]["timestamp"])
            assert stamp.microsecond == 0  # aligned to whole seconds of the clock
            assert [s["context"] for s in values[0]["sampled_value"]] == ["Sample.Clock"]
            assert [s.get("measurand") for s in values[0]["sampled_value"]] == [
                "Energy.Active.Import.Register"
            ]
        clock = next(p for _, p in csms.tx_raw if p["triggerReason"] == "MeterValueClock")
        assert clock["meterValue"][0]["sampledValue"][0]["context"] == "Sample.Clock"

    run(main())


def test_next_aligned_instant() -> None:
    at = dt.datetime(2026, 5, 1, 10, 7, 30, 500, tzinfo=dt.UTC)
    assert Operations.next_aligned(at, 900) == at.replace(minute=15, second=0, microsecond=0)
    end = dt.datetime(2026, 5, 1, 23, 59, 59, tzinfo=dt.UTC)
    assert Operations.next_aligned(end, 3600) == dt.datetime(2026, 5, 2, tzinfo=dt.UTC)


def test_display_messages_without_a_display(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            cp = link.cp
            message = {
                "id": 1,
                "priority": "NormalCycle",
                "message": {"format": "UTF8", "content": "Welcome"},
            }
            answer = await cp.call(call.SetDisplayMessage(message=message))
            assert answer.status == "Rejected" and answer.status_info["reason_code"]
            got = await cp.call(call.GetDisplayMessages(request_id=4))
            assert got.status == "Unknown"
            cleared = await cp.call(call.ClearDisplayMessage(id=1))
            assert cleared.status == "Unknown"

    run(main())
