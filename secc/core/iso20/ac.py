"""-20 AC: AC_ChargeParameterDiscovery and AC_ChargeLoop (schema ``iso20-ac``, payload
type 0x8003).

The station's power (its AC limit, cut by the CSMS schedule and, in scheduled mode, by
the selected schedule) goes to the EV as EVSETargetActivePower; in standby it is 0.
"""

from __future__ import annotations

from typing import Any

from secc.core.construct import Builders
from secc.core.context import Context, Reply, frozen, loop_built
from secc.core.failures import ServiceSelectionInvalid, WrongChargeParameter
from secc.core.iso2.power import check_contactors
from secc.core.iso20.common import (
    AC,
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

MIN_CURRENT = 6.0  # amperes per phase: IEC 61851-1's lowest PWM current


def _req_mode(bpt: bool, scheduled: bool) -> Any:
    """The control mode class the EV must send in this service and control mode."""
    if bpt:
        return (
            AC.BPT_Scheduled_AC_CLReqControlMode
            if scheduled
            else AC.BPT_Dynamic_AC_CLReqControlMode
        )
    return AC.Scheduled_AC_CLReqControlMode if scheduled else AC.Dynamic_AC_CLReqControlMode


def _total(mode: Any, name: str) -> float:
    """An EV power over all phases: where its _L2/_L3 elements are present, the base
    element is phase L1's alone [V2G20-1818] [V2G20-1819]."""
    total = number(getattr(mode, name))
    for phase in (getattr(mode, name + "_l2", None), getattr(mode, name + "_l3", None)):
        if phase is not None:
            total += number(phase)
    return total


def _res_mode(bpt: bool, scheduled: bool) -> Any:
    """The control mode class of the station's answer."""
    if bpt:
        return (
            AC.BPT_Scheduled_AC_CLResControlMode
            if scheduled
            else AC.BPT_Dynamic_AC_CLResControlMode
        )
    return AC.Scheduled_AC_CLResControlMode if scheduled else AC.Dynamic_AC_CLResControlMode


def charge_parameter_discovery(ctx: Context, req: Any, now: float) -> Reply:
    """The EV's parameters must be of the selected service (BPT_AC_CPD for AC_BPT, the
    unidirectional ones otherwise) and fit the station's power; else
    FAILED_WrongChargeParameter.  AC_BPT answers with the discharge limits too."""
    ev = req.ac_cpd_req_energy_transfer_mode
    bpt = is_bpt(ctx)
    wanted = AC.BPT_AC_CPDReqEnergyTransferMode if bpt else AC.AC_CPDReqEnergyTransferMode
    if type(ev) is not wanted:
        raise WrongChargeParameter(f"{type(ev).__name__} for the selected service")
    ev_max = _total(ev, "ev_maximum_charge_power")
    ev_min = _total(ev, "ev_minimum_charge_power")
    lim = ctx.config.ac
    if ev_max <= 0 or ev_min > ev_max or ev_min > lim.max_power:
        raise WrongChargeParameter(f"EV power {ev_min}-{ev_max} W does not fit {lim.max_power} W")
    ctx.ev_max_power = ev_max
    common = {
        "evse_maximum_charge_power": rn(AC, lim.max_power),
        "evse_minimum_charge_power": rn(AC, lim.nominal_voltage * MIN_CURRENT * lim.phases),
        "evse_nominal_frequency": rn(AC, lim.nominal_frequency),
    }
    if bpt:
        ctx.ev_max_discharge_power = abs(_total(ev, "ev_maximum_discharge_power"))
        mode = AC.BPT_AC_CPDResEnergyTransferMode(
            **common,
            evse_maximum_discharge_power=rn(AC, lim.max_discharge_power),
            evse_minimum_discharge_power=rn(AC, 0.0),
        )
    else:
        mode = AC.AC_CPDResEnergyTransferMode(**common)
    body = AC.AC_ChargeParameterDiscoveryRes(
        header=header(ctx, AC),
        response_code=AC.ResponseCode.OK,
        ac_cpd_res_energy_transfer_mode=mode,
    )
    return Reply(body, Iso20State.CHARGE_PARAMETERS)


_RES_MODES: dict[tuple[Any, ...], Any] = {}  # one frozen control mode per target


def charge_loop(ctx: Context, req: Any, now: float) -> Reply:
    """EVSETargetActivePower: the station's charge power within the schedule and the EV's
    maximum; in an AC_BPT session a discharge the station asks
    (:func:`~secc.core.iso20.common.discharge_request`) is a negative target within the
    station's and the EV's discharge limits; 0 in standby."""
    check_contactors(ctx, now)
    mode = req.cl_req_control_mode
    kind = type(mode)
    scheduled = ctx.control_mode == "Scheduled"
    bpt = is_bpt(ctx)
    if kind is not _req_mode(bpt, scheduled):
        raise ServiceSelectionInvalid(f"{kind.__name__} in a {ctx.control_mode} session")
    target = power_cap(ctx)
    if scheduled:
        target = min(target, ctx.schedules.get(ctx.sa_schedule_tuple_id, target))
    else:
        target = min(target, _total(mode, "ev_maximum_charge_power"))
    if bpt:
        if mode.ev_maximum_discharge_power is not None:
            ctx.ev_max_discharge_power = abs(_total(mode, "ev_maximum_discharge_power"))
        discharge = discharge_request(ctx)
        if discharge > 0:
            target = -discharge
    if ctx.standby:
        target = 0.0
    res_mode = loop_res_mode(bpt, scheduled, target)
    meter = loop_meter_info(ctx, AC, bool(req.meter_info_requested))
    values = (header(ctx, AC), AC.ResponseCode.OK, evse_status(ctx, AC), meter, res_mode)
    body = loop_built(ctx, _LOOP_RES, AC.AC_ChargeLoopRes, values)
    return Reply(body, Iso20State.STANDBY if ctx.standby else Iso20State.CHARGE_LOOP)


_LOOP_RES = Builders("header", "response_code", "evse_status", "meter_info", "cl_res_control_mode")


def loop_res_mode(bpt: bool, scheduled: bool, target: float) -> Any:
    """The loop response's control mode for ``target`` watts: one frozen object each."""
    return frozen(
        _RES_MODES,
        (bpt, scheduled, target),
        lambda: _res_mode(bpt, scheduled)(evse_target_active_power=rn(AC, target)),
    )
