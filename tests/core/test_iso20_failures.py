"""Every -20 refusal: its ResponseCode, a response the codec encodes (the peer encodes
and decodes every answer), and for FAILED_* the end of the session with the contactors
open before the answer.  WARNING_* answers keep the session (the EV decides), with only
the transitions the standard leaves open.  Timers end the session safely too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from secc.core.actions import (
    CloseConnection,
    CloseContactors,
    EndReason,
    OpenContactors,
    SendResponse,
    SessionEnded,
    StopDcOutput,
)
from secc.core.config import Timers
from secc.core.context import State
from secc.core.events import AuthorizationResult, EvseStatus, TimerExpired
from secc.core.iso20 import Iso20State
from tests.core.iso20_peer import (
    A,
    C,
    D,
    Ev,
    config,
    loop,
    rn,
    start,
    to_authorized,
    to_loop,
    to_precharged,
    to_scheduled,
)


def kinds(actions: list[Any]) -> list[type]:
    return [type(a) for a in actions]


def assert_failed_end(ev: Ev, reason: EndReason = EndReason.FAILED_RESPONSE) -> None:
    k = kinds(ev.last)
    assert k.index(OpenContactors) < k.index(SendResponse) < k.index(CloseConnection)
    assert k.index(CloseConnection) < k.index(SessionEnded)
    assert ev.last[-1] == SessionEnded(reason, ev.last[-1].detail)
    assert ev.session.state is State.ENDED and ev.session.deadline is None
    assert ev.session.context.contactors_closed is False


def dc_selected(ev: Ev) -> None:
    to_authorized(ev)
    ev.service_discovery()
    ev.service_selection(2, 1)


def wrong_voltage(ev: Ev) -> Any:
    dc_selected(ev)
    mode = D.DC_CPDReqEnergyTransferMode(
        ev_maximum_charge_power=rn(D, 100_000, 1),
        ev_minimum_charge_power=rn(D, 0),
        ev_maximum_charge_current=rn(D, 200),
        ev_minimum_charge_current=rn(D, 0),
        ev_maximum_voltage=rn(D, 1000, 1),
        ev_minimum_voltage=rn(D, 900, 1),
    )
    return ev.send(
        D.DC_ChargeParameterDiscoveryReq(header=ev.hdr(D), dc_cpd_req_energy_transfer_mode=mode)
    )


def bpt_parameters(ev: Ev) -> Any:
    dc_selected(ev)
    r = rn(D, 100)
    mode = D.BPT_DC_CPDReqEnergyTransferMode(
        **dict.fromkeys(
            (
                "ev_maximum_charge_power",
                "ev_minimum_charge_power",
                "ev_maximum_charge_current",
                "ev_minimum_charge_current",
                "ev_maximum_voltage",
                "ev_minimum_voltage",
                "ev_maximum_discharge_power",
                "ev_minimum_discharge_power",
                "ev_maximum_discharge_current",
                "ev_minimum_discharge_current",
            ),
            r,
        )
    )
    return ev.send(
        D.DC_ChargeParameterDiscoveryReq(header=ev.hdr(D), dc_cpd_req_energy_transfer_mode=mode)
    )


def wrong_schedule_mode(ev: Ev) -> Any:
    dc_selected(ev)  # parameter set 1: scheduled
    ev.charge_parameters()
    return ev.schedule_exchange(dynamic=True)


def scheduled_then(ev: Ev) -> None:
    to_authorized(ev)
    to_scheduled(ev, dynamic=False)
    to_precharged(ev)


def unknown_tuple(ev: Ev) -> Any:
    scheduled_then(ev)
    return ev.power_delivery("Start", schedule_id=7)


def profile_above_schedule(ev: Ev) -> Any:
    scheduled_then(ev)
    return ev.power_delivery("Start", schedule_id=1, profile_watts=90_000)


def dynamic_profile_in_scheduled_mode(ev: Ev) -> Any:
    scheduled_then(ev)
    return ev.power_delivery("Start", schedule_id=None, profile_watts=10_000)


def precharge_not_reached(ev: Ev) -> Any:
    scheduled_then(ev)
    ev.evse(isolation="Valid", present_voltage=200.0)
    return ev.power_delivery("Start", schedule_id=1)


def isolation_lost(ev: Ev) -> Any:
    scheduled_then(ev)
    ev.evse(isolation="Invalid", present_voltage=395.0)
    return ev.power_delivery("Start", schedule_id=1)


def not_authorized_start(ev: Ev) -> Any:
    """Authorization withdrawn after it was given: the Start is refused."""
    ev2 = ev
    to_authorized(ev2)
    to_scheduled(ev2, dynamic=False)
    to_precharged(ev2)
    ev2.feed(AuthorizationResult(accepted=False, id_token="TAG1", reason="blocked"))
    return ev2.power_delivery("Start", schedule_id=1)


def loop_of_the_other_mode(ev: Ev) -> Any:
    to_loop(ev, dynamic=False)
    return ev.dc_loop(dynamic=True)


def loop_target_above_limits(ev: Ev) -> Any:
    to_loop(ev, dynamic=False)
    return ev.dc_loop(dynamic=False, voltage=480)  # above the EV's own 450 V maximum


def contactor_feedback_missing(ev: Ev) -> Any:
    to_loop(ev, dynamic=False)
    ev.evse(isolation="Valid", present_voltage=395.0, contactors_closed=False)
    ev.clock.advance(Timers().contactor_feedback + 0.5)
    return loop(ev, False)


def isolation_fault_in_cable_check(ev: Ev) -> Any:
    to_authorized(ev)
    to_scheduled(ev, dynamic=False)
    ev.cable_check()
    ev.evse(isolation="Fault")
    return ev.cable_check()


def detail_unknown_service(ev: Ev) -> Any:
    to_authorized(ev)
    ev.service_discovery()
    return ev.service_detail(1)  # AC in a DC session


def select_unknown_parameter_set(ev: Ev) -> Any:
    to_authorized(ev)
    ev.service_discovery()
    return ev.service_selection(2, 9)


def select_other_energy_service(ev: Ev) -> Any:
    to_authorized(ev)
    ev.service_discovery()
    return ev.service_selection(1, 1)


def select_no_energy_service(ev: Ev) -> Any:
    to_authorized(ev)
    ev.service_discovery()
    return ev.service_selection(65, 1)


def select_a_vas(ev: Ev) -> Any:
    to_authorized(ev)
    ev.service_discovery()
    return ev.send(
        C.ServiceSelectionReq(
            header=ev.hdr(C),
            selected_energy_transfer_service=C.SelectedService(service_id=2, parameter_set_id=1),
            selected_vas_list=C.SelectedServiceList(
                selected_service=(C.SelectedService(service_id=65, parameter_set_id=1),)
            ),
        )
    )


def unknown_session(ev: Ev) -> Any:
    to_authorized(ev)
    ev.session_id = bytes(range(1, 9))
    return ev.service_discovery()


def pause_in_dynamic_mode(ev: Ev) -> Any:
    to_loop(ev, dynamic=True)
    ev.power_delivery("Stop")
    return ev.session_stop("Pause")


def out_of_order(ev: Ev) -> Any:
    to_authorized(ev)
    return ev.charge_parameters()


FAILED: dict[str, tuple[Callable[[Ev], Any], str]] = {
    "wrong_voltage": (wrong_voltage, "FAILED_WrongChargeParameter"),
    "bpt_parameters": (bpt_parameters, "FAILED_WrongChargeParameter"),
    "wrong_schedule_mode": (wrong_schedule_mode, "FAILED"),
    "unknown_tuple": (unknown_tuple, "FAILED_ScheduleSelectionInvalid"),
    "profile_above_schedule": (profile_above_schedule, "FAILED_EVPowerProfileViolation"),
    "dynamic_profile": (dynamic_profile_in_scheduled_mode, "FAILED_EVPowerProfileInvalid"),
    "precharge_not_reached": (precharge_not_reached, "FAILED_PowerDeliveryNotApplied"),
    "isolation_lost": (isolation_lost, "FAILED_PowerDeliveryNotApplied"),
    "not_authorized": (not_authorized_start, "FAILED_PowerDeliveryNotApplied"),
    "loop_other_mode": (loop_of_the_other_mode, "FAILED_ServiceSelectionInvalid"),
    "loop_target": (loop_target_above_limits, "FAILED_WrongChargeParameter"),
    "contactor": (contactor_feedback_missing, "FAILED_ContactorError"),
    "isolation_fault": (isolation_fault_in_cable_check, "FAILED"),
    "detail_unknown": (detail_unknown_service, "FAILED_ServiceIDInvalid"),
    "select_parameter_set": (select_unknown_parameter_set, "FAILED_ServiceSelectionInvalid"),
    "select_other_service": (select_other_energy_service, "FAILED_ServiceSelectionInvalid"),
    "select_no_energy": (select_no_energy_service, "FAILED_NoEnergyTransferServiceSelected"),
    "select_vas": (select_a_vas, "FAILED_ServiceSelectionInvalid"),
    "unknown_session": (unknown_session, "FAILED_UnknownSession"),
    "out_of_order": (out_of_order, "FAILED_SequenceError"),
    "pause_dynamic": (pause_in_dynamic_mode, "FAILED_PauseNotAllowed"),
}


@pytest.mark.parametrize("case", list(FAILED))
def test_failed_answers_end_the_session_safely(case: str) -> None:
    path, code = FAILED[case]
    ev = Ev(dc=True)
    res = path(ev)
    assert res is not None and res.response_code.value == code
    reason = (
        EndReason.SEQUENCE_ERROR if code == "FAILED_SequenceError" else EndReason.FAILED_RESPONSE
    )
    assert_failed_end(ev, reason)
    if ev.session.context.isolation_requested or CloseContactors in kinds(ev.actions):
        assert StopDcOutput in kinds(ev.last)


def test_ac_failures_through_the_ac_schema() -> None:
    ev = Ev(dc=False)
    to_authorized(ev)
    ev.service_discovery()
    ev.service_selection(1, 2)
    mode = A.AC_CPDReqEnergyTransferMode(
        ev_maximum_charge_power=rn(A, 0), ev_minimum_charge_power=rn(A, 1000)
    )
    res = ev.send(
        A.AC_ChargeParameterDiscoveryReq(header=ev.hdr(A), ac_cpd_req_energy_transfer_mode=mode)
    )
    assert type(res).__name__ == "AC_ChargeParameterDiscoveryRes"
    assert res.response_code.value == "FAILED_WrongChargeParameter"
    assert_failed_end(ev)
    ev = Ev(dc=False)
    to_loop(ev, dynamic=True)
    res = ev.ac_loop(dynamic=False)
    assert type(res).__name__ == "AC_ChargeLoopRes"
    assert res.response_code.value == "FAILED_ServiceSelectionInvalid"
    assert_failed_end(ev)


# --- warnings: the session goes on, within limits -------------------------------------------


def test_pnc_is_refused_with_authorization_selection_invalid() -> None:
    ev = Ev(dc=True)
    ev.handshake()
    ev.session_setup()
    res = ev.authorization_setup()
    assert res.authorization_services == (C.Authorization.EIM,)
    assert res.certificate_installation_service is False
    assert res.pn_c_as_res_authorization_mode is None
    res = ev.authorization(pnc=True)
    assert res.response_code.value == "WARNING_AuthorizationSelectionInvalid"
    assert res.evse_processing.value == "Finished"
    assert ev.session.state is Iso20State.AUTHORIZATION_RESELECT
    ev.feed(AuthorizationResult(accepted=True, id_token="TAG1"))
    assert ev.authorization().response_code.value == "OK"  # EIM after all
    # the same invalid selection twice: the EV is stuck, the station closes
    stuck = Ev(dc=False)
    stuck.handshake()
    stuck.session_setup()
    stuck.authorization_setup()
    stuck.authorization(pnc=True)
    res = stuck.authorization(pnc=True)
    assert res.response_code.value == "FAILED_SequenceError"
    assert_failed_end(stuck, EndReason.SEQUENCE_ERROR)


def test_eim_refused_is_a_warning_then_only_session_stop() -> None:
    ev = Ev(dc=False)
    ev.handshake()
    ev.session_setup()
    ev.authorization_setup()
    res = ev.authorization()
    assert res.evse_processing.value == "Ongoing_WaitingForCustomerInteraction"
    assert ev.last[0].kind == "ExternalPayment"  # RequestAuthorization, once
    ev.feed(AuthorizationResult(accepted=False, id_token="TAG9", reason="unknown tag"))
    res = ev.authorization()
    assert (res.response_code.value, res.evse_processing.value) == (
        "WARNING_EIMAuthorizationFailure",
        "Finished",
    )
    assert ev.session.state is Iso20State.AUTHORIZATION_REFUSED
    stop = Ev(dc=False)
    stop.handshake()
    stop.session_setup()
    stop.authorization_setup()
    stop.feed(AuthorizationResult(accepted=False, id_token="TAG9"))
    stop.authorization()
    assert stop.session_stop().response_code.value == "OK"
    # anything but SessionStop now is a sequence error
    res = ev.service_discovery()
    assert res.response_code.value == "FAILED_SequenceError"
    assert_failed_end(ev, EndReason.SEQUENCE_ERROR)


def test_renegotiation_after_a_refusal_is_a_sequence_error() -> None:
    ev = Ev(dc=False)
    ev.handshake()
    ev.session_setup()
    ev.authorization_setup()
    ev.feed(AuthorizationResult(accepted=False, id_token="TAG9"))
    ev.authorization()
    res = ev.session_stop("ServiceRenegotiation")
    assert res.response_code.value == "FAILED_SequenceError"
    assert_failed_end(ev, EndReason.SEQUENCE_ERROR)


# --- timers ------------------------------------------------------------------------------


def test_sequence_timeout_in_the_loop_opens_everything() -> None:
    ev = Ev(dc=True)
    to_loop(ev, dynamic=False)
    loop(ev, False)
    # after a charge-loop response the EV has 0.5 s, not the 60 s of other messages
    assert ev.session.deadline == ev.clock.now + Timers().charge_loop_sequence_timeout
    ev.clock.advance(0.4)
    assert loop(ev, False).response_code.value == "OK"
    ev.clock.advance_to(ev.session.deadline)
    ev.feed(TimerExpired("V2G_SECC_Sequence_Timeout"))
    k = kinds(ev.last)
    assert k == [StopDcOutput, OpenContactors, type(ev.last[2]), CloseConnection, SessionEnded]
    assert ev.last[-1].reason is EndReason.SEQUENCE_TIMEOUT


def test_sequence_timeout_after_other_responses_is_the_baseline() -> None:
    ev = Ev(dc=False)
    to_loop(ev, dynamic=True)  # the last response: PowerDeliveryRes
    assert ev.session.deadline == ev.clock.now + Timers().sequence_timeout
    ev.power_delivery("Standby")
    loop(ev, True)  # a loop response in standby: still the charge-loop limit
    assert ev.session.deadline == ev.clock.now + Timers().charge_loop_sequence_timeout
    ev.clock.advance(0.6)
    ev.feed(TimerExpired("V2G_SECC_Sequence_Timeout"))
    assert ev.last[-1].reason is EndReason.SEQUENCE_TIMEOUT


def test_communication_setup_limit_before_session_setup() -> None:
    ev = Ev(dc=False)
    ev.handshake()
    assert ev.session.deadline is not None
    ev.clock.advance(Timers().communication_setup + 0.1)
    ev.feed(EvseStatus())
    assert ev.last[-1].reason is EndReason.TIMEOUT
    assert OpenContactors in kinds(ev.last)


def test_cable_check_limit() -> None:
    ev = Ev(dc=True)
    to_authorized(ev)
    to_scheduled(ev, dynamic=False)
    ev.evse(isolation="Invalid")
    ev.cable_check()
    ev.clock.advance(Timers().cable_check - 1)
    assert ev.cable_check().evse_processing.value == "Ongoing"
    ev.clock.advance(2)
    res = ev.cable_check()
    assert res.response_code.value == "FAILED"
    assert_failed_end(ev, EndReason.TIMEOUT)
    assert StopDcOutput in kinds(ev.last)


def test_pre_charge_limit() -> None:
    ev = Ev(dc=True)
    to_authorized(ev)
    to_scheduled(ev, dynamic=False)
    ev.evse(isolation="Valid")
    ev.cable_check()
    ev.pre_charge(395)
    ev.clock.advance(Timers().pre_charge + 0.5)
    res = ev.pre_charge(395)
    assert res.response_code.value == "FAILED"
    assert_failed_end(ev, EndReason.TIMEOUT)
    assert StopDcOutput in kinds(ev.last)


def test_authorization_ongoing_limit() -> None:
    ev = Ev(dc=False)
    ev.handshake()
    ev.session_setup()
    ev.authorization_setup()
    ev.authorization()
    ev.clock.advance(Timers().ongoing - 1)
    assert ev.authorization().evse_processing.value.startswith("Ongoing")
    ev.clock.advance(2)
    res = ev.authorization()
    assert res.response_code.value == "FAILED"
    assert_failed_end(ev, EndReason.TIMEOUT)


def test_schedule_waits_for_the_csms_then_uses_the_limits() -> None:
    ev = Ev(cfg=config(schedule_wait=5.0), dc=False)
    to_authorized(ev)
    ev.service_discovery()
    ev.service_selection(1, 1)
    ev.charge_parameters()
    assert ev.schedule_exchange(False).evse_processing.value == "Ongoing"
    assert ev.session.state is Iso20State.SCHEDULE_ONGOING
    ev.clock.advance(5.5)
    res = ev.schedule_exchange(False)
    assert res.evse_processing.value == "Finished"
    assert start(ev, dynamic=False).response_code.value == "OK"
