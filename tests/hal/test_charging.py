"""The charging glue end to end on the simulated board and on the serial-mcu backend."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from hal.backends.serial_mcu.protocol import LinkLost
from hal.backends.simulated import build_board
from hal.charging import ChargingRunner
from hal.control import ControlConfig, Phase
from hal.testing import mcu_sim_harness
from hal.types import CpState, Duty, Fault


def run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 30))


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.01)


def test_hlc_ev_gets_power_only_in_c_and_rcd_trip_opens_at_once() -> None:
    async def main() -> None:
        board, plant = build_board()
        runner = ChargingRunner(board, poll_s=0.005)
        await runner.start()
        plant.ev_state = CpState.B
        await until(lambda: runner.control.slac_active and plant.duty == Duty.hlc())
        await runner.hlc_started()
        await runner.power(True)
        assert not plant.contactor_command  # still B
        plant.ev_state = CpState.C
        await until(lambda: plant.contactor_command)
        plant.trip_rcd()
        report = await asyncio.wait_for(runner.faults.get(), 2)
        assert report.fault is Fault.RCD_TRIPPED
        assert not plant.contactor_command and plant.duty is None  # open, state F
        assert runner.control.phase is Phase.FAULT
        await runner.aclose()

    run(main)


def test_ev_without_hlc_falls_back_to_basic_charging() -> None:
    async def main() -> None:
        board, plant = build_board()
        plant.ev_hlc = False
        config = ControlConfig(slac_retries=1, slac_retry_pause_s=0.05, max_current_a=20)
        runner = ChargingRunner(board, config, poll_s=0.005, slac_timeout_s=0.1)
        await runner.start()
        plant.ev_state = CpState.B
        await until(lambda: runner.control.phase is Phase.BASIC)
        assert plant.duty == Duty.for_current(20)
        phases = [m.phase for m in runner.modes]
        assert phases[:4] == [  # first attempts
            Phase.HLC_WAIT,
            Phase.SLAC_PAUSE,
            Phase.HLC_WAIT,
            Phase.BASIC,
        ]
        plant.ev_state = CpState.C
        await until(lambda: plant.contactor_command)
        plant.ev_state = CpState.A
        await until(lambda: not plant.contactor_command and plant.duty == Duty.constant())
        await runner.aclose()

    run(main)


def test_welded_contactor_is_a_fault_fact() -> None:
    async def main() -> None:
        board, plant = build_board()
        runner = ChargingRunner(board, ControlConfig(hlc_enabled=False), poll_s=0.005)
        await runner.start()
        plant.ev_state = CpState.C
        await until(lambda: plant.contactor_command)
        plant.contactor_welded = True
        plant.ev_state = CpState.B  # the EV stops: open, but the contacts stay welded
        report = await asyncio.wait_for(runner.faults.get(), 3)
        assert report.fault is Fault.CONTACTOR_MISMATCH and "closed" in report.detail
        assert not plant.contactor_command
        await runner.aclose()

    run(main)


def test_mcu_heartbeat_loss_is_a_fault_over_the_serial_backend() -> None:
    async def main() -> None:
        h = await mcu_sim_harness()
        runner = ChargingRunner(h.board, ControlConfig(hlc_enabled=False), poll_s=0.01)
        h.conn.listeners.append(
            lambda fact: (
                isinstance(fact, LinkLost)
                and asyncio.ensure_future(runner.raise_fault(Fault.MCU_HEARTBEAT_LOST, str(fact)))
            )
        )
        await runner.start()
        h.plant.ev_state = CpState.C
        await until(lambda: h.conn.status is not None and h.conn.status.contactor_fb)
        await asyncio.sleep(0.05)  # let close() see its feedback and return
        h.stop.set()  # the MCU stops talking
        await h.task
        report = await asyncio.wait_for(runner.faults.get(), 3)
        assert report.fault is Fault.MCU_HEARTBEAT_LOST
        assert runner.control.phase is Phase.FAULT and not runner.control.closed
        await runner.aclose()
        h.task = asyncio.ensure_future(asyncio.sleep(0))
        await h.aclose()

    run(main)
