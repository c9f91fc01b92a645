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
from typing import Any

from ocpp.v201 import call

from secc.core.actions import SessionStarted
from tests.ocpp.conftest import OpsLink
from tests.ocpp.csms import TestCsms, wait_for

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
