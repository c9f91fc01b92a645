"""A starved station keeps the ISO 15118-20 charge-loop sequence timeout (0.5 s after a
DC_ChargeLoopRes, V2G_SECC_Sequence_Timeout of ISO 15118-20's charge loop) without
misreading its own lateness as the EV's silence.

Starvation is simulated deterministically: a callback blocks the station's event loop
(as a process without CPU is) until a condition holds, never for a fixed time.  Before
the fix in :mod:`secc.aio.driver` the first two tests ended in ``sequence_timeout`` every
time (``secc demo``'s rare failure on a loaded machine): the station acted on its
deadline before reading the request that had come, or came in the same loop turn.

- The EV runs on its own event loop (another thread, as a car is another computer): its
  next DC_ChargeLoopReq is in the station's receive queue before the deadline, while the
  station's loop is blocked until past it.  The station answers it and charges on.
- The EV shares the station's loop (``secc demo``): the loop is blocked during the EV's
  pause between loops until past the station's deadline; on the next turn the EV's
  request and the station's timer are both due.  The station reads the request first.
- A silent EV and a starved station: the station ends the session as soon as it runs
  again (nothing is waiting), with the DC output off and the contactors open, and the
  end record names the response the EV left unanswered.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hal.backends.simulated import Plant, build_board
from secc.aio.driver import SessionDriver
from secc.aio.ev_client import EvResult, Step, run_ev
from secc.cli.ev import script20_for
from secc.cli.replay import main as replay
from secc.core.actions import EndReason
from secc.ev.iso20 import Ev20Script
from secc.runtime import Evse, Station
from tests.station.conftest import EVSE_ID, evse, run, station_config, wait_until

BOUND = 10.0  # s: the longest any blocking condition may take (it is never reached)


def _section() -> Any:
    return evse(protocols=("iso20-dc",), energy_modes=("DC_extended",), tcp_port=-1)


def _script(loop_interval: float = 0.1) -> Ev20Script:
    return replace(script20_for("dc", "dynamic", loops=4), loop_interval=loop_interval)


def _block_until(what: Callable[[], bool]) -> None:
    """Starve the event loop this runs on until ``what`` holds (bounded)."""
    limit = time.monotonic() + BOUND
    while not what():
        assert time.monotonic() < limit, "the blocking condition never held"
        time.sleep(0.002)


def _past_deadline(driver: SessionDriver, loop: asyncio.AbstractEventLoop) -> Callable[[], bool]:
    """True once the loop's clock is past the session's deadline as it is now."""
    deadline = driver.session.deadline
    assert deadline is not None
    real = deadline + getattr(driver, "_lag", 0.0)  # (the session clock lags by it)
    return lambda: loop.time() > real + 0.02


def _records(path: Path | None) -> list[dict[str, Any]]:
    assert path is not None
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_request_waiting_when_the_starved_station_wakes_is_answered(
    pki_dir: Path, tmp_path: Path
) -> None:
    board, plant = build_board()
    done = threading.Event()
    result: list[EvResult] = []
    blocked: list[int] = []

    def ev_thread(port: int) -> None:  # the EV: its own loop, its own timers
        async def go() -> None:
            result.append(
                await run_ev(
                    _script(),
                    host="::1",
                    port=port,
                    tls=True,
                    cafile=pki_dir / "v2g20" / "root.pem",
                )
            )

        try:
            asyncio.run(go())
        finally:
            done.set()

    async def main() -> Evse:
        config = station_config(pki_dir, tmp_path, _section())
        loop = asyncio.get_running_loop()
        state: dict[str, Any] = {"loops": 0}

        def observe(evse_id: str, record: dict[str, Any]) -> None:
            if record.get("kind") == "tx" and record.get("name") == "DC_ChargeLoopRes":
                state["loops"] += 1
                if state["loops"] == 2:  # just after the second answer went out
                    loop.call_soon(starve)

        def starve() -> None:
            driver = e.active
            assert driver is not None
            past = _past_deadline(driver, loop)
            # the EV's next request arrives (station's receive queue), the station sleeps on
            _block_until(lambda: driver.conn.input_waiting() > 0)
            _block_until(past)
            blocked.append(driver.conn.input_waiting())

        async with Station(config, boards={EVSE_ID: board}, observer=observe) as st:
            e = st.evse(EVSE_ID)
            thread = threading.Thread(target=ev_thread, args=(e.ports["tls"],), daemon=True)
            thread.start()
            await wait_until(done.is_set, timeout=40)
            await wait_until(lambda: bool(e.ended) and e.active is None, timeout=10)
            return e

    e = run(main, timeout=60)
    assert blocked and blocked[0] > 0  # the request was waiting when the station woke
    (ev,) = result
    assert ev.ended == "done", (ev.ended, ev.outstanding)
    end = e.ended[-1]
    assert end.end.reason is EndReason.EV_STOP, end.end
    assert [s.response for s in ev.steps].count("DC_ChargeLoopRes") == 4
    records = _records(end.trace)
    (late,) = [r for r in records if r["kind"] == "late" and r.get("request")]
    assert late["late"] > 0 and late["t"] < late["deadline"]
    assert not plant.contactor_command
    assert replay([str(end.trace)], prog="secc replay") == 0  # the same decisions


@pytest.mark.parametrize("pause", [0.1, 0.3])
def test_an_ev_on_the_starved_loop_sends_before_the_station_acts(
    pki_dir: Path, tmp_path: Path, pause: float
) -> None:
    """``secc demo``'s case: EV and station on one event loop, starved together.  With
    a 0.3 s pause between loops the station's timer is still armed for the previous
    deadline (0.5 s after the first answer), which falls before the EV's send: it wakes
    first, finds the later deadline passed too, and must let the EV's due send run."""
    board, plant = build_board()

    async def main() -> tuple[EvResult, Evse]:
        config = station_config(pki_dir, tmp_path, _section())
        loop = asyncio.get_running_loop()
        async with Station(config, boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            seen = {"loops": 0}

            def starve() -> None:
                driver = e.active
                assert driver is not None
                _block_until(_past_deadline(driver, loop))

            def on_step(step: Step) -> None:
                if step.response == "DC_ChargeLoopRes":
                    seen["loops"] += 1
                    if seen["loops"] == 2:  # in the EV's pause before its next request
                        loop.call_later(0.02, starve)

            result = await run_ev(
                _script(loop_interval=pause),
                host="::1",
                port=e.ports["tls"],
                tls=True,
                cafile=pki_dir / "v2g20" / "root.pem",
                on_step=on_step,
            )
            await wait_until(lambda: bool(e.ended) and e.active is None, timeout=10)
            return result, e

    ev, e = run(main, timeout=60)
    assert ev.ended == "done", (ev.ended, ev.outstanding)
    end = e.ended[-1]
    assert end.end.reason is EndReason.EV_STOP, end.end
    assert [s.response for s in ev.steps].count("DC_ChargeLoopRes") == 4
    assert any(r["kind"] == "late" and r.get("request") for r in _records(end.trace))
    assert not plant.contactor_command
    assert replay([str(end.trace)], prog="secc replay") == 0


def test_a_silent_ev_still_times_out_at_once_when_the_station_runs_again(
    pki_dir: Path, tmp_path: Path
) -> None:
    board, plant = build_board()
    at_end: list[tuple[bool, bool]] = []

    async def main() -> tuple[EvResult, Evse]:
        config = station_config(pki_dir, tmp_path, _section())
        loop = asyncio.get_running_loop()
        async with Station(config, boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)

            def starve() -> None:
                driver = e.active
                assert driver is not None
                _block_until(_past_deadline(driver, loop))

            def on_step(step: Step) -> None:
                if step.response == "DC_ChargeLoopRes":
                    loop.call_soon(starve)

            def ended() -> bool:
                if e.ended and e.active is None:
                    at_end.append(_plant_state(plant))
                    return True
                return False

            # the EV stays silent for 1.5 s after its first charge loop: past the 0.5 s
            task = asyncio.create_task(
                run_ev(
                    _script(loop_interval=1.5),
                    host="::1",
                    port=e.ports["tls"],
                    tls=True,
                    cafile=pki_dir / "v2g20" / "root.pem",
                    on_step=on_step,
                )
            )
            await wait_until(ended, timeout=20)
            result = await asyncio.wait_for(task, 20)  # it finds the connection closed
            return result, e

    ev, e = run(main, timeout=60)
    end = e.ended[-1]
    assert end.end.reason is EndReason.SEQUENCE_TIMEOUT, end.end
    assert at_end == [(False, False)]  # contactors open, DC output off at the end
    records = _records(end.trace)
    assert not any(r.get("request") for r in records)  # nothing was waiting
    (last,) = [r for r in records if r["kind"] == "end"]
    assert "last response DC_ChargeLoopRes" in last["outstanding"], last
    assert "0 octets unread" in last["outstanding"], last
    assert ev.steps[-1].response == "DC_ChargeLoopRes"
    assert "DC_ChargeLoopReq" in ev.ended, ev.ended
    # the EV side names its outstanding request too
    assert ev.outstanding.startswith("DC_ChargeLoopReq sent at t="), ev.outstanding


def _plant_state(plant: Plant) -> tuple[bool, bool]:
    return plant.contactor_command, plant.dc_enabled


def test_a_response_sent_late_gives_the_ev_its_whole_sequence_timeout(
    pki_dir: Path, tmp_path: Path
) -> None:
    """The station starves between deciding a DC_ChargeLoopRes (its timers armed) and
    sending it (here in the SetDcTarget before it, as a slow HAL would): the EV that
    answers at its usual pace must not meet a deadline that ran out before it even had
    the response."""
    board, plant = build_board()
    stalls: list[float] = []

    async def main() -> tuple[EvResult, Evse]:
        config = station_config(pki_dir, tmp_path, _section())
        loop = asyncio.get_running_loop()
        state = {"loops": 0}

        def observe(evse_id: str, record: dict[str, Any]) -> None:
            if record.get("kind") == "rx" and record.get("name") == "DC_ChargeLoopReq":
                state["loops"] += 1
            elif record.get("action") == "SetDcTarget" and state["loops"] == 2:
                state["loops"] += 1  # (once)
                driver = e.active
                assert driver is not None
                _block_until(_past_deadline(driver, loop))  # before the response is sent
                stalls.append(loop.time())

        async with Station(config, boards={EVSE_ID: board}, observer=observe) as st:
            e = st.evse(EVSE_ID)
            result = await run_ev(
                _script(),
                host="::1",
                port=e.ports["tls"],
                tls=True,
                cafile=pki_dir / "v2g20" / "root.pem",
            )
            await wait_until(lambda: bool(e.ended) and e.active is None, timeout=10)
            return result, e

    ev, e = run(main, timeout=60)
    assert stalls  # the station did starve before its answer
    assert ev.ended == "done", (ev.ended, ev.outstanding)
    end = e.ended[-1]
    assert end.end.reason is EndReason.EV_STOP, end.end
    late = [r for r in _records(end.trace) if r["kind"] == "late"]
    # (under load other answers may go out a few ms late too: each is recorded)
    assert any(r.get("response") == "DC_ChargeLoopRes" and r["late"] > 0.5 for r in late), late
    assert not any(r.get("request") for r in late)  # the EV's requests all came in time
    assert not plant.contactor_command
    assert replay([str(end.trace)], prog="secc replay") == 0
