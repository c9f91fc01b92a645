"""asyncio glue: runs :class:`hal.control.ChargingControl` against a :class:`hal.api.Board`.

It polls the CP and the RCD, performs the machine's actions on the board, turns hardware
errors into faults (a contactor that does not follow its command is a
``CONTACTOR_MISMATCH``) and publishes faults as facts on :attr:`ChargingRunner.faults`.
The SECC runtime reports the V2G session's progress with :meth:`hlc_started`,
:meth:`power`, :meth:`hlc_finished` and :meth:`hlc_failed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from hal.api import Board
from hal.control import (
    Action,
    ChargingControl,
    CloseContactors,
    ControlConfig,
    CpChanged,
    Event,
    FaultCleared,
    FaultRaised,
    HlcFailed,
    HlcFinished,
    HlcStarted,
    ModeChanged,
    OpenContactors,
    PowerRequest,
    ReportFault,
    SetDuty,
    SetStateF,
    SlacFailed,
    SlacMatched,
    StartSlac,
    StopSlac,
    Tick,
)
from hal.types import (
    ContactorState,
    Fault,
    HalError,
    HalTimeoutError,
    OperationFailedError,
    PlcState,
)

log = logging.getLogger(__name__)


class ChargingRunner:
    def __init__(
        self,
        board: Board,
        config: ControlConfig | None = None,
        *,
        poll_s: float = 0.02,
        slac_timeout_s: float = 50.0,
    ) -> None:
        self.board = board
        self.control = ChargingControl(config)
        self.poll_s = poll_s
        self.slac_timeout_s = slac_timeout_s
        self.faults: asyncio.Queue[ReportFault] = asyncio.Queue()
        self.modes: deque[ModeChanged] = deque(maxlen=64)
        self._task: asyncio.Task[None] | None = None
        self._slac: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._rcd_tripped = False

    # ------------------------------------------------------------ public API

    async def start(self) -> None:
        await self.board.contactors.open()
        self._task = asyncio.create_task(self._loop(), name="charging-control")

    async def aclose(self) -> None:
        for task in (self._task, self._slac):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        with contextlib.suppress(HalError):
            await self.board.contactors.open(timeout=0.5)

    async def hlc_started(self) -> None:
        await self.feed(HlcStarted())

    async def hlc_finished(self) -> None:
        await self.feed(HlcFinished())

    async def hlc_failed(self, reason: str, *, refused: bool = False) -> None:
        """The V2G session failed; ``refused``: the station refused the EV (authorization,
        contract, payment), which never falls back to basic charging by itself."""
        await self.feed(HlcFailed(reason, refused))

    async def power(self, on: bool) -> None:
        await self.feed(PowerRequest(on))

    async def raise_fault(self, fault: Fault, detail: str = "") -> None:
        await self.feed(FaultRaised(fault, detail))

    async def clear_fault(self, fault: Fault) -> None:
        await self.feed(FaultCleared(fault))

    async def feed(self, event: Event) -> None:
        async with self._lock:
            now = asyncio.get_running_loop().time()
            await self._perform(self.control.handle(event, now))

    # ------------------------------------------------------------ internals

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                cp = await self.board.control_pilot.read_state()
                if cp is not self.control.cp:
                    await self.feed(CpChanged(cp))
                if self.board.rcd is not None:
                    tripped = (await self.board.rcd.read()).tripped
                    if tripped != self._rcd_tripped:
                        self._rcd_tripped = tripped
                        fault = Fault.RCD_TRIPPED
                        await self.feed(FaultRaised(fault) if tripped else FaultCleared(fault))
            except HalError as exc:
                log.warning("charging control: reading the board failed: %s", exc)
            if loop.time() >= self.control.deadline:
                await self.feed(Tick())
            await asyncio.sleep(self.poll_s)

    async def _perform(self, actions: list[Action]) -> None:
        cp = self.board.control_pilot
        for action in actions:
            try:
                match action:
                    case SetDuty(duty=duty):
                        await cp.set_duty(duty)
                    case SetStateF():
                        await cp.set_state_f()
                    case OpenContactors():
                        await self.board.contactors.open()
                    case CloseContactors():
                        await self.board.contactors.close()
                    case StartSlac():
                        await self._start_slac()
                    case StopSlac():
                        await self._stop_slac()
                    case ReportFault():
                        log.error("fault: %s (%s)", action.fault.value, action.detail)
                        self.faults.put_nowait(action)
                    case ModeChanged():
                        log.info("charging: %s (%s)", action.phase.value, action.reason)
                        self.modes.append(action)
            except HalError as exc:
                await self._hardware_error(action, exc)

    async def _hardware_error(self, action: Action, exc: HalError) -> None:
        log.error("charging control: %s failed: %s", type(action).__name__, exc)
        mismatch = isinstance(exc, OperationFailedError | HalTimeoutError)
        if (
            isinstance(action, OpenContactors | CloseContactors)
            and mismatch
            and Fault.CONTACTOR_MISMATCH not in self.control.faults
        ):
            with contextlib.suppress(HalError):
                if await self.board.contactors.feedback() is ContactorState.CLOSED:
                    await self.board.contactors.open(timeout=0.2)
            now = asyncio.get_running_loop().time()
            fault = FaultRaised(Fault.CONTACTOR_MISMATCH, str(exc))
            await self._perform(self.control.handle(fault, now))

    async def _start_slac(self) -> None:
        plc = self.board.plc
        if plc is None:
            self._slac_done(SlacFailed("board has no PLC link"))
            return
        await plc.start_matching()
        self._slac = asyncio.create_task(self._await_slac(), name="slac-outcome")

    async def _await_slac(self) -> None:
        plc = self.board.plc
        assert plc is not None
        try:
            status = await plc.wait_outcome(self.slac_timeout_s)
        except HalError as exc:
            await self.feed(SlacFailed(str(exc)))
            return
        if status.state is PlcState.MATCHED:
            await self.feed(SlacMatched())
        else:
            await self.feed(SlacFailed(status.detail or status.state.value))

    def _slac_done(self, event: Event) -> None:
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.feed(event)))

    async def _stop_slac(self) -> None:
        current = asyncio.current_task()
        if self._slac is not None and self._slac is not current and not self._slac.done():
            self._slac.cancel()
        self._slac = None
        if self.board.plc is not None:
            await self.board.plc.stop()
