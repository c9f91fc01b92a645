"""-20 SessionSetup, AuthorizationSetup, Authorization (EIM), ServiceDiscovery,
ServiceDetail, ServiceSelection and SessionStop.

Authorization offers EIM, and Plug & Charge where :func:`secc.core.iso20.pnc.pnc_offered`
(TLS 1.3 with a vehicle certificate, PnC enabled; the PnC checks are in
:mod:`secc.core.iso20.pnc`).  An AuthorizationReq selecting a service not offered is
answered WARNING_AuthorizationSelectionInvalid; the EV may then select an offered one
(the same invalid choice again is a sequence error) or stop.  A refused EIM
authorization is WARNING_EIMAuthorizationFailure, after which only SessionStop is legal.
A paused session the EV resumes keeps its authorization and service selection.
ServiceDiscovery offers the one energy transfer service of the negotiated namespace (AC
or DC), with one parameter set per control mode offered.
"""

from __future__ import annotations

from typing import Any

from secc.core.actions import Action, EndReason, SessionStarted, StopDcOutput
from secc.core.config import SessionConfig
from secc.core.context import Context, Reply, State
from secc.core.events import AuthorizationResult
from secc.core.failures import (
    PeerError,
    SequenceError,
    ServiceIdInvalid,
    ServiceSelectionInvalid,
    Timeout,
)
from secc.core.iso2.setup import request_eim_authorization
from secc.core.iso20 import pnc
from secc.core.iso20.common import (
    ABSOLUTE_PRICING,
    BPT_CHANNEL_UNIFIED,
    BPT_SERVICES,
    COMMON,
    CONTROL_MODE_VALUE,
    ENERGY_SERVICES,
    GENERATOR_MODE_GRID_FOLLOWING,
    ISLANDING_DETECTION_ACTIVE,
    MOBILITY_NEEDS_BY_EVCC,
    NO_PRICING,
    Iso20State,
    header,
    offered_parameter_sets,
    offered_services,
)

AUTH_TIMER_KEY = "Authorization"


def vehicle_leaf(config: SessionConfig) -> bytes | None:
    """The DER of the vehicle's TLS leaf certificate (mutual TLS 1.3), or None."""
    chain = config.vehicle_chain
    if not chain:
        return None
    from cryptography.hazmat.primitives.serialization import Encoding  # (issue 17: lazy)

    return chain[0].public_bytes(Encoding.DER)


def _same_ev(ctx: Context, paused: Any) -> bool:
    """The resuming EV is the one that paused [V2G20-2545]: the same EVCCID and, where
    either connection had mutual TLS, the same vehicle leaf certificate.  Otherwise a
    second EV that learnt the SessionID would inherit the first one's authorization."""
    leaf = vehicle_leaf(ctx.config)
    return bool(paused.evcc_id == ctx.evcc_id and paused.vehicle_certificate == leaf)


def session_setup(ctx: Context, req: Any, now: float) -> Reply:
    """A new SessionID, or the paused one when the same EV presents it
    (OK_OldSessionJoined; any other EV gets a new session, [V2G20-2626] [V2G20-2627]);
    a joined session that was authorized with a service selected resumes at
    ChargeParameterDiscovery."""
    rc = COMMON.ResponseCode
    ctx.evcc_id = req.evccid.encode()
    asked = bytes(req.header.session_id)
    paused = ctx.resume
    state = Iso20State.SESSION_SETUP
    if (
        paused is not None
        and asked == paused.session_id
        and paused.protocol == ctx.protocol
        and _same_ev(ctx, paused)
    ):
        ctx.session_id = paused.session_id
        ctx.payment_option = paused.payment_option
        ctx.emaid = paused.emaid
        ctx.contract_chain = paused.contract_chain
        ctx.resumed = True
        code = rc.OK_OldSessionJoined
        if paused.authorized and paused.service_id is not None:
            # the authorization and the service hold for the whole service session: the EV
            # goes on with ChargeParameterDiscovery [V2G20-2097] [V2G20-2098]
            ctx.auth_result = AuthorizationResult(True, "", reason="resumed session")
            ctx.service_id = paused.service_id
            ctx.parameter_set_id = paused.parameter_set_id
            ctx.control_mode = paused.control_mode
            state = Iso20State.SERVICE_SELECTED
    else:
        ctx.session_id = ctx.new_session_id()
        code = rc.OK_NewSessionEstablished
    body = COMMON.SessionSetupRes(
        header=header(ctx, COMMON), response_code=code, evseid=ctx.config.evse_id
    )
    started = SessionStarted(ctx.session_id, ctx.evcc_id, ctx.protocol)
    return Reply(body, state, (started,))


def authorization_setup(ctx: Context, req: Any, now: float) -> Reply:
    """EIM, and PnC with a fresh GenChallenge (and the certificate installation service
    where enabled) where PnC is offered (:func:`secc.core.iso20.pnc.setup_fields`)."""
    ctx.payment_option = "ExternalPayment"
    body = COMMON.AuthorizationSetupRes(
        header=header(ctx, COMMON),
        response_code=COMMON.ResponseCode.OK,
        **pnc.setup_fields(ctx),
    )
    return Reply(body, Iso20State.AUTHORIZATION_SETUP)


def _selection_valid(ctx: Context, req: Any) -> bool:
    a = COMMON.Authorization
    if req.selected_authorization_service is a.EIM:
        return req.eim_a_req_authorization_mode is not None
    if req.selected_authorization_service is a.PnC and ctx.gen_challenge is not None:
        return req.pn_c_a_req_authorization_mode is not None
    return False


def authorization(ctx: Context, req: Any, now: float) -> Reply:
    """EIM: Ongoing_WaitingForCustomerInteraction until the AuthorizationResult arrives,
    for at most ``timers.ongoing`` seconds; then OK, or WARNING_EIMAuthorizationFailure
    (Finished) when refused.  PnC: :func:`_pnc_authorization`.  A service not offered is
    WARNING_AuthorizationSelectionInvalid, after which the next request must be an
    AuthorizationReq selecting an offered service [V2G20-2209]."""
    rc = COMMON.ResponseCode
    processing = COMMON.Processing
    if not _selection_valid(ctx, req):
        body = _authorization_res(ctx, rc.WARNING_AuthorizationSelectionInvalid)
        return Reply(body, Iso20State.AUTHORIZATION_RESELECT)
    if req.selected_authorization_service is COMMON.Authorization.PnC:
        return _pnc_authorization(ctx, req, now)
    if ctx.payment_option == "Contract":
        raise SequenceError("EIM after a PnC AuthorizationReq")
    actions = request_eim_authorization(ctx)
    if ctx.authorized:
        return Reply(_authorization_res(ctx, rc.OK), Iso20State.AUTHORIZED, actions)
    if ctx.auth_result is not None:
        body = _authorization_res(ctx, rc.WARNING_EIMAuthorizationFailure)
        return Reply(body, Iso20State.AUTHORIZATION_REFUSED, actions)
    started = ctx.started_at.setdefault(AUTH_TIMER_KEY, now)
    if now - started > ctx.config.timers.ongoing:
        raise Timeout("no authorization within the Ongoing limit")
    body = _authorization_res(ctx, rc.OK, processing.Ongoing_WaitingForCustomerInteraction)
    return Reply(body, Iso20State.AUTHORIZATION, actions)


def authorization_reselect(ctx: Context, req: Any, now: float) -> Reply:
    """The AuthorizationReq after WARNING_AuthorizationSelectionInvalid: the same invalid
    selection again is a sequence error, so that an EV stuck on it cannot hold the
    station."""
    if not _selection_valid(ctx, req):
        raise SequenceError("the authorization service was not offered, again")
    return authorization(ctx, req, now)


def _pnc_authorization(ctx: Context, req: Any, now: float) -> Reply:
    """PnC: signature, GenChallenge, contract chain, then the back end (Ongoing until its
    answer, at most ``timers.ongoing``).  A refusal is its WARNING code with Finished,
    and only SessionStop may follow; a bad signature is FAILED_SignatureError."""
    rc = COMMON.ResponseCode
    if ctx.payment_option == "ExternalPayment" and ctx.auth_requested:
        raise SequenceError("PnC after an EIM AuthorizationReq")
    try:
        outcome, actions = pnc.authorize(ctx, req, now)
    except pnc.PncRefused as refused:
        ctx.auth_requested = False
        body = _authorization_res(ctx, rc[refused.code])
        return Reply(body, Iso20State.AUTHORIZATION_REFUSED)
    ctx.payment_option = "Contract"
    if outcome is None:
        # OK only for a contract certificate valid for more than 14 more days [V2G20-1979]
        code = rc.OK_CertificateExpiresSoon if pnc.contract_expires_soon(ctx) else rc.OK
        return Reply(_authorization_res(ctx, code), Iso20State.AUTHORIZED, actions)
    started = ctx.started_at.setdefault(AUTH_TIMER_KEY, now)
    if now - started > ctx.config.timers.ongoing:
        raise Timeout("no authorization within the Ongoing limit")
    body = _authorization_res(ctx, rc.OK, COMMON.Processing.Ongoing)
    return Reply(body, Iso20State.AUTHORIZATION, actions)


def _authorization_res(ctx: Context, code: Any, processing: Any = None) -> Any:
    return COMMON.AuthorizationRes(
        header=header(ctx, COMMON),
        response_code=code,
        evse_processing=processing or COMMON.Processing.Finished,
    )


def service_discovery(ctx: Context, req: Any, now: float) -> Reply:
    """The session's energy transfer service; no value-added services.  The EV's
    SupportedServiceIDs filter is a hint: the one service this session can run is listed
    whatever it says (the list must not be empty)."""
    services = tuple(
        COMMON.Service(service_id=sid, free_service=ctx.config.free_service)
        for sid in offered_services(ctx)
    )
    body = COMMON.ServiceDiscoveryRes(
        header=header(ctx, COMMON),
        response_code=COMMON.ResponseCode.OK,
        service_renegotiation_supported=ctx.config.iso20_service_renegotiation,
        energy_transfer_service_list=COMMON.ServiceList(service=services),
    )
    return Reply(body, Iso20State.SERVICE_DISCOVERY)


def service_detail(ctx: Context, req: Any, now: float) -> Reply:
    """The parameter sets of the offered service; any other ServiceID is
    FAILED_ServiceIDInvalid."""
    if req.service_id not in offered_services(ctx):
        raise ServiceIdInvalid(f"ServiceID {req.service_id} is not offered")
    bpt = req.service_id in BPT_SERVICES
    sets = tuple(
        COMMON.ParameterSet(parameter_set_id=pid, parameter=_parameters(ctx, mode, bpt))
        for pid, mode in offered_parameter_sets(ctx).items()
    )
    body = COMMON.ServiceDetailRes(
        header=header(ctx, COMMON),
        response_code=COMMON.ResponseCode.OK,
        service_id=req.service_id,
        service_parameter_list=COMMON.ServiceParameterList(parameter_set=sets),
    )
    return Reply(body, Iso20State.SERVICE_DISCOVERY)


def _parameters(ctx: Context, mode: str, bpt: bool = False) -> tuple[Any, ...]:
    """Table 205 (AC) / 207 (DC): Connector, ControlMode, [EVSENominalVoltage],
    MobilityNeedsMode, Pricing; the BPT services (Tables 206 / 208) add BPTChannel
    (Unified: one channel both ways), GeneratorMode (GridFollowing) and, for AC,
    GridCodeIslandingDetectionMethod (Active)."""
    p = COMMON.Parameter
    config = ctx.config
    if ctx.is_dc:
        connector = 2 if "DC_extended" in config.energy_modes else 1  # Extended / Core
    else:
        connector = 2 if config.ac.phases == 3 else 1  # three / single phase
    params = [
        p(name="Connector", int_value=connector),
        p(name="ControlMode", int_value=CONTROL_MODE_VALUE[mode]),
    ]
    if not ctx.is_dc:
        params.append(p(name="EVSENominalVoltage", int_value=int(config.ac.nominal_voltage)))
    params += [
        p(name="MobilityNeedsMode", int_value=MOBILITY_NEEDS_BY_EVCC),
        p(name="Pricing", int_value=_pricing(ctx, mode)),
    ]
    if bpt:
        params += [
            p(name="BPTChannel", int_value=BPT_CHANNEL_UNIFIED),
            p(name="GeneratorMode", int_value=GENERATOR_MODE_GRID_FOLLOWING),
        ]
        if not ctx.is_dc:
            params.append(
                p(name="GridCodeIslandingDetectionMethod", int_value=ISLANDING_DETECTION_ACTIVE)
            )
    return tuple(params)


def _pricing(ctx: Context, mode: str) -> int:
    """Pricing (Tables 205 / 207): absolute prices where the station has a tariff and
    the parameter set is scheduled mode (the only one that carries a price schedule)."""
    return ABSOLUTE_PRICING if ctx.config.tariff and mode == "Scheduled" else NO_PRICING


def service_selection(ctx: Context, req: Any, now: float) -> Reply:
    """The EV's choice must be the offered energy service with an offered parameter set:
    not an energy transfer service at all is FAILED_NoEnergyTransferServiceSelected, any
    other mismatch (and any value-added service: none is offered) is
    FAILED_ServiceSelectionInvalid."""
    chosen = req.selected_energy_transfer_service
    if chosen.service_id not in ENERGY_SERVICES:
        raise PeerError(
            f"ServiceID {chosen.service_id} is not an energy transfer service",
            code="FAILED_NoEnergyTransferServiceSelected",
        )
    if chosen.service_id not in offered_services(ctx):
        raise ServiceSelectionInvalid(f"ServiceID {chosen.service_id} is not offered")
    mode = offered_parameter_sets(ctx).get(chosen.parameter_set_id)
    if mode is None:
        raise ServiceSelectionInvalid(f"ParameterSetID {chosen.parameter_set_id} is not offered")
    if req.selected_vas_list is not None and req.selected_vas_list.selected_service:
        raise ServiceSelectionInvalid("no value-added service is offered")
    ctx.service_id = chosen.service_id
    ctx.parameter_set_id = chosen.parameter_set_id
    ctx.control_mode = mode
    body = COMMON.ServiceSelectionRes(
        header=header(ctx, COMMON), response_code=COMMON.ResponseCode.OK
    )
    return Reply(body, Iso20State.SERVICE_SELECTED)


def session_stop(ctx: Context, req: Any, now: float) -> Reply:
    """Terminate, Pause (the SessionID may be resumed; in dynamic mode only after the
    station asked for it, which it never does: FAILED_PauseNotAllowed), or
    ServiceRenegotiation: back to ServiceDiscovery with the service, schedule and DC
    preparation forgotten."""
    cs = COMMON.ChargingSession
    body = COMMON.SessionStopRes(header=header(ctx, COMMON), response_code=COMMON.ResponseCode.OK)
    if req.charging_session is cs.Terminate:
        return Reply(body, State.ENDED, end=EndReason.EV_STOP)
    if req.charging_session is cs.Pause:
        if ctx.control_mode == "Dynamic":  # only the SECC may pause a dynamic session
            raise PeerError("the EV may not pause in dynamic mode", code="FAILED_PauseNotAllowed")
        return Reply(body, State.ENDED, end=EndReason.EV_PAUSE)
    if not ctx.authorized:
        raise SequenceError("ServiceRenegotiation without an authorized session")
    if not ctx.config.iso20_service_renegotiation:
        raise PeerError(
            "service renegotiation is not supported", code="FAILED_NoServiceRenegotiationSupported"
        )
    # a DC output still on from the cable check or pre-charge goes off now
    dc_on = ctx.is_dc and (ctx.isolation_requested or ctx.precharge_target is not None)
    actions: tuple[Action, ...] = (StopDcOutput(),) if dc_on else ()
    ctx.service_id = ctx.parameter_set_id = None
    ctx.control_mode = None
    ctx.schedules = {}
    ctx.isolation_requested = ctx.isolation_valid = False
    ctx.precharge_target = None
    ctx.precharge_reached = False
    ctx.standby = False
    ctx.started_at.clear()
    return Reply(body, Iso20State.AUTHORIZED, actions)
