"""What the station answers to CSMS messages it cannot take, written from OCPP-J 2.0.1
(part 4 §4.2.3 CALLERROR, §4.3 "RPC Framework Error Codes"):

* an action OCPP 2.0.1 has but the station does not handle: NotSupported ("recognized but
  not supported"); a name OCPP does not have: NotImplemented ("not known by receiver");
* a payload against the action's JSON schema: a field of the wrong type
  TypeConstraintViolation, a required field missing OccurrenceConstraintViolation, a value
  outside its enumeration PropertyConstraintViolation, a field the action does not have
  or a payload that is no object FormatViolation — and nothing of the request is done;
* a frame that is no OCPP-J message: RpcFrameworkError, with MessageId "-1" when the id
  cannot be read; an unknown message type: MessageTypeNotSupported;
* none of this closes the link, and what the station had queued reaches the CSMS; a
  message above the websocket limit (1 MiB) closes the link (it cannot be read), the
  station reconnects and loses nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any

from ocpp.v201 import call

from secc.ocpp_bridge import security_events as sec
from tests.ocpp.conftest import OpsLink
from tests.ocpp.csms import CsmsStation, wait_for

# every CSMS-initiated action of OCPP 2.0.1 the station does not handle (README table:
# reservations, monitoring, tariffs, local controller)
NOT_SUPPORTED = {
    "CancelReservation": {"reservationId": 1},
    "ClearVariableMonitoring": {"id": [1]},
    "CostUpdated": {"totalCost": 1.5, "transactionId": "tx-1"},
    "GetMonitoringReport": {"requestId": 1},
    "PublishFirmware": {"location": "http://x/fw", "checksum": "0" * 32, "requestId": 1},
    "ReserveNow": {
        "id": 1,
        "expiryDateTime": "2030-01-01T00:00:00Z",
        "idToken": {"idToken": "A", "type": "Central"},
    },
    "SetMonitoringBase": {"monitoringBase": "All"},
    "SetMonitoringLevel": {"severity": 5},
    "SetVariableMonitoring": {
        "setMonitoringData": [
            {
                "value": 1,
                "type": "Delta",
                "severity": 5,
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "HeartbeatInterval"},
            }
        ]
    },
    "UnpublishFirmware": {"checksum": "0" * 32},
    # station-to-CSMS actions a CSMS has no business sending
    "BootNotification": {"reason": "PowerUp", "chargingStation": {"model": "m", "vendorName": "v"}},
    "Heartbeat": {},
}


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 120))  # type: ignore[arg-type]


async def raw(cp: CsmsStation, frame: str, answer_id: str) -> list[Any]:
    """Send one raw frame as the CSMS and return the station's answer to ``answer_id``."""
    async with cp._call_lock:
        await cp._send(frame)
        response = await cp._get_specific_response(answer_id, 10)
    return [response.message_type_id, response.unique_id, *_rest(response)]


def _rest(response: Any) -> list[Any]:
    if response.message_type_id == 4:
        return [response.error_code, response.error_description, response.error_details]
    return [response.payload]


def test_unknown_and_unsupported_actions(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            cp = link.cp
            for n, (action, payload) in enumerate(NOT_SUPPORTED.items()):
                uid = f"ns-{n}"
                answer = await raw(cp, json.dumps([2, uid, action, payload]), uid)
                assert answer[:3] == [4, uid, "NotSupported"], (action, answer)
                assert isinstance(answer[4], dict) and len(answer[3]) <= 255
            answer = await raw(cp, json.dumps([2, "ni-1", "BrewCoffee", {}]), "ni-1")
            assert answer[:3] == [4, "ni-1", "NotImplemented"]
            # the link carried on: same connection, a supported call answered
            ok = await cp.call(call.GetLocalListVersion())
            assert ok.version_number == 0
            assert link.station.client.connects == 1

    run(main())


def test_schema_errors_get_their_code_and_change_nothing(ops_link: OpsLink) -> None:
    cases = [
        ("Reset", {"type": 5}, "TypeConstraintViolation"),
        ("Reset", {"type": "Sometimes"}, "PropertyConstraintViolation"),
        ("Reset", {}, "OccurrenceConstraintViolation"),
        ("Reset", {"type": "Immediate", "when": "now"}, "FormatViolation"),
        ("Reset", ["Immediate"], "FormatViolation"),
        ("GetVariables", {"getVariableData": []}, "OccurrenceConstraintViolation"),
        (
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "attributeValue": "x" * 1001,  # string[1000]
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                    }
                ]
            },
            "TypeConstraintViolation",
        ),
        (
            "RequestStartTransaction",
            {"idToken": {"idToken": "A", "type": "Central"}},
            "OccurrenceConstraintViolation",
        ),
    ]

    async def main() -> None:
        async with ops_link() as link:
            cp, bridge = link.cp, link.bridge
            for n, (action, payload, code) in enumerate(cases):
                uid = f"bad-{n}"
                answer = await raw(cp, json.dumps([2, uid, action, payload]), uid)
                assert answer[:3] == [4, uid, code], (action, payload, answer)
                assert 0 < len(answer[3]) <= 255
            # nothing of it was done: no reset pending, the EVSE operative, the
            # variable unchanged, no token held for a remote start
            assert bridge.ops.reset_pending is None
            assert bridge.ops.operative(1)
            assert bridge.dm.value("OCPPCommCtrlr", "HeartbeatInterval") == "300"
            assert bridge._token is None
            assert link.station.client.connects == 1

    run(main())


def test_broken_frames_answered_and_queued_messages_kept(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            cp, csms, bridge = link.cp, link.csms, link.bridge
            # something queued while the CSMS sends garbage
            await bridge.security.record(sec.TAMPER, "lid opened during the audit")
            answer = await raw(cp, '[2, "abc", "Reset", {"type": ', "-1")
            assert answer[:3] == [4, "-1", "RpcFrameworkError"]
            answer = await raw(cp, '{"not": "an array"}', "-1")
            assert answer[:3] == [4, "-1", "RpcFrameworkError"]
            answer = await raw(cp, '[2, 17, "Reset", {"type": "Immediate"}]', "-1")
            assert answer[:3] == [4, "-1", "RpcFrameworkError"]
            assert bridge.ops.reset_pending is None  # the CALL was not taken
            answer = await raw(cp, '[2, "short-1", "Reset"]', "short-1")
            assert answer[:3] == [4, "short-1", "RpcFrameworkError"]
            answer = await raw(cp, '[9, "type-9", "Reset", {}]', "type-9")
            assert answer[:3] == [4, "type-9", "MessageTypeNotSupported"]
            await wait_for(lambda: any(e["type"] == sec.TAMPER for e in csms.raised_events()))
            ok = await cp.call(call.GetLocalListVersion())
            assert ok.version_number == 0
            assert link.station.client.connects == 1
            assert bridge.ops.reset_pending is None

    run(main())


def test_large_and_oversize_messages(ops_link: OpsLink) -> None:
    """A CALL of 900 kB is read and answered; one above the websocket limit closes the
    link (1009), the station connects again and delivers what it queued meanwhile."""

    async def main() -> None:
        async with ops_link() as link:
            cp, csms, bridge = link.cp, link.csms, link.bridge
            big = await cp.call(call.DataTransfer(vendor_id="org.example", data="x" * 900_000))
            assert big.status == "UnknownVendorId"  # no vendor hook in this station
            assert link.station.client.connects == 1
            uid = "huge-1"
            frame = json.dumps([2, uid, "DataTransfer", {"vendorId": "v", "data": "y" * 1_100_000}])
            await cp._send(frame)
            await bridge.security.record(sec.TAMPER, "queued around the oversize message")
            await wait_for(lambda: link.station.client.connects == 2 and csms.connected.is_set())
            await wait_for(lambda: any(e["type"] == sec.TAMPER for e in csms.raised_events()))
            assert csms.boots[-1] == "Accepted"
            again = await (await csms.station("CS-SECC-0001")).call(call.GetLocalListVersion())
            assert again.version_number == 0

    run(main())


def test_times_that_are_no_date_time(ops_link: OpsLink) -> None:
    """OCPP's dateTime is RFC 3339 (the schemas' ``format: date-time``): a CSMS's
    "tomorrow" or 30 February is PropertyConstraintViolation, and nothing is installed,
    scheduled or uploaded for it."""
    schedule = {
        "id": 1,
        "chargingRateUnit": "W",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000.0}],
    }

    def profile(valid_from: str) -> dict[str, Any]:
        return {
            "evseId": 0,
            "chargingProfile": {
                "id": 7,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Absolute",
                "validFrom": valid_from,
                "chargingSchedule": [{**schedule, "startSchedule": "2026-01-01T00:00:00Z"}],
            },
        }

    cases = [
        ("SetChargingProfile", profile("tomorrow")),
        ("SetChargingProfile", profile("2026-02-30T00:00:00Z")),
        (
            "UpdateFirmware",
            {
                "requestId": 3,
                "firmware": {"location": "http://127.0.0.1:9/fw.bin", "retrieveDateTime": "soon"},
            },
        ),
        (
            "GetLog",
            {
                "requestId": 4,
                "logType": "SecurityLog",
                "log": {"remoteLocation": "http://127.0.0.1:9/", "oldestTimestamp": "yesterday"},
            },
        ),
    ]

    async def main() -> None:
        async with ops_link() as link:
            cp, bridge = link.cp, link.bridge
            for n, (action, payload) in enumerate(cases):
                uid = f"time-{n}"
                answer = await raw(cp, json.dumps([2, uid, action, payload]), uid)
                assert answer[:3] == [4, uid, "PropertyConstraintViolation"], (action, answer)
            assert bridge.smart.book.entries == []
            assert bridge.queue.get_state("firmware_job") is None
            assert bridge.queue.get_state("log_job") is None
            ok = await raw(
                cp,
                json.dumps([2, "time-ok", *cases[0][:1], profile("2026-01-01T00:00:00.5+01:00")]),
                "time-ok",
            )
            assert ok[0] == 3 and ok[2]["status"] == "Accepted"

    run(main())
