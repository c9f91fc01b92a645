"""Issue 15: the TLS server cannot be killed and the station's descriptors and memory
stay bounded under connection floods; afterwards a normal session charges.

``secc run`` runs as a subprocess; the floods are bounded in count and time, on
loopback; descriptors come from /proc/<pid>/fd, resident memory from /proc/<pid>/status.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from secc.aio.ev_client import EvResult, run_ev_sdp
from secc.sdp import Security
from tests.security.peers import close_all, idle_connects, tls_connects
from tests.security.station_proc import StationProcess
from tests.station.conftest import script


def _charge(station: StationProcess, pki_dir: Path) -> EvResult:
    return asyncio.run(
        asyncio.wait_for(
            run_ev_sdp(
                script("ac"),
                security=Security.TLS,
                address="::1",
                sdp_port=station.sdp_port,
                cafile=pki_dir / "v2g" / "root.pem",
            ),
            30,
        )
    )


def _wait(predicate: object, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_idle_connect_flood_is_bounded(pki_dir: Path, tmp_path: Path) -> None:
    """600 idle connects to the TLS port (held by the flooder in waves of 150) and 100
    completed TLS handshakes that send nothing: the station holds at most its
    connection limit of them, its resident memory returns near its baseline, it writes
    no trace for them, and an EV charges afterwards."""
    station = StationProcess(tmp_path, pki_dir)
    station.start()
    try:
        assert _charge(station, pki_dir).ended == "done"  # warm up, then the baseline
        time.sleep(0.5)
        fds0, rss0 = station.fds(), station.rss_kib()
        traces0 = len(list(station.traces.glob("*.jsonl")))
        peak_fds = peak_rss = 0

        async def flood() -> None:
            nonlocal peak_fds, peak_rss
            for _ in range(4):
                held = await idle_connects(station.tls_port, 150)
                held += await idle_connects(station.tcp_port, 20)
                peak_fds = max(peak_fds, station.fds())
                peak_rss = max(peak_rss, station.rss_kib())
                await close_all(held)
            held = await tls_connects(station.tls_port, 100, pki_dir / "v2g" / "root.pem")
            peak_fds = max(peak_fds, station.fds())
            peak_rss = max(peak_rss, station.rss_kib())
            await close_all(held)

        asyncio.run(asyncio.wait_for(flood(), 120))
        assert station.alive()
        # default [evse.limits]: max_connections 8, plus dropped connections whose close
        # is still under way and the chain files read at a handshake; before the
        # limits the station held one descriptor per connect (170 here)
        assert peak_fds <= fds0 + 24, (fds0, peak_fds)
        assert peak_rss <= rss0 + 24 * 1024, (rss0, peak_rss)  # was +500 MiB
        assert _wait(lambda: station.fds() <= fds0 + 2), (fds0, station.fds())
        assert _charge(station, pki_dir).ended == "done"
        rss1 = station.rss_kib()
        assert rss1 <= rss0 + 12 * 1024, (rss0, rss1)
        # idle connections leave no trace files: only the two sessions that charged
        assert len(list(station.traces.glob("*.jsonl"))) == traces0 + 1
        print(f"fds {fds0} -> peak {peak_fds}; RSS {rss0} KiB -> peak {peak_rss} -> {rss1} KiB")
    finally:
        assert station.stop() == 0, station.text()


def test_accept_survives_emfile(pki_dir: Path, tmp_path: Path) -> None:
    """The station's descriptor limit is lowered (prlimit) to a few above what it
    holds, then idle connects exhaust it: accept() fails with EMFILE.  The accept loop
    must back off and keep going: once descriptors are free again an EV charges on
    the same port SDP advertises."""
    station = StationProcess(tmp_path, pki_dir)
    station.start()
    try:
        time.sleep(0.3)
        fds0 = station.fds()
        station.set_nofile(fds0 + 3)

        async def flood() -> None:
            held = await idle_connects(station.tls_port, 20, timeout=0.3)
            held += await idle_connects(station.tcp_port, 20, timeout=0.3)
            await asyncio.sleep(1.0)  # accept() fails meanwhile
            await close_all(held)

        asyncio.run(asyncio.wait_for(flood(), 120))
        assert _wait(lambda: "accept failed" in station.text() or "Too many" in station.text())
        station.set_nofile(1024)
        assert station.alive()
        assert _wait(lambda: station.fds() <= fds0 + 2), (fds0, station.fds())
        assert _charge(station, pki_dir).ended == "done"
    finally:
        assert station.stop() == 0, station.text()


def test_watchdog_withheld_while_accept_fails_and_resumed_after(
    pki_dir: Path, tmp_path: Path
) -> None:
    """accept() failing for longer than [evse.limits] accept_stall makes the EVSE
    unhealthy: ``secc run`` stops WATCHDOG=1 (systemd would restart it); once
    descriptors are free the server accepts again and the pings resume."""
    notify_path = tmp_path / "notify"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    extra = "[evse.limits]\naccept_stall = 1.0\nhandshake_timeout = 60.0\n"
    station = StationProcess(tmp_path, pki_dir, evse_extra=extra)
    station.start(env={"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "200000"})

    def pinged_within(seconds: float) -> bool:
        notify.settimeout(seconds)
        try:
            while True:
                if notify.recv(4096).decode() == "WATCHDOG=1":
                    return True
        except TimeoutError:
            return False

    try:
        assert pinged_within(10)
        fds0 = station.fds()
        station.set_nofile(fds0 + 3)

        async def flood() -> None:
            held = await idle_connects(station.tls_port, 12, timeout=0.3)
            # pending handshakes hold the descriptors; accept() keeps failing
            assert _wait(lambda: not pinged_within(0.8), timeout=15)
            station.set_nofile(1024)
            await close_all(held)

        asyncio.run(asyncio.wait_for(flood(), 60))
        assert pinged_within(10), station.text()
        assert _charge(station, pki_dir).ended == "done"
    finally:
        notify.close()
        assert station.stop() == 0, station.text()
