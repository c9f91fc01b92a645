"""Firmware updates (L01) and log uploads (N01) across a restart of the station process.

What the CSMS may expect (OCPP 2.0.1 part 2, L01 and N01): an accepted request ends with
a final status for its requestId, even when the station restarts in between.
InstallRebooting is followed, once the station runs again (BootNotification reason
FirmwareUpdate), by Installed and the security event FirmwareUpdated (L01.FR.31); a
TriggerMessage then reports Idle (L01.FR.25).  A process that dies while installing
reports InstallationFailed after the restart; a download or upload cut off by a
``kill -9`` is taken up again with the same requestId and ends normally.  Every status
is delivered once, in order.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import shutil
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ocpp.v201 import call

from certs.store import Store
from hal.hooks import SimulatedFirmwareInstall, StationHooks
from tests.ocpp.csms import TestCsms, wait_for
from tests.ocpp.station import STATION, build, running
from tests.ocpp.test_ops_firmware import ALL_STATES, IMAGE, image_server, sign, signer, update

ROOT = Path(__file__).resolve().parents[2]


def run(coro: Any) -> None:
    asyncio.run(asyncio.wait_for(coro, 120))


def states(csms: TestCsms, request_id: int) -> list[str]:
    return [s["status"] for s in csms.firmware_statuses if s.get("request_id") == request_id]


def boot_reasons(csms: TestCsms) -> list[Any]:
    return [p["reason"] for action, p in csms.calls if action == "BootNotification"]


async def spawn(directory: Path, store: Path, url: str, mode: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.ocpp.firmware_proc",
        str(directory),
        str(store),
        url,
        mode,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.decode().strip() == "up"
    return proc


async def ended(proc: asyncio.subprocess.Process) -> int:
    return await asyncio.wait_for(proc.wait(), 30)


async def kill9(proc: asyncio.subprocess.Process) -> None:
    """``kill -9``: a transfer in progress is cut off."""
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()


@contextmanager
def held_server(body: bytes) -> Iterator[tuple[str, threading.Event, list[tuple[str, bytes]]]]:
    """GET /fw.bin serves ``body``; PUT stores; the first request of each kind waits for
    ``release`` (a transfer in progress when the station dies)."""
    release = threading.Event()
    seen: list[tuple[str, bytes]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _hold(self) -> None:
            if not any(m == self.command for m, _ in seen[:-1]):
                release.wait(30)

        def do_GET(self) -> None:
            seen.append(("GET", b""))
            self._hold()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self) -> None:
            data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen.append(("PUT", data))
            self._hold()
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", release, seen
    finally:
        release.set()
        server.shutdown()
        server.server_close()


@dataclass
class Restarts:
    """A test CSMS and the station's state (``state``) and certificate store (``store``,
    a copy of the test PKI's): the station runs first as a process (:meth:`spawn`), then,
    after that process ended, in this one (:meth:`restarted`) on the same state."""

    csms: TestCsms
    state: Path
    store: Path

    @asynccontextmanager
    async def process(self, mode: str) -> AsyncIterator[asyncio.subprocess.Process]:
        """The station as a process in ``mode`` (``tests/ocpp/firmware_proc.py``), online;
        killed at the end if it is still running."""
        proc = await spawn(self.state, self.store, self.csms.url, mode)
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    @asynccontextmanager
    async def restarted(self) -> AsyncIterator[SimulatedFirmwareInstall]:
        """The station again, online, with the simulated firmware installer (yielded)."""
        station = build(self.state, self.csms.url, store=Store(self.store))
        hook = SimulatedFirmwareInstall()
        station.bridge.ops.hooks = StationHooks(firmware=hook)
        async with running(station):
            yield hook


RestartsFactory = Callable[[], AbstractAsyncContextManager[Restarts]]


@pytest.fixture
def restarts(tmp_path: Path, pki_dir: Path) -> RestartsFactory:
    """The set-up of these tests: ``async with restarts() as r:`` starts the test CSMS
    (stopped at the end; what it recorded stays readable)."""
    store = tmp_path / "store"
    shutil.copytree(pki_dir / "station", store, symlinks=True)
    Store(store).initialize()

    @asynccontextmanager
    async def started() -> AsyncIterator[Restarts]:
        csms = TestCsms()
        await csms.start()
        try:
            yield Restarts(csms, tmp_path / "state", store)
        finally:
            await csms.stop()

    return started


def test_install_rebooting_reports_installed_after_the_restart(
    restarts: RestartsFactory, pki_dir: Path
) -> None:
    async def main() -> None:
        key, cert = signer(pki_dir)
        async with restarts() as r:
            csms = r.csms
            async with r.process("reboot") as proc:
                cp = await csms.station(STATION)
                with image_server(IMAGE) as (url, _hits):
                    answer = await cp.call(update(51, url, cert, sign(key, IMAGE)))
                    assert answer.status == "Accepted"
                    # the station reports InstallRebooting, then exits for systemd (75)
                    assert await ended(proc) == 75
            assert states(csms, 51) == [*ALL_STATES[:-1], "InstallRebooting"]
            assert not any(e["type"] == "FirmwareUpdated" for e in csms.raised_events())
            async with r.restarted() as hook:
                await wait_for(lambda: states(csms, 51)[-1:] == ["Installed"])
                await wait_for(
                    lambda: [e["type"] for e in csms.raised_events()] == ["FirmwareUpdated"]
                )
                cp = await csms.station(STATION)
                trigger = await cp.call(
                    call.TriggerMessage(requested_message="FirmwareStatusNotification")
                )
                assert trigger.status == "Accepted"
                await wait_for(lambda: csms.firmware_statuses[-1] == {"status": "Idle"})
        assert states(csms, 51) == [*ALL_STATES[:-1], "InstallRebooting", "Installed"]
        assert boot_reasons(csms) == ["PowerUp", "FirmwareUpdate"]
        assert hook.installed == []  # not installed a second time

    run(main())


def test_a_process_dying_while_installing_reports_installation_failed(
    restarts: RestartsFactory, pki_dir: Path
) -> None:
    async def main() -> None:
        key, cert = signer(pki_dir)
        async with restarts() as r:
            csms = r.csms
            async with r.process("dies-installing") as proc:
                cp = await csms.station(STATION)
                with image_server(IMAGE) as (url, _hits):
                    answer = await cp.call(update(52, url, cert, sign(key, IMAGE)))
                    assert answer.status == "Accepted"
                    assert await ended(proc) == 3
            async with r.restarted() as hook:
                await wait_for(lambda: states(csms, 52)[-1:] == ["InstallationFailed"])
                cp = await csms.station(STATION)
                trigger = await cp.call(
                    call.TriggerMessage(requested_message="FirmwareStatusNotification")
                )
                assert trigger.status == "Accepted"  # L01.FR.26: the last status sent
                await wait_for(
                    lambda: (
                        csms.firmware_statuses[-1]
                        == {"status": "InstallationFailed", "request_id": 52}
                    )
                )
        # a status in flight at the death may come twice (at least once, in order)
        got = [x for i, x in enumerate(states(csms, 52)) if i == 0 or states(csms, 52)[i - 1] != x]
        assert got == [*ALL_STATES[:-1], "InstallationFailed"]
        assert hook.installed == []
        assert not any(e["type"] == "FirmwareUpdated" for e in csms.raised_events())

    run(main())


def test_a_download_cut_by_kill_9_is_resumed(restarts: RestartsFactory, pki_dir: Path) -> None:
    async def main() -> None:
        key, cert = signer(pki_dir)
        async with restarts() as r:
            csms = r.csms
            with held_server(IMAGE) as (base, release, seen):
                async with r.process("serve") as proc:
                    cp = await csms.station(STATION)
                    answer = await cp.call(update(53, f"{base}/fw.bin", cert, sign(key, IMAGE)))
                    assert answer.status == "Accepted"
                    await wait_for(lambda: states(csms, 53) == ["Downloading"] and len(seen) == 1)
                    await kill9(proc)
                release.set()
                async with r.restarted() as hook:
                    await wait_for(lambda: states(csms, 53)[-1:] == ["Installed"])
        got = states(csms, 53)
        # the Downloading in flight at the kill may come again (at least once): then the
        # resumed job's own Downloading, and the rest once each
        assert got.count("Downloading") >= 2
        assert [x for i, x in enumerate(got) if i == 0 or got[i - 1] != x] == ALL_STATES
        assert hook.installed == [IMAGE]
        assert [m for m, _ in seen] == ["GET", "GET"]

    run(main())


def test_a_log_upload_cut_by_kill_9_is_taken_up_again(restarts: RestartsFactory) -> None:
    async def main() -> None:
        async with restarts() as r:
            csms = r.csms
            with held_server(b"") as (base, release, seen):
                async with r.process("serve") as proc:
                    cp = await csms.station(STATION)
                    answer = await cp.call(
                        call.GetLog(
                            log_type="SecurityLog",
                            request_id=61,
                            log={"remote_location": f"{base}/logs/"},
                        )
                    )
                    assert answer.status == "Accepted"
                    name = answer.filename
                    await wait_for(lambda: len(seen) == 1 and bool(csms.log_statuses))
                    await kill9(proc)
                release.set()
                async with r.restarted():
                    await wait_for(
                        lambda: csms.log_statuses[-1:] == [{"status": "Uploaded", "request_id": 61}]
                    )
        got = [s["status"] for s in csms.log_statuses]
        assert got.count("Uploading") >= 2 and got[-1] == "Uploaded"  # resumed, then done
        assert [x for i, x in enumerate(got) if i == 0 or got[i - 1] != x] == [
            "Uploading",
            "Uploaded",
        ]
        assert all(s["request_id"] == 61 for s in csms.log_statuses)
        assert [m for m, _ in seen] == ["PUT", "PUT"]
        uploaded = seen[-1][1].decode()
        assert "StartupOfTheDevice" in uploaded  # the security log as it is now
        assert name and name.endswith(".log")

    run(main())
