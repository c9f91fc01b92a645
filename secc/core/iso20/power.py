"""-20 ScheduleExchange and PowerDelivery (Start, Stop, Standby, ScheduleRenegotiation).

Scheduled mode offers one ScheduleTuple (ID 1) built from the station's limits, cut by
the CSMS schedule when one is known, or one per CSMS offer (up to 3: its tuple ID, its
entries, its SalesTariff as a PriceLevelSchedule where that maps); dynamic mode leaves
the power to the charge loop.
Contactors close only on a PowerDelivery Start that passed every check (the offered
schedule, a profile within it, authorization, no station stop pending, for DC a valid
isolation and the pre-charge voltage reached), the same rule as ISO 15118-2.
Standby (from the loop, or before the power flows: AC right after ScheduleExchange, DC
right after pre-charge) stops the power until a new Start; the contactors stay as they
are (DC: 0 A at the present voltage, the insulation monitor still on; AC: target power 0).
ScheduleRenegotiation leaves the power as it is (contactors closed, the last DC target)
while the EV runs ScheduleExchange again; a PowerDelivery Start returns to the loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from secc.core.actions import (
    Action,
    ChargingStateChanged,
    EvChargingNeeds,
    EvChargingSchedule,
    SetDcTarget,
)
from secc.core.config import ScheduleEntry
from secc.core.context import Context, Reply
from secc.core.events import SalesTariffFacts, ScheduleOffer
from secc.core.failures import PeerError, PowerDeliveryNotApplied, SequenceError, Timeout
from secc.core.iso2.power import POWER_TOLERANCE, start_actions, stop_actions
from secc.core.iso20.common import (
    COMMON,
    Iso20State,
    evse_status,
    header,
    is_bpt,
    number,
    power_cap,
)
from secc.core.iso20.common import rational as rn

SCHEDULE_TUPLE_ID = 1
MAX_TUPLES = 3  # ScheduleTuple maxOccurs
PRICE_LEVEL_XML_ID = "PriceLevelSchedule1"
DAY = 86400
MAX_ENTRIES = 1024  # PowerScheduleEntry maxOccurs
SCHEDULE_TIMER_KEY = "ScheduleExchange"
NEEDS_KEY = "ChargingNeeds"  # set once the EV's needs went out (once per session)
# the station tariff's AbsolutePriceSchedule (secc.core.config.Tariff)
PRICE_SCHEDULE_ID = 1
PRICE_SCHEDULE_XML_ID = "PriceSchedule1"  # its Id attribute (what a signature would reference)
PRICE_ALGORITHM = "urn:iso:std:iso:15118:-20:PriceAlgorithm:1-Power"  # fee per kWh
TAX_RULE_ID = 1


def schedule_exchange(ctx: Context, req: Any, now: float) -> Reply:
    """Ongoing while the CSMS schedule is awaited (``schedule_wait``; in a renegotiation
    the EV started, K17, a fresh one after its needs went out again), then the
    schedule of the selected control mode.  A request of the other control mode is
    FAILED (the EV must keep to the parameter set it selected)."""
    rc = COMMON.ResponseCode
    scheduled = ctx.control_mode == "Scheduled"
    given = req.scheduled_se_req_control_mode if scheduled else req.dynamic_se_req_control_mode
    if given is None:
        raise PeerError(f"ScheduleExchangeReq is not of the selected {ctx.control_mode} mode")
    renegotiating = ctx.charging or ctx.standby  # ScheduleRenegotiation from the loop
    needs = () if NEEDS_KEY in ctx.started_at else (charging_needs(ctx, req, now),)
    new_round = SCHEDULE_TIMER_KEY not in ctx.started_at
    if renegotiating and not needs and new_round and not ctx.renegotiation_requested:
        needs = (charging_needs(ctx, req, now),)  # K17: the EV renegotiates: its needs again
        ctx.needs_mark = ctx.schedule_updates  # and waits for a fresh CSMS schedule
    started = ctx.started_at.setdefault(SCHEDULE_TIMER_KEY, now)
    unanswered = ctx.needs_mark is not None and ctx.schedule_updates == ctx.needs_mark
    if (ctx.csms_schedule is None or unanswered) and now - started < ctx.config.schedule_wait:
        if now - started > ctx.config.timers.ongoing:
            raise Timeout("no schedule within the Ongoing limit")
        # the control mode is a required choice even while Ongoing: a provisional one
        body = COMMON.ScheduleExchangeRes(
            header=header(ctx, COMMON),
            response_code=rc.OK,
            evse_processing=COMMON.Processing.Ongoing,
            **_control_mode(ctx, scheduled, req),
        )
        state = Iso20State.RENEGOTIATION if renegotiating else Iso20State.SCHEDULE_ONGOING
        return Reply(body, state, needs)
    del ctx.started_at[SCHEDULE_TIMER_KEY]
    ctx.needs_mark = None
    ctx.renegotiation_requested = False  # the EV gets the schedule in force now
    body = COMMON.ScheduleExchangeRes(
        header=header(ctx, COMMON),
        response_code=rc.OK,
        evse_processing=COMMON.Processing.Finished,
        **_control_mode(ctx, scheduled, req, now),
    )
    state = Iso20State.RESCHEDULED if renegotiating else Iso20State.SCHEDULED
    return Reply(body, state, needs)


def charging_needs(ctx: Context, req: Any, now: float) -> EvChargingNeeds:
    """The EV's parameters (ChargeParameterDiscovery and this first ScheduleExchangeReq)
    for the CSMS (OCPP NotifyEVChargingNeeds).  AC -20 speaks in watts: the current is
    the EV's maximum power over the EVSE's nominal voltage and phases."""
    ctx.started_at[NEEDS_KEY] = now
    mode = req.scheduled_se_req_control_mode or req.dynamic_se_req_control_mode
    energy = getattr(mode, "ev_target_energy_request", None)
    if ctx.is_dc:
        max_current, max_voltage = ctx.ev_max_current, ctx.ev_max_voltage
    else:
        ac = ctx.config.ac
        max_current = ctx.ev_max_power / (ac.nominal_voltage * ac.phases)
        max_voltage = ac.nominal_voltage
    return EvChargingNeeds(
        energy_transfer="DC" if ctx.is_dc else "AC",
        max_current=max_current,
        max_voltage=max_voltage,
        max_power=ctx.ev_max_power or None,
        energy_amount=None if energy is None else number(energy),
        departure_time=getattr(mode, "departure_time", None),
        max_schedule_tuples=None,
    )


def _control_mode(
    ctx: Context, scheduled: bool, req: Any, now: float | None = None
) -> dict[str, Any]:
    if scheduled:
        points = min(req.maximum_supporting_points, MAX_ENTRIES)
        offers = ctx.csms_offers[:MAX_TUPLES] or (None,)
        built = [_schedule_tuple(ctx, points, now, offer) for offer in offers]
        ctx.schedules = {t.schedule_tuple_id: most for t, most in built}
        ctx.sa_schedule_tuple_id = built[0][0].schedule_tuple_id
        tuples = tuple(t for t, _ in built)
        mode = COMMON.Scheduled_SEResControlMode(schedule_tuple=tuples)
        return {"scheduled_se_res_control_mode": mode}
    ctx.schedules = {}
    return {"dynamic_se_res_control_mode": COMMON.Dynamic_SEResControlMode()}


def _schedule_tuple(
    ctx: Context, points: int, now: float | None = None, offer: ScheduleOffer | None = None
) -> tuple[Any, float]:
    """ScheduleTuple 1: the station's maximum power (cut by the CSMS schedule's entries)
    for 24 hours, at most ``points`` entries; with a CSMS ``offer``: its tuple ID, its
    entries and, where its SalesTariff maps, a PriceLevelSchedule.  With the tuple, its
    largest power."""
    own = ctx.config.dc.max_power if ctx.is_dc else ctx.config.ac.max_power
    entries: list[tuple[int, float]] = []  # (duration, watts)
    csms: Sequence[ScheduleEntry]
    if offer is not None:
        schedule = tuple(ScheduleEntry(s, p, d) for s, p, d in offer.entries)
        csms = (ctx.offer_entries(schedule, now) if now is not None else list(schedule)) or []
    else:
        csms = (ctx.csms_entries(now) if now is not None else ctx.csms_schedule) or ()
    for i, entry in enumerate(csms):
        if i + 1 < len(csms):
            duration = csms[i + 1].start - entry.start
        else:
            duration = entry.duration or max(DAY - entry.start, 1)
        if duration > 0:
            entries.append((duration, min(own, entry.max_power)))
    if not entries:
        entries = [(DAY, own)]
    entries = entries[:points]
    schedule = COMMON.PowerSchedule(
        time_anchor=int(ctx.utc_now().timestamp()),
        power_schedule_entries=COMMON.PowerScheduleEntryList(
            power_schedule_entry=tuple(
                COMMON.PowerScheduleEntry(duration=d, power=rn(COMMON, w)) for d, w in entries
            )
        ),
    )
    levels = None
    if offer is not None and offer.sales_tariff is not None:
        shift = 0 if now is None else max(int(now - ctx.schedule_origin), 0)
        levels = _price_levels(offer.sales_tariff, schedule, shift)
    tuple_ = COMMON.ScheduleTuple(
        schedule_tuple_id=SCHEDULE_TUPLE_ID if offer is None else offer.tuple_id,
        charging_schedule=COMMON.ChargingSchedule(
            power_schedule=schedule,
            absolute_price_schedule=_price_schedule(ctx, schedule) if levels is None else None,
            price_level_schedule=levels,
        ),
    )
    return tuple_, max(w for _, w in entries)


def _price_levels(tariff: SalesTariffFacts, power_schedule: Any, shift: int) -> Any:
    """A CSMS SalesTariff as the -20 PriceLevelSchedule, where that mapping is sound:
    every entry has an ePriceLevel and numEPriceLevels is given (the levels mean the same
    in both: a higher level is dearer).  Its ConsumptionCosts have no -20 counterpart in
    a PriceLevelSchedule and are left out; a tariff without levels, or with a stretch
    no entry covers, is not sent (None): an AbsolutePriceSchedule needs currency amounts,
    which an OCPP SalesTariff does not carry, and -20 level entries cannot leave a gap.
    Seen ``shift`` seconds after it arrived, over the power schedule's span."""
    if tariff.price_levels is None or any(e.price_level is None for e in tariff.entries):
        return None
    total = sum(e.duration for e in power_schedule.power_schedule_entries.power_schedule_entry)
    out: list[tuple[int, int]] = []  # (duration, level)
    cursor = shift  # -20 entries follow each other: a gap in the tariff has no level
    for i, e in enumerate(tariff.entries):
        following = tariff.entries[i + 1].start if i + 1 < len(tariff.entries) else None
        end = e.start + e.duration if e.duration is not None else following
        end = total + shift if end is None else min(end, total + shift)
        start = max(e.start, shift)
        if end <= start or e.price_level is None:
            continue
        if start != cursor:
            return None
        out.append((end - start, e.price_level))
        cursor = end
    if not out:
        return None
    return COMMON.PriceLevelSchedule(
        id=PRICE_LEVEL_XML_ID,
        time_anchor=power_schedule.time_anchor,
        price_schedule_id=tariff.tariff_id,
        price_schedule_description=tariff.description,
        number_of_price_levels=tariff.price_levels,
        price_level_schedule_entries=COMMON.PriceLevelScheduleEntryList(
            price_level_schedule_entry=tuple(
                COMMON.PriceLevelScheduleEntry(duration=d, price_level=level)
                for d, level in out[:MAX_ENTRIES]
            )
        ),
    )


def _price_schedule(ctx: Context, power_schedule: Any) -> Any:
    """The AbsolutePriceSchedule of the station's tariff (None without one): one price
    rule stack over the whole power schedule (same TimeAnchor and length), whose one
    rule charges the energy fee per kWh from 0 W on; with a tax rate, one TaxRule on
    the energy fee."""
    tariff = ctx.config.tariff
    if tariff is None:
        return None
    duration = sum(e.duration for e in power_schedule.power_schedule_entries.power_schedule_entry)
    rule = COMMON.PriceRule(
        energy_fee=rn(COMMON, tariff.price_per_kwh), power_range_start=rn(COMMON, 0.0)
    )
    taxes = None
    if tariff.tax_rate:
        tax = COMMON.TaxRule(
            tax_rule_id=TAX_RULE_ID,
            tax_rate=rn(COMMON, tariff.tax_rate),
            tax_included_in_price=tariff.tax_included,
            applies_to_energy_fee=True,
            applies_to_parking_fee=False,
            applies_to_overstay_fee=False,
            applies_minimum_maximum_cost=False,
        )
        taxes = COMMON.TaxRuleList(tax_rule=(tax,))
    return COMMON.AbsolutePriceSchedule(
        id=PRICE_SCHEDULE_XML_ID,
        time_anchor=power_schedule.time_anchor,
        price_schedule_id=PRICE_SCHEDULE_ID,
        price_schedule_description=tariff.description,
        currency=tariff.currency,
        language=tariff.language,
        price_algorithm=PRICE_ALGORITHM,
        tax_rules=taxes,
        price_rule_stacks=COMMON.PriceRuleStackList(
            price_rule_stack=(COMMON.PriceRuleStack(duration=duration, price_rule=(rule,)),)
        ),
    )


def power_delivery(ctx: Context, req: Any, now: float, state: Iso20State) -> Reply:
    """The four ChargeProgress values; which may come depends on ``state`` (the table
    lists PowerDeliveryReq wherever one of them is legal).  EVProcessing=Ongoing: the EV is
    not ready yet, whatever the ChargeProgress; the rest of the request is ignored, the
    answer is OK and the EV asks again [V2G20-2007]."""
    progress = req.charge_progress.value
    cp = COMMON.ChargeProgress
    rc = COMMON.ResponseCode
    code = rc.OK
    actions: tuple[Action, ...] = ()
    if req.ev_processing is COMMON.Processing.Ongoing:
        next_state = state
    elif progress == "Stop":
        actions = stop_actions(ctx, "PowerDelivery Stop")
        ctx.standby = False
        next_state = Iso20State.STOPPED
    elif req.charge_progress is cp.Standby and state in _STANDBY_FROM:
        if ctx.config.iso20_standby:
            actions = _standby(ctx) if ctx.charging else _standby_precharged(ctx)
            next_state = Iso20State.STANDBY
        else:
            code = rc.WARNING_StandbyNotAllowed
            next_state = state
    elif req.charge_progress is cp.ScheduleRenegotiation and state in _RENEGOTIATE_FROM:
        next_state = Iso20State.RENEGOTIATION
    elif progress == "Start" and state is not Iso20State.CHARGE_LOOP:
        _start_checks(ctx, req)
        was_charging = ctx.charging  # back from a schedule renegotiation
        actions = start_actions(ctx, now)
        if was_charging:
            actions = tuple(a for a in actions if not isinstance(a, ChargingStateChanged))
        actions += _ev_schedule(ctx, req)
        ctx.standby = False
        next_state = Iso20State.CHARGE_LOOP
        if _tolerance_confirmed(req):
            code = rc.OK_PowerToleranceConfirmed  # [V2G20-1944]
    else:
        raise SequenceError(f"PowerDelivery {progress} in {state}")
    body = COMMON.PowerDeliveryRes(
        header=header(ctx, COMMON), response_code=code, evse_status=evse_status(ctx, COMMON)
    )
    return Reply(body, next_state, actions)


def _tolerance_confirmed(req: Any) -> bool:
    """The EV's scheduled EVPowerProfile says PowerToleranceAcceptance=Confirmed: the
    answer is then OK_PowerToleranceConfirmed, not OK [V2G20-1944]."""
    profile = req.ev_power_profile
    mode = profile.scheduled_evppt_control_mode if profile is not None else None
    accepted = mode.power_tolerance_acceptance if mode is not None else None
    return accepted is COMMON.PowerToleranceAcceptance.PowerToleranceConfirmed


def _ev_schedule(ctx: Context, req: Any) -> tuple[Action, ...]:
    """The EV's power profile (scheduled or dynamic) for the CSMS as EvChargingSchedule:
    its entries' durations become start offsets (OCPP NotifyEVChargingSchedule)."""
    profile = getattr(req, "ev_power_profile", None)
    if profile is None:
        return ()
    entries: list[tuple[int, float, int | None]] = []
    start = 0
    for e in profile.ev_power_profile_entries.ev_power_profile_entry:
        entries.append((start, number(e.power), None))
        start += int(e.duration)
    if not entries:
        return ()
    return (EvChargingSchedule(ctx.sa_schedule_tuple_id, tuple(entries)),)


# the loop, and right after a finished ScheduleExchange [V2G20-1390]: for AC that is
# SCHEDULED, for DC the pre-charge (cable check and pre-charge come first); RESCHEDULED
# after a schedule renegotiation
_STANDBY_FROM = frozenset(
    {Iso20State.CHARGE_LOOP, Iso20State.PRE_CHARGE, Iso20State.SCHEDULED, Iso20State.RESCHEDULED}
)
_RENEGOTIATE_FROM = frozenset({Iso20State.CHARGE_LOOP, Iso20State.STANDBY})


def _standby_precharged(ctx: Context) -> tuple[Action, ...]:
    """Standby before the power flows (DC after pre-charge, AC after ScheduleExchange,
    or again after a renegotiation out of standby): nothing to switch.  DC straight after
    pre-charge: the contactors were never closed, and the pre-charge output (at most its
    current limit, into open contactors) keeps the voltage the next Start needs."""
    ctx.standby = True
    return ()


def _standby(ctx: Context) -> tuple[Action, ...]:
    """No power in standby, contactors closed: "during standby both EV and EVSE
    contactors are to stay closed" (ISO 15118-20: standby is a communication state
    only).  DC: the power module's current limit goes to 0 A at the present voltage,
    and nothing else changes: no energy flows, the circuit stays connected to the EV's
    battery, so the insulation monitor keeps monitoring it (IEC 61851-23 monitors the
    insulation for as long as the EV is connected, :class:`StopDcOutput` would stop it
    and a Start from standby would find no valid isolation); only the session's end
    stops it.  AC: EVSETargetActivePower 0 (the EV draws none, [V2G20-2116]).  The next
    Start needs no new cable check, pre-charge or contactor switching."""
    actions: list[Action] = []
    if ctx.is_dc:
        actions.append(SetDcTarget(voltage=ctx.status.present_voltage, current=0.0))
    if ctx.charging:
        actions.append(ChargingStateChanged(charging=False))
        ctx.charging = False
    ctx.standby = True
    return tuple(actions)


def _start_checks(ctx: Context, req: Any) -> None:
    """The schedule and profile (scheduled mode), then what the EVSE must be ready for;
    a station that is stopping refuses first (its dynamic power cap is 0 by then)."""
    if ctx.stop_requested is not None:
        raise PowerDeliveryNotApplied(f"the station is stopping: {ctx.stop_requested}")
    profile = req.ev_power_profile
    if req.bpt_channel_selection is COMMON.ChannelSelection.Discharge and not is_bpt(ctx):
        raise PowerDeliveryNotApplied("bidirectional power transfer was not selected")
    if ctx.control_mode == "Scheduled":
        chosen = ctx.sa_schedule_tuple_id
        if profile is not None:
            if profile.scheduled_evppt_control_mode is None:
                raise PeerError(
                    "EVPowerProfile not of the scheduled mode", code="FAILED_EVPowerProfileInvalid"
                )
            chosen = profile.scheduled_evppt_control_mode.selected_schedule_tuple_id
        if chosen not in ctx.schedules:
            raise PeerError(
                f"ScheduleTupleID {chosen} was not offered", code="FAILED_ScheduleSelectionInvalid"
            )
        ctx.sa_schedule_tuple_id = chosen
        limit = ctx.schedules[chosen] * POWER_TOLERANCE
    else:
        if profile is not None and profile.dynamic_evppt_control_mode is None:
            raise PeerError(
                "EVPowerProfile not of the dynamic mode", code="FAILED_EVPowerProfileInvalid"
            )
        limit = power_cap(ctx) * POWER_TOLERANCE
    if profile is not None:
        for entry in profile.ev_power_profile_entries.ev_power_profile_entry:
            if number(entry.power) > limit:
                raise PeerError(
                    "an EVPowerProfile entry exceeds the schedule",
                    code="FAILED_EVPowerProfileViolation",
                )
    if not ctx.authorized:
        raise PowerDeliveryNotApplied("charging is not authorized")
    if ctx.is_dc and not ctx.contactors_closed:
        if not ctx.isolation_valid or ctx.status.isolation not in ("Valid", "Warning"):
            raise PowerDeliveryNotApplied("isolation is not valid")
        target = ctx.precharge_target
        tolerance = ctx.config.dc.precharge_tolerance
        if target is None or abs(ctx.status.present_voltage - target) > tolerance:
            raise PowerDeliveryNotApplied("the pre-charge voltage is not reached")
    if ctx.is_dc and ctx.contactors_closed and ctx.status.isolation not in ("Valid", "Warning"):
        raise PowerDeliveryNotApplied("isolation is not valid")
