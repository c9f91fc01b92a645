"""The station process's footprint: time from start to SDP-ready, resident memory after
start and while it serves 1,000 sessions.  Prints figures; asserts nothing.

    .venv/bin/python bench/footprint.py [--sessions 1000] [--tcp] [--cold]

Spawns ``secc run --config FILE`` as a subprocess with a generated configuration (a test
PKI and certificate store in a temporary directory, TLS and TCP, one EVSE on ``::1``,
the simulated HAL board, traces on), polls its SDP port until it answers (ready time,
measured from the spawn, interpreter start-up included), reads VmRSS from
/proc/PID/status, then drives the sessions with the EV client (alternating AC and DC;
TLS unless ``--tcp``) and reads VmRSS again after each tenth; the last line gives the
lowest and highest reading from the 100th session on (after the warm-up: lazily loaded
paths, caches, the allocator) and the change from the first to the last hundred.

Bytecode: an installed station has its modules compiled (pip does it), so the station
runs with a bytecode cache in the temporary directory (``PYTHONPYCACHEPREFIX``), filled
by one start before the measured one.  ``--cold`` measures without bytecode (every
module, the generated codec included, compiled at start: much slower and bigger).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from certs import testpki
from secc.aio.ev_client import discover, run_ev_sdp
from secc.ev.iso2 import EvScript
from secc.sdp import Security

CONFIG = """
[station]
trace_dir = "{dir}/traces"
log_level = "warning"
[certs]
store = "{dir}/station"
[[evse]]
evse_id = "{evse_id}"
address = "::1"
tls_port = 0
tcp_port = 0
sdp_port = {sdp_port}
energy_modes = ["AC_three_phase_core", "DC_extended"]
[evse.hal]
backend = "simulated"
control = "none"
[evse.hal.options]
ev_state = "C"
"""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind(("::1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def wait_ready(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            await discover(Security.TLS, address="::1", port=port, retries=1, timeout=0.005)
            return
        except Exception:
            await asyncio.sleep(0.002)
    raise SystemExit("the station did not answer SDP in time")


async def sessions(
    count: int, port: int, cafile: Path, tls: bool, pid: int, readings: list[tuple[int, int]]
) -> list[str]:
    lines = []
    for i in range(count):
        script = EvScript(
            energy_mode="DC_extended" if i % 2 else "AC_three_phase_core",
            think_time=0.0,
            poll_interval=0.02,
            loop_interval=0.0,
            charge_loops=5,
        )
        result = await run_ev_sdp(
            script,
            security=Security.TLS if tls else Security.NONE,
            address="::1",
            sdp_port=port,
            cafile=cafile,
        )
        if result.ended != "done":
            raise SystemExit(f"session {i + 1}: {result.ended}")
        if (i + 1) % 10 == 0:
            readings.append((i + 1, rss_kib(pid)))
            lines.append(f"  after {i + 1:4d} sessions: VmRSS {readings[-1][1] / 1024:6.1f} MiB")
    return lines


def start(
    command: list[str], env: dict[str, str], port: int
) -> tuple[subprocess.Popen[str], float]:
    started = time.monotonic()
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    asyncio.run(wait_ready(port, started + 30))
    return proc, time.monotonic() - started


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--tcp", action="store_true", help="sessions over TCP instead of TLS")
    parser.add_argument("--cold", action="store_true", help="no bytecode cache")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        pki = testpki.build_test_pki(dt.datetime.now(dt.UTC))
        testpki.write_test_pki(pki, directory)
        port = free_udp_port()
        config = directory / "secc.toml"
        config.write_text(CONFIG.format(dir=directory, evse_id=pki.options.evse_id, sdp_port=port))
        secc = Path(sys.executable).with_name("secc")
        command = [str(secc), "run", "--config", str(config)]
        env = dict(os.environ)
        if args.cold:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(directory / "pycache")
            stop(start(command, env, port)[0])  # fills the bytecode cache
        proc, ready = start(command, env, port)
        try:
            rss_start = rss_kib(proc.pid)
            t0 = time.monotonic()
            readings: list[tuple[int, int]] = []
            cafile = directory / "v2g" / "root.pem"
            lines = asyncio.run(
                sessions(args.sessions, port, cafile, not args.tcp, proc.pid, readings)
            )
            took = time.monotonic() - t0
            traces = len(list((directory / "traces").glob("*.jsonl")))
        finally:
            err = stop(proc)
    print(f"python {sys.version.split()[0]} on {platform.machine()}, {os.cpu_count()} CPUs")
    cache = "no bytecode (cold)" if args.cold else "bytecode cached"
    print(f"`secc run` ready (SDP answers) {ready * 1000:.0f} ms after spawn, {cache}")
    print(f"VmRSS after start: {rss_start / 1024:.1f} MiB")
    print("\n".join(lines))
    warm = [kib for n, kib in readings if n >= 100]
    if len(warm) >= 20:
        first, last = warm[:10], warm[-10:]
        print(
            f"from session 100 to {readings[-1][0]}: VmRSS {min(warm) / 1024:.1f}-"
            f"{max(warm) / 1024:.1f} MiB; mean of the last ten readings minus the first ten: "
            f"{(sum(last) - sum(first)) / 10 / 1024:+.2f} MiB"
        )
    print(
        f"{args.sessions} sessions ({'TCP' if args.tcp else 'TLS'}, AC/DC alternating, "
        f"5 charge loops each) in {took:.1f} s; {traces} traces written; "
        f"exit code {proc.returncode} after SIGTERM"
    )
    if err.strip():
        print("station stderr:\n" + err.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
