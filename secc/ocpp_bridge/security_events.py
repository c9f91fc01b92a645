"""Security events (OCPP 2.0.1 A04): a security log on disk and SecurityEventNotification.

Every event is first appended to the security log (one JSON object a line, fsynced,
rotated to ``<name>.1`` past ``max_bytes``; GetLog serves it), then queued in the durable
outbox with the transaction events, so a notification survives a lost link and a restart
and reaches the CSMS in order (A04.FR.01/02; the outbox retries like TransactionEvent).
All events are sent, the critical ones of OCPP's list and the others alike.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from secc.ocpp_bridge import mapping
from secc.ocpp_bridge.queue import DurableQueue

log = logging.getLogger(__name__)

# OCPP 2.0.1 part 2, appendix "Security events" (the types the station raises)
STARTUP = "StartupOfTheDevice"
RESET = "ResetOrReboot"
RECONFIGURATION = "ReconfigurationOfSecurityParameters"
FAILED_TO_AUTHENTICATE = "FailedToAuthenticateAtCsms"
INVALID_CSMS_CERTIFICATE = "InvalidCsmsCertificate"
# A02/A03: a certificate sent with CertificateSigned that is refused (any certificateType)
INVALID_STATION_CERTIFICATE = "InvalidChargingStationCertificate"
# A02.FR.29 / A03.FR.25 (errata 2025-01): a renewed client certificate that never
# connected was discarded and the previous one is in use again
DISCARDED_RENEWED_CERTIFICATE = "DiscardedRenewedClientCertificate"
INVALID_MESSAGES = "InvalidMessages"
TAMPER = "TamperDetectionActivated"
FIRMWARE_UPDATED = "FirmwareUpdated"
INVALID_FIRMWARE_SIGNATURE = "InvalidFirmwareSignature"
INVALID_FIRMWARE_CERTIFICATE = "InvalidFirmwareSigningCertificate"
MEMORY_EXHAUSTION = "MemoryExhaustion"  # flash or RAM getting full (the outbox's disk)
SECURITY_LOG = "security.log"


class SecurityLog:
    """The on-disk security log (JSON lines, bounded by one rotation)."""

    def __init__(self, path: Path, *, max_bytes: int = 1_000_000) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def append(self, entry: dict[str, object]) -> None:
        line = (json.dumps(entry, separators=(",", ":"), sort_keys=True) + "\n").encode()
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                if self.path.stat().st_size + len(line) > self.max_bytes:
                    os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            except FileNotFoundError:
                pass
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def entries(self) -> list[dict[str, object]]:
        """Every entry kept (the rotated file first), oldest first."""
        out: list[dict[str, object]] = []
        for path in (self.path.with_name(self.path.name + ".1"), self.path):
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                continue
            for line in text.splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue  # a torn last line after a power loss
        return out


class SecurityEvents:
    """Raise security events: logged on disk, then queued for the CSMS."""

    def __init__(
        self,
        queue: DurableQueue,
        security_log: SecurityLog,
        wake: Callable[[], None],
        utc_now: Callable[[], dt.datetime],
    ) -> None:
        self.queue = queue
        self.log = security_log
        self._wake = wake
        self._utc_now = utc_now

    def _write(self, kind: str, tech_info: str) -> None:
        timestamp = mapping.ocpp_timestamp(self._utc_now())
        try:
            self.log.append({"timestamp": timestamp, "type": kind, "techInfo": tech_info})
        except OSError as exc:  # a full disk: the CSMS still hears of it (outbox in memory)
            log.error("security log %s: %s", self.log.path, exc)
        payload: dict[str, object] = {"type": kind, "timestamp": timestamp}
        if tech_info:
            payload["techInfo"] = tech_info[:255]
        self.queue.enqueue("SecurityEventNotification", payload)

    async def record(self, kind: str, tech_info: str = "") -> None:
        """Log and queue one event (disk work off the event loop); never raises for a
        full disk: the event is then in the process log only."""
        log.warning("security event %s %s", kind, tech_info)
        try:
            await self.queue.off_loop(self._write, kind, tech_info)
        except (OSError, sqlite3.Error) as exc:
            log.error("security event %s not recorded: %s", kind, exc)
            return
        self._wake()
