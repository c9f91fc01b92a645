"""Run the EV simulator against the real core through the real codec with a fake clock.

Every request is encoded and decoded again before the core sees it, and every response
before the EV sees it, so each scenario exercises the codec both ways.  The fake EVSE and
station perform the core's actions and report back; a discrete-event loop advances the
fake clock to the next thing due (EV request, EVSE fact, station answer, core deadline).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from secc import codec
from secc.core.actions import Action, SendResponse, SessionEnded
from secc.core.config import PausedSession, SessionConfig
from secc.core.context import State
from secc.core.events import (
    ChargingScheduleUpdate,
    ConnectionLost,
    Event,
    RequestReceived,
    TimerExpired,
)
from secc.core.session import SeccSession
from secc.ev.iso2 import EvScript, EvSimulator, Outgoing
from secc.ev.iso20 import Ev20Script, Ev20Simulator
from secc.testing.clock import FakeClock
from secc.testing.evse import FakeEvse, FakeStation

Check = Callable[[SeccSession, Event | ChargingScheduleUpdate, list[Action]], None]


@dataclass(slots=True)
class Outcome:
    session: SeccSession
    ev: EvSimulator | Ev20Simulator
    evse: FakeEvse
    station: FakeStation
    clock: FakeClock
    actions: list[tuple[float, Action]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    trace: list[tuple[float, str, str, bytes]] = field(default_factory=list)  # t, dir, name, EXI

    def format_trace(self) -> str:
        """The message trace, one line per message: seconds, direction, name, code, EXI."""
        t0 = self.trace[0][0] if self.trace else 0.0
        lines = []
        for t, direction, name, exi in self.trace:
            lines.append(f"{t - t0:9.3f} {direction} {name:<32} {exi.hex()}")
        return "\n".join(lines)

    @property
    def end(self) -> SessionEnded | None:
        ends = [a for _, a in self.actions if isinstance(a, SessionEnded)]
        return ends[-1] if ends else None

    @property
    def responses(self) -> list[tuple[str, str]]:
        return self.ev.responses

    def kinds(self) -> list[str]:
        return [type(a).__name__ for _, a in self.actions]

    def code_of(self, response: str) -> list[str]:
        return [c for n, c in self.ev.responses if n == response]


def run_session(
    config: SessionConfig,
    script: EvScript | Ev20Script,
    *,
    clock: FakeClock | None = None,
    evse: FakeEvse | None = None,
    station: FakeStation | None = None,
    resume: PausedSession | None = None,
    events: Sequence[tuple[float, Event | ChargingScheduleUpdate]] = (),
    check: Check | None = None,
    max_time: float = 3600.0,
    ev20: dict[str, Any] | None = None,
) -> Outcome:
    clock = clock or FakeClock()
    t0 = clock.now
    session = SeccSession(
        config, now=t0, random_bytes=clock.random_bytes, utc_now=clock.utc_now, resume=resume
    )
    ev: EvSimulator | Ev20Simulator
    if isinstance(script, Ev20Script):  # ISO 15118-20: the EV's time stamps follow the clock
        ev = Ev20Simulator(
            script, utc_now=lambda: clock.utc_now().timestamp(), **(ev20 or {})
        )  # ev20: credentials / faults of a Plug & Charge EV
    else:
        ev = EvSimulator(script)
    out = Outcome(session, ev, evse or FakeEvse(), station or FakeStation(), clock)
    first = ev.start()
    pending: list[tuple[float, Outgoing]] = [(t0 + first.delay, first)]
    scheduled = sorted(((t0 + dt, e) for dt, e in events), key=lambda x: x[0])

    def feed(event: Event | ChargingScheduleUpdate) -> None:
        now = clock.now
        actions = session.handle(event, now)
        if check is not None:
            check(session, event, actions)
        for action in actions:
            out.actions.append((now, action))
            if isinstance(action, SendResponse):
                data = action.exi if action.exi is not None else codec.encode(action.message)
                out.trace.append((now, "<-", action.name, data))
                back = codec.decode(data, action.schema.value)
                if isinstance(ev, Ev20Simulator):
                    nxt = ev.receive(back, action.schema, now)
                else:
                    nxt = ev.receive(back, action.schema)
                if nxt is not None:
                    pending.append((now + nxt.delay, nxt))
            else:
                out.evse.perform(action, now)
                out.station.perform(action, now)
        for fact in [*out.evse.poll(now), *out.station.poll(now)]:
            feed(fact)

    while session.state is not State.ENDED and clock.now - t0 <= max_time:
        candidates: list[tuple[float, int, str]] = []
        if pending:
            candidates.append((pending[0][0], 0, "ev"))
        if scheduled:
            candidates.append((scheduled[0][0], 1, "event"))
        for rank, (src, deadline) in enumerate(
            (
                ("evse", out.evse.deadline),
                ("station", out.station.deadline),
                ("timer", session.deadline),
            ),
            start=2,
        ):
            if deadline is not None:
                candidates.append((deadline, rank, src))
        if not candidates:
            break
        when, _, src = min(candidates)
        clock.advance_to(when)
        if src == "ev":
            _, step = pending.pop(0)
            if step.kind == "stall":
                continue
            if step.kind == "vanish":
                feed(ConnectionLost("the EV vanished"))
                continue
            # an EV may send values outside their facets: encoded as it would send them,
            # decoded as the station's server does (violations reported to the core)
            data = codec.encode(step.message, lenient=True)
            out.requests.append(step.name)
            out.trace.append((clock.now, "->", step.name, data))
            _, message, violations = codec.decode_checked(data, step.schema.value)
            feed(RequestReceived(message, step.schema, violations))
        elif src == "event":
            _, event = scheduled.pop(0)
            feed(event)
        elif src == "evse":
            for fact in out.evse.poll(clock.now):
                feed(fact)
        elif src == "station":
            for fact in out.station.poll(clock.now):
                feed(fact)
        else:
            feed(TimerExpired("deadline"))
    return out
