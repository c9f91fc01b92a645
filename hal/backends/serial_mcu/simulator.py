"""A safety-MCU simulator speaking docs/mcu-protocol.md, for tests and lab engineers.

:class:`McuSimulator` is the firmware's behaviour over a :class:`~hal.backends.simulated.Plant`
(time is passed in).  :func:`serve_fd` runs it on a file descriptor (a pty master), and
:class:`ByteFaults` mangles the byte stream (drop, duplicate, corrupt, reorder) in both
directions for fault-injection runs.  ``secc hal mcu-sim --pty`` starts it for a lab bench.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import tty
from collections import deque
from dataclasses import dataclass, field

from hal.backends.serial_mcu.protocol import (
    FLAG_RCD_TEST_OK,
    FLAG_RCD_TRIPPED,
    FLAG_SAFE_STATE,
    PROTOCOL_VERSION,
    AckResult,
    CardKind,
    ClearFaults,
    Command,
    Configure,
    CpMode,
    GetInfo,
    Info,
    McuLink,
    RcdTest,
    SetContactors,
    SetCp,
    SetLock,
    Status,
)
from hal.backends.simulated import Plant
from hal.types import ContactorState, Duty, LockState, TokenRead

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ByteFaults:
    """Per-byte-chunk fault probabilities applied to a stream."""

    drop: float = 0.0
    duplicate: float = 0.0
    corrupt: float = 0.0
    reorder: float = 0.0
    rng: random.Random = field(default_factory=random.Random)

    @property
    def active(self) -> bool:
        return any((self.drop, self.duplicate, self.corrupt, self.reorder))

    def mangle(self, data: bytes) -> bytes:
        if not self.active:
            return data
        out = bytearray()
        for byte in data:
            r = self.rng.random()
            if r < self.drop:
                continue
            value = byte
            if r < self.drop + self.corrupt:
                value ^= 1 << self.rng.randrange(8)
            out.append(value)
            if self.rng.random() < self.duplicate:
                out.append(value)
        if len(out) > 1 and self.rng.random() < self.reorder:
            i = self.rng.randrange(len(out) - 1)
            out[i], out[i + 1] = out[i + 1], out[i]
        return bytes(out)


class McuSimulator:
    """The MCU firmware's behaviour; ``executed`` logs every command run (seq, command)."""

    def __init__(
        self,
        plant: Plant | None = None,
        *,
        now: float = 0.0,
        boot_id: int | None = None,
        status_period_s: float = 0.1,
        heartbeat_timeout_s: float = 0.5,
        rng: random.Random | None = None,
        firmware: str | None = "sim-1.0.0",
        hardware_id: int = 0x53494D31,
    ) -> None:
        # firmware None: a firmware predating GET_INFO (answers it ACK(MALFORMED))
        self.info = None if firmware is None else Info(PROTOCOL_VERSION, hardware_id, firmware)
        self.plant = plant or Plant()
        self.rng = rng or random.Random()
        self.status_period_s = status_period_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        # (boot_id, seq, command) of every command run, bounded for long lab runs
        self.executed: deque[tuple[int, int, Command]] = deque(maxlen=100_000)
        self.safe_state_entries = 0
        self.safe_since: float | None = None
        self._boot(now, boot_id)

    def _boot(self, now: float, boot_id: int | None) -> None:
        self.boot_id = boot_id if boot_id is not None else self.rng.getrandbits(32)
        self.link = McuLink(
            self.boot_id, now, self.heartbeat_timeout_s, answers_info=self.info is not None
        )
        self.safe = False
        self.rcd_test_ok = False
        self._next_status = now
        # a booting MCU drives the safe defaults
        self.plant.contactor_command = False
        self.plant.lock_command = False
        self.plant.duty = Duty.constant()

    def reset(self, now: float, boot_id: int | None = None) -> None:
        """Simulate a watchdog / power-on reset: all state lost, relays released."""
        new = boot_id if boot_id is not None else self.rng.getrandbits(32)
        while new & 0xFF == self.boot_id & 0xFF:  # a new epoch, as real firmware ensures
            new = self.rng.getrandbits(32)
        self._boot(now, new)

    @property
    def deadline(self) -> float:
        return min(self._next_status, self.link.last_host_rx + self.heartbeat_timeout_s)

    def feed(self, data: bytes, now: float) -> bytes:
        runs, writes = self.link.receive(data, now)
        out = bytearray(b"".join(writes))
        for run in runs:
            self.executed.append((self.boot_id, run.seq, run.command))
            if isinstance(run.command, GetInfo) and self.info is not None:
                out += self.link.info(run.seq, self.info)
                continue
            out += self.link.ack(run.seq, self._execute(run.command))
        out += self.tick(now)
        return bytes(out)

    def tick(self, now: float) -> bytes:
        if not self.safe and self.link.heard_host and self.link.host_silent(now):
            self._enter_safe_state(now)
        out = bytearray()
        while self.plant.tokens:  # the reader read a card: report it at once
            out += self.link.card(*_card(self.plant.tokens.popleft()))
        if now < self._next_status:
            return bytes(out)
        self._next_status = now + self.status_period_s
        out += self.link.status_frame(self.status())
        if self.link.cards:  # reads the host has not acknowledged: again
            out += self.link.card_frame() or b""
        return bytes(out)

    def _enter_safe_state(self, now: float) -> None:
        log.warning("MCU: host silent for %.3f s: opening contactors", self.heartbeat_timeout_s)
        self.safe = True
        self.safe_since = now
        self.safe_state_entries += 1
        self.plant.contactor_command = False
        self.plant.duty = None  # state F

    def _execute(self, cmd: Command) -> AckResult:
        p = self.plant
        match cmd:
            case SetCp(mode=CpMode.CONSTANT):
                p.duty = Duty.constant() if not self.safe else None
            case SetCp(mode=CpMode.PWM, duty_permille=d):
                if self.safe or not 1 <= d <= 999:
                    return AckResult.REJECTED
                p.duty = Duty(d)
            case SetCp(mode=CpMode.STATE_F):
                p.duty = None
            case SetContactors(closed=True):
                if self.safe or p.rcd_tripped:
                    return AckResult.REJECTED
                p.contactor_command = True
            case SetContactors(closed=False):
                p.contactor_command = False
            case SetLock(locked=locked):
                p.lock_command = locked
            case RcdTest():
                self.rcd_test_ok = not p.rcd_tripped
            case ClearFaults():
                if self.link.host_silent(self._now_hint()):
                    return AckResult.REJECTED
                self.safe = False
                p.rcd_tripped = False
                p.residual_ma = 0.0
                if p.duty is None:
                    p.duty = Duty.constant()
            case Configure(heartbeat_timeout_ms=ms):
                if not 50 <= ms <= 10000:
                    return AckResult.REJECTED
                self.heartbeat_timeout_s = ms / 1000
                self.link.heartbeat_timeout_s = ms / 1000
            case _:
                return AckResult.MALFORMED
        return AckResult.OK

    def _now_hint(self) -> float:
        return self.link.last_host_rx  # a command just arrived: the host is not silent

    def status(self) -> Status:
        p = self.plant
        duty = p.duty
        mode = CpMode.STATE_F if duty is None else CpMode.CONSTANT
        if duty is not None and duty.is_pwm:
            mode = CpMode.PWM
        flags = (FLAG_RCD_TRIPPED if p.rcd_tripped else 0) | (FLAG_SAFE_STATE if self.safe else 0)
        flags |= FLAG_RCD_TEST_OK if self.rcd_test_ok else 0
        lock = {LockState.UNLOCKED: 0, LockState.LOCKED: 1}.get(p.lock_feedback, 2)
        return Status(
            boot_id=self.boot_id,
            cp_mv=round(p.cp_volts * 1000),
            cp_mode=mode,
            duty_permille=duty.permille if duty is not None else 0,
            contactor_cmd=p.contactor_command,
            contactor_fb=p.contactor_feedback is ContactorState.CLOSED,
            lock_fb=lock,
            flags=flags,
            residual_da=min(0xFFFF, round(p.residual_ma * 10)),
        )


def _card(token: TokenRead) -> tuple[CardKind, bytes]:
    """How the simulated reader puts a token on the wire."""
    if token.kind == "KeyCode":
        return CardKind.KEY_CODE, token.id_token.encode("ascii")
    kind = CardKind.ISO15693 if token.kind == "ISO15693" else CardKind.ISO14443
    try:
        return kind, bytes.fromhex(token.id_token)
    except ValueError:  # not a UID in hex: send its bytes
        return kind, token.id_token.encode("ascii")


_SLAVES: dict[int, int] = {}


def open_pty() -> tuple[int, str]:
    """A pty pair in raw mode: (master fd for the simulator, slave path for the host).

    The slave stays open here too, so that the master never sees EIO while the host
    (re)opens the port; :func:`close_pty` closes both.
    """
    master, slave = os.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    path = os.ttyname(slave)
    os.set_blocking(master, False)
    _SLAVES[master] = slave
    return master, path


def close_pty(master: int) -> None:
    slave = _SLAVES.pop(master, None)
    for fd in (master, slave):
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


async def serve_fd(
    sim: McuSimulator,
    fd: int,
    *,
    faults_in: ByteFaults | None = None,
    faults_out: ByteFaults | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the simulator on ``fd`` until ``stop`` is set (or forever)."""
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    inbox = bytearray()
    stop = stop or asyncio.Event()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO: no slave open at the moment
            data = b""
        if data:
            inbox.extend(faults_in.mangle(data) if faults_in else data)
            wake.set()

    def write(data: bytes) -> None:
        if faults_out is not None:
            data = faults_out.mangle(data)
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(fd, data)

    loop.add_reader(fd, readable)
    try:
        while not stop.is_set():
            now = loop.time()
            if inbox:
                data = bytes(inbox)
                inbox.clear()
                write(sim.feed(data, now))
            else:
                write(sim.tick(now))
            wake.clear()
            timeout = max(0.0, sim.deadline - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=min(timeout, 0.1) + 0.001)
    finally:
        loop.remove_reader(fd)
