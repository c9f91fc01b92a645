"""ISO 15118-20 bidirectional power transfer (AC_BPT, DC_BPT) in the core: the services
and their parameter sets, BPT charge parameter discovery, discharge in the loops within
the station's and the EV's limits, and the safety rules (no discharge outside BPT, no
target beyond the limits).  EV messages are built here from the -20 XSDs.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secc import codec
from secc.core.actions import CloseContactors, SetDcTarget
from secc.core.config import AcLimits, DcLimits
from secc.core.context import State
from secc.core.events import AuthorizationResult, ChargingScheduleUpdate

from .iso20_peer import Ev, config, rn, start, to_precharged

C = codec.schema_module("iso20-common")
A = codec.schema_module("iso20-ac")
D = codec.schema_module("iso20-dc")

DC_LIMITS = DcLimits(max_discharge_current=50.0, max_discharge_power=15_000.0)
AC_LIMITS = AcLimits(max_discharge_current=16.0)


def bpt_config(**kw: Any) -> Any:
    base: dict[str, Any] = {"bpt": True, "dc": DC_LIMITS, "ac": AC_LIMITS}
    base.update(kw)
    return config(**base)


def authorized(ev: Ev) -> None:
    assert ev.handshake().response_code.value == "OK_SuccessfulNegotiation"
    assert ev.session_setup().response_code.value == "OK_NewSessionEstablished"
    assert ev.authorization_setup().response_code.value == "OK"
    ev.feed(AuthorizationResult(accepted=True, id_token="TAG1"))
    assert ev.authorization().evse_processing.value == "Finished"


def params(res: Any, pid: int) -> dict[str, int]:
    sets = {s.parameter_set_id: s for s in res.service_parameter_list.parameter_set}
    return {p.name: p.int_value for p in sets[pid].parameter}


def bpt_cpd(ev: Ev) -> Any:
    if ev.dc:
        mode = D.BPT_DC_CPDReqEnergyTransferMode(
            ev_maximum_charge_power=rn(D, 100_000, 1),
            ev_minimum_charge_power=rn(D, 0),
            ev_maximum_charge_current=rn(D, 200),
            ev_minimum_charge_current=rn(D, 0),
            ev_maximum_voltage=rn(D, 450),
            ev_minimum_voltage=rn(D, 200),
            ev_maximum_discharge_power=rn(D, 20_000, 1),
            ev_minimum_discharge_power=rn(D, 0),
            ev_maximum_discharge_current=rn(D, 60),
            ev_minimum_discharge_current=rn(D, 0),
        )
        return ev.send(
            D.DC_ChargeParameterDiscoveryReq(header=ev.hdr(D), dc_cpd_req_energy_transfer_mode=mode)
        )
    mode = A.BPT_AC_CPDReqEnergyTransferMode(
        ev_maximum_charge_power=rn(A, 11_000, 1),
        ev_minimum_charge_power=rn(A, 1_400, 1),
        ev_maximum_discharge_power=rn(A, 7_000, 1),
        ev_minimum_discharge_power=rn(A, 0),
    )
    return ev.send(
        A.AC_ChargeParameterDiscoveryReq(header=ev.hdr(A), ac_cpd_req_energy_transfer_mode=mode)
    )


def to_bpt_selected(ev: Ev, dynamic: bool) -> Any:
    authorized(ev)
    sid = 6 if ev.dc else 5
    services = [s.service_id for s in ev.service_discovery().energy_transfer_service_list.service]
    assert services == [2 if ev.dc else 1, sid]
    detail = ev.service_detail(sid)
    assert detail.response_code.value == "OK"
    assert ev.service_selection(sid, 2 if dynamic else 1).response_code.value == "OK"
    return detail


def to_bpt_loop(ev: Ev, dynamic: bool) -> Any:
    to_bpt_selected(ev, dynamic)
    cpd = bpt_cpd(ev)
    assert cpd.response_code.value == "OK"
    res = ev.schedule_exchange(dynamic)
    assert res.evse_processing.value == "Finished"
    if ev.dc:
        to_precharged(ev)
    assert start(ev, dynamic).response_code.value == "OK"
    return cpd


def dc_bpt_loop(
    ev: Ev, dynamic: bool, current: float = 100.0, present: float = 395.0, voltage: float = 400
) -> Any:
    if dynamic:
        mode: Any = D.BPT_Dynamic_DC_CLReqControlMode(
            ev_target_energy_request=rn(D, 40_000, 1),
            ev_maximum_energy_request=rn(D, 60_000, 1),
            ev_minimum_energy_request=rn(D, -20_000, 1),
            ev_maximum_charge_power=rn(D, 100_000, 1),
            ev_minimum_charge_power=rn(D, 0),
            ev_maximum_charge_current=rn(D, 200),
            ev_maximum_voltage=rn(D, 450),
            ev_minimum_voltage=rn(D, 200),
            ev_maximum_discharge_power=rn(D, 20_000, 1),
            ev_minimum_discharge_power=rn(D, 0),
            ev_maximum_discharge_current=rn(D, 60),
        )
    else:
        mode = D.BPT_Scheduled_DC_CLReqControlMode(
            ev_target_current=rn(D, current), ev_target_voltage=rn(D, voltage)
        )
    return ev.send(
        D.DC_ChargeLoopReq(
            header=ev.hdr(D),
            meter_info_requested=True,
            ev_present_voltage=rn(D, present),
            cl_req_control_mode=mode,
        )
    )


def targets(ev: Ev) -> list[SetDcTarget]:
    return [a for a in ev.last if isinstance(a, SetDcTarget)]


def test_bpt_services_are_offered_only_when_enabled_with_limits() -> None:
    for cfg, dc, offered in [
        (bpt_config(), True, [2, 6]),
        (bpt_config(), False, [1, 5]),
        (config(), True, [2]),  # bpt off
        (bpt_config(dc=DcLimits()), True, [2]),  # no discharge limits
        (bpt_config(ac=AcLimits()), False, [1]),
    ]:
        ev = Ev(cfg=cfg, dc=dc)
        authorized(ev)
        res = ev.service_discovery()
        assert [s.service_id for s in res.energy_transfer_service_list.service] == offered
        if len(offered) == 1:
            bpt_id = 6 if dc else 5
            assert ev.service_detail(bpt_id).response_code.value == "FAILED_ServiceIDInvalid"


@pytest.mark.parametrize("dc", [True, False], ids=["DC", "AC"])
def test_bpt_parameter_sets(dc: bool) -> None:
    ev = Ev(cfg=bpt_config(), dc=dc)
    detail = to_bpt_selected(ev, dynamic=False)
    for pid, mode in ((1, 1), (2, 2)):
        p = params(detail, pid)
        assert p["ControlMode"] == mode
        assert p["BPTChannel"] == 1 and p["GeneratorMode"] == 1
        assert ("GridCodeIslandingDetectionMethod" in p) is (not dc)


def test_dc_bpt_charge_parameters_carry_the_discharge_limits() -> None:
    ev = Ev(cfg=bpt_config())
    to_bpt_selected(ev, dynamic=False)
    mode = bpt_cpd(ev).dc_cpd_res_energy_transfer_mode
    assert type(mode).__name__ == "BPT_DC_CPDResEnergyTransferMode"
    num = lambda x: float(x.value) * 10.0 ** int(x.exponent)  # noqa: E731
    assert num(mode.evse_maximum_discharge_current) == 50.0
    assert num(mode.evse_maximum_discharge_power) == 15_000.0


def test_unidirectional_parameters_in_a_bpt_service_and_back_are_refused() -> None:
    ev = Ev(cfg=bpt_config())
    to_bpt_selected(ev, dynamic=False)
    assert ev.charge_parameters().response_code.value == "FAILED_WrongChargeParameter"
    assert ev.session.state is State.ENDED
    ev = Ev(cfg=bpt_config())
    authorized(ev)
    ev.service_discovery()
    assert ev.service_selection(2, 1).response_code.value == "OK"
    assert bpt_cpd(ev).response_code.value == "FAILED_WrongChargeParameter"


def test_dc_bpt_scheduled_discharge_within_the_limits() -> None:
    ev = Ev(cfg=bpt_config())
    to_bpt_loop(ev, dynamic=False)
    assert any(isinstance(a, CloseContactors) for a in ev.actions)
    res = dc_bpt_loop(ev, False, current=80.0)
    assert res.response_code.value == "OK"
    assert type(res.cl_res_control_mode).__name__ == "BPT_Scheduled_DC_CLResControlMode"
    assert [t.current for t in targets(ev)] == [80.0]
    # the EV asks 200 A of discharge: the station's 50 A (below the EV's 60 A) hold
    res = dc_bpt_loop(ev, False, current=-200.0, present=250.0, voltage=250.0)
    (t,) = targets(ev)
    assert t.discharge and t.current == -50.0
    assert res.evse_current_limit_achieved is True
    # at 400 V the station's 15 kW discharge power limit holds first
    dc_bpt_loop(ev, False, current=-45.0, present=400.0)
    (t,) = targets(ev)
    assert t.current == pytest.approx(-15_000 / 400)


def test_dc_bpt_dynamic_discharges_when_the_csms_asks() -> None:
    ev = Ev(cfg=bpt_config())
    to_bpt_loop(ev, dynamic=True)
    res = dc_bpt_loop(ev, True)
    assert type(res.cl_res_control_mode).__name__ == "BPT_Dynamic_DC_CLResControlMode"
    (t,) = targets(ev)
    assert t.current > 0  # charging by default
    ev.feed(ChargingScheduleUpdate(entries=((0, -8_000.0, None),)))
    dc_bpt_loop(ev, True, present=400.0)
    (t,) = targets(ev)
    assert t.current == pytest.approx(-20.0)  # 8 kW at 400 V
    ev.feed(ChargingScheduleUpdate(entries=((0, -100_000.0, None),)))
    dc_bpt_loop(ev, True, present=400.0)
    (t,) = targets(ev)
    assert t.current == pytest.approx(-15_000 / 400)  # the station's discharge power


def test_no_discharge_in_a_unidirectional_session() -> None:
    """A negative limit from the CSMS in a DC session without BPT: no discharge, the
    target stays at or above zero."""
    from .iso20_peer import to_loop

    ev = Ev(cfg=bpt_config())
    to_loop(ev, dynamic=True)
    ev.feed(ChargingScheduleUpdate(entries=((0, -8_000.0, None),)))
    assert ev.dc_loop(True).response_code.value == "OK"
    assert all(t.current >= 0 for t in targets(ev))
    # and the EV may not switch to a BPT loop there
    assert dc_bpt_loop(ev, False, current=-10).response_code.value == (
        "FAILED_ServiceSelectionInvalid"
    )
    assert ev.session.state is State.ENDED
    assert all(
        a.current >= 0 for a in ev.actions if isinstance(a, SetDcTarget)
    )  # never a discharge


def test_power_delivery_discharge_channel_only_with_bpt() -> None:
    from .iso20_peer import to_precharged as pre
    from .iso20_peer import to_scheduled

    ev = Ev(cfg=bpt_config())
    authorized(ev)
    to_scheduled(ev, dynamic=False)
    pre(ev)
    res = ev.send(
        C.PowerDeliveryReq(
            header=ev.hdr(C),
            ev_processing=C.Processing.Finished,
            charge_progress=C.ChargeProgress.Start,
            bpt_channel_selection=C.ChannelSelection.Discharge,
        )
    )
    assert res.response_code.value == "FAILED_PowerDeliveryNotApplied"
    assert not any(isinstance(a, CloseContactors) for a in ev.actions)
    ev = Ev(cfg=bpt_config())
    to_bpt_selected(ev, dynamic=False)
    bpt_cpd(ev)
    ev.schedule_exchange(False)
    pre(ev)
    res = ev.send(
        C.PowerDeliveryReq(
            header=ev.hdr(C),
            ev_processing=C.Processing.Finished,
            charge_progress=C.ChargeProgress.Start,
            bpt_channel_selection=C.ChannelSelection.Discharge,
        )
    )
    assert res.response_code.value == "OK"


def ac_bpt_loop(ev: Ev, dynamic: bool) -> Any:
    if dynamic:
        mode: Any = A.BPT_Dynamic_AC_CLReqControlMode(
            ev_target_energy_request=rn(A, 40_000, 1),
            ev_maximum_energy_request=rn(A, 60_000, 1),
            ev_minimum_energy_request=rn(A, -20_000, 1),
            ev_maximum_charge_power=rn(A, 7_000, 1),
            ev_minimum_charge_power=rn(A, 1_400, 1),
            ev_present_active_power=rn(A, 6_900, 1),
            ev_present_reactive_power=rn(A, 0),
            ev_maximum_discharge_power=rn(A, 5_000, 1),
            ev_minimum_discharge_power=rn(A, 0),
        )
    else:
        mode = A.BPT_Scheduled_AC_CLReqControlMode(ev_present_active_power=rn(A, 6_900, 1))
    return ev.send(
        A.AC_ChargeLoopReq(header=ev.hdr(A), meter_info_requested=True, cl_req_control_mode=mode)
    )


def test_ac_bpt_dynamic_target_goes_negative_when_the_csms_asks() -> None:
    ev = Ev(cfg=bpt_config(), dc=False)
    cpd = to_bpt_loop(ev, dynamic=True)
    assert type(cpd.ac_cpd_res_energy_transfer_mode).__name__ == "BPT_AC_CPDResEnergyTransferMode"
    num = lambda x: float(x.value) * 10.0 ** int(x.exponent)  # noqa: E731
    res = ac_bpt_loop(ev, True)
    assert num(res.cl_res_control_mode.evse_target_active_power) == 7_000
    ev.feed(ChargingScheduleUpdate(entries=((0, -20_000.0, None),)))
    res = ac_bpt_loop(ev, True)
    # the EV's 5 kW discharge maximum holds (the station's is 230 V x 16 A x 3)
    assert num(res.cl_res_control_mode.evse_target_active_power) == -5_000
    assert res.meter_info is not None and res.meter_info.bpt_discharged_energy_reading_wh == 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dynamic=st.booleans(),
    requests=st.lists(
        st.tuples(
            st.floats(-500, 500, allow_nan=False),  # EV target current (scheduled)
            st.sampled_from([0.0, 150.0, 250.0, 400.0, 450.0]),  # EV present voltage
            st.sampled_from([None, -50_000.0, -8_000.0, -1.0, 5_000.0]),  # CSMS limit
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_dc_bpt_targets_stay_within_the_limits(
    dynamic: bool, requests: list[tuple[float, float, float | None]]
) -> None:
    """Whatever the EV and the CSMS ask, every target is within the station's charge and
    discharge current, and a discharge within the discharge power at the EV's voltage."""
    ev = Ev(cfg=bpt_config())
    to_bpt_loop(ev, dynamic)
    for current, present, limit in requests:
        if limit is not None:
            ev.feed(ChargingScheduleUpdate(entries=((0, limit, None),)))
        res = dc_bpt_loop(ev, dynamic, current=current, present=present, voltage=400)
        if ev.session.state is State.ENDED:
            assert res.response_code.value.startswith("FAILED")
            break
        for t in targets(ev):
            assert -DC_LIMITS.max_discharge_current - 1e-9 <= t.current <= DC_LIMITS.max_current
            if t.current < 0:
                assert -t.current * max(present, 0 if dynamic else 400) <= (
                    DC_LIMITS.max_discharge_power + 1e-6
                )
