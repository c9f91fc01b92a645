"""Station hooks: what a station maker writes so the CSMS's operations reach the hardware.

The OCPP bridge decides *when* (the use case's rules: transactions ended first, statuses
reported, everything durable); a hook only *does* the station-specific part.  Each hook
is a small Protocol with a simulated implementation used by the tests and the simulator.

* :class:`ResetHook` (OCPP B11/B12): restart the station once its transactions have
  ended and their events are on disk.  The default, :class:`ExitForRestart`, ends the
  process with a failure status so systemd (``Restart=on-failure``) starts it again.
* :class:`ConnectorLockHook` (F05 UnlockConnector): release a connector's cable lock.
  :class:`HalConnectorLock` drives the boards' :class:`hal.api.Lock` (the simulated
  backend's lock in tests); without one the answer is UnlockFailed.
* :class:`VendorDataTransfer` (P01 DataTransfer from the CSMS): the station maker's own
  messages.  Without one every vendorId is unknown; :class:`EchoDataTransfer` is the
  simulated one.
* :class:`FirmwareInstallHook` (L01 UpdateFirmware): install a downloaded image whose
  signature the bridge has verified.  Without one UpdateFirmware is Rejected;
  :class:`SimulatedFirmwareInstall` stands in for the tests and the simulator.
* :class:`TamperSource` (A04 TamperDetectionActivated): the enclosure's tamper switch.
  Without one no tamper event is ever reported; :class:`SimulatedTamper` is triggered
  by hand (tests, lab).

Where they come from under ``secc run``: a board's backend offers the station-level ones
as :attr:`hal.api.Board.hooks` (a :class:`BoardHooks`; the simulated backend offers the
simulated hooks, see docs/hal.md); the connector locks are the boards' own
:class:`hal.api.Lock` (:class:`HalConnectorLock`).  :func:`station_hooks` combines them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from hal.records import record
from hal.types import HalError, LockState

if TYPE_CHECKING:
    from hal.api import Board, Lock

log = logging.getLogger(__name__)

EXIT_FOR_RESTART = 75  # EX_TEMPFAIL: systemd's Restart=on-failure starts the service again


@runtime_checkable
class ResetHook(Protocol):
    """Restart the charging station (the whole station: OCPP resets of one EVSE are refused).

    Called after every transaction was ended (stoppedReason ImmediateReset, or the last
    one ended by itself for OnIdle) and the outbox has been written; ``kind`` is the
    ResetEnumType (``Immediate`` / ``OnIdle``).  It may return (a simulated reset) or
    never return (a real one)."""

    def reset(self, kind: str) -> None: ...


class ExitForRestart:
    """The production default: exit the process now with :data:`EXIT_FOR_RESTART`."""

    def reset(self, kind: str) -> None:
        log.warning("OCPP Reset (%s): exiting with status %d for a restart", kind, EXIT_FOR_RESTART)
        logging.shutdown()
        os._exit(EXIT_FOR_RESTART)


@record(frozen=False, slots=False)
class SimulatedReset:
    """Records the resets asked for (tests, simulator); the process keeps running.

    With ``reboots_link`` (the simulated backend under ``secc run``) the OCPP bridge then
    behaves as a rebooted station towards the CSMS: it closes the link and boots again
    (BootNotification reason RemoteReset, StatusNotifications); without it the stored
    boot reason waits for the next real start."""

    resets: list[str] = field(default_factory=list)
    reboots_link: bool = False

    def reset(self, kind: str) -> None:
        log.info("simulated reset (%s)", kind)
        self.resets.append(kind)


@runtime_checkable
class ConnectorLockHook(Protocol):
    """Unlock one connector's cable lock; True once the lock reports unlocked.  Called
    only when no authorized transaction runs on that connector.  Must not raise."""

    async def unlock(self, evse_id: int, connector_id: int) -> bool: ...


@record(frozen=False, slots=False)
class HalConnectorLock:
    """Connector locks through the HAL: ``locks`` maps (evseId, connectorId) to the
    board's :class:`hal.api.Lock`."""

    locks: Mapping[tuple[int, int], Lock]
    timeout: float = 2.0

    async def unlock(self, evse_id: int, connector_id: int) -> bool:
        lock = self.locks.get((evse_id, connector_id))
        if lock is None:
            return False
        try:
            await lock.unlock(self.timeout)
            return await lock.state() is LockState.UNLOCKED
        except (HalError, TimeoutError, OSError) as exc:
            log.warning("unlock of EVSE %d connector %d failed: %s", evse_id, connector_id, exc)
            return False


@runtime_checkable
class VendorDataTransfer(Protocol):
    """A DataTransfer from the CSMS: return (DataTransferStatusEnumType, data or None):
    ``Accepted`` / ``Rejected`` / ``UnknownMessageId`` / ``UnknownVendorId``."""

    def data_transfer(
        self, vendor_id: str, message_id: str | None, data: object
    ) -> tuple[str, object]: ...


@record(frozen=False, slots=False)
class EchoDataTransfer:
    """Simulated vendor extension: vendor ``vendor_id``, message ``Echo`` answers the
    data back; other messages of that vendor are UnknownMessageId."""

    vendor_id: str = "org.secc.simulated"
    received: list[tuple[str | None, object]] = field(default_factory=list)

    def data_transfer(
        self, vendor_id: str, message_id: str | None, data: object
    ) -> tuple[str, object]:
        if vendor_id != self.vendor_id:
            return "UnknownVendorId", None
        self.received.append((message_id, data))
        if message_id != "Echo":
            return "UnknownMessageId", None
        return "Accepted", data


@runtime_checkable
class FirmwareInstallHook(Protocol):
    """Install ``image`` (downloaded, signature verified against the Manufacturer root,
    every transaction ended).  Return the FirmwareStatusEnumType it ended in:
    ``Installed``; ``InstallRebooting`` when the new image runs only after a restart (the
    bridge reports it, then restarts the station through the :class:`ResetHook`, and
    reports Installed once it runs again; the hook itself must not restart);
    ``InstallVerificationFailed`` when the station's own check of the image fails;
    ``InstallationFailed`` (also when it raises).  A process that ends while the hook
    runs is reported InstallationFailed after the restart."""

    async def install(self, image: Path) -> str: ...


@record(frozen=False, slots=False)
class SimulatedFirmwareInstall:
    """Records the images it is given (their bytes; with ``keep_images`` off only their
    SHA-256, as under ``secc run``, where images may be large); ``outcome`` is what it
    reports."""

    outcome: str = "Installed"
    installed: list[bytes] = field(default_factory=list)
    keep_images: bool = True

    async def install(self, image: Path) -> str:
        import hashlib  # (here: not on `secc run`'s start path)

        data = await asyncio.to_thread(image.read_bytes)
        self.installed.append(data if self.keep_images else hashlib.sha256(data).digest())
        return self.outcome


@runtime_checkable
class TamperSource(Protocol):
    """The station's tamper detection (enclosure switch, tilt sensor).  ``wait`` returns
    once per detection, with a short description of what was detected (it goes to the
    CSMS as the techInfo of SecurityEventNotification TamperDetectionActivated)."""

    async def wait(self) -> str: ...


class SimulatedTamper:
    """A tamper switch triggered by :meth:`trigger` (tests, lab) or, with ``path``, by a
    file appearing there (``secc run`` with the simulated backend's ``tamper_file``
    option: its text is the detail; it is removed when taken).  Detections are queued,
    none is lost while nobody waits."""

    def __init__(self, path: Path | None = None, poll: float = 0.2) -> None:
        self._detections: asyncio.Queue[str] = asyncio.Queue()
        self.path = path
        self.poll = poll

    def trigger(self, detail: str = "enclosure opened") -> None:
        self._detections.put_nowait(detail)

    def _take(self) -> str | None:
        assert self.path is not None
        try:
            text = self.path.read_text(errors="replace").strip()
            self.path.unlink()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("tamper file %s: %s", self.path, exc)
            return None
        return text[:255] or "tamper switch (simulated)"

    async def wait(self) -> str:
        while True:
            if self.path is not None and (detail := await asyncio.to_thread(self._take)):
                return detail
            try:
                return await asyncio.wait_for(
                    self._detections.get(), self.poll if self.path is not None else None
                )
            except TimeoutError:
                continue


@record(frozen=False, slots=False)
class BoardHooks:
    """The station-level hooks a board's backend offers (:attr:`hal.api.Board.hooks`);
    None where it has none (the production default of :class:`StationHooks` applies)."""

    reset: ResetHook | None = None
    firmware: FirmwareInstallHook | None = None
    data_transfer: VendorDataTransfer | None = None
    tamper: TamperSource | None = None


def simulated_board_hooks(tamper_file: Path | None = None) -> BoardHooks:
    """What the simulated backend offers: every hook simulated; its reset reboots the
    OCPP link in-process (the process keeps running); its tamper switch is also
    ``tamper_file`` appearing, when given."""
    return BoardHooks(
        reset=SimulatedReset(reboots_link=True),
        firmware=SimulatedFirmwareInstall(keep_images=False),
        data_transfer=EchoDataTransfer(),
        tamper=SimulatedTamper(tamper_file),
    )


@dataclass
class StationHooks:
    """The hooks a station gives the OCPP bridge (defaults: production behaviour)."""

    reset: ResetHook = field(default_factory=ExitForRestart)
    connector_lock: ConnectorLockHook | None = None  # None: UnlockConnector UnlockFailed
    data_transfer: VendorDataTransfer | None = None  # None: every vendorId is unknown
    firmware: FirmwareInstallHook | None = None  # None: UpdateFirmware is Rejected
    tamper: TamperSource | None = None  # None: no tamper detection
    # the station-level hooks already taken from a board (the first offering one wins)
    _offered: set[str] = field(default_factory=set, init=False, repr=False, compare=False)

    def add_board(self, evse_id: int, connector_id: int, board: Board) -> None:
        """Take what ``board`` (EVSE ``evse_id``'s) offers: its lock becomes that
        connector's lock (when :attr:`connector_lock` is a :class:`HalConnectorLock` or
        None); each station-level hook comes from the first board offering it."""
        if board.lock is not None:
            if self.connector_lock is None:
                self.connector_lock = HalConnectorLock({})
            if isinstance(self.connector_lock, HalConnectorLock):
                locks = dict(self.connector_lock.locks)
                locks[(evse_id, connector_id)] = board.lock
                self.connector_lock.locks = locks
        offered = board.hooks
        if offered is None:
            return
        for name in ("reset", "firmware", "data_transfer", "tamper"):
            hook = getattr(offered, name)
            if hook is not None and name not in self._offered:
                self._offered.add(name)
                setattr(self, name, hook)


def station_hooks(boards: Sequence[tuple[int, int, Board]]) -> StationHooks:
    """The hooks of a station whose boards are ``(evseId, connectorId, board)``."""
    hooks = StationHooks()
    for evse_id, connector_id, board in boards:
        hooks.add_board(evse_id, connector_id, board)
    return hooks
