"""DC: CableCheck, PreCharge, CurrentDemand, WeldingDetection.

CableCheck starts the isolation test once and answers Ongoing until the EVSE reports
the isolation Valid (or Warning); PreCharge sets the power module's target and records
whether the present voltage is within ``precharge_tolerance`` of it.  Both give up after
their limits (``Timers.cable_check`` / ``Timers.pre_charge``), checked on every poll;
an EV that stops polling meets V2G_SECC_Sequence_Timeout.
"""

from __future__ import annotations

from typing import Any

from secc.core.actions import Action, SetDcTarget, StartIsolationTest
from secc.core.construct import Builders, builder
from secc.core.context import Context, Reply, State, loop_built, physical_value, value_of
from secc.core.failures import PeerError, Timeout, WrongChargeParameter
from secc.core.iso2.power import check_contactors, meter_info, receipt_required

PRECHARGE_MAX_CURRENT = 2.0  # amperes; IEC 61851-23 limits pre-charge current


def isolation_step(ctx: Context, now: float, name: str) -> tuple[Action, ...]:
    """One CableCheck request (any protocol): the first starts the isolation test at the
    lower of the EV's and the EVSE's maximum voltage; later ones time out after
    ``timers.cable_check``; a Fault refuses; Valid or Warning sets ``isolation_valid``."""
    actions: tuple[Action, ...] = ()
    if not ctx.isolation_requested:
        ctx.isolation_requested = True
        ctx.started_at["CableCheck"] = now
        voltage = min(ctx.ev_max_voltage, ctx.config.dc.max_voltage)
        actions = (StartIsolationTest(voltage=voltage),)
    elif now - ctx.started_at["CableCheck"] > ctx.config.timers.cable_check:
        raise Timeout(f"{name} did not finish within its limit")
    isolation = ctx.status.isolation
    if isolation == "Fault":
        raise PeerError("isolation fault")
    ctx.isolation_valid = isolation in ("Valid", "Warning")
    return actions


def cable_check(ctx: Context, req: Any, now: float) -> Reply:
    mod = ctx.mod
    actions = isolation_step(ctx, now, "CableCheck")
    processing = mod.EVSEProcessing.Finished if ctx.isolation_valid else mod.EVSEProcessing.Ongoing
    body = mod.CableCheckRes(
        response_code=mod.ResponseCode.OK,
        dc_evse_status=ctx.dc_evse_status(),
        evse_processing=processing,
    )
    return Reply(
        body, State.CABLE_CHECK_DONE if ctx.isolation_valid else State.CABLE_CHECK, actions
    )


def _target(ctx: Context, voltage: float, current: float) -> tuple[Action, ...]:
    lim = ctx.config.dc
    if voltage > lim.max_voltage or voltage > ctx.ev_max_voltage or voltage < 0 or current < 0:
        raise WrongChargeParameter(f"target {voltage} V / {current} A is outside the limits")
    last = ctx.target_memo
    if last is not None and last[0] == voltage and last[1] == current:
        return last[2]  # the loop asks the same target again and again: the same action
    actions = (_set_dc_target(voltage, current),)
    ctx.target_memo = (voltage, current, actions)
    return actions


_set_dc_target = builder(SetDcTarget, "voltage", "current")


def pre_charge(ctx: Context, req: Any, now: float) -> Reply:
    mod = ctx.mod
    voltage = value_of(req.ev_target_voltage)
    current = min(value_of(req.ev_target_current), PRECHARGE_MAX_CURRENT)
    started = ctx.started_at.setdefault("PreCharge", now)
    if now - started > ctx.config.timers.pre_charge:
        raise Timeout("PreCharge did not reach the target voltage within its limit")
    actions = _target(ctx, voltage, current) if voltage != ctx.precharge_target else ()
    ctx.precharge_target = voltage
    present = ctx.status.present_voltage
    ctx.precharge_reached = abs(present - voltage) <= ctx.config.dc.precharge_tolerance
    body = mod.PreChargeRes(
        response_code=mod.ResponseCode.OK,
        dc_evse_status=ctx.dc_evse_status(),
        evse_present_voltage=ctx.pv(present, "V"),
    )
    return Reply(body, State.PRE_CHARGE, actions)


_LOOP_FIELDS = (
    "response_code",
    "dc_evse_status",
    "evse_present_voltage",
    "evse_present_current",
    "evse_current_limit_achieved",
    "evse_voltage_limit_achieved",
    "evse_power_limit_achieved",
    "evse_maximum_voltage_limit",
    "evse_maximum_current_limit",
    "evse_maximum_power_limit",
)
# ISO 15118-2 adds these (DIN has none of them)
_ISO_FIELDS = (*_LOOP_FIELDS, "evseid", "sa_schedule_tuple_id", "meter_info", "receipt_required")
_DIN_RES = Builders(*_LOOP_FIELDS)
_ISO_RES = Builders(*_ISO_FIELDS)


def _limits(ctx: Context, mod: Any, max_power: float) -> tuple[Any, Any, Any]:
    """The EVSE's maximum voltage, current and power as PhysicalValues: made again only
    when the power limit in force (or the module) changes, not per loop message."""
    memo = ctx.limits_memo
    if memo is not None and memo[0] is mod.PhysicalValue and memo[1] == max_power:
        return memo[2]  # type: ignore[no-any-return]
    lim = ctx.config.dc
    pvs = (
        physical_value(mod, lim.max_voltage, "V"),
        physical_value(mod, lim.max_current, "A"),
        physical_value(mod, max_power, "W"),
    )
    ctx.limits_memo = (mod.PhysicalValue, max_power, pvs)
    return pvs


def _present(ctx: Context, mod: Any) -> tuple[Any, Any]:
    """The EVSE's present voltage and current as PhysicalValues, made once per status
    report (the HAL's status after each target), not per loop message."""
    st = ctx.status
    memo = ctx.present_memo
    if memo is not None and memo[0] is st and memo[1] is mod.PhysicalValue:
        return memo[2]  # type: ignore[no-any-return]
    pvs = (
        physical_value(mod, st.present_voltage, "V"),
        physical_value(mod, st.present_current, "A"),
    )
    ctx.present_memo = (st, mod.PhysicalValue, pvs)
    return pvs


def _loop_values(
    ctx: Context, mod: Any, req: Any, now: float
) -> tuple[tuple[Any, ...], tuple[Action, ...]]:
    """The CurrentDemandRes values ISO and DIN share (in ``_LOOP_FIELDS`` order), and the
    power module's new target."""
    if ctx.contactors_closed and not ctx.status.contactors_closed:
        check_contactors(ctx, now)
    lim = ctx.config.dc
    pv = req.ev_target_voltage
    voltage = float(pv.value) * 10.0 ** int(pv.multiplier)  # (value_of, inline)
    pv = req.ev_target_current
    current = float(pv.value) * 10.0 ** int(pv.multiplier)
    max_current = lim.max_current
    current_limited = current >= max_current
    if current_limited:
        current = max_current
    max_power = lim.max_power
    if ctx.csms_schedule is not None:  # the CSMS's limit in force bounds the delivery
        scheduled = ctx.scheduled_power(now)
        if scheduled is not None:
            max_power = min(max_power, scheduled)
    power_limited = voltage * current >= max_power
    if power_limited and voltage > 0:
        current = max_power / voltage
    actions = _target(ctx, voltage, current)
    present_v, present_i = _present(ctx, mod)
    max_v, max_i, max_p = _limits(ctx, mod, max_power)
    values = (
        mod.ResponseCode.OK,
        ctx.dc_evse_status(),
        present_v,
        present_i,
        current_limited,
        voltage >= lim.max_voltage,
        power_limited,
        max_v,
        max_i,
        max_p,
    )
    return values, actions


def current_demand(ctx: Context, req: Any, now: float) -> Reply:
    mod = ctx.mod
    values, actions = _loop_values(ctx, mod, req, now)
    cfg = ctx.config
    values += (
        cfg.evse_id,
        ctx.sa_schedule_tuple_id,
        None if cfg.meter_id is None else meter_info(ctx),
        receipt_required(ctx, now) if cfg.metering_receipts else None,
    )
    body = loop_built(ctx, _ISO_RES, mod.CurrentDemandRes, values)
    return Reply(body, State.DC_CHARGING, actions)


def welding_detection(ctx: Context, req: Any, now: float) -> Reply:
    mod = ctx.mod
    body = mod.WeldingDetectionRes(
        response_code=mod.ResponseCode.OK,
        dc_evse_status=ctx.dc_evse_status(),
        evse_present_voltage=ctx.pv(ctx.status.present_voltage, "V"),
    )
    return Reply(body, State.DC_STOPPED)
