"""GetLog (OCPP 2.0.1 N01) to an HTTP server on loopback, and GetReport with criteria
(B08), against the test CSMS.

N01: Accepted with the file name, LogStatusNotification Uploading then Uploaded (or
UploadFailure when the server is unreachable or refuses, after the asked retries), the
security log's entries in the uploaded file; a location that is no http(s) URL is
Rejected; the station serves on.  B08: NotifyReport with exactly the matching variables;
no match (or the Problem criterion on a station without problems) is EmptyResultSet.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import threading
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ocpp.v201 import call

from secc.ocpp_bridge.bridge import BridgeConfig
from tests.ocpp.conftest import OpsLink
from tests.ocpp.csms import TestCsms, wait_for
from tests.ocpp.station import STATION, build, running

FAST = BridgeConfig(link_retry=0.05, meter_interval=3600)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))  # type: ignore[arg-type]


class _Store(http.server.BaseHTTPRequestHandler):
    stored: dict[str, bytes]
    status = 201

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.status < 300:
            self.stored[self.path] = body
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def upload_server(status: int = 201) -> Iterator[tuple[str, dict[str, bytes]]]:
    """An HTTP server on loopback storing what is PUT (answering ``status``)."""
    stored: dict[str, bytes] = {}
    handler = type("Handler", (_Store,), {"stored": stored, "status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/logs/", stored
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_log(kind: str, url: str, request_id: int, **kw: object) -> call.GetLog:
    return call.GetLog(log={"remote_location": url}, log_type=kind, request_id=request_id, **kw)


def test_security_log_is_uploaded(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            csms, station, cp = link.csms, link.station, link.cp
            await station.bridge.security.record("TamperDetectionActivated", "lid opened")
            with upload_server() as (url, stored):
                answer = await cp.call(get_log("SecurityLog", url, 11))
                assert answer.status == "Accepted" and answer.filename
                await wait_for(lambda: len(csms.log_statuses) == 2)
                diag = await cp.call(get_log("DiagnosticsLog", url, 12))
                assert diag.status == "Accepted"
                await wait_for(lambda: len(csms.log_statuses) == 4)
        assert csms.log_statuses == [
            {"status": "Uploading", "request_id": 11},
            {"status": "Uploaded", "request_id": 11},
            {"status": "Uploading", "request_id": 12},
            {"status": "Uploaded", "request_id": 12},
        ]
        security = stored[f"/logs/{answer.filename}"].decode().splitlines()
        assert [json.loads(line)["type"] for line in security] == [
            "StartupOfTheDevice",
            "TamperDetectionActivated",
        ]
        snapshot = json.loads(stored[f"/logs/{diag.filename}"])
        assert snapshot["station"] == STATION and snapshot["evses"]["1"]["status"] == "Available"

    run(main())


def test_unreachable_or_refusing_log_server_ends_in_upload_failure(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            csms, cp = link.csms, link.cp
            dead = f"http://127.0.0.1:{free_port()}/logs/"
            answer = await cp.call(get_log("SecurityLog", dead, 1, retries=2, retry_interval=0))
            assert answer.status == "Accepted"
            await wait_for(lambda: len(csms.log_statuses) == 2)
            with upload_server(status=403) as (url, stored):
                answer = await cp.call(get_log("DiagnosticsLog", url, 2))
                assert answer.status == "Accepted"
                await wait_for(lambda: len(csms.log_statuses) == 4)
                assert stored == {}
            beats = csms.heartbeats  # the station serves on
            await cp.call(call.TriggerMessage(requested_message="Heartbeat"))
            await wait_for(lambda: csms.heartbeats > beats)
        assert [(s["status"], s["request_id"]) for s in csms.log_statuses] == [
            ("Uploading", 1),
            ("UploadFailure", 1),
            ("Uploading", 2),
            ("UploadFailure", 2),
        ]

    run(main())


def test_malformed_log_location_is_rejected(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            csms, cp = link.csms, link.cp
            for bad in ("not a url", "ftp://127.0.0.1/logs/", "http:///nohost"):
                answer = await cp.call(get_log("SecurityLog", bad, 3))
                assert answer.status == "Rejected", bad
                assert answer.status_info["reason_code"] == "InvalidURL"
            trigger = await cp.call(call.TriggerMessage(requested_message="LogStatusNotification"))
            assert trigger.status == "Accepted"
            await wait_for(lambda: len(csms.log_statuses) == 1)
        assert csms.log_statuses == [{"status": "Idle"}]

    run(main())


def test_get_report_with_criteria(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            csms, cp = link.csms, link.cp
            one = await cp.call(
                call.GetReport(
                    request_id=21,
                    component_variable=[
                        {
                            "component": {"name": "OCPPCommCtrlr"},
                            "variable": {"name": "HeartbeatInterval"},
                        }
                    ],
                )
            )
            assert one.status == "Accepted"
            evse = await cp.call(
                call.GetReport(
                    request_id=22,
                    component_criteria=["Available"],
                    component_variable=[{"component": {"name": "Connector", "evse": {"id": 1}}}],
                )
            )
            assert evse.status == "Accepted"
            await wait_for(lambda: len(csms.reports) == 2)
            for criteria, wanted in (
                (["Problem"], None),
                (None, [{"component": {"name": "NoSuchCtrlr"}}]),
                (None, [{"component": {"name": "EVSE", "evse": {"id": 5}}}]),
            ):
                empty = await cp.call(
                    call.GetReport(
                        request_id=23, component_criteria=criteria, component_variable=wanted
                    )
                )
                assert empty.status == "EmptyResultSet", (criteria, wanted)
        by_id = {r["request_id"]: r["report_data"] for r in csms.reports}
        assert [(d["component"]["name"], d["variable"]["name"]) for d in by_id[21]] == [
            ("OCPPCommCtrlr", "HeartbeatInterval")
        ]
        assert {d["variable"]["name"] for d in by_id[22]} == {
            "AvailabilityState",
            "Available",
            "ConnectorType",
        }
        assert all(d["component"]["evse"]["connector_id"] == 1 for d in by_id[22])

    run(main())


def test_a_new_get_log_cancels_the_running_upload(tmp_path: Path) -> None:
    """N01: GetLog while an upload runs: AcceptedCanceled; the old request's status is
    AcceptedCanceled and it never reports Uploaded; the new one is uploaded."""
    release = threading.Event()

    class Slow(_Store):
        def do_PUT(self) -> None:
            if "first" in self.path:
                release.wait(20)  # hold the first upload until the test lets it go
            super().do_PUT()

    async def main() -> None:
        stored: dict[str, bytes] = {}
        handler = type("Handler", (Slow,), {"stored": stored, "status": 201})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        csms = TestCsms()
        await csms.start()
        station = build(tmp_path, csms.url, config=FAST)
        try:
            async with running(station):
                cp = await csms.station(STATION)
                first = await cp.call(get_log("SecurityLog", f"{base}/first/", 31))
                assert first.status == "Accepted"
                await wait_for(lambda: len(csms.log_statuses) == 1)
                second = await cp.call(get_log("SecurityLog", f"{base}/second/", 32))
                assert second.status == "AcceptedCanceled"
                await wait_for(lambda: len(csms.log_statuses) == 4)
                release.set()
                await asyncio.sleep(0.3)
        finally:
            release.set()
            server.shutdown()
            server.server_close()
        await csms.stop()
        assert [(s["status"], s["request_id"]) for s in csms.log_statuses] == [
            ("Uploading", 31),
            ("AcceptedCanceled", 31),
            ("Uploading", 32),
            ("Uploaded", 32),
        ]

    run(main())
