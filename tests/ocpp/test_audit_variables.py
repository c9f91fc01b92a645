"""SetVariables / GetVariables (B05, B06) and GetBaseReport (B07) answers checked against
what the station then holds, written from OCPP 2.0.1 part 2:

* SetVariables: a ReadOnly variable Rejected; a component / variable the station does not
  have UnknownComponent / UnknownVariable (an EVSE or instance on a station-wide
  controller is such a component); a value that is not of the variable's type or outside
  its limits Rejected (and the value in force unchanged); another attribute than Actual
  NotSupportedAttributeType; Accepted only when stored: after a restart the value is
  still in force, and a value that cannot be stored is Rejected;
* GetVariables of each attribute type, WriteOnly Rejected, the EVSE/Connector components;
* the limits the station keeps are those it reports (variableCharacteristics).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from ocpp.v201 import call

from tests.ocpp.conftest import FAST, OpsLink
from tests.ocpp.csms import TestCsms, wait_for
from tests.ocpp.station import STATION, build, running
from tests.ocpp.test_audit_rpc import raw

COMM = "OCPPCommCtrlr"


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 120))  # type: ignore[arg-type]


def item(component: Any, variable: Any, value: str | None = None, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "component": component if isinstance(component, dict) else {"name": component},
        "variable": variable if isinstance(variable, dict) else {"name": variable},
        **kw,
    }
    if value is not None:
        out["attribute_value"] = value
    return out


async def set_one(cp: Any, entry: dict[str, Any]) -> dict[str, Any]:
    answer = await cp.call(call.SetVariables(set_variable_data=[entry]))
    result: dict[str, Any] = answer.set_variable_result[0]
    return result


async def get_one(cp: Any, entry: dict[str, Any]) -> dict[str, Any]:
    answer = await cp.call(call.GetVariables(get_variable_data=[entry]))
    result: dict[str, Any] = answer.get_variable_result[0]
    return result


def test_set_variables_refusals_change_nothing(ops_link: OpsLink) -> None:
    refused = [
        (item("SecurityCtrlr", "Identity", "other-id"), "Rejected"),  # ReadOnly
        (item("SecurityCtrlr", "SecurityProfile", "3"), "Rejected"),  # ReadOnly
        (item("FooCtrlr", "HeartbeatInterval", "60"), "UnknownComponent"),
        (item(COMM, "HeartbeatIntervall", "60"), "UnknownVariable"),
        (item({"name": COMM, "evse": {"id": 1}}, "HeartbeatInterval", "60"), "UnknownComponent"),
        (item({"name": COMM, "instance": "B"}, "HeartbeatInterval", "60"), "UnknownComponent"),
        (item(COMM, {"name": "HeartbeatInterval", "instance": "B"}, "60"), "UnknownVariable"),
        (
            item(COMM, "HeartbeatInterval", "60", attribute_type="Target"),
            "NotSupportedAttributeType",
        ),
        (
            item(COMM, "HeartbeatInterval", "60", attribute_type="MaxSet"),
            "NotSupportedAttributeType",
        ),
        (item(COMM, "HeartbeatInterval", "-5"), "Rejected"),
        (item(COMM, "HeartbeatInterval", "0"), "Rejected"),
        (item(COMM, "HeartbeatInterval", "2147483648"), "Rejected"),
        (item(COMM, "HeartbeatInterval", "1_0"), "Rejected"),
        (item(COMM, "HeartbeatInterval", " 60"), "Rejected"),
        (item(COMM, "HeartbeatInterval", "+60"), "Rejected"),
        (item(COMM, "HeartbeatInterval", "\u0663"), "Rejected"),  # an Arabic-Indic digit
        (item(COMM, "HeartbeatInterval", "6.5"), "Rejected"),
        (item(COMM, "MessageTimeout", "0"), "Rejected"),
        (item("AlignedDataCtrlr", "Interval", "-900"), "Rejected"),
        (item("AlignedDataCtrlr", "Interval", "99999999999999999999"), "Rejected"),
        (item("ISO15118Ctrlr", "CountryName", "DEU"), "Rejected"),
        (item("AuthCtrlr", "Enabled", "yes"), "Rejected"),
        (item("SampledDataCtrlr", "TxUpdatedMeasurands", "Frequency"), "Rejected"),
        (item("SecurityCtrlr", "BasicAuthPassword", "short"), "Rejected"),
        (item({"name": "EVSE", "evse": {"id": 1}}, "AvailabilityState", "Faulted"), "Rejected"),
        (item({"name": "EVSE", "evse": {"id": 9}}, "AvailabilityState", "x"), "UnknownComponent"),
        (item({"name": "EVSE", "evse": {"id": 1}}, "Power", "1"), "UnknownVariable"),
    ]

    async def main() -> None:
        async with ops_link() as link:
            cp, dm = link.cp, link.bridge.dm
            before = {key: dm.value(*key) for key in dm.specs}
            for entry, status in refused:
                result = await set_one(cp, entry)
                assert result["attribute_status"] == status, (entry, result)
                if status == "Rejected":
                    assert result["attribute_status_info"]["reason_code"], result
            assert {key: dm.value(*key) for key in dm.specs} == before
            assert link.station.client.heartbeat_interval == 300
            # the extremes of the range are taken, and the station keeps running
            edge = await set_one(cp, item("AlignedDataCtrlr", "Interval", "2147483647"))
            assert edge["attribute_status"] == "Accepted"
            ok = await set_one(cp, item(COMM, "HeartbeatInterval", "1"))
            assert ok["attribute_status"] == "Accepted"
            count = link.csms.heartbeats
            await wait_for(lambda: link.csms.heartbeats >= count + 2)  # in force
            assert (await get_one(cp, item(COMM, "HeartbeatInterval")))["attribute_value"] == "1"

    run(main())


def test_get_variables_per_attribute_type(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            cp = link.cp
            actual = await get_one(cp, item(COMM, "MessageTimeout", attribute_type="Actual"))
            assert actual["attribute_status"] == "Accepted"
            assert actual["attribute_value"] == "30"
            assert actual["attribute_type"] == "Actual"
            for kind in ("Target", "MinSet", "MaxSet"):
                other = await get_one(cp, item(COMM, "MessageTimeout", attribute_type=kind))
                assert other["attribute_status"] == "NotSupportedAttributeType", other
                assert "attribute_value" not in other
                structure = await get_one(
                    cp, item({"name": "EVSE", "evse": {"id": 1}}, "Available", attribute_type=kind)
                )
                assert structure["attribute_status"] == "NotSupportedAttributeType"
            secret = await get_one(cp, item("SecurityCtrlr", "BasicAuthPassword"))
            assert secret["attribute_status"] == "Rejected"  # WriteOnly
            assert "attribute_value" not in secret
            assert (await get_one(cp, item("FooCtrlr", "X")))["attribute_status"] == (
                "UnknownComponent"
            )
            assert (await get_one(cp, item(COMM, "X")))["attribute_status"] == "UnknownVariable"
            evse = await get_one(cp, item({"name": "EVSE", "evse": {"id": 1}}, "AvailabilityState"))
            assert evse["attribute_value"] == "Available"
            connector = await get_one(
                cp,
                item({"name": "Connector", "evse": {"id": 1, "connector_id": 1}}, "ConnectorType"),
            )
            assert connector["attribute_status"] == "Accepted"
            missing = await get_one(
                cp, item({"name": "Connector", "evse": {"id": 1, "connector_id": 2}}, "Available")
            )
            assert missing["attribute_status"] == "UnknownComponent"

    run(main())


def test_reported_limits_are_the_enforced_ones(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            cp, csms = link.cp, link.csms
            answer = await cp.call(call.GetBaseReport(request_id=7, report_base="FullInventory"))
            assert answer.status == "Accepted"
            await wait_for(lambda: bool(csms.reports))
            data = {
                (d["component"]["name"], d["variable"]["name"]): d
                for d in csms.reports[0]["report_data"]
            }
            chars = data[(COMM, "HeartbeatInterval")]["variable_characteristics"]
            assert (chars["min_limit"], chars["max_limit"]) == (1, 2147483647)
            for value, status in (
                (str(int(chars["min_limit"]) - 1), "Rejected"),
                (str(int(chars["min_limit"])), "Accepted"),
                (str(int(chars["max_limit"]) + 1), "Rejected"),
            ):
                result = await set_one(cp, item(COMM, "HeartbeatInterval", value))
                assert result["attribute_status"] == status, value
            measurands = data[("SampledDataCtrlr", "TxUpdatedMeasurands")]
            allowed = measurands["variable_characteristics"]["values_list"].split(",")
            result = await set_one(
                cp, item("SampledDataCtrlr", "TxUpdatedMeasurands", ",".join(allowed))
            )
            assert result["attribute_status"] == "Accepted"

    run(main())


def test_accepted_values_survive_a_restart_and_unstorable_ones_are_rejected(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        try:
            station = build(tmp_path, csms.url, config=FAST)
            async with running(station):
                cp = await csms.station(STATION)
                for component, variable, value in (
                    (COMM, "HeartbeatInterval", "120"),
                    ("AlignedDataCtrlr", "Interval", "900"),
                    ("SampledDataCtrlr", "TxUpdatedInterval", "30"),
                    ("AuthCacheCtrlr", "Enabled", "false"),
                ):
                    result = await set_one(cp, item(component, variable, value))
                    assert result["attribute_status"] == "Accepted"
                # storage gone: a set cannot survive a restart, so it is not Accepted
                good_path = station.bridge.dm.path
                assert good_path is not None
                blocked = tmp_path / "blocked"
                (blocked / "device_model.json").mkdir(parents=True)
                station.bridge.dm.path = blocked / "device_model.json"
                refused = await set_one(cp, item(COMM, "HeartbeatInterval", "240"))
                assert refused["attribute_status"] == "Rejected"
                assert refused["attribute_status_info"]["reason_code"] == "WriteFailed"
                assert station.client.heartbeat_interval == 120
                current = await get_one(cp, item(COMM, "HeartbeatInterval"))
                assert current["attribute_value"] == "120"
                station.bridge.dm.path = good_path
            again = build(tmp_path, csms.url, config=FAST)
            async with running(again):
                cp = await csms.station(STATION)
                for component, variable, value in (
                    ("AlignedDataCtrlr", "Interval", "900"),
                    ("SampledDataCtrlr", "TxUpdatedInterval", "30"),
                    ("AuthCacheCtrlr", "Enabled", "false"),
                ):
                    result = await get_one(cp, item(component, variable))
                    assert result["attribute_value"] == value, (variable, result)
                # the boot answer's interval (B01) is the one in force after a boot
                hb = await get_one(cp, item(COMM, "HeartbeatInterval"))
                assert hb["attribute_value"] == str(again.client.heartbeat_interval)
        finally:
            await csms.stop()

    run(main())


def test_base_reports_hold_what_their_base_names(ops_link: OpsLink) -> None:
    """B07: FullInventory every variable; ConfigurationInventory the ones the operator
    can set (ReadWrite / WriteOnly, no value for WriteOnly); SummaryInventory the
    charging availability (EVSE / Connector AvailabilityState and Available)."""

    async def main() -> None:
        async with ops_link() as link:
            cp, csms = link.cp, link.csms
            for n, base in enumerate(
                ("FullInventory", "ConfigurationInventory", "SummaryInventory")
            ):
                answer = await cp.call(call.GetBaseReport(request_id=n, report_base=base))
                assert answer.status == "Accepted"
            await wait_for(lambda: len(csms.reports) == 3)
            by_id = {r["request_id"]: r["report_data"] for r in csms.reports}
            full, config, summary = by_id[0], by_id[1], by_id[2]

            def key(d: dict[str, Any]) -> tuple[str, str, Any]:
                return (
                    d["component"]["name"],
                    d["variable"]["name"],
                    str(d["component"].get("evse")),
                )

            mutability = {key(d): d["variable_attribute"][0]["mutability"] for d in full}
            assert {key(d) for d in config} == {
                k for k, m in mutability.items() if m in ("ReadWrite", "WriteOnly")
            }
            assert (COMM, "HeartbeatInterval", "None") in {key(d) for d in config}
            assert ("SecurityCtrlr", "Identity", "None") not in {key(d) for d in config}
            password = next(d for d in config if d["variable"]["name"] == "BasicAuthPassword")
            assert "value" not in password["variable_attribute"][0]
            assert summary and {d["component"]["name"] for d in summary} == {"EVSE", "Connector"}
            assert {d["variable"]["name"] for d in summary} == {"AvailabilityState", "Available"}
            states = {
                d["variable_attribute"][0]["value"]
                for d in summary
                if d["variable"]["name"] == "AvailabilityState"
            }
            assert states == {"Available"}

    run(main())


def test_per_message_limits_reported_and_kept(ops_link: OpsLink) -> None:
    """B06.FR.16/17 (B05, B08 alike): the station reports DeviceDataCtrlr ItemsPerMessage
    and BytesPerMessage per action (variable instance); a CALL with more entries is a
    CALLERROR OccurrenceConstraintViolation, one with more octets FormatViolation, and
    nothing of it is done."""

    async def main() -> None:
        async with ops_link() as link:
            cp, dm = link.cp, link.bridge.dm
            limits = {}
            for name in ("ItemsPerMessage", "BytesPerMessage"):
                for action in ("GetVariables", "SetVariables", "GetReport"):
                    got = await get_one(
                        cp, item("DeviceDataCtrlr", {"name": name, "instance": action})
                    )
                    assert got["attribute_status"] == "Accepted", (name, action)
                    limits[(name, action)] = int(got["attribute_value"])
            bare = await get_one(cp, item("DeviceDataCtrlr", "ItemsPerMessage"))
            assert bare["attribute_status"] == "UnknownVariable"  # it has instances only

            items = limits[("ItemsPerMessage", "GetVariables")]
            entry = {"component": {"name": COMM}, "variable": {"name": "MessageTimeout"}}
            ok = await raw(
                cp,
                json.dumps([2, "g-ok", "GetVariables", {"getVariableData": [entry] * items}]),
                "g-ok",
            )
            assert ok[0] == 3 and len(ok[2]["getVariableResult"]) == items
            over = await raw(
                cp,
                json.dumps(
                    [2, "g-over", "GetVariables", {"getVariableData": [entry] * (items + 1)}]
                ),
                "g-over",
            )
            assert over[:3] == [4, "g-over", "OccurrenceConstraintViolation"]

            octets = limits[("BytesPerMessage", "SetVariables")]
            count = min(limits[("ItemsPerMessage", "SetVariables")], octets // 900 + 1)
            big = {
                "setVariableData": [
                    {
                        "attributeValue": "7" * 1000,
                        "component": {"name": "ISO15118Ctrlr"},
                        "variable": {"name": "OrganizationName"},
                    }
                ]
                * count
            }
            frame = json.dumps([2, "s-big", "SetVariables", big])
            assert len(frame) > octets
            over = await raw(cp, frame, "s-big")
            assert over[:3] == [4, "s-big", "FormatViolation"]
            assert dm.value("ISO15118Ctrlr", "OrganizationName") == ""

            wanted = [{"component": {"name": COMM}}] * (
                limits[("ItemsPerMessage", "GetReport")] + 1
            )
            over = await raw(
                cp,
                json.dumps(
                    [2, "r-over", "GetReport", {"requestId": 3, "componentVariable": wanted}]
                ),
                "r-over",
            )
            assert over[:3] == [4, "r-over", "OccurrenceConstraintViolation"]
            assert not link.csms.reports

    run(main())


def test_results_follow_the_order_of_the_request(ops_link: OpsLink) -> None:
    """B05/B06: one result per entry; a CSMS may pair them by position, so EVSE /
    Connector entries between controller ones keep their place."""

    async def main() -> None:
        async with ops_link() as link:
            cp = link.cp
            evse = {"name": "EVSE", "evse": {"id": 1}}
            asked = [
                item(COMM, "MessageTimeout"),
                item(evse, "AvailabilityState"),
                item("AuthCtrlr", "Enabled"),
                item(evse, "Power"),
                item("FooCtrlr", "X"),
            ]
            answer = await cp.call(call.GetVariables(get_variable_data=asked))
            got = answer.get_variable_result
            assert [(r["component"]["name"], r["variable"]["name"]) for r in got] == [
                (a["component"]["name"], a["variable"]["name"]) for a in asked
            ]
            assert [r["attribute_status"] for r in got] == [
                "Accepted",
                "Accepted",
                "Accepted",
                "UnknownVariable",
                "UnknownComponent",
            ]
            setting = [
                item(evse, "AvailabilityState", "Faulted"),
                item(COMM, "MessageTimeout", "25"),
            ]
            answer = await cp.call(call.SetVariables(set_variable_data=setting))
            assert [r["attribute_status"] for r in answer.set_variable_result] == [
                "Rejected",
                "Accepted",
            ]
            assert link.bridge.dm.value(COMM, "MessageTimeout") == "25"

    run(main())
