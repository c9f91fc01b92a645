"""The charging loop's fast path (issue 17): one step per loop request, without the
generic dispatch.

While a session is in its charging loop (ISO 15118-2 / DIN ``DC_CHARGING`` with
CurrentDemandReq, ISO 15118-2 ``AC_CHARGING`` with ChargingStatusReq, ISO 15118-20
``CHARGE_LOOP`` / ``STANDBY`` with DC_ChargeLoopReq or AC_ChargeLoopReq) it holds a
:class:`Plan`: what its loop step needs that does not change in the loop (the schema
module's classes, the station's limits, the positional builders of the response) and
what it sent last (the parts of the last response, to answer with the same objects
while nothing changed).  :meth:`secc.core.session.SeccSession.handle` gives a loop
request to the plan's step first; the step computes what the loop handler computes
(:mod:`secc.core.iso2.dc`, :mod:`secc.core.iso2.power`, :mod:`secc.core.iso20.dc`,
:mod:`secc.core.iso20.ac`) and the session sends it as ``_apply`` / ``_send`` would.

A step answers only the common case.  Whatever else may happen (a target outside the
limits, contactor feedback missing too long, BPT, another control mode's request) makes it
return None *before it changed any fact of the session*, and the generic path (the
handler of the transition table) answers, refuses or ends the session as ever.  The
facts it changes are the ones the handler changes, in the same way; it reads the wall
clock (``Context.unix_seconds``) exactly when the handler does.
``tests/core/test_loop_fast_path.py`` runs the same request and event sequences through
both paths and compares every output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from secc.core.actions import Action, SendResponse
from secc.core.construct import Builders, builder
from secc.core.context import Context, State, physical_value
from secc.core.events import Schema
from secc.core.iso2 import dc as iso2_dc
from secc.core.iso2 import power as iso2_power
from secc.core.iso20 import ac as iso20_ac
from secc.core.iso20 import dc as iso20_dc
from secc.core.iso20.common import (
    AC,
    BPT_SERVICES,
    DC,
    SCHEMA_OF_MODULE,
    Iso20State,
    evse_status,
    header,
    loop_meter_info,
    rational,
)

# the states a loop plan serves: -2/DIN, -20
LOOP_STATES = frozenset(
    {State.DC_CHARGING, State.AC_CHARGING, Iso20State.CHARGE_LOOP, Iso20State.STANDBY}
)
_CACHE_LIMIT = 4096  # values kept per plan cache (present values: PhysicalValues by value)

Step = Callable[["Plan", Context, Any, float], "tuple[Any, tuple[Action, ...], Any] | None"]


class Plan:
    """One session's loop: what its step reads instead of looking it up per message, and
    the parts of the last response (compared by identity: equal parts made again give
    an equal response, only not the same object)."""

    __slots__ = (
        "amps",
        "body",
        "build",
        "cap",
        "control_mode",
        "evse_id",
        "evse_status",
        "feedback",
        "header",
        "header_cls",
        "iso",
        "limit_key",
        "limits",
        "max_current",
        "max_power",
        "max_voltage",
        "message",
        "meter",
        "meter_cls",
        "meter_id",
        "meter_key",
        "metering_confirmation",
        # static facts
        "mod",
        "mode_cls",
        "mode_key",
        "ok",
        "present",
        "receipts",
        "request",
        "request_name",
        "res_mode",
        "response",
        "response_name",
        "response_schema",
        "scheduled",
        "schema",
        "service_id",
        "sid",
        "stamp",
        "states",
        "status",
        "status_key",
        # dispatch (read by the session)
        "step",
        "timeout",
        "values",
        # what was sent last
        "volts",
        "wrapped",
    )

    step: Step
    schema: Any
    wrapped: bool
    request: Any
    request_name: Any
    states: tuple[Any, ...]
    timeout: float
    response_name: Any
    response_schema: Any
    header_cls: Any
    message: Any
    body: Any
    mod: Any
    build: Any
    max_voltage: Any
    max_current: Any
    max_power: Any
    evse_id: Any
    meter_id: Any
    receipts: Any
    service_id: Any
    control_mode: Any
    scheduled: Any
    mode_cls: Any
    metering_confirmation: Any
    ok: Any
    cap: Any
    feedback: float
    iso: bool
    meter_cls: Any
    volts: dict[float, Any]
    amps: dict[float, Any]
    status: Any
    present: Any
    limit_key: Any
    limits: Any
    status_key: Any
    evse_status: Any
    meter_key: Any
    meter: Any
    stamp: Any
    sid: Any
    header: Any
    mode_key: Any
    res_mode: Any
    values: Any
    response: Any

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, None)
        self.volts = {}  # present values by value (-2: PhysicalValue, -20: RationalNumber)
        self.amps = {}

    def __deepcopy__(self, memo: dict[int, Any]) -> Plan:
        """A copied session gets its own plan; what it holds is shared (modules, classes
        and frozen values: nothing a step changes in place but its two caches)."""
        other = Plan()
        for name in self.__slots__:
            setattr(other, name, getattr(self, name))
        other.volts = dict(self.volts)
        other.amps = dict(self.amps)
        return other


def plan(ctx: Context, state: Any, iso20: bool) -> Plan | None:
    """The plan of the loop ``state`` for this session, or None (no fast path: BPT,
    a schema without one)."""
    p = Plan()
    cfg = ctx.config
    p.feedback = cfg.timers.contactor_feedback
    if iso20:
        if ctx.service_id in BPT_SERVICES:
            return None  # discharge: the generic handler
        dc = ctx.is_dc
        mod = DC if dc else AC
        p.wrapped = False
        p.schema = Schema.ISO20_DC if dc else Schema.ISO20_AC
        p.request_name = "DC_ChargeLoopReq" if dc else "AC_ChargeLoopReq"
        p.request = getattr(mod, p.request_name)
        p.response_name = "DC_ChargeLoopRes" if dc else "AC_ChargeLoopRes"
        res = getattr(mod, p.response_name)
        p.response_schema = SCHEMA_OF_MODULE[res.__module__]
        p.states = (Iso20State.CHARGE_LOOP, Iso20State.STANDBY)
        p.timeout = cfg.timers.charge_loop_sequence_timeout
        p.service_id = ctx.service_id
        p.control_mode = ctx.control_mode
        p.scheduled = ctx.control_mode == "Scheduled"
        p.metering_confirmation = cfg.metering_confirmation
        p.ok = mod.ResponseCode.OK
        if dc:
            p.step = _iso20_dc
            p.mode_cls = iso20_dc._req_mode(False, p.scheduled)
            p.build = iso20_dc._LOOP_RES[res]
            lim = cfg.dc
            p.max_voltage, p.max_current, p.max_power = (
                lim.max_voltage,
                lim.max_current,
                lim.max_power,
            )
            p.cap = min(lim.max_power, max(lim.max_power, 0.0))
        else:
            p.step = _iso20_ac
            p.mode_cls = iso20_ac._req_mode(False, p.scheduled)
            p.build = iso20_ac._LOOP_RES[res]
            p.max_power = cfg.ac.max_power
            p.cap = max(cfg.ac.max_power, 0.0)
        p.mod = mod
        return p
    schema = ctx.schema
    if schema not in (Schema.ISO2, Schema.DIN):
        return None
    mod = ctx.mod
    iso = schema is Schema.ISO2
    p.wrapped = True
    p.schema = schema
    p.mod = mod
    p.timeout = cfg.timers.sequence_timeout
    p.header_cls = mod.MessageHeader
    p.message = _MESSAGE[mod.V2G_Message]
    p.body = _BODY[mod.Body]
    p.ok = mod.ResponseCode.OK
    p.evse_id = cfg.evse_id
    p.meter_id = cfg.meter_id if iso else None
    p.meter_cls = iso2_power._METER[mod.MeterInfo] if iso else None
    p.iso = iso
    p.receipts = cfg.metering_receipts
    if state is State.DC_CHARGING:
        p.step = _current_demand
        p.request_name = "CurrentDemandReq"
        p.response_name = "CurrentDemandRes"
        p.build = (iso2_dc._ISO_RES if iso else iso2_dc._DIN_RES)[mod.CurrentDemandRes]
        lim = cfg.dc
        p.max_voltage, p.max_current, p.max_power = lim.max_voltage, lim.max_current, lim.max_power
    elif state is State.AC_CHARGING and iso:
        p.step = _iso2_ac
        p.request_name = "ChargingStatusReq"
        p.response_name = "ChargingStatusRes"
        p.build = _AC_STATUS_RES[mod.ChargingStatusRes]
    else:
        return None
    p.request = getattr(mod, p.request_name)
    p.states = (state, state)
    return p


_MESSAGE = Builders("header", "body")
_BODY = Builders("body_element")
_AC_STATUS_RES = Builders(
    "response_code",
    "evseid",
    "sa_schedule_tuple_id",
    "evse_max_current",
    "meter_info",
    "receipt_required",
    "ac_evse_status",
)
_set_dc_target = iso2_dc._set_dc_target
# 10.0 ** exponent for every PhysicalValue multiplier and RationalNumber exponent (int8):
# ``value * _POW[e]`` is ``value_of`` / ``number``, bit for bit, without the calls
_POW = {e: 10.0**e for e in range(-128, 128)}
_build_send = builder(SendResponse, "message", "schema", "name")


def _miss(cache: dict[float, Any], mod: Any, value: float, unit: str) -> Any:
    """A present value's PhysicalValue (the shared cache's object), kept by value."""
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    pv = cache[value] = physical_value(mod, value, unit)
    return pv


def _miss20(cache: dict[float, Any], mod: Any, value: float) -> Any:
    """A present value's RationalNumber (the shared cache's object), kept by value."""
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    rn = cache[value] = rational(mod, value)
    return rn


def _stamp(ctx: Context, now: float) -> int:
    """``ctx.unix_seconds()`` (``ctx.now`` is ``now``), its common case inline."""
    sync = ctx.clock_sync
    if sync is not None and 0.0 <= now - sync[0] < 1.0:
        return int(sync[1] + (now - sync[0]))
    return ctx.unix_seconds()


# --- ISO 15118-2 / DIN: CurrentDemandReq ----------------------------------------------


def _current_demand(p: Plan, ctx: Context, req: Any, now: float) -> Any:
    """``iso2.dc.current_demand`` and ``iso2.din.current_demand`` (``p.meter_id``,
    ``p.receipts``: ISO only), in one piece."""
    st = ctx.status
    if (
        ctx.contactors_closed
        and not st.contactors_closed
        and now - ctx.contactors_closed_at > p.feedback
    ):
        return None  # the handler refuses: contactor feedback missing too long
    try:  # (value_of; a multiplier outside the facets came with violations: not here)
        pv = req.ev_target_voltage
        voltage = pv.value * _POW[pv.multiplier]
        pv = req.ev_target_current
        current = pv.value * _POW[pv.multiplier]
    except KeyError:
        return None
    max_current = p.max_current
    current_limited = current >= max_current
    if current_limited:
        current = max_current
    max_power = p.max_power
    if ctx.csms_schedule is not None:
        scheduled = ctx.scheduled_power(now)
        if scheduled is not None:
            max_power = min(max_power, scheduled)
    power_limited = voltage * current >= max_power
    if power_limited and voltage > 0:
        current = max_power / voltage
    # iso2.dc._target
    if voltage > p.max_voltage or voltage > ctx.ev_max_voltage or voltage < 0 or current < 0:
        return None  # the handler refuses the target
    memo = ctx.target_memo
    actions: tuple[Action, ...]
    if memo is not None and memo[0] == voltage and memo[1] == current:
        actions = memo[2]
    else:
        actions = (_set_dc_target(voltage, current),)
        ctx.target_memo = (voltage, current, actions)
    if st is p.status:
        present_v, present_i = p.present
    else:
        v = st.present_voltage
        present_v = p.volts.get(v) or _miss(p.volts, p.mod, v, "V")
        v = st.present_current
        present_i = p.amps.get(v) or _miss(p.amps, p.mod, v, "A")
        p.status = st
        p.present = (present_v, present_i)
    if max_power == p.limit_key:
        max_v, max_i, max_p = p.limits
    else:
        max_v, max_i, max_p = p.limits = iso2_dc._limits(ctx, p.mod, max_power)
        p.limit_key = max_power
    key = (
        ctx.stop_requested is None,
        ctx.renegotiation_requested and ctx.charging,
        ctx.isolation_requested and not ctx.isolation_valid,
        st.isolation,
    )
    if key == p.status_key:
        status = p.evse_status
    else:
        status = p.evse_status = ctx.dc_evse_status()
        p.status_key = key
    last = p.values
    meter = None
    if p.meter_id is not None:  # iso2.power.meter_info
        reading = int(st.energy_wh)
        sync = ctx.clock_sync  # ctx.unix_seconds(), its common case inline
        if sync is not None and 0.0 <= now - sync[0] < 1.0:
            stamp = int(sync[1] + (now - sync[0]))
        else:
            stamp = ctx.unix_seconds()
        meter = p.meter
        if meter is None or reading != p.meter_key[0] or stamp != p.meter_key[1]:
            meter = p.meter = p.meter_cls(p.meter_id, reading, stamp)
            p.meter_key = (reading, stamp)
    values: tuple[Any, ...] = (
        p.ok,
        status,
        present_v,
        present_i,
        current_limited,
        voltage >= p.max_voltage,
        power_limited,
        max_v,
        max_i,
        max_p,
    )
    if p.iso:
        receipt = None
        if p.receipts and ctx.payment_option == "Contract":  # iso2.power.receipt_required
            receipt = ctx.receipt_due_at is not None and now >= ctx.receipt_due_at
        values += (p.evse_id, ctx.sa_schedule_tuple_id, meter, receipt)
    if (
        last is not None
        and present_v is last[2]
        and present_i is last[3]
        and (meter is None or meter is last[12])
        and values == last
    ):
        return p.response, actions, State.DC_CHARGING
    body = p.response = p.build(*values)
    p.values = values
    return body, actions, State.DC_CHARGING


# --- ISO 15118-2 AC: ChargingStatusReq ------------------------------------------------


def _meter(p: Plan, ctx: Context, now: float) -> Any:
    """``iso2.power.meter_info`` (``p.meter_id`` set)."""
    reading = int(ctx.status.energy_wh)
    stamp = _stamp(ctx, now)
    meter = p.meter
    if meter is None or reading != p.meter_key[0] or stamp != p.meter_key[1]:
        meter = p.meter = p.meter_cls(p.meter_id, reading, stamp)
        p.meter_key = (reading, stamp)
    return meter


def _iso2_ac(p: Plan, ctx: Context, req: Any, now: float) -> Any:
    """``iso2.power.charging_status``."""
    st = ctx.status
    if (
        ctx.contactors_closed
        and not st.contactors_closed
        and now - ctx.contactors_closed_at > p.feedback
    ):
        return None  # the handler refuses: contactor feedback is missing too long
    limit = iso2_power.ac_max_current(ctx, now)
    if limit == p.limit_key:
        max_i = p.limits
    else:
        max_i = p.limits = physical_value(p.mod, limit, "A")
        p.limit_key = limit
    meter = None if p.meter_id is None else _meter(p, ctx, now)
    receipt = None
    if p.receipts and ctx.payment_option == "Contract":
        receipt = ctx.receipt_due_at is not None and now >= ctx.receipt_due_at
    key = (ctx.stop_requested is None, ctx.renegotiation_requested and ctx.charging)
    if key == p.status_key:
        status = p.evse_status
    else:
        status = p.evse_status = ctx.ac_evse_status()
        p.status_key = key
    values = (p.ok, p.evse_id, ctx.sa_schedule_tuple_id, max_i, meter, receipt, status)
    last = p.values
    if last is not None and meter is last[4] and values == last:
        return p.response, (), State.AC_CHARGING
    body = p.response = p.build(*values)
    p.values = values
    return body, (), State.AC_CHARGING


# --- ISO 15118-20: DC_ChargeLoopReq, AC_ChargeLoopReq ---------------------------------


def _iso20_common(p: Plan, ctx: Context, req: Any, now: float) -> tuple[Any, Any, Any]:
    """The header, EVSEStatus and MeterInfo of a -20 loop response (after the step's
    checks: ``loop_meter_info`` may change the metering facts)."""
    requested = bool(req.meter_info_requested)
    meter = None
    if requested or ctx.metering_due or (p.metering_confirmation and not ctx.metering_asked):
        meter = loop_meter_info(ctx, p.mod, requested)
    stamp = _stamp(ctx, now)
    sid = ctx.session_id
    if stamp == p.stamp and sid is p.sid:
        head = p.header
    else:
        head = p.header = header(ctx, p.mod)
        p.stamp = stamp
        p.sid = sid
    status = None
    if (
        ctx.stop_requested is not None
        or ctx.metering_due
        or (ctx.renegotiation_requested and ctx.charging)
    ):
        status = evse_status(ctx, p.mod)
    return head, status, meter


def _power_cap(p: Plan, ctx: Context) -> float:
    """``iso20.common.power_cap`` (the plan's family)."""
    if ctx.stop_requested is not None and ctx.control_mode == "Dynamic":
        return 0.0
    limit: float = p.max_power
    if ctx.csms_schedule:
        limit = min(limit, ctx.csms_schedule[0].max_power)
    return max(limit, 0.0)


def _iso20_dc(p: Plan, ctx: Context, req: Any, now: float) -> Any:
    """``iso20.dc.charge_loop`` outside BPT, in one piece."""
    st = ctx.status
    if (
        ctx.contactors_closed
        and not st.contactors_closed
        and now - ctx.contactors_closed_at > p.feedback
    ):
        return None  # the handler refuses: contactor feedback is missing too long
    mode = req.cl_req_control_mode
    if (
        type(mode) is not p.mode_cls
        or ctx.service_id != p.service_id
        or ctx.control_mode != p.control_mode
    ):
        return None
    if ctx.stop_requested is None and not ctx.csms_schedule:
        cap = p.cap
    else:
        cap = min(p.max_power, _power_cap(p, ctx))
    try:  # (number(); an exponent outside int8 came with violations: not here)
        rn = req.ev_present_voltage
        present = rn.value * _POW[rn.exponent]
        if p.scheduled:
            rn = mode.ev_target_voltage
            voltage = rn.value * _POW[rn.exponent]
            rn = mode.ev_target_current
            current = rn.value * _POW[rn.exponent]
            cap = min(cap, ctx.schedules.get(ctx.sa_schedule_tuple_id, cap))
            reference = max(present, voltage)
        else:
            rn = mode.ev_maximum_voltage
            voltage = min(rn.value * _POW[rn.exponent], p.max_voltage)
            rn = mode.ev_maximum_charge_current
            current = rn.value * _POW[rn.exponent]
            rn = mode.ev_maximum_charge_power
            cap = min(cap, rn.value * _POW[rn.exponent])
            reference = max(present, 0.0)
    except KeyError:
        return None
    if current < 0:
        return None  # a discharge outside BPT: refused by the handler
    max_current = p.max_current
    current_limited = current >= max_current
    current = min(current, max_current)
    power_limited = reference > 0 and reference * current >= cap
    if power_limited:
        current = cap / reference
    actions: tuple[Action, ...] = ()
    if not ctx.standby:  # iso2.dc._target
        if voltage > p.max_voltage or voltage > ctx.ev_max_voltage or voltage < 0:
            return None  # the handler refuses the target
        memo = ctx.target_memo
        if memo is not None and memo[0] == voltage and memo[1] == current:
            actions = memo[2]
        else:
            actions = (_set_dc_target(voltage, current),)
            ctx.target_memo = (voltage, current, actions)
    # iso20.common.loop_meter_info, header, evse_status
    requested = bool(req.meter_info_requested)
    meter = None
    if requested or ctx.metering_due or (p.metering_confirmation and not ctx.metering_asked):
        meter = loop_meter_info(ctx, DC, requested)
    sync = ctx.clock_sync  # ctx.unix_seconds(), its common case inline
    if sync is not None and 0.0 <= now - sync[0] < 1.0:
        stamp = int(sync[1] + (now - sync[0]))
    else:
        stamp = ctx.unix_seconds()
    head = p.header
    if stamp != p.stamp or ctx.session_id is not p.sid:
        head = p.header = header(ctx, DC)
        p.stamp = stamp
        p.sid = ctx.session_id
    status = None
    if (
        ctx.stop_requested is not None
        or ctx.metering_due
        or (ctx.renegotiation_requested and ctx.charging)
    ):
        status = evse_status(ctx, DC)
    if st is p.status:
        present_i, present_v = p.present
    else:
        v = st.present_current
        present_i = p.amps.get(v) or _miss20(p.amps, DC, v)
        v = st.present_voltage
        present_v = p.volts.get(v) or _miss20(p.volts, DC, v)
        p.status = st
        p.present = (present_i, present_v)
    res_mode = p.res_mode
    if cap != p.mode_key or res_mode is None:
        res_mode = p.res_mode = iso20_dc._res_mode(ctx, p.scheduled, False, cap)
        p.mode_key = cap
    values = (
        head,
        p.ok,
        status,
        meter,
        present_i,
        present_v,
        power_limited,
        current_limited,
        voltage >= p.max_voltage,
        res_mode,
    )
    state = Iso20State.STANDBY if ctx.standby else Iso20State.CHARGE_LOOP
    last = p.values
    if (
        last is not None
        and present_i is last[4]
        and present_v is last[5]
        and head is last[0]
        and meter is last[3]
        and values == last
    ):
        return p.response, actions, state
    body = p.response = p.build(*values)
    p.values = values
    return body, actions, state


def _iso20_ac(p: Plan, ctx: Context, req: Any, now: float) -> Any:
    """``iso20.ac.charge_loop`` outside BPT."""
    st = ctx.status
    if (
        ctx.contactors_closed
        and not st.contactors_closed
        and now - ctx.contactors_closed_at > p.feedback
    ):
        return None  # the handler refuses: contactor feedback is missing too long
    mode = req.cl_req_control_mode
    if (
        type(mode) is not p.mode_cls
        or ctx.service_id != p.service_id
        or ctx.control_mode != p.control_mode
    ):
        return None
    target = p.cap if ctx.stop_requested is None and not ctx.csms_schedule else _power_cap(p, ctx)
    if p.scheduled:
        target = min(target, ctx.schedules.get(ctx.sa_schedule_tuple_id, target))
    else:
        target = min(target, iso20_ac._total(mode, "ev_maximum_charge_power"))
    if ctx.standby:
        target = 0.0
    if target == p.mode_key and p.res_mode is not None:
        res_mode = p.res_mode
    else:
        res_mode = p.res_mode = iso20_ac.loop_res_mode(False, p.scheduled, target)
        p.mode_key = target
    head, status, meter = _iso20_common(p, ctx, req, now)
    values = (head, p.ok, status, meter, res_mode)
    state = Iso20State.STANDBY if ctx.standby else Iso20State.CHARGE_LOOP
    last = p.values
    if last is not None and head is last[0] and meter is last[3] and values == last:
        return p.response, (), state
    body = p.response = p.build(*values)
    p.values = values
    return body, (), state
