"""What the -20 handlers share: the states, the schema modules, RationalNumbers, headers.

-20 messages have no V2G_Message wrapper: every request and response is a root element
with its own ``header``.  Each schema module has its own copy of the CommonTypes classes,
so a response is built with the module of its own schema (``COMMON``, ``AC``, ``DC``).
"""

from __future__ import annotations

import dataclasses
from enum import StrEnum
from typing import Any

from secc import codec
from secc.core.construct import Builders
from secc.core.context import Context, frozen, scale_int16
from secc.core.events import Schema
from secc.core.failures import failed_response


class _LazySchema:
    """A schema module imported at its first use: a station that offers no -20 never
    loads the -20 codec (start-up time and memory).  Attributes are cached on the proxy,
    so after the first look-up each costs what a module attribute costs."""

    def __init__(self, schema: Schema) -> None:
        self._schema = schema

    def __getattr__(self, name: str) -> Any:
        value = getattr(codec.schema_module(self._schema.value), name)
        setattr(self, name, value)
        return value


COMMON: Any = _LazySchema(Schema.ISO20_COMMON)
AC: Any = _LazySchema(Schema.ISO20_AC)
DC: Any = _LazySchema(Schema.ISO20_DC)

# the schema a generated class belongs to: a response is sent with its own payload type
ISO20_SCHEMAS = frozenset(
    {Schema.ISO20_COMMON, Schema.ISO20_AC, Schema.ISO20_DC, Schema.ISO20_ACDP, Schema.ISO20_WPT}
)
SCHEMA_OF_MODULE: dict[str, Schema] = {
    f"secc.codec._generated.{codec.SCHEMAS[s.value]}": s for s in ISO20_SCHEMAS
}

# Energy transfer services (ISO 15118-20 Table 204) this stack implements
SERVICE_AC = 1
SERVICE_DC = 2
SERVICE_AC_BPT = 5
SERVICE_DC_BPT = 6
BPT_SERVICES = frozenset({SERVICE_AC_BPT, SERVICE_DC_BPT})
# ServiceDetail parameters of the BPT services (Tables 206 / 208)
BPT_CHANNEL_UNIFIED = 1
GENERATOR_MODE_GRID_FOLLOWING = 1
ISLANDING_DETECTION_ACTIVE = 1
ENERGY_SERVICES = frozenset(range(1, 8))  # AC, DC, WPT, DC_ACDP and the BPT variants
# ServiceDetail parameter set per control mode (ParameterSetID -> ControlMode)
PARAMETER_SETS = {1: "Scheduled", 2: "Dynamic"}
CONTROL_MODE_VALUE = {"Scheduled": 1, "Dynamic": 2}
MOBILITY_NEEDS_BY_EVCC = 1
NO_PRICING = 0
ABSOLUTE_PRICING = 1  # ServiceDetail Pricing: an AbsolutePriceSchedule comes


class Iso20State(StrEnum):
    """Where a -20 session is: named after what it has done last (ENDED is the shared
    :attr:`secc.core.context.State.ENDED`)."""

    WAIT_SESSION_SETUP = "20:WaitSessionSetup"
    SESSION_SETUP = "20:SessionSetup"
    AUTHORIZATION_SETUP = "20:AuthorizationSetup"
    CERTIFICATE_WAIT = "20:CertificateInstallationWait"  # the back end's answer is due
    AUTHORIZATION = "20:AuthorizationOngoing"
    AUTHORIZATION_RESELECT = "20:AuthorizationSelectionInvalid"  # one more AuthorizationReq
    AUTHORIZATION_REFUSED = "20:AuthorizationRefused"  # only SessionStop may follow
    AUTHORIZED = "20:Authorized"  # ServiceDiscovery next (also after ServiceRenegotiation)
    SERVICE_DISCOVERY = "20:ServiceDiscovery"
    SERVICE_SELECTED = "20:ServiceSelected"
    CHARGE_PARAMETERS = "20:ChargeParameterDiscovery"
    SCHEDULE_ONGOING = "20:ScheduleExchangeOngoing"
    SCHEDULED = "20:ScheduleExchanged"
    CABLE_CHECK = "20:CableCheckOngoing"
    CABLE_CHECK_DONE = "20:CableCheckDone"
    PRE_CHARGE = "20:PreCharge"
    CHARGE_LOOP = "20:ChargeLoop"
    STANDBY = "20:Standby"
    RENEGOTIATION = "20:ScheduleRenegotiation"  # ScheduleExchange while the contactors stay closed
    RESCHEDULED = "20:Rescheduled"  # PowerDelivery Start back into the loop
    STOPPED = "20:PowerDeliveryStop"
    WELDING_DETECTION = "20:WeldingDetection"


BEFORE_SESSION = frozenset({Iso20State.WAIT_SESSION_SETUP})
# after these the EV's next request is due within Timers.charge_loop_sequence_timeout
LOOP_RESPONSES = frozenset({"AC_ChargeLoopRes", "DC_ChargeLoopRes"})

_RN_CACHE: dict[tuple[int, float], Any] = {}
_RN_CACHE_LIMIT = 4096
_RN = Builders("exponent", "value")


def rational(mod: Any, value: float) -> Any:
    """A RationalNumber (int16 value, int8 exponent) for ``value``, exact to three decimals
    where it fits.  Cached: the same limits go out in every loop."""
    key = (id(mod), value)
    hit = _RN_CACHE.get(key)
    if hit is not None:
        return hit
    scaled = int(value) if -32768 < value < 32768 else None
    if scaled is not None and scaled == value:  # a whole number that fits: no search
        exponent = 0
    else:
        exponent, scaled = scale_int16(value, 127)
    rn = _RN[mod.RationalNumber](exponent, scaled)
    if len(_RN_CACHE) >= _RN_CACHE_LIMIT:
        _RN_CACHE.clear()
    _RN_CACHE[key] = rn
    return rn


def number(rn: Any) -> float:
    """A RationalNumber as a float."""
    return float(rn.value) * 10.0 ** int(rn.exponent)


def header(ctx: Context, mod: Any) -> Any:
    """The response MessageHeader: the session's ID and the station's time (seconds)."""
    sid = ctx.session_id if len(ctx.session_id) == 8 else bytes(8)
    key = (mod, sid, ctx.unix_seconds())
    hit = _HEADERS.get(key)  # (the same header within a second: every loop response)
    if hit is None:
        hit = frozen(_HEADERS, key, lambda: mod.MessageHeader(session_id=sid, time_stamp=key[2]))
    return hit


_HEADERS: dict[tuple[Any, ...], Any] = {}
_STATUSES: dict[tuple[Any, ...], Any] = {}
_METERS: dict[tuple[Any, ...], Any] = {}


def evse_status(ctx: Context, mod: Any) -> Any:
    """EVSEStatus only when the station has something to say: Terminate after a stop
    request, MeteringConfirmation when a signed meter reading is due, ScheduleRenegotiation
    when a new CSMS schedule arrived while charging (scheduled mode); -20 has no "None"
    notification: the element is left out instead."""
    if ctx.stop_requested is not None:
        notification = mod.EvseNotification.Terminate
    elif ctx.metering_due:
        notification = mod.EvseNotification.MeteringConfirmation
    elif ctx.renegotiation_requested and ctx.charging:
        notification = mod.EvseNotification.ScheduleRenegotiation
    else:
        return None
    delay = ctx.config.notification_max_delay
    return frozen(
        _STATUSES,
        (mod, delay, notification),
        lambda: mod.EVSEStatus(notification_max_delay=delay, evse_notification=notification),
    )


def meter_info(ctx: Context, mod: Any) -> Any:
    """MeterInfo from the EVSE's meter (None without a meter ID); with the export
    register in a BPT session."""
    if ctx.config.meter_id is None:
        return None
    exported = ctx.status.energy_export_wh if ctx.config.bpt else None
    key = (
        mod,
        ctx.config.meter_id,
        int(ctx.status.energy_wh),
        None if exported is None else int(exported),
        ctx.unix_seconds(),
    )
    return frozen(
        _METERS,
        key,
        lambda: mod.MeterInfo(
            meter_id=key[1],
            charged_energy_reading_wh=key[2],
            bpt_discharged_energy_reading_wh=key[3],
            meter_timestamp=key[4],
        ),
    )


def loop_meter_info(ctx: Context, mod: Any, requested: bool) -> Any:
    """The ChargeLoopRes MeterInfo: when the EV asks for it, and with the
    MeteringConfirmation notification (the EV signs what it gets).  A PnC session where
    ``metering_confirmation`` is configured asks once, in its first loop response."""
    cfg = ctx.config
    if cfg.metering_confirmation and ctx.is_pnc and ctx.contract_chain and not ctx.metering_asked:
        ctx.metering_asked = True
        ctx.metering_due = cfg.meter_id is not None
    if not (requested or ctx.metering_due):
        return None
    meter = meter_info(ctx, mod)
    if ctx.metering_due and meter is not None:
        ctx.metering_offered.add((meter.meter_id, meter.charged_energy_reading_wh))
    return meter


def offered_service(ctx: Context) -> int:
    """The energy transfer service of this session: AC or DC, by the negotiated namespace."""
    return SERVICE_DC if ctx.is_dc else SERVICE_AC


def bpt_available(ctx: Context) -> bool:
    """AC_BPT / DC_BPT is offered: ``bpt`` on and discharge limits above zero."""
    cfg = ctx.config
    if not cfg.bpt:
        return False
    if ctx.is_dc:
        return cfg.dc.max_discharge_current > 0 and cfg.dc.max_discharge_power > 0
    return cfg.ac.max_discharge_current > 0


def offered_services(ctx: Context) -> tuple[int, ...]:
    """The energy transfer services of this session: the namespace's one, and its BPT
    variant where available."""
    base = offered_service(ctx)
    if bpt_available(ctx):
        return (base, SERVICE_DC_BPT if ctx.is_dc else SERVICE_AC_BPT)
    return (base,)


def is_bpt(ctx: Context) -> bool:
    """The selected service is bidirectional (AC_BPT or DC_BPT)."""
    return ctx.service_id in BPT_SERVICES


def discharge_request(ctx: Context) -> float:
    """The discharge power (watts, positive) the station asks of a BPT session now: a CSMS
    schedule whose first limit is negative (OCPP 2.1 style V2X: negative = discharge),
    within the station's and the EV's discharge limits; 0 outside BPT and once the station
    wants to stop (the power decreases with the Terminate notification [V2G20-1959])."""
    if not is_bpt(ctx) or not ctx.csms_schedule or ctx.csms_schedule[0].max_power >= 0:
        return 0.0
    if ctx.stop_requested is not None:
        return 0.0
    cfg = ctx.config
    station = cfg.dc.max_discharge_power if ctx.is_dc else cfg.ac.max_discharge_power
    return min(-ctx.csms_schedule[0].max_power, station, ctx.ev_max_discharge_power)


def offered_parameter_sets(ctx: Context) -> dict[int, str]:
    modes = ctx.config.iso20_control_modes
    return {pid: mode for pid, mode in PARAMETER_SETS.items() if mode in modes}


def power_cap(ctx: Context) -> float:
    """The station's charge power limit now: its own maximum, the CSMS schedule's first
    entry (never below 0: a negative entry asks a discharge, :func:`discharge_request`).
    0 in dynamic mode once the station wants to stop: there the EV follows the station's
    limits, and Terminate comes with the power decreasing [V2G20-1959]."""
    if ctx.stop_requested is not None and ctx.control_mode == "Dynamic":
        return 0.0
    limit = ctx.config.dc.max_power if ctx.is_dc else ctx.config.ac.max_power
    if ctx.csms_schedule:
        limit = min(limit, ctx.csms_schedule[0].max_power)
    return max(limit, 0.0)


def failed_body(ctx: Context, schema: Schema, request: str, code: str) -> Any:
    """The minimal response of ``request`` with ResponseCode ``code``.

    The generic filler of :mod:`secc.core.failures` knows required fields; a few -20
    responses also require one branch of a choice, which it cannot see: added here.
    A request of a -20 service this station runs none of (WPT, ACDP: never offered in
    ServiceDiscovery) is answered too, with its own response type in its own schema:
    ISO 15118-20 answers a request that is not expected in the session's state with
    that request's response and FAILED_SequenceError, whatever service it belongs to."""
    mod = codec.schema_module(schema.value)
    if schema in ISO20_UNRUN:
        return _unrun_failed(ctx, mod, schema, request, code)
    body = failed_response(
        schema.value,
        request,
        code,
        dc=ctx.is_dc,
        evse_id=ctx.config.evse_id,
        header=header(ctx, mod),
    )
    name = type(body).__name__
    if name == "AuthorizationSetupRes":
        body = dataclasses.replace(
            body, eim_as_res_authorization_mode=mod.EIM_ASResAuthorizationMode()
        )
    elif name == "ScheduleExchangeRes":
        body = dataclasses.replace(body, dynamic_se_res_control_mode=mod.Dynamic_SEResControlMode())
    elif name == "ServiceDetailRes":
        parameter = mod.Parameter(name="ControlMode", int_value=0)
        sets = (mod.ParameterSet(parameter_set_id=0, parameter=(parameter,)),)
        body = dataclasses.replace(
            body, service_parameter_list=mod.ServiceParameterList(parameter_set=sets)
        )
    elif name == "CertificateInstallationRes":
        data = dataclasses.replace(body.signed_installation_data, secp521_encrypted_private_key=b"")
        body = dataclasses.replace(body, signed_installation_data=data)
    return body


def _unrun_failed(ctx: Context, mod: Any, schema: Schema, request: str, code: str) -> Any:
    """The WPT / ACDP response element of ``request`` (by element name: ACDP_ConnectRes
    and ACDP_DisconnectRes share one type), minimal, with ``code``."""
    wanted = request[:-3] + "Res" if request.endswith("Req") else None
    cls = next((r[2] for r in mod.DOCUMENT if r[1] == wanted and r[2] is not None), None)
    if cls is None:
        raise ValueError(f"{request} is not a request of {schema.value}")
    body = failed_response(
        schema.value,
        cls.__name__[:-3] + "Req",
        code,
        dc=ctx.is_dc,
        evse_id=ctx.config.evse_id,
        header=header(ctx, mod),
    )
    return body


# the -20 schemas of services this station never offers: their requests are answered
# FAILED (common.failed_body), never handled
ISO20_UNRUN = frozenset({Schema.ISO20_ACDP, Schema.ISO20_WPT})
