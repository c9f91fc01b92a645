"""The HAL self-test through the serial-mcu backend: the real backend and MCU link over a
pty, the MCU simulator on the other end (hal.testing.McuSimHarness); a contactor stuck
open in the simulated plant behind the MCU fails with its fix.  Also: the progress display
on a terminal, and a check that crashes is reported as FAIL without losing the report."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest

from hal.api import Board
from hal.backends.simulated import Plant, SimPlc
from hal.testing import McuSimHarness
from secc.cli.commission import PrintProgress
from secc.commission.context import Context, Deps
from secc.commission.model import Answers, Outcome, Result, Status
from secc.commission.runner import commission
from secc.commission.system import ClockSync
from secc.config import EvseSection
from tests.commission.conftest import StationDir


async def self_test(station: StationDir, plant: Plant) -> tuple[Result, dict[str, str]]:
    """The HAL check's result and the report's firmware section."""
    harness = McuSimHarness(plant)
    await harness.start()
    harness.board.plc = SimPlc(plant)  # the MCU has no PLC; a station pairs it with one

    async def open_board(evse: EvseSection) -> Board:
        return harness.board

    deps = Deps(clock_sync=lambda: ClockSync(True, "test"), open_board=open_board)
    try:
        ctx = Context(station.config, Answers(), deps)
        report = await commission(ctx, only=lambda c: c.name.startswith("hal"))
    finally:
        harness.stop.set()
        await harness.task
        from hal.backends.serial_mcu.simulator import close_pty

        close_pty(harness.master)
    (outcome,) = report.outcomes
    assert harness.sim.info is not None
    assert harness.board.firmware_version == harness.sim.info.firmware
    return outcome.result, dict(report.firmware)


@pytest.mark.parametrize("stuck", [False, True])
def test_self_test_over_the_serial_mcu(station: StationDir, stuck: bool) -> None:
    result, firmware = asyncio.run(
        asyncio.wait_for(self_test(station, Plant(contactor_stuck_open=stuck)), 60)
    )
    # the MCU simulator's GET_INFO answer reaches the report (default "sim-1.0.0")
    # (the station's config names its own backend; the board here is the serial-mcu one)
    (board_key,) = [k for k in firmware if k.startswith("DE*ABC*E1234567*1 board (")]
    assert firmware[board_key] == "sim-1.0.0"
    if stuck:
        assert result.status is Status.FAIL
        assert "contactor feedback stays OPEN after close" in result.reason
    else:
        assert result.status is Status.PASS, result
        assert "contactors close/open with feedback" in result.reason
        assert result.reason.startswith("board firmware sim-1.0.0; CP state A")


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_and_when_piped() -> None:
    outcome = Outcome("clock", "System clock", Result.fail("off", "set-ntp"), 0.1)
    tty = Tty()
    progress = PrintProgress(tty)
    progress.start(1, 3, "System clock")
    progress.done(1, 3, outcome)
    text = tty.getvalue()
    assert "[ 1/3] System clock ..." in text and "\033[31mFAIL\033[0m" in text
    piped = io.StringIO()
    progress = PrintProgress(piped)
    progress.start(1, 3, "System clock")
    progress.done(1, 3, outcome)
    assert piped.getvalue() == "FAIL System clock: off\n     fix: set-ntp\n"


def test_a_crashing_check_is_a_fail_and_the_rest_still_runs(station: StationDir) -> None:
    async def broken(evse: EvseSection) -> Board:
        raise RuntimeError("driver bug")

    deps = Deps(clock_sync=lambda: ClockSync(True, "test"), open_board=broken)
    report: Any = asyncio.run(commission(Context(station.config, Answers(), deps)))
    results = {o.name: o.result for o in report.outcomes}
    hal = results["hal[DE*ABC*E1234567*1]"]
    assert hal.status is Status.FAIL and "crashed: RuntimeError: driver bug" in hal.reason
    assert results["certs.secc"].status is Status.PASS


def test_interactive_questions() -> None:
    from secc.cli.commission import ask
    from secc.commission.model import UseCase

    replies = iter(["2", "n"])
    out = io.StringIO()
    answers = ask(Answers(), False, out, read=lambda prompt: next(replies))
    assert answers.use_case is UseCase.PRIVATE_MO and not answers.hal_self_test
    assert "private-emaid" in out.getvalue()
    answers = ask(Answers(), True, out, read=lambda prompt: "y")
    assert answers.use_case is UseCase.PUBLIC and answers.hal_self_test
