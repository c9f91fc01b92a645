"""DIN SPEC 70121 handlers where DIN's messages differ from ISO 15118-2's.

DIN is DC only and External Payment only in practice; the machine is the ISO one
(:mod:`secc.core.iso2.states` ``DIN`` table) with DIN's message types: ServicePaymentSelection,
ContractAuthentication, PowerDelivery(ReadyToChargeState), a shorter CurrentDemandRes.
CableCheck, PreCharge, WeldingDetection, SessionSetup and SessionStop share the ISO
handlers (the fields they use are the same). Refusals use DIN's ResponseCodes; a shared
handler's -2-only code is answered with DIN's equivalent
(:func:`secc.core.failures.response_code`).
"""

from __future__ import annotations

from typing import Any

from secc.core.context import Context, Reply, State, loop_built, value_of
from secc.core.failures import (
    NotAuthorized,
    PaymentSelectionInvalid,
    ServiceSelectionInvalid,
    WrongChargeParameter,
    WrongEnergyTransferMode,
)
from secc.core.iso2 import charge_params, dc, power, setup

DIN_PMAX_LIMIT = 32767  # PMax is a short in DIN
WRONG_TRANSFER_TYPE = "FAILED_WrongEnergyTransferType"  # -2's FAILED_WrongEnergyTransferMode


def service_discovery(ctx: Context, req: Any, now: float) -> Reply:
    mod = ctx.mod
    modes = ctx.config.energy_modes
    transfer = "DC_extended" if "DC_extended" in modes else "DC_core"
    body = mod.ServiceDiscoveryRes(
        response_code=mod.ResponseCode.OK,
        payment_options=mod.PaymentOptions(payment_option=(mod.PaymentOption.ExternalPayment,)),
        charge_service=mod.ServiceCharge(
            service_tag=mod.ServiceTag(
                service_id=setup.CHARGE_SERVICE_ID,
                service_category=mod.ServiceCategory.EVCharging,
            ),
            free_service=ctx.config.free_service,
            energy_transfer_type=mod.EVSESupportedEnergyTransfer(transfer),
        ),
    )
    return Reply(body, State.SERVICE_DISCOVERY)


def service_payment_selection(ctx: Context, req: Any, now: float) -> Reply:
    mod = ctx.mod
    if req.selected_payment_option.value != "ExternalPayment":
        raise PaymentSelectionInvalid("DIN SPEC 70121 sessions use External Payment")
    ids = tuple(s.service_id for s in req.selected_service_list.selected_service)
    if setup.CHARGE_SERVICE_ID not in ids:
        # DIN has no FAILED_NoChargeServiceSelected
        raise ServiceSelectionInvalid("the charge service was not selected")
    if any(i != setup.CHARGE_SERVICE_ID for i in ids):
        raise ServiceSelectionInvalid(f"services {ids} were not offered")
    ctx.payment_option = "ExternalPayment"
    ctx.selected_services = ids
    body = mod.ServicePaymentSelectionRes(response_code=mod.ResponseCode.OK)
    return Reply(body, State.PAYMENT_EIM, setup.request_eim_authorization(ctx))


def contract_authentication(ctx: Context, req: Any, now: float) -> Reply:
    mod = ctx.mod
    actions = setup.request_eim_authorization(ctx)
    if ctx.authorized:
        processing, state = mod.EVSEProcessing.Finished, State.AUTHORIZED
    elif ctx.auth_result is not None:
        raise NotAuthorized(ctx.auth_result.reason or "authorization refused")
    else:
        processing, state = mod.EVSEProcessing.Ongoing, State.AUTHORIZATION
    body = mod.ContractAuthenticationRes(
        response_code=mod.ResponseCode.OK, evse_processing=processing
    )
    return Reply(body, state, actions)


def charge_parameter_discovery(ctx: Context, req: Any, now: float) -> Reply:
    mod = ctx.mod
    mode = req.ev_requested_energy_transfer_type.value
    if not mode.startswith("DC") or mode not in ctx.config.energy_modes:
        raise WrongEnergyTransferMode(f"{mode} is not offered here", code=WRONG_TRANSFER_TYPE)
    param = req.ev_charge_parameter
    if type(param).__name__ != "DC_EVChargeParameter":
        raise WrongChargeParameter(f"{type(param).__name__} in a DC session")
    lim = ctx.config.dc
    ctx.energy_mode = mode
    ctx.ev_max_voltage = value_of(param.ev_maximum_voltage_limit)
    ctx.ev_max_current = value_of(param.ev_maximum_current_limit)
    if ctx.ev_max_voltage < lim.min_voltage or ctx.ev_max_current <= 0:
        raise WrongChargeParameter("the EV's limits cannot be served")
    ctx.schedules = {1: lim.max_power}
    entry = mod.PMaxScheduleEntry(
        time_interval=mod.RelativeTimeInterval(start=0, duration=86400),
        p_max=int(min(lim.max_power, DIN_PMAX_LIMIT)),
    )
    schedules = mod.SAScheduleList(
        sa_schedule_tuple=(
            mod.SAScheduleTuple(
                sa_schedule_tuple_id=1,
                p_max_schedule=mod.PMaxSchedule(p_max_schedule_id=1, p_max_schedule_entry=(entry,)),
            ),
        )
    )
    evse = charge_params.dc_evse_charge_parameter(ctx, tolerance=False)
    body = mod.ChargeParameterDiscoveryRes(
        response_code=mod.ResponseCode.OK,
        evse_processing=mod.EVSEProcessing.Finished,
        sa_schedules=schedules,
        evse_charge_parameter=evse,
    )
    return Reply(body, State.DC_READY)


def power_delivery(ctx: Context, req: Any, now: float) -> Reply:
    mod = ctx.mod
    if req.ready_to_charge_state:
        power.start_checks(ctx, ctx.sa_schedule_tuple_id, None)
        actions = power.start_actions(ctx, now)
        state = State.DC_CHARGING
    else:
        actions = power.stop_actions(ctx, "PowerDelivery ReadyToChargeState=false")
        state = State.DC_STOPPED
    body = mod.PowerDeliveryRes(response_code=mod.ResponseCode.OK, evse_status=ctx.dc_evse_status())
    return Reply(body, state, actions)


def current_demand(ctx: Context, req: Any, now: float) -> Reply:
    """DIN's CurrentDemandRes: the ISO fields without EVSEID, schedule and meter."""
    mod = ctx.mod
    values, actions = dc._loop_values(ctx, mod, req, now)
    body = loop_built(ctx, dc._DIN_RES, mod.CurrentDemandRes, values)
    return Reply(body, State.DC_CHARGING, actions)
