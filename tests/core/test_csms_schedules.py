"""The CSMS's schedule in the ISO 15118-2 / DIN session core (real codec, fake clock, the
EV simulator): the offered SAScheduleList counts from when the schedule arrived, the
limit in force bounds what the EVSE offers in the loop (AC EVSEMaxCurrent) and delivers
(DC power module target, EVSEMaximumPowerLimit), a new schedule while charging asks a -2
EV to renegotiate (EVSENotification ReNegotiation; the EV answers with
PowerDelivery Renegotiate) and is offered in the new ChargeParameterDiscovery; DIN has no
renegotiation and is never asked.  The EV's charge parameters and its PowerDelivery
ChargingProfile go to the station as EvChargingNeeds / EvChargingSchedule."""

from __future__ import annotations

from typing import Any

from secc.core.actions import EvChargingNeeds, EvChargingSchedule, SendResponse, SetDcTarget
from secc.core.config import ISO20_AC_NAMESPACE, ISO20_DC_NAMESPACE, SessionConfig
from secc.core.context import value_of
from secc.core.events import ChargingScheduleUpdate
from secc.ev.iso2 import EvScript, EvSimulator
from secc.ev.iso20 import Ev20Script, Ev20Simulator
from secc.testing.harness import Outcome, run_session

AC = "AC_three_phase_core"
DC = "DC_extended"
CONFIG = SessionConfig()


def bodies(out: Outcome, name: str) -> list[tuple[float, Any]]:
    return [
        (t, a.message.body.body_element)
        for t, a in out.actions
        if isinstance(a, SendResponse) and a.name == name
    ]


def notifications(out: Outcome, name: str) -> list[str]:
    out_ = []
    for _, body in bodies(out, name):
        status = getattr(body, "ac_evse_status", None) or getattr(body, "dc_evse_status", None)
        out_.append(status.evse_notification.value)
    return out_


def test_the_offer_counts_from_when_the_schedule_arrived() -> None:
    """Entries are relative to the schedule's arrival: one that ended before the EV asked
    is dropped, the next starts earlier by the time that passed."""
    schedule = ChargingScheduleUpdate(((0, 9000.0, 1), (1, 6000.0, 99), (100, 4000.0, None)))
    out = run_session(CONFIG, EvScript(energy_mode=AC, charge_loops=2), events=[(0.0, schedule)])
    (t, res), *_ = bodies(out, "ChargeParameterDiscoveryRes")
    waited = int(t - 1000.0)
    assert waited >= 1  # the EV's ChargeParameterDiscovery came after the first entry ended
    entries = res.sa_schedules.sa_schedule_tuple[0].p_max_schedule.p_max_schedule_entry
    offered = [(e.time_interval.start, value_of(e.p_max)) for e in entries]
    assert offered == [(0, 6000.0), (100 - waited, 4000.0)]


def test_the_limit_in_force_bounds_the_ac_offer_in_the_loop() -> None:
    schedule = ChargingScheduleUpdate(((0, 6900.0, None),))
    out = run_session(CONFIG, EvScript(energy_mode=AC, charge_loops=3), events=[(0.0, schedule)])
    currents = [value_of(b.evse_max_current) for _, b in bodies(out, "ChargingStatusRes")]
    assert currents and all(c == 10.0 for c in currents)  # 6900 W / (3 * 230 V)
    plain = run_session(CONFIG, EvScript(energy_mode=AC, charge_loops=2))
    assert value_of(bodies(plain, "ChargingStatusRes")[0][1].evse_max_current) == 32.0


def test_the_limit_in_force_bounds_the_dc_delivery() -> None:
    """The EV asks 400 V * 100 A = 40 kW; the CSMS allows 20 kW: the power module gets
    at most 50 A and the EV reads EVSEMaximumPowerLimit 20 kW."""
    schedule = ChargingScheduleUpdate(((0, 20000.0, None),))
    out = run_session(CONFIG, EvScript(energy_mode=DC, charge_loops=3), events=[(0.0, schedule)])
    demands = bodies(out, "CurrentDemandRes")
    assert demands
    assert all(value_of(b.evse_maximum_power_limit) == 20000.0 for _, b in demands)
    assert all(b.evse_power_limit_achieved for _, b in demands)
    loop_start = demands[0][0]
    targets = [a for t, a in out.actions if isinstance(a, SetDcTarget) and t >= loop_start - 1]
    assert targets and max(a.current for a in targets) <= 50.0


def test_a_new_schedule_while_charging_renegotiates() -> None:
    for mode in (AC, DC):
        first = ChargingScheduleUpdate(((0, 11000.0, None),))
        second = ChargingScheduleUpdate(((0, 5000.0, None),))
        script = EvScript(energy_mode=mode, charge_loops=40, loop_interval=0.2)
        out = run_session(CONFIG, script, events=[(0.0, first), (6.0, second)])
        ev = out.ev
        assert isinstance(ev, EvSimulator)
        assert all(c.startswith("OK") for _, c in out.responses), out.responses
        assert [o[0][1] for o in ev.offers] == [11000.0, 5000.0]
        loop = "ChargingStatusRes" if mode == AC else "CurrentDemandRes"
        seen = notifications(out, loop)
        asked = seen.index("ReNegotiation")
        assert "ReNegotiation" not in seen[asked + 1 :]  # cleared by the new offer
        assert out.kinds().count("CloseContactors") == 1
        cpd = [t for t, _ in bodies(out, "ChargeParameterDiscoveryRes")]
        assert len(cpd) == 2 and cpd[1] > 1006.0


def test_din_is_never_asked_to_renegotiate() -> None:
    first = ChargingScheduleUpdate(((0, 30000.0, None),))
    second = ChargingScheduleUpdate(((0, 20000.0, None),))
    script = EvScript(protocol="din", energy_mode=DC, charge_loops=30, loop_interval=0.2)
    out = run_session(CONFIG, script, events=[(0.0, first), (5.0, second)])
    assert all(c.startswith("OK") for _, c in out.responses), out.responses
    assert set(notifications(out, "CurrentDemandRes")) == {"None"}
    limits = [value_of(b.evse_maximum_power_limit) for _, b in bodies(out, "CurrentDemandRes")]
    assert limits[0] == 30000.0 and limits[-1] == 20000.0  # the delivery follows anyway


def test_the_ev_needs_and_its_profile_are_reported() -> None:
    for mode in (AC, DC):
        out = run_session(CONFIG, EvScript(energy_mode=mode, charge_loops=2))
        needs = [a for _, a in out.actions if isinstance(a, EvChargingNeeds)]
        assert len(needs) == 1 and needs[0].energy_transfer == mode
        assert needs[0].max_current > 0 and needs[0].max_voltage > 0
        schedules = [a for _, a in out.actions if isinstance(a, EvChargingSchedule)]
        assert len(schedules) == 1 and schedules[0].schedule_id == 1
        assert schedules[0].entries and schedules[0].entries[0][0] == 0


CONFIG20 = SessionConfig(protocols=(ISO20_DC_NAMESPACE, ISO20_AC_NAMESPACE), iso20_allow_tcp=True)


def script20(mode: str, **changes: Any) -> Ev20Script:
    base: dict[str, Any] = {"think_time": 0.01, "poll_interval": 0.2, "loop_interval": 0.2}
    return Ev20Script(mode=mode, control="scheduled", **(base | changes))


def test_iso20_scheduled_offer_needs_and_renegotiation() -> None:
    """-20 scheduled mode: the CSMS schedule is the ScheduleTuple, the EV's needs are
    reported once, and a new schedule while charging asks the EV (EVSEStatus
    ScheduleRenegotiation) for PowerDelivery ScheduleRenegotiation and a new
    ScheduleExchange, contactors closed throughout."""
    for mode in ("ac", "dc"):
        first = ChargingScheduleUpdate(((0, 9000.0, 600), (600, 7000.0, None)))
        second = ChargingScheduleUpdate(((0, 4000.0, None),))
        out = run_session(
            CONFIG20,
            script20(mode, charge_loops=40),
            events=[(0.0, first), (6.0, second)],
        )
        ev = out.ev
        assert isinstance(ev, Ev20Simulator)
        assert ev.error is None, (ev.error, out.responses)
        assert all(not c.startswith(("FAILED", "WARNING")) for _, c in out.responses)
        assert ev.schedule_offers[0] == [9000.0, 7000.0]
        assert ev.schedule_offers[1] == [4000.0]
        assert ev.notifications.count("ScheduleRenegotiation") >= 1
        assert out.requests.count("ScheduleExchangeReq") >= 2
        assert out.kinds().count("CloseContactors") == 1
        needs = [a for _, a in out.actions if isinstance(a, EvChargingNeeds)]
        assert len(needs) == 1 and needs[0].energy_transfer == mode.upper()
        assert needs[0].max_current > 0 and needs[0].departure_time == 7200
        ev_profiles = [a for _, a in out.actions if isinstance(a, EvChargingSchedule)]
        assert len(ev_profiles) == 2  # the first Start and the one after renegotiation
        assert all(p.entries[0][0] == 0 and p.entries[0][1] > 0 for p in ev_profiles)
