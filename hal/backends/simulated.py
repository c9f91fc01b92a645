"""The simulated board: a first-class backend for ``secc demo``, tests and lab work.

:class:`Plant` is the physical world (the EV's CP resistors, relays with auxiliary
contacts, the cable lock, the RCD, a DC supply and a meter).  It is synchronous and has
knobs for fault injection (weld a contactor, make it stick, trip the RCD).  The MCU
simulator reuses it, so the serial backend and this one behave alike.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import field
from pathlib import Path

from hal.api import Board
from hal.backends.feedback import wait_feedback
from hal.hooks import simulated_board_hooks
from hal.records import record
from hal.registry import check_options
from hal.types import (
    ContactorState,
    CpState,
    DcLimits,
    DcPresent,
    Duty,
    IsolationReading,
    IsolationStatus,
    LockState,
    MeterReading,
    OperationFailedError,
    PlcState,
    PlcStatus,
    RcdStatus,
    TokenRead,
)


@record(frozen=False)
class Plant:
    """The physical side: what the EV does and how the relays behave."""

    ev_state: CpState = CpState.A  # the state the EV's resistors present
    duty: Duty | None = field(default_factory=Duty.constant)  # None: EVSE drives -12 V
    contactor_command: bool = False
    contactor_welded: bool = False
    contactor_stuck_open: bool = False
    lock_command: bool = False
    lock_jammed: bool = False
    rcd_tripped: bool = False
    residual_ma: float = 0.0
    ev_hlc: bool = True  # the EV answers SLAC (simulated PLC)
    # the matched EV's modem has left the logical network (what the SLAC backend reports
    # as "link down" from the modem's network info) until cleared
    plc_link_down: bool = False
    isolation_ohm: float = 10e6
    # an insulation test under way (SimIsolation.start); it ends at the next reading of
    # the board (settle), the module still on at the test voltage until commanded off
    isolation_test: bool = False
    # how often the output was discharged (SimDcSupply.discharge_output)
    output_discharges: int = 0
    dc_target: tuple[float, float] = (0.0, 0.0)
    dc_enabled: bool = False
    load_w: float = 7400.0  # AC: what the EV draws while ready; negative: it discharges
    energy_wh: float = 0.0  # import register: energy delivered to the EV
    energy_export_wh: float = 0.0  # export register: energy the EV fed back
    # None: the meter integrates only in advance() (tests, the demo drive the clock);
    # a monotonic clock (``open_board``, i.e. `secc run`): every meter read integrates
    # the power delivered since the previous read
    clock: Callable[[], float] | None = None
    _last_read: float | None = None
    # tokens presented at the station's reader and not read yet (present_token)
    tokens: deque[TokenRead] = field(default_factory=deque)

    @property
    def cp_volts(self) -> float:
        """Positive plateau at the EVSE's measuring point."""
        if self.duty is None:
            return -12.0
        if self.ev_state is CpState.F:
            return -12.0
        return self.ev_state.nominal_volts

    @property
    def contactor_feedback(self) -> ContactorState:
        if self.contactor_welded:
            return ContactorState.CLOSED
        if self.contactor_stuck_open:
            return ContactorState.OPEN
        return ContactorState.CLOSED if self.contactor_command else ContactorState.OPEN

    @property
    def lock_feedback(self) -> LockState:
        if self.lock_jammed:
            return LockState.UNKNOWN
        return LockState.LOCKED if self.lock_command else LockState.UNLOCKED

    @property
    def power_w(self) -> float:
        """The power flowing now (negative: from the EV): the DC supply's output while it
        is enabled, else the AC load while the contactors are closed and the EV is ready."""
        if self.contactor_feedback is not ContactorState.CLOSED:
            return 0.0
        if self.dc_enabled:
            return self.dc_target[0] * self.dc_target[1]
        return self.load_w if self.ev_state.ready else 0.0

    def advance(self, seconds: float) -> None:
        """Integrate the meter over ``seconds`` at the power flowing now: into the import
        register while the EV charges, into the export register while it discharges."""
        wh = self.power_w * max(0.0, seconds) / 3600.0
        if wh >= 0:
            self.energy_wh += wh
        else:
            self.energy_export_wh -= wh

    def tick(self) -> None:
        """With a ``clock``: integrate the meter up to now."""
        if self.clock is None:
            return
        now = self.clock()
        if self._last_read is not None:
            self.advance(now - self._last_read)
        self._last_read = now

    def settle(self) -> None:
        """Bring the physical side up to the moment of a reading.

        An insulation test (the cable check) applies the module's voltage at once here,
        so it is over at the first reading after it started: the IMD has its result and
        keeps monitoring.  The module stays on at the test voltage, as a real one does,
        until it is commanded off and its output discharged
        (``SimDcSupply.discharge_output``, which the runtime sends at the end of the
        test), so that the pre-charge that follows starts from a discharged output."""
        if self.isolation_test:
            self.isolation_test = False

    def present_token(self, id_token: str, kind: str = "ISO14443") -> None:
        """A customer holds a card (or types a code) at the reader."""
        self.tokens.append(TokenRead(id_token, kind))

    def trip_rcd(self, residual_ma: float = 30.0) -> None:
        """An RCD trip physically opens the contactors' coil supply."""
        self.rcd_tripped = True
        self.residual_ma = residual_ma
        self.contactor_command = False


class SimControlPilot:
    def __init__(self, plant: Plant) -> None:
        self._plant = plant

    async def read_state(self) -> CpState:
        return CpState.from_voltage(self._plant.cp_volts)

    async def set_duty(self, duty: Duty) -> None:
        self._plant.duty = duty

    async def set_state_f(self) -> None:
        self._plant.duty = None

    async def duty(self) -> Duty | None:
        return self._plant.duty


class SimContactors:
    def __init__(self, plant: Plant) -> None:
        self._plant = plant

    async def close(self, timeout: float = 1.0) -> None:
        if self._plant.rcd_tripped:
            raise OperationFailedError("RCD tripped: contactors cannot close")
        self._plant.contactor_command = True
        await wait_feedback(self.feedback, ContactorState.CLOSED, timeout, "close contactors")

    async def open(self, timeout: float = 1.0) -> None:
        self._plant.contactor_command = False
        await wait_feedback(self.feedback, ContactorState.OPEN, timeout, "open contactors")

    async def feedback(self) -> ContactorState:
        return self._plant.contactor_feedback


class SimLock:
    def __init__(self, plant: Plant) -> None:
        self._plant = plant

    async def lock(self, timeout: float = 1.0) -> None:
        self._plant.lock_command = True
        await wait_feedback(self.state, LockState.LOCKED, timeout, "lock")

    async def unlock(self, timeout: float = 1.0) -> None:
        self._plant.lock_command = False
        await wait_feedback(self.state, LockState.UNLOCKED, timeout, "unlock")

    async def state(self) -> LockState:
        return self._plant.lock_feedback


class SimMeter:
    def __init__(self, plant: Plant) -> None:
        self._plant = plant

    async def read(self) -> MeterReading:
        p = self._plant
        p.settle()
        p.tick()
        on = p.contactor_feedback is ContactorState.CLOSED and p.ev_state.ready
        if p.dc_enabled:
            return MeterReading(
                energy_wh=p.energy_wh,
                power_w=p.power_w,
                voltage_v=(p.dc_target[0],),
                current_a=(round(p.dc_target[1], 2),),
                energy_export_wh=p.energy_export_wh,
            )
        amps = p.load_w / 230.0 if on else 0.0
        return MeterReading(
            energy_wh=p.energy_wh,
            power_w=p.load_w if on else 0.0,
            voltage_v=(230.0,),
            current_a=(round(amps, 2),),
            energy_export_wh=p.energy_export_wh,
        )


class SimRcd:
    def __init__(self, plant: Plant) -> None:
        self._plant = plant

    async def read(self) -> RcdStatus:
        return RcdStatus(tripped=self._plant.rcd_tripped, residual_ma=self._plant.residual_ma)

    async def self_test(self, timeout: float = 2.0) -> bool:
        return not self._plant.rcd_tripped


class SimIsolation:
    def __init__(self, plant: Plant) -> None:
        self._plant = plant
        self._running = False

    async def start(self) -> None:
        self._running = True
        self._plant.isolation_test = True

    async def stop(self) -> None:
        self._running = False
        self._plant.isolation_test = False

    async def read(self) -> IsolationReading:
        self._plant.settle()
        if not self._running:
            return IsolationReading(IsolationStatus.INVALID)
        ohm = self._plant.isolation_ohm
        # IEC 61851-23: > 500 ohm/V valid, 100..500 ohm/V warning, below fault (at 500 V)
        status = (
            IsolationStatus.VALID
            if ohm > 250e3
            else IsolationStatus.WARNING
            if ohm > 50e3
            else IsolationStatus.FAULT
        )
        return IsolationReading(status, ohm)


class SimDcSupply:
    LIMITS = DcLimits(
        max_voltage_v=920.0,
        min_voltage_v=150.0,
        max_current_a=200.0,
        min_current_a=0.0,
        max_power_w=150e3,
        max_discharge_current_a=100.0,
        max_discharge_power_w=50e3,
    )

    def __init__(self, plant: Plant, limits: DcLimits | None = None) -> None:
        self._plant = plant
        self._limits = limits or self.LIMITS

    async def set_target(self, voltage_v: float, current_a: float) -> None:
        """Charge at ``current_a`` >= 0; discharge (sink from the EV) when it is negative.
        The current is cut to the power limit of its direction."""
        lim = self._limits
        charge = lim.min_current_a <= current_a <= lim.max_current_a
        discharge = current_a < 0 and -current_a <= lim.max_discharge_current_a
        if not (lim.min_voltage_v <= voltage_v <= lim.max_voltage_v) or not (charge or discharge):
            raise OperationFailedError(f"target {voltage_v} V / {current_a} A outside limits")
        if current_a >= 0:
            amps = min(current_a, lim.max_power_w / voltage_v)
        else:
            amps = max(current_a, -lim.max_discharge_power_w / voltage_v)
        self._plant.dc_target = (voltage_v, amps)

    async def enable(self, on: bool) -> None:
        self._plant.dc_enabled = on

    async def discharge_output(self, timeout: float = 5.0) -> None:
        """Module off and the output discharged at once (the simulated module keeps no
        charge on its output: off reads 0 V with or without this)."""
        self._plant.dc_enabled = False
        self._plant.dc_target = (0.0, 0.0)
        self._plant.output_discharges += 1

    async def present(self) -> DcPresent:
        self._plant.settle()
        v, i = self._plant.dc_target if self._plant.dc_enabled else (0.0, 0.0)
        return DcPresent(voltage_v=v, current_a=i, enabled=self._plant.dc_enabled)

    async def limits(self) -> DcLimits:
        return self._limits


class SimTokenReader:
    """The reader of the simulated plant: returns what :meth:`Plant.present_token` put."""

    POLL_S = 0.05

    def __init__(self, plant: Plant) -> None:
        self._plant = plant

    def present(self, id_token: str, kind: str = "ISO14443") -> None:
        self._plant.present_token(id_token, kind)

    async def read(self) -> TokenRead:
        while not self._plant.tokens:
            await asyncio.sleep(self.POLL_S)
        return self._plant.tokens.popleft()


class SimPlc:
    """Simulated SLAC: matches at once when the plant's EV speaks HLC and is plugged."""

    def __init__(self, plant: Plant) -> None:
        self._plant = plant
        self._status = PlcStatus(PlcState.IDLE)

    async def start_matching(self) -> None:
        if self._plant.ev_hlc and self._plant.ev_state is not CpState.A:
            nid = os.urandom(7)
            self._status = PlcStatus(PlcState.MATCHED, ev_mac=b"\x02" + os.urandom(5), nid=nid)
        else:
            self._status = PlcStatus(PlcState.MATCHING)

    async def stop(self) -> None:
        self._status = PlcStatus(PlcState.IDLE)

    async def status(self) -> PlcStatus:
        if self._status.state is PlcState.MATCHED and self._plant.plc_link_down:
            return dataclasses.replace(self._status, detail="link down")
        return self._status

    async def wait_outcome(self, timeout: float) -> PlcStatus:
        if self._status.state is PlcState.MATCHING:
            await asyncio.sleep(timeout)
            self._status = PlcStatus(PlcState.FAILED, detail="TT_EVSE_SLAC_init expired")
        return self._status


def build_board(plant: Plant | None = None, name: str = "simulated") -> tuple[Board, Plant]:
    plant = plant or Plant()
    board = Board(
        name=name,
        control_pilot=SimControlPilot(plant),
        contactors=SimContactors(plant),
        lock=SimLock(plant),
        meter=SimMeter(plant),
        rcd=SimRcd(plant),
        isolation=SimIsolation(plant),
        dc_supply=SimDcSupply(plant),
        plc=SimPlc(plant),
        token_reader=SimTokenReader(plant),
        firmware_version="simulated",
        hooks=simulated_board_hooks(),
    )
    return board, plant


async def open_board(options: Mapping[str, object]) -> Board:
    """Registry entry point (`secc run`).  Options: ``ev_state`` (A..F), ``ev_hlc``
    (bool), ``tamper_file`` (a path: a file appearing there trips the simulated tamper
    switch, hal.hooks.SimulatedTamper).  The meter runs on the monotonic clock."""
    check_options("simulated", options)
    plant = Plant(clock=time.monotonic)
    if "ev_state" in options:
        plant.ev_state = CpState(str(options["ev_state"]))
    if "ev_hlc" in options:
        plant.ev_hlc = bool(options["ev_hlc"])
    board, _ = build_board(plant)
    if "tamper_file" in options:
        board.hooks = simulated_board_hooks(Path(str(options["tamper_file"])))
    return board
