"""The ``gpiod`` board: relays and feedback on GPIO lines (libgpiod v2 Python bindings),
the CP oscillator on a sysfs PWM channel and the CP plateau on an IIO ADC channel.

Named ``gpiod_backend`` so that it does not shadow the ``gpiod`` package.  Options (from
the station's TOML ``[hal]`` table)::

    chip = "/dev/gpiochip0"
    contactor_out = 17        contactor_fb = 27        # line offsets
    lock_out = 22             lock_fb = 23             # optional
    rcd_in = 24                                        # optional, active = tripped
    active_low = [27]                                  # lines wired active-low
    pwm_chip = "/sys/class/pwm/pwmchip0"   pwm_channel = 0   pwm_period_ns = 1000000
    cp_adc = "/sys/bus/iio/devices/iio:device0/in_voltage0_raw"
    cp_adc_scale = 0.01       cp_adc_offset = -15.0    # volts = raw * scale + offset

Duty 1000 per mille is a constant high output (+12 V, X1); state F is a constant low
output (-12 V) with the PWM still enabled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from hal.api import Board
from hal.backends.feedback import wait_feedback
from hal.registry import check_options
from hal.types import (
    ContactorState,
    CpState,
    Duty,
    LockState,
    MissingExtraError,
    OperationFailedError,
    RcdStatus,
    UnavailableError,
)


def _int(options: Mapping[str, object], key: str, default: int | None = None) -> int | None:
    value = options.get(key, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise UnavailableError(f"gpiod backend: option {key} must be an integer")
    return value


class Lines:
    """The requested GPIO lines: outputs and inputs by offset, active-low handled here."""

    def __init__(
        self,
        mod: Any,
        chip: str,
        outputs: Sequence[int],
        inputs: Sequence[int],
        active_low: Sequence[int],
    ) -> None:
        self._mod = mod
        direction, value = mod.line.Direction, mod.line.Value
        config: dict[int, Any] = {}
        for off in outputs:
            config[off] = mod.LineSettings(
                direction=direction.OUTPUT,
                output_value=value.INACTIVE,
                active_low=off in active_low,
            )
        for off in inputs:
            config[off] = mod.LineSettings(direction=direction.INPUT, active_low=off in active_low)
        try:
            self.request = mod.request_lines(chip, config=config, consumer="secc-hal")
        except (OSError, ValueError) as exc:
            raise UnavailableError(f"cannot request GPIO lines on {chip}: {exc}") from exc

    def set(self, offset: int, active: bool) -> None:
        value = self._mod.line.Value
        try:
            self.request.set_value(offset, value.ACTIVE if active else value.INACTIVE)
        except OSError as exc:
            raise OperationFailedError(f"GPIO line {offset}: {exc}") from exc

    def get(self, offset: int) -> bool:
        try:
            return bool(self.request.get_value(offset) == self._mod.line.Value.ACTIVE)
        except OSError as exc:
            raise OperationFailedError(f"GPIO line {offset}: {exc}") from exc

    def release(self) -> None:
        self.request.release()


class SysfsPwm:
    """One channel of a Linux PWM chip through sysfs."""

    def __init__(self, chip: Path, channel: int, period_ns: int) -> None:
        self.dir = chip / f"pwm{channel}"
        self.period_ns = period_ns
        try:
            if not self.dir.exists():
                (chip / "export").write_text(f"{channel}\n")
            (self.dir / "period").write_text(f"{period_ns}\n")
            (self.dir / "enable").write_text("1\n")
        except OSError as exc:
            raise UnavailableError(f"PWM channel {self.dir}: {exc}") from exc
        self.high_ns = period_ns

    def write(self, high_ns: int) -> None:
        try:
            (self.dir / "duty_cycle").write_text(f"{high_ns}\n")
        except OSError as exc:
            raise OperationFailedError(f"PWM {self.dir}: {exc}") from exc
        self.high_ns = high_ns


class GpioControlPilot:
    def __init__(self, pwm: SysfsPwm, adc: Path, scale: float, offset: float) -> None:
        self._pwm, self._adc, self._scale, self._offset = pwm, adc, scale, offset
        self._duty: Duty | None = Duty.constant()
        pwm.write(pwm.period_ns)

    async def read_state(self) -> CpState:
        try:
            raw = float(self._adc.read_text().strip())
        except (OSError, ValueError) as exc:
            raise OperationFailedError(f"CP ADC {self._adc}: {exc}") from exc
        return CpState.from_voltage(raw * self._scale + self._offset)

    async def set_duty(self, duty: Duty) -> None:
        self._pwm.write(self._pwm.period_ns * duty.permille // 1000)
        self._duty = duty

    async def set_state_f(self) -> None:
        self._pwm.write(0)
        self._duty = None

    async def duty(self) -> Duty | None:
        return self._duty


class GpioContactors:
    def __init__(self, lines: Lines, out: int, fb: int, rcd: int | None) -> None:
        self._lines, self._out, self._fb, self._rcd = lines, out, fb, rcd

    async def close(self, timeout: float = 1.0) -> None:
        if self._rcd is not None and self._lines.get(self._rcd):
            raise OperationFailedError("RCD tripped: contactors cannot close")
        self._lines.set(self._out, True)
        await wait_feedback(self.feedback, ContactorState.CLOSED, timeout, "close contactors")

    async def open(self, timeout: float = 1.0) -> None:
        self._lines.set(self._out, False)
        await wait_feedback(self.feedback, ContactorState.OPEN, timeout, "open contactors")

    async def feedback(self) -> ContactorState:
        return ContactorState.CLOSED if self._lines.get(self._fb) else ContactorState.OPEN


class GpioLock:
    def __init__(self, lines: Lines, out: int, fb: int) -> None:
        self._lines, self._out, self._fb = lines, out, fb

    async def lock(self, timeout: float = 1.0) -> None:
        self._lines.set(self._out, True)
        await wait_feedback(self.state, LockState.LOCKED, timeout, "lock")

    async def unlock(self, timeout: float = 1.0) -> None:
        self._lines.set(self._out, False)
        await wait_feedback(self.state, LockState.UNLOCKED, timeout, "unlock")

    async def state(self) -> LockState:
        return LockState.LOCKED if self._lines.get(self._fb) else LockState.UNLOCKED


class GpioRcd:
    def __init__(self, lines: Lines, line: int) -> None:
        self._lines, self._line = lines, line

    async def read(self) -> RcdStatus:
        return RcdStatus(tripped=self._lines.get(self._line))

    async def self_test(self, timeout: float = 2.0) -> bool:
        return not self._lines.get(self._line)  # no test coil wired on plain GPIO boards


def _import_gpiod() -> ModuleType:
    try:
        import gpiod
    except ImportError as exc:
        raise MissingExtraError("gpiod", "gpiod", "gpiod") from exc
    return gpiod


def build_board(options: Mapping[str, object], gpiod_module: Any = None) -> Board:
    """The board from ``options``; ``gpiod_module`` replaces ``gpiod`` (tests, fakes)."""
    check_options("gpiod", options)
    mod = gpiod_module if gpiod_module is not None else _import_gpiod()
    chip = str(options.get("chip", "/dev/gpiochip0"))
    c_out, c_fb = _int(options, "contactor_out"), _int(options, "contactor_fb")
    if c_out is None or c_fb is None:
        raise UnavailableError("gpiod backend needs contactor_out and contactor_fb")
    l_out, l_fb, rcd = _int(options, "lock_out"), _int(options, "lock_fb"), _int(options, "rcd_in")
    raw_low = options.get("active_low", [])
    active_low = [int(x) for x in raw_low] if isinstance(raw_low, list | tuple) else []
    outputs = [c_out] + ([l_out] if l_out is not None else [])
    inputs = [c_fb] + [x for x in (l_fb, rcd) if x is not None]
    pwm_chip = Path(str(options.get("pwm_chip", "/sys/class/pwm/pwmchip0")))
    period = _int(options, "pwm_period_ns", 1_000_000) or 1_000_000
    adc = options.get("cp_adc")
    if not isinstance(adc, str):
        raise UnavailableError("gpiod backend needs cp_adc (the IIO file of the CP plateau)")
    scale, offset = options.get("cp_adc_scale", 1.0), options.get("cp_adc_offset", 0.0)
    if not isinstance(scale, int | float) or not isinstance(offset, int | float):
        raise UnavailableError("cp_adc_scale and cp_adc_offset must be numbers")
    pwm = SysfsPwm(pwm_chip, _int(options, "pwm_channel", 0) or 0, period)
    lines = Lines(mod, chip, outputs, inputs, active_low)

    async def closer() -> None:
        try:
            lines.set(c_out, False)
            pwm.write(0)
        finally:
            lines.release()

    return Board(
        name="gpiod",
        control_pilot=GpioControlPilot(pwm, Path(adc), float(scale), float(offset)),
        contactors=GpioContactors(lines, c_out, c_fb, rcd),
        lock=GpioLock(lines, l_out, l_fb) if l_out is not None and l_fb is not None else None,
        rcd=GpioRcd(lines, rcd) if rcd is not None else None,
        closer=closer,
    )


async def open_board(options: Mapping[str, object]) -> Board:
    board = build_board(options)
    await asyncio.sleep(0)
    return board
