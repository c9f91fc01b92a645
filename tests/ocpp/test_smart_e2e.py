"""End to end: ISO 15118-2 AC and DC EIM sessions of the EV simulator against the real
station runtime whose backend is the OCPP bridge talking to the test CSMS.  The CSMS's
TxDefaultProfile is the SAScheduleList the EV is offered (capped by the EVSE's own
maximum); a TxProfile the CSMS sets while the EV charges makes the station ask for a
renegotiation (EVSENotification ReNegotiation), after which the EV is offered the new
limit and charges on under it."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from ocpp.v201 import call

from secc.config import EvseSection, HalSection, StationConfig, StationSection
from secc.core.config import Timers
from secc.ev.iso2 import EvSimulator
from secc.ev.iso20 import Ev20Simulator
from tests.ocpp.csms import TestCsms, wait_for
from tests.ocpp.smart_rig import SmartLinkFactory, smart_script
from tests.ocpp.test_smart_profiles import profile

EVSE_ID = "DE*ABC*E1234567*1"


def _config(mode: str, schedule_wait: float = 0.0, iso20: bool = False) -> StationConfig:
    protocols: Any = ("iso2",)
    if iso20:
        protocols = ("iso20-dc",) if mode.startswith("DC") else ("iso20-ac",)
    section = EvseSection(
        protocols=protocols,
        iso20_allow_tcp=iso20,
        schedule_wait=schedule_wait,
        evse_id=EVSE_ID,
        address="::1",
        tls_port=-1,
        tcp_port=0,
        sdp_port=0,
        energy_modes=(mode,),
        hal=HalSection(control="none"),
        timers=Timers(sequence_timeout=10.0),
    )
    return StationConfig(station=StationSection(trace_dir=None), evse=(section,))


async def _charge(
    smart_station: SmartLinkFactory,
    mode: str,
    renegotiate_to: float | None,
    *,
    default: bool = True,
    schedule_wait: float = 0.0,
    answer_needs: list[tuple[int, float]] | None = None,
    iso20: bool = False,
) -> tuple[Any, TestCsms]:
    """One EIM session; ``default``: a TxDefaultProfile before the EV comes;
    ``answer_needs``: the CSMS answers NotifyEVChargingNeeds with a TxProfile of these
    periods; ``renegotiate_to``: a TxProfile of this many watts once the EV charges."""
    loops = 120 if renegotiate_to is not None else 3
    script = smart_script(mode, iso20=iso20, loops=loops)
    async with smart_station(_config(mode, schedule_wait, iso20)) as link:
        csms, cp, bridge = link.csms, link.cp, link.bridge
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        if default:
            base = profile(1, "TxDefaultProfile", 0, [(0, 11000.0), (3600, 7000.0)], start=now)
            answer = await cp.call(call.SetChargingProfile(evse_id=1, charging_profile=base))
            assert answer.status == "Accepted"
        ev_task = link.ev(script)
        if answer_needs is not None:  # K15: the CSMS's answer to the EV's needs
            await wait_for(lambda: bool(csms.ev_needs))
            started = csms.tx_raw[0][1]["transactionInfo"]["transactionId"]
            tx = profile(3, "TxProfile", 0, answer_needs, kind="Relative", transaction_id=started)
            answer = await cp.call(call.SetChargingProfile(evse_id=1, charging_profile=tx))
            assert answer.status == "Accepted"
        if renegotiate_to is not None:

            def charging() -> bool:
                return any(
                    p.get("transactionInfo", {}).get("chargingState") == "Charging"
                    for _, p in csms.tx_raw
                )

            await wait_for(charging)
            assert bridge.transaction is not None
            tx = profile(
                2,
                "TxProfile",
                0,
                [(0, renegotiate_to)],
                kind="Relative",
                transaction_id=str(bridge.transaction["id"]),
            )
            answer = await cp.call(call.SetChargingProfile(evse_id=1, charging_profile=tx))
            assert answer.status == "Accepted"
        result = await asyncio.wait_for(ev_task, 60)
        await wait_for(lambda: bridge.transaction is None and not len(bridge.queue))
    return result, csms


@pytest.mark.parametrize("mode", ["AC_three_phase_core", "DC_extended"])
def test_the_csms_profile_is_the_sa_schedule_list(
    smart_station: SmartLinkFactory, mode: str
) -> None:
    async def main() -> None:
        result, csms = await _charge(smart_station, mode, None)
        ev = result.ev
        assert isinstance(ev, EvSimulator)
        assert result.ended == "done", result.codes
        assert all(code.startswith("OK") for _, code in result.codes), result.codes
        assert len(ev.offers) == 1
        (first, second) = ev.offers[0]
        assert first == (0, 11000.0)
        assert second[1] == 7000.0 and 3590 <= second[0] <= 3600
        states = [p["triggerReason"] for _, p in csms.tx_raw]
        assert states[0] == "CablePluggedIn" and "ChargingStateChanged" in states

    asyncio.run(asyncio.wait_for(main(), 120))


@pytest.mark.parametrize("mode", ["AC_three_phase_core", "DC_extended"])
def test_a_new_profile_while_charging_renegotiates(
    smart_station: SmartLinkFactory, mode: str
) -> None:
    async def main() -> None:
        result, _csms = await _charge(smart_station, mode, 5000.0)
        ev = result.ev
        assert isinstance(ev, EvSimulator)
        assert result.ended == "done", result.codes
        assert all(code.startswith("OK") for _, code in result.codes), result.codes
        assert ev.renegotiated
        assert len(ev.offers) == 2, ev.offers
        assert ev.offers[0][0] == (0, 11000.0)
        assert [pmax for _, pmax in ev.offers[1]] == [5000.0]
        sent = ev.sent
        renegotiation = [i for i, n in enumerate(sent) if n == "ChargeParameterDiscoveryReq"]
        assert len(renegotiation) >= 2  # again after PowerDelivery Renegotiate
        assert "PowerDeliveryReq" in sent[renegotiation[0] : renegotiation[-1]]

    asyncio.run(asyncio.wait_for(main(), 120))


@pytest.mark.parametrize("mode", ["AC_three_phase_core", "DC_extended"])
def test_the_ev_needs_go_to_the_csms_and_its_profile_comes_back_in_time(
    smart_station: SmartLinkFactory, mode: str
) -> None:
    """K15: NotifyEVChargingNeeds with the EV's charge parameters at its first
    ChargeParameterDiscovery; the EV is answered Ongoing until the CSMS's TxProfile is
    there (within ``schedule_wait``), which is then its SAScheduleList; the EV's
    ChargingProfile from PowerDelivery goes to the CSMS as NotifyEVChargingSchedule."""

    async def main() -> None:
        result, csms = await _charge(
            smart_station,
            mode,
            None,
            default=False,
            schedule_wait=20.0,
            answer_needs=[(0, 9000.0), (600, 6000.0)],
        )
        ev = result.ev
        assert isinstance(ev, EvSimulator)
        assert result.ended == "done", result.codes
        assert len(ev.offers) == 1  # the Relative profile runs from the session's start
        (first, second) = ev.offers[0]
        assert first == (0, 9000.0)
        assert second[1] == 6000.0 and 590 <= second[0] <= 600
        assert len(csms.ev_needs) == 1
        needs = csms.ev_needs[0]
        assert needs["evse_id"] == 1
        wanted = needs["charging_needs"]
        if mode.startswith("DC"):
            assert wanted["requested_energy_transfer"] == "DC"
            assert wanted["dc_charging_parameters"]["ev_max_voltage"] > 0
        else:
            assert wanted["requested_energy_transfer"] == "AC_three_phase"
            assert wanted["ac_charging_parameters"]["ev_max_current"] > 0
        await wait_for(lambda: bool(csms.ev_schedules))
        schedule = csms.ev_schedules[0]["charging_schedule"]
        assert schedule["charging_rate_unit"] == "W"
        limits = [p["limit"] for p in schedule["charging_schedule_period"]]
        assert limits and max(limits) <= 9000.0

    asyncio.run(asyncio.wait_for(main(), 120))


def test_without_a_csms_profile_the_station_limits_after_the_wait(
    smart_station: SmartLinkFactory,
) -> None:
    """The CSMS takes the needs but sets no profile: after ``schedule_wait`` the EV is
    offered the station's own limit (32 A * 3 * 230 V) and charges."""

    async def main() -> None:
        result, csms = await _charge(
            smart_station, "AC_three_phase_core", None, default=False, schedule_wait=1.0
        )
        ev = result.ev
        assert isinstance(ev, EvSimulator)
        assert result.ended == "done", result.codes
        assert ev.offers == [((0, 22080.0),)]
        assert len(csms.ev_needs) == 1
        assert ev.sent.count("ChargeParameterDiscoveryReq") >= 2  # Ongoing at first

    asyncio.run(asyncio.wait_for(main(), 120))


@pytest.mark.parametrize("mode", ["AC_three_phase_core", "DC_extended"])
def test_iso20_scheduled_takes_the_csms_profile_and_renegotiates(
    smart_station: SmartLinkFactory, mode: str
) -> None:
    """ISO 15118-20 scheduled mode (over TCP with the lab switch): the TxDefaultProfile is
    the ScheduleExchange schedule, NotifyEVChargingNeeds goes out, and a TxProfile while
    charging brings EVSEStatus ScheduleRenegotiation and a second ScheduleExchange with
    the new limit."""

    async def main() -> None:
        result, csms = await _charge(smart_station, mode, 5000.0, iso20=True)
        ev = result.ev
        assert isinstance(ev, Ev20Simulator)
        assert ev.error is None, (ev.error, result.codes)
        assert not any(c.startswith(("FAILED", "WARNING")) for _, c in result.codes)
        assert ev.schedule_offers[0] == [11000.0, 7000.0]
        assert ev.schedule_offers[-1] == [5000.0]
        assert "ScheduleRenegotiation" in ev.notifications
        assert len(csms.ev_needs) == 1
        transfer = csms.ev_needs[0]["charging_needs"]["requested_energy_transfer"]
        assert transfer == ("DC" if mode.startswith("DC") else "AC_three_phase")
        await wait_for(lambda: len(csms.ev_schedules) == 2)  # Start, and Start again
        periods = csms.ev_schedules[0]["charging_schedule"]["charging_schedule_period"]
        assert periods[0]["start_period"] == 0 and periods[0]["limit"] > 0

    asyncio.run(asyncio.wait_for(main(), 120))
