"""Smart charging against the test CSMS (OCPP 2.0.1 part 2, K01 SetChargingProfile, K08
GetCompositeSchedule, K09 GetChargingProfiles, K10 ClearChargingProfile), written from
the specification's rules: profiles are checked before they replace anything, a refused
one is answered Rejected with a reason and changes nothing, accepted ones survive a
restart, and the composite (highest stack level per purpose, TxProfile over
TxDefaultProfile, capped by ChargingStationMaxProfile) is what a running session is given
as its ChargingScheduleUpdate."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
from ocpp.v201 import call

from secc.core.actions import EndReason, SessionEnded, SessionStarted
from secc.core.events import ChargingScheduleUpdate
from secc.ocpp_bridge.bridge import BridgeConfig
from tests.ocpp.conftest import OpsLink
from tests.ocpp.csms import TestCsms, wait_for
from tests.ocpp.station import STATION, build, running

FAST = BridgeConfig(link_retry=0.05, meter_interval=3600)
PLUG = SessionStarted(b"\x01" * 8, b"\x02" * 6, "urn:iso:15118:2:2013:MsgDef")


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))  # type: ignore[arg-type]


def stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def profile(
    pid: int,
    purpose: str,
    level: int,
    periods: list[tuple[int, float]],
    *,
    unit: str = "W",
    kind: str = "Absolute",
    start: dt.datetime | None = None,
    duration: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    schedule: dict[str, Any] = {
        "id": pid,
        "charging_rate_unit": unit,
        "charging_schedule_period": [{"start_period": s, "limit": v} for s, v in periods],
    }
    if kind != "Relative":
        schedule["start_schedule"] = stamp(start or dt.datetime.now(dt.UTC))
    if duration is not None:
        schedule["duration"] = duration
    return {
        "id": pid,
        "stack_level": level,
        "charging_profile_purpose": purpose,
        "charging_profile_kind": kind,
        "charging_schedule": [schedule],
        **extra,
    }


async def set_profile(cp: Any, evse_id: int, p: dict[str, Any]) -> Any:
    return await cp.call(call.SetChargingProfile(evse_id=evse_id, charging_profile=p))


async def composite(cp: Any, evse_id: int, duration: int = 3600, unit: str = "W") -> Any:
    return await cp.call(
        call.GetCompositeSchedule(duration=duration, evse_id=evse_id, charging_rate_unit=unit)
    )


def test_bad_profiles_are_rejected_with_a_reason_and_change_nothing(ops_link: OpsLink) -> None:
    """K01: unknown EVSE, a stack level above ProfileStackLevel, a station maximum on an
    EVSE, a TxProfile without that transaction, an Absolute schedule that ended in the
    past, validTo past, periods not starting at 0 or not rising, a second profile of the
    same purpose and level: each Rejected with statusInfo; the accepted profile stays."""

    async def main() -> None:
        async with ops_link() as link:
            csms, cp = link.csms, link.cp
            good = profile(1, "TxDefaultProfile", 1, [(0, 7000.0)])
            assert (await set_profile(cp, 1, good)).status == "Accepted"
            past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
            bad = {
                "unknown EVSE": (7, profile(2, "TxDefaultProfile", 0, [(0, 1000.0)])),
                "stack level": (1, profile(3, "TxDefaultProfile", 99, [(0, 1000.0)])),
                "max on an EVSE": (1, profile(4, "ChargingStationMaxProfile", 0, [(0, 1.0)])),
                "TxProfile, no tx": (
                    1,
                    profile(5, "TxProfile", 0, [(0, 1000.0)], transaction_id="nope"),
                ),
                "ended in the past": (
                    1,
                    profile(6, "TxDefaultProfile", 2, [(0, 1000.0)], start=past, duration=600),
                ),
                "validTo past": (
                    1,
                    profile(7, "TxDefaultProfile", 3, [(0, 1000.0)], valid_to=stamp(past)),
                ),
                "first period": (1, profile(8, "TxDefaultProfile", 4, [(60, 1000.0)])),
                "not rising": (
                    1,
                    profile(9, "TxDefaultProfile", 5, [(0, 1000.0), (600, 2.0), (300, 3.0)]),
                ),
                "same level": (1, profile(10, "TxDefaultProfile", 1, [(0, 1000.0)])),
                "Recurring without kind": (
                    1,
                    profile(11, "TxDefaultProfile", 6, [(0, 1000.0)], kind="Recurring"),
                ),
            }
            for what, (evse_id, p) in bad.items():
                answer = await set_profile(cp, evse_id, p)
                assert answer.status == "Rejected", what
                assert answer.status_info and answer.status_info["additional_info"], what
            listed = await cp.call(call.GetChargingProfiles(request_id=5, charging_profile={}))
            assert listed.status == "Accepted"
            await wait_for(lambda: len(csms.profile_reports) == 1)
            report = csms.profile_reports[0]
            assert report["request_id"] == 5 and report["evse_id"] == 1
            assert [p["id"] for p in report["charging_profile"]] == [1]
            comp = await composite(cp, 1)
            assert comp.status == "Accepted"
            assert comp.schedule["charging_schedule_period"] == [
                {"start_period": 0, "limit": 7000.0}
            ]
            unknown = await composite(cp, 9)
            assert unknown.status == "Rejected"

    run(main())


def test_a_past_start_still_running_is_taken_from_now(ops_link: OpsLink) -> None:
    """An Absolute schedule that began an hour ago with periods at 0 / 30 min / 90 min:
    Accepted, and the composite starts in the 30-minute period, the next change 30 min
    from now."""

    async def main() -> None:
        async with ops_link() as link:
            cp = link.cp
            begun = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
            p = profile(
                1, "TxDefaultProfile", 0, [(0, 3000.0), (1800, 5000.0), (5400, 9000.0)], start=begun
            )
            assert (await set_profile(cp, 1, p)).status == "Accepted"
            comp = await composite(cp, 1, duration=7200)
            periods = comp.schedule["charging_schedule_period"]
            assert periods[0] == {"start_period": 0, "limit": 5000.0}
            assert periods[1]["limit"] == 9000.0
            assert 1790 <= periods[1]["start_period"] <= 1800

    run(main())


def test_composite_stack_levels_purposes_and_units(ops_link: OpsLink) -> None:
    """K08: within a purpose the highest stack level wins while its schedule runs (then the
    lower one again); TxProfile overrides TxDefaultProfile; ChargingStationMaxProfile
    caps both; amperes convert at 230 V per phase."""

    async def main() -> None:
        async with ops_link() as link:
            station, cp = link.station, link.cp
            bridge = station.bridge
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            base = profile(1, "TxDefaultProfile", 0, [(0, 16.0)], unit="A", start=now)
            short = profile(2, "TxDefaultProfile", 1, [(0, 4000.0)], start=now, duration=600)
            cap = profile(3, "ChargingStationMaxProfile", 0, [(0, 10000.0)], start=now)
            for evse_id, p in ((1, base), (1, short), (0, cap)):
                assert (await set_profile(cp, evse_id, p)).status == "Accepted"
            periods = (await composite(cp, 1, 1800)).schedule["charging_schedule_period"]
            # 16 A * 3 * 230 V = 11040 W, capped at 10000 W after the 600 s profile ends
            assert [p["limit"] for p in periods] == [4000.0, 10000.0]
            assert 590 <= periods[1]["start_period"] <= 600
            amps = (await composite(cp, 1, 1800, "A")).schedule["charging_schedule_period"]
            assert amps[0]["limit"] == round(4000 / 690, 1)
            # a transaction and its TxProfile: 6000 W over the defaults, for the session
            bridge.perform(PLUG)
            await wait_for(lambda: bridge.transaction is not None)
            update = await station.next_event(ChargingScheduleUpdate)
            assert update.entries[0][1] == 4000.0
            assert bridge.transaction is not None
            tx = profile(
                4,
                "TxProfile",
                0,
                [(0, 6000.0)],
                kind="Relative",
                transaction_id=str(bridge.transaction["id"]),
            )
            assert (await set_profile(cp, 1, tx)).status == "Accepted"
            update = await station.next_event(ChargingScheduleUpdate)
            assert [e[1] for e in update.entries] == [6000.0]
            bridge.perform(SessionEnded(EndReason.EV_STOP))
            await wait_for(lambda: bridge.transaction is None and len(bridge.queue) == 0)
            # the TxProfile ended with its transaction; the defaults remain
            left = [e["profile"]["id"] for e in bridge.smart.book.entries]
            assert sorted(left) == [1, 2, 3]

    run(main())


def test_profiles_survive_a_restart_and_clear_removes_them(tmp_path: Path) -> None:
    """Accepted profiles are durable (the outbox database); ClearChargingProfile by id
    and by criteria (K10), Unknown when nothing matches; GetChargingProfiles NoProfiles
    once they are gone."""

    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        station = build(tmp_path, csms.url, config=FAST)
        async with running(station):
            cp = await csms.station(STATION)
            for pid, level in ((1, 0), (2, 1), (3, 2)):
                p = profile(pid, "TxDefaultProfile", level, [(0, 1000.0 * pid)])
                assert (await set_profile(cp, 1, p)).status == "Accepted"
        station = build(tmp_path, csms.url, config=FAST)
        async with running(station):
            cp = await csms.station(STATION)
            ids = sorted(e["profile"]["id"] for e in station.bridge.smart.book.entries)
            assert ids == [1, 2, 3]
            assert (await composite(cp, 1)).schedule["charging_schedule_period"][0][
                "limit"
            ] == 3000.0
            gone = await cp.call(call.ClearChargingProfile(charging_profile_id=3))
            assert gone.status == "Accepted"
            by_level = await cp.call(
                call.ClearChargingProfile(charging_profile_criteria={"stack_level": 1})
            )
            assert by_level.status == "Accepted"
            again = await cp.call(call.ClearChargingProfile(charging_profile_id=3))
            assert again.status == "Unknown"
            listed = await cp.call(
                call.GetChargingProfiles(
                    request_id=1, charging_profile={"charging_profile_purpose": "TxProfile"}
                )
            )
            assert listed.status == "NoProfiles"
            ids = sorted(e["profile"]["id"] for e in station.bridge.smart.book.entries)
            assert ids == [1]
        await csms.stop()

    run(main())


def test_a_full_disk_rejects_the_profile_and_keeps_the_old_one(ops_link: OpsLink) -> None:
    """A profile that cannot be stored (SQLite full, as on a full filesystem) is Rejected
    with the reason; the profiles in force stay as they were, in memory and on disk, and
    the next profile is accepted once there is room.  An unknown EVSE says UnknownEvse."""

    async def main() -> None:
        async with ops_link() as link:
            station, cp = link.station, link.cp
            queue = station.bridge.queue
            one = profile(1, "TxDefaultProfile", 0, [(0, 5000.0)])
            assert (await set_profile(cp, 1, one)).status == "Accepted"
            unknown = await set_profile(cp, 3, profile(9, "TxDefaultProfile", 0, [(0, 1.0)]))
            assert unknown.status_info["reason_code"] == "UnknownEvse"
            pages = queue._db.execute("PRAGMA page_count").fetchone()[0]
            queue._db.execute(f"PRAGMA max_page_count = {pages + 2}")
            pads = []
            with pytest.raises(sqlite3.OperationalError, match="full"):
                for i in range(1000):  # fill the database up, as a full filesystem would
                    queue.set_state({f"pad{i}": "x" * 3000})
                    pads.append(f"pad{i}")
            big = profile(2, "TxDefaultProfile", 1, [(i * 60, 1000.0 + i) for i in range(24)])
            answer = await set_profile(cp, 1, big)
            assert answer.status == "Rejected"
            assert "not stored" in answer.status_info["additional_info"]
            assert [e["profile"]["id"] for e in station.bridge.smart.book.entries] == [1]
            queue._db.execute("PRAGMA max_page_count = 1000000")
            queue.set_state(dict.fromkeys(pads))
            assert [e["profile"]["id"] for e in queue.get_state("charging_profiles")] == [1]
            retry = await set_profile(cp, 1, big)
            assert retry.status == "Accepted"

    run(main())


def test_clearing_every_profile_lifts_the_session_limit(ops_link: OpsLink) -> None:
    """After ClearChargingProfile removes the last profile, the running session gets an
    empty ChargingScheduleUpdate: no CSMS limit any more (the core offers its own)."""

    async def main() -> None:
        async with ops_link() as link:
            station, cp = link.station, link.cp
            bridge = station.bridge
            p = profile(1, "TxDefaultProfile", 0, [(0, 5000.0)])
            assert (await set_profile(cp, 1, p)).status == "Accepted"
            bridge.perform(PLUG)
            first = await station.next_event(ChargingScheduleUpdate)
            assert [e[1] for e in first.entries] == [5000.0]
            await wait_for(lambda: bridge.transaction is not None)
            cleared = await cp.call(call.ClearChargingProfile(charging_profile_id=1))
            assert cleared.status == "Accepted"
            update = await station.next_event(ChargingScheduleUpdate)
            assert update.entries == ()
            bridge.perform(SessionEnded(EndReason.EV_STOP))
            await wait_for(lambda: bridge.transaction is None and len(bridge.queue) == 0)

    run(main())
