"""The SECC session: a sans-I/O ISO 15118-2 / DIN SPEC 70121 / ISO 15118-20 state machine.

Theory of operation
-------------------
One :class:`SeccSession` lives for one V2G communication session (one TCP/TLS
connection).  The runtime feeds it events through ``handle(event, now)`` and performs the
actions it returns, in order; it calls ``handle(TimerExpired(...), now)`` when ``now``
reaches :attr:`SeccSession.deadline`.

- A request is looked up in the legal-transition table (:mod:`secc.core.iso2.states`; for
  ISO 15118-20 :mod:`secc.core.iso20.states`) by the current state and its type.
  Absent: FAILED_SequenceError.  Present: its handler returns a
  :class:`~secc.core.context.Reply` (response body, next state, actions).  A message of
  the other family (a -20 message before -20 was negotiated, a -2/DIN one after) gets
  no answer the EV could read: the session closes (a repeated supportedAppProtocolReq is
  answered Failed_NoNegotiation, as ever).
- Handlers refuse by raising :class:`~secc.core.failures.PeerError`; it is caught here,
  in one place, and answered with the minimal FAILED response of that request type.
  After any FAILED response the session ends.
- Ending always emits, in order: StopDcOutput (DC), OpenContactors,
  ChargingStateChanged(False) if charging, the final response if there is one (a FAILED
  answer, SessionStopRes), CloseConnection, SessionEnded.  No path ends a session without
  opening the contactors, and the EVSE is safe before the EV hears the final word.
- Outside work never blocks: authorization is polled by the EV (EVSEProcessing=Ongoing)
  and answered from the AuthorizationResult fact; certificate installation is the one
  request whose answer waits (for CertificateResult) under its 4.5 s budget.
- One engine serves every family: the appHandshake decides which table and which
  message shape (-2/DIN bodies in a V2G_Message; -20 root elements with their own
  header, each response sent in the schema of its own set) the session uses after it.
- Timers: V2G_SECC_Sequence_Timeout runs from every response to the next request (for
  ISO 15118-20 only ``charge_loop_sequence_timeout`` after a charge-loop response);
  CommunicationSetup from the session's start until SessionSetupReq.  The session also
  checks due timers on every ``handle`` call, so a late runtime loses nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from secc import codec
from secc.core import loop
from secc.core.actions import (
    Action,
    ChargingStateChanged,
    CloseConnection,
    EndReason,
    OpenContactors,
    SendResponse,
    SessionEnded,
    StopDcOutput,
)
from secc.core.config import PausedSession, ScheduleEntry, SessionConfig
from secc.core.construct import Builders, builder
from secc.core.context import Context, Reply, State
from secc.core.events import (
    AuthorizationResult,
    CertificateResult,
    ChargingScheduleUpdate,
    ConnectionLost,
    Event,
    EvseFault,
    EvseStatus,
    RequestReceived,
    Schema,
    StopRequested,
    TimerExpired,
)
from secc.core.failures import (
    PeerError,
    SequenceError,
    UnknownSession,
    failed_response,
    response_name,
)
from secc.core.iso2 import pnc
from secc.core.iso2.states import handler_for
from secc.core.iso20 import pnc as iso20_pnc
from secc.core.iso20 import setup as iso20_setup
from secc.core.iso20 import states as iso20_states
from secc.core.iso20.common import BEFORE_SESSION as ISO20_BEFORE_SESSION
from secc.core.iso20.common import ISO20_SCHEMAS, ISO20_UNRUN, SCHEMA_OF_MODULE, Iso20State
from secc.core.iso20.common import LOOP_RESPONSES as ISO20_LOOP_RESPONSES
from secc.core.iso20.common import failed_body as iso20_failed_body
from secc.core.loop import LOOP_STATES

log = logging.getLogger(__name__)


class _SessionLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefixes every record with the session id (hex; ``-`` before SessionSetup)."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(log, {})
        self.ctx = ctx

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        sid = self.ctx.session_id
        prefix = sid.hex() if sid != NO_SESSION else "-"
        return f"[{prefix}] {msg}", kwargs


SEQUENCE_TIMER = "V2G_SECC_Sequence_Timeout"
SETUP_TIMER = "V2G_SECC_CommunicationSetup_Performance_Time"
CERTIFICATE_TIMER = pnc.CERTIFICATE_TIMER
STOP_TIMER = "StopCharging_Grace"
NO_SESSION = b"\x00"
_DEBUG = logging.DEBUG
_build_send = builder(SendResponse, "message", "schema", "name")
_MESSAGE = Builders("header", "body")
_BODY = Builders("body_element")
_BEFORE_SESSION = frozenset({State.WAIT_HANDSHAKE, State.WAIT_SESSION_SETUP}) | ISO20_BEFORE_SESSION


class SeccSession:
    """``handle(event, now) -> list[Action]``, ``deadline``, ``state``; see the module doc."""

    # answer loop requests through secc.core.loop (False: the transition table's
    # handlers only; tests/core/test_loop_fast_path.py compares the two)
    fast_loop = True

    def __init__(
        self,
        config: SessionConfig,
        *,
        now: float,
        random_bytes: Callable[[int], bytes],
        utc_now: Callable[[], dt.datetime],
        resume: PausedSession | None = None,
    ) -> None:
        self.config = config
        self._ctx = Context(
            config=config, random_bytes=random_bytes, utc_now=utc_now, resume=resume
        )
        self._state: State | Iso20State = State.WAIT_HANDSHAKE
        self._iso20 = False  # ISO 15118-20 negotiated: its table and message shape
        # the last -2/DIN V2G_Message sent and its body: the charging loop's unchanged
        # response goes out as the same (frozen) message, which the encoder keeps
        self._sent: tuple[Any, Any, Any] = (None, None, None)  # body, message, action
        self._timers: dict[str, float] = {SETUP_TIMER: now + config.timers.communication_setup}
        self.paused: PausedSession | None = None
        self.end_reason: EndReason | None = None
        # the charging loop's fast path (secc.core.loop), made when the loop starts
        self._loop: loop.Plan | None = None
        self.log = _SessionLog(self._ctx)

    # --- read-only views ------------------------------------------------------------------

    @property
    def state(self) -> State | Iso20State:
        """A :class:`State` (-2/DIN, and ENDED for all), or an :class:`Iso20State`."""
        return self._state

    @property
    def deadline(self) -> float | None:
        return min(self._timers.values()) if self._timers else None

    @property
    def schema(self) -> Schema:
        """The grammar the next request must be decoded with."""
        return self._ctx.schema

    @property
    def session_id(self) -> bytes:
        return self._ctx.session_id

    @property
    def context(self) -> Context:
        """The session's facts (read them; tests and traces use this)."""
        return self._ctx

    # --- the one entry point --------------------------------------------------------------

    def handle(self, event: Event | ChargingScheduleUpdate, now: float) -> list[Action]:
        if self._state is State.ENDED:
            return []
        self._ctx.now = now
        timers = self._timers
        if timers and min(timers.values()) <= now:
            due = self._due(now)
            if due is not None:
                return self._on_timer(due, now)
        if type(event) is RequestReceived:  # the common case first
            plan = self._loop
            if plan is not None:  # in the charging loop: its fast path first
                done = self._loop_request(plan, event, now)
                if done is not None:
                    return done
            return self._on_request(event, now)
        ctx = self._ctx
        match event:
            case RequestReceived():
                return self._on_request(event, now)
            case TimerExpired():
                return []  # stale: the timer was re-armed or cancelled
            case ConnectionLost(reason=reason):
                return self._end(EndReason.CONNECTION_LOST, reason)
            case EvseFault(kind=kind, detail=detail):
                return self._end(EndReason.EVSE_FAULT, f"{kind}: {detail}" if detail else kind)
            case EvseStatus():
                ctx.status = event
                if event.isolation == "Fault" and ctx.contactors_closed:
                    return self._end(EndReason.EVSE_FAULT, "isolation fault while charging")
                return []
            case AuthorizationResult():
                ctx.auth_result = event
                if not event.accepted and ctx.contactors_closed:
                    return self._stop(event.reason or "deauthorized", now)
                return []
            case CertificateResult():
                return self._on_certificate(event, now)
            case StopRequested(reason=reason):
                if ctx.contactors_closed:
                    return self._stop(reason, now)
                return self._end(EndReason.STATION_STOP, reason)
            case ChargingScheduleUpdate(entries=entries, offers=offers):
                ctx.csms_schedule = tuple(ScheduleEntry(s, p, d) for s, p, d in entries) or None
                ctx.csms_offers = offers if ctx.csms_schedule is not None else ()
                ctx.schedule_origin = now
                ctx.schedule_updates += 1
                scheduled20 = self._iso20 and ctx.control_mode == "Scheduled"
                if ctx.charging and (ctx.schema is Schema.ISO2 or scheduled20):
                    ctx.renegotiation_requested = True  # ReNegotiation / ScheduleRenegotiation
                return []
        raise TypeError(f"not a session event: {event!r}")

    def _stop(self, reason: str, now: float) -> list[Action]:
        """Charging must stop: EVSENotification=StopCharging from now on, and the EV gets
        ``stop_grace`` seconds to send PowerDelivery Stop."""
        self._ctx.stop_requested = reason
        self._timers.setdefault(STOP_TIMER, now + self.config.timers.stop_grace)
        return []

    # --- requests -------------------------------------------------------------------------

    def _on_request(self, event: RequestReceived, now: float) -> list[Action]:
        ctx = self._ctx
        schema = event.schema
        msg: Any = event.message
        apphand = schema is Schema.APPHAND
        if not apphand and self._iso20 is not (schema in ISO20_SCHEMAS):
            # the other family's grammar: nothing to answer it with that the EV reads
            name = type(msg).__name__
            return self._end(
                EndReason.SEQUENCE_ERROR, f"{schema.value} {name} is not expected in {self._state}"
            )
        if self._iso20 and not apphand:
            body, header = msg, msg.header
            name = event.element or type(body).__name__
            handler = iso20_states.handler_for(ctx.is_dc, schema, self._state, name)
        else:
            if apphand:
                body, header = msg, None
            else:
                body, header = msg.body.body_element, msg.header
            name = type(body).__name__
            handler = handler_for(schema, self._state, name) if schema is ctx.schema else None
        if log.isEnabledFor(_DEBUG):  # (no adapter call per loop message)
            self.log.debug("%s in %s", name, self._state.value)
        # values outside their XSD facets that fit the EXI representation (a car's 4 in
        # MaxNumberOfPhasesInUse): logged and accepted, as the deployed codecs accept
        # them; the handlers use them as they can (power.ev_schedule passes 4 phases on
        # as 3) and refuse the unusable ones with their own codes (a SAScheduleTupleID
        # of 256 was never offered: FAILED_TariffSelectionInvalid); a value a response
        # would echo stops at the strict encoder
        if event.violations:
            for violation in event.violations:
                self.log.warning("%s: accepted a value outside its XSD facet: %s", name, violation)
        try:
            if handler is None:
                raise SequenceError(f"{name} is not expected in state {self._state}")
            if (
                header is not None
                and header.session_id != ctx.session_id
                and bytes(header.session_id) != ctx.session_id
                and self._state not in _BEFORE_SESSION
            ):
                raise UnknownSession(f"SessionID {bytes(header.session_id).hex()}")
            ctx.header = header
            reply = handler(ctx, body, now)
        except PeerError as err:
            return self._fail(schema, name, err)
        except codec.CodecError as exc:  # decodable peer content the codec cannot re-encode
            return self._fail(schema, name, PeerError(f"the request cannot be re-encoded: {exc}"))
        return self._apply(reply, schema, now)

    def _loop_request(
        self, plan: loop.Plan, event: RequestReceived, now: float
    ) -> list[Action] | None:
        """A loop request answered by the loop's step (:mod:`secc.core.loop`), with what
        ``_on_request``, ``_apply`` and ``_send`` do for it; None: not for the fast path
        (another request, state or schema, facet violations, debug logging, another
        SessionID, or a case the step leaves to the handler), nothing changed."""
        schema = event.schema
        if schema is not plan.schema or event.violations:
            return None
        msg: Any = event.message
        if plan.wrapped:
            req = msg.body.body_element
        else:
            req = msg
            element = event.element
            if element is not None and element != plan.request_name:
                return None
        if type(req) is not plan.request or self._state not in plan.states:
            return None
        ctx = self._ctx
        header = msg.header
        if header.session_id != ctx.session_id or log.isEnabledFor(_DEBUG):
            return None
        ctx.header = header
        try:
            out = plan.step(plan, ctx, req, now)
        except PeerError as err:  # (the steps refuse nothing themselves)
            return self._fail(schema, plan.request_name, err)
        if out is None:
            return None
        body, actions, self._state = out
        timers = self._timers
        if STOP_TIMER in timers and not ctx.contactors_closed:
            del timers[STOP_TIMER]  # the EV stopped in time
        timers[SEQUENCE_TIMER] = now + plan.timeout
        last_body, message, send = self._sent
        if not plan.wrapped:
            if body is not last_body:
                send = _build_send(body, plan.response_schema, plan.response_name)
                self._sent = (body, None, send)
        else:
            sid = ctx.session_id
            if (
                body is not last_body
                or message is None
                or send.schema is not schema
                or message.header.session_id != sid
            ):
                head = message.header if message is not None else None
                if head is None or type(head) is not plan.header_cls or head.session_id != sid:
                    head = plan.header_cls(session_id=sid)
                message = plan.message(head, plan.body(body))
                send = _build_send(message, schema, plan.response_name)
                self._sent = (body, message, send)
        if actions:
            return [*actions, send]
        return [send]

    def _apply(self, reply: Reply, schema: Schema, now: float) -> list[Action]:
        actions: list[Action] = list(reply.actions)
        state = self._state
        if (
            state in _BEFORE_SESSION
            and reply.state not in _BEFORE_SESSION
            and reply.state is not State.ENDED
        ):
            self._timers.pop(SETUP_TIMER, None)
        if state is State.WAIT_HANDSHAKE and self._ctx.schema is Schema.ISO20_COMMON:
            self._iso20 = True
        self._state = reply.state
        if reply.state is not state and reply.state in LOOP_STATES:
            self._loop = loop.plan(self._ctx, reply.state, self._iso20) if self.fast_loop else None
        timers = self._timers
        if STOP_TIMER in timers and not self._ctx.contactors_closed:
            del timers[STOP_TIMER]  # the EV stopped in time
        body = reply.body
        if body is None:
            timers.pop(SEQUENCE_TIMER, None)
            if reply.end is not None:
                return actions + self._end(reply.end, "")
            if reply.wait is not None:
                name, seconds = reply.wait
                timers[name] = now + seconds
            return actions
        response = self._send(body, schema)
        if reply.end is not None:
            return actions + self._end(reply.end, "", [response])
        seconds = self.config.timers.sequence_timeout
        if self._iso20 and type(body).__name__ in ISO20_LOOP_RESPONSES:
            seconds = self.config.timers.charge_loop_sequence_timeout
        timers[SEQUENCE_TIMER] = now + seconds
        actions.append(response)
        return actions

    def _send(self, body: Any, schema: Schema) -> SendResponse:
        if schema is Schema.APPHAND:
            return SendResponse(body, schema, type(body).__name__)
        last_body, message, send = self._sent
        if self._iso20:  # a root element with its header, in the schema of its own set
            if body is not last_body:
                cls = type(body)
                send = _build_send(body, SCHEMA_OF_MODULE[cls.__module__], cls.__name__)
                self._sent = (body, None, send)
            return send  # type: ignore[no-any-return]
        session_id = self._ctx.session_id
        if (
            body is last_body
            and message is not None
            and send.schema is schema
            and message.header.session_id == session_id
        ):
            return send  # type: ignore[no-any-return]
        mod = self._ctx.mod
        header = message.header if message is not None else None
        if (
            header is None
            or type(header) is not mod.MessageHeader
            or header.session_id != session_id
        ):
            header = mod.MessageHeader(session_id=session_id)
        message = _MESSAGE[mod.V2G_Message](header, _BODY[mod.Body](body))
        send = _build_send(message, schema, type(body).__name__)
        self._sent = (body, message, send)
        return send  # type: ignore[no-any-return]

    def _fail(self, schema: Schema, request: str, err: PeerError) -> list[Action]:
        """The minimal FAILED response (when the request type has one), then the end.
        The log and the end name the code the EV actually got."""
        actions: list[Action] = []
        answered = "nothing"
        if schema is Schema.APPHAND:
            from secc.core.handshake import apphand

            res = apphand.supportedAppProtocolRes(
                response_code=apphand.ResponseCode.Failed_NoNegotiation
            )
            actions.append(SendResponse(res, schema, type(res).__name__))
            answered = res.response_code.value
        else:
            body = self._failed_body(schema, request, err.code)
            if body is not None and schema in ISO20_UNRUN:
                # a request of a -20 service this station runs none of (WPT, ACDP): its
                # response element by name (ACDP gives one type to two elements)
                res_name = response_name(request)
                exi = codec.encode(body, schema.value, name=res_name)
                actions.append(SendResponse(body, schema, res_name, exi=exi))
                answered = body.response_code.value
            elif body is not None:
                saved, self._ctx.schema = self._ctx.schema, schema
                actions.append(self._send(body, schema))
                self._ctx.schema = saved
                answered = body.response_code.value
        self.log.info("%s answered %s: %s", request, answered, err)
        return self._end(err.end_reason, f"{answered}: {err}", actions)

    def _failed_body(self, schema: Schema, request: str, code: str) -> Any:
        ctx = self._ctx
        try:
            if self._iso20:
                return iso20_failed_body(ctx, schema, request, code)
            return failed_response(
                schema.value, request, code, dc=ctx.is_dc, evse_id=self.config.evse_id
            )
        except (ValueError, AttributeError):
            return None  # not a request type of that schema: nothing to answer

    # --- outside results and timers -------------------------------------------------------

    def _on_certificate(self, event: CertificateResult, now: float) -> list[Action]:
        if self._iso20:
            return self._on_iso20_certificate(event, now)
        ctx = self._ctx
        if self._state is not State.CERTIFICATE_WAIT:
            return []  # too late: the budget ran out and the session answered already
        self._timers.pop(CERTIFICATE_TIMER, None)
        request = ctx.pending_request or "CertificateInstallationReq"
        try:
            message, state, end, violations = pnc.certificate_result(ctx, event)
        except PeerError as err:
            return self._fail(ctx.schema, request, err)
        self._state = state
        body = message.body.body_element
        name = type(body).__name__
        exi = None
        if violations:  # the back end's signed content goes to the EV as it came
            for violation in violations:
                self.log.warning("%s: a back-end value outside its XSD facet: %s", name, violation)
            exi = codec.encode(message, lenient=True)
        response: list[Action] = [SendResponse(message, ctx.schema, name, exi=exi)]
        if end is not None:
            return self._end(end, f"{body.response_code.value} from the back end", response)
        self._timers[SEQUENCE_TIMER] = now + self.config.timers.sequence_timeout
        return response

    def _on_iso20_certificate(self, event: CertificateResult, now: float) -> list[Action]:
        """-20: the CSMS's CertificateInstallationRes goes to the EV as it came
        (``SendResponse.exi``); a FAILED one ends the session."""
        if self._state is not Iso20State.CERTIFICATE_WAIT:
            return []  # too late: the budget ran out and the session answered already
        self._timers.pop(CERTIFICATE_TIMER, None)
        request = "CertificateInstallationReq"
        try:
            message, exi, failed = iso20_pnc.certificate_result(self._ctx, event)
        except iso20_pnc.NoCertificateAvailable as err:
            return self._iso20_no_certificate(str(err), now)
        except PeerError as err:
            return self._fail(Schema.ISO20_COMMON, request, err)
        name = type(message).__name__
        response: list[Action] = [SendResponse(message, Schema.ISO20_COMMON, name, exi=exi)]
        if failed:
            detail = f"{message.response_code.value} from the back end"
            return self._end(EndReason.FAILED_RESPONSE, detail, response)
        self._state = Iso20State.AUTHORIZATION_SETUP
        self._timers[SEQUENCE_TIMER] = now + self.config.timers.sequence_timeout
        return response

    def _iso20_no_certificate(self, detail: str, now: float) -> list[Action]:
        """-20: the back end gave no certificate within the budget (or none at all):
        CertificateInstallationRes WARNING_NoCertificateAvailable (Finished), and the
        session goes on with AuthorizationReq [V2G20-2207] [V2G20-2225]."""
        self.log.info(
            "CertificateInstallationReq answered WARNING_NoCertificateAvailable: %s", detail
        )
        self._timers.pop(CERTIFICATE_TIMER, None)
        self._state = Iso20State.AUTHORIZATION_SETUP
        self._timers[SEQUENCE_TIMER] = now + self.config.timers.sequence_timeout
        return [self._send(iso20_pnc.no_certificate(self._ctx), Schema.ISO20_COMMON)]

    def _due(self, now: float) -> str | None:
        due = [(t, name) for name, t in self._timers.items() if t <= now]
        return min(due)[1] if due else None

    def _on_timer(self, name: str, now: float) -> list[Action]:
        ctx = self._ctx
        if name == CERTIFICATE_TIMER and self._state in (
            State.CERTIFICATE_WAIT,
            Iso20State.CERTIFICATE_WAIT,
        ):
            if self._iso20:
                return self._iso20_no_certificate(f"{name} ran out", now)
            code = "FAILED_NoCertificateAvailable"
            body = self._failed_body(ctx.schema, ctx.pending_request or "", code)
            actions: list[Action] = [self._send(body, ctx.schema)] if body is not None else []
            return self._end(EndReason.TIMEOUT, f"{name} ran out", actions)
        if name == SEQUENCE_TIMER:
            return self._end(EndReason.SEQUENCE_TIMEOUT, f"{name} ran out in {self._state}")
        if name == STOP_TIMER:
            return self._end(
                EndReason.STATION_STOP, f"the EV ignored StopCharging: {ctx.stop_requested}"
            )
        return self._end(EndReason.TIMEOUT, f"{name} ran out in {self._state}")

    # --- the end --------------------------------------------------------------------------

    def _end(
        self, reason: EndReason, detail: str, last_words: list[Action] | None = None
    ) -> list[Action]:
        """Safe state first (DC output off, contactors open), then the final response if
        any, then the connection closes and the session reports its end."""
        ctx = self._ctx
        actions: list[Action] = []
        if ctx.is_dc and (ctx.isolation_requested or ctx.contactors_closed):
            actions.append(StopDcOutput())
        actions.append(OpenContactors(detail or reason.value))
        ctx.contactors_closed = False
        if ctx.charging:
            actions.append(ChargingStateChanged(charging=False))
            ctx.charging = False
        actions += last_words or []
        actions += [CloseConnection(reason.value), SessionEnded(reason, detail)]
        self._state = State.ENDED
        self._timers.clear()
        self.end_reason = reason
        if reason is EndReason.EV_PAUSE:
            self.paused = PausedSession(
                session_id=ctx.session_id,
                evcc_id=ctx.evcc_id,
                protocol=ctx.protocol,
                payment_option=ctx.payment_option or "ExternalPayment",
                emaid=ctx.emaid,
                contract_chain=ctx.contract_chain,
                authorized=ctx.authorized,
                service_id=ctx.service_id,
                parameter_set_id=ctx.parameter_set_id,
                control_mode=ctx.control_mode,
                vehicle_certificate=iso20_setup.vehicle_leaf(ctx.config),
            )
        self.log.info("ended: %s %s", reason.value, detail)
        return actions
