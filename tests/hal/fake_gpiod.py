"""A fake GPIO chip with the small subset of the libgpiod v2 Python API the gpiod backend
uses (``request_lines``, ``LineSettings``, ``line.Direction``, ``line.Value``, and the
request's ``set_value`` / ``get_value`` / ``release``), wired to a simulated Plant.

Used because the ``gpio-sim`` kernel module is not available in this sandbox; the
conformance test says so in its skip text for the real-chip variant.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hal.api import Board
from hal.backends.gpiod_backend import build_board
from hal.backends.simulated import Plant
from hal.types import ContactorState, CpState, Duty, LockState


class Direction(enum.Enum):
    AS_IS = 1
    INPUT = 2
    OUTPUT = 3


class Value(enum.Enum):
    INACTIVE = 0
    ACTIVE = 1


@dataclass
class LineSettings:
    direction: Direction = Direction.AS_IS
    output_value: Value = Value.INACTIVE
    active_low: bool = False


CONTACTOR_OUT, CONTACTOR_FB, LOCK_OUT, LOCK_FB, RCD_IN = 5, 6, 7, 8, 9


class FakeChip:
    """Physical levels of the lines, derived from / applied to the plant."""

    def __init__(self, plant: Plant) -> None:
        self.plant = plant
        self.requested: dict[int, LineSettings] = {}
        self.released = False

    def physical_in(self, offset: int) -> bool:
        p = self.plant
        if offset == CONTACTOR_FB:  # wired active-low: closed aux contact pulls to ground
            return p.contactor_feedback is not ContactorState.CLOSED
        if offset == LOCK_FB:
            return p.lock_feedback is LockState.LOCKED
        if offset == RCD_IN:
            return p.rcd_tripped
        raise OSError(22, f"line {offset} is not an input")

    def drive(self, offset: int, level: bool) -> None:
        if offset == CONTACTOR_OUT:
            self.plant.contactor_command = level and not self.plant.rcd_tripped
        elif offset == LOCK_OUT:
            self.plant.lock_command = level
        else:
            raise OSError(22, f"line {offset} is not an output")


class FakeRequest:
    def __init__(self, chip: FakeChip, config: dict[int, LineSettings]) -> None:
        self.chip = chip
        self.config = config
        for off, s in config.items():
            if s.direction is Direction.OUTPUT:
                self.set_value(off, s.output_value)

    def _logical(self, off: int, level: bool) -> bool:
        return level != self.config[off].active_low

    def set_value(self, offset: int, value: Value) -> None:
        if self.config[offset].direction is not Direction.OUTPUT:
            raise OSError(1, "not an output")
        self.chip.drive(offset, self._logical(offset, value is Value.ACTIVE))

    def get_value(self, offset: int) -> Value:
        level = self.chip.physical_in(offset)
        return Value.ACTIVE if self._logical(offset, level) else Value.INACTIVE

    def release(self) -> None:
        self.chip.released = True


def fake_module(chip: FakeChip) -> Any:
    def request_lines(path: str, config: dict[int, LineSettings], consumer: str) -> FakeRequest:
        if path != "/dev/gpiochip-fake":
            raise OSError(2, f"no such chip {path}")
        chip.requested = dict(config)
        return FakeRequest(chip, config)

    return SimpleNamespace(
        request_lines=request_lines,
        LineSettings=LineSettings,
        line=SimpleNamespace(Direction=Direction, Value=Value),
    )


SCALE, OFFSET = 0.01, -15.0  # volts = raw * 0.01 - 15


class FakeGpioHarness:
    """Board = gpiod backend over the fake chip, a tmp sysfs PWM dir and an ADC file."""

    board: Board

    def __init__(self, root: Path) -> None:
        self.plant = Plant()
        self.chip = FakeChip(self.plant)
        self.pwm = root / "pwmchip0"
        (self.pwm / "pwm0").mkdir(parents=True)
        (self.pwm / "export").write_text("")
        self.adc = root / "in_voltage0_raw"
        self._sample()
        options = {
            "chip": "/dev/gpiochip-fake",
            "contactor_out": CONTACTOR_OUT,
            "contactor_fb": CONTACTOR_FB,
            "lock_out": LOCK_OUT,
            "lock_fb": LOCK_FB,
            "rcd_in": RCD_IN,
            "active_low": [CONTACTOR_FB],
            "pwm_chip": str(self.pwm),
            "pwm_period_ns": 1_000_000,
            "cp_adc": str(self.adc),
            "cp_adc_scale": SCALE,
            "cp_adc_offset": OFFSET,
        }
        self.board = build_board(options, gpiod_module=fake_module(self.chip))
        self._task = asyncio.create_task(self._adc_loop())

    def observed_duty(self) -> Duty | None:
        period = int((self.pwm / "pwm0" / "period").read_text())
        high = int((self.pwm / "pwm0" / "duty_cycle").read_text())
        enabled = (self.pwm / "pwm0" / "enable").read_text().strip() == "1"
        if not enabled or high == 0:
            return None
        return Duty(round(1000 * high / period))

    def _sample(self) -> None:
        """The ADC: CP plateau from the EV's state and what the PWM drives."""
        with contextlib.suppress(FileNotFoundError, ValueError):
            self.plant.duty = self.observed_duty()
        raw = round((self.plant.cp_volts - OFFSET) / SCALE)
        tmp = self.adc.with_suffix(".tmp")
        tmp.write_text(f"{raw}\n")
        os.replace(tmp, self.adc)

    async def _adc_loop(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(0.002)

    async def set_ev_state(self, state: CpState) -> None:
        self.plant.ev_state = state

    async def settle(self) -> None:
        await asyncio.sleep(0.01)

    def coil_energised(self) -> bool:
        return self.plant.contactor_command

    async def weld_contactors(self, welded: bool) -> None:
        self.plant.contactor_welded = welded

    async def stick_contactors(self, stuck: bool) -> None:
        self.plant.contactor_stuck_open = stuck

    async def trip_rcd(self) -> None:
        self.plant.trip_rcd()

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.board.aclose()
