"""PowerDelivery (Start / Stop / Renegotiate) and AC ChargingStatus.

Contactors close only here, on a PowerDelivery Start that passed every check: schedule
chosen among those offered, charging profile within it, authorization done and, for DC,
isolation valid and pre-charge reached [V2G2-???].
"""

from __future__ import annotations

from typing import Any

from secc.core.actions import (
    Action,
    ChargingStateChanged,
    CloseContactors,
    EvChargingSchedule,
    OpenContactors,
    StopDcOutput,
)
from secc.core.construct import Builders
from secc.core.context import Context, Reply, State, value_of
from secc.core.failures import (
    ChargingProfileInvalid,
    ContactorError,
    PowerDeliveryNotApplied,
    TariffSelectionInvalid,
)

POWER_TOLERANCE = 1.01  # a charging profile may exceed the schedule's PMax by rounding only


def check_contactors(ctx: Context, now: float) -> None:
    """Feedback must follow the close command within ``timers.contactor_feedback``."""
    if (
        ctx.contactors_closed
        and not ctx.status.contactors_closed
        and now - ctx.contactors_closed_at > ctx.config.timers.contactor_feedback
    ):
        raise ContactorError("contactor feedback reports open while commanded closed")


def receipt_required(ctx: Context, now: float) -> bool | None:
    if not (ctx.config.metering_receipts and ctx.is_pnc):
        return None
    return ctx.receipt_due_at is not None and now >= ctx.receipt_due_at


_METER = Builders("meter_id", "meter_reading", "t_meter")


def meter_info(ctx: Context) -> Any:
    """The MeterInfo of now; the same (frozen) object for the same reading in the same
    second, so the encoder finds its bits by identity."""
    meter_id = ctx.config.meter_id
    if meter_id is None:
        return None
    mod = ctx.mod
    reading = int(ctx.status.energy_wh)
    stamp = ctx.unix_seconds()
    memo = ctx.meter_memo
    if (
        memo is not None
        and memo[1] == reading
        and memo[2] == stamp
        and memo[0] is mod.MeterInfo
        and memo[3] == meter_id
    ):
        return memo[4]
    cls = mod.MeterInfo
    info = _METER[cls](meter_id, reading, stamp)
    ctx.meter_memo = (cls, reading, stamp, meter_id, info)
    return info


def start_checks(ctx: Context, schedule_id: int, profile: Any) -> None:
    """What a PowerDelivery Start must satisfy before the contactors may close."""
    if schedule_id not in ctx.schedules:
        raise TariffSelectionInvalid(f"SAScheduleTupleID {schedule_id} was not offered")
    if profile is not None:
        limit = ctx.schedules[schedule_id] * POWER_TOLERANCE
        last = -1
        for entry in profile.profile_entry:
            if entry.charging_profile_entry_start < last:
                raise ChargingProfileInvalid("ProfileEntry start times go backwards")
            last = entry.charging_profile_entry_start
            if value_of(entry.charging_profile_entry_max_power) > limit:
                raise ChargingProfileInvalid("a ProfileEntry exceeds the schedule's PMax")
    if not ctx.authorized:
        raise PowerDeliveryNotApplied("charging is not authorized")
    if ctx.stop_requested is not None:
        raise PowerDeliveryNotApplied(f"the station is stopping: {ctx.stop_requested}")
    if ctx.is_dc:
        # the facts now, not as they were at the last CableCheck / PreCharge poll
        if not ctx.isolation_valid or ctx.status.isolation not in ("Valid", "Warning"):
            raise PowerDeliveryNotApplied("isolation is not valid")
        target = ctx.precharge_target
        tolerance = ctx.config.dc.precharge_tolerance
        if target is None or abs(ctx.status.present_voltage - target) > tolerance:
            raise PowerDeliveryNotApplied("the pre-charge voltage is not reached")


def start_actions(ctx: Context, now: float) -> tuple[Action, ...]:
    actions: list[Action] = []
    if not ctx.contactors_closed:
        actions.append(CloseContactors())
        ctx.contactors_closed = True
        ctx.contactors_closed_at = now
    ctx.charging = True
    if ctx.config.metering_receipts and ctx.is_pnc:
        ctx.receipt_due_at = now
    actions.append(ChargingStateChanged(charging=True))
    return tuple(actions)


def stop_actions(ctx: Context, reason: str) -> tuple[Action, ...]:
    actions: list[Action] = []
    if ctx.is_dc:
        actions.append(StopDcOutput())
    actions.append(OpenContactors(reason))
    ctx.contactors_closed = False
    if ctx.charging:
        actions.append(ChargingStateChanged(charging=False))
    ctx.charging = False
    return tuple(actions)


MAX_PHASES = 3


def ev_schedule(schedule_id: int, req: Any) -> tuple[Action, ...]:
    """The EV's ChargingProfile for the CSMS (nothing when the EV sent none).

    A ChargingProfileEntryMaxNumberOfPhasesInUse above 3 (a production car sends 4, the
    2-bit code the XSD's 1..3 leaves free; the decoder reports it as a facet violation)
    means "no limit below all phases": it is passed on as 3, the most there are."""
    profile = getattr(req, "charging_profile", None)
    if profile is None:
        return ()
    entries = tuple(
        (
            e.charging_profile_entry_start,
            value_of(e.charging_profile_entry_max_power),
            _phases(e.charging_profile_entry_max_number_of_phases_in_use),
        )
        for e in profile.profile_entry
    )
    return (EvChargingSchedule(schedule_id, entries),)


def _phases(n: int | None) -> int | None:
    return n if n is None or n <= MAX_PHASES else MAX_PHASES


def power_delivery(ctx: Context, req: Any, now: float) -> Reply:
    mod = ctx.mod
    progress = req.charge_progress.value
    if progress == "Start":
        start_checks(ctx, req.sa_schedule_tuple_id, req.charging_profile)
        ctx.sa_schedule_tuple_id = req.sa_schedule_tuple_id
        actions = start_actions(ctx, now) + ev_schedule(req.sa_schedule_tuple_id, req)
        state = State.DC_CHARGING if ctx.is_dc else State.AC_CHARGING
    elif progress == "Stop":
        actions = stop_actions(ctx, "PowerDelivery Stop")
        state = State.DC_STOPPED if ctx.is_dc else State.AC_STOPPED
    else:  # Renegotiate
        if not ctx.charging:
            raise PowerDeliveryNotApplied("Renegotiate while not charging")
        actions = ()
        state = State.AUTHORIZED
    status = ctx.dc_evse_status() if ctx.is_dc else ctx.ac_evse_status()
    body = mod.PowerDeliveryRes(response_code=mod.ResponseCode.OK, evse_status=status)
    return Reply(body, state, actions)


def ac_max_current(ctx: Context, now: float) -> float:
    """The EVSE's AC current limit per phase now: its own, bounded by the CSMS's limit in
    force (watts over the nominal voltage and the phases)."""
    ac = ctx.config.ac
    scheduled = ctx.scheduled_power(now)
    if scheduled is None:
        return ac.max_current
    return min(ac.max_current, round(scheduled / (ac.nominal_voltage * ac.phases), 1))


def charging_status(ctx: Context, req: Any, now: float) -> Reply:
    mod = ctx.mod
    check_contactors(ctx, now)
    body = mod.ChargingStatusRes(
        response_code=mod.ResponseCode.OK,
        evseid=ctx.config.evse_id,
        sa_schedule_tuple_id=ctx.sa_schedule_tuple_id,
        evse_max_current=ctx.pv(ac_max_current(ctx, now), "A"),
        meter_info=meter_info(ctx),
        receipt_required=receipt_required(ctx, now),
        ac_evse_status=ctx.ac_evse_status(),
    )
    return Reply(body, State.AC_CHARGING)
