"""The station's OCPP 2.0.1 link: a typed client around the ``ocpp`` package over websockets.

Theory of operation
-------------------
:meth:`OcppClient.run` loops forever: open the websocket (security profile 1, 2 or 3,
subprotocol ``ocpp2.0.1``, the station id as the last path segment), send
BootNotification until the CSMS accepts it (waiting the ``interval`` it names when it
answers Pending or Rejected), set :attr:`OcppClient.online`, send a StatusNotification
per connector, then Heartbeat at the CSMS's interval.  When the link drops, ``online`` is
cleared and the loop reconnects after an exponential backoff with random jitter (OCPP
RetryBackOffWaitMinimum / RetryBackOffRandomRange).

Calls are made with :meth:`OcppClient.call` on wire-form (camelCase) payloads: the request
and the response are validated against the OCPP JSON schemas; a CallError raises
:class:`CallFailed` (the ``ocpp`` package's ``suppress=True`` default would return
``None``); a response that fails validation raises :class:`MalformedResponse`; each call
has a deadline and raises ``TimeoutError`` past it, or :class:`NotConnected` when the link
is down or drops while waiting.

One CALL is outstanding at a time (OCPP-J, part 4 §4.1.1), in the order they were made.
A caller's deadline may be shorter than the CSMS's time to answer (the EV cannot wait
30 s for Authorize or Get15118EVCertificate): the caller then gets ``TimeoutError`` in
time, but the CALL stays outstanding on the wire until the CSMS answers it (the late
answer is discarded) or MessageTimeout (``ClientConfig.call_timeout``) passes; only then
is the next CALL sent.

CSMS-initiated calls go to a handler table (action → function of the wire payload)
returning a :class:`Reply`.  A handler never awaits :meth:`call` (that would block the
receive loop behind its own answer): follow-up calls go in ``Reply.after``, run as a task
once the response has been sent (the ``ocpp`` package's ``@after`` semantics).
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import datetime as dt
import functools
import inspect
import json
import logging
import random
import re
import ssl
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ocpp.v201
import websockets
from jsonschema import FormatChecker  # type: ignore[import-untyped]
from jsonschema.exceptions import best_match  # type: ignore[import-untyped]
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, MessageType, get_validator, unpack, validate_payload
from ocpp.v201 import ChargePoint
from websockets.asyncio.client import ClientConnection, connect

from certs._util import pem
from certs.store import Store, StoreError
from secc.ocpp_bridge import mapping

log = logging.getLogger(__name__)
SUBPROTOCOL = "ocpp2.0.1"
# set in the follow-ups of CSMS requests: a message the CSMS asked for may be sent while
# the BootNotification is Pending (B02.FR.02: NotifyReport after GetBaseReport, ...)
_REQUESTED: contextvars.ContextVar[bool] = contextvars.ContextVar("requested", default=False)
OCPP_VERSION = "2.0.1"


class NotConnected(ConnectionError):  # noqa: N818 - reads as the state it reports
    """No accepted link to the CSMS (or it dropped while a call waited for its answer)."""


class CallFailed(Exception):  # noqa: N818 - reads as the CSMS's answer
    """The CSMS answered with a CallError."""

    def __init__(self, action: str, code: str, description: str) -> None:
        super().__init__(f"{action}: CSMS answered CallError {code}: {description}")
        self.action = action
        self.code = code
        self.description = description


class MalformedResponse(CallFailed):
    """The CSMS's CallResult does not validate against the OCPP schema."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A handler's answer: the response payload and an optional follow-up coroutine."""

    payload: dict[str, object]
    after: Callable[[], Awaitable[None]] | None = None


Handler = Callable[[dict[str, object]], Reply | Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """How to reach the CSMS.  ``csms_url`` without the station id (it is appended)."""

    csms_url: str
    station_id: str
    security_profile: int = 1
    basic_auth_password: str | None = None
    charging_station: Mapping[str, str] = field(
        default_factory=lambda: {"model": "secc", "vendorName": "secc"}
    )
    connectors: tuple[tuple[int, int], ...] = ((1, 1),)  # (evseId, connectorId)
    call_timeout: float = 30.0
    open_timeout: float = 10.0
    backoff_min: float = 1.0  # RetryBackOffWaitMinimum
    backoff_random: float = 1.0  # RetryBackOffRandomRange
    backoff_max: float = 3600.0
    backoff_repeat: int = 8  # RetryBackOffRepeatTimes: how often the wait doubles
    boot_retry_default: float = 30.0  # when a Pending/Rejected answer names interval 0
    ca_pem: bytes | None = None  # CSMS roots; default: the store's csms trust anchors
    client_chain: Path | None = None  # profile 3; default: the store's csms leaf
    client_key: Path | None = None
    key_password: bytes | None = None

    def url(self) -> str:
        return f"{self.csms_url.rstrip('/')}/{self.station_id}"


class TlsMaterial:
    """Where the TLS trust anchors and the client certificate come from (e.g. the store).

    ``csms_roots_pem()`` returns the CSMS root(s) as PEM; ``client_paths()`` the
    (chain.pem, key.pem) pair of the charging-station certificate.  Read at every connect,
    so a certificate installed by CertificateSigned is used from the next reconnect on.
    """

    def csms_roots_pem(self) -> bytes | None:
        return None

    def client_paths(self) -> tuple[Path, Path] | None:
        return None


class StoreTls(TlsMaterial):
    """TLS material from the certificate store (``trust/csms`` and ``leaf/csms``)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def csms_roots_pem(self) -> bytes | None:
        roots = self.store.roots("csms")
        return pem(roots) if roots else None

    def client_paths(self) -> tuple[Path, Path] | None:
        try:
            return self.store.leaf_paths("csms")
        except StoreError:
            return None


def ssl_context(config: ClientConfig, material: TlsMaterial | None) -> ssl.SSLContext | None:
    """The TLS context for profiles 2 and 3 (``None`` for profile 1)."""
    if config.security_profile == 1:
        return None
    if config.security_profile not in (2, 3):
        raise ValueError(f"security profile must be 1, 2 or 3, not {config.security_profile}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    roots = config.ca_pem or (material.csms_roots_pem() if material else None)
    if not roots:
        raise NotConnected("no CSMS root certificate to verify the CSMS with")
    ctx.load_verify_locations(cadata=roots.decode("ascii"))
    if config.security_profile == 3:
        paths = (
            (config.client_chain, config.client_key)
            if config.client_chain and config.client_key
            else (material.client_paths() if material else None)
        )
        if paths is None:
            raise NotConnected("security profile 3 needs a charging-station certificate")
        ctx.load_cert_chain(str(paths[0]), str(paths[1]), password=config.key_password)
    return ctx


@functools.cache
def ocpp_actions() -> frozenset[str]:
    """Every action of OCPP 2.0.1 (the request schemas the ``ocpp`` package ships)."""
    schemas = Path(ocpp.v201.__file__).parent / "schemas"
    return frozenset(p.name.removesuffix("Request.json") for p in schemas.glob("*Request.json"))


# jsonschema keyword -> OCPP-J 2.0.1 CALLERROR code (part 4, "RPC Framework Error Codes")
_SCHEMA_ERRORS = {
    "type": "TypeConstraintViolation",  # "somestring": 12
    "maxLength": "TypeConstraintViolation",  # string[n] is the field's data type
    "minLength": "TypeConstraintViolation",
    "required": "OccurrenceConstraintViolation",  # a 1..1 field missing
    "minItems": "OccurrenceConstraintViolation",
    "maxItems": "OccurrenceConstraintViolation",
    "enum": "PropertyConstraintViolation",  # a value outside the field's range
    "minimum": "PropertyConstraintViolation",
    "maximum": "PropertyConstraintViolation",
    "exclusiveMinimum": "PropertyConstraintViolation",
    "exclusiveMaximum": "PropertyConstraintViolation",
    "pattern": "PropertyConstraintViolation",
    "format": "PropertyConstraintViolation",
    "additionalProperties": "FormatViolation",  # a field the action does not have
}


@dataclass(frozen=True, slots=True)
class RpcError:
    """A CALLERROR to answer with (OCPP-J 2.0.1 part 4 §4.2.3 / §4.3)."""

    code: str
    description: str

    def frame(self, message_id: str) -> str:
        details = {"cause": self.description[:255]}
        return json.dumps([4, message_id, self.code, self.description[:255], details])


_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_FORMATS = FormatChecker(formats=())


def _date_time(value: object) -> bool:
    """RFC 3339 date-time (OCPP's dateTime): the schemas say ``format: date-time``, which
    jsonschema does not check without an extra package; a CSMS's "tomorrow" must not
    pass as a time."""
    if not isinstance(value, str):
        return True  # the type keyword reports it
    if not _DATE_TIME.fullmatch(value):
        raise ValueError(f"{value!r} is no RFC 3339 date-time")
    dt.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))  # ranges: month 13 ...
    return True


_FORMATS.checks("date-time", raises=ValueError)(_date_time)


@functools.cache
def _validator(action: str) -> Any:
    """The action's request schema validator, with date-time formats checked."""
    return get_validator(MessageType.Call, action, OCPP_VERSION).evolve(format_checker=_FORMATS)


def check_call(action: str, payload: object) -> RpcError | None:
    """The CALLERROR a CALL of a supported ``action`` earns by its payload (None: valid).
    The code says what is wrong, as OCPP-J defines them: a field of the wrong type
    TypeConstraintViolation, a required one missing OccurrenceConstraintViolation, a
    value out of its range or enumeration PropertyConstraintViolation, an unknown field
    or a payload that is no object FormatViolation."""
    if not isinstance(payload, dict):
        return RpcError("FormatViolation", f"{action}: the payload is not a JSON object")
    error = best_match(_validator(action).iter_errors(payload))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "payload"
    code = _SCHEMA_ERRORS.get(str(error.validator), "FormatViolation")
    return RpcError(code, f"{action} {where}: {error.message}"[:255])


def frame_error(raw: str | bytes) -> tuple[str, RpcError] | None:
    """A message that is no well-formed OCPP-J CALL, CALLRESULT or CALLERROR: the id to
    answer (``"-1"`` when it cannot be read) and the CALLERROR; None for a message of
    the expected shape (and for answers, which are never answered)."""
    try:
        msg = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return "-1", RpcError("RpcFrameworkError", "the message is not valid JSON")
    if not isinstance(msg, list) or not msg or not isinstance(msg[0], int):
        return "-1", RpcError("RpcFrameworkError", "the message is no OCPP-J array")
    message_id = msg[1] if len(msg) > 1 and isinstance(msg[1], str) and msg[1] else None
    if msg[0] in (MessageType.CallResult, MessageType.CallError):
        return None
    if msg[0] != MessageType.Call:
        return message_id or "-1", RpcError(
            "MessageTypeNotSupported", f"message type {msg[0]} is not supported"
        )
    if message_id is None or len(message_id) > 36:
        return "-1", RpcError("RpcFrameworkError", "the CALL's message id cannot be read")
    if len(msg) != 4 or not isinstance(msg[2], str):
        return message_id, RpcError("RpcFrameworkError", "a CALL is [2, id, action, payload]")
    return None


class _StationCp(ChargePoint):  # type: ignore[misc]
    """The ``ocpp`` package's ChargePoint with wire-form calls and a handler table."""

    def __init__(self, station_id: str, ws: ClientConnection, client: OcppClient) -> None:
        super().__init__(station_id, ws, response_timeout=3600)
        self._client = client

    async def call_raw(
        self, action: str, payload: dict[str, object], message_id: str, wire_timeout: float
    ) -> dict[str, object]:
        """Send one CALL and wait for its answer; the lock keeps one CALL outstanding."""
        call = Call(unique_id=message_id, action=action, payload=payload)
        await validate_payload(call, OCPP_VERSION)
        async with self._call_lock:
            await self._send(call.to_json())
            response = await self._get_specific_response(message_id, wire_timeout)
        if response.message_type_id == MessageType.CallError:
            raise CallFailed(action, str(response.error_code), str(response.error_description))
        response.action = action
        try:
            await validate_payload(response, OCPP_VERSION)
        except OCPPError as exc:
            raise MalformedResponse(action, exc.code, str(exc.description)) from exc
        body = response.payload
        if not isinstance(body, dict):
            raise MalformedResponse(action, "FormatViolation", "payload is not an object")
        return body

    async def route_message(self, raw_msg: str) -> None:
        broken = frame_error(raw_msg)
        if broken is not None:  # answered, never dropped in silence; the link stays up
            message_id, error = broken
            log.warning(
                "%s: answering a malformed message with CallError %s (%s): %.200s",
                self.id,
                error.code,
                error.description,
                raw_msg,
            )
            await self._send(error.frame(message_id))
            return
        try:
            msg = unpack(raw_msg)
        except OCPPError as exc:
            log.warning("%s: unparsable message from the CSMS (%s): %.200s", self.id, exc, raw_msg)
            return
        if msg.message_type_id in (MessageType.CallResult, MessageType.CallError):
            self._response_queue.put_nowait(msg)
            return
        await self._client._dispatch(self, msg, len(raw_msg.encode()))


class OcppClient:
    """The station's link to the CSMS (see the module docstring)."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        handlers: Mapping[str, Handler] | None = None,
        tls: TlsMaterial | None = None,
        utc_now: Callable[[], dt.datetime] | None = None,
        rng: Callable[[], float] = random.random,
        connector_status: Callable[[int, int], str] | None = None,
    ) -> None:
        self.config = config
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.tls = tls
        self._utc_now = utc_now or (lambda: dt.datetime.now(dt.UTC))
        self._rng = rng
        self.connector_status = connector_status or (lambda _e, _c: "Available")
        self.online = asyncio.Event()
        self.on_online: list[Callable[[], None]] = []
        self.on_connect_failed: list[Callable[[], None]] = []  # a connection attempt failed
        self.on_connected: list[Callable[[], None]] = []  # the CSMS accepted a connection
        self._cp: _StationCp | None = None
        self._closed: asyncio.Future[None] | None = None
        self._ws: ClientConnection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._late: set[asyncio.Future[dict[str, object]]] = set()  # CALLs past their caller
        self.heartbeat_interval = 0
        self._heartbeat_changed = asyncio.Event()
        self._booted = False  # a BootNotification was accepted since the process started
        self.boot_reason = "PowerUp"  # the first boot's reason (RemoteReset after a Reset)
        self.boot_status = ""
        self._boot_now = asyncio.Event()  # TriggerMessage BootNotification while Pending
        # no BootNotification answer on its way: ``boot_status`` is the CSMS's last word
        self._boot_settled = asyncio.Event()
        self._boot_settled.set()
        # action -> (list field, most entries, most octets) the station takes in one CALL
        self.call_limits: Callable[[str], tuple[str, int, int] | None] = lambda _action: None
        self.connects = 0
        self.last_error = ""

    # --- outgoing calls --------------------------------------------------------------------

    async def call(
        self,
        action: str,
        payload: dict[str, object],
        *,
        timeout: float | None = None,
        message_id: str | None = None,
    ) -> dict[str, object]:
        """Send one call and return the CSMS's response payload (see module docstring)."""
        cp, closed = self._cp, self._closed
        if cp is None or closed is None or closed.done():
            raise NotConnected(f"{action}: not connected to the CSMS")
        limit = self.config.call_timeout if timeout is None else timeout
        if action != "BootNotification" and not self.online.is_set():
            if not self._boot_settled.is_set():
                # BootNotification's answer is on its way on this link: a call made
                # meanwhile (the follow-up of a CSMS request that came right behind it, an
                # EV's Authorize in the first moments of a connection) waits for it, within
                # its own time, rather than fail as offline (B01/B02: nothing but
                # BootNotification before it is accepted; Pending lets a follow-up through)
                loop = asyncio.get_running_loop()
                started = loop.time()
                settled = asyncio.ensure_future(self._boot_settled.wait())
                either: set[asyncio.Future[object]] = {settled, closed}  # type: ignore[arg-type]
                try:
                    await asyncio.wait(either, timeout=limit, return_when="FIRST_COMPLETED")
                finally:
                    settled.cancel()
                limit = max(0.0, limit - (loop.time() - started))
                if closed.done():
                    raise NotConnected(f"{action}: connection lost while booting")
            pending_ok = _REQUESTED.get() and self.boot_status == "Pending"
            if not self.online.is_set() and not pending_ok:
                raise NotConnected(f"{action}: BootNotification not accepted yet")
        wire = max(limit, self.config.call_timeout)  # how long the CALL stays outstanding
        task = asyncio.ensure_future(
            cp.call_raw(action, payload, message_id or str(uuid.uuid4()), wire)
        )
        try:
            waiters: set[asyncio.Future[object]] = {task, closed}  # type: ignore[arg-type]
            done, _ = await asyncio.wait(waiters, timeout=limit, return_when="FIRST_COMPLETED")
        except BaseException:
            task.cancel()
            raise
        if task in done:
            try:
                return task.result()
            except websockets.ConnectionClosed as exc:  # the link dropped while sending
                raise NotConnected(f"{action}: connection lost ({exc})") from exc
        if closed.done():
            task.cancel()
            raise NotConnected(f"{action}: connection lost while waiting for the answer")
        # The caller's deadline passed: the CALL stays outstanding until the CSMS answers
        # or MessageTimeout passes (one outstanding CALL, in order); its answer is dropped.
        self._late.add(task)
        task.add_done_callback(self._late_done)
        raise TimeoutError(f"{action}: no answer from the CSMS within {limit:g} s")

    def _late_done(self, task: asyncio.Future[dict[str, object]]) -> None:
        self._late.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.info("late answer: %s", task.exception())

    def spawn(self, coro: Awaitable[None], name: str) -> None:
        """Run a follow-up as a task (kept referenced, errors logged)."""

        async def wrapped() -> None:
            try:
                await coro
            except (CallFailed, TimeoutError, ConnectionError) as exc:
                log.warning("%s failed: %s", name, exc)
            except Exception:  # a background follow-up must not die silently
                log.exception("%s failed", name)

        task = asyncio.ensure_future(wrapped())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def follow_ups_done(self, timeout: float) -> None:
        """Wait (at most ``timeout``) for the follow-ups spawned so far."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def status_notification(self, evse_id: int, connector_id: int, status: str) -> None:
        await self.call(
            "StatusNotification",
            {
                "timestamp": mapping.ocpp_timestamp(self._utc_now()),
                "connectorStatus": status,
                "evseId": evse_id,
                "connectorId": connector_id,
            },
        )

    async def close(self) -> None:
        """Close the current connection (the run loop reconnects)."""
        if self._ws is not None:
            await self._ws.close()

    async def reboot(self, reason: str) -> None:
        """A simulated restart of the station: close the connection; the run loop
        reconnects and sends BootNotification with ``reason`` as after a real start."""
        self._booted = False
        self.boot_reason = reason
        await self.close()

    # --- incoming calls --------------------------------------------------------------------

    async def _dispatch(self, cp: _StationCp, msg: Call, size: int = 0) -> None:
        """Answer a CSMS CALL: NotImplemented for an action OCPP 2.0.1 does not have,
        NotSupported for one of its actions this station does not handle, the schema
        error's code for a payload that does not validate (:func:`check_call`),
        InternalError when the handler fails or gives an answer that does not validate;
        else the handler's answer.  Nothing of this closes the link."""
        handler = self.handlers.get(msg.action)
        if handler is None:
            known = isinstance(msg.action, str) and msg.action in ocpp_actions()
            error: RpcError | None = RpcError(
                "NotSupported" if known else "NotImplemented",
                f"{msg.action} is {'not supported by this station' if known else 'unknown'}",
            )
        else:
            error = check_call(msg.action, msg.payload) or self._over_limit(msg, size)
        if error is not None:
            log.warning("%s: answering %s with CallError %s", cp.id, msg.action, error.code)
            await cp._send(error.frame(msg.unique_id))
            return
        assert handler is not None
        try:
            result = handler(dict(msg.payload))
            reply = await result if inspect.isawaitable(result) else result
            response = msg.create_call_result(reply.payload)
            await validate_payload(response, OCPP_VERSION)
        except Exception as exc:  # a handler bug answers InternalError; the link stays up
            log.exception("%s: handler for %s failed", cp.id, msg.action)
            await cp._send(RpcError("InternalError", str(exc)[:200]).frame(msg.unique_id))
            return
        await cp._send(response.to_json())
        if reply.after is not None:
            requested = _REQUESTED.set(True)  # the follow-up's task inherits it
            try:
                self.spawn(reply.after(), f"follow-up of {msg.action}")
            finally:
                _REQUESTED.reset(requested)

    def _over_limit(self, msg: Call, size: int) -> RpcError | None:
        """B06.FR.16/17 (and B05, B08, D01's SendLocalList alike): more entries than
        ItemsPerMessage: OccurrenceConstraintViolation; more octets than BytesPerMessage:
        FormatViolation."""
        limits = self.call_limits(str(msg.action))
        if limits is None:
            return None
        field, items, octets = limits
        entries = msg.payload.get(field) if isinstance(msg.payload, dict) else None
        if isinstance(entries, list) and len(entries) > items:
            return RpcError(
                "OccurrenceConstraintViolation",
                f"{msg.action}: {len(entries)} entries, ItemsPerMessage is {items}",
            )
        if size > octets:
            return RpcError(
                "FormatViolation", f"{msg.action}: {size} octets, BytesPerMessage is {octets}"
            )
        return None

    # --- connection life cycle -------------------------------------------------------------

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before reconnect attempt ``attempt`` (0-based), with jitter."""
        floor = max(self.config.backoff_min, 0.05)  # never a tight reconnect loop
        doublings = min(attempt, self.config.backoff_repeat, 16)
        base = min(self.config.backoff_max, floor * (2**doublings))
        return float(base + self._rng() * self.config.backoff_random)

    def _headers(self) -> dict[str, str]:
        if self.config.security_profile in (1, 2) and self.config.basic_auth_password is not None:
            token = f"{self.config.station_id}:{self.config.basic_auth_password}"
            return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode("ascii")}
        return {}

    async def run(self) -> None:
        """Connect, boot, heartbeat; reconnect forever.  Cancel the task to stop."""
        attempt = 0
        while True:
            try:
                ctx = ssl_context(self.config, self.tls)
                ws = await connect(
                    self.config.url(),
                    subprotocols=[websockets.Subprotocol(SUBPROTOCOL)],
                    additional_headers=self._headers(),
                    ssl=ctx,
                    proxy=None,
                    open_timeout=self.config.open_timeout,
                )
            except (OSError, TimeoutError, websockets.InvalidHandshake, ssl.SSLError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                delay = self.backoff(attempt)
                log.warning(
                    "CSMS %s unreachable (%s); retry in %.1f s", self.config.url(), exc, delay
                )
                attempt += 1
                for callback in list(self.on_connect_failed):
                    callback()  # may switch ``config`` (network profile fallback, B09)
                await asyncio.sleep(delay)
                continue
            attempt = 0
            self.connects += 1
            for callback in list(self.on_connected):
                callback()  # e.g. a renewed client certificate proven (A02.FR.10)
            try:
                await self._session(ws)
            finally:
                await ws.close()
            delay = self.backoff(0)
            log.info("CSMS link closed; reconnecting in %.2f s", delay)
            await asyncio.sleep(delay)

    async def _session(self, ws: ClientConnection) -> None:
        self._ws = ws
        cp = _StationCp(self.config.station_id, ws, self)
        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._boot_settled.clear()  # the BootNotification this link sends first is due
        self._cp, self._closed = cp, closed
        receiver = asyncio.ensure_future(cp.start())
        worker = asyncio.ensure_future(self._boot_and_heartbeat())
        try:
            await asyncio.wait({receiver, worker}, return_when="FIRST_COMPLETED")
            for task in (receiver, worker):
                if task.done() and not task.cancelled() and task.exception() is not None:
                    exc = task.exception()
                    log.warning("CSMS link ended: %s: %s", type(exc).__name__, exc)
                    self.last_error = f"{type(exc).__name__}: {exc}"
        finally:
            self.online.clear()
            closed.set_result(None)
            self._cp = self._closed = self._ws = None
            for task in (receiver, worker, *self._late):
                task.cancel()
            await asyncio.gather(receiver, worker, return_exceptions=True)

    async def _boot_and_heartbeat(self) -> None:
        triggered = False
        self._boot_now.clear()
        while True:
            # PowerUp once per process; a reconnect is no boot (BootReasonEnumType)
            reason = "Unknown" if self._booted else self.boot_reason
            self._boot_settled.clear()
            try:
                response = await self.call(
                    "BootNotification",
                    {
                        "chargingStation": dict(self.config.charging_station),
                        "reason": "Triggered" if triggered else reason,
                    },
                )
                answer = mapping.boot_answer(response)
                self.boot_status = answer.status
            finally:
                self._boot_settled.set()
            if answer.status == "Accepted":
                self._booted = True
                self.boot_reason = reason
                # an interval that is no positive number: the default
                self.heartbeat_interval = answer.interval if answer.interval > 0 else 300
                break
            wait = answer.interval or self.config.boot_retry_default
            log.info("BootNotification %s; retry in %d s", answer.status, wait)
            try:  # F06: a TriggerMessage BootNotification (while Pending) sends it now
                await asyncio.wait_for(self._boot_now.wait(), wait)
                triggered = True
            except TimeoutError:
                triggered = False
            self._boot_now.clear()
        self.online.set()
        for callback in list(self.on_online):
            callback()
        for evse_id, connector_id in self.config.connectors:
            status = self.connector_status(evse_id, connector_id)
            await self.status_notification(evse_id, connector_id, status)
        while True:
            self._heartbeat_changed.clear()
            period = self.heartbeat_interval if self.heartbeat_interval > 0 else None
            try:  # a new interval (SetVariables HeartbeatInterval) starts a new wait
                await asyncio.wait_for(self._heartbeat_changed.wait(), period)
                continue
            except TimeoutError:
                pass
            try:
                await self.call("Heartbeat", {})
            except TimeoutError as exc:
                log.warning("Heartbeat: %s", exc)

    def trigger_boot(self) -> bool:
        """TriggerMessage BootNotification: True (and sent at once, reason Triggered)
        while the CSMS holds the station Pending; False once it was Accepted
        (F06.FR.17) or while no link is up."""
        if self._cp is None or self.boot_status != "Pending" or self.online.is_set():
            return False
        self._boot_now.set()
        return True

    def set_heartbeat_interval(self, seconds: int) -> None:
        """OCPPCommCtrlr.HeartbeatInterval changed: heartbeat at the new interval now."""
        self.heartbeat_interval = max(0, seconds)
        self._heartbeat_changed.set()
