"""K17 (OCPP 2.0.1 part 2, "Renegotiation initiated by the EV") end to end: EV simulators
that renegotiate by themselves (ISO 15118-2 AC/DC: PowerDelivery ChargeProgress=Renegotiate,
then a new ChargeParameterDiscovery; ISO 15118-20 scheduled AC/DC: PowerDelivery
ScheduleRenegotiation, then a new ScheduleExchange) against the real station runtime whose
backend is the OCPP bridge talking to the test CSMS.  Per K17 the station sends
NotifyEVChargingNeeds with the EV's new needs, the CSMS may answer with a TxProfile, which
the EV is then offered (the EV waits Ongoing, at most ``schedule_wait``), and after the EV's
PowerDelivery Start the station sends NotifyEVChargingSchedule again."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from ocpp.v201 import call

from secc.ev.iso2 import EvSimulator
from secc.ev.iso20 import Ev20Simulator
from secc.ocpp_bridge.bridge import Bridge
from tests.ocpp.csms import TestCsms, wait_for
from tests.ocpp.smart_rig import SmartLinkFactory, smart_script
from tests.ocpp.test_smart_e2e import _config
from tests.ocpp.test_smart_profiles import profile

MODE = "AC_three_phase_core"


async def _ev_renegotiates(
    smart_station: SmartLinkFactory,
    *,
    schedule_wait: float,
    answer: float | None,
    iso20: str | None = None,
    mode: str = MODE,
) -> tuple[Any, TestCsms]:
    """One EIM session under a TxDefaultProfile (11 kW, 7 kW after an hour) whose EV
    renegotiates half way; ``answer``: the CSMS answers the second NotifyEVChargingNeeds
    with a TxProfile of this many watts (None: it sets nothing); ``iso20``: an ISO
    15118-20 EV in scheduled mode of this kind ("ac" or "dc") instead, over TCP."""
    if iso20 is not None:
        mode = "DC_extended" if iso20 == "dc" else MODE
    script = smart_script(mode, iso20=iso20 is not None, loops=60, renegotiate=True)
    async with smart_station(_config(mode, schedule_wait, iso20 is not None)) as link:
        csms, cp, bridge = link.csms, link.cp, link.bridge
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        base = profile(1, "TxDefaultProfile", 0, [(0, 11000.0), (3600, 7000.0)], start=now)
        reply = await cp.call(call.SetChargingProfile(evse_id=1, charging_profile=base))
        assert reply.status == "Accepted"
        ev_task = link.ev(script)
        if answer is not None:  # the CSMS answers the EV's new needs (K17)
            await wait_for(lambda: len(csms.ev_needs) == 2, 40)
            assert bridge.transaction is not None
            tx = profile(
                2,
                "TxProfile",
                0,
                [(0, answer)],
                kind="Relative",
                transaction_id=str(bridge.transaction["id"]),
            )
            reply = await cp.call(call.SetChargingProfile(evse_id=1, charging_profile=tx))
            assert reply.status == "Accepted"
        result = await asyncio.wait_for(ev_task, 60)
        await wait_for(lambda: bridge.transaction is None and not len(bridge.queue))
    return result, csms


def _renegotiated(result: Any) -> EvSimulator:
    ev = result.ev
    assert isinstance(ev, EvSimulator)
    assert result.ended == "done", result.codes
    assert all(code.startswith("OK") for _, code in result.codes), result.codes
    assert ev.renegotiated
    sent = ev.sent
    discoveries = [i for i, n in enumerate(sent) if n == "ChargeParameterDiscoveryReq"]
    assert "PowerDeliveryReq" in sent[discoveries[0] : discoveries[-1]]
    return ev


@pytest.mark.parametrize("mode", [MODE, "DC_extended"])
def test_the_ev_renegotiation_sends_its_needs_and_gets_the_csms_answer(
    smart_station: SmartLinkFactory, mode: str
) -> None:
    """K17: the second NotifyEVChargingNeeds comes with the EV's renegotiation; the EV
    waits Ongoing (contactors closed) until the CSMS's TxProfile is there and is offered
    it; NotifyEVChargingSchedule follows each PowerDelivery Start."""

    async def main() -> None:
        result, csms = await _ev_renegotiates(
            smart_station, schedule_wait=30.0, answer=4000.0, mode=mode
        )
        ev = _renegotiated(result)
        assert len(ev.offers) == 2, ev.offers
        assert ev.offers[0][0] == (0, 11000.0)
        assert [pmax for _, pmax in ev.offers[1]] == [4000.0]
        assert len(csms.ev_needs) == 2
        for needs in csms.ev_needs:
            wanted = needs["charging_needs"]
            assert needs["evse_id"] == 1
            if mode.startswith("DC"):
                assert wanted["requested_energy_transfer"] == "DC"
                assert wanted["dc_charging_parameters"]["ev_max_voltage"] > 0
            else:
                assert wanted["requested_energy_transfer"] == "AC_three_phase"
                assert wanted["ac_charging_parameters"]["ev_max_current"] > 0
        # the renegotiation's discovery was answered Ongoing at least once (it waited)
        loop = "CurrentDemandReq" if mode.startswith("DC") else "ChargingStatusReq"
        after = ev.sent[ev.sent.index("PowerDeliveryReq", ev.sent.index(loop)) :]
        assert after.count("ChargeParameterDiscoveryReq") >= 2, after
        await wait_for(lambda: len(csms.ev_schedules) == 2)
        last = csms.ev_schedules[-1]["charging_schedule"]["charging_schedule_period"]
        assert last and max(p["limit"] for p in last) <= 4000.0

    asyncio.run(asyncio.wait_for(main(), 120))


def test_without_an_answer_the_ev_gets_the_composite_in_force(
    smart_station: SmartLinkFactory,
) -> None:
    """K17 with a CSMS that takes the needs but sets nothing: after ``schedule_wait`` the
    renegotiating EV is offered the composite in force (the TxDefaultProfile)."""

    async def main() -> None:
        result, csms = await _ev_renegotiates(smart_station, schedule_wait=1.0, answer=None)
        ev = _renegotiated(result)
        assert len(ev.offers) == 2, ev.offers
        assert ev.offers[1][0] == (0, 11000.0)
        assert ev.offers[1][1][1] == 7000.0
        assert len(csms.ev_needs) == 2
        await wait_for(lambda: len(csms.ev_schedules) == 2)

    asyncio.run(asyncio.wait_for(main(), 120))


@pytest.mark.parametrize("kind", ["ac", "dc"])
def test_iso20_ev_renegotiation_sends_its_needs_and_gets_the_csms_answer(
    smart_station: SmartLinkFactory, kind: str
) -> None:
    """K17 with ISO 15118-20 scheduled mode: the EV's own PowerDelivery
    ScheduleRenegotiation and ScheduleExchange bring the second NotifyEVChargingNeeds; the
    ScheduleExchange waits Ongoing for the CSMS's TxProfile, which is the new schedule;
    NotifyEVChargingSchedule follows each PowerDelivery Start."""

    async def main() -> None:
        result, csms = await _ev_renegotiates(
            smart_station, schedule_wait=30.0, answer=4000.0, iso20=kind
        )
        ev = result.ev
        assert isinstance(ev, Ev20Simulator)
        assert ev.error is None, (ev.error, result.codes)
        assert not any(c.startswith(("FAILED", "WARNING")) for _, c in result.codes)
        assert ev.renegotiated
        assert "ScheduleRenegotiation" not in ev.notifications  # the EV's own
        assert ev.schedule_offers[0] == [11000.0, 7000.0]
        assert ev.schedule_offers[-1] == [4000.0]
        assert len(csms.ev_needs) == 2
        transfer = "DC" if kind == "dc" else "AC_three_phase"
        assert [n["charging_needs"]["requested_energy_transfer"] for n in csms.ev_needs] == [
            transfer,
            transfer,
        ]
        exchanges = ev.sent[ev.sent.index("ScheduleExchangeReq") :]
        assert exchanges.count("ScheduleExchangeReq") >= 3  # one, then Ongoing at least once
        await wait_for(lambda: len(csms.ev_schedules) == 2)

    asyncio.run(asyncio.wait_for(main(), 120))


# --- K06 / K07: the CSMS unreachable -----------------------------------------------------


async def _offline_session(smart_station: SmartLinkFactory, *, k07: bool) -> tuple[Any, Bridge]:
    """One -2 AC EIM session with the CSMS going down.  ``k07``: a TxDefaultProfile
    (8 kW) is set, then the CSMS stops before the EV comes (the card is taken offline by
    OfflineTxForUnknownIdEnabled).  Else (K06): the CSMS answers the EV's first needs
    with a TxProfile of 5 kW and stops when the EV's own renegotiation sends its needs
    again; the renegotiating EV gets its schedule from the station alone."""
    script = smart_script(MODE, loops=3 if k07 else 60, renegotiate=not k07)
    async with smart_station(_config(MODE, 0.0 if k07 else 10.0)) as link:
        csms, cp, bridge = link.csms, link.cp, link.bridge
        if k07:
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            base = profile(1, "TxDefaultProfile", 0, [(0, 8000.0)], start=now)
            reply = await cp.call(call.SetChargingProfile(evse_id=0, charging_profile=base))
            assert reply.status == "Accepted"
            bridge.dm.set_local("AuthCtrlr", "OfflineTxForUnknownIdEnabled", "true")
            await csms.stop()
            await wait_for(lambda: not bridge.client.online.is_set())
        ev_task = link.ev(script)
        if not k07:
            await wait_for(lambda: bool(csms.ev_needs))
            assert bridge.transaction is not None
            tx = profile(
                2,
                "TxProfile",
                0,
                [(0, 5000.0)],
                kind="Relative",
                transaction_id=str(bridge.transaction["id"]),
            )
            reply = await cp.call(call.SetChargingProfile(evse_id=1, charging_profile=tx))
            assert reply.status == "Accepted"
            await wait_for(lambda: len(csms.ev_needs) == 2, 40)
            await csms.stop()
        result = await asyncio.wait_for(ev_task, 60)
        await wait_for(lambda: bridge.transaction is None)
        assert not bridge.client.online.is_set()
        assert len(bridge.queue)  # the transaction's events wait for the CSMS
    return result, bridge


def test_k07_offline_start_uses_the_stored_tx_default_profile(
    smart_station: SmartLinkFactory,
) -> None:
    """K07: the CSMS is unreachable when the transaction starts: the EV is offered the
    TxDefaultProfile (evseId 0) stored while online, not the station's own limit."""

    async def main() -> None:
        result, _bridge = await _offline_session(smart_station, k07=True)
        ev = result.ev
        assert isinstance(ev, EvSimulator)
        assert result.ended == "done", result.codes
        assert ev.offers == [((0, 8000.0),)]

    asyncio.run(asyncio.wait_for(main(), 120))


def test_k06_offline_during_the_transaction_keeps_the_tx_profile(
    smart_station: SmartLinkFactory,
) -> None:
    """K06: the CSMS goes down while the EV charges under its TxProfile (5 kW); the EV's
    renegotiation then gets no answer and, after ``schedule_wait``, is offered the same
    TxProfile limit again (not the station's 22 kW); the session ends normally."""

    async def main() -> None:
        result, _bridge = await _offline_session(smart_station, k07=False)
        ev = _renegotiated(result)
        assert ev.offers == [((0, 5000.0),), ((0, 5000.0),)]

    asyncio.run(asyncio.wait_for(main(), 120))
