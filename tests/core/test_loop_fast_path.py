"""The charging loop's fast path (:mod:`secc.core.loop`, issue 17) behaves exactly as the
generic path (the transition table's handlers, ``_apply``, ``_send``).

A session is run by the EV simulator into its charging loop (ISO 15118-2 DC and AC, DIN,
ISO 15118-20 DC and AC, scheduled and dynamic, standby) and copied twice: one copy
answers with the fast path, the other with ``fast_loop`` off.  Both get the same
sequences of events (hypothesis): loop requests with the EV's values changing (within
and outside the limits, negative, other multipliers), another SessionID, facet
violations, the other control mode's request, other requests of the session (out of
sequence or leaving the loop), EVSE status reports (measured values, isolation faults,
contactor feedback), stop requests, deauthorization, CSMS schedules (limits,
renegotiation), faults (emergency shutdown), lost connections, timers and time passing.
After every event the two must have given the same actions (and the same EXI for every
response), be in the same state with the same timers and facts, have read the wall
clock the same number of times and logged the same lines.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secc import codec
from secc.core.actions import SendResponse
from secc.core.config import (
    DIN_NAMESPACE,
    ISO20_AC_NAMESPACE,
    ISO20_DC_NAMESPACE,
    SessionConfig,
)
from secc.core.context import Context, State
from secc.core.events import (
    AuthorizationResult,
    ChargingScheduleUpdate,
    ConnectionLost,
    EvseFault,
    EvseStatus,
    RequestReceived,
    StopRequested,
    TimerExpired,
)
from secc.core.iso20.common import Iso20State
from secc.core.session import SeccSession
from secc.ev.iso2 import EvScript
from secc.ev.iso20 import Ev20Script
from secc.testing.harness import run_session

ISO20_DC = SessionConfig(protocols=(ISO20_DC_NAMESPACE,), iso20_allow_tcp=True)
ISO20_AC = SessionConfig(protocols=(ISO20_AC_NAMESPACE,), iso20_allow_tcp=True)
AC_ONLY = SessionConfig(energy_modes=("AC_three_phase_core",))

# name -> (config, EV script, loop request, the loop state to start in, facts to set)
CASES: dict[str, tuple[SessionConfig, Any, str, Any, dict[str, Any]]] = {
    "iso2-dc": (SessionConfig(), EvScript(energy_mode="DC_extended"), "CurrentDemandReq", None, {}),
    "iso2-dc-receipts": (
        SessionConfig(metering_receipts=True, meter_id="M-7"),
        EvScript(energy_mode="DC_extended"),
        "CurrentDemandReq",
        None,
        {"payment_option": "Contract", "receipt_due_at": "now"},
    ),
    "iso2-dc-no-meter": (
        SessionConfig(meter_id=None),
        EvScript(energy_mode="DC_extended"),
        "CurrentDemandReq",
        None,
        {},
    ),
    "din": (
        SessionConfig(protocols=(DIN_NAMESPACE,)),
        EvScript(protocol="din", energy_mode="DC_extended"),
        "CurrentDemandReq",
        None,
        {},
    ),
    "iso2-ac": (
        AC_ONLY,
        EvScript(energy_mode="AC_three_phase_core"),
        "ChargingStatusReq",
        None,
        {},
    ),
    "iso2-ac-receipts": (
        dataclasses.replace(AC_ONLY, metering_receipts=True),
        EvScript(energy_mode="AC_three_phase_core"),
        "ChargingStatusReq",
        None,
        {"payment_option": "Contract", "receipt_due_at": "now"},
    ),
    "iso20-dc-scheduled": (
        ISO20_DC,
        Ev20Script(mode="dc", control="scheduled"),
        "DC_ChargeLoopReq",
        None,
        {},
    ),
    "iso20-dc-dynamic": (
        ISO20_DC,
        Ev20Script(mode="dc", control="dynamic"),
        "DC_ChargeLoopReq",
        None,
        {},
    ),
    "iso20-dc-metering": (
        dataclasses.replace(ISO20_DC, metering_confirmation=True),
        Ev20Script(mode="dc", control="scheduled"),
        "DC_ChargeLoopReq",
        None,
        {"payment_option": "Contract", "contract_chain": (b"leaf",), "metering_asked": False},
    ),
    "iso20-dc-standby": (
        ISO20_DC,
        Ev20Script(mode="dc", control="scheduled", standby_after=1, standby_loops=3),
        "DC_ChargeLoopReq",
        Iso20State.STANDBY,
        {},
    ),
    "iso20-ac-scheduled": (
        ISO20_AC,
        Ev20Script(mode="ac", control="scheduled"),
        "AC_ChargeLoopReq",
        None,
        {},
    ),
    "iso20-ac-dynamic": (
        ISO20_AC,
        Ev20Script(mode="ac", control="dynamic"),
        "AC_ChargeLoopReq",
        None,
        {},
    ),
}
# the other control mode's loop request, for a wrong-mode request
OTHER_MODE = {
    "iso20-dc-scheduled": "iso20-dc-dynamic",
    "iso20-dc-dynamic": "iso20-dc-scheduled",
    "iso20-dc-metering": "iso20-dc-dynamic",
    "iso20-dc-standby": "iso20-dc-dynamic",
    "iso20-ac-scheduled": "iso20-ac-dynamic",
    "iso20-ac-dynamic": "iso20-ac-scheduled",
}
# Context fields that only keep built objects for reuse (each path keeps its own)
MEMOS = {"loop_memo", "limits_memo", "status_memo", "present_memo", "meter_memo"}
CLOCK = {"random_bytes", "utc_now"}  # each copy gets its own counting clock


def _name(event: RequestReceived) -> str:
    body = getattr(event.message, "body", None)
    return type(body.body_element if body is not None else event.message).__name__


_RUNS: dict[str, tuple[SeccSession, RequestReceived, list[RequestReceived]]] = {}


def in_loop(case: str) -> tuple[SeccSession, RequestReceived, list[RequestReceived]]:
    """A session that has just answered a loop request (in the case's state), that
    request, and every request of the run (for out-of-sequence ones)."""
    if case not in _RUNS:
        config, script, request, state, _ = CASES[case]
        found: list[tuple[SeccSession, RequestReceived]] = []
        requests: list[RequestReceived] = []

        def keep(session: SeccSession, event: Any, actions: Any) -> None:
            if not isinstance(event, RequestReceived):
                return
            requests.append(event)
            wanted = state is None or session.state is state
            if _name(event) == request and wanted and not found:
                found.append((copy.deepcopy(session), event))

        run_session(config, script, check=keep)
        assert found, f"{case}: the session never reached {request}"
        _RUNS[case] = (found[0][0], found[0][1], requests)
    session, event, requests = _RUNS[case]
    return copy.deepcopy(session), event, requests


class Clock:
    """The wall clock both copies read: a function of the session time, counted."""

    def __init__(self) -> None:
        self.now = 0.0
        self.reads = 0

    def utc_now(self) -> dt.datetime:
        self.reads += 1
        return dt.datetime.fromtimestamp(1_780_000_000.25 + self.now, dt.UTC)

    def random_bytes(self, n: int) -> bytes:
        return bytes(range(1, n + 1))


@dataclasses.dataclass
class Pair:
    fast: SeccSession
    slow: SeccSession
    clocks: tuple[Clock, Clock]
    event: RequestReceived
    requests: list[RequestReceived]
    now: float
    steps: list[int]  # fast-path steps taken


def pair(case: str) -> Pair:
    session, event, requests = in_loop(case)
    facts = CASES[case][4]
    for name, fact in facts.items():  # "now": the session time (due exactly now)
        setattr(session._ctx, name, session._ctx.now if fact == "now" else fact)
    fast, slow = copy.deepcopy(session), copy.deepcopy(session)
    slow.fast_loop = False
    slow._loop = None
    assert fast._loop is not None, "the fast path was not set up for the loop"
    clocks = (Clock(), Clock())
    for s, c in zip((fast, slow), clocks, strict=True):
        s._ctx.utc_now = c.utc_now
        s._ctx.random_bytes = c.random_bytes
        s._ctx.clock_sync = None
    steps = [0]
    plan = fast._loop
    inner = plan.step

    def counted(*args: Any) -> Any:
        out = inner(*args)
        steps[0] += out is not None
        return out

    plan.step = counted
    return Pair(fast, slow, clocks, event, requests, session._ctx.now, steps)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelname, record.getMessage()))


@contextmanager
def logged(level: int) -> Iterator[Records]:
    logger = logging.getLogger("secc.core.session")
    records = Records()
    saved = logger.level
    logger.setLevel(level)
    logger.addHandler(records)
    try:
        yield records
    finally:
        logger.removeHandler(records)
        logger.setLevel(saved)


def outcome(session: SeccSession, clock: Clock, event: Any, now: float) -> Any:
    clock.now = now
    try:
        actions = session.handle(event, now)
    except Exception as exc:  # the same exception either way
        return ("raised", type(exc), str(exc))
    exi = [
        a.exi if a.exi is not None else codec.encode(a.message)
        for a in actions
        if isinstance(a, SendResponse)
    ]
    return actions, exi


def facts(session: SeccSession) -> dict[str, Any]:
    ctx = session._ctx
    out = {
        f.name: getattr(ctx, f.name)
        for f in dataclasses.fields(Context)
        if f.name not in MEMOS and f.name not in CLOCK
    }
    out["state"] = session.state
    out["timers"] = dict(session._timers)
    out["end_reason"] = session.end_reason
    out["paused"] = session.paused
    return out


def feed(p: Pair, event: Any, dt_: float, level: int = logging.INFO) -> None:
    """``event`` to both copies ``dt_`` seconds after the last one; all must agree."""
    p.now += dt_
    with logged(level) as slow_log:
        slow = outcome(p.slow, p.clocks[1], event, p.now)
    with logged(level) as fast_log:
        fast = outcome(p.fast, p.clocks[0], event, p.now)
    assert fast == slow, event
    assert facts(p.fast) == facts(p.slow), event
    assert p.fast.deadline == p.slow.deadline
    assert p.clocks[0].reads == p.clocks[1].reads
    assert fast_log.lines == slow_log.lines


# --- what the EV sends ----------------------------------------------------------------


def _body(msg: Any) -> Any:
    body = getattr(msg, "body", None)
    return body.body_element if body is not None else msg


def _with_body(msg: Any, new: Any) -> Any:
    if getattr(msg, "body", None) is None:
        return new
    return dataclasses.replace(msg, body=dataclasses.replace(msg.body, body_element=new))


def _numbers(obj: Any, depth: int = 2) -> list[tuple[str, ...]]:
    """Paths to the PhysicalValues / RationalNumbers in ``obj`` (two levels deep)."""
    out: list[tuple[str, ...]] = []
    for f in dataclasses.fields(obj):
        x = getattr(obj, f.name)
        if type(x).__name__ in ("PhysicalValue", "RationalNumber"):
            out.append((f.name,))
        elif depth > 1 and dataclasses.is_dataclass(x) and f.name != "header":
            out += [(f.name, *rest) for rest in _numbers(x, depth - 1)]
    return out


def _replace(obj: Any, path: tuple[str, ...], make: Callable[[Any], Any]) -> Any:
    head, *rest = path
    x = getattr(obj, head)
    return dataclasses.replace(
        obj, **{head: make(x) if not rest else _replace(x, tuple(rest), make)}
    )


# the station's and the EV simulator's limits and their neighbours (current, voltage,
# power limits reached exactly), ordinary values, anything
BOUNDS = [0, 1, 6, 16, 32, 99, 100, 101, 124, 125, 126, 399, 400, 401, 449, 450, 451, 500, 501]
value = st.one_of(
    st.sampled_from(BOUNDS),
    st.integers(0, 600),
    st.integers(0, 32767),
    st.integers(-32768, 32767),
)
scale = st.one_of(st.just(0), st.just(0), st.integers(-3, 3))


@st.composite
def loop_request(draw: Any, p: Pair, case: str) -> RequestReceived:
    """The loop request with some of its values changed, and sometimes: another
    SessionID, facet violations, an element name, meter_info_requested flipped."""
    event = p.event
    msg = event.message
    body = _body(msg)
    if case in OTHER_MODE and draw(st.integers(0, 9)) == 0:
        other = _body(in_loop_event(OTHER_MODE[case]).message)
        body = dataclasses.replace(body, cl_req_control_mode=other.cl_req_control_mode)
    for path in _numbers(body):
        if draw(st.booleans()):
            v, e = draw(value), draw(scale)
            if path[-1] in ("ev_target_current", "ev_present_voltage") and draw(st.booleans()):
                v, e = draw(st.integers(0, 500)), 0

            def make(pv: Any, v: int = v, e: int = e) -> Any:
                key = "multiplier" if hasattr(pv, "multiplier") else "exponent"
                return dataclasses.replace(pv, value=v, **{key: e})

            body = _replace(body, path, make)
    if hasattr(body, "meter_info_requested") and draw(st.booleans()):
        body = dataclasses.replace(body, meter_info_requested=not body.meter_info_requested)
    msg = body if getattr(msg, "body", None) is None else _with_body(msg, body)
    if draw(st.integers(0, 14)) == 0:  # another SessionID
        header = dataclasses.replace(msg.header, session_id=bytes.fromhex("0102030405060708"))
        msg = dataclasses.replace(msg, header=header)
    violations: tuple[Any, ...] = ()
    if draw(st.integers(0, 14)) == 0:
        violations = ("a value outside its facet",)
    element = event.element
    if draw(st.integers(0, 9)) == 0:
        element = draw(st.sampled_from([None, _name(event), "AC_ChargeLoopReq"]))
    return RequestReceived(msg, event.schema, violations, element)


def in_loop_event(case: str) -> RequestReceived:
    return in_loop(case)[1]


@st.composite
def evse_status(draw: Any, p: Pair) -> EvseStatus:
    st_ = p.slow._ctx.status
    volts = draw(st.one_of(st.integers(0, 500).map(float), st.floats(0, 1000, width=32)))
    amps = draw(st.one_of(st.integers(0, 200).map(float), st.floats(0, 300, width=32)))
    return dataclasses.replace(
        st_,
        present_voltage=volts,
        present_current=amps,
        energy_wh=st_.energy_wh + draw(st.integers(0, 3000)),
        isolation=draw(st.sampled_from(["Valid", "Valid", "Valid", "Warning", "Fault", "Invalid"])),
        contactors_closed=draw(st.sampled_from([st_.contactors_closed, True, False])),
    )


@st.composite
def schedule(draw: Any) -> ChargingScheduleUpdate:
    n = draw(st.integers(0, 3))
    entries = []
    start = 0
    for _ in range(n):
        duration = draw(st.one_of(st.none(), st.integers(1, 20)))
        power = draw(
            st.one_of(st.sampled_from([0, 5000, 11000, 22000, 50000]), st.integers(-5000, 60000))
        )
        entries.append((start, float(power), duration))
        start += duration or draw(st.integers(1, 20))
    return ChargingScheduleUpdate(entries=tuple(entries))


def events(p: Pair, case: str) -> Any:
    """Mostly loop requests and status reports; now and then an event that changes the
    loop (a stop, a schedule) or ends it (a fault, a lost connection, another request)."""
    others = st.sampled_from(p.requests)
    return st.one_of(
        *[loop_request(p, case)] * 10,
        *[evse_status(p)] * 5,
        schedule(),
        schedule(),
        st.just(StopRequested(reason="remote stop")),
        st.just(AuthorizationResult(accepted=False, id_token="t", reason="revoked")),
        st.just(EvseFault(kind="emergency_stop", detail="button")),
        st.just(ConnectionLost(reason="reset")),
        st.just(TimerExpired(timer="V2G_SECC_Sequence_Timeout")),
        others,
    )


# mostly within the loop's timeouts (-20: 0.5 s), sometimes beyond them
delays = st.one_of(*[st.just(0.0), st.floats(0.0, 0.3)] * 4, st.floats(0.0, 2.0), st.just(61.0))


@pytest.mark.parametrize("case", list(CASES))
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_the_fast_path_answers_as_the_generic_path(case: str, data: Any) -> None:
    p = pair(case)
    level = data.draw(st.sampled_from([logging.INFO] * 9 + [logging.DEBUG]))
    for _ in range(data.draw(st.integers(1, 25))):
        event = data.draw(events(p, case))
        feed(p, event, data.draw(delays), level)


@pytest.mark.parametrize("case", list(CASES))
def test_a_charging_loop_with_values_changing_takes_the_fast_path(case: str) -> None:
    """Every loop request of an ordinary loop (the EV's values and the measured values
    changing every message) is answered by the fast path, exactly as by the generic."""
    p = pair(case)
    body = _body(p.event.message)
    paths = _numbers(body)
    status = p.slow._ctx.status
    for i in range(60):
        new = body
        for n, path in enumerate(paths):
            if "target_voltage" in path[-1] or "maximum_voltage" in path[-1]:
                continue  # within the EV's maximum: the request stays valid

            def make(pv: Any, i: int = i, n: int = n) -> Any:
                return dataclasses.replace(pv, value=pv.value + (i * (n + 3)) % 7)

            new = _replace(new, path, make)
        event = RequestReceived(
            _with_body(p.event.message, new), p.event.schema, (), p.event.element
        )
        status = dataclasses.replace(
            status,
            present_voltage=350.0 + i % 13 + 0.25 * (i % 3),
            present_current=10.0 + i % 11,
            energy_wh=status.energy_wh + 17.5,
            contactors_closed=True,
        )
        feed(p, status, 0.0)
        feed(p, event, 0.2)
        assert p.slow.state == p.fast.state
    assert p.steps[0] == 60


@pytest.mark.parametrize("case", ["iso2-dc", "din", "iso20-dc-scheduled", "iso20-ac-dynamic"])
def test_an_unchanged_loop_gets_the_same_response_object(case: str) -> None:
    """The fast path reuses the last response while nothing changed, as the handler's
    ``loop_built`` does, and builds a new one for every change."""
    p = pair(case)
    first = outcome(p.fast, p.clocks[0], p.event, p.now + 0.1)
    second = outcome(p.fast, p.clocks[0], p.event, p.now + 0.2)
    (a,) = [x for x in first[0] if isinstance(x, SendResponse)]
    (b,) = [x for x in second[0] if isinstance(x, SendResponse)]
    assert b is a
    status = dataclasses.replace(p.fast._ctx.status, present_voltage=123.0)
    p.fast.handle(status, p.now + 0.2)
    third = outcome(p.fast, p.clocks[0], p.event, p.now + 0.3)
    (c,) = [x for x in third[0] if isinstance(x, SendResponse)]
    assert c is not a and c != a
    assert p.steps[0] == 3


@pytest.mark.parametrize("case", list(CASES))
def test_the_limits_reached_exactly_answer_alike(case: str) -> None:
    """Each of the EV's values at the station's and the EV's limits and next to them
    (current, voltage and power limit reached exactly or not, a target refused): the
    same answers both ways, one value changed at a time."""
    p = pair(case)
    status = dataclasses.replace(p.slow._ctx.status, contactors_closed=True)
    feed(p, status, 0.0)
    body = _body(p.event.message)
    for path in _numbers(body):
        for v in BOUNDS:
            if p.slow.state is State.ENDED:
                return
            new = _replace(body, path, lambda pv, v=v: dataclasses.replace(pv, value=v))
            msg = _with_body(p.event.message, new)
            feed(p, RequestReceived(msg, p.event.schema, (), p.event.element), 0.1)
    assert p.steps[0] > 0 or not _numbers(body)  # (ChargingStatusReq: no values)
