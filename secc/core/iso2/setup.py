"""ServiceDiscovery, ServiceDetail and PaymentServiceSelection (ISO 15118-2 §8.4.3.3-5)."""

from __future__ import annotations

from typing import Any

from secc.core.actions import RequestAuthorization
from secc.core.context import Context, Reply, State
from secc.core.failures import (
    NoChargeServiceSelected,
    PaymentSelectionInvalid,
    ServiceIdInvalid,
    ServiceSelectionInvalid,
)

CHARGE_SERVICE_ID = 1
CERTIFICATE_SERVICE_ID = 2
INTERNET_SERVICE_ID = 3
# ServiceDetail parameter sets: certificate service (1 Installation, 2 Update) and
# internet (3 HTTP port 80, 4 HTTPS port 443) [V2G2-???, Table 105/106]
CERTIFICATE_SETS = {1: "Installation", 2: "Update"}
INTERNET_SETS = {3: ("http", 80), 4: ("https", 443)}


def value_added_services(ctx: Context) -> dict[int, tuple[str, str]]:
    """ServiceID -> (name, category) of the value-added services this session offers."""
    out: dict[int, tuple[str, str]] = {}
    if "Contract" in ctx.config.payment_options and ctx.config.certificate_installation:
        out[CERTIFICATE_SERVICE_ID] = ("Certificate", "ContractCertificate")
    if ctx.config.internet_service:
        out[INTERNET_SERVICE_ID] = ("InternetAccess", "Internet")
    return out


def service_discovery(ctx: Context, req: Any, now: float) -> Reply:
    mod = ctx.mod
    modes = tuple(mod.EnergyTransferMode(m) for m in ctx.config.energy_modes)
    charge = mod.ChargeService(
        service_id=CHARGE_SERVICE_ID,
        service_name="AC_DC_Charging",
        service_category=mod.ServiceCategory.EVCharging,
        free_service=ctx.config.free_service,
        supported_energy_transfer_mode=mod.SupportedEnergyTransferMode(energy_transfer_mode=modes),
    )
    wanted = req.service_category.value if req.service_category is not None else None
    services = tuple(
        mod.Service(
            service_id=sid,
            service_name=name,
            service_category=mod.ServiceCategory(category),
            free_service=True,
        )
        for sid, (name, category) in value_added_services(ctx).items()
        if wanted is None or wanted == category
    )
    body = mod.ServiceDiscoveryRes(
        response_code=mod.ResponseCode.OK,
        payment_option_list=mod.PaymentOptionList(
            payment_option=tuple(mod.PaymentOption(p) for p in ctx.config.payment_options)
        ),
        charge_service=charge,
        service_list=mod.ServiceList(service=services) if services else None,
    )
    return Reply(body, State.SERVICE_DISCOVERY)


def service_detail(ctx: Context, req: Any, now: float) -> Reply:
    mod = ctx.mod
    sid = req.service_id
    if sid == CERTIFICATE_SERVICE_ID and sid in value_added_services(ctx):
        sets = tuple(
            mod.ParameterSet(
                parameter_set_id=i,
                parameter=(mod.Parameter(name="Service", string_value=v),),
            )
            for i, v in CERTIFICATE_SETS.items()
        )
    elif sid == INTERNET_SERVICE_ID and sid in value_added_services(ctx):
        sets = tuple(
            mod.ParameterSet(
                parameter_set_id=i,
                parameter=(
                    mod.Parameter(name="Protocol", string_value=proto),
                    mod.Parameter(name="Port", int_value=port),
                ),
            )
            for i, (proto, port) in INTERNET_SETS.items()
        )
    else:
        raise ServiceIdInvalid(f"ServiceID {sid} is not offered")
    body = mod.ServiceDetailRes(
        response_code=mod.ResponseCode.OK,
        service_id=sid,
        service_parameter_list=mod.ServiceParameterList(parameter_set=sets),
    )
    return Reply(body, State.SERVICE_DISCOVERY)


def payment_service_selection(ctx: Context, req: Any, now: float) -> Reply:
    mod = ctx.mod
    option = req.selected_payment_option.value
    if option not in ctx.config.payment_options:
        raise PaymentSelectionInvalid(f"payment option {option} is not offered")
    selected = req.selected_service_list.selected_service
    ids = tuple(s.service_id for s in selected)
    if CHARGE_SERVICE_ID not in ids:
        raise NoChargeServiceSelected("the charge service (ServiceID 1) was not selected")
    offered = value_added_services(ctx)
    for s in selected:
        if s.service_id == CHARGE_SERVICE_ID:
            continue
        if s.service_id not in offered:
            raise ServiceSelectionInvalid(f"ServiceID {s.service_id} is not offered")
        sets = CERTIFICATE_SETS if s.service_id == CERTIFICATE_SERVICE_ID else INTERNET_SETS
        if s.parameter_set_id is not None and s.parameter_set_id not in sets:
            raise ServiceSelectionInvalid(
                f"ParameterSetID {s.parameter_set_id} of ServiceID {s.service_id}"
            )
    ctx.payment_option = option
    ctx.selected_services = ids
    body = mod.PaymentServiceSelectionRes(response_code=mod.ResponseCode.OK)
    if option == "Contract":
        return Reply(body, State.PAYMENT_PNC)
    return Reply(body, State.PAYMENT_EIM, request_eim_authorization(ctx))


def request_eim_authorization(ctx: Context) -> tuple[RequestAuthorization, ...]:
    """EIM: ask the station once (RFID, app, remote start); free service needs nothing."""
    if ctx.config.free_service or ctx.auth_requested or ctx.auth_result is not None:
        return ()
    ctx.auth_requested = True
    return (RequestAuthorization(kind="ExternalPayment", id_token=""),)
