"""-20 DC: DC_ChargeParameterDiscovery, DC_CableCheck, DC_PreCharge, DC_ChargeLoop,
DC_WeldingDetection (schema ``iso20-dc``, payload type 0x8004).

Cable check and pre-charge work as in ISO 15118-2 (:mod:`secc.core.iso2.dc`): the
isolation test starts once and the answer is Ongoing until the EVSE reports the isolation
valid, within ``timers.cable_check``; pre-charge sets the power module's target at a
limited current within ``timers.pre_charge``.  In the loop the scheduled mode follows the
EV's target within the station's limits; the dynamic mode has no EV target, so the
station charges at the EV's maximum within its own limits.
"""

from __future__ import annotations

from typing import Any

from secc.core.actions import Action, SetDcTarget
from secc.core.construct import Builders
from secc.core.context import Context, Reply, frozen, loop_built
from secc.core.failures import (
    ServiceSelectionInvalid,
    Timeout,
    WrongChargeParameter,
)
from secc.core.iso2.dc import PRECHARGE_MAX_CURRENT, _target, isolation_step
from secc.core.iso2.power import check_contactors
from secc.core.iso20.common import (
    DC,
    Iso20State,
    discharge_request,
    evse_status,
    header,
    is_bpt,
    loop_meter_info,
    number,
    power_cap,
)
from secc.core.iso20.common import rational as rn


def _req_mode(bpt: bool, scheduled: bool) -> Any:
    """The control mode class the EV must send in this service and control mode."""
    if bpt:
        return (
            DC.BPT_Scheduled_DC_CLReqControlMode
            if scheduled
            else DC.BPT_Dynamic_DC_CLReqControlMode
        )
    return DC.Scheduled_DC_CLReqControlMode if scheduled else DC.Dynamic_DC_CLReqControlMode


def charge_parameter_discovery(ctx: Context, req: Any, now: float) -> Reply:
    """The EV's limits must overlap the station's (voltage) and be of the selected service
    (BPT_DC_CPD for DC_BPT); else FAILED_WrongChargeParameter.  DC_BPT answers with the
    station's discharge limits too."""
    ev = req.dc_cpd_req_energy_transfer_mode
    bpt = is_bpt(ctx)
    wanted = DC.BPT_DC_CPDReqEnergyTransferMode if bpt else DC.DC_CPDReqEnergyTransferMode
    if type(ev) is not wanted:
        raise WrongChargeParameter(f"{type(ev).__name__} for the selected service")
    lim = ctx.config.dc
    ev_max_v, ev_min_v = number(ev.ev_maximum_voltage), number(ev.ev_minimum_voltage)
    if ev_max_v < lim.min_voltage or ev_min_v > lim.max_voltage or ev_max_v < ev_min_v:
        raise WrongChargeParameter(
            f"EV voltage {ev_min_v}-{ev_max_v} V outside {lim.min_voltage}-{lim.max_voltage} V"
        )
    ctx.ev_max_voltage = ev_max_v
    ctx.ev_max_current = number(ev.ev_maximum_charge_current)
    ctx.ev_max_power = number(ev.ev_maximum_charge_power)
    common = {
        "evse_maximum_charge_power": rn(DC, lim.max_power),
        "evse_minimum_charge_power": rn(DC, 0.0),
        "evse_maximum_charge_current": rn(DC, lim.max_current),
        "evse_minimum_charge_current": rn(DC, lim.min_current),
        "evse_maximum_voltage": rn(DC, lim.max_voltage),
        "evse_minimum_voltage": rn(DC, lim.min_voltage),
    }
    if bpt:
        ctx.ev_max_discharge_power = abs(number(ev.ev_maximum_discharge_power))
        ctx.ev_max_discharge_current = abs(number(ev.ev_maximum_discharge_current))
        mode = DC.BPT_DC_CPDResEnergyTransferMode(
            **common,
            evse_maximum_discharge_power=rn(DC, lim.max_discharge_power),
            evse_minimum_discharge_power=rn(DC, 0.0),
            evse_maximum_discharge_current=rn(DC, lim.max_discharge_current),
            evse_minimum_discharge_current=rn(DC, lim.min_discharge_current),
        )
    else:
        mode = DC.DC_CPDResEnergyTransferMode(**common)
    body = DC.DC_ChargeParameterDiscoveryRes(
        header=header(ctx, DC),
        response_code=DC.ResponseCode.OK,
        dc_cpd_res_energy_transfer_mode=mode,
    )
    return Reply(body, Iso20State.CHARGE_PARAMETERS)


def cable_check(ctx: Context, req: Any, now: float) -> Reply:
    actions = isolation_step(ctx, now, "DC_CableCheck")
    processing = DC.Processing
    body = DC.DC_CableCheckRes(
        header=header(ctx, DC),
        response_code=DC.ResponseCode.OK,
        evse_processing=processing.Finished if ctx.isolation_valid else processing.Ongoing,
    )
    state = Iso20State.CABLE_CHECK_DONE if ctx.isolation_valid else Iso20State.CABLE_CHECK
    return Reply(body, state, actions)


def pre_charge(ctx: Context, req: Any, now: float) -> Reply:
    voltage = number(req.ev_target_voltage)
    started = ctx.started_at.setdefault("PreCharge", now)
    if now - started > ctx.config.timers.pre_charge:
        raise Timeout("DC_PreCharge did not reach the target voltage within its limit")
    actions = (
        _target(ctx, voltage, PRECHARGE_MAX_CURRENT) if voltage != ctx.precharge_target else ()
    )
    ctx.precharge_target = voltage
    present = ctx.status.present_voltage
    ctx.precharge_reached = abs(present - voltage) <= ctx.config.dc.precharge_tolerance
    body = DC.DC_PreChargeRes(
        header=header(ctx, DC),
        response_code=DC.ResponseCode.OK,
        evse_present_voltage=rn(DC, present),
    )
    return Reply(body, Iso20State.PRE_CHARGE, actions)


def charge_loop(ctx: Context, req: Any, now: float) -> Reply:
    """The power module's new target (none in standby) and the present values.  A loop
    request of the other control mode (or of the other direction family: BPT in a
    unidirectional session and back) is FAILED_ServiceSelectionInvalid.

    DC_BPT: a discharge is a negative target current (:class:`SetDcTarget`), never beyond
    the station's or the EV's discharge current and power.  In the scheduled mode the EV
    asks it with a negative EVTargetCurrent; in the dynamic mode the station asks it
    (:func:`~secc.core.iso20.common.discharge_request`)."""
    check_contactors(ctx, now)
    lim = ctx.config.dc
    mode = req.cl_req_control_mode
    kind = type(mode)
    scheduled = ctx.control_mode == "Scheduled"
    bpt = is_bpt(ctx)
    if kind is not _req_mode(bpt, scheduled):
        raise ServiceSelectionInvalid(f"{kind.__name__} in a {ctx.control_mode} session")
    if bpt:
        if mode.ev_maximum_discharge_power is not None:
            ctx.ev_max_discharge_power = abs(number(mode.ev_maximum_discharge_power))
        if mode.ev_maximum_discharge_current is not None:
            ctx.ev_max_discharge_current = abs(number(mode.ev_maximum_discharge_current))
    cap = min(lim.max_power, power_cap(ctx))
    present = number(req.ev_present_voltage)
    if scheduled:
        voltage = number(mode.ev_target_voltage)
        current = number(mode.ev_target_current)
        cap = min(cap, ctx.schedules.get(ctx.sa_schedule_tuple_id, cap))
    else:
        voltage = min(number(mode.ev_maximum_voltage), lim.max_voltage)
        current = number(mode.ev_maximum_charge_current)
        cap = min(cap, number(mode.ev_maximum_charge_power))
        wanted = discharge_request(ctx)
        if wanted > 0 and present > 0:
            current = -wanted / present
    reference = max(present, voltage if scheduled else 0.0)
    if current < 0:
        current, current_limited, power_limited = _discharge(ctx, current, reference)
    else:
        current_limited = current >= lim.max_current
        current = min(current, lim.max_current)
        power_limited = reference > 0 and reference * current >= cap
        if power_limited:
            current = cap / reference
    actions: tuple[Action, ...] = () if ctx.standby else _bpt_target(ctx, voltage, current)
    st = ctx.status
    meter = loop_meter_info(ctx, DC, bool(req.meter_info_requested))
    memo = ctx.present_memo  # the present values as sent, once per status report
    if memo is not None and memo[0] is st and memo[1] is DC.RationalNumber:
        present_i, present_v = memo[2]
    else:
        present_i, present_v = rn(DC, st.present_current), rn(DC, st.present_voltage)
        ctx.present_memo = (st, DC.RationalNumber, (present_i, present_v))
    values = (
        header(ctx, DC),
        DC.ResponseCode.OK,
        evse_status(ctx, DC),
        meter,
        present_i,
        present_v,
        power_limited,
        current_limited,
        voltage >= lim.max_voltage,
        _res_mode(ctx, scheduled, bpt, cap),
    )
    body = loop_built(ctx, _LOOP_RES, DC.DC_ChargeLoopRes, values)
    return Reply(body, Iso20State.STANDBY if ctx.standby else Iso20State.CHARGE_LOOP, actions)


_LOOP_RES = Builders(
    "header",
    "response_code",
    "evse_status",
    "meter_info",
    "evse_present_current",
    "evse_present_voltage",
    "evse_power_limit_achieved",
    "evse_current_limit_achieved",
    "evse_voltage_limit_achieved",
    "cl_res_control_mode",
)


def _discharge(ctx: Context, current: float, reference: float) -> tuple[float, bool, bool]:
    """A discharge current (negative) cut to the station's and the EV's limits:
    (current, current limited, power limited).  Outside BPT: FAILED_WrongChargeParameter
    (a unidirectional session never sinks energy)."""
    if not is_bpt(ctx):
        raise WrongChargeParameter(f"a negative target current {current} A without BPT")
    lim = ctx.config.dc
    max_current = min(lim.max_discharge_current, ctx.ev_max_discharge_current)
    magnitude = -current
    current_limited = magnitude >= max_current
    magnitude = min(magnitude, max_current)
    max_power = min(lim.max_discharge_power, ctx.ev_max_discharge_power)
    power_limited = reference > 0 and reference * magnitude >= max_power
    if power_limited:
        magnitude = max_power / reference
    if reference <= 0:
        magnitude = 0.0  # no voltage to discharge against
    return -magnitude, current_limited, power_limited


def _bpt_target(ctx: Context, voltage: float, current: float) -> tuple[Action, ...]:
    """SetDcTarget within the voltage limits; a negative current only in a BPT session
    and within the station's discharge current."""
    if current >= 0:
        return _target(ctx, voltage, current)
    lim = ctx.config.dc
    if not is_bpt(ctx) or -current > lim.max_discharge_current + 1e-9:
        raise WrongChargeParameter(f"discharge {current} A outside the limits")
    if voltage > lim.max_voltage or voltage > ctx.ev_max_voltage or voltage < 0:
        raise WrongChargeParameter(f"target {voltage} V is outside the limits")
    return (SetDcTarget(voltage=voltage, current=current),)


_RES_MODES: dict[tuple[Any, ...], Any] = {}


def _res_mode(ctx: Context, scheduled: bool, bpt: bool, cap: float) -> Any:
    """The loop response's control mode: one frozen object per distinct set of limits."""
    lim = ctx.config.dc
    key: tuple[Any, ...] = (scheduled, bpt, cap, lim.max_current, lim.max_voltage)
    if bpt:
        key += (lim.min_voltage, lim.max_discharge_power, lim.max_discharge_current)
    hit = _RES_MODES.get(key)
    if hit is None:
        hit = frozen(_RES_MODES, key, lambda: _make_res_mode(lim, scheduled, bpt, cap))
    return hit


def _make_res_mode(lim: Any, scheduled: bool, bpt: bool, cap: float) -> Any:
    if not bpt:
        if scheduled:
            return DC.Scheduled_DC_CLResControlMode()
        return DC.Dynamic_DC_CLResControlMode(
            evse_maximum_charge_power=rn(DC, cap),
            evse_minimum_charge_power=rn(DC, 0.0),
            evse_maximum_charge_current=rn(DC, lim.max_current),
            evse_maximum_voltage=rn(DC, lim.max_voltage),
        )
    discharge = {
        "evse_maximum_discharge_power": rn(DC, lim.max_discharge_power),
        "evse_minimum_discharge_power": rn(DC, 0.0),
        "evse_maximum_discharge_current": rn(DC, lim.max_discharge_current),
    }
    limits = {
        "evse_maximum_charge_power": rn(DC, cap),
        "evse_minimum_charge_power": rn(DC, 0.0),
        "evse_maximum_charge_current": rn(DC, lim.max_current),
        "evse_maximum_voltage": rn(DC, lim.max_voltage),
        "evse_minimum_voltage": rn(DC, lim.min_voltage),
        **discharge,
    }
    if scheduled:
        return DC.BPT_Scheduled_DC_CLResControlMode(**limits)
    return DC.BPT_Dynamic_DC_CLResControlMode(**limits)


def welding_detection(ctx: Context, req: Any, now: float) -> Reply:
    body = DC.DC_WeldingDetectionRes(
        header=header(ctx, DC),
        response_code=DC.ResponseCode.OK,
        evse_present_voltage=rn(DC, ctx.status.present_voltage),
    )
    return Reply(body, Iso20State.WELDING_DETECTION)
