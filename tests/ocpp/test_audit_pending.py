"""While the CSMS holds the station Pending (B02), written from OCPP 2.0.1 part 2:

* the CSMS may configure the station: GetBaseReport is Accepted and its NotifyReport is
  sent while still Pending (B02.FR.02: messages the CSMS asked for may be sent), and so
  is a SetVariables;
* TriggerMessage BootNotification is Accepted while Pending and the BootNotification
  follows at once with reason Triggered (F06); once Accepted, it is Rejected (F06.FR.17).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path

from ocpp.v201 import call

from tests.ocpp.conftest import FAST
from tests.ocpp.csms import Behaviour, TestCsms, wait_for
from tests.ocpp.station import STATION, build, running


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))  # type: ignore[arg-type]


def test_requests_answered_while_pending(tmp_path: Path) -> None:
    async def main() -> None:
        # Pending with a retry interval far beyond the test: only the trigger boots it
        csms = TestCsms(behaviour=Behaviour(boot_statuses=["Pending"], boot_interval=3600))
        await csms.start()
        try:
            station = build(tmp_path, csms.url, config=FAST)
            async with running(station, online=False):
                cp = await csms.station(STATION)
                await wait_for(lambda: csms.boots == ["Pending"])
                report = await cp.call(
                    call.GetBaseReport(request_id=5, report_base="ConfigurationInventory")
                )
                assert report.status == "Accepted"
                await wait_for(lambda: len(csms.reports) == 1)
                assert csms.reports[0]["request_id"] == 5
                assert not station.client.online.is_set()  # still Pending
                answer = await cp.call(
                    call.SetVariables(
                        set_variable_data=[
                            {
                                "attribute_value": "false",
                                "component": {"name": "AuthCacheCtrlr"},
                                "variable": {"name": "Enabled"},
                            }
                        ]
                    )
                )
                assert answer.set_variable_result[0]["attribute_status"] == "Accepted"
                boot = await cp.call(call.TriggerMessage(requested_message="BootNotification"))
                assert boot.status == "Accepted"
                await wait_for(lambda: csms.boots == ["Pending", "Accepted"])
                reasons = [p["reason"] for a, p in csms.calls if a == "BootNotification"]
                assert reasons == ["PowerUp", "Triggered"]
                await asyncio.wait_for(station.client.online.wait(), 10)
                again = await cp.call(call.TriggerMessage(requested_message="BootNotification"))
                assert again.status == "Rejected"  # F06.FR.17
                assert station.bridge.dm.value("AuthCacheCtrlr", "Enabled") == "false"
        finally:
            await csms.stop()

    run(main())
