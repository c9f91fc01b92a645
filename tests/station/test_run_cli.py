"""``secc run`` as systemd runs it: a subprocess with a generated config, READY=1 and
WATCHDOG=1 on a Unix datagram socket, a session against it, SIGTERM, a clean stop."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from secc.aio.ev_client import run_ev_sdp
from secc.sdp import Security
from tests.station.conftest import script

CONFIG = """
[station]
trace_dir = "{traces}"
[certs]
store = "{store}"
[[evse]]
evse_id = "DE*ABC*E1234567*1"
address = "::1"
tls_port = 0
tcp_port = 0
sdp_port = 0
energy_modes = ["AC_three_phase_core", "DC_extended"]
[evse.hal]
backend = "simulated"
control = "none"
[evse.hal.options]
ev_state = "C"
"""
READY = re.compile(r"EVSE (\S+) ready on (\S+) .*SDP port (\d+), tls port (\d+), tcp port (\d+)")


def write_config(directory: Path, pki_dir: Path) -> Path:
    path = directory / "secc.toml"
    traces = directory / "traces"
    path.write_text(CONFIG.format(traces=traces, store=pki_dir / "station"))
    return path


def wait_for_line(path: Path, pattern: re.Pattern[str], timeout: float = 20) -> re.Match[str]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = pattern.search(path.read_text())
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"{pattern.pattern!r} not in {path.read_text()}")


def test_run_notifies_systemd_serves_and_stops_on_sigterm(pki_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, pki_dir)
    notify_path = tmp_path / "notify"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(20)
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(notify_path),
        "WATCHDOG_USEC": "200000",
        "JOURNAL_STREAM": "8:1234",
    }
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "secc.cli.main", "run", "--config", str(config)],
            stderr=err,
            stdout=subprocess.DEVNULL,
            env=env,
        )
    try:
        messages = [notify.recv(4096).decode()]
        assert messages[0].startswith("READY=1\n")
        ready = wait_for_line(log, READY)
        sdp_port = int(ready.group(3))
        result = asyncio.run(
            run_ev_sdp(
                script("dc"),
                security=Security.TLS,
                address="::1",
                sdp_port=sdp_port,
                cafile=pki_dir / "v2g" / "root.pem",
            )
        )
        assert result.ended == "done" and result.tls
        assert result.steps[-1].response == "SessionStopRes"
        messages.append(notify.recv(4096).decode())
        assert messages[-1] == "WATCHDOG=1"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()
    text = log.read_text()
    assert "stopping: opening contactors" in text and text.rstrip().endswith("stopped")
    # under systemd (JOURNAL_STREAM set) no time stamps: journald adds its own
    assert all(
        re.match(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) ", line) for line in text.splitlines()
    )
    traces = list((tmp_path / "traces").glob("*.jsonl"))
    assert len(traces) == 1


def test_run_sigterm_mid_session_opens_and_ends(pki_dir: Path, tmp_path: Path) -> None:
    """SIGTERM while the EV charges: the process ends the session (trace flushed with an
    end record) and exits 0; the EV sees the connection closed."""
    config = write_config(tmp_path, pki_dir)
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "secc.cli.main", "run", "--config", str(config)],
            stderr=err,
            stdout=subprocess.DEVNULL,
        )
    try:
        ready = wait_for_line(log, READY)

        async def ev() -> str:
            task = asyncio.create_task(
                run_ev_sdp(
                    script("ac", charge_loops=100_000),
                    security=Security.NONE,
                    address="::1",
                    sdp_port=int(ready.group(3)),
                )
            )
            await asyncio.sleep(1.0)
            proc.send_signal(signal.SIGTERM)
            return (await asyncio.wait_for(task, 20)).ended

        ended = asyncio.run(ev())
        assert "closed" in ended or "lost" in ended, ended
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    trace = next((tmp_path / "traces").glob("*.jsonl")).read_text().splitlines()
    assert '"kind":"end"' in trace[-1]
    assert '"action":"OpenContactors"' in "\n".join(trace[-6:])
