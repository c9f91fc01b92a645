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
from secc.testing.clock import FakeClock
from secc.testing.ev import EvFaults, EvScript
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
