"""Small capability interfaces a board implements, and the :class:`Board` that bundles them.

A backend implements only what its hardware has; absent capabilities are ``None`` on the
board and callers check for them.  Every method may raise the errors of :mod:`hal.types`
(:class:`~hal.types.UnavailableError`, :class:`~hal.types.OperationFailedError`,
:class:`~hal.types.HalTimeoutError`).  Methods are coroutines because real hardware is behind a
UART, a character device or a socket; simulated backends answer at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from hal.records import record
from hal.types import (
    ContactorState,
    CpState,
    DcLimits,
    DcPresent,
    Duty,
    IsolationReading,
    LockState,
    MeterReading,
    PlcStatus,
    RcdStatus,
    TokenRead,
)

if TYPE_CHECKING:
    from hal.hooks import BoardHooks

__all__ = [
    "Board",
    "Contactors",
    "ControlPilot",
    "DcOutputDischarge",
    "DcSupply",
    "IsolationMonitor",
    "Lock",
    "Meter",
    "PlcLink",
    "RcdMonitor",
    "TokenReader",
]


@runtime_checkable
class ControlPilot(Protocol):
    async def read_state(self) -> CpState:
        """The CP state from the measured positive plateau voltage."""
        ...

    async def set_duty(self, duty: Duty) -> None:
        """Drive the oscillator: 1000 per mille = constant +12 V, 50 = 5 % (HLC)."""
        ...

    async def set_state_f(self) -> None:
        """Drive -12 V (state F): EVSE not available, used on faults."""
        ...

    async def duty(self) -> Duty | None:
        """The duty currently driven, or None while in state F."""
        ...


@runtime_checkable
class Contactors(Protocol):
    async def close(self, timeout: float = 1.0) -> None:
        """Close and wait for the feedback; ContactorStuckError / HalTimeoutError otherwise."""
        ...

    async def open(self, timeout: float = 1.0) -> None:
        """Open and wait for the feedback; ContactorWeldedError if the contacts stay closed."""
        ...

    async def feedback(self) -> ContactorState:
        """The state the auxiliary (mirror) contacts report."""
        ...


@runtime_checkable
class Lock(Protocol):
    async def lock(self, timeout: float = 1.0) -> None: ...

    async def unlock(self, timeout: float = 1.0) -> None: ...

    async def state(self) -> LockState: ...


@runtime_checkable
class Meter(Protocol):
    async def read(self) -> MeterReading:
        """The registers (import and export) and the signed power/current now."""
        ...


@runtime_checkable
class IsolationMonitor(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def read(self) -> IsolationReading: ...


@runtime_checkable
class DcSupply(Protocol):
    async def set_target(self, voltage_v: float, current_a: float) -> None:
        """Request an output; raises OperationFailedError when outside :meth:`limits`.

        A negative ``current_a`` is a discharge target (bidirectional power): the module
        sinks ``-current_a`` from the EV at ``voltage_v``, within
        ``max_discharge_current_a``/``max_discharge_power_w``; a module whose limits allow
        no discharge refuses it with OperationFailedError.
        """
        ...

    async def enable(self, on: bool) -> None: ...

    async def present(self) -> DcPresent: ...

    async def limits(self) -> DcLimits: ...


@runtime_checkable
class DcOutputDischarge(Protocol):
    """Optional part of a :class:`DcSupply`: discharging the output after the module is off.

    The runtime calls it at the end of the DC insulation test (cable check, pass or fail;
    IEC 61851-23: the output is switched off and discharged before pre-charge).  A module
    without it is only switched off (``enable(False)``).  Not to be confused with a
    discharge *target* (a negative ``set_target`` current, bidirectional power).
    """

    async def discharge_output(self, timeout: float = 5.0) -> None:
        """Module off, output discharged (bleeder / active discharge) below 60 V; returns
        once it is, HalTimeoutError if not within ``timeout`` seconds."""
        ...


@runtime_checkable
class PlcLink(Protocol):
    async def start_matching(self) -> None:
        """Begin SLAC (EVSE side): random NMK, wait for the EV's CM_SLAC_PARAM.REQ."""
        ...

    async def stop(self) -> None:
        """Abandon matching or leave the matched network (new NMK next time)."""
        ...

    async def status(self) -> PlcStatus: ...

    async def wait_outcome(self, timeout: float) -> PlcStatus:
        """Wait until matching ends (MATCHED or FAILED); HalTimeoutError otherwise."""
        ...


@runtime_checkable
class RcdMonitor(Protocol):
    async def read(self) -> RcdStatus: ...

    async def self_test(self, timeout: float = 2.0) -> bool: ...


@runtime_checkable
class TokenReader(Protocol):
    """An identification reader (RFID, key pad): the tokens customers present (OCPP C01)."""

    async def read(self) -> TokenRead:
        """Wait for the next token presented; each presentation is returned once."""
        ...


async def _nothing() -> None:
    return None


@record(frozen=False)
class Board:
    """The capabilities one charge point's hardware offers (None where absent)."""

    name: str
    control_pilot: ControlPilot
    contactors: Contactors
    lock: Lock | None = None
    meter: Meter | None = None
    rcd: RcdMonitor | None = None
    isolation: IsolationMonitor | None = None
    dc_supply: DcSupply | None = None
    plc: PlcLink | None = None
    token_reader: TokenReader | None = None
    closer: Callable[[], Awaitable[None]] = field(default=_nothing, repr=False)
    # the board controller's firmware as it reports it (serial-mcu: the MCU's INFO answer),
    # None when the backend has no such controller or it does not say
    firmware_version: str | None = None
    # station-level hooks for the OCPP bridge (reset, firmware installation, vendor
    # DataTransfer, tamper detection: hal.hooks); None: the production defaults
    hooks: BoardHooks | None = None

    async def aclose(self) -> None:
        """Release the hardware; contactors are opened first where possible."""
        try:
            await self.closer()
        finally:
            plc_close = getattr(self.plc, "aclose", None)
            if plc_close is not None:
                await plc_close()
