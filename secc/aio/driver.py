"""The per-connection driver: one :class:`SessionDriver` runs one core session over one
V2G connection.

Theory of operation
-------------------
The V2G server makes a driver for every accepted connection (it is the server's session
handler).  Everything the core is fed goes through :meth:`SessionDriver.feed`, under one
lock, so that the actions of one ``handle`` call are performed completely, in order,
before the next event is handled: requests from the connection, facts from the EVSE
(status polls, HAL faults), answers of the authorizer / OCPP bridge, and the core's own
deadline, which a timer task turns into ``TimerExpired``.

The station's own lateness is not the EV's silence.  When the event loop runs late (the
process starved of CPU, or blocked), the EV's next request and the deadline it had to
meet (V2G_SECC_Sequence_Timeout: 0.5 s after an ISO 15118-20 charge-loop response) can
be found ready in the same turn; the station cannot tell then whether the request came
before the deadline.  So a deadline is acted on only after what the EV already sent has
been read: the timer first lets waiting input in (:meth:`V2GConnection.input_waiting`),
and a request read after a deadline the station has not acted on yet is handled as if
it came just before it.  The session's clock (``now`` for the core and the trace's
``t``) then runs behind the loop's by the station's accumulated lateness, so every later
deadline is again counted in full from the station's own answer, and ``secc replay``
gives the same; a ``late`` trace record says when and by how much.  An EV that is
really silent meets the deadline as soon as the station runs again: nothing is waiting.
Likewise a response that goes out late after the core decided it (a slow HAL action
before it, a starved loop) sets the session's clock back by the delay: the sequence
timeout runs from the response as sent.

Actions go where they belong: ``SendResponse`` is encoded and written as one V2GTP frame
with the payload type of its schema (0x8001 for appHandshake, ISO 15118-2 and DIN,
0x8002-0x8006 for the ISO 15118-20 schemas; the connection then decodes the next request
with ``session.schema``, or an ISO 15118-20 frame with the schema of its payload type),
``CloseConnection`` closes the socket, contactor / isolation / DC actions go to the
EVSE's HAL (:class:`SessionHost`), authorization, certificate and transaction actions to
its backend (local authorizer or OCPP bridge).  Every input and output is written to the
session trace (:mod:`secc.trace`).  A response slower than the station's budget
(V2G_SECC_Msg_Performance_Time) is logged as a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from secc import codec
from secc.aio.logbudget import BudgetedLog, LogBudget
from secc.aio.session_guard import root_error, session_setup_evcc_id
from secc.aio.v2g_server import PAYLOAD_TYPES, V2GConnection
from secc.core.actions import (
    Action,
    CloseConnection,
    EndReason,
    OpenContactors,
    SendResponse,
    SessionEnded,
    StopDcOutput,
)
from secc.core.config import PausedSession, SessionConfig
from secc.core.events import (
    ConnectionLost,
    Event,
    EvseStatus,
    RequestReceived,
    TimerExpired,
)
from secc.core.session import SeccSession
from secc.trace import Trace, body_of, jsonable, summarize
from secc.v2gtp import encode_frame

SESSION_STOP_LINGER = 5.0  # s, [V2G20-1633]: the -20 SECC's wait before it closes
# a request read after a deadline the station had not acted on yet is handled this long
# before the deadline (more than the trace's 1 µs rounding, so replay decides the same)
LATE_MARGIN = 1e-4
LATE_TURNS = 8  # loop turns a due timer gives input already received to be read first
# a response that goes out later than this after the core decided it (a slow HAL action
# before it, a starved loop) sets the session's clock back by the delay: the sequence
# timeout runs from the response as sent, not from the decision (below it the EV loses
# at most 4 % of the shortest sequence timeout, 0.5 s); logged as a warning from 0.1 s
SEND_SLACK = 0.02

log = logging.getLogger(__name__)

HAL_ACTIONS = frozenset(
    {"CloseContactors", "OpenContactors", "StartIsolationTest", "SetDcTarget", "StopDcOutput"}
)

# the record of a request when nothing consumes the trace (never written, never filled)
_UNTRACED: dict[str, Any] = {}


class _Turn:
    """A first-come first-served mutex for :meth:`SessionDriver.feed` (one ``handle``
    and its actions at a time).  Taken without a call when free, which is every time in
    the charging loop: ``asyncio.Lock`` costs three coroutine calls per message
    (issue 17).  A release hands the turn straight to the first waiter."""

    __slots__ = ("_waiters", "busy")

    def __init__(self) -> None:
        self.busy = False
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def wait(self) -> None:
        """Take the turn when it is busy: wait until it is handed over."""
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release()  # handed over, but this task was cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            raise

    def release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the next feeder's turn (busy stays True)
                return
        self.busy = False


class SessionHost(Protocol):
    """What a driver needs from its EVSE (:class:`secc.runtime.Evse` implements it)."""

    async def perform_hal(self, action: Action) -> Event | None:
        """Perform a HAL action; a failure comes back as an EvseFault to feed."""
        ...

    def perform_backend(self, action: Action) -> None:
        """Hand an action to the authorizer / OCPP bridge (non-blocking)."""
        ...

    def session_ended(self, driver: SessionDriver) -> None: ...


class SessionAdapter(BudgetedLog):
    """Prefixes every line with the EVSE and the session id; until the session claims
    the EVSE its lines spend the connection's log budget (secc.aio.logbudget)."""

    def __init__(
        self,
        logger: logging.Logger,
        extra: dict[str, object],
        budget: LogBudget | None = None,
        *,
        exempt: bool = False,
    ) -> None:
        super().__init__(
            logger,
            extra,
            budget,
            exempt=exempt,
            prefix=lambda e: f"[{e.get('evse')} {e.get('session')}] ",
        )


class SessionDriver:
    def __init__(
        self,
        conn: V2GConnection,
        config: SessionConfig,
        host: SessionHost,
        *,
        make_trace: Callable[[dict[str, Any]], Trace],
        random_bytes: Callable[[int], bytes],
        utc_now: Callable[[], dt.datetime],
        resume: PausedSession | None = None,
    ) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self.conn = conn
        self.config = config
        self.host = host
        self._random_source = random_bytes
        self.started = loop.time()
        self.started_utc = utc_now()
        self.trace = make_trace(
            {
                "evse_id": config.evse_id,
                "peer": str(conn.peer[0]),
                "peer_port": int(conn.peer[1]),
                "station": list(conn.sockname or ("::", 0))[:2],
                "tls": conn.tls,
                "started": self.started_utc.isoformat(),
                "config": None,  # filled by the maker (it knows the trust roots)
                "resume": jsonable(resume) if resume is not None else None,
            }
        )
        self._utc_source = utc_now
        self.session = SeccSession(
            config, now=self.started, random_bytes=self._random, utc_now=self._utc, resume=resume
        )
        self.log = SessionAdapter(log, {"evse": config.evse_id, "session": "-"}, conn.log_budget)
        # the core's lines about this session spend the same budget until it claims
        core_log = self.session.log
        core_log.logger = BudgetedLog(core_log.logger, {}, conn.log_budget)
        self._logs: tuple[BudgetedLog, ...] = (self.log, core_log.logger, conn.log)
        self.ended: SessionEnded | None = None
        self.done = asyncio.Event()
        self.last_status: EvseStatus | None = None
        self._turn = _Turn()
        self._wake = asyncio.Event()
        self._received_at = self.started
        self._tasks: set[asyncio.Task[None]] = set()
        self._linger: asyncio.Task[None] | None = None  # the -20 close after SessionStop
        self._armed: float | None = None  # the deadline the timer task waits for
        # seconds the session's clock runs behind the loop's: the station's own lateness
        # in reading requests that came before its deadline (see the module docstring)
        self._lag = 0.0
        self._fed_at = self.started  # the session time of the last event fed
        self._forgiven: float | None = None  # the deadline a late request was let before
        self._last_rx: RequestReceived | None = None  # the last request and when it came
        self._last_tx: tuple[str, float] | None = None  # the last response and when sent
        self._timer_note = ""  # what was outstanding when the timer last fired
        self.outstanding_at_end = ""  # the same, kept when the session ended on a timer
        self._timer = asyncio.create_task(self._timer_loop(), name=f"timer-{config.evse_id}")
        # the EVSE's HAL and backend are this session's only once its SessionSetupReq
        # claimed the EVSE (Evse.claim); hosts without ``claim`` give them at once
        self._claimed = False
        self.claimed = not hasattr(host, "claim")
        self.evcc_id: bytes | None = None
        self._logged_sid: bytes | None = None
        self._budgets: dict[str, float] = {}  # response name -> its answer-time budget
        self.log.info("connection from %s (%s)", conn.peer[0], "TLS" if conn.tls else "TCP")

    @property
    def claimed(self) -> bool:
        """Whether this session holds the EVSE (its SessionSetupReq claimed it)."""
        return self._claimed

    @claimed.setter
    def claimed(self, value: bool) -> None:
        # a session that holds the EVSE is logged in full (no log budget)
        self._claimed = value
        for adapter in self._logs:
            adapter.exempt = value

    # --- what the V2G server calls ------------------------------------------------------

    @property
    def protected(self) -> bool:
        """The EVSE's running session: connection limits never drop it."""
        return self.claimed and self.ended is None

    @property
    def silent_for(self) -> float:
        """Seconds since the EV's last request (or the connection, before any)."""
        return self._loop.time() - self._received_at

    async def _refuse(self, conn: V2GConnection, why: str, payload: bytes) -> None:
        """End this connection cleanly, with one log line, before the core sees it."""
        self.log.warning("%s: %s; closing the connection", conn.peer[0], why)
        now = self._now()
        self.trace.write(
            {"kind": "refused", "t": round(now - self.started, 6), "exi": payload.hex(), "why": why}
        )
        await conn.close(why)
        await self.feed(ConnectionLost(why))

    def _traced(self) -> bool:
        """Whether anything consumes trace records (a file or an observer): without one,
        no record is built (hex and summaries cost about 12 % of the station's CPU)."""
        return self.trace.path is not None or self.trace.observer is not None

    async def request_received(self, conn: V2GConnection, event: RequestReceived) -> None:
        error = root_error(event)
        if error is not None:
            await self._refuse(conn, error, conn.last_payload)
            return
        evcc_id = None if self.claimed else session_setup_evcc_id(event)
        if evcc_id is not None:
            self.evcc_id = evcc_id
            if not self.host.claim(self, evcc_id):  # type: ignore[attr-defined]
                why = "another EV's session is running on this EVSE"
                await self._refuse(conn, why, conn.last_payload)
                return
        self._received_at = self._loop.time()
        self._last_rx = event
        if self.trace.pcap is not None:
            self.trace.packet("rx", encode_frame(conn.last_payload, conn.last_payload_type))
        if not self._traced():
            await self.feed(event, record=_UNTRACED)
            return
        body = body_of(event.message)
        record = {
            "kind": "rx",
            "t": 0.0,
            "name": type(body).__name__,
            "schema": event.schema.value,
            "exi": conn.last_payload.hex(),
            "summary": summarize(body),
        }
        if event.violations:  # values outside their XSD facets, accepted (secc.codec)
            record["violations"] = [v.as_dict() for v in event.violations]
        await self.feed(event, record=record)

    async def connection_lost(self, conn: V2GConnection, event: ConnectionLost) -> None:
        await self.feed(event)

    async def undecodable(
        self, conn: V2GConnection, payload: bytes, error: codec.DecodeError
    ) -> None:
        now = self._now()
        self.trace.write(
            {
                "kind": "undecodable",
                "t": round(now - self.started, 6),
                "exi": payload.hex(),
                "error": str(error),
            }
        )
        await conn.close("undecodable request")
        await self.feed(ConnectionLost(f"undecodable request: {error}"))

    # --- the one way into the core ------------------------------------------------------

    async def feed(self, event: Event, *, record: dict[str, Any] | None = None) -> None:
        """Hand ``event`` to the core and perform its actions (``record``: the trace line
        of a request, written with the time the core sees)."""
        turn = self._turn
        if turn.busy:
            await turn.wait()
        else:
            turn.busy = True
        try:
            if self.ended is not None:
                return
            now = self._loop.time() - self._lag
            armed = self._armed  # (the timer's deadline, never later than the core's)
            if armed is None or armed <= now:
                deadline = self.session.deadline
                if deadline is not None and deadline <= now and type(event) is not TimerExpired:
                    now = self._before_deadline(deadline, now, request=record is not None)
            self._fed_at = now
            if record is not _UNTRACED and self._traced():
                if record is None:
                    record = {
                        "kind": "fact",
                        "event": type(event).__name__,
                        "fields": jsonable(event),
                    }
                record["t"] = round(now - self.started, 6)
                self.trace.write(record)
            if isinstance(event, EvseStatus):
                self.last_status = event
            try:
                actions = self.session.handle(event, now)
                sid = self.session.session_id
                if sid and sid is not self._logged_sid and self.log.extra is not None:
                    self._logged_sid = sid  # (no hex per message)
                    self.log.extra["session"] = sid.hex()  # type: ignore[index]
                await self._perform(actions, now)
            except Exception as exc:  # a bug must still end in open contactors
                self.log.exception("internal error handling %s", type(event).__name__)
                await self._fail_safe(f"internal error: {type(exc).__name__}: {exc}", now)
            deadline = self.session.deadline
            if deadline is not None and (self._armed is None or deadline < self._armed):
                self._armed = deadline  # (until the timer re-arms: feed's check above)
                self._wake.set()  # an earlier deadline than the timer waits for (a later
                # one, as every response re-arms the sequence timer, is found when it wakes)
        finally:
            turn.release()

    def _before_deadline(self, deadline: float, now: float, *, request: bool) -> float:
        """An event fed after a deadline the station has not acted on yet (its timer
        would have ended the session first): the station was late.  A request counts as
        come just before the deadline, and the session's clock is set back by the
        station's lateness; any other event (a status poll, a backend's answer) goes
        before the deadline too, and the timer acts on it next, once what the EV already
        sent has been read (:meth:`_input_first`)."""
        if request and deadline == self._forgiven:
            return now  # (once per deadline: requests the EV keeps sending cannot hold
            # back one that they do not move, as the stop timer's)
        at = deadline - LATE_MARGIN
        if at < self._fed_at < deadline:
            at = self._fed_at  # (the session's clock never runs backwards)
        if not request:
            return at
        late = now - deadline
        self._forgiven = deadline
        self._lag += now - at
        self.log.warning(
            "a request was read %.1f ms after a deadline the station had not acted on "
            "(the station ran late): handled as come before it",
            late * 1e3,
        )
        if self._traced():
            self.trace.write(
                {
                    "kind": "late",
                    "t": round(at - self.started, 6),
                    "request": True,
                    "deadline": round(deadline - self.started, 6),
                    "late": round(late, 6),
                    "lag": round(self._lag, 6),
                }
            )
        return at

    def _sent_late(self, name: str, late: float, now: float) -> None:
        """The response ``name`` went out ``late`` seconds after the core decided it at
        ``now`` (and armed its timers from then): the session's clock goes back by that
        much, so the EV gets the whole V2G_SECC_Sequence_Timeout from the response."""
        self._lag += late
        (self.log.warning if late > 0.1 else self.log.debug)(
            "%s went out %.1f ms after it was decided: the EV's time runs from the answer",
            name,
            late * 1e3,
        )
        if self._traced():
            self.trace.write(
                {
                    "kind": "late",
                    "t": round(now - self.started, 6),
                    "response": name,
                    "late": round(late, 6),
                    "lag": round(self._lag, 6),
                }
            )

    async def _fail_safe(self, reason: str, now: float) -> None:
        """End the session after an internal error: through the core if it still can,
        else by opening the contactors and closing the connection directly."""
        try:
            await self._perform(self.session.handle(ConnectionLost(reason), now), now)
        except Exception:
            self.log.exception("the core could not end the session; opening contactors")
        if self.ended is None:
            for action in (StopDcOutput(), OpenContactors(reason)):
                with contextlib.suppress(Exception):
                    await self.host.perform_hal(action)
            with contextlib.suppress(Exception):
                await self.conn.close(reason)
            self._finish(SessionEnded(EndReason.CONNECTION_LOST, reason))

    def feed_soon(self, event: Event) -> None:
        """Feed from synchronous code (backend callbacks): a task, kept referenced."""
        task = asyncio.create_task(self.feed(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _perform(self, actions: list[Action], now: float) -> None:
        for action in actions:
            if isinstance(action, SendResponse):
                await self._send(action, now)
                continue
            if self._traced():
                self.trace.write(
                    {
                        "kind": "action",
                        "t": round(now - self.started, 6),
                        "action": type(action).__name__,
                        "fields": jsonable(action),
                    }
                )
            name = type(action).__name__
            if isinstance(action, CloseConnection):
                if self.conn.closed:
                    pass
                elif self._lingers(action.reason):
                    self._close_later(action.reason)
                else:
                    await self.conn.close(action.reason)
            elif not self.claimed:
                pass  # a connection that never set up a session leaves the EVSE alone
            elif name in HAL_ACTIONS:
                fault = await self.host.perform_hal(action)
                if fault is not None:
                    self.log.error("HAL: %s failed: %s", name, fault)
                    self.feed_soon(fault)
            else:
                self.host.perform_backend(action)
            if isinstance(action, SessionEnded):
                self._finish(action)

    def _lingers(self, reason: str) -> bool:
        """ISO 15118-20 [V2G20-1633]: after a SessionStopRes (Terminate or Pause) the SECC
        waits at least 5 s before it closes the TCP connection; the EV closes first."""
        return self.session.schema.value.startswith("iso20") and reason in (
            EndReason.EV_STOP.value,
            EndReason.EV_PAUSE.value,
        )

    def _close_later(self, reason: str) -> None:
        """Close after SESSION_STOP_LINGER unless the EV closed first; requests that
        arrive meanwhile are not answered (the session has ended)."""

        async def close() -> None:
            await asyncio.sleep(SESSION_STOP_LINGER)
            if not self.conn.closed:
                await self.conn.close(reason)

        self._linger = asyncio.create_task(close())

    async def _send(self, action: SendResponse, now: float) -> None:
        try:
            payload = action.exi if action.exi is not None else codec.encode(action.message)
        except codec.EncodeError as exc:
            await self._unencodable(action, exc)
            return
        payload_type = PAYLOAD_TYPES[action.schema]
        if not self.conn.closed:
            if self.trace.pcap is not None:
                self.trace.packet("tx", encode_frame(payload, payload_type))
            try:
                await self.conn.send(payload, payload_type)
            except (ConnectionError, OSError) as exc:
                self.log.warning("sending %s failed: %s", action.name, exc)
            self.conn.schema = self.session.schema
        sent = self._loop.time()
        self._last_tx = (action.name, sent)
        if sent - self._lag - now > SEND_SLACK:
            self._sent_late(action.name, sent - self._lag - now, now)
        took = sent - self._received_at
        if self._traced():
            self.trace.write(
                {
                    "kind": "tx",
                    "t": round(now - self.started, 6),
                    "name": action.name,
                    "schema": action.schema.value,
                    "exi": payload.hex(),
                    "summary": summarize(body_of(action.message)),
                    "ms": round(took * 1000, 3),
                }
            )
        budget = self._budgets.get(action.name)
        if budget is None:  # (per response name, once)
            budget = self.config.timers.budget(action.name.removesuffix("Res") + "Req")
            self._budgets[action.name] = budget
        if took > budget:
            self.log.warning(
                "%s took %.1f ms, over the %.0f ms budget", action.name, took * 1e3, budget * 1e3
            )

    async def _unencodable(self, action: SendResponse, exc: codec.EncodeError) -> None:
        """A response the codec cannot encode (e.g. it echoes peer content): no answer,
        a clean close, one log line; the session ends through ConnectionLost."""
        why = f"cannot encode {action.name}: {exc}"
        self.log.warning("%s; closing the connection", why)
        self.trace.write({"kind": "unencodable", "name": action.name, "error": str(exc)})
        if not self.conn.closed:
            await self.conn.close(why)
        self.feed_soon(ConnectionLost(why))

    def _random(self, n: int) -> bytes:
        data = self._random_source(n)
        if self._traced():  # (the record is for `secc replay`: none without a consumer)
            self.trace.write({"kind": "random", "n": n, "hex": data.hex()})
        return data

    def _utc(self) -> dt.datetime:
        now = self._utc_source()
        if self._traced():  # (the charging loop asks the time for every response)
            self.trace.write({"kind": "utc", "iso": now.isoformat()})
        return now

    def _finish(self, ended: SessionEnded) -> None:
        self.ended = ended
        record = {
            "kind": "end",
            "t": round(self._now() - self.started, 6),
            "reason": ended.reason.value,
            "detail": ended.detail,
        }
        if ended.reason in (EndReason.SEQUENCE_TIMEOUT, EndReason.TIMEOUT):
            # name what was outstanding, so that a timeout says which message it was
            record["outstanding"] = self.outstanding_at_end = self._timer_note or self.outstanding()
            self.log.warning(
                "session ended: %s %s (%s)",
                ended.reason.value,
                ended.detail,
                record["outstanding"],
            )
        else:
            self.log.info("session ended: %s %s", ended.reason.value, ended.detail)
        self.trace.write(record)
        self.trace.close()
        self.done.set()
        self._wake.set()
        self.host.session_ended(self)

    # --- the core's deadline ------------------------------------------------------------

    async def _timer_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self.ended is None:
            self._wake.clear()
            deadline = self._armed = self.session.deadline
            lag = self._lag  # (deadlines are in the session's clock)
            timeout = None if deadline is None else max(0.0, deadline + lag - loop.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
                continue
            deadline = self.session.deadline  # it may have moved later meanwhile
            if self.ended is None and deadline is not None and deadline <= self._now():
                if await self._input_first(deadline):
                    continue
                self._timer_note = self.outstanding()
                await self.feed(TimerExpired("deadline"))
                if self.ended is None:
                    self._timer_note = ""  # (stale: the deadline had moved)

    def _now(self) -> float:
        """The session's clock (the loop's, less the station's lateness)."""
        return self._loop.time() - self._lag

    async def _input_first(self, deadline: float) -> bool:
        """Before the core acts on ``deadline``: let what was due before it run (one
        turn: the timer may have woken for an earlier deadline, ahead of work that was
        due before this one, e.g. the EV's send when it shares this loop) and what the
        EV already sent be read (a few turns); True when that moved the deadline or
        ended the session."""
        for _ in range(LATE_TURNS):
            await asyncio.sleep(0)
            moved = self.session.deadline
            if self.ended is not None or moved is None or moved > deadline:
                return True
            if self.conn.closed or not self.conn.input_waiting():
                return False
        return False

    def outstanding(self) -> str:
        """What the session waited for when it ended on a timer: its last request and
        response, when they went, and what the EV had sent that was not read yet."""
        started = self.started + self._lag  # (times in the session's clock, as the trace)
        loop_now = self._loop.time()
        parts = []
        if self._last_tx is not None:
            name, sent = self._last_tx
            parts.append(f"last response {name} sent at t={sent - started:.3f} s")
        if self._last_rx is not None:
            rx = self._last_rx
            name = rx.element or type(body_of(rx.message)).__name__
            parts.append(f"last request {name} at t={self._received_at - started:.3f} s")
        deadline = self.session.deadline
        if deadline is not None:
            parts.append(f"deadline t={deadline - self.started:.3f} s")
        waiting = 0 if self.conn.closed else self.conn.input_waiting()
        parts.append(f"now t={loop_now - started:.3f} s, {waiting} octets unread")
        if self._lag:
            parts.append(f"the station ran {self._lag * 1e3:.1f} ms late before")
        return "; ".join(parts)

    async def aclose(self, reason: str = "station shutdown") -> None:
        """End the session (if it still runs) and stop the timer."""
        if self.ended is None:
            await self.feed(ConnectionLost(reason))
        if not self.conn.closed:
            await self.conn.close(reason)
        self._timer.cancel()
        if self._linger is not None:
            self._linger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._timer
