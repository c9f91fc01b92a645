"""-20 safety invariants under random EV behaviour (legal and illegal), EVSE facts and
faults, checked by a monitor that only watches events and actions:

- CloseContactors only answers a PowerDeliveryReq(Start) whose PowerDeliveryRes is OK,
  after an AuthorizationRes OK/Finished and, for DC, a finished cable check with the
  isolation Valid (or Warning) and the present voltage at the pre-charge target.
- No power without a Start: a SetDcTarget above the pre-charge current only while the
  monitor saw a Start and no Stop or Standby since.
- Every action list that ends the session opens the contactors before the last response,
  CloseConnection and SessionEnded; an ended session does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from secc.core.actions import (
    Action,
    CloseConnection,
    CloseContactors,
    OpenContactors,
    SendResponse,
    SessionEnded,
    SetDcTarget,
)
from secc.core.context import State
from secc.core.events import (
    AuthorizationResult,
    ConnectionLost,
    EvseFault,
    EvseStatus,
    RequestReceived,
    StopRequested,
    TimerExpired,
)
from secc.core.iso2.dc import PRECHARGE_MAX_CURRENT
from secc.testing.evse import FakeEvse, FakeStation
from tests.core.iso20_peer import Ev, config, num
from tests.core.test_iso20_legality import request, request_types

TOLERANCE = config().dc.precharge_tolerance
REQUESTS = request_types()


@dataclass
class Monitor:
    dc: bool
    isolation: str = "Invalid"
    voltage: float = 0.0
    precharge_target: float | None = None
    authorized: bool = False
    cable_check_done: bool = False
    powered: bool = False  # a Start was answered OK, no Stop / Standby since
    ended: bool = False
    closes: int = 0
    loops: int = 0
    log: list[str] = field(default_factory=list)

    def after(self, event: Any, actions: list[Action]) -> None:
        if isinstance(event, EvseStatus):
            self.isolation, self.voltage = event.isolation, event.present_voltage
        req = event.message if isinstance(event, RequestReceived) else None
        name = type(req).__name__
        if name == "DC_PreChargeReq":
            self.precharge_target = num(req.ev_target_voltage)
        if self.ended:
            assert actions == [], "an ended session acted"
            return
        kinds = [type(a) for a in actions]
        sends = [a.message for a in actions if isinstance(a, SendResponse)]
        ok = [type(b).__name__ for b in sends if b.response_code.value.startswith("OK")]
        for body in sends:
            processing = getattr(body, "evse_processing", None)
            finished = processing is not None and processing.value == "Finished"
            code = body.response_code.value
            if type(body).__name__ == "AuthorizationRes" and code == "OK" and finished:
                self.authorized = True
            if type(body).__name__ == "DC_CableCheckRes" and code == "OK" and finished:
                self.cable_check_done = True
            if type(body).__name__.endswith("ChargeLoopRes") and code == "OK":
                self.loops += 1
        progress = req.charge_progress.value if name == "PowerDeliveryReq" else None
        if CloseContactors in kinds:
            assert progress == "Start" and "PowerDeliveryRes" in ok, f"closed on {name}"
            assert self.authorized, "contactors closed before authorization"
            if self.dc:
                assert self.cable_check_done and self.isolation in ("Valid", "Warning")
                assert self.precharge_target is not None
                assert abs(self.voltage - self.precharge_target) <= TOLERANCE
            self.closes += 1
        if progress == "Start" and "PowerDeliveryRes" in ok:
            self.powered = True
        if progress in ("Stop", "Standby") and "PowerDeliveryRes" in ok:
            self.powered = False
        for a in actions:
            if isinstance(a, SetDcTarget) and a.current > PRECHARGE_MAX_CURRENT:
                assert self.powered, f"power without a Start: {a}"
            # these sessions are unidirectional (bpt off): never a discharge target
            assert not (isinstance(a, SetDcTarget) and a.current < 0), f"discharge: {a}"
        if SessionEnded in kinds:
            i_open = kinds.index(OpenContactors)
            assert i_open < kinds.index(CloseConnection) < kinds.index(SessionEnded)
            assert kinds[-1] is SessionEnded and kinds.count(SessionEnded) == 1
            assert all(k is not SendResponse for k in kinds[:i_open])
            assert CloseContactors not in kinds[i_open:]
            self.ended = True
            self.powered = False


def plan(dc: bool, dynamic: bool, loops: int, standby: bool) -> list[tuple[str, Any]]:
    """The legal request sequence an EV follows (each step repeated while Ongoing)."""
    sid = 2 if dc else 1
    steps: list[tuple[str, Any]] = [
        ("handshake", ()),
        ("session_setup", ()),
        ("authorization_setup", ()),
        ("authorization", ()),
        ("service_discovery", ()),
        ("service_detail", (sid,)),
        ("service_selection", (sid, 2 if dynamic else 1)),
        ("charge_parameters", ()),
        ("schedule_exchange", (dynamic,)),
    ]
    start = ("power_delivery", ("Start", None if dynamic else 1, 10_000))
    loop = ("dc_loop" if dc else "ac_loop", (dynamic,))
    if dc:
        steps += [("cable_check", ()), ("pre_charge", (395.0,))]
        if standby:  # DC may also park in standby right after pre-charge
            steps += [("power_delivery", ("Standby",)), loop]
    steps += [start] + [loop] * loops
    if standby:
        steps += [("power_delivery", ("Standby",)), loop, ("power_delivery", ("Start",)), loop]
    steps += [("power_delivery", ("Stop",))]
    if dc:
        steps += [("welding", ())]
    steps += [("session_stop", ())]
    return steps


def step_done(method: str, args: Any, res: Any) -> bool:
    """The EV moves on when the station finished, and after pre-charge when the present
    voltage is at its target (the EV's own decision)."""
    if method == "pre_charge":
        return abs(num(res.evse_present_voltage) - args[0]) <= 10.0
    processing = getattr(res, "evse_processing", None)
    return processing is None or processing.value == "Finished"


EV = st.just(("ev",))
ADVANCE = st.tuples(st.just("advance"), st.sampled_from([0.1, 0.5, 1.0, 2.0, 8.0, 61.0]))
ILLEGAL = st.tuples(st.just("illegal"), st.integers(0, len(REQUESTS) - 1))
STATUS = st.tuples(
    st.just("status"),
    st.sampled_from(["Invalid", "Valid", "Warning", "Fault", "No_IMD"]),
    st.sampled_from([0.0, 150.0, 395.0, 400.0, 500.0]),
    st.booleans(),
)
AUTH = st.tuples(st.just("auth"), st.booleans())
RARE = st.sampled_from([("fault",), ("stop",), ("lost",), ("timer",)])


def _pick(r: int, chaos: int) -> st.SearchStrategy[tuple[Any, ...]]:
    if r < chaos:
        return ILLEGAL if r % 2 else RARE
    r = (r - chaos) * 100 // (1000 - chaos)
    for limit, strategy in ((75, EV), (87, ADVANCE), (95, STATUS)):
        if r < limit:
            return strategy
    return AUTH


def moves(chaos: int) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    return st.lists(
        st.integers(0, 999).flatmap(lambda r: _pick(r, chaos)), min_size=40, max_size=200
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dc=st.booleans(),
    dynamic=st.booleans(),
    loops=st.integers(0, 4),
    standby=st.booleans(),
    steps=st.sampled_from([0, 5, 20, 100]).flatmap(moves),
)
def test_safety_invariants(
    dc: bool, dynamic: bool, loops: int, standby: bool, steps: list[tuple[Any, ...]]
) -> None:
    monitor, ev, evse, station = _monitored(dc)
    feed = ev.feed
    script = plan(dc, dynamic, loops, standby)
    position = [0]

    def advance(seconds: float) -> None:
        ev.clock.advance(seconds)
        for fact in [*evse.poll(ev.clock.now), *station.poll(ev.clock.now)]:
            if not monitor.ended:
                feed(fact)
        deadline = ev.session.deadline
        if not monitor.ended and deadline is not None and deadline <= ev.clock.now:
            feed(TimerExpired("deadline"))

    for m in steps:
        if monitor.ended:
            break
        op = m[0]
        if op == "ev" and position[0] < len(script):
            method, args = script[position[0]]
            advance(0.05)
            if monitor.ended:
                break
            res = getattr(ev, method)(*args)
            if res is not None and step_done(method, args, res):
                position[0] += 1
        elif op == "advance":
            advance(m[1])
        elif op == "illegal":
            schema, name = REQUESTS[m[1]]
            sid = ev.session_id
            feed(RequestReceived(request(schema, name, sid, dc), schema))
        elif op == "status":
            feed(EvseStatus(isolation=m[1], present_voltage=m[2], contactors_closed=m[3]))
        elif op == "auth":
            feed(AuthorizationResult(accepted=m[1], id_token=""))
        elif op == "fault":
            feed(EvseFault("rcd"))
        elif op == "stop":
            feed(StopRequested("remote"))
        elif op == "lost":
            feed(ConnectionLost("reset"))
        elif op == "timer":
            feed(TimerExpired("V2G_SECC_Sequence_Timeout"))
    event(f"contactors closed: {monitor.closes > 0}, loops: {monitor.loops > 0}")
    if monitor.ended:
        assert ev.session.state is State.ENDED
        assert ev.session.handle(ConnectionLost("again"), ev.clock.now) == []


def _monitored(dc: bool) -> tuple[Monitor, Ev, FakeEvse, FakeStation]:
    monitor = Monitor(dc=dc)
    ev = Ev(dc=dc)
    evse, station = FakeEvse(isolation_delay=0.5), FakeStation(auth_delay=0.5)
    original_feed = ev.feed

    def feed(event: Any) -> list[Action]:
        actions = original_feed(event)
        monitor.after(event, actions)
        for a in actions:
            evse.perform(a, ev.clock.now)
            station.perform(a, ev.clock.now)
        return actions

    ev.feed = feed  # type: ignore[method-assign]
    return monitor, ev, evse, station


def test_the_monitor_accepts_a_normal_session() -> None:
    """The monitor passes the legal path with one close (it is not vacuous)."""
    for dc in (False, True):
        monitor, ev, evse, station = _monitored(dc)
        for method, args in plan(dc, False, 3, True):
            while True:
                ev.clock.advance(0.3)
                for fact in [*evse.poll(ev.clock.now), *station.poll(ev.clock.now)]:
                    ev.feed(fact)
                res = getattr(ev, method)(*args)
                assert res is not None and res.response_code.value.startswith("OK"), (method, res)
                if step_done(method, args, res):
                    break
        assert monitor.closes == 1 and monitor.loops == (6 if dc else 5)  # standby: closed
        assert monitor.ended
