"""-20 AC: AC_ChargeParameterDiscovery and AC_ChargeLoop (schema ``iso20-ac``, payload
type 0x8003).

The station's power (its AC limit, cut by the CSMS schedule and, in scheduled mode, by
the selected schedule) goes to the EV as EVSETargetActivePower; in standby it is 0.
"""

from __future__ import annotations

from typing import Any

from secc.core.context import Context, Reply
from secc.core.failures import ServiceSelectionInvalid, WrongChargeParameter
from secc.core.iso2.power import check_contactors
from secc.core.iso20.common import (
    AC,
    Iso20State,
    evse_status,
    header,
    loop_meter_info,
    number,
    power_cap,
)
from secc.core.iso20.common import rational as rn

MIN_CURRENT = 6.0  # amperes per phase: IEC 61851-1's lowest PWM current

_SCHEDULED = AC.Scheduled_AC_CLReqControlMode
_DYNAMIC = AC.Dynamic_AC_CLReqControlMode


def charge_parameter_discovery(ctx: Context, req: Any, now: float) -> Reply:
    ev = req.ac_cpd_req_energy_transfer_mode
    if type(ev) is not AC.AC_CPDReqEnergyTransferMode:
        raise WrongChargeParameter("bidirectional parameters for the AC service")
    ev_max, ev_min = number(ev.ev_maximum_charge_power), number(ev.ev_minimum_charge_power)
    lim = ctx.config.ac
    if ev_max <= 0 or ev_min > ev_max or ev_min > lim.max_power:
        raise WrongChargeParameter(f"EV power {ev_min}-{ev_max} W does not fit {lim.max_power} W")
    ctx.ev_max_power = ev_max
    mode = AC.AC_CPDResEnergyTransferMode(
        evse_maximum_charge_power=rn(AC, lim.max_power),
        evse_minimum_charge_power=rn(AC, lim.nominal_voltage * MIN_CURRENT * lim.phases),
        evse_nominal_frequency=rn(AC, lim.nominal_frequency),
    )
    body = AC.AC_ChargeParameterDiscoveryRes(
        header=header(ctx, AC),
        response_code=AC.ResponseCode.OK,
        ac_cpd_res_energy_transfer_mode=mode,
    )
    return Reply(body, Iso20State.CHARGE_PARAMETERS)


def charge_loop(ctx: Context, req: Any, now: float) -> Reply:
    check_contactors(ctx, now)
    mode = req.cl_req_control_mode
    kind = type(mode)
    scheduled = ctx.control_mode == "Scheduled"
    if kind is not (_SCHEDULED if scheduled else _DYNAMIC):
        raise ServiceSelectionInvalid(f"{kind.__name__} in a {ctx.control_mode} session")
    target = power_cap(ctx)
    if scheduled:
        target = min(target, ctx.schedules.get(ctx.sa_schedule_tuple_id, target))
    else:
        target = min(target, number(mode.ev_maximum_charge_power))
    if ctx.standby:
        target = 0.0
    if scheduled:
        res_mode = AC.Scheduled_AC_CLResControlMode(evse_target_active_power=rn(AC, target))
    else:
        res_mode = AC.Dynamic_AC_CLResControlMode(evse_target_active_power=rn(AC, target))
    meter = loop_meter_info(ctx, AC, bool(req.meter_info_requested))
    body = AC.AC_ChargeLoopRes(
        header=header(ctx, AC),
        response_code=AC.ResponseCode.OK,
        evse_status=evse_status(ctx, AC),
        meter_info=meter,
        cl_res_control_mode=res_mode,
    )
    return Reply(body, Iso20State.STANDBY if ctx.standby else Iso20State.CHARGE_LOOP)
