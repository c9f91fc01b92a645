"""SetNetworkProfile (B09) and NetworkConfigurationPriority (B10, A05) answers checked
against what the station stores, written from OCPP 2.0.1 part 2 (with the 2025 errata):

* B09.FR.05: a configurationSlot that is not in NetworkConfigurationPriority's valuesList
  (the slots the station reports): Rejected, reasonCode InvalidConfSlot, nothing stored;
* B09.FR.02: invalid content: Rejected, reasonCode InvalidNetworkConf, nothing stored;
* NetworkConfigurationPriority naming a slot that holds no profile, a slot twice or a
  slot the station does not have: Rejected (the station would connect through nothing),
  the value in force unchanged; naming a stored profile's slot: Accepted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from ocpp.v201 import call

from tests.ocpp.conftest import OpsLink
from tests.ocpp.csms import wait_for
from tests.ocpp.test_ops_network_profile import _set, profile


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))  # type: ignore[arg-type]


def test_slots_and_priority(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            cp, csms, ops, dm = link.cp, link.csms, link.bridge.ops, link.bridge.dm
            answer = await cp.call(call.GetBaseReport(request_id=1, report_base="FullInventory"))
            assert answer.status == "Accepted"
            await wait_for(lambda: bool(csms.reports))
            priority = next(
                d
                for d in csms.reports[0]["report_data"]
                if d["variable"]["name"] == "NetworkConfigurationPriority"
            )
            slots = priority["variable_characteristics"]["values_list"].split(",")
            outside = max(int(s) for s in slots) + 1
            for slot in (outside, -1):
                refused = await cp.call(
                    call.SetNetworkProfile(
                        configuration_slot=slot, connection_data=profile(csms.url, 1)
                    )
                )
                assert refused.status == "Rejected"
                assert refused.status_info["reason_code"] == "InvalidConfSlot"
            invalid = await cp.call(
                call.SetNetworkProfile(
                    configuration_slot=int(slots[1]),
                    connection_data=profile("http://127.0.0.1:1/ocpp", 1),
                )
            )
            assert invalid.status == "Rejected"
            assert invalid.status_info["reason_code"] == "InvalidNetworkConf"
            assert ops._profiles() == {}

            async def set_priority(value: str) -> Any:
                result = await cp.call(
                    call.SetVariables(
                        set_variable_data=[_set("NetworkConfigurationPriority", value)]
                    )
                )
                return result.set_variable_result[0]

            for value in (slots[1], str(outside), f"{slots[1]},{slots[1]}", "x"):
                result = await set_priority(value)
                assert result["attribute_status"] == "Rejected", value
                assert result["attribute_status_info"]["additional_info"]
                assert dm.value("OCPPCommCtrlr", "NetworkConfigurationPriority") == ""
            ok = await cp.call(
                call.SetNetworkProfile(
                    configuration_slot=int(slots[1]), connection_data=profile(csms.url, 1)
                )
            )
            assert ok.status == "Accepted"
            assert set(ops._profiles()) == {slots[1]}
            result = await set_priority(slots[1])
            assert result["attribute_status"] == "RebootRequired"  # the link is chosen at start
            assert dm.value("OCPPCommCtrlr", "NetworkConfigurationPriority") == slots[1]

    run(main())
