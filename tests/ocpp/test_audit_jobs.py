"""A damaged firmware-update or log-upload record in the station's state (the outbox
database, ``ocpp.sqlite``) after a restart: the station starts and connects, logs an
error naming the file and the record, ends that request for the CSMS when its requestId
is readable (FirmwareStatusNotification DownloadFailed / LogStatusNotification
UploadFailure: N01/L01 promise a final status for every accepted request), and takes up
the other job as after any restart (N01: the upload ends Uploaded with its requestId;
L01: an update that rebooted reports Installed).  A damaged record of another kind
(availability) does not keep the station from starting either.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import logging
import sqlite3
import threading
from collections.abc import Awaitable
from pathlib import Path

import pytest
from ocpp.v201 import call

from hal.hooks import SimulatedReset, StationHooks
from secc.ocpp_bridge.queue import DurableQueue
from tests.ocpp.conftest import OpsLink
from tests.ocpp.csms import wait_for
from tests.ocpp.test_ops_logs_report import _Store, get_log, upload_server

DB = "ocpp.sqlite"


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))  # type: ignore[arg-type]


def seed(directory: Path, records: dict[str, str]) -> None:
    """Write raw state records (JSON text, or damage) as a crash could leave them."""
    DurableQueue(directory / DB).close()  # the tables, as the station makes them
    with sqlite3.connect(directory / DB) as db:
        for key, raw in records.items():
            db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, raw))


def log_job(url: str, request_id: int) -> str:
    return json.dumps(
        {
            "requestId": request_id,
            "logType": "SecurityLog",
            "url": url + "security.log",
            "oldestTimestamp": None,
            "latestTimestamp": None,
            "retries": 0,
            "retryInterval": 0,
        }
    )


def firmware_job(request_id: int, stage: str) -> str:
    return json.dumps(
        {
            "requestId": request_id,
            "location": "http://127.0.0.1:9/fw.bin",
            "signingCertificate": "-----BEGIN CERTIFICATE-----\n",
            "signature": "c2ln",
            "retrieveDateTime": None,
            "installDateTime": None,
            "retries": 0,
            "retryInterval": 0,
            "stage": stage,
        }
    )


def errors_naming(caplog: pytest.LogCaptureFixture, directory: Path, key: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR
        and str(directory / DB) in r.getMessage()
        and key in r.getMessage()
    ]


def test_unreadable_firmware_record_keeps_the_log_upload(
    ops_link: OpsLink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        with upload_server() as (url, stored):
            seed(
                tmp_path,
                {
                    "firmware_job": '{"requestId": 41, "location": "http://x/f',  # cut off
                    "log_job": log_job(url, 42),
                    "availability": "\x00\x01garbage",
                },
            )
            async with ops_link() as link:
                csms = link.csms
                await wait_for(
                    lambda: [s["status"] for s in csms.log_statuses] == ["Uploading", "Uploaded"]
                )
                assert {s["request_id"] for s in csms.log_statuses} == {42}
                assert "/logs/security.log" in stored
                assert errors_naming(caplog, tmp_path, "firmware_job")
                assert errors_naming(caplog, tmp_path, "availability")
                assert link.bridge.ops.operative(1)
                assert link.bridge.queue.get_state("firmware_job") is None
                assert not csms.firmware_statuses  # no requestId to end
                idle = await link.cp.call(
                    call.TriggerMessage(requested_message="FirmwareStatusNotification")
                )
                assert idle.status == "Accepted"
                await wait_for(lambda: csms.firmware_statuses == [{"status": "Idle"}])

    run(main())


def test_incomplete_firmware_record_ends_its_request(
    ops_link: OpsLink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        with upload_server() as (url, _stored):
            seed(
                tmp_path,
                {
                    "firmware_job": json.dumps({"requestId": 43, "stage": "download"}),
                    "log_job": log_job(url, 44),
                },
            )
            async with ops_link() as link:
                csms = link.csms
                await wait_for(
                    lambda: (
                        csms.firmware_statuses == [{"status": "DownloadFailed", "request_id": 43}]
                    )
                )
                await wait_for(
                    lambda: [s["status"] for s in csms.log_statuses] == ["Uploading", "Uploaded"]
                )
                assert errors_naming(caplog, tmp_path, "firmware_job")
                assert link.bridge.queue.get_state("firmware_job") is None

    run(main())


def test_damaged_log_record_keeps_the_firmware_update(
    ops_link: OpsLink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        seed(
            tmp_path,
            {
                "firmware_job": firmware_job(45, "rebooting"),
                "log_job": json.dumps({"requestId": 46, "logType": "SecurityLog"}),  # no url
            },
        )
        async with ops_link() as link:
            csms = link.csms
            await wait_for(
                lambda: csms.log_statuses == [{"status": "UploadFailure", "request_id": 46}]
            )
            # the update the station rebooted for is installed (L01)
            await wait_for(lambda: [s["status"] for s in csms.firmware_statuses] == ["Installed"])
            assert csms.firmware_statuses[0]["request_id"] == 45
            assert errors_naming(caplog, tmp_path, "log_job")
            assert link.bridge.queue.get_state("log_job") is None
            assert link.bridge.queue.get_state("firmware_job") is None

    run(main())


def test_unreadable_log_record_keeps_the_firmware_update(
    ops_link: OpsLink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        seed(tmp_path, {"firmware_job": firmware_job(47, "rebooting"), "log_job": "[1, 2"})
        async with ops_link() as link:
            csms = link.csms
            await wait_for(lambda: [s["status"] for s in csms.firmware_statuses] == ["Installed"])
            assert errors_naming(caplog, tmp_path, "log_job")
            assert not csms.log_statuses
            answer = await link.cp.call(
                call.TriggerMessage(requested_message="LogStatusNotification")
            )
            assert answer.status == "Accepted"
            await wait_for(lambda: csms.log_statuses == [{"status": "Idle"}])

    run(main())


def test_reset_on_idle_waits_for_a_log_upload(ops_link: OpsLink) -> None:
    """B11 (remark, errata 2025-06): OnIdle means no use case runs, a log upload
    included: Scheduled while it runs; the reset comes once it ended (Uploaded first).
    Immediate does not wait."""
    release = threading.Event()

    class Held(_Store):
        def do_PUT(self) -> None:
            release.wait(30)  # the upload runs until the test lets it go
            super().do_PUT()

    async def main() -> None:
        stored: dict[str, bytes] = {}
        handler = type("Handler", (Held,), {"stored": stored, "status": 201})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}/logs/"
        hook = SimulatedReset()
        try:
            async with ops_link(hooks=StationHooks(reset=hook)) as link:
                cp, csms = link.cp, link.csms
                answer = await cp.call(get_log("SecurityLog", base, 51))
                assert answer.status == "Accepted"
                await wait_for(lambda: [s["status"] for s in csms.log_statuses] == ["Uploading"])
                reset = await cp.call(call.Reset(type="OnIdle"))
                assert reset.status == "Scheduled"
                assert hook.resets == []
                release.set()
                await wait_for(lambda: hook.resets == ["OnIdle"])
                assert [s["status"] for s in csms.log_statuses] == ["Uploading", "Uploaded"]
                assert [name for name in stored if name.startswith("/logs/")]
        finally:
            release.set()
            server.shutdown()
            server.server_close()

    run(main())
