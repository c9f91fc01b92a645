"""The IEC 61851 charging control machine: scenarios and a property over random sequences."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hal.control import (
    Action,
    ChargingControl,
    CloseContactors,
    ControlConfig,
    CpChanged,
    Event,
    FaultCleared,
    FaultRaised,
    HlcFailed,
    HlcFinished,
    HlcStarted,
    OpenContactors,
    Phase,
    PowerRequest,
    ReportFault,
    SetDuty,
    SetStateF,
    SlacFailed,
    SlacMatched,
    StartSlac,
    StopSlac,
    Tick,
)
from hal.types import CpState, Duty, Fault


def kinds(actions: list[Action]) -> list[type]:
    return [type(a) for a in actions]


def test_hlc_sequence_b1_five_percent_slac_v2g_then_power() -> None:
    m = ChargingControl()
    out = m.handle(CpChanged(CpState.B), 0.0)
    assert SetDuty(Duty.hlc()) in out and StartSlac() in out
    assert m.phase is Phase.HLC_WAIT
    m.handle(SlacMatched(), 1.0)
    assert m.handle(CpChanged(CpState.C), 1.5) == []  # no contactors before V2G
    m.handle(HlcStarted(), 2.0)
    assert m.phase is Phase.HLC
    assert kinds(m.handle(PowerRequest(True), 3.0)) == [CloseContactors]
    assert kinds(m.handle(CpChanged(CpState.B), 4.0)) == [OpenContactors]
    assert kinds(m.handle(CpChanged(CpState.C), 4.5)) == [CloseContactors]
    out = m.handle(HlcFinished(), 5.0)
    assert OpenContactors() in out and m.phase is Phase.DONE
    out = m.handle(CpChanged(CpState.A), 6.0)
    assert SetDuty(Duty.constant()) in out and StopSlac() in out and m.phase is Phase.IDLE


def test_no_hlc_in_time_falls_back_to_nominal_duty() -> None:
    m = ChargingControl(ControlConfig(hlc_start_timeout_s=10, max_current_a=32))
    m.handle(CpChanged(CpState.B), 0.0)
    assert m.deadline == 10.0
    assert m.handle(Tick(), 9.9) == []
    out = m.handle(Tick(), 10.0)
    assert SetDuty(Duty(533)) in out and StopSlac() in out
    assert m.phase is Phase.BASIC
    assert kinds(m.handle(CpChanged(CpState.C), 11.0)) == [CloseContactors]


def test_slac_failure_is_retried_after_an_x1_pause_then_basic() -> None:
    m = ChargingControl(ControlConfig(slac_retries=1, slac_retry_pause_s=4))
    m.handle(CpChanged(CpState.B), 0.0)
    out = m.handle(SlacFailed("TT_EVSE_SLAC_init"), 20.0)
    assert SetDuty(Duty.constant()) in out and m.phase is Phase.SLAC_PAUSE
    out = m.handle(Tick(), 24.0)
    assert StartSlac() in out and SetDuty(Duty.hlc()) in out
    out = m.handle(SlacFailed("TT_EVSE_SLAC_init"), 44.0)
    assert m.phase is Phase.BASIC and SetDuty(Duty.for_current(16)) in out


def test_hlc_failure_without_fallback_blocks() -> None:
    m = ChargingControl(ControlConfig(basic_fallback=False))
    m.handle(CpChanged(CpState.B), 0.0)
    m.handle(HlcStarted(), 1.0)
    m.handle(CpChanged(CpState.C), 1.1)
    m.handle(PowerRequest(True), 1.2)
    out = m.handle(HlcFailed("sequence error"), 2.0)
    assert OpenContactors() in out and m.phase is Phase.BLOCKED
    assert m.handle(PowerRequest(True), 3.0) == []


def test_fault_opens_at_once_reports_and_drives_f_until_cleared() -> None:
    m = ChargingControl(ControlConfig(hlc_enabled=False))
    m.handle(CpChanged(CpState.C), 0.0)
    assert m.closed
    out = m.handle(FaultRaised(Fault.RCD_TRIPPED, "30 mA"), 1.0)
    assert out[0] == OpenContactors()
    assert ReportFault(Fault.RCD_TRIPPED, "30 mA") in out and SetStateF() in out
    assert m.handle(CpChanged(CpState.F), 1.1) == []  # our own F is no new fault
    assert m.handle(PowerRequest(True), 1.2) == []
    out = m.handle(FaultCleared(Fault.RCD_TRIPPED), 5.0)
    assert SetDuty(Duty.constant()) in out and m.phase is Phase.IDLE
    out = m.handle(CpChanged(CpState.C), 5.1)
    assert CloseContactors() in out and m.phase is Phase.BASIC


def test_cp_e_is_a_fault_that_clears_when_the_ev_returns() -> None:
    m = ChargingControl(ControlConfig(hlc_enabled=False))
    m.handle(CpChanged(CpState.C), 0.0)
    out = m.handle(CpChanged(CpState.E), 1.0)
    assert OpenContactors() in out and ReportFault(Fault.CP_STATE_E, "CP reads 0 V (E)") in out
    assert SetStateF() not in out
    m.handle(CpChanged(CpState.B), 2.0)
    assert not m.faults and m.phase is Phase.BASIC


# ------------------------------------------------------------------ property

CP_STATES = st.sampled_from(list(CpState))
FAULTS = st.sampled_from(list(Fault))
EVENTS: st.SearchStrategy[Event] = st.one_of(
    st.builds(CpChanged, CP_STATES),
    st.builds(CpChanged, st.sampled_from([CpState.B, CpState.C, CpState.D])),
    st.just(SlacMatched()),
    st.builds(SlacFailed, st.just("x")),
    st.just(HlcStarted()),
    st.just(HlcFinished()),
    st.builds(HlcFailed, st.just("x")),
    st.builds(PowerRequest, st.booleans()),
    st.builds(PowerRequest, st.just(True)),
    st.builds(FaultRaised, FAULTS),
    st.builds(FaultCleared, FAULTS),
    st.just(Tick()),
)
CONFIGS = st.builds(
    ControlConfig,
    hlc_enabled=st.booleans(),
    basic_fallback=st.booleans(),
    hlc_start_timeout_s=st.sampled_from([1.0, 5.0]),
    slac_retries=st.integers(0, 2),
    slac_retry_pause_s=st.sampled_from([0.5, 4.0]),
    basic_needs_authorization=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(CONFIGS, st.lists(st.tuples(EVENTS, st.floats(0, 3)), max_size=60))
def test_contactors_never_closed_outside_c_d_and_every_fault_opens(
    config: ControlConfig, steps: list[tuple[Event, float]]
) -> None:
    m = ChargingControl(config)
    now = 0.0
    closed = False  # the contactor command as a device would see it
    for event, dt in steps:
        now += dt
        out = m.handle(event, now)
        for action in out:
            if isinstance(action, CloseContactors):
                closed = True
            elif isinstance(action, OpenContactors):
                closed = False
        assert closed == m.closed
        if m.cp not in (CpState.C, CpState.D) or m.faults:
            assert not closed, (event, m.cp, m.phase)
        if isinstance(event, FaultRaised):
            assert OpenContactors() in out
            assert any(isinstance(a, ReportFault) and a.fault is event.fault for a in out)
        if isinstance(event, CpChanged) and event.state in (CpState.E, CpState.F):
            assert not closed


def test_duty_table() -> None:
    assert Duty.for_current(6).permille == 100 and Duty.for_current(16).permille == 267
    assert Duty.for_current(51).permille == 850 and Duty.for_current(80).permille == 960
    assert Duty(267).amps == 16.0 and Duty(960).amps == 80.0 and Duty.hlc().amps is None
    assert Duty.hlc().is_hlc and not Duty.constant().is_pwm
    for bad in (0, 1001):
        with pytest.raises(ValueError):
            Duty(bad)
    with pytest.raises(ValueError):
        Duty.for_current(5.9)
    assert CpState.from_voltage(12.0) is CpState.A and CpState.from_voltage(9.1) is CpState.B
    assert CpState.from_voltage(5.8) is CpState.C and CpState.from_voltage(2.9) is CpState.D
    assert CpState.from_voltage(0.2) is CpState.E and CpState.from_voltage(-11.8) is CpState.F
    assert CpState.from_voltage(-5.0) is CpState.E and CpState.from_voltage(14.0) is CpState.E
