"""The ISO 15118-20 EV against a scripted SECC written from the standard
(tests/ev/spec_secc.py), every message through the real codec both ways, on a virtual
clock: AC and DC, scheduled and dynamic, and each way a station can let the EV down."""

from __future__ import annotations

from typing import Any

import pytest

from secc import codec
from secc.core.events import Schema
from secc.ev.iso2 import Outgoing
from secc.ev.iso20 import Ev20Script, Ev20Simulator, rational, value_of
from tests.ev.spec_secc import AC, DC, SID, C, SpecSecc


def run(
    script: Ev20Script, secc: SpecSecc, max_messages: int = 2000, **kwargs: Any
) -> Ev20Simulator:
    """Drive the EV against ``secc``: encode, decode, answer, encode, decode, repeat."""
    now = 0.0
    ev = Ev20Simulator(script, utc_now=lambda: 1_700_000_000 + now, **kwargs)
    step: Outgoing | None = ev.start()
    for _ in range(max_messages):
        if step is None:
            return ev
        now += step.delay
        req = codec.decode(codec.encode(step.message), step.schema.value)
        assert req == step.message
        res, schema = secc.answer(req, step.schema)
        back = codec.decode(codec.encode(res), schema.value)
        step = ev.receive(back, schema, now + 0.01)
    raise AssertionError(f"the EV did not end within {max_messages} messages")


DC_FLOW = [
    "supportedAppProtocolReq",
    "SessionSetupReq",
    "AuthorizationSetupReq",
    "AuthorizationReq",
    "AuthorizationReq",
    "ServiceDiscoveryReq",
    "ServiceDetailReq",
    "ServiceSelectionReq",
    "DC_ChargeParameterDiscoveryReq",
    "ScheduleExchangeReq",
    "ScheduleExchangeReq",
    "DC_CableCheckReq",
    "DC_CableCheckReq",
    "DC_CableCheckReq",
    "DC_PreChargeReq",  # the EVSE at 150 V
    "DC_PreChargeReq",  # 300 V
    "DC_PreChargeReq",  # 400 V: within tolerance
    "DC_PreChargeReq",  # once more with EVProcessing Finished
    "PowerDeliveryReq",
    "DC_ChargeLoopReq",
    "DC_ChargeLoopReq",
    "DC_ChargeLoopReq",
    "PowerDeliveryReq",
    "DC_WeldingDetectionReq",  # the EVSE at 100 V
    "DC_WeldingDetectionReq",  # 30 V: safe
    "DC_WeldingDetectionReq",  # once more with EVProcessing Finished
    "SessionStopReq",
]


@pytest.mark.parametrize("control", ["scheduled", "dynamic"])
def test_dc_session(control: str) -> None:
    secc = SpecSecc()
    ev = run(Ev20Script(mode="dc", control=control, think_time=0.01), secc)
    assert ev.error is None, ev.error
    assert secc.seen == DC_FLOW
    assert ev.responses[-1] == ("SessionStopRes", "OK")
    assert ev.parameter_set_id == 1 + (control == "dynamic")
    assert (ev.schedule_tuple_id == 7) is (control == "scheduled")
    assert ev.loops == 3 and ev.precharge_finished and ev.welding_finished


@pytest.mark.parametrize("control", ["scheduled", "dynamic"])
def test_ac_session(control: str) -> None:
    secc = SpecSecc()
    ev = run(Ev20Script(mode="ac", control=control, charge_loops=4), secc)
    assert ev.error is None, ev.error
    assert secc.seen[8:11] == [
        "AC_ChargeParameterDiscoveryReq",
        "ScheduleExchangeReq",
        "ScheduleExchangeReq",
    ]
    assert secc.seen[11:] == [
        "PowerDeliveryReq",
        *["AC_ChargeLoopReq"] * 4,
        "PowerDeliveryReq",
        "SessionStopReq",
    ]
    assert ev.responses[-1] == ("SessionStopRes", "OK")
    if control == "dynamic":
        assert ev.evse_target_power == 7000


def test_scheduled_power_profile_stays_within_the_schedule() -> None:
    secc = SpecSecc()
    ev = Ev20Simulator(Ev20Script(mode="ac", control="scheduled"))
    run(Ev20Script(mode="ac"), secc)  # sanity: the flow works
    ev.schedule_tuple_id, ev.schedule_power, ev.evse_max_power = 7, 7000.0, 22000.0
    req = ev.request("PowerDeliveryReq").message
    assert req.charge_progress is C.ChargeProgress.Start
    assert req.ev_power_profile.scheduled_evppt_control_mode.selected_schedule_tuple_id == 7
    (entry,) = req.ev_power_profile.ev_power_profile_entries.ev_power_profile_entry
    assert value_of(entry.power) == 7000


def test_stops_on_energy() -> None:
    secc = SpecSecc(energy_per_loop=400)
    ev = run(Ev20Script(mode="dc", energy_wh=1000, charge_loops=99), secc)
    assert ev.error is None and ev.loops == 3 and ev.charged_wh == 1200


def test_terminate_notification_ends_the_loop() -> None:
    secc = SpecSecc(terminate_at_loop=2)
    ev = run(Ev20Script(mode="dc", charge_loops=50), secc)
    assert ev.error is None
    assert ev.loops == 2 and "Terminate" in ev.notifications
    assert secc.seen[-5:] == [
        "PowerDeliveryReq",
        "DC_WeldingDetectionReq",
        "DC_WeldingDetectionReq",
        "DC_WeldingDetectionReq",
        "SessionStopReq",
    ]


def test_precharge_that_never_reaches_the_target_ends_with_a_clear_error() -> None:
    secc = SpecSecc(precharge_ceiling=300.0)
    ev = run(Ev20Script(mode="dc", precharge_timeout=7.0, precharge_interval=0.1), secc)
    assert ev.done and ev.error == (
        "PreCharge not finished within 7 s: the EV gives up "
        "(the EVSE reports 300 V, the EV asked 400 V)"
    )
    n = secc.seen.count("DC_PreChargeReq")
    assert 50 <= n <= 80  # 7 s at one request per 0.1 s, then the EV stops
    assert "PowerDeliveryReq" not in secc.seen


def test_cable_check_forever_is_bounded() -> None:
    secc = SpecSecc(cable_check_ongoing=-1)
    ev = run(Ev20Script(mode="dc", cable_check_timeout=40.0, poll_interval=0.5), secc)
    assert ev.error == "CableCheck not finished within 40 s: the EV gives up"
    assert secc.seen[-1] == "DC_CableCheckReq" and secc.seen.count("DC_CableCheckReq") <= 82


def test_authorization_ongoing_forever_is_bounded() -> None:
    secc = SpecSecc(authorization_ongoing=-1)
    ev = run(Ev20Script(mode="ac", ongoing_timeout=60.0), secc)
    assert ev.error == "Authorization not finished within 60 s: the EV gives up"


def test_the_defaults_are_the_standards_timers() -> None:
    s = Ev20Script()
    assert (s.ongoing_timeout, s.cable_check_timeout, s.precharge_timeout) == (60, 40, 10)
    ev = Ev20Simulator(s)
    assert ev.message_timeout("SessionSetupReq") == 2.0
    assert ev.message_timeout("CertificateInstallationReq") == 5.0
    assert ev.message_timeout("DC_ChargeLoopReq") == 0.5


def test_a_renegotiation_long_after_the_first_exchange_has_its_own_ongoing_timer() -> None:
    """The ScheduleExchange that a ScheduleRenegotiation brings, minutes into charging,
    may be Ongoing again: its V2G_EVCC_Ongoing_Timeout starts with it."""
    secc = SpecSecc(
        notification="ScheduleRenegotiation", terminate_at_loop=3, renegotiation_ongoing=2
    )
    script = Ev20Script(mode="ac", charge_loops=5, loop_interval=40.0, poll_interval=0.5)
    ev = run(script, secc)
    assert ev.error is None and ev.responses[-1] == ("SessionStopRes", "OK")
    assert secc.renegotiation_seen == 3  # Ongoing twice, then Finished
    assert secc.seen.count("ScheduleExchangeReq") == 2 + 3


def test_a_phase_times_out_from_its_first_request() -> None:
    """CableCheck answered Ongoing forever, slowly: the timer runs from the first
    DC_CableCheckReq, so the last one goes out no later than 40 s after it."""
    secc = SpecSecc(cable_check_ongoing=-1)
    ev = run(Ev20Script(mode="dc", poll_interval=3.0), secc)
    assert ev.error == "CableCheck not finished within 40 s: the EV gives up"
    assert secc.seen.count("DC_CableCheckReq") == 14  # at 0, 3.01, ..., 39.13 s


@pytest.mark.parametrize(
    ("secc", "error"),
    [
        (SpecSecc(services=(1,)), "the station offers services [1], not DC (2)"),
        (SpecSecc(control_modes=(2,)), "service 2 offers ControlMode [2], not scheduled (1)"),
        (SpecSecc(fail={"DC_CableCheckRes": "FAILED"}), "DC_CableCheckRes: FAILED"),
        (
            SpecSecc(wrong_response={"ServiceDetailRes": "ServiceSelectionRes"}),
            "expected ServiceDetailRes, the station sent ServiceSelectionRes",
        ),
    ],
)
def test_refusals_end_the_session_with_the_reason(secc: SpecSecc, error: str) -> None:
    ev = run(Ev20Script(mode="dc"), secc)
    assert ev.done and ev.error == error


def test_handshake_offers_the_iso20_namespace() -> None:
    for mode, ns in (
        ("ac", "urn:iso:std:iso:15118:-20:AC"),
        ("dc", "urn:iso:std:iso:15118:-20:DC"),
    ):
        req = Ev20Simulator(Ev20Script(mode=mode)).start().message
        (proto,) = req.app_protocol
        assert (proto.protocol_namespace, proto.version_number_major) == (ns, 1)
        assert proto.version_number_minor == 0


def test_session_id_from_setup_is_used_and_checked() -> None:
    ev = Ev20Simulator(Ev20Script(mode="dc"))
    secc = SpecSecc()
    step: Outgoing | None = ev.start()
    assert step is not None
    res, schema = secc.answer(step.message, step.schema)
    step = ev.receive(res, schema)
    assert step is not None
    assert step.message.header.session_id == bytes(8)
    res, schema = secc.answer(step.message, step.schema)
    step = ev.receive(res, schema)
    assert step is not None and step.message.header.session_id == SID
    other = C.AuthorizationSetupRes(
        header=C.MessageHeader(session_id=bytes(8), time_stamp=0),
        response_code=C.ResponseCode.OK,
        authorization_services=(C.Authorization.EIM,),
        certificate_installation_service=False,
    )
    assert ev.receive(other, Schema.ISO20_COMMON) is None
    assert ev.error == "AuthorizationSetupRes carries session id 0000000000000000, not ours"


def test_rational_numbers() -> None:
    for x in (0, 1, 400, 32767, 80_000, 11_000, 1_380, 0.5, 12.34, -5, 86_400_000):
        r = rational(DC, x)
        assert -32768 <= r.value <= 32767
        assert value_of(r) == pytest.approx(x, rel=1e-4)
    assert AC.RationalNumber is not DC.RationalNumber  # each set has its own types


def test_terminate_with_the_power_delivery_start_stops_at_once() -> None:
    secc = SpecSecc(terminate_at_power_delivery=True)
    ev = run(Ev20Script(mode="ac"), secc)
    assert ev.error is None and ev.loops == 0 and ev.stop_kind == "Terminate"
    assert secc.seen[-3:] == ["PowerDeliveryReq", "PowerDeliveryReq", "SessionStopReq"]


def test_pause_notification_ends_with_session_stop_pause() -> None:
    secc = SpecSecc(terminate_at_loop=1, notification="Pause")
    ev = run(Ev20Script(mode="ac", charge_loops=5), secc)
    assert ev.error is None and ev.loops == 1
    assert secc.seen[-1] == "SessionStopReq"
    assert secc.last.charging_session is C.ChargingSession.Pause


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mode": "wpt"}, "mode 'wpt': use 'ac' or 'dc'"),
        ({"control": "smart"}, "control 'smart': use 'scheduled' or 'dynamic'"),
        ({"stop": "Later"}, "stop 'Later': use 'Terminate' or 'Pause'"),
        ({"charge_loops": 0}, "charge_loops must be at least 1"),
    ],
)
def test_bad_scripts_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Ev20Script(**changes)  # type: ignore[arg-type]
