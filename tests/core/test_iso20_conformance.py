"""ISO 15118-20 conformance of the station, rule by rule: each test is written from one
requirement of the standard (its ID where known) as an independent EV would meet it,
through the real codec (tests/core/iso20_peer.py)."""

from __future__ import annotations

from typing import Any

import pytest

from secc import codec
from secc.core.actions import (
    CloseConnection,
    CloseContactors,
    EndReason,
    OpenContactors,
    SendResponse,
    SetDcTarget,
    StopDcOutput,
)
from secc.core.config import PncTrust
from secc.core.events import AuthorizationResult, CertificateResult, StopRequested, TimerExpired
from secc.core.iso20.common import Iso20State

from .iso20_peer import (
    START,
    A,
    C,
    Ev,
    config,
    loop,
    num,
    rn,
    start,
    to_authorized,
    to_loop,
    to_precharged,
    to_scheduled,
)
from .iso20_pki import EMAID, make_chain, pnc_mode, signed_header


def _pause(ev: Ev) -> Any:
    """Charge, stop, pause: the PausedSession the runtime keeps."""
    to_loop(ev, dynamic=False)
    ev.power_delivery("Stop")
    if ev.dc:
        ev.welding()
    assert ev.session_stop("Pause").response_code.value == "OK"
    assert ev.session.end_reason is EndReason.EV_PAUSE
    paused = ev.session.paused
    assert paused is not None
    return paused


def _resume(paused: Any, evccid: str, **cfg: Any) -> tuple[Ev, Any]:
    """A new connection whose SessionSetupReq presents the paused SessionID."""
    again = Ev(cfg=config(**cfg), dc=True, resume=paused)
    again.handshake()
    again.session_id = paused.session_id
    return again, again.send(C.SessionSetupReq(header=again.hdr(C), evccid=evccid))


# --- SessionSetup: resuming a paused session ----------------------------------------------


def test_resume_from_another_evccid_is_a_new_session() -> None:
    """[V2G20-2545]: the SECC joins a paused session only for the EV that paused it; a
    SessionSetupReq with that SessionID from another EVCC gets a new session
    (OK_NewSessionEstablished, a new SessionID, [V2G20-2626] [V2G20-2627]) and must
    authorize again, not inherit the first EV's authorization."""
    paused = _pause(Ev(dc=True))
    same, res = _resume(paused, "WMIV1234567890ABCDEF")  # the EVCCID the peer pauses with
    assert res.response_code.value == "OK_OldSessionJoined"
    assert same.session.state is Iso20State.SERVICE_SELECTED
    other, res = _resume(paused, "WMIV0000000000OTHER")
    assert res.response_code.value == "OK_NewSessionEstablished"
    assert bytes(res.header.session_id) not in (paused.session_id, bytes(8))
    assert other.session.state is Iso20State.SESSION_SETUP
    assert not other.session.context.authorized


def test_resume_with_another_vehicle_certificate_is_a_new_session() -> None:
    """[V2G20-2545]: with mutual TLS the vehicle certificate identifies the EV (the
    standard's own example binds the SessionID to the vehicle's leaf certificate): the
    same SessionID and EVCCID over a connection with another vehicle certificate (or none)
    is a new session; the same certificate joins."""
    vehicle = make_chain("WMIV1234567890ABCDEF", START, root_cn="OEM Root", leaf_usage="tls")
    thief = make_chain("WMIV1234567890ABCDEF", START, root_cn="OEM Root", leaf_usage="tls")
    first = Ev(cfg=config(vehicle_chain=(vehicle.leaf, *vehicle.subs)), dc=True)
    paused = _pause(first)
    chain = (vehicle.leaf, *vehicle.subs)
    _, res = _resume(paused, "WMIV1234567890ABCDEF", vehicle_chain=chain)
    assert res.response_code.value == "OK_OldSessionJoined"
    other_chain = (thief.leaf, *thief.subs)
    _, res = _resume(paused, "WMIV1234567890ABCDEF", vehicle_chain=other_chain)
    assert res.response_code.value == "OK_NewSessionEstablished"
    _, res = _resume(paused, "WMIV1234567890ABCDEF")  # plain TCP / no client certificate
    assert res.response_code.value == "OK_NewSessionEstablished"


@pytest.mark.parametrize("dc", [False, True], ids=["AC", "DC"])
def test_resumed_session_starts_at_charge_parameter_discovery(dc: bool) -> None:
    """[V2G20-1032] with [V2G20-2097] (AC) / [V2G20-2098] (DC): after OK_OldSessionJoined
    the EV goes on with its ChargeParameterDiscoveryReq (no authorization, no service
    discovery) and the station answers it OK."""
    ev = Ev(dc=dc)
    to_loop(ev, dynamic=False)
    ev.power_delivery("Stop")
    if dc:
        ev.welding()
    ev.session_stop("Pause")
    paused = ev.session.paused
    again = Ev(dc=dc, resume=paused)
    again.handshake()
    again.session_id = paused.session_id
    assert again.session_setup().response_code.value == "OK_OldSessionJoined"
    assert again.charge_parameters().response_code.value == "OK"


# --- the charge loop: the station ends the session ----------------------------------------


@pytest.mark.parametrize("dc", [False, True], ids=["AC", "DC"])
def test_dynamic_terminate_comes_with_the_power_decreasing(dc: bool) -> None:
    """[V2G20-1959]: in dynamic control mode the station that wants to stop sets
    EVSENotification=Terminate and decreases the power at the same time (the EV follows the
    station's limits in this mode; [V2G20-1698] the notification alone is not enough).
    AC: EVSETargetActivePower 0; DC: EVSEMaximumChargePower 0 and the power module's
    target current 0."""
    ev = Ev(dc=dc)
    to_loop(ev, dynamic=True)
    res = loop(ev, dynamic=True)
    assert res.evse_status is None
    ev.feed(StopRequested(reason="remote stop"))
    res = loop(ev, dynamic=True)
    assert res.response_code.value == "OK"
    assert res.evse_status.evse_notification.value == "Terminate"
    if dc:
        assert num(res.cl_res_control_mode.evse_maximum_charge_power) == 0.0
        targets = [a for a in ev.last if isinstance(a, SetDcTarget)]
        assert targets and all(t.current == 0.0 for t in targets)
    else:
        assert num(res.cl_res_control_mode.evse_target_active_power) == 0.0


# --- PowerDelivery ------------------------------------------------------------------------


def _power_delivery(ev: Ev, progress: str, processing: str) -> Any:
    return ev.send(
        C.PowerDeliveryReq(
            header=ev.hdr(C),
            ev_processing=C.Processing(processing),
            charge_progress=C.ChargeProgress(progress),
        )
    )


@pytest.mark.parametrize("dc", [False, True], ids=["AC", "DC"])
def test_power_delivery_ongoing_is_ignored_whatever_its_charge_progress(dc: bool) -> None:
    """[V2G20-2007]: a PowerDeliveryReq with EVProcessing=Ongoing is answered OK with the
    rest of its content ignored, and the next request is PowerDeliveryReq again: an EV
    that announces its Stop with Ongoing before Finished keeps its power until the
    Finished one, and that one is not a sequence error."""
    ev = Ev(dc=dc)
    to_loop(ev, dynamic=False)
    res = _power_delivery(ev, "Stop", "Ongoing")
    assert res.response_code.value == "OK"
    assert not any(isinstance(a, (OpenContactors, StopDcOutput)) for a in ev.last)
    assert ev.session.state is Iso20State.CHARGE_LOOP
    res = _power_delivery(ev, "Stop", "Finished")
    assert res.response_code.value == "OK"
    assert any(isinstance(a, OpenContactors) for a in ev.last)
    if dc:
        assert ev.welding().response_code.value == "OK"
    assert ev.session_stop().response_code.value == "OK"
    assert ev.session.end_reason is EndReason.EV_STOP


# --- Authorization ------------------------------------------------------------------------


def _pnc_authorized(leaf_days: int) -> Any:
    """A PnC authorization with a contract certificate valid ``leaf_days`` from now,
    accepted by the back end: the final AuthorizationRes."""
    contract = make_chain(EMAID, START, leaf_days=leaf_days)
    vehicle = make_chain("WMIV1234567890ABCDEF", START, root_cn="OEM Root", leaf_usage="tls")
    trust = PncTrust(roots=(contract.root,), oem_roots=(vehicle.root,))
    ev = Ev(cfg=config(vehicle_chain=(vehicle.leaf, *vehicle.subs), trust=trust))
    assert ev.handshake().response_code.value == "OK_SuccessfulNegotiation"
    assert ev.session_setup().response_code.value == "OK_NewSessionEstablished"
    setup = ev.authorization_setup()
    challenge = bytes(setup.pn_c_as_res_authorization_mode.gen_challenge)
    assert len(challenge) == 16

    def request() -> Any:
        mode = pnc_mode(challenge, contract)
        return C.AuthorizationReq(
            header=signed_header(ev.hdr(C), mode, contract.key),
            selected_authorization_service=C.Authorization.PnC,
            pn_c_a_req_authorization_mode=mode,
        )

    assert ev.send(request()).evse_processing.value == "Ongoing"
    ev.feed(AuthorizationResult(accepted=True, id_token=EMAID, certificate_status="Accepted"))
    res = ev.send(request())
    assert res.evse_processing.value == "Finished"
    assert ev.session.state is Iso20State.AUTHORIZED
    return res


def test_pnc_contract_expiring_within_14_days_is_ok_certificate_expires_soon() -> None:
    """[V2G20-1979]: a successful PnC authorization is answered OK when the contract
    certificate expires in more than 14 days; one that expires sooner is answered
    OK_CertificateExpiresSoon (still authorized), so that the EV can renew it."""
    assert _pnc_authorized(leaf_days=365).response_code.value == "OK"
    assert _pnc_authorized(leaf_days=10).response_code.value == "OK_CertificateExpiresSoon"


# --- CertificateInstallation --------------------------------------------------------------


@pytest.mark.parametrize("how", ["budget-ran-out", "back-end-failed"])
def test_no_certificate_in_time_is_a_warning_and_the_session_goes_on(how: str) -> None:
    """[V2G20-2225] with [V2G20-2207]: when the new contract certificate cannot be had
    from the back end within the budget, the station answers CertificateInstallationRes
    with WARNING_NoCertificateAvailable and EVSEProcessing=Finished, and the next request
    is AuthorizationReq (not the end of the session): the EV may still charge with EIM."""
    contract = make_chain(EMAID, START)
    vehicle = make_chain("WMIV1234567890ABCDEF", START, root_cn="OEM Root", leaf_usage="tls")
    oem = make_chain("WMIV1234567890ABCDEF", START, root_cn="OEM Prov Root")
    trust = PncTrust(roots=(contract.root,), oem_roots=(vehicle.root, oem.root))
    ev = Ev(cfg=config(vehicle_chain=(vehicle.leaf, *vehicle.subs), trust=trust))
    assert ev.handshake().response_code.value == "OK_SuccessfulNegotiation"
    assert ev.session_setup().response_code.value == "OK_NewSessionEstablished"
    assert ev.authorization_setup().certificate_installation_service is True
    signed = C.SignedCertificateChain(
        id="OEM1",
        certificate=oem.ders[0],
        sub_certificates=C.SubCertificates(certificate=oem.ders[1:]),
    )
    req = C.CertificateInstallationReq(
        header=signed_header(ev.hdr(C), signed, oem.key),
        oem_provisioning_certificate_chain=signed,
        list_of_root_certificate_i_ds=C.ListOfRootCertificateIDs(
            root_certificate_id=(
                C.X509IssuerSerial(
                    x509_issuer_name=contract.root.subject.rfc4514_string(),
                    x509_serial_number=contract.root.serial_number,
                ),
            )
        ),
        maximum_contract_certificate_chains=1,
    )
    assert ev.send(req) is None  # the answer waits for the back end
    if how == "budget-ran-out":
        deadline = ev.session.deadline
        assert deadline is not None
        ev.clock.advance_to(deadline)
        out = ev.feed(TimerExpired("deadline"))
    else:
        out = ev.feed(CertificateResult(exi_response=None, reason="CSMS said Failed"))
    sent = [a for a in out if isinstance(a, SendResponse)]
    assert len(sent) == 1 and sent[0].name == "CertificateInstallationRes"
    res = codec.decode(codec.encode(sent[0].message), "iso20-common")
    assert res.response_code.value == "WARNING_NoCertificateAvailable"
    assert res.evse_processing.value == "Finished"
    assert not any(isinstance(a, CloseConnection) for a in out)
    ev.feed(AuthorizationResult(accepted=True, id_token="TAG1"))
    res = ev.authorization()  # EIM
    assert (res.response_code.value, res.evse_processing.value) == ("OK", "Finished")


@pytest.mark.parametrize("dc", [False, True], ids=["AC", "DC"])
def test_power_tolerance_confirmed_is_answered_ok_power_tolerance_confirmed(dc: bool) -> None:
    """[V2G20-1944]: a PowerDeliveryReq whose EVPowerProfile carries
    PowerToleranceAcceptance=PowerToleranceConfirmed is answered
    OK_PowerToleranceConfirmed (and charging starts); without the element it stays OK."""
    ev = Ev(dc=dc)
    to_authorized(ev)
    to_scheduled(ev, dynamic=False)
    if dc:
        to_precharged(ev)
    profile = C.EVPowerProfile(
        time_anchor=0,
        scheduled_evppt_control_mode=C.Scheduled_EVPPTControlMode(
            selected_schedule_tuple_id=1,
            power_tolerance_acceptance=C.PowerToleranceAcceptance.PowerToleranceConfirmed,
        ),
        ev_power_profile_entries=C.EVPowerProfileEntryList(
            ev_power_profile_entry=(C.PowerScheduleEntry(duration=3600, power=rn(C, 10_000)),)
        ),
    )
    res = ev.send(
        C.PowerDeliveryReq(
            header=ev.hdr(C),
            ev_processing=C.Processing.Finished,
            charge_progress=C.ChargeProgress.Start,
            ev_power_profile=profile,
        )
    )
    assert res.response_code.value == "OK_PowerToleranceConfirmed"
    assert ev.session.state is Iso20State.CHARGE_LOOP
    assert any(isinstance(a, CloseContactors) for a in ev.last)
    other = Ev(dc=dc)
    to_loop(other, dynamic=False)  # a profile without PowerToleranceAcceptance
    assert other.session.state is Iso20State.CHARGE_LOOP


# --- AC: per-phase values -----------------------------------------------------------------


def test_ac_ev_powers_with_l2_l3_are_per_phase() -> None:
    """[V2G20-1818] [V2G20-1819]: where the EV sends the _L2/_L3 elements, its base
    EVMaximumChargePower is phase L1's alone; the EV's power is the sum over the phases.
    A three-phase EV announcing 3.68 kW per phase takes 11.04 kW in dynamic mode, not
    3.68 kW (the station's 22 kW is not the limit here)."""
    ev = Ev(dc=False)
    to_authorized(ev)
    assert ev.service_discovery().response_code.value == "OK"
    assert ev.service_selection(1, 2).response_code.value == "OK"  # AC, dynamic
    phase = rn(A, 3680)
    res = ev.send(
        A.AC_ChargeParameterDiscoveryReq(
            header=ev.hdr(A),
            ac_cpd_req_energy_transfer_mode=A.AC_CPDReqEnergyTransferMode(
                ev_maximum_charge_power=phase,
                ev_maximum_charge_power_l2=phase,
                ev_maximum_charge_power_l3=phase,
                ev_minimum_charge_power=rn(A, 1380),
                ev_minimum_charge_power_l2=rn(A, 1380),
                ev_minimum_charge_power_l3=rn(A, 1380),
            ),
        )
    )
    assert res.response_code.value == "OK"
    assert ev.session.context.ev_max_power == pytest.approx(11_040)
    assert ev.schedule_exchange(dynamic=True).evse_processing.value == "Finished"
    assert start(ev, dynamic=True).response_code.value == "OK"
    mode = A.Dynamic_AC_CLReqControlMode(
        ev_target_energy_request=rn(A, 40_000, 1),
        ev_maximum_energy_request=rn(A, 60_000, 1),
        ev_minimum_energy_request=rn(A, 5_000, 1),
        ev_maximum_charge_power=phase,
        ev_maximum_charge_power_l2=phase,
        ev_maximum_charge_power_l3=phase,
        ev_minimum_charge_power=rn(A, 1380),
        ev_present_active_power=rn(A, 0),
        ev_present_reactive_power=rn(A, 0),
    )
    res = ev.send(
        A.AC_ChargeLoopReq(header=ev.hdr(A), meter_info_requested=False, cl_req_control_mode=mode)
    )
    assert res.response_code.value == "OK"
    assert num(res.cl_res_control_mode.evse_target_active_power) == pytest.approx(11_040)


# --- Standby ------------------------------------------------------------------------------


@pytest.mark.parametrize("dc", [False, True], ids=["AC", "DC"])
def test_standby_keeps_the_contactors_closed(dc: bool) -> None:
    """-20 standby is a communication state only: "during standby both EV and EVSE
    contactors are to stay closed"; the power is 0 ([V2G20-2116]: the EV draws none) and
    the Start that ends it needs no contactor switching."""
    ev = Ev(dc=dc)
    to_loop(ev, dynamic=True)
    assert loop(ev, dynamic=True).response_code.value == "OK"
    assert ev.power_delivery("Standby").response_code.value == "OK"
    assert not any(isinstance(a, OpenContactors) for a in ev.last)
    res = loop(ev, dynamic=True)
    if dc:
        assert not any(isinstance(a, SetDcTarget) for a in ev.last)
    else:
        assert num(res.cl_res_control_mode.evse_target_active_power) == 0.0
    assert ev.power_delivery("Start").response_code.value == "OK"
    assert not any(isinstance(a, (OpenContactors, CloseContactors)) for a in ev.last)
    assert ev.session.context.contactors_closed


def test_ac_standby_right_after_schedule_exchange() -> None:
    """[V2G20-1390] with [V2G20-2192]: an EV may enter standby right after the finished
    ScheduleExchangeRes (AC: PowerDeliveryReq Standby is the next request there); the next
    request is AC_ChargeLoopReq (power 0), and a later Start closes the contactors."""
    ev = Ev(dc=False)
    to_authorized(ev)
    to_scheduled(ev, dynamic=True)
    res = ev.power_delivery("Standby")
    assert res.response_code.value == "OK"
    assert ev.session.state is Iso20State.STANDBY
    assert not any(isinstance(a, CloseContactors) for a in ev.actions)
    res = loop(ev, dynamic=True)
    assert res.response_code.value == "OK"
    assert num(res.cl_res_control_mode.evse_target_active_power) == 0.0
    assert start(ev, dynamic=True).response_code.value == "OK"
    assert any(isinstance(a, CloseContactors) for a in ev.last)
    res = loop(ev, dynamic=True)
    assert num(res.cl_res_control_mode.evse_target_active_power) > 0.0
