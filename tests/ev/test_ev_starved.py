"""The EV simulator with the standard's message timeouts (``secc ev``: 0.5 s for a -20
DC_ChargeLoopRes) reads an answer that came while its own process was starved before it
acts on its timer: a late EV is not a silent station.

The EV runs on its own event loop (a thread); starvation is simulated deterministically
by blocking that loop, after its DC_ChargeLoopReq went out, until the station's answer
has been sent and the EV's 0.5 s have run out (conditions, not fixed sleeps).  The
station here gives the EV 5 s for its next request: the EV is the subject.  Before the
fix in :class:`secc.aio.ev_client._Link` the EV gave up with "no answer to
DC_ChargeLoopReq within 0.5 s (V2G_EVCC_Msg_Timeout)" every time."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from hal.backends.simulated import build_board
from secc.aio.ev_client import EvResult, run_ev
from secc.cli.ev import script20_for
from secc.core.actions import EndReason
from secc.core.config import Timers
from secc.runtime import Station
from tests.station.conftest import EVSE_ID, evse, run, station_config, wait_until

BOUND = 10.0  # s: the longest a blocking condition may take (never reached)


def test_a_starved_ev_reads_the_answer_that_came_before_its_timer(
    pki_dir: Path, tmp_path: Path
) -> None:
    section = evse(
        protocols=("iso20-dc",),
        energy_modes=("DC_extended",),
        iso20_allow_tcp=True,
        tls_port=-1,
        timers=Timers(sequence_timeout=5.0, charge_loop_sequence_timeout=5.0),
    )
    counts = {"rx": 0, "tx": 0}  # the station's DC_ChargeLoopReq / Res so far
    ev_loop: list[asyncio.AbstractEventLoop] = []
    done = threading.Event()
    result: list[EvResult] = []
    starved: list[float] = []

    def starve() -> None:  # on the EV's loop, which waits for its 2nd answer
        loop = ev_loop[0]
        start = loop.time()  # (the EV sent its request, and armed its timer, before)
        limit = time.monotonic() + BOUND
        while counts["tx"] < 2 or loop.time() < start + 0.55:
            assert time.monotonic() < limit
            time.sleep(0.002)
        starved.append(loop.time() - start)

    def observe(evse_id: str, record: dict[str, Any]) -> None:
        if record.get("name") == "DC_ChargeLoopReq" and record.get("kind") == "rx":
            counts["rx"] += 1
            if counts["rx"] == 2:  # before the station answers: the EV's loop runs it
                ev_loop[0].call_soon_threadsafe(starve)  # before it reads the answer
        elif record.get("name") == "DC_ChargeLoopRes" and record.get("kind") == "tx":
            counts["tx"] += 1

    def ev_thread(port: int) -> None:
        async def go() -> None:
            ev_loop.append(asyncio.get_running_loop())
            result.append(
                await run_ev(
                    replace(script20_for("dc", "dynamic", loops=4), loop_interval=0.05),
                    host="::1",
                    port=port,
                    tls=False,
                    response_timeout=None,  # the standard's: 0.5 s for DC_ChargeLoopReq
                )
            )

        try:
            asyncio.run(go())
        finally:
            done.set()

    async def main() -> EndReason:
        config = station_config(pki_dir, tmp_path, section)
        async with Station(config, boards={EVSE_ID: build_board()[0]}, observer=observe) as st:
            e = st.evse(EVSE_ID)
            threading.Thread(target=ev_thread, args=(e.ports["tcp"],), daemon=True).start()
            await wait_until(done.is_set, timeout=40)
            await wait_until(lambda: bool(e.ended) and e.active is None, timeout=10)
            return e.ended[-1].end.reason

    reason = run(main, timeout=60)
    assert starved  # the EV's loop did not run past its timer
    (ev,) = result
    assert ev.ended == "done", (ev.ended, ev.outstanding)
    assert reason is EndReason.EV_STOP
    loops = [s for s in ev.steps if s.response == "DC_ChargeLoopRes"]
    assert len(loops) == 4
    assert loops[1].ms > 500  # the second answer was read after the EV's own timer
