"""One conformance suite every HAL backend passes, importable by out-of-tree board makers.

A backend is checked through a :class:`Harness`: the board under test plus a handle on
the physical side (the EV's CP resistors, the contactor coil, fault knobs).  A board maker
writes a harness for a bench rig (or a hardware-in-the-loop fixture) and runs::

    results = asyncio.run(hal.testing.run_conformance(make_my_harness))
    assert all(r.outcome != "failed" for r in results), results

or parametrises pytest over :data:`CHECKS` with :func:`run_check`.  Checks a harness
cannot drive (no weld knob on a real rig) raise :class:`NotSupportedError` and are
reported as skipped, with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from hal.api import Board, DcOutputDischarge
from hal.backends.simulated import Plant, build_board
from hal.types import (
    ContactorState,
    ContactorStuckError,
    ContactorWeldedError,
    CpState,
    DcLimits,
    Duty,
    HalError,
    IsolationStatus,
    LockState,
    MeterReading,
    OperationFailedError,
)


class NotSupportedError(Exception):
    """The harness cannot drive this part of the physical world."""


class Harness(Protocol):
    board: Board

    async def set_ev_state(self, state: CpState) -> None:
        """Make the EV present ``state`` (A..D) on the CP."""
        ...

    async def settle(self) -> None:
        """Wait until a change of the physical side is visible to the board."""
        ...

    def observed_duty(self) -> Duty | None:
        """What the hardware drives on the CP right now (None: -12 V, state F)."""
        ...

    def coil_energised(self) -> bool:
        """Whether the contactor coil is energised right now."""
        ...

    async def weld_contactors(self, welded: bool) -> None: ...

    async def stick_contactors(self, stuck: bool) -> None: ...

    async def trip_rcd(self) -> None: ...

    async def aclose(self) -> None: ...


HarnessFactory = Callable[[], Awaitable[Harness]]
Check = Callable[[Harness], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    outcome: str  # "passed" / "failed" / "skipped"
    detail: str = ""


class CheckFailedError(AssertionError):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailedError(message)


# ------------------------------------------------------------------ checks


async def check_cp_states(h: Harness) -> None:
    for state in (CpState.A, CpState.B, CpState.C, CpState.D, CpState.B, CpState.A):
        await h.set_ev_state(state)
        await h.settle()
        got = await h.board.control_pilot.read_state()
        expect(got is state, f"EV presents {state.value}, board reads {got.value}")


async def check_duty(h: Harness) -> None:
    cp = h.board.control_pilot
    for duty in (Duty.hlc(), Duty.for_current(16), Duty.for_current(32), Duty.constant()):
        await cp.set_duty(duty)
        await h.settle()
        expect(h.observed_duty() == duty, f"set {duty}, hardware drives {h.observed_duty()}")
        expect(await cp.duty() == duty, f"set {duty}, board reports {await cp.duty()}")


async def check_state_f(h: Harness) -> None:
    await h.set_ev_state(CpState.B)
    await h.board.control_pilot.set_state_f()
    await h.settle()
    expect(h.observed_duty() is None, "state F: the hardware must drive -12 V")
    got = await h.board.control_pilot.read_state()
    expect(got is CpState.F, f"state F driven, board reads {got.value}")
    await h.board.control_pilot.set_duty(Duty.constant())
    await h.settle()
    expect(await h.board.control_pilot.read_state() is CpState.B, "X1 after F: reads B again")


async def check_contactors(h: Harness) -> None:
    c = h.board.contactors
    await h.set_ev_state(CpState.C)
    await c.close(timeout=1.0)
    expect(h.coil_energised(), "close(): the coil is not energised")
    expect(await c.feedback() is ContactorState.CLOSED, "close(): feedback not CLOSED")
    await c.open(timeout=1.0)
    expect(not h.coil_energised(), "open(): the coil is still energised")
    expect(await c.feedback() is ContactorState.OPEN, "open(): feedback not OPEN")


async def check_welded(h: Harness) -> None:
    c = h.board.contactors
    await c.close(timeout=1.0)
    await h.weld_contactors(True)
    try:
        await c.open(timeout=0.3)
    except ContactorWeldedError:
        pass
    else:
        raise CheckFailedError("open() on welded contacts must raise ContactorWeldedError")
    expect(not h.coil_energised(), "a welded contactor must still have its coil released")
    await h.weld_contactors(False)


async def check_stuck(h: Harness) -> None:
    await h.stick_contactors(True)
    try:
        await h.board.contactors.close(timeout=0.3)
    except ContactorStuckError:
        pass
    else:
        raise CheckFailedError("close() on stuck contacts must raise ContactorStuckError")
    await h.stick_contactors(False)
    await h.board.contactors.open(timeout=1.0)


async def check_rcd(h: Harness) -> None:
    if h.board.rcd is None:
        raise NotSupportedError("board has no RCD monitor")
    expect(not (await h.board.rcd.read()).tripped, "RCD reads tripped before any trip")
    await h.trip_rcd()
    await h.settle()
    expect((await h.board.rcd.read()).tripped, "RCD trip not reported")
    try:
        await h.board.contactors.close(timeout=0.3)
    except OperationFailedError:
        pass
    else:
        raise CheckFailedError("close() with a tripped RCD must fail")
    expect(not h.coil_energised(), "coil energised with a tripped RCD")


async def check_lock(h: Harness) -> None:
    lock = h.board.lock
    if lock is None:
        raise NotSupportedError("board has no cable lock")
    await lock.lock(timeout=1.0)
    expect(await lock.state() is LockState.LOCKED, "lock(): feedback not LOCKED")
    await lock.unlock(timeout=1.0)
    expect(await lock.state() is LockState.UNLOCKED, "unlock(): feedback not UNLOCKED")


async def check_meter(h: Harness) -> None:
    if h.board.meter is None:
        raise NotSupportedError("board has no meter")
    reading = await h.board.meter.read()
    expect(isinstance(reading, MeterReading), "meter must return a MeterReading")
    expect(reading.energy_wh >= 0 and len(reading.voltage_v) >= 1, f"odd reading {reading}")
    expect(reading.energy_export_wh >= 0, f"negative export register {reading}")


async def check_dc_supply(h: Harness) -> None:
    dc = h.board.dc_supply
    if dc is None:
        raise NotSupportedError("board has no DC supply")
    lim = await dc.limits()
    expect(lim.min_voltage_v < lim.max_voltage_v, f"odd limits {lim}")
    try:
        await dc.set_target(lim.max_voltage_v + 1, lim.min_current_a)
    except OperationFailedError:
        pass
    else:
        raise CheckFailedError("a target above max_voltage_v must raise OperationFailedError")
    volts = (lim.min_voltage_v + lim.max_voltage_v) / 2
    await dc.set_target(volts, lim.min_current_a)
    await dc.enable(True)
    await h.settle()
    present = await dc.present()
    expect(present.enabled and abs(present.voltage_v - volts) < 0.05 * volts, f"{present}")
    await dc.enable(False)
    expect(not (await dc.present()).enabled, "enable(False): still enabled")
    await _check_output_discharge(h, volts)
    await _check_dc_discharge(h, lim, volts)


async def _check_output_discharge(h: Harness, volts: float) -> None:
    """A module with ``discharge_output`` (run after the insulation test): from an output
    at ``volts``, switched off and discharged below 60 V when it returns."""
    dc = h.board.dc_supply
    if not isinstance(dc, DcOutputDischarge):
        return  # optional: such a module is only switched off
    assert dc is not None
    await dc.set_target(volts, 0.0)
    await dc.enable(True)
    await h.settle()
    await dc.enable(False)
    await dc.discharge_output(5.0)
    present = await dc.present()
    expect(not present.enabled and present.voltage_v < 60.0, f"discharge_output: {present}")


async def _check_dc_discharge(h: Harness, lim: DcLimits, volts: float) -> None:
    """A negative target current is a discharge: a bidirectional module follows it within
    its discharge limits; a unidirectional one (no discharge limits) refuses it."""
    dc = h.board.dc_supply
    assert dc is not None
    if not lim.bidirectional:
        try:
            await dc.set_target(volts, -1.0)
        except OperationFailedError:
            return
        raise CheckFailedError("a module without discharge limits must refuse a negative target")
    try:
        await dc.set_target(volts, -(lim.max_discharge_current_a + 1))
    except OperationFailedError:
        pass
    else:
        raise CheckFailedError("a discharge above max_discharge_current_a must be refused")
    amps = min(lim.max_discharge_current_a, lim.max_discharge_power_w / volts) / 2
    await dc.set_target(volts, -amps)
    await dc.enable(True)
    await h.settle()
    present = await dc.present()
    expect(present.enabled and present.current_a < 0, f"discharge {-amps} A: {present}")
    await dc.enable(False)


async def check_isolation(h: Harness) -> None:
    imd = h.board.isolation
    if imd is None:
        raise NotSupportedError("board has no isolation monitor")
    await imd.start()
    await h.settle()
    reading = await imd.read()
    expect(reading.status is IsolationStatus.VALID, f"healthy insulation reads {reading}")
    await imd.stop()


CHECKS: dict[str, Check] = {
    "cp_states": check_cp_states,
    "duty": check_duty,
    "state_f": check_state_f,
    "contactors": check_contactors,
    "contactor_welded": check_welded,
    "contactor_stuck": check_stuck,
    "rcd": check_rcd,
    "lock": check_lock,
    "meter": check_meter,
    "dc_supply": check_dc_supply,
    "isolation": check_isolation,
}


async def run_check(name: str, factory: HarnessFactory) -> CheckResult:
    harness = await factory()
    try:
        await CHECKS[name](harness)
    except NotSupportedError as exc:
        return CheckResult(name, "skipped", str(exc))
    except (CheckFailedError, HalError) as exc:
        return CheckResult(name, "failed", f"{type(exc).__name__}: {exc}")
    finally:
        with contextlib.suppress(HalError):
            await harness.board.contactors.open(timeout=0.5)
        await harness.aclose()
    return CheckResult(name, "passed")


async def run_conformance(factory: HarnessFactory) -> list[CheckResult]:
    return [await run_check(name, factory) for name in CHECKS]


# ------------------------------------------------------------------ in-tree harnesses


class PlantHarness:
    """Physical side = a :class:`Plant`; the base of the simulated and MCU harnesses."""

    board: Board

    def __init__(self, plant: Plant) -> None:
        self.plant = plant

    async def set_ev_state(self, state: CpState) -> None:
        self.plant.ev_state = state

    async def settle(self) -> None:
        await asyncio.sleep(0)

    def observed_duty(self) -> Duty | None:
        return self.plant.duty

    def coil_energised(self) -> bool:
        return self.plant.contactor_command

    async def weld_contactors(self, welded: bool) -> None:
        self.plant.contactor_welded = welded

    async def stick_contactors(self, stuck: bool) -> None:
        self.plant.contactor_stuck_open = stuck

    async def trip_rcd(self) -> None:
        self.plant.trip_rcd()

    async def aclose(self) -> None:
        await self.board.aclose()


async def simulated_harness() -> PlantHarness:
    board, plant = build_board()
    h = PlantHarness(plant)
    h.board = board
    return h


class McuSimHarness(PlantHarness):
    """The serial-mcu backend over a pty pair, the MCU simulator on the other end."""

    async def start(self, heartbeat_timeout_ms: int = 500) -> None:
        from hal.backends.serial_mcu.backend import board_on, connect
        from hal.backends.serial_mcu.link import McuConnection
        from hal.backends.serial_mcu.simulator import McuSimulator, open_pty, serve_fd

        self.sim = McuSimulator(self.plant, status_period_s=0.02)
        self.master, path = open_pty()
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(serve_fd(self.sim, self.master, stop=self.stop))
        self.conn = McuConnection.open_serial(path)
        await connect(self.conn, heartbeat_timeout_ms)
        self.board = await board_on(self.conn)

    async def settle(self) -> None:
        # two STATUS periods: the next STATUS was sampled after the change
        await asyncio.sleep(2 * self.sim.status_period_s + 0.01)

    async def aclose(self) -> None:
        await self.board.aclose()
        self.stop.set()
        await self.task
        from hal.backends.serial_mcu.simulator import close_pty

        close_pty(self.master)


async def mcu_sim_harness() -> McuSimHarness:
    h = McuSimHarness(Plant())
    await h.start()
    return h


HARNESSES: dict[str, HarnessFactory] = {
    "simulated": simulated_harness,
    "serial-mcu": mcu_sim_harness,
}
