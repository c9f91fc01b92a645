"""Station operations the CSMS asks for: Reset (B11/B12) and ChangeAvailability (G03/G04),
UnlockConnector (F05), DataTransfer (P01/P02), SetNetworkProfile (A05/B09), GetReport (B08),
TriggerMessage of the station-level messages, clock-aligned meter values (J01) and the
tamper events of the HAL (A04), through the station's hooks (:mod:`hal.hooks`).

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
import contextlib
import dataclasses
import datetime as dt
import functools
import logging
import sqlite3
import urllib.parse
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from certs.store import StoreError
from hal.hooks import StationHooks
from secc.core.events import StopRequested
from secc.ocpp_bridge import mapping
from secc.ocpp_bridge import security_events as sec
from secc.ocpp_bridge.client import CallFailed, ClientConfig, Handler, Reply
from secc.ocpp_bridge.device_model import NETWORK_SLOTS
from secc.ocpp_bridge.firmware import FirmwareUpdates
from secc.ocpp_bridge.logs import LogUploads
from secc.ocpp_bridge.security_events import SecurityEvents

if TYPE_CHECKING:
    from secc.ocpp_bridge.bridge import Bridge

log = logging.getLogger(__name__)
ALIGNED = "AlignedDataCtrlr"
AVAILABILITY_KEY = "availability"
NETWORK_KEY = "network_profiles"  # configurationSlot -> NetworkConnectionProfileType
FLOOR_KEY = "security_profile_floor"  # the highest security profile connected with
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
        # what TriggerMessage reports while no log upload / firmware update runs
        self.log_status: dict[str, object] = {"status": "Idle"}
        self.firmware_status: dict[str, object] = {"status": "Idle"}
        self.aligned_wake = asyncio.Event()
        self.logs = LogUploads(bridge)
        self.firmware = FirmwareUpdates(bridge)
        self._base_config = bridge.client.config  # the station file's link (the last resort)
        self._failures = 0
        self._link_events: set[str] = set()  # raised since the link was last up
        self._select_network_profile(first=True)
        bridge.dm.validators[("OCPPCommCtrlr", "NetworkConfigurationPriority")] = (
            self.priority_problem
        )
        bridge.client.on_connect_failed.append(self._connect_failed)
        self._reset_task: asyncio.Task[None] | None = None
        self._resumed = False  # the jobs a restart left were taken up
        self.hooks_changed = asyncio.Event()  # a board added hooks (hal.hooks.StationHooks)
        self._idle = asyncio.Event()
        reason = bridge.queue.get_state(BOOT_REASON_KEY)
        self._boot_reason_stored = isinstance(reason, str)
        if isinstance(reason, str):
            bridge.client.boot_reason = reason

    # --- availability ------------------------------------------------------------------------

    def operative(self, evse_id: int, connector_id: int | None = None) -> bool:
        """New sessions may start here (no Inoperative level above, no reset pending)."""
        if self.reset_pending is not None or self.firmware.installing:
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
            try:  # persisted first: the answer is only Accepted for what survives
                await self.bridge.queue.off_loop(
                    self.bridge.queue.set_state, {AVAILABILITY_KEY: levels or None}
                )
            except (OSError, sqlite3.Error) as exc:
                return Reply({"status": "Rejected", "statusInfo": _info("Storage", str(exc))})
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
        # OnIdle: the station is not idle while a transaction runs, nor while a firmware
        # update or a log upload goes on (B11 remark, errata 2025-06)
        busy = bool(running) or self.firmware.busy or self.logs.busy
        if self.reset_pending == "Immediate" or (self.reset_pending == kind == "OnIdle"):
            return Reply({"status": "Scheduled" if busy and kind == "OnIdle" else "Accepted"})
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

        status = "Scheduled" if busy and kind == "OnIdle" else "Accepted"
        return Reply({"status": status}, after=notify)

    def transaction_ended(self) -> None:
        """An EVSE's transaction ended (its Ended event is in the outbox)."""
        self._idle.set()

    async def wait_idle(self) -> None:
        """Until no EVSE has a transaction open."""
        while any(b.transaction is not None for b in self.bridge.evses.values()):
            self._idle.clear()
            await self._idle.wait()

    async def _reset_when_idle(self, kind: str) -> None:
        bridges = list(self.bridge.evses.values())

        async def all_ended() -> None:
            while any(b.transaction is not None for b in bridges):
                self._idle.clear()
                await self._idle.wait()

        async def idle() -> None:  # OnIdle: the jobs too (they end without a signal here)
            while any(b.transaction is not None for b in bridges) or (
                self.firmware.busy or self.logs.busy
            ):
                self._idle.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), 0.5)

        try:
            if kind == "Immediate":
                await asyncio.wait_for(all_ended(), self.stop_timeout)
            else:
                await idle()
        except TimeoutError:
            log.error("Reset: transactions still open after %g s; resetting", self.stop_timeout)
        await self.security.record(sec.RESET, f"Reset {kind} by the CSMS")
        await self.restart("RemoteReset", kind)
        self.reset_pending = None  # a simulated reset returns: the station serves on

    async def restart(self, reason: str, kind: str = "Immediate") -> bool:
        """Restart the station through the ResetHook: the next boot reason (``reason``,
        BootReasonEnumType) persisted, the outbox given ``drain_timeout`` to empty.
        True when the hook returned (a simulated restart: the station serves on; with
        ``reboots_link`` it boots again on a new connection with ``reason``)."""
        queue = self.bridge.queue
        try:
            await queue.off_loop(queue.set_state, {BOOT_REASON_KEY: reason})
        except (OSError, sqlite3.Error) as exc:  # the restart goes ahead (reason: PowerUp)
            log.error("restart: boot reason not stored: %s", exc)

        async def drained() -> None:
            while await queue.off_loop(len, queue) > 0:
                await asyncio.sleep(0.05)

        try:
            await asyncio.wait_for(drained(), self.drain_timeout)
        except TimeoutError:
            log.warning("restart: %d messages stay in the outbox for after it", len(queue))
        self.hooks.reset.reset(kind)
        if getattr(self.hooks.reset, "reboots_link", False):
            # a simulated reboot as the CSMS sees one: the link goes down and the station
            # boots again with ``reason`` (the stored reason is then cleared)
            self._boot_reason_stored = True
            await self.bridge.client.reboot(reason)
        return True

    def booted(self) -> None:
        """The BootNotification with the persisted reason was accepted: forget it.
        The security profile connected with is the floor from now on (A05).  The first
        time: what a restart left of a firmware update or log upload goes on."""
        if not self._resumed:
            self._resumed = True
            self.bridge.client.spawn(self.firmware.resume(), "firmware update after a restart")
            self.bridge.client.spawn(self.logs.resume(), "log upload after a restart")
        self._failures = 0
        self._link_events.clear()
        state: dict[str, object | None] = {}
        profile = self.bridge.client.config.security_profile
        floor = self.bridge.queue.get_state(FLOOR_KEY)
        if not isinstance(floor, int) or profile > floor:
            state[FLOOR_KEY] = profile
        if self._boot_reason_stored:
            self._boot_reason_stored = False
            state[BOOT_REASON_KEY] = None
        if state:
            try:
                self.bridge.queue.set_state(state)
            except (OSError, sqlite3.Error) as exc:  # the link stays up regardless
                log.error("operation state not stored: %s", exc)

    # --- tamper detection (A04) ----------------------------------------------------------

    async def tamper_loop(self) -> None:
        """Every detection of the station's :class:`hal.hooks.TamperSource` becomes the
        security event TamperDetectionActivated (logged, queued durably for the CSMS)."""
        while True:
            source = self.hooks.tamper
            if source is None:
                self.hooks_changed.clear()
                await self.hooks_changed.wait()
                continue
            try:
                detail = await source.wait()
            except Exception:  # a broken source must not end the station's other work
                log.exception("tamper source failed; no more tamper detection")
                return
            await self.security.record(sec.TAMPER, detail)

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

        trigger = wrapped.get("TriggerMessage")

        def trigger_message(p: Payload) -> Reply | Awaitable[Reply]:
            reply = self._trigger(p)
            if reply is not None:
                return reply
            assert trigger is not None
            return trigger(p)

        out: dict[str, Handler] = {
            "Reset": self._reset,
            "ChangeAvailability": self._change_availability,
            "UnlockConnector": self._unlock_connector,
            "DataTransfer": self._data_transfer,
            "GetLog": self.logs.get_log,
            "UpdateFirmware": self.firmware.update_firmware,
            "SetNetworkProfile": self._set_network_profile,
            "GetReport": self._get_report,
            "SetDisplayMessage": _no_display,
            "GetDisplayMessages": _no_display,
            "ClearDisplayMessage": _no_display,
        }
        if start is not None:
            out["RequestStartTransaction"] = request_start
        if trigger is not None:
            out["TriggerMessage"] = trigger_message
        return out

    # --- TriggerMessage (F06) for the messages the CSMS handlers do not know ----------------

    def _trigger(self, p: Payload) -> Reply | None:
        what = p.get("requestedMessage")
        evse = p.get("evse")
        wanted = evse.get("id") if isinstance(evse, dict) else None
        evses = self.bridge.evses
        if wanted is not None and wanted not in evses:
            return None  # the CSMS handler answers an unknown EVSE
        client = self.bridge.client
        if what == "MeterValues":
            targets = [evses[wanted]] if isinstance(wanted, int) else list(evses.values())
            now = self.bridge.utc_now()
            values = [
                (b.config.evse_id, mv)
                for b in targets
                if (mv := mapping.meter_value(b._meter, now, "Trigger", self._measurands()))
                is not None
            ]
            if not values:
                return Reply({"status": "Rejected", "statusInfo": _info("NoMeterData")})

            async def meter_values() -> None:
                for evse_id, mv in values:
                    await client.call("MeterValues", {"evseId": evse_id, "meterValue": [mv]})

            return Reply({"status": "Accepted"}, after=meter_values)
        if what == "LogStatusNotification":

            async def log_status() -> None:  # F06: Idle when no upload runs
                await client.call("LogStatusNotification", dict(self.log_status))

            return Reply({"status": "Accepted"}, after=log_status)
        if what == "FirmwareStatusNotification":

            async def firmware_status() -> None:  # F06: Idle when no update runs
                await client.call("FirmwareStatusNotification", dict(self.firmware_status))

            return Reply({"status": "Accepted"}, after=firmware_status)
        if what == "SignCombinedCertificate":  # no combined V2G/CSMS certificate here
            return Reply({"status": "Rejected", "statusInfo": _info("NoCombinedCertificate")})
        return None  # PublishFirmwareStatusNotification: not a local controller

    # --- clock-aligned meter values (J01) ---------------------------------------------------

    def _measurands(self) -> frozenset[str]:
        return self.bridge.dm.members(ALIGNED, "Measurands")

    @staticmethod
    def next_aligned(now: dt.datetime, interval: int) -> dt.datetime:
        """The next instant after ``now`` that is a multiple of ``interval`` seconds
        from midnight UTC (J01: clock-aligned)."""
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        elapsed = (now - midnight).total_seconds()
        return midnight + dt.timedelta(seconds=(int(elapsed // interval) + 1) * interval)

    async def aligned_loop(self) -> None:
        """J01: every AlignedDataCtrlr.Interval, aligned to the clock: MeterValues
        (context Sample.Clock) for each EVSE without a transaction, a TransactionEvent
        Updated (triggerReason MeterValueClock) into the outbox for one with a transaction.
        MeterValues outside a transaction are not queued while offline."""
        while True:
            interval = self.bridge.dm.number(ALIGNED, "Interval")
            self.aligned_wake.clear()
            if interval <= 0:
                await self.aligned_wake.wait()
                continue
            now = self.bridge.utc_now()
            due = self.next_aligned(now, interval)
            try:  # a new Interval starts a new wait
                await asyncio.wait_for(self.aligned_wake.wait(), (due - now).total_seconds())
                continue
            except TimeoutError:
                pass
            await self.send_aligned(due)

    async def send_aligned(self, when: dt.datetime) -> None:
        """The samples of the aligned instant ``when`` (their timestamp)."""
        measurands = self._measurands()
        for b in list(self.bridge.evses.values()):
            tx = b.transaction
            if tx is not None:
                b._work.put_nowait(functools.partial(b._aligned_tx, str(tx["id"]), measurands))
                continue
            mv = mapping.meter_value(b._meter, when, "Sample.Clock", measurands)
            if mv is None or not self.bridge.client.online.is_set():
                continue
            try:
                await self.bridge.client.call(
                    "MeterValues", {"evseId": b.config.evse_id, "meterValue": [mv]}
                )
            except (CallFailed, TimeoutError, ConnectionError) as exc:
                log.info("aligned MeterValues for EVSE %d: %s", b.config.evse_id, exc)

    # --- SetNetworkProfile (A05, B09) -------------------------------------------------------

    def _profiles(self) -> dict[str, dict[str, object]]:
        stored = self.bridge.queue.get_state(NETWORK_KEY)
        return dict(stored) if isinstance(stored, dict) else {}

    def _floor(self) -> int:
        floor = self.bridge.queue.get_state(FLOOR_KEY)
        return floor if isinstance(floor, int) else 1

    def _profile_problem(self, data: dict[str, object]) -> str:
        """Why this NetworkConnectionProfileType cannot be used ("" when it can).  Only
        what the station applies is accepted: the URL, the security profile and the
        messageTimeout (the call timeout on that link).  A VPN or an APN it would have to
        set up is refused (this station has neither: its link is the host's network);
        ocppInterface is taken as given (the host's routing picks the interface)."""
        level = data.get("securityProfile")
        url = str(data.get("ocppCsmsUrl", ""))
        parts = urllib.parse.urlsplit(url)
        if data.get("ocppVersion") != "OCPP20" or data.get("ocppTransport") != "JSON":
            return "only OCPP 2.0.1 over JSON"
        for unsupported in ("vpn", "apn"):
            if unsupported in data:
                return f"{unsupported} is not supported: the link is the host's network"
        timeout = data.get("messageTimeout")
        if not isinstance(timeout, int) or timeout < 1:
            return f"messageTimeout {timeout} must be at least 1 s"
        if level not in (1, 2, 3):
            return f"security profile {level} unknown"
        assert isinstance(level, int)
        if parts.scheme != ("ws" if level == 1 else "wss") or not parts.hostname:
            return f"{url!r} is not a {'ws' if level == 1 else 'wss'} URL"
        if level < max(self._floor(), self.bridge.client.config.security_profile):
            return "no downgrade of the security profile"  # A05
        store = self.bridge.store
        if level > 1 and (store is None or not store.roots("csms")):
            return "no CSMS root certificate installed"
        if level == 3:
            try:
                assert store is not None
                store.leaf_paths("csms")
            except (AssertionError, StoreError):
                return "no charging-station certificate installed"
        return ""

    async def _set_network_profile(self, p: Payload) -> Reply:
        """B09: check and store the profile in its slot; it is used once
        NetworkConfigurationPriority names the slot, from the next connection on (a
        Reset).  A05: a higher security profile needs its certificates first."""
        slot = p.get("configurationSlot")
        data = p.get("connectionData")
        if not isinstance(slot, int) or not isinstance(data, dict):
            return Reply({"status": "Rejected"})
        if str(slot) not in NETWORK_SLOTS:  # B09.FR.05: not in NetworkConfigurationPriority's list
            slots = ",".join(NETWORK_SLOTS)
            info = _info("InvalidConfSlot", f"configurationSlot {slot} is none of {slots}")
            return Reply({"status": "Rejected", "statusInfo": info})
        problem = self._profile_problem(data)
        if problem:  # B09.FR.02 / B09.FR.04
            code = "NoSecurityDowngrade" if "downgrade" in problem else "InvalidNetworkConf"
            return Reply({"status": "Rejected", "statusInfo": _info(code, problem)})
        profiles = self._profiles()
        profiles[str(slot)] = data
        queue = self.bridge.queue
        try:
            await queue.off_loop(queue.set_state, {NETWORK_KEY: profiles})
        except (OSError, sqlite3.Error) as exc:
            return Reply({"status": "Failed", "statusInfo": _info("Storage", str(exc))})
        return Reply({"status": "Accepted"})

    def priority_problem(self, value: str) -> str:
        """Why NetworkConfigurationPriority cannot be ``value`` ("" when it can): every
        member a configuration slot holding a profile (SetNetworkProfile first: B10),
        none twice, none below the security profile in use (A05)."""
        members = [m.strip() for m in value.split(",")] if value else []
        if len(set(members)) != len(members):
            return "a slot is named twice"
        profiles = self._profiles()
        floor = max(self._floor(), self.bridge.client.config.security_profile)
        for member in members:
            data = profiles.get(member)
            if member not in NETWORK_SLOTS:
                return f"{member!r} is none of the slots {','.join(NETWORK_SLOTS)}"
            if not isinstance(data, dict):
                return f"slot {member} holds no network profile"
            level = data.get("securityProfile")
            if not isinstance(level, int) or level < floor:
                return f"slot {member}: security profile {level} is below {floor}"
        return ""

    def _candidates(self) -> list[ClientConfig]:
        """The links to try, best first: the slots of NetworkConfigurationPriority that
        hold a usable profile, then the station file's, none below the floor (A05)."""
        base = self._base_config
        profiles = self._profiles()
        out: list[ClientConfig] = []
        for name in self.bridge.dm.value("OCPPCommCtrlr", "NetworkConfigurationPriority").split(
            ","
        ):
            data = profiles.get(name.strip())
            if isinstance(data, dict) and isinstance(level := data.get("securityProfile"), int):
                url = str(data.get("ocppCsmsUrl"))
                timeout = data.get("messageTimeout")
                out.append(
                    dataclasses.replace(
                        base,
                        csms_url=url,
                        security_profile=level,
                        call_timeout=float(timeout)
                        if isinstance(timeout, int) and timeout > 0
                        else base.call_timeout,
                    )
                )
        own = float(max(1, self.bridge.dm.number("OCPPCommCtrlr", "MessageTimeout")))
        out.append(dataclasses.replace(base, call_timeout=own))
        floor = self._floor()
        return [c for c in out if c.security_profile >= floor] or out[:1]

    def connection_round(self) -> int:
        """Failed connections that try every link of NetworkConfigurationPriority
        NetworkProfileConnectionAttempts times (B10): one round."""
        attempts = max(
            1, self.bridge.dm.number("OCPPCommCtrlr", "NetworkProfileConnectionAttempts")
        )
        return attempts * max(1, len(self._candidates()))

    def _select_network_profile(self, *, first: bool = False, step: int = 0) -> None:
        client = self.bridge.client
        candidates = self._candidates()
        current = next(
            (
                i
                for i, c in enumerate(candidates)
                if (c.csms_url, c.security_profile)
                == (client.config.csms_url, client.config.security_profile)
            ),
            -1,
        )
        chosen = (
            candidates[0]
            if first or current < 0
            else candidates[(current + step) % len(candidates)]
        )
        client.config = dataclasses.replace(
            client.config,
            csms_url=chosen.csms_url,
            security_profile=chosen.security_profile,
            call_timeout=chosen.call_timeout,
        )

    def keep_profile_timeout(self) -> None:
        """The device model was applied to the link: a network profile in use keeps its
        messageTimeout (B09)."""
        client = self.bridge.client
        for c in self._candidates():
            if (c.csms_url, c.security_profile) == (
                client.config.csms_url,
                client.config.security_profile,
            ):
                client.config = dataclasses.replace(client.config, call_timeout=c.call_timeout)
                return

    def _connect_failed(self) -> None:
        """B09: after NetworkProfileConnectionAttempts failures, the next profile.
        A04: a refused password or CSMS certificate is a security event (once until the
        link is up again)."""
        error = self.bridge.client.last_error
        kind = (
            sec.FAILED_TO_AUTHENTICATE
            if "HTTP 401" in error
            else sec.INVALID_CSMS_CERTIFICATE
            if "CERTIFICATE_VERIFY_FAILED" in error
            else None
        )
        if kind is not None and kind not in self._link_events:
            self._link_events.add(kind)
            self.bridge.client.spawn(
                self.security.record(kind, error[:255]), "SecurityEventNotification"
            )
        self._failures += 1
        if self._failures >= max(
            1, self.bridge.dm.number("OCPPCommCtrlr", "NetworkProfileConnectionAttempts")
        ):
            self._failures = 0
            before = self.bridge.client.config.csms_url
            self._select_network_profile(step=1)
            log.warning(
                "CSMS unreachable through %s: trying %s", before, self.bridge.client.config.csms_url
            )

    # --- GetReport (B08) ---------------------------------------------------------------------

    def _get_report(self, p: Payload) -> Reply:
        """B08: NotifyReport with the variables matching ``componentVariable`` and
        ``componentCriteria``.  Every component of this station is available, enabled and
        active and none reports a problem: Active/Available/Enabled match all, Problem
        none.  No match: EmptyResultSet."""
        from secc.ocpp_bridge.csms_handlers import structure_report

        bridge = self.bridge
        criteria = p.get("componentCriteria")
        wanted = p.get("componentVariable")
        data = bridge.dm.report_data() + structure_report(bridge)
        if isinstance(criteria, list) and criteria and set(criteria) <= {"Problem"}:
            data = []
        if isinstance(wanted, list) and wanted:
            data = [d for d in data if any(_matches(d, w) for w in wanted if isinstance(w, dict))]
        if not data:
            return Reply({"status": "EmptyResultSet"})
        request_id = p.get("requestId")

        async def notify() -> None:
            await bridge.client.call(
                "NotifyReport",
                {
                    "requestId": request_id,
                    "generatedAt": mapping.ocpp_timestamp(bridge.utc_now()),
                    "seqNo": 0,
                    "tbc": False,
                    "reportData": data,
                },
            )

        return Reply({"status": "Accepted"}, after=notify)

    # --- UnlockConnector (F05) ---------------------------------------------------------------

    async def _unlock_connector(self, p: Payload) -> Reply:
        evse_id, connector_id = p.get("evseId"), p.get("connectorId")
        target = self.bridge.evses.get(evse_id) if isinstance(evse_id, int) else None
        if target is None or connector_id != target.config.connector_id:
            return Reply({"status": "UnknownConnector"})
        if target.transaction is not None and target._authorized:  # F05.FR.02
            return Reply({"status": "OngoingAuthorizedTransaction"})
        hook = self.hooks.connector_lock
        if hook is None:
            return Reply({"status": "UnlockFailed", "statusInfo": _info("NoConnectorLock")})
        assert isinstance(evse_id, int) and isinstance(connector_id, int)
        unlocked = await hook.unlock(evse_id, connector_id)
        return Reply({"status": "Unlocked" if unlocked else "UnlockFailed"})

    # --- DataTransfer (P01 from the CSMS, P02 to it) -----------------------------------------

    def _data_transfer(self, p: Payload) -> Reply:
        hook = self.hooks.data_transfer
        if hook is None:
            return Reply({"status": "UnknownVendorId"})
        message_id = p.get("messageId")
        status, data = hook.data_transfer(
            str(p.get("vendorId")),
            message_id if isinstance(message_id, str) else None,
            p.get("data"),
        )
        answer: dict[str, object] = {"status": status}
        if data is not None:
            answer["data"] = data
        return Reply(answer)

    async def data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: object = None
    ) -> dict[str, object]:
        """P02: a DataTransfer to the CSMS; its answer (status, data) as sent."""
        payload: dict[str, object] = {"vendorId": vendor_id}
        if message_id is not None:
            payload["messageId"] = message_id
        if data is not None:
            payload["data"] = data
        return await self.bridge.client.call("DataTransfer", payload)


def _matches(entry: dict[str, object], wanted: dict[str, object]) -> bool:
    """A reportData entry against one ComponentVariableType (absent fields match all)."""
    have_c, want_c = entry.get("component"), wanted.get("component")
    have_v, want_v = entry.get("variable"), wanted.get("variable")
    assert isinstance(have_c, dict) and isinstance(have_v, dict)
    if not isinstance(want_c, dict) or have_c.get("name") != want_c.get("name"):
        return False
    if "instance" in want_c and have_c.get("instance") != want_c["instance"]:
        return False
    want_evse = want_c.get("evse")
    if isinstance(want_evse, dict):
        have_evse = have_c.get("evse")
        if not isinstance(have_evse, dict) or have_evse.get("id") != want_evse.get("id"):
            return False
        if "connectorId" in want_evse and have_evse.get("connectorId") != want_evse["connectorId"]:
            return False
    if isinstance(want_v, dict):
        if have_v.get("name") != want_v.get("name"):
            return False
        if "instance" in want_v and have_v.get("instance") != want_v["instance"]:
            return False
    return True


def _no_display(p: Payload) -> Reply:
    """O01-O06 on a station without a display: nothing is shown, nothing is stored."""
    if "message" in p:  # SetDisplayMessage
        return Reply({"status": "Rejected", "statusInfo": _info("NoDisplay")})
    return Reply({"status": "Unknown"})  # GetDisplayMessages / ClearDisplayMessage


def _info(reason: str, detail: str | None = None) -> dict[str, object]:
    return {"reasonCode": reason[:20], "additionalInfo": (detail or reason)[:512]}
