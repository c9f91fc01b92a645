"""An EV cannot use the driver's late-deadline rule ("a request read after a deadline the
station had not acted on counts as come before it", :mod:`secc.aio.driver`) to hold back
a deadline, nor to move the session's clock.

The EV here runs on its own event loop in another thread (a car is another computer) and
talks ISO 15118-2 DC over TCP: the sans-I/O EV simulator sets the session up to the
charge loop; then the test's own rules take over.

- After the station announced a stop (EVSENotification=StopCharging: by ISO 15118-2
  the EV is to stop with PowerDelivery Stop), a misbehaving EV keeps sending
  CurrentDemandReq: one after each response, or several pipelined.  The station is
  starved past its stop deadline (``stop_grace``) while requests wait (or, with 8
  pipelined, just flooded); it answers at most the one request it reads first (counted
  as come before the deadline), then its stop timer ends the session, DC output off and
  contactors open.
- An EV that sends its next request only after V2G_SECC_Sequence_Timeout has run out on
  an idle station gets no answer: the session ended with ``sequence_timeout``.
- The session clock's lag (``SessionDriver._lag``) grows only by the station's own
  lateness: an EV that sends late (within or past the timeout) leaves it where the
  station's own ``late`` records put it.

No timing is asserted: starvation is a callback that blocks the station's loop until a
condition holds, every wait is bounded, counts come from the station's trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hal.backends.simulated import Plant, build_board
from secc import codec
from secc.aio.driver import SessionDriver
from secc.core.actions import EndReason
from secc.core.config import Timers
from secc.core.events import Schema, StopRequested
from secc.ev.iso2 import EvSimulator, Outgoing
from secc.runtime import Evse, Station
from secc.trace import body_of
from secc.v2gtp import Framer, encode_frame
from tests.station.conftest import EVSE_ID, evse, run, script, station_config, wait_until

BOUND = 10.0  # s: the longest any blocking condition may take (it is never reached)
FLOOD_CAP = 5000  # requests a flooding EV sends at most (a station that never stops)
EXI = 0x8001  # V2GTP payload type of appHandshake and ISO 15118-2 messages


class Ev:
    """What the EV saw: the responses by name, how its session ended."""

    def __init__(self) -> None:
        self.responses: list[str] = []
        self.notifications: list[str] = []
        self.sent_after_stop = 0
        self.ended = ""
        self.done = threading.Event()


def _ev_thread(
    port: int, ev_script: Any, out: Ev, flood_depth: int | None = None
) -> threading.Thread:
    """An ISO 15118-2 DC EV on its own loop.  With ``flood_depth`` it ignores
    StopCharging and, from its first CurrentDemandRes on, keeps ``flood_depth``
    CurrentDemandReq outstanding (re-sending its last one) until the station closes."""

    async def session() -> None:
        reader, writer = await asyncio.open_connection("::1", port)
        framer = Framer(allowed_types=(EXI,))
        frames: list[Any] = []

        async def receive() -> Any:
            while not frames:
                try:
                    data = await reader.read(65536)
                except ConnectionResetError:  # closed with requests unread: a reset
                    return None
                if not data:
                    return None
                frames.extend(framer.feed(data))
            return frames.pop(0)

        sim = EvSimulator(ev_script)
        step: Outgoing | None = sim.start()
        loop = asyncio.get_running_loop()
        answered = loop.time()
        try:
            while step is not None:
                wait = answered + step.delay - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)  # the EV's own pace (its script's delay)
                writer.write(encode_frame(codec.encode(step.message), EXI))
                await writer.drain()
                frame = await asyncio.wait_for(receive(), BOUND)
                if frame is None:
                    out.ended = f"closed by the station after {step.name}"
                    return
                schema = Schema.APPHAND if step.schema is Schema.APPHAND else sim.schema
                message = codec.decode(frame.payload, schema.value)
                name = type(body_of(message)).__name__
                out.responses.append(name)
                answered = loop.time()
                if flood_depth is not None and name == "CurrentDemandRes":
                    await flood(step.message, receive, writer, flood_depth)
                    return
                step = sim.receive(message, schema, answered)
            out.ended = "done"
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def flood(message: Any, receive: Any, writer: Any, depth: int) -> None:
        payload = encode_frame(codec.encode(message), EXI)
        sent = 0
        for _ in range(depth):
            writer.write(payload)
            sent += 1
        await writer.drain()
        while sent < FLOOD_CAP:
            frame = await asyncio.wait_for(receive(), BOUND)
            if frame is None:
                out.ended = "closed by the station while flooding"
                return
            body = body_of(codec.decode(frame.payload, Schema.ISO2.value))
            out.responses.append(type(body).__name__)
            note = str(body.dc_evse_status.evse_notification.value)
            out.notifications.append(note)
            if note == "StopCharging":
                out.sent_after_stop += 1  # (it goes on regardless: the misbehaviour)
            writer.write(payload)
            sent += 1
            try:
                await writer.drain()
            except ConnectionError:
                out.ended = "closed by the station while flooding (reset)"
                return
        out.ended = "flood cap reached: the station never stopped"

    def main() -> None:
        try:
            asyncio.run(session())
        except Exception as exc:  # (reported through ``ended``: the test asserts it)
            out.ended = out.ended or f"{type(exc).__name__}: {exc}"
        finally:
            out.done.set()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    return thread


def _block_until(what: Callable[[], bool]) -> None:
    """Starve the event loop this runs on until ``what`` holds (bounded)."""
    limit = time.monotonic() + BOUND
    while not what():
        assert time.monotonic() < limit, "the blocking condition never held"
        time.sleep(0.002)


def _records(path: Path | None) -> list[dict[str, Any]]:
    assert path is not None
    return [json.loads(line) for line in path.read_text().splitlines()]


def _plant_state(plant: Plant) -> tuple[bool, bool]:
    return plant.contactor_command, plant.dc_enabled


def _dc_evse(timers: Timers) -> Any:
    return evse(protocols=("iso2",), energy_modes=("DC_extended",), timers=timers)


@pytest.mark.parametrize(("depth", "starve"), [(1, True), (4, True), (8, False)])
def test_a_flooding_ev_cannot_hold_back_the_stop_timer(
    pki_dir: Path, tmp_path: Path, depth: int, starve: bool
) -> None:
    """``depth`` requests kept outstanding; ``starve``: the station's loop is blocked
    from the stop until past its deadline with requests waiting (else the flood alone
    meets the deadline, as the loop gets round to it)."""
    board, plant = build_board()
    ev = Ev()
    grace = 0.3
    starve_it = starve
    seen: dict[str, Any] = {"loops": 0, "tx_after": 0, "woke": None}
    at_end: list[tuple[bool, bool]] = []

    async def main() -> Evse:
        config = station_config(
            pki_dir, tmp_path, _dc_evse(Timers(sequence_timeout=5.0, stop_grace=grace))
        )
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[None]] = []

        async def stop(driver: SessionDriver) -> None:
            await driver.feed(StopRequested("test: remote stop"))
            deadline = driver.session.deadline
            assert deadline is not None
            assert abs(deadline - (driver._fed_at + grace)) < 1e-6  # the stop timer's
            seen["deadline"] = deadline
            seen["lag_before"] = driver._lag

            def starve() -> None:  # past the stop deadline, the EV's requests waiting
                real = deadline + driver._lag
                _block_until(lambda: driver.conn.input_waiting() > 0)
                _block_until(lambda: loop.time() > real + 0.02)
                seen["woke"] = loop.time()
                seen["waiting"] = driver.conn.input_waiting()

            if starve_it:
                loop.call_soon(starve)

        def observe(evse_id: str, record: dict[str, Any]) -> None:
            if record.get("kind") != "tx" or record.get("name") != "CurrentDemandRes":
                return
            seen["loops"] += 1
            if seen["woke"] is not None:
                seen["tx_after"] += 1  # answered after the station woke past its deadline
            if seen["loops"] == 3:
                driver = e.active
                assert driver is not None
                seen["driver"] = driver
                tasks.append(asyncio.create_task(stop(driver)))

        def ended() -> bool:
            if e.ended and e.active is None:
                at_end.append(_plant_state(plant))
                return True
            return False

        async with Station(config, boards={EVSE_ID: board}, observer=observe) as st:
            e = st.evse(EVSE_ID)
            _ev_thread(e.ports["tcp"], script("dc", charge_loops=1000), ev, flood_depth=depth)
            await wait_until(ended, timeout=30)
            await wait_until(ev.done.is_set, timeout=BOUND)
            await asyncio.gather(*tasks)
            return e

    e = run(main, timeout=60)
    if starve:
        assert seen["waiting"] > 0  # requests were waiting when the station woke
    end = e.ended[-1]
    assert end.end.reason is EndReason.STATION_STOP, end.end
    assert at_end == [(False, False)]  # contactors open, DC output off at the end
    assert ev.ended.startswith("closed by the station"), ev.ended
    assert "StopCharging" in ev.notifications  # the stop was announced to the EV
    # at most the one request read first after the deadline was answered ...
    assert seen["tx_after"] <= 1, seen["tx_after"]
    records = _records(end.trace)
    late = [r for r in records if r["kind"] == "late" and r.get("request")]
    assert len(late) <= 1, late  # ... forgiven once for this deadline
    deadline_t = round(seen["deadline"] - seen["driver"].started, 6)
    assert all(r["deadline"] == deadline_t for r in late), (late, deadline_t)
    # nothing answered past the deadline: the trace's times are rounded to 1 µs, and a
    # request fed less than 1 µs before the deadline (the one forgiven after it is then
    # decided at that same time: the session clock never runs backwards) shows the
    # deadline's own rounded time
    answered = [r for r in records if r["kind"] == "tx" and r["t"] > deadline_t]
    assert not answered, answered
    (last,) = [r for r in records if r["kind"] == "end"]
    assert last["t"] >= deadline_t
    # the clock's lag grew by at most the station's own lateness at this deadline
    driver: SessionDriver = seen["driver"]
    grown = driver._lag - seen["lag_before"]
    own = sum(r["late"] for r in records if r["kind"] == "late" and r.get("response"))
    assert grown <= own + (late[0]["late"] + 1e-4 if late else 0.0) + 1e-5, (grown, late)


def test_a_request_sent_after_the_sequence_timeout_is_not_answered(
    pki_dir: Path, tmp_path: Path
) -> None:
    board, plant = build_board()
    ev = Ev()
    timeout = 0.5
    at_end: list[tuple[bool, bool]] = []
    drivers: list[SessionDriver] = []

    async def main() -> Evse:
        config = station_config(pki_dir, tmp_path, _dc_evse(Timers(sequence_timeout=timeout)))

        def observe(evse_id: str, record: dict[str, Any]) -> None:
            if not drivers and e.active is not None:
                drivers.append(e.active)

        def ended() -> bool:
            if e.ended and e.active is None:
                at_end.append(_plant_state(plant))
                return True
            return False

        async with Station(config, boards={EVSE_ID: board}, observer=observe) as st:
            e = st.evse(EVSE_ID)
            # the EV's pause between charge loops is 12 times the station's timeout (by
            # its own clock: the station acts on its deadline long before, unless it is
            # starved for over 5.5 s, which a loaded CI machine does not do)
            _ev_thread(e.ports["tcp"], script("dc", loop_interval=12 * timeout), ev)
            await wait_until(ended, timeout=30)
            await wait_until(ev.done.is_set, timeout=BOUND)
            return e

    e = run(main, timeout=60)
    end = e.ended[-1]
    assert end.end.reason is EndReason.SEQUENCE_TIMEOUT, end.end
    assert at_end == [(False, False)]
    assert ev.responses[-1] == "CurrentDemandRes"
    assert ev.responses.count("CurrentDemandRes") == 1  # the late one was not answered
    assert ev.ended.startswith("closed by the station after CurrentDemandReq"), ev.ended
    records = _records(end.trace)
    assert not [r for r in records if r["kind"] == "late" and r.get("request")]
    assert [r["name"] for r in records if r["kind"] == "tx"][-1] == "CurrentDemandRes"
    (driver,) = drivers
    own = [r["lag"] for r in records if r["kind"] == "late"]  # the station's own lateness
    assert abs(driver._lag - (own[-1] if own else 0.0)) < 1e-5, (driver._lag, own)


def test_an_ev_sending_late_does_not_move_the_session_clock(pki_dir: Path, tmp_path: Path) -> None:
    board, plant = build_board()
    ev = Ev()
    timeout = 2.0
    drivers: list[SessionDriver] = []

    async def main() -> Evse:
        config = station_config(pki_dir, tmp_path, _dc_evse(Timers(sequence_timeout=timeout)))

        def observe(evse_id: str, record: dict[str, Any]) -> None:
            if not drivers and e.active is not None:
                drivers.append(e.active)

        async with Station(config, boards={EVSE_ID: board}, observer=observe) as st:
            e = st.evse(EVSE_ID)
            # every charge loop request comes late, but within V2G_SECC_Sequence_Timeout
            _ev_thread(
                e.ports["tcp"], script("dc", loop_interval=0.4 * timeout, charge_loops=3), ev
            )
            await wait_until(lambda: bool(e.ended) and e.active is None, timeout=30)
            await wait_until(ev.done.is_set, timeout=BOUND)
            return e

    e = run(main, timeout=60)
    assert ev.ended == "done", (ev.ended, ev.responses)
    assert ev.responses.count("CurrentDemandRes") == 3
    end = e.ended[-1]
    assert end.end.reason is EndReason.EV_STOP, end.end
    assert not plant.contactor_command
    records = _records(end.trace)
    late = [r for r in records if r["kind"] == "late"]
    assert not [r for r in late if r.get("request")], late  # the EV's lateness is its own
    (driver,) = drivers
    # the lag is only what the station's own late responses added (none when idle)
    expected = late[-1]["lag"] if late else 0.0
    assert abs(driver._lag - expected) < 1e-5, (driver._lag, late)
