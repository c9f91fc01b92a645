"""asyncio adapter around :class:`~.protocol.HostLink`: a serial port (pyserial) or any fd.

All protocol decisions live in the pure machine; this module reads and writes bytes, runs
the machine at its deadline, resolves command futures and keeps the latest STATUS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import Callable
from typing import Any

from hal.backends.serial_mcu.protocol import (
    AckResult,
    BytesIn,
    CardIn,
    Command,
    CommandDone,
    CommandFailed,
    GetInfo,
    HostAction,
    HostEvent,
    HostLink,
    Info,
    LinkLost,
    LinkTiming,
    LinkUp,
    McuRebooted,
    Status,
    StatusIn,
    Submit,
    Tick,
    Write,
)
from hal.types import (
    HalError,
    HalTimeoutError,
    OperationFailedError,
    TokenRead,
    UnavailableError,
)

log = logging.getLogger(__name__)

LinkFact = LinkLost | LinkUp | McuRebooted


class McuConnection:
    """One host-side link to the MCU over an open, raw, non-blocking file descriptor."""

    def __init__(
        self,
        fd: int,
        *,
        timing: LinkTiming | None = None,
        rng: random.Random | None = None,
        closer: Callable[[], None] | None = None,
    ) -> None:
        self._fd = fd
        self._closer = closer
        self._rng = rng or random.SystemRandom()
        self._timing = timing or LinkTiming()
        self._link: HostLink | None = None
        self._futures: dict[int, asyncio.Future[CommandDone]] = {}
        self._tokens = 0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._inbox = bytearray()
        self._status_event = asyncio.Event()  # set and replaced at every STATUS
        self.status: Status | None = None
        self.info: Info | None = None  # the MCU's answer to GET_INFO (query_info)
        # called with the new answer when the version is asked again after an MCU reboot
        self.info_listeners: list[Callable[[Info | None], None]] = []
        self._info_task: asyncio.Task[None] | None = None
        self.facts: asyncio.Queue[LinkFact] = asyncio.Queue()
        self.cards: asyncio.Queue[TokenRead] = asyncio.Queue()  # the MCU reader's reads
        self.listeners: list[Callable[[LinkFact], None]] = []

    @classmethod
    def open_serial(cls, port: str, baudrate: int = 115200, **kwargs: Any) -> McuConnection:
        """Open ``port`` with pyserial (the ``serial`` extra), raw 8N1, non-blocking."""
        import serial

        ser = serial.Serial(port, baudrate=baudrate, timeout=0, write_timeout=0)
        fd = ser.fileno()
        os.set_blocking(fd, False)
        return cls(fd, closer=ser.close, **kwargs)

    @property
    def up(self) -> bool:
        return self._link is not None and self._link.up and self._task is not None

    def abort(self) -> None:
        """Stop all I/O at once, without a word to the MCU (as if the host process died);
        the MCU's watchdog then opens the contactors.  Lab and test use."""
        if self._info_task is not None:
            self._info_task.cancel()
        if self._task is not None:
            self._task.cancel()
            self._task = None
            asyncio.get_running_loop().remove_reader(self._fd)

    @property
    def dropped_frames(self) -> int:
        return self._link.reader.dropped if self._link else 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._link = HostLink(self._rng.getrandbits(16), loop.time(), self._timing)
        loop.add_reader(self._fd, self._readable)
        self._task = asyncio.create_task(self._run(), name="mcu-link")

    async def aclose(self) -> None:
        if self._info_task is not None:
            self._info_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._info_task
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            asyncio.get_running_loop().remove_reader(self._fd)
        for fut in self._futures.values():
            if not fut.done():
                fut.set_exception(UnavailableError("MCU link closed"))
        if self._closer is not None:
            self._closer()
            self._closer = None

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.warning("MCU link read error: %s", exc)
            return
        if data:
            self._inbox.extend(data)
            self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        link = self._link
        assert link is not None
        while True:
            event: HostEvent = Tick()
            if self._inbox:
                event = BytesIn(bytes(self._inbox))
                self._inbox.clear()
            self._perform(link.handle(event, loop.time()))
            self._wake.clear()
            if self._inbox:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), timeout=max(0.0, link.deadline - loop.time())
                )

    def _submit(self, command: Command) -> asyncio.Future[CommandDone]:
        assert self._link is not None, "start() first"
        self._tokens += 1
        fut: asyncio.Future[CommandDone] = asyncio.get_running_loop().create_future()
        self._futures[self._tokens] = fut
        loop = asyncio.get_running_loop()
        self._perform(self._link.handle(Submit(self._tokens, command), loop.time()))
        return fut

    def _perform(self, actions: list[HostAction]) -> None:
        for action in actions:
            if isinstance(action, Write):
                try:
                    os.write(self._fd, action.data)
                except (BlockingIOError, InterruptedError):
                    log.debug("MCU link: write would block, frame dropped (will retry)")
                except OSError as exc:
                    log.warning("MCU link write error: %s", exc)
            elif isinstance(action, CardIn):
                try:
                    self.cards.put_nowait(action.card.token())
                except ValueError as exc:  # e.g. a key code longer than OCPP allows
                    log.warning("MCU card read not usable: %s", exc)
            elif isinstance(action, StatusIn):
                self.status = action.status
                self._status_event.set()
                self._status_event = asyncio.Event()
            elif isinstance(action, CommandDone | CommandFailed):
                fut = self._futures.pop(action.token, None)
                if fut is None or fut.done():
                    continue
                if isinstance(action, CommandDone):
                    fut.set_result(action)
                else:
                    fut.set_exception(OperationFailedError(f"MCU command: {action.reason}"))
            else:
                log.log(
                    logging.WARNING if not isinstance(action, LinkUp) else logging.INFO,
                    "MCU link: %s",
                    action,
                )
                self.facts.put_nowait(action)
                for listener in self.listeners:
                    listener(action)
                if isinstance(action, McuRebooted):  # maybe a firmware update: ask again
                    if self._info_task is not None:
                        self._info_task.cancel()
                    self._info_task = asyncio.create_task(self._requery(), name="mcu-info")

    async def command(self, command: Command, timeout: float = 2.0) -> AckResult:
        """Send a command and wait for its ACK; HalTimeoutError / OperationFailedError."""
        return (await self._answer(command, timeout)).result

    async def _answer(self, command: Command, timeout: float) -> CommandDone:
        fut = self._submit(command)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise HalTimeoutError(f"MCU did not acknowledge {command} in {timeout} s") from None

    async def _requery(self) -> None:
        self.info = None
        try:
            await self.query_info()
        except HalError as exc:
            log.warning("MCU firmware version unknown after the reboot: GET_INFO failed: %s", exc)
        for listener in self.info_listeners:
            listener(self.info)

    async def query_info(self, timeout: float = 2.0) -> Info | None:
        """Ask the MCU for its firmware version, protocol version and hardware id (GET_INFO)
        and keep the answer in :attr:`info`.  None, with a log line, when the firmware does
        not know GET_INFO (it answers ACK(MALFORMED)) or its INFO is malformed; the link
        keeps working either way.  HalTimeoutError / OperationFailedError as :meth:`command`
        when the link itself fails."""
        try:
            done = await self._answer(GetInfo(), timeout)
        except OperationFailedError as exc:
            if "malformed INFO" not in str(exc):
                raise
            log.error("MCU firmware version unknown: %s", exc)
            self.info = None
            return None
        self.info = done.info
        if done.info is None:
            log.warning(
                "MCU firmware version unknown: the MCU answered GET_INFO with ACK(%s) "
                "(firmware predating protocol version 1?)",
                done.result.name,
            )
        else:
            log.info(
                "MCU firmware %s, protocol %d, hardware id 0x%08x",
                done.info.firmware,
                done.info.protocol,
                done.info.hardware_id,
            )
        return done.info

    async def wait_status(self, predicate: Callable[[Status], bool], timeout: float) -> Status:
        """The first STATUS (current or next) for which ``predicate`` holds."""

        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.status is None or not predicate(self.status):
            left = end - loop.time()
            if left <= 0:
                raise HalTimeoutError("MCU status did not reach the expected state")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._status_event.wait(), left)
        return self.status
