"""GetLog (OCPP 2.0.1 N01): the security log or a diagnostics snapshot uploaded to the
CSMS's URL, with LogStatusNotification through Uploading to Uploaded / UploadFailure.

The upload is one HTTP(S) PUT of the file to ``remoteLocation`` (the file name appended
when the URL ends with ``/``), retried ``retries`` times ``retryInterval`` seconds apart.
A location that is not an http(s) URL with a host is Rejected in the GetLog answer; an
unreachable or refusing server ends in UploadFailure; a new GetLog cancels a running
upload (AcceptedCanceled, N01.FR.?: the old request's last status is AcceptedCanceled).
The station serves on meanwhile: the upload runs in a thread, off the event loop.
LogStatusNotifications go through the durable outbox.  The request is kept in the
outbox's state (key ``log_job``) until its last status: an upload a restart interrupted
is taken up again with the same requestId (Uploading, the log as it is then, the same
file name and retries), as the CSMS still waits for that request's outcome.

SecurityLog: the entries of :mod:`secc.ocpp_bridge.security_events` between
``oldestTimestamp`` and ``latestTimestamp``, one JSON object a line.  DiagnosticsLog: a
JSON snapshot of the station's OCPP state (link, EVSEs, availability, outbox).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Coroutine
from typing import TYPE_CHECKING

from secc.ocpp_bridge.client import Reply

if TYPE_CHECKING:
    from secc.ocpp_bridge.bridge import Bridge

log = logging.getLogger(__name__)
Payload = dict[str, object]
UPLOAD_TIMEOUT = 30.0
JOB_KEY = "log_job"  # outbox state: the upload in progress (survives a restart)


def _parse_time(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def valid_location(url: str) -> bool:
    """An http(s) URL with a host (what this station can upload to / download from)."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in {"http", "https"} and bool(parts.hostname)


def http_put(url: str, body: bytes, timeout: float = UPLOAD_TIMEOUT) -> None:
    """PUT ``body`` (no proxy from the environment, as the OCPP link); raises OSError
    (URLError, HTTPError) when the server does not store it (non-2xx)."""
    if not valid_location(url):
        raise ValueError(f"not an http(s) URL: {url!r}")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, data=body, method="PUT", headers={"Content-Type": "application/octet-stream"}
    )
    with OPENER.open(request, timeout=timeout) as response:
        if not 200 <= response.status < 300:
            raise OSError(f"HTTP {response.status}")


OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class LogUploads:
    """GetLog handling for the station (one upload at a time)."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self._task: asyncio.Task[None] | None = None
        self._request_id: int | None = None

    @property
    def busy(self) -> bool:
        """A request is being carried out (Reset OnIdle waits for it)."""
        return self._task is not None and not self._task.done()

    def filename(self, log_type: str) -> str:
        stamp = self.bridge.utc_now().strftime("%Y%m%dT%H%M%SZ")
        station = self.bridge.client.config.station_id
        kind = "security" if log_type == "SecurityLog" else "diagnostics"
        return f"{station}-{kind}-{stamp}.log"

    def content(self, log_type: str, oldest: object, latest: object) -> bytes:
        if log_type == "SecurityLog":
            low, high = _parse_time(oldest), _parse_time(latest)
            lines = []
            for entry in self.bridge.security.log.entries():
                when = _parse_time(entry.get("timestamp"))
                if when is not None and (
                    (low is not None and when < low) or (high is not None and when > high)
                ):
                    continue
                lines.append(json.dumps(entry, sort_keys=True))
            return ("\n".join(lines) + "\n" if lines else "").encode()
        b = self.bridge
        snapshot = {
            "station": b.client.config.station_id,
            "generatedAt": b.utc_now().isoformat(),
            "online": b.client.online.is_set(),
            "connects": b.client.connects,
            "lastError": b.client.last_error,
            "outbox": len(b.queue),
            "evses": {
                str(e): {
                    "transaction": (x.transaction or {}).get("id"),
                    "status": b.client.connector_status(e, x.config.connector_id),
                }
                for e, x in sorted(b.evses.items())
            },
        }
        return (json.dumps(snapshot, indent=1, sort_keys=True) + "\n").encode()

    def get_log(self, p: Payload) -> Reply:
        log_type = str(p.get("logType"))
        request_id = p.get("requestId")
        params = p.get("log")
        params = params if isinstance(params, dict) else {}
        location = str(params.get("remoteLocation", ""))
        if not valid_location(location):
            return Reply({"status": "Rejected", "statusInfo": _info("InvalidURL", location)})
        retries = p.get("retries")
        interval = p.get("retryInterval")
        name = self.filename(log_type)
        url = location + name if location.endswith("/") else location
        record: Payload = {
            "requestId": request_id if isinstance(request_id, int) else None,
            "logType": log_type,
            "url": url,
            "oldestTimestamp": params.get("oldestTimestamp"),
            "latestTimestamp": params.get("latestTimestamp"),
            "retries": retries if isinstance(retries, int) else 0,
            "retryInterval": interval if isinstance(interval, int) else 0,
        }
        try:  # Accepted only for what survives a restart
            self.bridge.queue.set_state({JOB_KEY: record})
        except (OSError, sqlite3.Error) as exc:
            return Reply({"status": "Rejected", "statusInfo": _info("Storage", str(exc))})
        status = "Accepted"
        if self._task is not None and not self._task.done():
            self._task.cancel()  # N01: the running upload is cancelled for the new one
            status = "AcceptedCanceled"
        previous = self._request_id
        self._request_id = request_id if isinstance(request_id, int) else None
        upload = self._job(record, previous if status == "AcceptedCanceled" else None)

        async def start() -> None:
            self._task = asyncio.ensure_future(upload)

        return Reply({"status": status, "filename": name}, after=start)

    def _job(self, record: Payload, canceled: int | None = None) -> Coroutine[None, None, None]:
        retries, interval = record.get("retries"), record.get("retryInterval")
        body = self.content(
            str(record.get("logType")), record.get("oldestTimestamp"), record.get("latestTimestamp")
        )
        return self._upload(
            str(record.get("url")),
            body,
            retries if isinstance(retries, int) else 0,
            float(interval) if isinstance(interval, int) else 0.0,
            canceled,
        )

    async def resume(self) -> None:
        """At start-up, once the link is up: an upload a restart interrupted goes on."""
        queue = self.bridge.queue
        record = queue.get_state(JOB_KEY)
        if record is None or (self._task is not None and not self._task.done()):
            return
        problem = job_problem(record)
        rid = record.get("requestId") if isinstance(record, dict) else None
        self._request_id = rid if isinstance(rid, int) else None
        if problem:  # nothing to upload again: the request ends as failed
            log.error(
                "%s: log upload record %r is damaged (%s); upload %s dropped",
                queue.path,
                JOB_KEY,
                problem,
                rid,
            )
            if self._request_id is not None:
                await self._notify("UploadFailure")  # also clears the record
            else:
                await queue.off_loop(queue.set_state, {JOB_KEY: None})
            return
        assert isinstance(record, dict)
        log.warning("log upload %s interrupted by a restart: uploading again", rid)
        self._task = asyncio.ensure_future(self._job(record))

    async def _queue(self, payload: Payload, *, final: bool = False) -> None:
        """LogStatusNotification through the durable outbox (``final``: the job ends,
        in the same transaction)."""
        queue = self.bridge.queue
        state = {JOB_KEY: None} if final else None
        try:
            await queue.off_loop(
                functools.partial(queue.enqueue, "LogStatusNotification", payload, state=state)
            )
        except (OSError, sqlite3.Error) as exc:
            log.error("LogStatusNotification %s not queued: %s", payload["status"], exc)
        self.bridge.sender.wake()

    async def _notify(self, status: str) -> None:
        payload: Payload = {"status": status}
        if self._request_id is not None:
            payload["requestId"] = self._request_id
        self.bridge.ops.log_status = (
            payload if status == "Uploading" else {"status": "Idle"}
        )  # what a TriggerMessage reports meanwhile
        await self._queue(payload, final=status != "Uploading")

    async def _upload(
        self, url: str, body: bytes, retries: int, interval: float, canceled: int | None
    ) -> None:
        if canceled is not None:
            await self._queue({"status": "AcceptedCanceled", "requestId": canceled})
        await self._notify("Uploading")
        for attempt in range(retries + 1):
            try:
                await asyncio.to_thread(http_put, url, body)
            except (OSError, ValueError) as exc:
                log.warning("log upload to %s failed (attempt %d): %s", url, attempt + 1, exc)
                if attempt < retries:
                    await asyncio.sleep(interval)
                continue
            await self._notify("Uploaded")
            return
        await self._notify("UploadFailure")


def _info(code: str, detail: str) -> dict[str, object]:
    return {"reasonCode": code[:20], "additionalInfo": detail[:512]}


def job_problem(record: object) -> str:
    """What makes a stored upload record unusable ("" when it is whole): what
    :meth:`LogUploads.get_log` stores, read back after a restart."""
    if not isinstance(record, dict):
        return f"not an object but {type(record).__name__}"
    if record.get("logType") not in ("SecurityLog", "DiagnosticsLog"):
        return f"unknown logType {record.get('logType')!r}"
    if not isinstance(record.get("url"), str) or not valid_location(str(record["url"])):
        return "url is no http(s) URL"
    for name in ("requestId", "retries", "retryInterval"):
        if record.get(name) is not None and not isinstance(record.get(name), int):
            return f"{name} is not an integer"
    return ""
