"""A CSMS profile's ISO 15118 alternatives and SalesTariffs, and RequestStartTransaction's
chargingProfile (K05), against the test CSMS.

From OCPP 2.0.1 (ChargingProfileType: 1 to 3 chargingSchedules, "ISO 15118 may use up to
three"; ChargingScheduleType.salesTariff; K05 / F01 / F02) and ISO 15118-2 (SAScheduleList
with up to 3 SAScheduleTuples, SAScheduleTupleID and SalesTariffID as SAIDType 1..255,
ePriceLevel / NumEPriceLevels unsignedByte, Cost amount unsignedInt, amountMultiplier
-3..3, RelativeTimeInterval start / duration (at most 86400 s)):

* Each chargingSchedule of the profile in force is one SAScheduleTuple with
  SAScheduleTupleID = chargingSchedule.id, its PMaxSchedule from that schedule and its
  SalesTariff from that schedule's salesTariff (IDs, description, price levels, entries,
  consumption costs); the EV's choice of a tuple is accepted and bounds the delivery.
* A profile whose tariff or schedule ids ISO 15118-2 cannot carry is Rejected with the
  reason; nothing is stored; the station serves on.
* RequestStartTransaction with a TxProfile: Accepted; the profile applies to the
  transaction it starts (reported with that transactionId, offered to the EV); any other
  purpose, a transactionId of another transaction, or a profile K01 refuses: Rejected
  with InvalidProfile, no token kept.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ocpp.v201 import call

from secc import codec
from secc.config import EvseSection, HalSection, StationConfig, StationSection
from secc.core.config import Timers
from secc.ev.iso2 import EvSimulator
from secc.ev.iso20 import Ev20Simulator
from secc.ocpp_bridge.bridge import Bridge, BridgeConfig
from secc.trace import read_trace
from tests.ocpp.conftest import OpsLink
from tests.ocpp.csms import TestCsms, wait_for
from tests.ocpp.smart_rig import SmartLinkFactory, smart_script
from tests.ocpp.test_smart_profiles import profile, set_profile

EVSE_ID = "DE*ABC*E1234567*1"
FAST = BridgeConfig(link_retry=0.05, meter_interval=3600)


def tariff(tid: int, entries: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"id": tid, "sales_tariff_entry": entries, **extra}


def entry(start: int, level: int | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"relative_time_interval": {"start": start}, **extra}
    if level is not None:
        out["e_price_level"] = level
    return out


def alternatives(pid: int, purpose: str = "TxDefaultProfile", **extra: Any) -> dict[str, Any]:
    """Two chargingSchedules (ids 7 and 9): 11 kW then 7 kW after an hour with a two-level
    tariff, and a flat 5 kW with a one-entry tariff carrying consumption costs."""
    p = profile(pid, purpose, 0, [(0, 11000.0), (3600, 7000.0)], kind="Relative", **extra)
    first = p["charging_schedule"][0]
    first["id"] = 7
    first["sales_tariff"] = tariff(
        12,
        [entry(0, 1, relative_time_interval={"start": 0, "duration": 3600}), entry(3600, 2)],
        sales_tariff_description="peak then off",
        num_e_price_levels=2,
    )
    second = {
        "id": 9,
        "charging_rate_unit": "W",
        "charging_schedule_period": [{"start_period": 0, "limit": 5000.0}],
        "sales_tariff": tariff(
            13,
            [
                entry(
                    0,
                    consumption_cost=[
                        {
                            "start_value": 0,
                            "cost": [
                                {"cost_kind": "RelativePricePercentage", "amount": 80},
                                {
                                    "cost_kind": "CarbonDioxideEmission",
                                    "amount": 120,
                                    "amount_multiplier": -1,
                                },
                            ],
                        }
                    ],
                )
            ],
        ),
    }
    p["charging_schedule"].append(second)
    return p


def run(coro: Any) -> None:
    asyncio.run(asyncio.wait_for(coro, 120))


# --- K01: what ISO 15118-2 cannot carry is refused -----------------------------------------


def test_alternatives_and_tariffs_are_checked(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            cp = link.cp

            def bad(change: Any) -> dict[str, Any]:
                p = alternatives(5)
                change(p)
                return p

            def tariff_of(p: dict[str, Any], i: int = 0) -> dict[str, Any]:
                t: dict[str, Any] = p["charging_schedule"][i]["sales_tariff"]
                return t

            cases = {
                "1..255": bad(lambda p: tariff_of(p).update(id=0)),
                "SAScheduleTupleIDs": bad(lambda p: p["charging_schedule"][1].update(id=256)),
                "repeat": bad(lambda p: p["charging_schedule"][1].update(id=7)),
                "ePriceLevel": bad(
                    lambda p: tariff_of(p)["sales_tariff_entry"][1].update(e_price_level=3)
                ),
                "rise from 0": bad(
                    lambda p: tariff_of(p)["sales_tariff_entry"][0].update(
                        relative_time_interval={"start": 5}
                    )
                ),
                "duration": bad(
                    lambda p: tariff_of(p)["sales_tariff_entry"][0].update(
                        relative_time_interval={"start": 0, "duration": 90000}
                    )
                ),
                "numEPriceLevels": bad(lambda p: tariff_of(p).update(num_e_price_levels=300)),
            }
            for reason, p in cases.items():
                answer = await set_profile(cp, 1, p)
                assert answer.status == "Rejected", reason
                assert answer.status_info["reason_code"] == "InvalidProfile"
                assert reason in answer.status_info["additional_info"], (
                    reason,
                    answer.status_info,
                )
            none = await cp.call(call.GetChargingProfiles(request_id=1, charging_profile={}))
            assert none.status == "NoProfiles"  # nothing was stored
            good = await set_profile(cp, 1, alternatives(5))
            assert good.status == "Accepted"
            three = alternatives(6, stack_level=1)
            three["stack_level"] = 1
            three["charging_schedule"].append(
                {
                    "id": 11,
                    "charging_rate_unit": "A",
                    "charging_schedule_period": [{"start_period": 0, "limit": 10.0}],
                }
            )
            assert (await set_profile(cp, 1, three)).status == "Accepted"

    run(main())


# --- the alternatives and tariffs reach the EV (-2) ----------------------------------------


def _station_config(tmp_path: Path, iso20: bool = False) -> StationConfig:
    section = EvseSection(
        protocols=("iso20-ac",) if iso20 else ("iso2",),
        iso20_allow_tcp=iso20,
        evse_id=EVSE_ID,
        address="::1",
        tls_port=-1,
        tcp_port=0,
        sdp_port=0,
        energy_modes=("AC_three_phase_core",),
        hal=HalSection(control="none"),
        timers=Timers(sequence_timeout=10.0),
    )
    return StationConfig(station=StationSection(trace_dir=tmp_path / "traces"), evse=(section,))


async def _session(
    smart_station: SmartLinkFactory,
    tmp_path: Path,
    before: Any,
    *,
    token: bool = True,
    iso20: bool = False,
) -> tuple[Any, TestCsms, list[Any], Bridge]:
    """One -2 (or -20 scheduled) AC EIM session; ``before(cp, bridge)`` runs before the
    EV comes.  Returns the EV, the CSMS, the decoded ChargeParameterDiscoveryRes (or
    ScheduleExchangeRes) bodies of the station's trace."""
    async with smart_station(_station_config(tmp_path, iso20), token=token) as link:
        bridge = link.bridge
        await before(link.cp, bridge)
        result = await link.charge(smart_script("AC_three_phase_core", iso20=iso20))
        await wait_for(lambda: bridge.transaction is None and not len(bridge.queue))
    assert not any(code.startswith(("FAILED", "WARNING")) for _, code in result.codes), result.codes
    wanted = "ScheduleExchangeRes" if iso20 else "ChargeParameterDiscoveryRes"
    bodies = []
    for path in sorted((tmp_path / "traces").glob("*.jsonl")):
        for record in read_trace(path):
            if record["kind"] == "tx" and record["name"] == wanted:
                message = codec.decode(bytes.fromhex(record["exi"]), record["schema"])
                bodies.append(message if iso20 else message.body.body_element)
    ev = result.ev
    assert isinstance(ev, Ev20Simulator if iso20 else EvSimulator)
    if not iso20:
        assert result.ended == "done", result.codes
    return ev, link.csms, bodies, bridge


def _watts(pv: Any) -> float:
    return float(pv.value * 10**pv.multiplier)


def test_each_charging_schedule_is_a_tuple_with_its_sales_tariff(
    smart_station: SmartLinkFactory, tmp_path: Path
) -> None:
    async def main() -> None:
        async def before(cp: Any, bridge: Bridge) -> None:
            answer = await set_profile(cp, 1, alternatives(5))
            assert answer.status == "Accepted"

        ev, _csms, bodies, _bridge = await _session(smart_station, tmp_path, before)
        final = [b for b in bodies if b.evse_processing.value == "Finished"]
        assert final
        tuples = final[0].sa_schedules.sa_schedule_tuple
        assert [t.sa_schedule_tuple_id for t in tuples] == [7, 9]
        first, second = tuples
        pmax = [
            (e.time_interval.start, _watts(e.p_max))
            for e in first.p_max_schedule.p_max_schedule_entry
        ]
        assert pmax[0] == (0, 11000.0) and pmax[1][1] == 7000.0 and 3590 <= pmax[1][0] <= 3600
        assert [_watts(e.p_max) for e in second.p_max_schedule.p_max_schedule_entry] == [5000.0]
        t1 = first.sales_tariff
        assert (t1.sales_tariff_id, t1.sales_tariff_description, t1.num_e_price_levels) == (
            12,
            "peak then off",
            2,
        )
        levels = [(e.time_interval.start, e.e_price_level) for e in t1.sales_tariff_entry]
        assert levels[0] == (0, 1) and levels[1][1] == 2 and 3590 <= levels[1][0] <= 3600
        assert 3590 <= t1.sales_tariff_entry[0].time_interval.duration <= 3600
        t2 = second.sales_tariff
        assert t2.sales_tariff_id == 13 and t2.sales_tariff_description is None
        (cost,) = t2.sales_tariff_entry[0].consumption_cost
        assert _watts(cost.start_value) == 0.0
        assert [(c.cost_kind.value, c.amount, c.amount_multiplier) for c in cost.cost] == [
            ("relativePricePercentage", 80, None),
            ("CarbonDioxideEmission", 120, -1),
        ]
        # the EV took the first tuple (SAScheduleTupleID 7) and charged under it
        assert ev.schedule_id == 7
        assert ev.offers[0][0] == (0, 11000.0)

    run(main())


def test_one_schedule_without_tariff_stays_tuple_1(
    smart_station: SmartLinkFactory, tmp_path: Path
) -> None:
    """No alternatives, no tariff: the one SAScheduleTuple keeps ID 1 (the profile's
    schedule id is not an SAScheduleTupleID then) and carries no SalesTariff."""

    async def main() -> None:
        async def before(cp: Any, bridge: Bridge) -> None:
            p = profile(5, "TxDefaultProfile", 0, [(0, 6000.0)], kind="Relative")
            p["charging_schedule"][0]["id"] = 300
            assert (await set_profile(cp, 1, p)).status == "Accepted"

        ev, _csms, bodies, _bridge = await _session(smart_station, tmp_path, before)
        final = [b for b in bodies if b.evse_processing.value == "Finished"]
        (only,) = final[0].sa_schedules.sa_schedule_tuple
        assert only.sa_schedule_tuple_id == 1 and only.sales_tariff is None
        assert ev.offers == [((0, 6000.0),)]

    run(main())


def test_iso20_scheduled_gets_each_schedule_and_the_price_levels(
    smart_station: SmartLinkFactory, tmp_path: Path
) -> None:
    """-20 scheduled mode: one ScheduleTuple per chargingSchedule (IDs 7 and 9); the
    tariff with price levels (numEPriceLevels given, every entry a level) is that
    tuple's PriceLevelSchedule; the one of consumption costs only has no -20 form and is
    not sent (no price schedule in tuple 9)."""

    async def main() -> None:
        async def before(cp: Any, bridge: Bridge) -> None:
            assert (await set_profile(cp, 1, alternatives(5))).status == "Accepted"

        ev, _csms, bodies, _bridge = await _session(smart_station, tmp_path, before, iso20=True)
        assert ev.error is None, ev.error
        final = [b for b in bodies if b.scheduled_se_res_control_mode is not None]
        assert final, bodies
        tuples = final[0].scheduled_se_res_control_mode.schedule_tuple
        assert [t.schedule_tuple_id for t in tuples] == [7, 9]
        first, second = tuples
        levels = first.charging_schedule.price_level_schedule
        assert levels is not None and first.charging_schedule.absolute_price_schedule is None
        assert (levels.price_schedule_id, levels.number_of_price_levels) == (12, 2)
        assert levels.price_schedule_description == "peak then off"
        got = [
            (e.duration, e.price_level)
            for e in levels.price_level_schedule_entries.price_level_schedule_entry
        ]
        assert [level for _, level in got] == [1, 2]
        assert 3590 <= got[0][0] <= 3600
        power = first.charging_schedule.power_schedule
        assert levels.time_anchor == power.time_anchor
        total = sum(e.duration for e in power.power_schedule_entries.power_schedule_entry)
        assert sum(d for d, _ in got) == total  # the levels span the power schedule
        assert second.charging_schedule.price_level_schedule is None
        assert second.charging_schedule.absolute_price_schedule is None
        assert ev.schedule_offers[0][0] == 11000.0

    run(main())


# --- K05: RequestStartTransaction with a chargingProfile ---------------------------------


def test_remote_start_profile_applies_to_the_started_transaction(
    smart_station: SmartLinkFactory, tmp_path: Path
) -> None:
    async def main() -> None:
        async def before(cp: Any, bridge: Bridge) -> None:
            tx_profile = alternatives(21, purpose="TxProfile")
            answer = await cp.call(
                call.RequestStartTransaction(
                    id_token={"id_token": "APP-USER-1", "type": "Central"},
                    remote_start_id=77,
                    evse_id=1,
                    charging_profile=tx_profile,
                )
            )
            assert answer.status == "Accepted"
            none = await cp.call(call.GetChargingProfiles(request_id=2, charging_profile={}))
            assert none.status == "NoProfiles"  # not before its transaction exists

        ev, csms, bodies, bridge = await _session(smart_station, tmp_path, before, token=False)
        final = [b for b in bodies if b.evse_processing.value == "Finished"]
        assert [t.sa_schedule_tuple_id for t in final[0].sa_schedules.sa_schedule_tuple] == [7, 9]
        assert ev.schedule_id == 7
        stream = csms.transaction_stream()
        started = stream[0]
        assert started["triggerReason"] == "RemoteStart"
        assert started["transactionInfo"]["remoteStartId"] == 77
        # the TxProfile ended with its transaction
        assert bridge.primary.smart.book.entries == []

    run(main())


def test_remote_start_profile_is_reported_with_its_transaction(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            csms, station, cp = link.csms, link.station, link.cp
            bridge = station.bridge
            p = profile(30, "TxProfile", 2, [(0, 4000.0)], kind="Relative")
            answer = await cp.call(
                call.RequestStartTransaction(
                    id_token={"id_token": "APP-USER-2", "type": "Central"},
                    remote_start_id=78,
                    evse_id=1,
                    charging_profile=p,
                )
            )
            assert answer.status == "Accepted"
            from secc.core.actions import SessionStarted

            bridge.perform(SessionStarted(b"\x01" * 8, b"\x02" * 6, "urn:iso:15118:2:2013:MsgDef"))
            await wait_for(lambda: bridge.transaction is not None and bool(csms.tx_raw))
            tx_id = str(bridge.transaction["id"]) if bridge.transaction else ""
            await wait_for(lambda: bool(bridge.smart.book.entries))
            got = await cp.call(
                call.GetChargingProfiles(
                    request_id=3, charging_profile={"charging_profile_purpose": "TxProfile"}
                )
            )
            assert got.status == "Accepted"
            await wait_for(lambda: bool(csms.profile_reports))
            (reported,) = csms.profile_reports[0]["charging_profile"]
            assert reported["id"] == 30 and reported["transaction_id"] == tx_id
            composite = await cp.call(
                call.GetCompositeSchedule(duration=60, evse_id=1, charging_rate_unit="W")
            )
            assert composite.status == "Accepted", composite
            assert composite.schedule["charging_schedule_period"][0]["limit"] == 4000.0

    run(main())


def test_remote_start_with_a_profile_it_cannot_use_is_rejected(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            station, cp = link.station, link.cp
            bridge = station.bridge
            default = profile(31, "TxDefaultProfile", 0, [(0, 4000.0)], kind="Relative")
            with_tx = profile(32, "TxProfile", 0, [(0, 4000.0)], kind="Relative")
            with_tx["transaction_id"] = "someone-else"
            broken = profile(33, "TxProfile", 0, [(5, 4000.0)], kind="Relative")
            for i, (p, reason) in enumerate(
                [
                    (default, "is not TxProfile"),
                    (with_tx, "not a running transaction"),
                    (broken, "start at 0"),
                ]
            ):
                answer = await cp.call(
                    call.RequestStartTransaction(
                        id_token={"id_token": "APP-USER-3", "type": "Central"},
                        remote_start_id=90 + i,
                        evse_id=1,
                        charging_profile=p,
                    )
                )
                assert answer.status == "Rejected"
                assert answer.status_info["reason_code"] == "InvalidProfile"
                assert reason in answer.status_info["additional_info"]
            assert bridge._token is None  # no remote start was taken
            assert bridge.smart.book.entries == []
            plain = await cp.remote_start("APP-USER-3", "Central", 99)
            assert plain.status == "Accepted"  # the station serves on

    run(main())


def test_remote_start_profile_on_a_running_transaction(ops_link: OpsLink) -> None:
    """F01 (the cable first): the transaction runs when RequestStartTransaction comes;
    its TxProfile applies to that transaction at once and the session gets it."""

    async def main() -> None:
        from secc.core.actions import SessionStarted
        from secc.core.events import ChargingScheduleUpdate

        async with ops_link() as link:
            csms, station, cp = link.csms, link.station, link.cp
            bridge = station.bridge
            bridge.perform(SessionStarted(b"\x01" * 8, b"\x02" * 6, "urn:iso:15118:2:2013:MsgDef"))
            await wait_for(lambda: bridge.transaction is not None and bool(csms.tx_raw))
            assert bridge.transaction is not None
            tx_id = str(bridge.transaction["id"])
            station.events.clear()
            p = profile(40, "TxProfile", 1, [(0, 3500.0)], kind="Relative")
            answer = await cp.call(
                call.RequestStartTransaction(
                    id_token={"id_token": "APP-USER-4", "type": "Central"},
                    remote_start_id=79,
                    evse_id=1,
                    charging_profile=p,
                )
            )
            assert answer.status == "Accepted" and answer.transaction_id == tx_id
            update = await station.next_event(ChargingScheduleUpdate)
            assert update.entries[0][:2] == (0, 3500.0)
            (entry,) = bridge.smart.book.entries
            assert entry["profile"]["transactionId"] == tx_id

    run(main())
