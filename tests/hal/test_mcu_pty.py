"""The serial-mcu backend against the MCU simulator over a real pty pair."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from hal import registry
from hal.api import Board
from hal.backends.serial_mcu.backend import board_on, connect
from hal.backends.serial_mcu.link import McuConnection
from hal.backends.serial_mcu.protocol import (
    PROTOCOL_VERSION,
    Info,
    LinkLost,
    LinkTiming,
    McuRebooted,
    SetCp,
)
from hal.backends.serial_mcu.simulator import (
    ByteFaults,
    McuSimulator,
    close_pty,
    open_pty,
    serve_fd,
)
from hal.types import ContactorState, CpState, Duty, UnavailableError


@dataclass
class Rig:
    sim: McuSimulator
    board: Board
    conn: McuConnection
    stop: asyncio.Event
    task: asyncio.Task[None]


@asynccontextmanager
async def rig(
    heartbeat_ms: int = 300,
    faults: tuple[ByteFaults, ByteFaults] | None = None,
    timing: LinkTiming | None = None,
    sim: McuSimulator | None = None,
) -> AsyncIterator[Rig]:
    sim = sim or McuSimulator(status_period_s=0.02, heartbeat_timeout_s=heartbeat_ms / 1000)
    master, path = open_pty()
    stop = asyncio.Event()
    fin, fout = faults or (None, None)
    task = asyncio.create_task(serve_fd(sim, master, stop=stop, faults_in=fin, faults_out=fout))
    timing = timing or LinkTiming(heartbeat_s=0.05, heartbeat_timeout_s=heartbeat_ms / 1000)
    conn = McuConnection.open_serial(path, timing=timing)
    await connect(conn, heartbeat_ms)
    board = await board_on(conn)
    try:
        yield Rig(sim, board, conn, stop, task)
    finally:
        await board.aclose()
        stop.set()
        await task
        close_pty(master)


def run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 30))


def test_host_silence_opens_contactors_within_the_configured_time() -> None:
    async def main() -> None:
        async with rig(heartbeat_ms=300) as r:
            r.sim.plant.ev_state = CpState.C
            await r.board.contactors.close()
            assert r.sim.plant.contactor_command
            # Linux goes silent: the link task dies without a word to the MCU
            r.conn.abort()
            await asyncio.sleep(0.6)
            assert r.sim.safe and not r.sim.plant.contactor_command
            assert r.sim.plant.contactor_feedback is ContactorState.OPEN
            assert r.sim.safe_since is not None
            late = r.sim.safe_since - r.sim.link.last_host_rx
            # configured 300 ms, plus at most one simulator wake-up (status period)
            assert 0.3 <= late <= 0.3 + 0.05, late

    run(main)


def test_mcu_reset_is_reported_and_the_board_keeps_working() -> None:
    async def main() -> None:
        async with rig() as r:
            await r.board.control_pilot.set_duty(Duty.hlc())
            r.sim.reset(asyncio.get_running_loop().time())
            fact = await asyncio.wait_for(r.conn.facts.get(), 2)
            while not isinstance(fact, McuRebooted):
                fact = await asyncio.wait_for(r.conn.facts.get(), 2)
            assert r.sim.plant.duty == Duty.constant()  # the MCU booted into X1
            await r.board.control_pilot.set_duty(Duty.for_current(10))
            assert r.sim.plant.duty == Duty.for_current(10)
            assert await r.board.control_pilot.duty() is not None

    run(main)


def test_faulty_serial_line_runs_every_command_exactly_once() -> None:
    async def main() -> None:
        mk = lambda seed: ByteFaults(  # noqa: E731
            drop=0.004, duplicate=0.004, corrupt=0.004, reorder=0.1, rng=random.Random(seed)
        )
        timing = LinkTiming(heartbeat_s=0.05, heartbeat_timeout_s=1.0, max_tries=30)
        async with rig(heartbeat_ms=1000, faults=(mk(1), mk(2)), timing=timing) as r:
            duties = [100 + 10 * i for i in range(25)]
            for d in duties:
                await r.board.control_pilot.set_duty(Duty(d))
            ran = [
                c.duty_permille
                for _b, _s, c in r.sim.executed
                if isinstance(c, SetCp) and c.duty_permille >= 100
            ]
            assert ran == duties
            assert r.conn.dropped_frames + r.sim.link.reader.dropped > 0

    run(main)


def test_mcu_silence_is_link_lost_and_reads_become_unavailable() -> None:
    async def main() -> None:
        async with rig(heartbeat_ms=300) as r:
            assert await r.board.control_pilot.read_state() is CpState.A
            r.stop.set()
            await r.task
            fact = await asyncio.wait_for(r.conn.facts.get(), 2)
            while not isinstance(fact, LinkLost):
                fact = await asyncio.wait_for(r.conn.facts.get(), 2)
            with pytest.raises(UnavailableError):
                await r.board.control_pilot.read_state()
            with pytest.raises(UnavailableError):
                await r.board.contactors.close(timeout=0.3)
            r.task = asyncio.create_task(asyncio.sleep(0))

    run(main)


def test_registry_opens_the_serial_backend_on_a_port() -> None:
    async def main() -> None:
        sim = McuSimulator(status_period_s=0.02)
        master, path = open_pty()
        stop = asyncio.Event()
        task = asyncio.create_task(serve_fd(sim, master, stop=stop))
        board = await registry.open_board("serial-mcu", {"port": path, "heartbeat_timeout_ms": 400})
        try:
            assert board.name == "serial-mcu"
            assert sim.heartbeat_timeout_s == 0.4  # CONFIG reached the MCU
            sim.plant.ev_state = CpState.B
            await asyncio.sleep(0.1)
            assert await board.control_pilot.read_state() is CpState.B
        finally:
            await board.aclose()
            stop.set()
            await task
            close_pty(master)
        with pytest.raises(UnavailableError, match="port"):
            await registry.open_board("serial-mcu", {})

    run(main)


# ------------------------------------------------------------------ GET_INFO over the pty


def test_board_reports_the_mcu_firmware_version() -> None:
    async def main() -> None:
        sim = McuSimulator(status_period_s=0.02, firmware="1.4.2", hardware_id=0xCAFE0001)
        async with rig(sim=sim) as r:
            assert r.board.firmware_version == "1.4.2"
            assert r.conn.info == Info(PROTOCOL_VERSION, 0xCAFE0001, "1.4.2")

    run(main)


def test_firmware_version_arrives_through_a_faulty_serial_line() -> None:
    async def main() -> None:
        mk = lambda seed: ByteFaults(drop=0.01, corrupt=0.01, rng=random.Random(seed))  # noqa: E731
        timing = LinkTiming(heartbeat_s=0.05, heartbeat_timeout_s=1.0, max_tries=30)
        sim = McuSimulator(status_period_s=0.02, heartbeat_timeout_s=1.0, firmware="3.2.1-lab")
        async with rig(heartbeat_ms=1000, faults=(mk(3), mk(4)), timing=timing, sim=sim) as r:
            assert r.board.firmware_version == "3.2.1-lab"
            for _ in range(15):
                info = await r.conn.query_info(timeout=5.0)
                assert info is not None and info.firmware == "3.2.1-lab"
            assert r.conn.dropped_frames + r.sim.link.reader.dropped > 0

    run(main)


def test_mcu_without_get_info_gives_no_version_a_log_line_and_a_working_board(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        sim = McuSimulator(status_period_s=0.02, firmware=None)
        async with rig(sim=sim) as r:
            assert r.board.firmware_version is None and r.conn.info is None
            await r.board.control_pilot.set_duty(Duty.hlc())
            assert r.sim.plant.duty == Duty.hlc()

    with caplog.at_level(logging.INFO, logger="hal.backends.serial_mcu"):
        run(main)
    assert "MCU firmware version unknown: the MCU answered GET_INFO with ACK(MALFORMED)" in (
        caplog.text
    )


def test_malformed_version_string_is_a_clear_error_and_the_board_works(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.hal.test_mcu_info import BadInfoMcu, info_payload

    async def main() -> None:
        sim = BadInfoMcu(info_payload(b"v" * 40), status_period_s=0.02)
        async with rig(sim=sim) as r:
            assert r.board.firmware_version is None
            await r.board.control_pilot.set_duty(Duty.for_current(16))
            assert r.sim.plant.duty == Duty.for_current(16)

    with caplog.at_level(logging.INFO, logger="hal.backends.serial_mcu"):
        run(main)
    assert "malformed INFO: firmware version of 40 bytes (1..32 allowed)" in caplog.text


def test_firmware_version_is_asked_again_after_an_mcu_reboot() -> None:
    """A firmware update ends in a reboot: the board then shows the new version."""

    async def main() -> None:
        sim = McuSimulator(status_period_s=0.02, firmware="1.4.2")
        async with rig(sim=sim) as r:
            assert r.board.firmware_version == "1.4.2"
            r.sim.info = Info(PROTOCOL_VERSION, 0x53494D31, "1.5.0")
            r.sim.reset(asyncio.get_running_loop().time())
            while r.board.firmware_version != "1.5.0":
                await asyncio.sleep(0.02)  # bounded by run()'s 30 s
            assert r.conn.info is not None and r.conn.info.firmware == "1.5.0"
            await r.board.control_pilot.set_duty(Duty.hlc())  # and it works as before
            assert r.sim.plant.duty == Duty.hlc()

    run(main)
