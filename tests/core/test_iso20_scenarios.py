"""ISO 15118-20 sessions through the real codec: AC and DC, scheduled and dynamic, from
supportedAppProtocol to SessionStop; pause and resume, service renegotiation, standby,
schedule renegotiation, the TLS 1.3 gate, and the family/payload-type rules."""

from __future__ import annotations

from typing import Any

import pytest

from secc import codec
from secc.core.actions import (
    ChargingStateChanged,
    CloseConnection,
    CloseContactors,
    EndReason,
    EvChargingNeeds,
    EvChargingSchedule,
    OpenContactors,
    SendResponse,
    SessionEnded,
    SetDcTarget,
    StartIsolationTest,
    StopDcOutput,
)
from secc.core.config import (
    DIN_NAMESPACE,
    ISO2_NAMESPACE,
    ISO20_AC_NAMESPACE,
    ISO20_DC_NAMESPACE,
)
from secc.core.context import State
from secc.core.events import (
    ChargingScheduleUpdate,
    RequestReceived,
    Schema,
    StopRequested,
    TimerExpired,
)
from secc.core.iso20 import Iso20State
from tests.core.iso20_peer import (
    D,
    Ev,
    config,
    loop,
    num,
    start,
    to_authorized,
    to_loop,
    to_precharged,
    to_scheduled,
)

MODES = [(dc, dynamic) for dc in (False, True) for dynamic in (False, True)]
IDS = ["AC-scheduled", "AC-dynamic", "DC-scheduled", "DC-dynamic"]


def kinds(actions: list[Any]) -> list[type]:
    """The actions' types, without the EV's reports for the CSMS (not about safety)."""
    return [type(a) for a in actions if not isinstance(a, (EvChargingNeeds, EvChargingSchedule))]


def responses(ev: Ev) -> list[SendResponse]:
    return [a for a in ev.actions if isinstance(a, SendResponse)]


def assert_safe_end(ev: Ev, reason: EndReason) -> None:
    k = kinds(ev.last)
    assert OpenContactors in k
    assert k.index(OpenContactors) < k.index(CloseConnection) < k.index(SessionEnded)
    sends = [i for i, t in enumerate(k) if t is SendResponse]
    assert all(i > k.index(OpenContactors) for i in sends)  # safe before the last word
    assert ev.last[-1] == SessionEnded(reason, ev.last[-1].detail)
    assert ev.session.state is State.ENDED and ev.session.deadline is None
    assert ev.session.end_reason is reason


@pytest.mark.parametrize(("dc", "dynamic"), MODES, ids=IDS)
def test_a_whole_session(dc: bool, dynamic: bool) -> None:
    ev = Ev(dc=dc)
    to_authorized(ev)
    assert ev.session.schema is Schema.ISO20_COMMON
    assert ev.session.context.protocol == (ISO20_DC_NAMESPACE if dc else ISO20_AC_NAMESPACE)
    res = to_scheduled(ev, dynamic)
    if dynamic:
        assert res.dynamic_se_res_control_mode is not None
        assert res.scheduled_se_res_control_mode is None
    else:
        (tuple_,) = res.scheduled_se_res_control_mode.schedule_tuple
        entries = tuple_.charging_schedule.power_schedule.power_schedule_entries
        (entry,) = entries.power_schedule_entry
        limit = ev.cfg.dc.max_power if dc else ev.cfg.ac.max_power
        assert (tuple_.schedule_tuple_id, entry.duration, num(entry.power)) == (1, 86400, limit)
    assert CloseContactors not in kinds(ev.actions)
    if dc:
        to_precharged(ev)
    res = start(ev, dynamic)
    assert res.response_code.value == "OK" and res.evse_status is None
    k = kinds(ev.last)
    assert k == [CloseContactors, ChargingStateChanged, SendResponse]
    for _ in range(3):
        res = loop(ev, dynamic)
        assert res.response_code.value == "OK"
        if dc:
            target = ev.last[0]
            assert isinstance(target, SetDcTarget)
            if dynamic:  # the EV's maximum within the station's limits (125 A, 450 V)
                assert (target.voltage, target.current) == (450.0, 125.0)
                assert res.evse_current_limit_achieved is True  # the EV wants 200 A
                assert num(res.cl_res_control_mode.evse_maximum_charge_current) == 125.0
            else:
                assert (target.voltage, target.current) == (400.0, 100.0)
            assert res.meter_info.meter_id == "METER-1"
        else:
            assert num(res.cl_res_control_mode.evse_target_active_power) == (
                7000.0 if dynamic else ev.cfg.ac.max_power
            )
    res = ev.power_delivery("Stop")
    assert res.response_code.value == "OK"
    expected = [OpenContactors, ChargingStateChanged, SendResponse]
    assert kinds(ev.last) == ([StopDcOutput] if dc else []) + expected
    if dc:
        assert ev.welding().response_code.value == "OK"
    assert ev.session_stop().response_code.value == "OK"
    assert_safe_end(ev, EndReason.EV_STOP)
    # one CloseContactors in the whole session, and every response in its own schema
    assert kinds(ev.actions).count(CloseContactors) == 1
    for sent in responses(ev):
        want = {"AC_": Schema.ISO20_AC, "DC_": Schema.ISO20_DC, "sup": Schema.APPHAND}
        assert sent.schema is want.get(sent.name[:3], Schema.ISO20_COMMON), sent.name
        codec.encode(sent.message)


def test_dc_order_isolation_precharge_contactors() -> None:
    ev = Ev(dc=True)
    to_loop(ev, False)
    acts = [a for a in ev.actions if not isinstance(a, (EvChargingNeeds, EvChargingSchedule))]
    k = kinds(acts)
    first_target = k.index(SetDcTarget)
    assert k.index(StartIsolationTest) < first_target < k.index(CloseContactors)
    precharge = acts[first_target]
    assert isinstance(precharge, SetDcTarget) and precharge.current <= 2.0


def test_schedule_follows_the_csms_and_the_supporting_points() -> None:
    ev = Ev(dc=False)
    to_authorized(ev)
    ev.feed(
        ChargingScheduleUpdate(((0, 7000.0, None), (3600, 50_000.0, None), (7200, 3000.0, 600)))
    )
    res = to_scheduled(ev, dynamic=False)
    (tuple_,) = res.scheduled_se_res_control_mode.schedule_tuple
    entries = tuple_.charging_schedule.power_schedule.power_schedule_entries.power_schedule_entry
    limit = ev.cfg.ac.max_power
    assert [(e.duration, num(e.power)) for e in entries] == [
        (3600, 7000.0),
        (3600, limit),
        (600, 3000.0),
    ]


def test_pause_and_resume_joins_the_old_session() -> None:
    ev = Ev(dc=True)
    to_loop(ev, False)
    ev.power_delivery("Stop")
    ev.welding()
    assert ev.session_stop("Pause").response_code.value == "OK"
    assert_safe_end(ev, EndReason.EV_PAUSE)
    paused = ev.session.paused
    assert paused is not None and paused.session_id == ev.session_id
    assert paused.protocol == ISO20_DC_NAMESPACE
    again = Ev(dc=True, resume=paused)
    again.handshake()
    again.session_id = paused.session_id
    res = again.session_setup()
    assert res.response_code.value == "OK_OldSessionJoined"
    assert bytes(res.header.session_id) == paused.session_id
    # authorization and service carry over: straight to ChargeParameterDiscovery
    assert again.session.state is Iso20State.SERVICE_SELECTED
    assert again.charge_parameters().response_code.value == "OK"
    res = again.schedule_exchange(False)
    assert (res.response_code.value, res.evse_processing.value) == ("OK", "Finished")
    to_precharged(again)
    assert start(again, False).response_code.value == "OK"
    assert CloseContactors in kinds(again.last)
    # a different SessionID gets a new session
    other = Ev(dc=True, resume=paused)
    other.handshake()
    other.session_id = bytes(range(8))
    res = other.session_setup()
    assert res.response_code.value == "OK_NewSessionEstablished"
    assert bytes(res.header.session_id) not in (paused.session_id, bytes(8))


@pytest.mark.parametrize("dc", [False, True], ids=["AC", "DC"])
def test_service_renegotiation_goes_back_to_service_discovery(dc: bool) -> None:
    ev = Ev(dc=dc)
    to_loop(ev, dynamic=False)
    ev.power_delivery("Stop")
    res = ev.session_stop("ServiceRenegotiation")
    assert res.response_code.value == "OK"
    assert ev.session.state is Iso20State.AUTHORIZED
    assert SessionEnded not in kinds(ev.last)
    to_scheduled(ev, dynamic=True)  # the other control mode this time
    if dc:
        before = kinds(ev.actions).count(StartIsolationTest)
        to_precharged(ev)
        assert kinds(ev.actions).count(StartIsolationTest) == before + 1  # a new cable check
    assert start(ev, dynamic=True).response_code.value == "OK"
    assert loop(ev, dynamic=True).response_code.value == "OK"
    ev.power_delivery("Stop")
    ev.session_stop()
    assert_safe_end(ev, EndReason.EV_STOP)


def test_service_renegotiation_from_pre_charge_switches_the_output_off() -> None:
    ev = Ev(dc=True)
    to_authorized(ev)
    to_scheduled(ev, dynamic=False)
    to_precharged(ev)
    res = ev.session_stop("ServiceRenegotiation")
    assert res.response_code.value == "OK"
    assert kinds(ev.last) == [StopDcOutput, SendResponse]
    assert ev.session.state is Iso20State.AUTHORIZED


def test_a_paused_session_that_had_no_service_starts_over() -> None:
    ev = Ev(dc=False)
    to_authorized(ev)
    assert ev.session_stop("Pause").response_code.value == "OK"
    paused = ev.session.paused
    assert paused is not None and paused.service_id is None and paused.authorized
    again = Ev(dc=False, resume=paused)
    again.handshake()
    again.session_id = paused.session_id
    assert again.session_setup().response_code.value == "OK_OldSessionJoined"
    assert again.session.state is Iso20State.SESSION_SETUP
    assert again.authorization_setup().response_code.value == "OK"


def test_service_renegotiation_refused_when_switched_off() -> None:
    ev = Ev(cfg=config(iso20_service_renegotiation=False), dc=False)
    to_authorized(ev)
    assert ev.service_discovery().service_renegotiation_supported is False
    res = ev.session_stop("ServiceRenegotiation")
    assert res.response_code.value == "FAILED_NoServiceRenegotiationSupported"
    assert_safe_end(ev, EndReason.FAILED_RESPONSE)


def test_dc_standby_stops_the_power_and_start_resumes() -> None:
    ev = Ev(dc=True)
    to_loop(ev, dynamic=True)
    loop(ev, True)
    res = ev.power_delivery("Standby")
    assert res.response_code.value == "OK"
    # no current, the contactors and the insulation monitor stay: no StopDcOutput (it
    # stops the monitor) before the session's end
    assert kinds(ev.last) == [SetDcTarget, ChargingStateChanged, SendResponse]
    target = ev.last[0]
    assert isinstance(target, SetDcTarget) and target.current == 0.0
    assert ev.session.state is Iso20State.STANDBY
    for _ in range(2):
        assert loop(ev, True).response_code.value == "OK"
        assert not any(isinstance(a, SetDcTarget) for a in ev.last)  # no power in standby
    res = ev.power_delivery("Start")
    assert res.response_code.value == "OK"
    assert kinds(ev.last) == [ChargingStateChanged, SendResponse]  # contactors stayed closed
    loop(ev, True)
    assert isinstance(ev.last[0], SetDcTarget) and ev.last[0].current > 0


def test_ac_standby_keeps_the_contactors_closed() -> None:
    ev = Ev(dc=False)
    to_loop(ev, dynamic=True)
    ev.power_delivery("Standby")
    assert kinds(ev.last) == [ChargingStateChanged, SendResponse]
    res = loop(ev, True)
    assert num(res.cl_res_control_mode.evse_target_active_power) == 0.0
    ev.power_delivery("Start")
    assert kinds(ev.last) == [ChargingStateChanged, SendResponse]


def test_standby_not_allowed_is_a_warning_and_the_loop_goes_on() -> None:
    ev = Ev(cfg=config(iso20_standby=False), dc=True)
    to_loop(ev, dynamic=True)
    res = ev.power_delivery("Standby")
    assert res.response_code.value == "WARNING_StandbyNotAllowed"
    assert kinds(ev.last) == [SendResponse]
    assert loop(ev, True).response_code.value == "OK"
    assert isinstance(ev.last[0], SetDcTarget)


@pytest.mark.parametrize("dc", [False, True], ids=["AC", "DC"])
def test_schedule_renegotiation_keeps_the_contactors(dc: bool) -> None:
    ev = Ev(dc=dc)
    to_loop(ev, dynamic=False)
    loop(ev, False)
    assert ev.power_delivery("ScheduleRenegotiation").response_code.value == "OK"
    assert ev.session.state is Iso20State.RENEGOTIATION
    res = ev.schedule_exchange(dynamic=False)
    assert res.evse_processing.value == "Finished"
    res = ev.power_delivery("Start", 1, 10_000)
    assert res.response_code.value == "OK"
    assert kinds(ev.last) == [SendResponse]  # still closed, still charging
    assert loop(ev, False).response_code.value == "OK"
    assert OpenContactors not in kinds(ev.actions)


def test_station_stop_notifies_terminate_and_ends_after_the_grace() -> None:
    ev = Ev(dc=True)
    to_loop(ev, False)
    ev.feed(StopRequested("remote stop"))
    res = loop(ev, False)
    assert res.evse_status.evse_notification.value == "Terminate"
    res = ev.power_delivery("Stop")  # the EV obeys
    assert (
        res.response_code.value == "OK" and res.evse_status.evse_notification.value == "Terminate"
    )
    assert OpenContactors in kinds(ev.last)
    ev2 = Ev(dc=True)
    to_loop(ev2, False)
    ev2.feed(StopRequested("remote stop"))
    ev2.clock.advance(ev2.cfg.timers.stop_grace + 0.1)
    ev2.feed(TimerExpired("StopCharging_Grace"))
    assert_safe_end(ev2, EndReason.STATION_STOP)
    assert StopDcOutput in kinds(ev2.last)


# --- negotiation -----------------------------------------------------------------------------


def test_iso20_needs_tls13_or_the_lab_switch() -> None:
    plain = Ev(cfg=config(tls13=False))
    res = plain.handshake((ISO20_DC_NAMESPACE,))
    assert res.response_code.value == "Failed_NoNegotiation"
    fallback = Ev(cfg=config(tls13=False))
    res = fallback.handshake((ISO20_DC_NAMESPACE, ISO2_NAMESPACE))
    assert res.response_code.value == "OK_SuccessfulNegotiation" and res.schema_id == 2
    assert fallback.session.schema is Schema.ISO2
    lab = Ev(cfg=config(tls13=False, iso20_allow_tcp=True))
    assert lab.handshake((ISO20_DC_NAMESPACE,)).schema_id == 1
    assert lab.session.schema is Schema.ISO20_COMMON


def test_the_evs_priority_picks_among_what_the_station_offers() -> None:
    ev = Ev()
    res = ev.handshake((DIN_NAMESPACE, ISO20_DC_NAMESPACE, ISO2_NAMESPACE))
    assert res.schema_id == 1 and ev.session.schema is Schema.DIN
    ev = Ev()
    res = ev.handshake((ISO20_AC_NAMESPACE, ISO20_DC_NAMESPACE))
    assert res.schema_id == 1 and not ev.session.context.is_dc
    # a DC-only station skips the AC namespace
    ev = Ev(cfg=config(energy_modes=("DC_extended",)))
    res = ev.handshake((ISO20_AC_NAMESPACE, ISO20_DC_NAMESPACE))
    assert res.schema_id == 2 and ev.session.context.is_dc
    # a station without -20 in its protocols never selects it
    ev = Ev(cfg=config(protocols=(ISO2_NAMESPACE,)))
    assert ev.handshake((ISO20_DC_NAMESPACE,)).response_code.value == "Failed_NoNegotiation"


def test_iso20_message_before_negotiation_closes() -> None:
    ev = Ev()
    assert ev.session_setup() is None
    assert_safe_end(ev, EndReason.SEQUENCE_ERROR)


def test_iso2_message_after_iso20_negotiation_closes() -> None:
    ev = Ev()
    ev.handshake()
    iso2 = codec.schema_module("iso2")
    msg = iso2.V2G_Message(
        header=iso2.MessageHeader(session_id=bytes(1)),
        body=iso2.Body(body_element=iso2.SessionSetupReq(evccid=bytes(6))),
    )
    assert ev.send_raw(msg, Schema.ISO2) is None
    assert_safe_end(ev, EndReason.SEQUENCE_ERROR)


def test_a_second_handshake_after_iso20_fails_negotiation() -> None:
    ev = Ev()
    to_authorized(ev)
    res = ev.handshake()
    assert res.response_code.value == "Failed_NoNegotiation"
    assert_safe_end(ev, EndReason.SEQUENCE_ERROR)


def test_a_message_of_the_other_family_is_refused() -> None:
    """An AC request in a DC session (and a DC one in an AC payload) is a sequence error."""
    ev = Ev(dc=True)
    to_authorized(ev)
    ev.service_discovery()
    ev.service_selection(2, 1)
    ac = codec.schema_module("iso20-ac")
    req = ac.AC_ChargeParameterDiscoveryReq(
        header=ev.hdr(ac),
        ac_cpd_req_energy_transfer_mode=ac.AC_CPDReqEnergyTransferMode(
            ev_maximum_charge_power=ac.RationalNumber(exponent=3, value=11),
            ev_minimum_charge_power=ac.RationalNumber(exponent=3, value=1),
        ),
    )
    res = ev.send(req)
    assert type(res).__name__ == "AC_ChargeParameterDiscoveryRes"
    assert res.response_code.value == "FAILED_SequenceError"
    assert_safe_end(ev, EndReason.SEQUENCE_ERROR)
    # a DC request that arrived in an AC payload: refused, no DC answer in an AC frame
    ev = Ev(dc=True)
    to_authorized(ev)
    ev.service_discovery()
    ev.service_selection(2, 1)
    req = D.DC_ChargeParameterDiscoveryReq(
        header=ev.hdr(D),
        dc_cpd_req_energy_transfer_mode=D.DC_CPDReqEnergyTransferMode(
            **{
                f: D.RationalNumber(exponent=0, value=100)
                for f in (
                    "ev_maximum_charge_power",
                    "ev_minimum_charge_power",
                    "ev_maximum_charge_current",
                    "ev_minimum_charge_current",
                    "ev_maximum_voltage",
                    "ev_minimum_voltage",
                )
            }
        ),
    )
    ev.feed(RequestReceived(req, Schema.ISO20_AC))
    assert not any(isinstance(a, SendResponse) for a in ev.last)
    assert_safe_end(ev, EndReason.SEQUENCE_ERROR)


def test_unknown_session_id() -> None:
    ev = Ev(dc=False)
    to_authorized(ev)
    ev.session_id = bytes(range(1, 9))
    res = ev.service_discovery()
    assert res.response_code.value == "FAILED_UnknownSession"
    assert_safe_end(ev, EndReason.FAILED_RESPONSE)


def test_dc_standby_right_after_pre_charge() -> None:
    """The EV may park in standby once pre-charged: the contactors stay open, the
    pre-charge output holds the voltage, and the Start closes them then."""
    ev = Ev(dc=True)
    to_authorized(ev)
    to_scheduled(ev, dynamic=True)
    to_precharged(ev)
    res = ev.power_delivery("Standby")
    assert res.response_code.value == "OK" and kinds(ev.last) == [SendResponse]
    assert ev.session.state is Iso20State.STANDBY
    assert loop(ev, True).response_code.value == "OK"
    assert not any(isinstance(a, SetDcTarget) for a in ev.last)
    res = start(ev, True)
    assert res.response_code.value == "OK"
    assert kinds(ev.last) == [CloseContactors, ChargingStateChanged, SendResponse]
    loop(ev, True)
    assert isinstance(ev.last[0], SetDcTarget) and ev.last[0].current > 2.0


def test_schedule_renegotiation_out_of_standby() -> None:
    ev = Ev(dc=False)
    to_loop(ev, dynamic=False)
    ev.power_delivery("Standby")
    assert ev.power_delivery("ScheduleRenegotiation").response_code.value == "OK"
    assert ev.schedule_exchange(dynamic=False).evse_processing.value == "Finished"
    assert ev.session.state is Iso20State.RESCHEDULED
    res = ev.power_delivery("Start", 1, 10_000)
    assert res.response_code.value == "OK"
    assert kinds(ev.last) == [ChargingStateChanged, SendResponse]  # closed all along
