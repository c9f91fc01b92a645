"""ChargeParameterDiscovery (AC and DC): the EVSE's limits and the SAScheduleList.

The schedule is the CSMS's (``ChargingScheduleUpdate`` facts) when one is known, else one
PMax entry of the EVSE's maximum power for 24 h; a configured SalesTariff is passed
through unchanged.  CSMS offers (up to 3 alternatives) become one SAScheduleTuple each,
with the CSMS's tuple IDs and SalesTariffs.  The EV's MaxEntriesSAScheduleTuple caps the
entries sent (PMaxSchedule and SalesTariff entries of each tuple).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from secc.core.actions import EvChargingNeeds
from secc.core.config import ScheduleEntry
from secc.core.context import Context, Reply, State, value_of
from secc.core.events import SalesTariffFacts
from secc.core.failures import WrongChargeParameter, WrongEnergyTransferMode

DAY = 86400
SCHEDULE_TUPLE_ID = 1


def schedule_entries(
    ctx: Context, max_power: float, max_entries: int | None, now: float | None = None
) -> list[ScheduleEntry]:
    csms = ctx.csms_entries(now) if now is not None else ctx.csms_schedule
    return _cut(csms, max_power, max_entries)


def _cut(
    csms: Sequence[ScheduleEntry] | None, max_power: float, max_entries: int | None
) -> list[ScheduleEntry]:
    entries = list(csms or (ScheduleEntry(0, max_power, DAY),))
    entries = [ScheduleEntry(e.start, min(e.max_power, max_power), e.duration) for e in entries]
    if max_entries:
        entries = entries[:max_entries]
    last = entries[-1]
    if last.duration is None:
        entries[-1] = ScheduleEntry(last.start, last.max_power, max(DAY - last.start, 1))
    return entries


def sa_schedule_list(
    ctx: Context, max_power: float, max_entries: int | None, now: float | None = None
) -> Any:
    """The SAScheduleList: one tuple (ID 1, the configured SalesTariff) from the CSMS
    schedule or the EVSE's maximum, or one tuple per CSMS offer (its ID and SalesTariff)."""
    mod = ctx.mod
    tuples: list[tuple[int, list[ScheduleEntry], SalesTariffFacts | None]] = []
    for offer in ctx.csms_offers:
        schedule = tuple(ScheduleEntry(s, p, d) for s, p, d in offer.entries)
        seen = ctx.offer_entries(schedule, now) if now is not None else list(schedule)
        tuples.append((offer.tuple_id, _cut(seen, max_power, max_entries), offer.sales_tariff))
    if not tuples:
        tuples.append((SCHEDULE_TUPLE_ID, schedule_entries(ctx, max_power, max_entries, now), None))
    ctx.schedules = {tid: max(e.max_power for e in entries) for tid, entries, _ in tuples}
    shift = 0 if now is None else max(int(now - ctx.schedule_origin), 0)
    out = []
    for tid, entries, tariff in tuples:
        pmax = mod.PMaxSchedule(
            p_max_schedule_entry=tuple(
                mod.PMaxScheduleEntry(
                    time_interval=mod.RelativeTimeInterval(start=e.start, duration=e.duration),
                    p_max=ctx.pv(e.max_power, "W"),
                )
                for e in entries
            )
        )
        sales_tariff = (
            ctx.config.sales_tariff
            if not ctx.csms_offers
            else None
            if tariff is None
            else sales_tariff_of(ctx, tariff, shift, max_entries)
        )
        out.append(
            mod.SAScheduleTuple(
                sa_schedule_tuple_id=tid, p_max_schedule=pmax, sales_tariff=sales_tariff
            )
        )
    return mod.SAScheduleList(sa_schedule_tuple=tuple(out))


COST_KINDS = {  # OCPP CostKindEnumType -> ISO 15118-2 costKind
    "RelativePricePercentage": "relativePricePercentage",
    "RenewableGenerationPercentage": "RenewableGenerationPercentage",
    "CarbonDioxideEmission": "CarbonDioxideEmission",
}


def sales_tariff_of(
    ctx: Context, tariff: SalesTariffFacts, shift: int, max_entries: int | None
) -> Any:
    """The -2 SalesTariff of a CSMS tariff seen ``shift`` seconds after it arrived (ended
    entries dropped, starts moved, as the PMaxSchedule), at most ``max_entries`` entries;
    None when nothing of it is left.  Sent without a signature: OCPP 2.0.1 carries none
    from the secondary actor."""
    mod = ctx.mod
    entries = []
    for i, e in enumerate(tariff.entries):
        following = tariff.entries[i + 1].start if i + 1 < len(tariff.entries) else None
        end = e.start + e.duration if e.duration is not None else following
        if end is not None and end <= shift:
            continue
        start = max(e.start - shift, 0)
        duration = None if e.duration is None else e.start + e.duration - shift - start
        costs = tuple(
            mod.ConsumptionCost(
                start_value=ctx.pv(watts, "W"),
                cost=tuple(
                    mod.Cost(
                        cost_kind=mod.CostKind(COST_KINDS.get(c.kind, c.kind)),
                        amount=c.amount,
                        amount_multiplier=c.multiplier,
                    )
                    for c in kinds
                ),
            )
            for watts, kinds in e.consumption
        )
        entries.append(
            mod.SalesTariffEntry(
                time_interval=mod.RelativeTimeInterval(start=start, duration=duration),
                e_price_level=e.price_level,
                consumption_cost=costs,
            )
        )
    if max_entries:
        entries = entries[:max_entries]
    if not entries:
        return None
    return mod.SalesTariff(
        sales_tariff_id=tariff.tariff_id,
        sales_tariff_description=tariff.description,
        num_e_price_levels=tariff.price_levels,
        sales_tariff_entry=tuple(entries),
    )


def charge_parameter_discovery(ctx: Context, req: Any, now: float) -> Reply:
    mod = ctx.mod
    mode = req.requested_energy_transfer_mode.value
    if mode not in ctx.config.energy_modes:
        raise WrongEnergyTransferMode(f"{mode} is not offered here")
    if ctx.energy_mode is not None and ctx.contactors_closed and mode != ctx.energy_mode:
        raise WrongEnergyTransferMode(f"renegotiation may not change {ctx.energy_mode} to {mode}")
    param = req.ev_charge_parameter
    dc = mode.startswith("DC")
    if dc != (type(param).__name__ == "DC_EVChargeParameter"):
        raise WrongChargeParameter(f"{type(param).__name__} does not fit {mode}")
    ctx.energy_mode = mode
    renegotiating = ctx.contactors_closed
    first = "ChargeParameterDiscovery" not in ctx.started_at
    waited = now - ctx.started_at.setdefault("ChargeParameterDiscovery", now)
    needs: tuple[EvChargingNeeds, ...] = ()
    if first:
        needs = (charging_needs(mode, param, req.max_entries_sa_schedule_tuple),)
    if renegotiating and not first:
        needs, waiting = _ev_renegotiation(ctx, mode, param, req, now)
        if waiting:
            reply = _ongoing(ctx, dc)
            reply.actions = needs
            return reply
    if ctx.csms_schedule is None and waited < ctx.config.schedule_wait:
        reply = _ongoing(ctx, dc)
        reply.actions = needs
        return reply
    max_entries = req.max_entries_sa_schedule_tuple
    if dc:
        lim = ctx.config.dc
        ctx.ev_max_voltage = value_of(param.ev_maximum_voltage_limit)
        ctx.ev_max_current = value_of(param.ev_maximum_current_limit)
        if ctx.ev_max_voltage < lim.min_voltage or ctx.ev_max_current <= 0:
            raise WrongChargeParameter(
                f"EV limits {ctx.ev_max_voltage} V / {ctx.ev_max_current} A cannot be served"
            )
        evse = dc_evse_charge_parameter(ctx, tolerance=True)
        schedules = sa_schedule_list(ctx, lim.max_power, max_entries, now)
        state = State.PRE_CHARGE if renegotiating else State.DC_READY
    else:
        ac = ctx.config.ac
        ctx.ev_max_current = value_of(param.ev_max_current)
        ctx.ev_max_voltage = value_of(param.ev_max_voltage)
        if ctx.ev_max_current <= 0 or value_of(param.ev_min_current) > ac.max_current:
            raise WrongChargeParameter("the EV's current range does not meet the EVSE's")
        evse = ac_evse_charge_parameter(ctx)
        schedules = sa_schedule_list(ctx, ac.max_power, max_entries, now)
        state = State.AC_READY
    ctx.renegotiation_requested = False  # the EV has the schedule in force now
    body = mod.ChargeParameterDiscoveryRes(
        response_code=mod.ResponseCode.OK,
        evse_processing=mod.EVSEProcessing.Finished,
        sa_schedules=schedules,
        evse_charge_parameter=evse,
    )
    return Reply(body, state, needs)


RENEGOTIATION_KEY = "RenegotiationChargeParameterDiscovery"


def _ev_renegotiation(
    ctx: Context, mode: str, param: Any, req: Any, now: float
) -> tuple[tuple[EvChargingNeeds, ...], bool]:
    """K17 (OCPP 2.0.1): a renegotiation the EV started (the station did not ask for it)
    sends the EV's charging needs again (once) and answers Ongoing until the CSMS's answer
    (a fresh schedule) is there, at most ``schedule_wait`` seconds; then the schedule in
    force.  A renegotiation the station asked for (K16) already has its schedule.
    Returns (the needs to send, whether to answer Ongoing)."""
    if RENEGOTIATION_KEY not in ctx.started_at:
        if ctx.renegotiation_requested:
            return (), False
        needs = (charging_needs(mode, param, req.max_entries_sa_schedule_tuple),)
        if ctx.config.schedule_wait <= 0:
            return needs, False
        ctx.started_at[RENEGOTIATION_KEY] = now
        ctx.needs_mark = ctx.schedule_updates
        return needs, True
    waited = now - ctx.started_at[RENEGOTIATION_KEY]
    if ctx.schedule_updates == ctx.needs_mark and waited < ctx.config.schedule_wait:
        return (), True
    del ctx.started_at[RENEGOTIATION_KEY]
    ctx.needs_mark = None
    return (), False


def charging_needs(mode: str, param: Any, max_tuples: int | None) -> EvChargingNeeds:
    """The EV's charge parameters as the CSMS wants them (OCPP NotifyEVChargingNeeds)."""

    def si(pv: Any) -> float | None:
        return None if pv is None else value_of(pv)

    if mode.startswith("DC"):
        status = getattr(param, "dc_ev_status", None)
        return EvChargingNeeds(
            energy_transfer=mode,
            max_current=value_of(param.ev_maximum_current_limit),
            max_voltage=value_of(param.ev_maximum_voltage_limit),
            max_power=si(param.ev_maximum_power_limit),
            energy_amount=si(param.ev_energy_request),
            energy_capacity=si(param.ev_energy_capacity),
            soc=getattr(status, "evress_soc", None),
            full_soc=param.full_soc,
            bulk_soc=param.bulk_soc,
            departure_time=getattr(param, "departure_time", None),
            max_schedule_tuples=max_tuples,
        )
    return EvChargingNeeds(
        energy_transfer=mode,
        max_current=value_of(param.ev_max_current),
        max_voltage=value_of(param.ev_max_voltage),
        min_current=value_of(param.ev_min_current),
        energy_amount=value_of(param.e_amount),
        departure_time=param.departure_time,
        max_schedule_tuples=max_tuples,
    )


def _ongoing(ctx: Context, dc: bool) -> Reply:
    """Waiting for the CSMS's schedule: Ongoing, no SAScheduleList yet [V2G2-???]."""
    mod = ctx.mod
    evse = dc_evse_charge_parameter(ctx, tolerance=False) if dc else ac_evse_charge_parameter(ctx)
    body = mod.ChargeParameterDiscoveryRes(
        response_code=mod.ResponseCode.OK,
        evse_processing=mod.EVSEProcessing.Ongoing,
        evse_charge_parameter=evse,
    )
    return Reply(body, State.AUTHORIZED)


def dc_evse_charge_parameter(ctx: Context, *, tolerance: bool) -> Any:
    """The EVSE's DC limits as DC_EVSEChargeParameter (ISO-2 and DIN share the type's
    shape; the station sends EVSECurrentRegulationTolerance under ISO-2 only)."""
    lim = ctx.config.dc
    return ctx.mod.DC_EVSEChargeParameter(
        dc_evse_status=ctx.dc_evse_status(),
        evse_maximum_current_limit=ctx.pv(lim.max_current, "A"),
        evse_maximum_power_limit=ctx.pv(lim.max_power, "W"),
        evse_maximum_voltage_limit=ctx.pv(lim.max_voltage, "V"),
        evse_minimum_current_limit=ctx.pv(lim.min_current, "A"),
        evse_minimum_voltage_limit=ctx.pv(lim.min_voltage, "V"),
        evse_current_regulation_tolerance=(
            ctx.pv(lim.current_regulation_tolerance, "A") if tolerance else None
        ),
        evse_peak_current_ripple=ctx.pv(lim.peak_current_ripple, "A"),
    )


def ac_evse_charge_parameter(ctx: Context) -> Any:
    """The EVSE's AC limits as AC_EVSEChargeParameter."""
    ac = ctx.config.ac
    return ctx.mod.AC_EVSEChargeParameter(
        ac_evse_status=ctx.ac_evse_status(),
        evse_nominal_voltage=ctx.pv(ac.nominal_voltage, "V"),
        evse_max_current=ctx.pv(ac.max_current, "A"),
    )
