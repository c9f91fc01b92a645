"""EV simulator against the real core through the real codec with a fake clock (EIM, DIN,
pause/resume and the fault scenarios).  Plug & Charge scenarios are in test_pnc.py."""

from __future__ import annotations

import dataclasses

from secc.core.actions import (
    CloseConnection,
    CloseContactors,
    EndReason,
    OpenContactors,
    RequestAuthorization,
    SessionEnded,
    SessionStarted,
    StartIsolationTest,
)
from secc.core.config import DIN_NAMESPACE, ISO2_NAMESPACE, SessionConfig, Timers
from secc.core.context import State
from secc.core.events import ChargingScheduleUpdate, EvseFault, StopRequested
from secc.ev.iso2 import EvFaults, EvScript, EvSimulator
from secc.testing.clock import FakeClock
from secc.testing.evse import FakeEvse, FakeStation
from secc.testing.harness import Outcome, run_session

AC = "AC_three_phase_core"
DC = "DC_extended"
CONFIG = SessionConfig()


def ended_cleanly(out: Outcome, reason: EndReason) -> None:
    """The end: OpenContactors before CloseConnection before SessionEnded, right reason."""
    assert out.end is not None and out.end.reason is reason, out.end
    kinds = out.kinds()
    tail = kinds[kinds.index("CloseConnection") - 1 :]
    assert "OpenContactors" in kinds[: kinds.index("CloseConnection")]
    assert tail[-2:] == ["CloseConnection", "SessionEnded"]
    assert out.session.state is State.ENDED


def test_ac_eim_full_session() -> None:
    out = run_session(CONFIG, EvScript(energy_mode=AC))
    names = [n for n, _ in out.responses]
    assert names[:4] == [
        "supportedAppProtocolRes",
        "SessionSetupRes",
        "ServiceDiscoveryRes",
        "PaymentServiceSelectionRes",
    ]
    assert out.responses[0][1] == "OK_SuccessfulNegotiation"
    assert out.responses[1][1] == "OK_NewSessionEstablished"
    assert all(c.startswith("OK") for _, c in out.responses)
    assert out.code_of("AuthorizationRes")[-1] == "OK"
    processing = [
        a.message.body.body_element.evse_processing.value
        for _, a in out.actions
        if getattr(a, "name", "") == "AuthorizationRes"
    ]
    assert processing[0] == "Ongoing_WaitingForCustomerInteraction"
    assert processing[-1] == "Finished"
    assert names.count("ChargingStatusRes") == 3
    assert names[-1] == "SessionStopRes"
    kinds = out.kinds()
    assert kinds.count("CloseContactors") == 1
    assert kinds.index("CloseContactors") < kinds.index("OpenContactors")
    started = [a for _, a in out.actions if isinstance(a, SessionStarted)]
    assert started[0].protocol == ISO2_NAMESPACE and started[0].evcc_id == bytes.fromhex(
        "0a0b0c0d0e0f"
    )
    assert [a.kind for a in out.station.requests if isinstance(a, RequestAuthorization)] == [
        "ExternalPayment"
    ]
    ended_cleanly(out, EndReason.EV_STOP)


def test_dc_eim_full_session() -> None:
    out = run_session(CONFIG, EvScript(energy_mode=DC))
    names = [n for n, _ in out.responses]
    assert all(c.startswith("OK") for _, c in out.responses)
    for step in ("CableCheckRes", "PreChargeRes", "CurrentDemandRes", "WeldingDetectionRes"):
        assert step in names
    assert (
        names.index("CableCheckRes") < names.index("PreChargeRes") < names.index("PowerDeliveryRes")
    )
    kinds = out.kinds()
    assert (
        kinds.index("StartIsolationTest")
        < kinds.index("SetDcTarget")
        < kinds.index("CloseContactors")
    )
    iso = [a for _, a in out.actions if isinstance(a, StartIsolationTest)]
    assert iso == [StartIsolationTest(voltage=450.0)]
    assert out.evse.status.present_voltage == 0.0  # StopDcOutput at the end
    ended_cleanly(out, EndReason.EV_STOP)


def test_din_dc_session() -> None:
    out = run_session(CONFIG, EvScript(protocol="din", energy_mode=DC))
    names = [n for n, _ in out.responses]
    assert names[:5] == [
        "supportedAppProtocolRes",
        "SessionSetupRes",
        "ServiceDiscoveryRes",
        "ServicePaymentSelectionRes",
        "ContractAuthenticationRes",
    ]
    assert "CurrentDemandRes" in names and names[-1] == "SessionStopRes"
    assert all(c.startswith("OK") for _, c in out.responses)
    assert out.session.schema.value == "din"
    started = [a for _, a in out.actions if isinstance(a, SessionStarted)]
    assert started[0].protocol == DIN_NAMESPACE
    assert out.kinds().count("CloseContactors") == 1
    ended_cleanly(out, EndReason.EV_STOP)


def test_din_only_station_negotiates_din_with_an_iso_ev() -> None:
    config = dataclasses.replace(CONFIG, protocols=(DIN_NAMESPACE,))
    out = run_session(config, EvScript(energy_mode=DC))  # offers ISO (1) and DIN (2)
    assert out.responses[0] == ("supportedAppProtocolRes", "OK_SuccessfulNegotiation")
    assert out.session.schema.value == "din"


def test_no_common_protocol_fails_negotiation() -> None:
    config = dataclasses.replace(CONFIG, protocols=(ISO2_NAMESPACE,))
    out = run_session(config, EvScript(protocol="din", energy_mode=DC))
    assert out.responses == [("supportedAppProtocolRes", "Failed_NoNegotiation")]
    ended_cleanly(out, EndReason.FAILED_RESPONSE)


def test_pause_and_resume_with_the_same_session_id() -> None:
    clock = FakeClock()
    first = run_session(CONFIG, EvScript(energy_mode=AC, stop="Pause"), clock=clock)
    ended_cleanly(first, EndReason.EV_PAUSE)
    paused = first.session.paused
    assert paused is not None and paused.session_id == first.session.session_id
    clock.advance(30)
    second = run_session(
        CONFIG,
        EvScript(energy_mode=AC, resume_session_id=paused.session_id),
        clock=clock,
        resume=paused,
    )
    assert second.responses[1] == ("SessionSetupRes", "OK_OldSessionJoined")
    assert second.session.session_id == paused.session_id
    ended_cleanly(second, EndReason.EV_STOP)


def test_unknown_session_id_on_setup_gets_a_new_session() -> None:
    out = run_session(
        CONFIG, EvScript(energy_mode=AC, resume_session_id=bytes.fromhex("1122334455667788"))
    )
    assert out.responses[1] == ("SessionSetupRes", "OK_NewSessionEstablished")
    assert out.session.session_id != bytes.fromhex("1122334455667788")


def test_wrong_session_id_later_is_unknown_session() -> None:
    faults = EvFaults(wrong_session_id_at="ServiceDiscoveryReq")
    out = run_session(CONFIG, EvScript(energy_mode=AC, faults=faults))
    assert out.responses[-1] == ("ServiceDiscoveryRes", "FAILED_UnknownSession")
    ended_cleanly(out, EndReason.FAILED_RESPONSE)


def test_sequence_error_closes_the_session() -> None:
    faults = EvFaults(replace={"ServiceDiscoveryReq": "PowerDeliveryReq"})
    out = run_session(CONFIG, EvScript(energy_mode=AC, faults=faults))
    assert out.responses[-1] == ("PowerDeliveryRes", "FAILED_SequenceError")
    assert "CloseContactors" not in out.kinds()
    ended_cleanly(out, EndReason.SEQUENCE_ERROR)


def test_sequence_error_while_charging_opens_the_contactors() -> None:
    faults = EvFaults(replace={"PowerDeliveryReq": "CableCheckReq"})
    script = EvScript(energy_mode=AC, faults=faults)
    # first PowerDelivery (Start) is replaced too: use a DC session that fails mid-charge
    dc_faults = EvFaults(replace={"WeldingDetectionReq": "ChargeParameterDiscoveryReq"})
    out = run_session(CONFIG, EvScript(energy_mode=DC, faults=dc_faults))
    assert out.responses[-1] == ("ChargeParameterDiscoveryRes", "FAILED_SequenceError")
    ended_cleanly(out, EndReason.SEQUENCE_ERROR)
    out = run_session(CONFIG, script)
    assert out.responses[-1] == ("CableCheckRes", "FAILED_SequenceError")


def test_sequence_timeout_when_the_ev_goes_silent() -> None:
    out = run_session(
        CONFIG, EvScript(energy_mode=AC, faults=EvFaults(stall_before="ChargingStatusReq"))
    )
    ended_cleanly(out, EndReason.SEQUENCE_TIMEOUT)
    closes = [t for t, a in out.actions if isinstance(a, CloseContactors)]
    opens = [t for t, a in out.actions if isinstance(a, OpenContactors)]
    assert closes and opens[-1] - closes[0] >= 60.0


def test_communication_setup_timeout() -> None:
    out = run_session(
        CONFIG, EvScript(energy_mode=AC, faults=EvFaults(stall_before="SessionSetupReq"))
    )
    ended_cleanly(out, EndReason.TIMEOUT)
    assert out.end is not None and "CommunicationSetup" in out.end.detail
    assert out.clock.now - 1000.0 == CONFIG.timers.communication_setup


def test_overridden_sequence_timeout() -> None:
    config = dataclasses.replace(CONFIG, timers=Timers(sequence_timeout=5.0))
    out = run_session(
        config, EvScript(energy_mode=AC, faults=EvFaults(delay={"ChargingStatusReq": 6.0}))
    )
    ended_cleanly(out, EndReason.SEQUENCE_TIMEOUT)
    slow = run_session(
        config, EvScript(energy_mode=AC, faults=EvFaults(delay={"ChargingStatusReq": 4.0}))
    )
    ended_cleanly(slow, EndReason.EV_STOP)


def test_authorization_refused() -> None:
    out = run_session(CONFIG, EvScript(energy_mode=AC), station=FakeStation(accept=False))
    assert out.responses[-1] == ("AuthorizationRes", "FAILED")
    assert "CloseContactors" not in out.kinds()
    ended_cleanly(out, EndReason.FAILED_RESPONSE)


def test_slow_authorization_is_polled_with_ongoing() -> None:
    out = run_session(CONFIG, EvScript(energy_mode=AC), station=FakeStation(auth_delay=20.0))
    assert len(out.code_of("AuthorizationRes")) > 30
    ended_cleanly(out, EndReason.EV_STOP)


def test_free_service_needs_no_authorization() -> None:
    config = dataclasses.replace(CONFIG, free_service=True)
    out = run_session(config, EvScript(energy_mode=AC))
    assert out.code_of("AuthorizationRes") == ["OK"]
    assert out.station.requests == []
    ended_cleanly(out, EndReason.EV_STOP)


def test_ev_vanishing_mid_charge() -> None:
    faults = EvFaults(vanish_before="CurrentDemandReq")
    out = run_session(CONFIG, EvScript(energy_mode=DC, faults=faults))
    ended_cleanly(out, EndReason.CONNECTION_LOST)
    kinds = out.kinds()
    assert kinds.index("CloseContactors") < kinds.index(
        "StopDcOutput", kinds.index("CloseContactors")
    )


def test_station_stop_while_charging_notifies_the_ev() -> None:
    out = run_session(
        CONFIG,
        EvScript(energy_mode=AC, charge_loops=1000),
        events=[(60.0, StopRequested("remote stop"))],
    )
    assert out.ev.loops < 1000
    ended_cleanly(out, EndReason.EV_STOP)


def test_station_stop_before_charging_ends_at_once() -> None:
    out = run_session(
        CONFIG,
        EvScript(energy_mode=AC),
        station=FakeStation(auth_delay=30),
        events=[(2.0, StopRequested("local"))],
    )
    ended_cleanly(out, EndReason.STATION_STOP)


def test_evse_fault_mid_charge() -> None:
    out = run_session(
        CONFIG,
        EvScript(energy_mode=DC, charge_loops=1000),
        events=[(20.0, EvseFault("rcd", "trip"))],
    )
    ended_cleanly(out, EndReason.EVSE_FAULT)
    kinds = out.kinds()
    last_close = len(kinds) - 1 - kinds[::-1].index("CloseContactors")
    assert "OpenContactors" in kinds[last_close:]


def test_contactor_that_does_not_close_is_a_contactor_error() -> None:
    out = run_session(
        CONFIG,
        EvScript(energy_mode=AC, loop_interval=2.0),
        evse=FakeEvse(contactors_stuck_open=True),
    )
    assert out.responses[-1] == ("ChargingStatusRes", "FAILED_ContactorError")
    ended_cleanly(out, EndReason.FAILED_RESPONSE)


def test_isolation_fault_in_cable_check() -> None:
    out = run_session(CONFIG, EvScript(energy_mode=DC), evse=FakeEvse(isolation_result="Fault"))
    assert out.responses[-1] == ("CableCheckRes", "FAILED")
    assert "CloseContactors" not in out.kinds()
    ended_cleanly(out, EndReason.FAILED_RESPONSE)


def test_cable_check_limit() -> None:
    out = run_session(CONFIG, EvScript(energy_mode=DC), evse=FakeEvse(isolation_delay=100.0))
    assert out.responses[-1] == ("CableCheckRes", "FAILED")
    ended_cleanly(out, EndReason.TIMEOUT)


def test_precharge_limit() -> None:
    out = run_session(CONFIG, EvScript(energy_mode=DC), evse=FakeEvse(ramp=10.0))
    assert out.responses[-1] == ("PreChargeRes", "FAILED")
    assert "CloseContactors" not in out.kinds()
    ended_cleanly(out, EndReason.TIMEOUT)


def test_wrong_energy_transfer_mode() -> None:
    config = dataclasses.replace(CONFIG, energy_modes=(AC,))
    out = run_session(config, EvScript(energy_mode=DC))
    assert out.responses[-1] == ("ChargeParameterDiscoveryRes", "FAILED_WrongEnergyTransferMode")
    ended_cleanly(out, EndReason.FAILED_RESPONSE)


def test_wrong_charge_parameter() -> None:
    out = run_session(CONFIG, EvScript(energy_mode=AC, faults=EvFaults(requested_mode=DC)))
    assert out.responses[-1] == ("ChargeParameterDiscoveryRes", "FAILED_WrongChargeParameter")


def test_tariff_selection_invalid() -> None:
    out = run_session(CONFIG, EvScript(energy_mode=AC, faults=EvFaults(schedule_id=7)))
    assert out.responses[-1] == ("PowerDeliveryRes", "FAILED_TariffSelectionInvalid")
    assert "CloseContactors" not in out.kinds()


def test_charging_profile_invalid() -> None:
    out = run_session(CONFIG, EvScript(energy_mode=AC, faults=EvFaults(profile_power=60000)))
    assert out.responses[-1] == ("PowerDeliveryRes", "FAILED_ChargingProfileInvalid")
    assert "CloseContactors" not in out.kinds()


def test_payment_selection_invalid_without_tls() -> None:
    out = run_session(CONFIG, EvScript(energy_mode=AC, faults=EvFaults(payment="Contract")))
    assert out.responses[-1] == ("PaymentServiceSelectionRes", "FAILED_PaymentSelectionInvalid")


def test_csms_schedule_limits_the_offer() -> None:
    schedule = ChargingScheduleUpdate(((0, 7000.0, None), (3600, 3000.0, None)))
    out = run_session(CONFIG, EvScript(energy_mode=AC), events=[(0.0, schedule)])
    assert out.session.context.schedules == {1: 7000.0}
    out = run_session(
        CONFIG,
        EvScript(energy_mode=AC, faults=EvFaults(profile_power=9000)),
        events=[(0.0, schedule)],
    )
    assert out.responses[-1] == ("PowerDeliveryRes", "FAILED_ChargingProfileInvalid")


def test_session_end_always_reports_once() -> None:
    out = run_session(CONFIG, EvScript(energy_mode=AC))
    assert sum(isinstance(a, SessionEnded) for _, a in out.actions) == 1
    assert sum(isinstance(a, CloseConnection) for _, a in out.actions) == 1


def test_renegotiation_keeps_the_contactors_closed() -> None:
    for mode in (AC, DC):
        out = run_session(CONFIG, EvScript(energy_mode=mode, renegotiate=True, charge_loops=4))
        names = [n for n, _ in out.responses]
        assert names.count("ChargeParameterDiscoveryRes") == 2, names
        assert names.count("PowerDeliveryRes") == 4  # Start, Renegotiate, Start, Stop
        assert all(c.startswith("OK") for _, c in out.responses)
        assert out.kinds().count("CloseContactors") == 1
        ended_cleanly(out, EndReason.EV_STOP)


def test_power_delivery_before_precharge_is_not_applied() -> None:
    out = run_session(CONFIG, EvScript(energy_mode=DC, faults=EvFaults(early_power_delivery=True)))
    assert out.responses[-1] == ("PowerDeliveryRes", "FAILED_PowerDeliveryNotApplied")
    assert "CloseContactors" not in out.kinds()
    ended_cleanly(out, EndReason.FAILED_RESPONSE)


def test_service_selection_invalid() -> None:
    out = run_session(
        CONFIG, EvScript(energy_mode=AC, faults=EvFaults(services=((1, None), (3, None))))
    )
    assert out.responses[-1] == ("PaymentServiceSelectionRes", "FAILED_ServiceSelectionInvalid")


def test_no_charge_service_selected() -> None:
    out = run_session(CONFIG, EvScript(energy_mode=AC, faults=EvFaults(services=((2, 1),))))
    assert out.responses[-1] == ("PaymentServiceSelectionRes", "FAILED_NoChargeServiceSelected")


def test_internet_service_offered_and_detailed() -> None:
    config = dataclasses.replace(CONFIG, internet_service=True)
    script = EvScript(energy_mode=AC, faults=EvFaults(services=((1, None), (3, 4))))
    out = run_session(config, script)
    assert all(c.startswith("OK") for _, c in out.responses)
    ended_cleanly(out, EndReason.EV_STOP)


def test_minor_version_deviation() -> None:
    from secc import codec
    from secc.core.events import RequestReceived, Schema
    from secc.core.session import SeccSession

    apphand = codec.schema_module("apphand")
    clock = FakeClock()
    session = SeccSession(
        CONFIG, now=clock.now, random_bytes=clock.random_bytes, utc_now=clock.utc_now
    )
    offer = apphand.AppProtocol(
        protocol_namespace=ISO2_NAMESPACE,
        version_number_major=2,
        version_number_minor=1,
        schema_id=7,
        priority=1,
    )
    req = codec.decode(
        codec.encode(apphand.supportedAppProtocolReq(app_protocol=(offer,))), "apphand"
    )
    actions = session.handle(RequestReceived(req, Schema.APPHAND), clock.now)
    res = actions[0].message
    assert res.response_code.value == "OK_SuccessfulNegotiationWithMinorDeviation"
    assert res.schema_id == 7
    assert session.state is State.WAIT_SESSION_SETUP and session.schema is Schema.ISO2


def test_service_discovery_offers_what_the_station_has() -> None:
    from secc import codec
    from secc.core.events import RequestReceived, Schema
    from secc.core.session import SeccSession

    iso2 = codec.schema_module("iso2")
    config = dataclasses.replace(CONFIG, tls=True, internet_service=True, energy_modes=(DC,))
    out = run_session(config, EvScript(energy_mode=DC, charge_loops=1))
    assert out.end is not None
    sends = [a.message for _, a in out.actions if getattr(a, "name", "") == "ServiceDiscoveryRes"]
    res = sends[0].body.body_element
    assert [p.value for p in res.payment_option_list.payment_option] == [
        "Contract",
        "ExternalPayment",
    ]
    assert [
        m.value for m in res.charge_service.supported_energy_transfer_mode.energy_transfer_mode
    ] == [DC]
    assert sorted(s.service_id for s in res.service_list.service) == [2, 3]
    # category filter: only the Internet service
    clock = FakeClock()
    session = SeccSession(
        config, now=clock.now, random_bytes=clock.random_bytes, utc_now=clock.utc_now
    )
    ev = EvSimulator(EvScript(energy_mode=DC))
    for name in ("supportedAppProtocolReq", "SessionSetupReq"):
        step = ev.request(name)
        acts = session.handle(RequestReceived(step.message, step.schema), clock.now)
    ev.session_id = acts[-1].message.header.session_id
    req = iso2.V2G_Message(
        header=iso2.MessageHeader(session_id=session.session_id),
        body=iso2.Body(
            body_element=iso2.ServiceDiscoveryReq(service_category=iso2.ServiceCategory.Internet)
        ),
    )
    actions = session.handle(RequestReceived(req, Schema.ISO2), clock.now)
    body = actions[0].message.body.body_element
    assert [s.service_id for s in body.service_list.service] == [3]


def test_sales_tariff_is_passed_through() -> None:
    from secc import codec

    iso2 = codec.schema_module("iso2")
    tariff = iso2.SalesTariff(
        id="T1",
        sales_tariff_id=5,
        sales_tariff_entry=(
            iso2.SalesTariffEntry(
                time_interval=iso2.RelativeTimeInterval(start=0, duration=86400), e_price_level=1
            ),
        ),
    )
    config = dataclasses.replace(CONFIG, sales_tariff=tariff)
    out = run_session(config, EvScript(energy_mode=AC, charge_loops=1))
    res = next(
        a.message for _, a in out.actions if getattr(a, "name", "") == "ChargeParameterDiscoveryRes"
    )
    sent = res.body.body_element.sa_schedules.sa_schedule_tuple[0]
    assert sent.sales_tariff == tariff
    ended_cleanly(out, EndReason.EV_STOP)


def test_charge_parameters_wait_for_the_csms_schedule() -> None:
    config = dataclasses.replace(CONFIG, schedule_wait=10.0)
    schedule = ChargingScheduleUpdate(((0, 5000.0, 7200),))
    out = run_session(config, EvScript(energy_mode=AC, charge_loops=1), events=[(8.0, schedule)])
    codes = [
        a.message.body.body_element.evse_processing.value
        for _, a in out.actions
        if getattr(a, "name", "") == "ChargeParameterDiscoveryRes"
    ]
    assert codes[0] == "Ongoing" and codes[-1] == "Finished"
    assert out.session.context.schedules == {1: 5000.0}
    ended_cleanly(out, EndReason.EV_STOP)
    # no schedule: after the wait the EVSE's own limits
    out = run_session(config, EvScript(energy_mode=DC, charge_loops=1))
    assert out.session.context.schedules == {1: CONFIG.dc.max_power}
    ended_cleanly(out, EndReason.EV_STOP)


def test_ev_ignoring_stop_charging_is_stopped_by_the_station() -> None:
    faults = EvFaults(ignore_stop_notification=True)
    out = run_session(
        CONFIG,
        EvScript(energy_mode=DC, charge_loops=10_000, faults=faults),
        events=[(40.0, StopRequested("remote stop"))],
    )
    ended_cleanly(out, EndReason.STATION_STOP)
    end_at = next(t for t, a in out.actions if isinstance(a, SessionEnded))
    assert end_at - 1000.0 == 40.0 + CONFIG.timers.stop_grace
    assert out.kinds()[-5:] == [
        "StopDcOutput",
        "OpenContactors",
        "ChargingStateChanged",
        "CloseConnection",
        "SessionEnded",
    ]


def test_requests_of_the_wrong_kind_close_without_an_answer() -> None:
    from secc import codec
    from secc.core.events import RequestReceived, Schema
    from secc.core.session import SeccSession

    iso2 = codec.schema_module("iso2")
    bodies = [
        None,  # an empty Body
        iso2.SessionSetupRes(  # a response where a request belongs
            response_code=iso2.ResponseCode.OK, evseid="DE*ABC*E1234567*1"
        ),
    ]
    for body in bodies:
        clock = FakeClock()
        session = SeccSession(
            CONFIG, now=clock.now, random_bytes=clock.random_bytes, utc_now=clock.utc_now
        )
        ev = EvSimulator(EvScript(energy_mode=AC))
        hello = ev.request("supportedAppProtocolReq")
        session.handle(RequestReceived(hello.message, hello.schema), clock.now)
        msg = iso2.V2G_Message(
            header=iso2.MessageHeader(session_id=bytes(1)), body=iso2.Body(body_element=body)
        )
        msg = codec.decode(codec.encode(msg), "iso2")
        actions = session.handle(RequestReceived(msg, Schema.ISO2), clock.now)
        kinds = [type(a).__name__ for a in actions]
        assert kinds == ["OpenContactors", "CloseConnection", "SessionEnded"]
        assert actions[-1].reason is EndReason.SEQUENCE_ERROR
    # a DIN message in an ISO session is out of sequence too
    clock = FakeClock()
    session = SeccSession(
        CONFIG, now=clock.now, random_bytes=clock.random_bytes, utc_now=clock.utc_now
    )
    din = codec.schema_module("din")
    msg = din.V2G_Message(
        header=din.MessageHeader(session_id=bytes(1)),
        body=din.Body(body_element=din.SessionSetupReq(evccid=bytes(6))),
    )
    actions = session.handle(RequestReceived(msg, Schema.DIN), clock.now)
    sent = next(a for a in actions if type(a).__name__ == "SendResponse")
    assert sent.message.body.body_element.response_code.value == "FAILED_SequenceError"  # type: ignore[attr-defined]
    assert actions[-1].reason is EndReason.SEQUENCE_ERROR


def test_late_and_stray_events_are_harmless() -> None:
    from secc.core.events import AuthorizationResult, CertificateResult, TimerExpired
    from secc.core.session import SeccSession

    clock = FakeClock()
    session = SeccSession(
        CONFIG, now=clock.now, random_bytes=clock.random_bytes, utc_now=clock.utc_now
    )
    assert session.handle(TimerExpired("V2G_SECC_Sequence_Timeout"), clock.now) == []
    assert session.handle(CertificateResult(b"\x80"), clock.now) == []
    assert session.handle(AuthorizationResult(True, "tok"), clock.now) == []
    assert session.deadline == clock.now + CONFIG.timers.communication_setup
    actions = session.handle(TimerExpired("x"), clock.now + 100)
    assert [type(a).__name__ for a in actions][-2:] == ["CloseConnection", "SessionEnded"]
    assert session.handle(TimerExpired("x"), clock.now + 200) == []


def test_deauthorization_while_charging_stops_the_session() -> None:
    from secc.core.events import AuthorizationResult

    refused = AuthorizationResult(accepted=False, id_token="", reason="deauthorized by the CSMS")
    out = run_session(
        CONFIG, EvScript(energy_mode=AC, charge_loops=10_000), events=[(30.0, refused)]
    )
    assert out.ev.stopping
    ended_cleanly(out, EndReason.EV_STOP)


def test_the_trace_shows_every_message_as_exi() -> None:
    out = run_session(CONFIG, EvScript(energy_mode=AC, charge_loops=1))
    lines = out.format_trace().splitlines()
    assert len(lines) == len(out.requests) + len(out.responses)
    assert lines[0].split()[1:3] == ["->", "supportedAppProtocolReq"]
    assert lines[-1].split()[1:3] == ["<-", "SessionStopRes"]
    assert all(line.split()[-1].startswith("80") for line in lines)
