"""Station operations the CSMS asks for: Reset (B11/B12) and ChangeAvailability (G03/G04).

Availability is kept per level (``"0"`` the station, ``"<evse>"`` an EVSE,
``"<evse>/<connector>"`` a connector) in the outbox's state table, so it survives a
restart; a connector is operative only when every level above it is.  An inoperative
EVSE refuses new sessions (authorization refused, no transaction opened, remote start
Rejected) and reports ``Unavailable``; a transaction already running goes on (the answer
is then ``Scheduled``) and the EVSE becomes Unavailable when it ends.

Reset: ``Immediate`` ends every transaction (stoppedReason ImmediateReset, triggerReason
ResetCommand), ``OnIdle`` answers ``Scheduled`` while transactions run and waits for them
(new sessions are refused meanwhile).  Then the security event ResetOrReboot is recorded,
the next BootNotification's reason (RemoteReset) is persisted, the outbox is given a
bounded time to drain, and the station's :class:`hal.hooks.ResetHook` restarts it.  A
reset of one EVSE is Rejected (the station restarts as a whole).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from hal.hooks import StationHooks
from secc.core.events import StopRequested
from secc.ocpp_bridge import security_events as sec
from secc.ocpp_bridge.client import Handler, Reply
from secc.ocpp_bridge.security_events import SecurityEvents

if TYPE_CHECKING:
    from secc.ocpp_bridge.bridge import Bridge

log = logging.getLogger(__name__)
AVAILABILITY_KEY = "availability"
BOOT_REASON_KEY = "boot_reason"
Payload = dict[str, object]


class Operations:
    """Station-level operation state, shared by the EVSE bridges of one station."""

    def __init__(
        self,
        bridge: Bridge,
        hooks: StationHooks,
        security: SecurityEvents,
        *,
        stop_timeout: float = 30.0,
        drain_timeout: float = 10.0,
    ) -> None:
        self.bridge = bridge
        self.hooks = hooks
        self.security = security
        self.stop_timeout = stop_timeout  # how long an Immediate reset waits for the ends
        self.drain_timeout = drain_timeout  # how long a reset waits for the outbox
        stored = bridge.queue.get_state(AVAILABILITY_KEY)
        self._levels: dict[str, str] = (
            {str(k): str(v) for k, v in stored.items()} if isinstance(stored, dict) else {}
        )
        self.reset_pending: str | None = None
        self._reset_task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        reason = bridge.queue.get_state(BOOT_REASON_KEY)
        self._boot_reason_stored = isinstance(reason, str)
        if isinstance(reason, str):
            bridge.client.boot_reason = reason

    # --- availability ------------------------------------------------------------------------

    def operative(self, evse_id: int, connector_id: int | None = None) -> bool:
        """New sessions may start here (no Inoperative level above, no reset pending)."""
        if self.reset_pending is not None:
            return False
        keys = ["0", str(evse_id)]
        if connector_id is not None:
            keys.append(f"{evse_id}/{connector_id}")
        else:
            keys += [k for k in self._levels if k.startswith(f"{evse_id}/")]
        return all(self._levels.get(k, "Operative") == "Operative" for k in keys)

    def status(self, evse_id: int, connector_id: int, status: str) -> str:
        """The ConnectorStatus to report: ``Unavailable`` replaces ``Available`` on an
        inoperative connector (an Occupied one stays Occupied until its session ends)."""
        if status == "Available" and not self.operative(evse_id, connector_id):
            return "Unavailable"
        return status

    async def _change_availability(self, p: Payload) -> Reply:
        wanted = str(p.get("operationalStatus"))
        evse = p.get("evse")
        evses = self.bridge.evses
        if isinstance(evse, dict) and isinstance(evse.get("id"), int) and evse["id"] != 0:
            evse_id = int(evse["id"])
            target = evses.get(evse_id)
            connector = evse.get("connectorId")
            if target is None or (
                connector is not None and connector != target.config.connector_id
            ):
                return Reply({"status": "Rejected", "statusInfo": _info("UnknownEvse")})
            key = str(evse_id) if connector is None else f"{evse_id}/{connector}"
            affected = [target]
        else:
            key, affected = "0", list(evses.values())
        before = {b.config.evse_id: self._reported(b) for b in affected}
        if self._levels.get(key, "Operative") != wanted:
            levels = dict(self._levels)
            if wanted == "Operative":
                levels.pop(key, None)
            else:
                levels[key] = wanted
            await self.bridge.queue.off_loop(
                self.bridge.queue.set_state, {AVAILABILITY_KEY: levels or None}
            )
            self._levels = levels
        busy = wanted == "Inoperative" and any(b.transaction is not None for b in affected)
        changed = [b for b in affected if self._reported(b) != before[b.config.evse_id]]

        async def notify() -> None:  # G03.FR.04 / G04: the new state of each connector
            for b in changed:
                await self.bridge.client.status_notification(
                    b.config.evse_id, b.config.connector_id, self._reported(b)
                )

        return Reply({"status": "Scheduled" if busy else "Accepted"}, after=notify)

    def _reported(self, b: Bridge) -> str:
        base = "Occupied" if b.transaction is not None else "Available"
        return self.status(b.config.evse_id, b.config.connector_id, base)

    # --- reset -------------------------------------------------------------------------------

    def _reset(self, p: Payload) -> Reply:
        kind = str(p.get("type"))
        if p.get("evseId") not in (None, 0):
            return Reply({"status": "Rejected", "statusInfo": _info("EVSE reset unsupported")})
        running = [b for b in self.bridge.evses.values() if b.transaction is not None]
        if self.reset_pending == "Immediate" or (self.reset_pending == kind == "OnIdle"):
            return Reply({"status": "Scheduled" if running else "Accepted"})
        self.reset_pending = kind
        idle = [b for b in self.bridge.evses.values() if b.transaction is None]
        if self._reset_task is not None:
            self._reset_task.cancel()  # an OnIdle reset becomes Immediate
        if kind == "Immediate":
            for b in running:
                b._stop_override = ("ImmediateReset", "ResetCommand")
                b.emit(StopRequested("Reset Immediate from the CSMS"))
        self._idle.clear()
        self._reset_task = asyncio.ensure_future(self._reset_when_idle(kind))

        async def notify() -> None:  # the idle connectors no longer take sessions
            for b in idle:
                await self.bridge.client.status_notification(
                    b.config.evse_id, b.config.connector_id, self._reported(b)
                )

        status = "Scheduled" if running and kind == "OnIdle" else "Accepted"
        return Reply({"status": status}, after=notify)

    def transaction_ended(self) -> None:
        """An EVSE's transaction ended (its Ended event is in the outbox)."""
        self._idle.set()

    async def _reset_when_idle(self, kind: str) -> None:
        bridges = list(self.bridge.evses.values())

        async def all_ended() -> None:
            while any(b.transaction is not None for b in bridges):
                self._idle.clear()
                await self._idle.wait()

        try:
            if kind == "Immediate":
                await asyncio.wait_for(all_ended(), self.stop_timeout)
            else:
                await all_ended()
        except TimeoutError:
            log.error("Reset: transactions still open after %g s; resetting", self.stop_timeout)
        await self.security.record(sec.RESET, f"Reset {kind} by the CSMS")
        queue = self.bridge.queue
        await queue.off_loop(queue.set_state, {BOOT_REASON_KEY: "RemoteReset"})

        async def drained() -> None:
            while await queue.off_loop(len, queue) > 0:
                await asyncio.sleep(0.05)

        try:
            await asyncio.wait_for(drained(), self.drain_timeout)
        except TimeoutError:
            log.warning("Reset: %d messages stay in the outbox for after the restart", len(queue))
        self.hooks.reset.reset(kind)
        self.reset_pending = None  # a simulated reset returns: the station serves on

    def booted(self) -> None:
        """The BootNotification with the persisted reason was accepted: forget it."""
        if self._boot_reason_stored:
            self._boot_reason_stored = False
            self.bridge.queue.set_state({BOOT_REASON_KEY: None})

    # --- wiring ------------------------------------------------------------------------------

    def handlers(self, wrapped: dict[str, Handler]) -> dict[str, Handler]:
        """Reset and ChangeAvailability, and RequestStartTransaction refused on an
        inoperative EVSE (``wrapped`` holds the existing handlers)."""
        start = wrapped.get("RequestStartTransaction")

        def request_start(p: Payload) -> Reply | Awaitable[Reply]:
            evse_id = p.get("evseId")
            if isinstance(evse_id, int) and evse_id in self.bridge.evses:
                free = self.operative(evse_id)
            else:
                free = any(
                    self.operative(e) for e, b in self.bridge.evses.items() if b.transaction is None
                )
            if not free:
                return Reply({"status": "Rejected", "statusInfo": _info("Unavailable")})
            assert start is not None
            return start(p)

        out: dict[str, Handler] = {
            "Reset": self._reset,
            "ChangeAvailability": self._change_availability,
        }
        if start is not None:
            out["RequestStartTransaction"] = request_start
        return out


def _info(reason: str) -> dict[str, object]:
    return {"reasonCode": reason[:20], "additionalInfo": reason[:512]}
