"""The ``serial-mcu`` board: CP, contactors, lock and RCD behind the safety MCU."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from hal.api import Board
from hal.backends.serial_mcu.link import McuConnection
from hal.backends.serial_mcu.protocol import (
    FLAG_RCD_TEST_OK,
    FLAG_RCD_TRIPPED,
    AckResult,
    Command,
    Configure,
    CpMode,
    Info,
    LinkTiming,
    RcdTest,
    SetContactors,
    SetCp,
    SetLock,
    Status,
)
from hal.registry import check_options
from hal.types import (
    ContactorState,
    ContactorStuckError,
    ContactorWeldedError,
    CpState,
    Duty,
    HalTimeoutError,
    LockState,
    OperationFailedError,
    RcdStatus,
    TokenRead,
    UnavailableError,
)

log = logging.getLogger(__name__)


async def _run(conn: McuConnection, command: Command, timeout: float = 2.0) -> None:
    if not conn.up:
        raise UnavailableError(f"MCU link is down: {command} not sent")
    result = await conn.command(command, timeout)
    if result is not AckResult.OK:
        raise OperationFailedError(f"MCU answered {result.name} to {command}")


class McuTokenReader:
    """The RFID reader wired to the MCU: its CARD reads (docs/mcu-protocol.md)."""

    def __init__(self, conn: McuConnection) -> None:
        self._conn = conn

    async def read(self) -> TokenRead:
        return await self._conn.cards.get()


def _status(conn: McuConnection) -> Status:
    if conn.status is None or not conn.up:
        raise UnavailableError("no STATUS from the MCU (link down)")
    return conn.status


class McuControlPilot:
    def __init__(self, conn: McuConnection) -> None:
        self._conn = conn

    async def read_state(self) -> CpState:
        return CpState.from_voltage(_status(self._conn).cp_mv / 1000)

    async def set_duty(self, duty: Duty) -> None:
        mode = CpMode.PWM if duty.is_pwm else CpMode.CONSTANT
        await _run(self._conn, SetCp(mode, duty.permille))

    async def set_state_f(self) -> None:
        await _run(self._conn, SetCp(CpMode.STATE_F, 0))

    async def duty(self) -> Duty | None:
        st = _status(self._conn)
        if st.cp_mode is CpMode.STATE_F:
            return None
        if st.cp_mode is CpMode.PWM:
            if not 1 <= st.duty_permille <= 999:
                raise OperationFailedError(f"MCU reports PWM with duty {st.duty_permille}")
            return Duty(st.duty_permille)
        return Duty.constant()


class McuContactors:
    def __init__(self, conn: McuConnection) -> None:
        self._conn = conn

    async def close(self, timeout: float = 1.0) -> None:
        await _run(self._conn, SetContactors(True), timeout)
        try:
            await self._conn.wait_status(lambda s: s.contactor_fb, timeout)
        except HalTimeoutError:
            raise ContactorStuckError("close: feedback still open") from None

    async def open(self, timeout: float = 1.0) -> None:
        await _run(self._conn, SetContactors(False), timeout)
        try:
            await self._conn.wait_status(
                lambda s: not s.contactor_fb and not s.contactor_cmd, timeout
            )
        except HalTimeoutError:
            raise ContactorWeldedError("open: feedback still closed") from None

    async def feedback(self) -> ContactorState:
        return ContactorState.CLOSED if _status(self._conn).contactor_fb else ContactorState.OPEN


class McuLock:
    def __init__(self, conn: McuConnection) -> None:
        self._conn = conn

    async def _set(self, locked: bool, timeout: float) -> None:
        await _run(self._conn, SetLock(locked), timeout)
        await self._conn.wait_status(lambda s: s.lock_fb == int(locked), timeout)

    async def lock(self, timeout: float = 1.0) -> None:
        await self._set(True, timeout)

    async def unlock(self, timeout: float = 1.0) -> None:
        await self._set(False, timeout)

    async def state(self) -> LockState:
        fb = _status(self._conn).lock_fb
        return {0: LockState.UNLOCKED, 1: LockState.LOCKED}.get(fb, LockState.UNKNOWN)


class McuRcd:
    def __init__(self, conn: McuConnection) -> None:
        self._conn = conn

    async def read(self) -> RcdStatus:
        st = _status(self._conn)
        return RcdStatus(
            tripped=bool(st.flags & FLAG_RCD_TRIPPED),
            residual_ma=st.residual_da / 10,
            self_test_ok=bool(st.flags & FLAG_RCD_TEST_OK),
        )

    async def self_test(self, timeout: float = 2.0) -> bool:
        await _run(self._conn, RcdTest(), timeout)
        try:
            await self._conn.wait_status(lambda s: bool(s.flags & FLAG_RCD_TEST_OK), timeout)
        except HalTimeoutError:
            return False
        return True


async def board_on(conn: McuConnection, name: str = "serial-mcu") -> Board:
    async def closer() -> None:
        try:
            if conn.up:
                await _run(conn, SetContactors(False), 0.5)
        finally:
            await conn.aclose()

    board = Board(
        name=name,
        control_pilot=McuControlPilot(conn),
        contactors=McuContactors(conn),
        lock=McuLock(conn),
        rcd=McuRcd(conn),
        token_reader=McuTokenReader(conn),
        closer=closer,
        firmware_version=conn.info.firmware if conn.info is not None else None,
    )

    def on_info(info: Info | None) -> None:  # asked again after an MCU reboot
        board.firmware_version = info.firmware if info is not None else None

    conn.info_listeners.append(on_info)
    return board


async def connect(
    conn: McuConnection, heartbeat_timeout_ms: int | None = None, timeout: float = 3.0
) -> None:
    """Start the link, wait for the MCU's first STATUS, configure its watchdog, ask for the
    firmware version (GET_INFO; a failure to get it is logged, not fatal)."""
    await conn.start()
    try:
        await conn.wait_status(lambda _s: True, timeout)
    except HalTimeoutError:
        await conn.aclose()
        raise UnavailableError(f"no STATUS from the MCU within {timeout} s") from None
    if heartbeat_timeout_ms is not None:
        await _run(conn, Configure(heartbeat_timeout_ms))
    try:
        await conn.query_info()
    except (HalTimeoutError, OperationFailedError) as exc:
        log.warning("MCU firmware version unknown: GET_INFO failed: %s", exc)


async def open_board(options: Mapping[str, object]) -> Board:
    """Options: ``port`` (required), ``baudrate`` (115200), ``heartbeat_timeout_ms`` (500)."""
    check_options("serial-mcu", options)
    port = options.get("port")
    if not isinstance(port, str):
        raise UnavailableError("serial-mcu backend needs the option port = '/dev/ttyXXX'")
    baud = options.get("baudrate", 115200)
    hb_ms = options.get("heartbeat_timeout_ms", 500)
    if not isinstance(baud, int) or not isinstance(hb_ms, int):
        raise UnavailableError("baudrate and heartbeat_timeout_ms must be integers")
    timing = LinkTiming(heartbeat_timeout_s=hb_ms / 1000, heartbeat_s=min(0.1, hb_ms / 5000))
    try:
        conn = McuConnection.open_serial(port, baud, timing=timing)
    except OSError as exc:
        raise UnavailableError(f"cannot open {port}: {exc}") from exc
    await connect(conn, hb_ms)
    await asyncio.sleep(0)
    return await board_on(conn)
