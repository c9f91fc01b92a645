"""sd_notify against Unix datagram sockets the test binds (a path and an abstract name),
and `secc.sdnotify` run as a child process the way systemd starts it."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from secc.sdnotify import Notifier, watchdog_loop


def listener(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + address[1:] if address.startswith("@") else address)
    sock.settimeout(5)
    return sock


def fields(data: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in data.decode().split("\n"))


def test_ready_status_watchdog_stopping_on_a_path_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with listener(path) as sock:
        n = Notifier.from_environment({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"})
        assert n.enabled and n.watchdog_interval() == 2.0
        assert n.ready("serving EVSE 1")
        assert fields(sock.recv(4096)) == {"READY": "1", "STATUS": "serving EVSE 1"}
        assert n.status("CSMS offline")
        assert fields(sock.recv(4096)) == {"STATUS": "CSMS offline"}
        assert n.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert n.stopping()
        assert sock.recv(4096) == b"STOPPING=1"
        n.close()


def test_abstract_socket_and_watchdog_loop() -> None:
    address = f"@secc-test-{os.getpid()}"
    with listener(address) as sock:
        n = Notifier.from_environment({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "100000"})
        healthy = [True]
        sock.setblocking(False)

        def drain() -> list[bytes]:
            out = []
            while True:
                try:
                    out.append(sock.recv(4096))
                except BlockingIOError:
                    return out

        async def main() -> tuple[list[bytes], list[bytes]]:
            task = asyncio.ensure_future(watchdog_loop(n, healthy=lambda: healthy[0]))
            await asyncio.sleep(0.12)  # ticks every 0.05 s
            healthy[0] = False
            while_healthy = drain()
            await asyncio.sleep(0.12)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return while_healthy, drain()

        while_healthy, after = asyncio.run(main())
        assert while_healthy and set(while_healthy) == {b"WATCHDOG=1"}
        assert after == []  # withheld while unhealthy
        n.close()


def test_disabled_without_socket_and_bad_input(tmp_path: Path) -> None:
    n = Notifier.from_environment({})
    assert not n.enabled and not n.ready() and n.watchdog_interval() is None
    asyncio.run(asyncio.wait_for(watchdog_loop(n), 1))  # returns at once
    assert not Notifier.from_environment({"NOTIFY_SOCKET": "relative"}).enabled
    # a watchdog meant for another process is not ours
    other = Notifier.from_environment(
        {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}
    )
    assert other.watchdog_interval() is None
    assert (
        Notifier.from_environment({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "soon"}).watchdog_usec
        is None
    )
    with pytest.raises(ValueError, match="one line"):
        Notifier(str(tmp_path / "n")).status("two\nlines")
    with pytest.raises(ValueError, match="too long"):
        Notifier(str(tmp_path / "n")).status("x" * 5000)
    # the socket vanished: reported, not raised
    assert not Notifier(str(tmp_path / "gone")).ready()


def test_child_process_notifies_like_under_systemd(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with listener(path) as sock:
        code = (
            "from secc.sdnotify import Notifier\n"
            "n = Notifier.from_environment()\n"
            "assert n.ready('up'); assert n.stopping()\n"
        )
        env = {**os.environ, "NOTIFY_SOCKET": path}
        subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=30)
        assert fields(sock.recv(4096)) == {"READY": "1", "STATUS": "up"}
        assert sock.recv(4096) == b"STOPPING=1"


def test_secc_run_speaks_sd_notify_to_a_fake_systemd(tmp_path: Path) -> None:
    """`secc run` as systemd starts it (Type=notify, WatchdogSec): READY=1 once it serves,
    WATCHDOG=1 pings at half the period, STOPPING=1 on SIGTERM, exit status 0."""
    import signal

    config = tmp_path / "secc.toml"
    config.write_text(
        '[[evse]]\nevse_id = "DE*ABC*E1234567*1"\ntls_port = -1\ntcp_port = 0\nsdp_port = 0\n'
        '[evse.hal]\nbackend = "simulated"\n'
    )
    path = str(tmp_path / "notify")
    with listener(path) as sock:
        sock.settimeout(30)
        env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "secc.cli.main", "run", "--config", str(config)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            ready = fields(sock.recv(4096))
            assert ready["READY"] == "1" and "DE*ABC*E1234567*1" in ready.get("STATUS", "")
            assert sock.recv(4096) == b"WATCHDOG=1"
            assert sock.recv(4096) == b"WATCHDOG=1"
            proc.send_signal(signal.SIGTERM)
            while (message := sock.recv(4096)) == b"WATCHDOG=1":
                pass
            assert fields(message)["STOPPING"] == "1"
            assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
