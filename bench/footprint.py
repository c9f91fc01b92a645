"""The station process's footprint: time from start to SDP-ready, resident memory after
start and while it serves 1,000 sessions.  Prints figures next to the issue-17 targets
and the figures before this round; asserts nothing.

    .venv/bin/python bench/footprint.py [--sessions 1000] [--starts 5] [--tcp] [--cold]
                                        [--ocpp] [--pnc] [--editable]

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
by one start before the measured ones.  ``--cold`` measures without bytecode (every
module, the generated codec included, compiled at start: much slower and bigger).

An installed station, not this worktree's editable install: the editable install puts an
import hook in ``site`` (its ``.pth`` imports a finder: ~12 ms of every start) that an
installed station does not have.  So the station runs from a throw-away virtual
environment whose one ``.pth`` file puts this worktree and the project venv's
site-packages on ``sys.path`` (path lines: the venv's own ``.pth`` hooks are not run),
started through a console script as pip writes it.  ``--editable`` runs the worktree's
``secc`` script instead.

Each of ``--starts`` starts is timed from the spawn to the first SDP answer (wall clock,
interpreter start-up included; the station's CPU time by then from /proc/PID/stat, which
depends less on the machine's load); VmRSS is read at ready and again once the
post-ready imports (``secc.cli.run.settle``, in a worker thread) are done (2 s later).
Min and median are printed with the load average (the machine is shared: wall times
vary by ±50 %; ``bench/startup_instructions.py`` counts the instructions to the ready
notification under callgrind, which do not depend on the load).
The sessions run against the last start.  ``--ocpp`` adds an ``[ocpp]`` section (its
CSMS URL leads nowhere: the bridge is built, loaded and keeps reconnecting);
``--pnc`` makes the first session Plug & Charge (cryptography loads then).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from certs import testpki
from secc.aio.ev_client import discover, run_ev_sdp
from secc.ev.iso2 import EvScript
from secc.sdp import Security

# issue 17: targets and the figures before this round (this script, idle machine)
TARGET_READY_MS = 100
TARGET_RSS_MB = 40  # MB (10^6 bytes) = 38.1 MiB
BEFORE = "SDP-ready 504 ms; VmRSS 39.5 MiB at ready, 45.7 MiB after start, 47.2 after 100 TLS"

OCPP = """
[ocpp]
url = "ws://[::1]:{port}/"
station_id = "CS-FOOTPRINT-1"
state_dir = "{dir}/ocpp"
"""

CONFIG = """{ocpp}
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
    count: int,
    port: int,
    cafile: Path,
    tls: bool,
    pid: int,
    readings: list[tuple[int, int]],
    pnc: Any = None,
) -> list[str]:
    lines = []
    for i in range(count):
        script = EvScript(
            energy_mode="DC_extended" if i % 2 else "AC_three_phase_core",
            think_time=0.0,
            poll_interval=0.02,
            loop_interval=0.0,
            charge_loops=5,
            **({"payment": "Contract", "credentials": pnc} if i == 0 and pnc else {}),
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
        if i == 0:
            lines.append(f"  after the first session: VmRSS {rss_kib(pid) / 1024:6.1f} MiB")
        if (i + 1) % 10 == 0:
            readings.append((i + 1, rss_kib(pid)))
            lines.append(f"  after {i + 1:4d} sessions: VmRSS {readings[-1][1] / 1024:6.1f} MiB")
    return lines


def cpu_ms(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (/proc/PID/stat utime, stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def start(
    command: list[str], env: dict[str, str], port: int
) -> tuple[subprocess.Popen[str], float, float]:
    """(process, seconds from spawn to the first SDP answer, its CPU ms by then)."""
    started = time.monotonic()
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    asyncio.run(wait_ready(port, started + 30))
    ready = time.monotonic() - started
    return proc, ready, cpu_ms(proc.pid)


def installed_like(directory: Path, source: Path) -> Path:
    """A console script in a throw-away venv that imports secc as an installed station
    would: no editable-install finder (see the module docstring)."""
    import sysconfig

    venv = directory / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    project = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "secc-footprint.pth").write_text(f"{source}\n{project}\n")
    script = venv / "bin" / "secc"
    script.write_text(
        f"#!{python}\n"
        "import re\nimport sys\nfrom secc.cli.main import main\n"
        "if __name__ == '__main__':\n"
        "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
        "    sys.exit(main())\n"
    )
    script.chmod(0o755)
    return script


def spread(values: list[float], unit: str, digits: int = 0) -> str:
    return (
        f"min {min(values):.{digits}f} {unit}, median {statistics.median(values):.{digits}f} "
        f"{unit} (n={len(values)})"
    )


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
    parser.add_argument("--starts", type=int, default=5, help="measured starts (min, median)")
    parser.add_argument("--tcp", action="store_true", help="sessions over TCP instead of TLS")
    parser.add_argument("--cold", action="store_true", help="no bytecode cache")
    parser.add_argument("--ocpp", action="store_true", help="with an [ocpp] section")
    parser.add_argument("--pnc", action="store_true", help="the first session Plug & Charge")
    parser.add_argument("--editable", action="store_true", help="the worktree's secc script")
    parser.add_argument(
        "--source",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="the tree whose secc, hal and certs run (default: this one; e.g. an older "
        "commit's `git archive` for a comparison on the same machine)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        pki = testpki.build_test_pki(dt.datetime.now(dt.UTC))
        testpki.write_test_pki(pki, directory)
        port = free_udp_port()
        config = directory / "secc.toml"
        ocpp = OCPP.format(port=free_udp_port(), dir=directory) if args.ocpp else ""
        config.write_text(
            CONFIG.format(dir=directory, evse_id=pki.options.evse_id, sdp_port=port, ocpp=ocpp)
        )
        if args.editable:
            secc = Path(sys.executable).with_name("secc")
        else:
            secc = installed_like(directory, args.source.resolve())
        command = [str(secc), "run", "--config", str(config)]
        env = dict(os.environ)
        if args.cold:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(directory / "pycache")
            stop(start(command, env, port)[0])  # fills the bytecode cache
        loads = [os.getloadavg()[0]]
        readies: list[float] = []
        cpus: list[float] = []
        at_ready: list[float] = []
        settled: list[float] = []
        for n in range(max(1, args.starts)):
            proc, ready, cpu = start(command, env, port)
            readies.append(ready * 1000)
            cpus.append(cpu)
            at_ready.append(rss_kib(proc.pid) / 1024)
            time.sleep(2.0)  # the post-ready imports (settle) are done by then
            settled.append(rss_kib(proc.pid) / 1024)
            if n < args.starts - 1:
                stop(proc)
        loads.append(os.getloadavg()[0])
        try:
            rss_start = rss_kib(proc.pid)
            t0 = time.monotonic()
            readings: list[tuple[int, int]] = []
            cafile = directory / "v2g" / "root.pem"
            pnc = None
            if args.pnc:
                from secc.cli.ev import load_credentials

                pnc = load_credentials(directory, dt.datetime.now(dt.UTC))
            lines = asyncio.run(
                sessions(args.sessions, port, cafile, not args.tcp, proc.pid, readings, pnc)
            )
            took = time.monotonic() - t0
            traces = len(list((directory / "traces").glob("*.jsonl")))
        finally:
            err = stop(proc)
    print(f"python {sys.version.split()[0]} on {platform.machine()}, {os.cpu_count()} CPUs")
    cache = "no bytecode (cold)" if args.cold else "bytecode cached"
    how = "editable install" if args.editable else f"installed-like from {args.source}"
    extra = ", [ocpp]" if args.ocpp else ""
    print(f"station: {how}, {cache}{extra}; load average {loads[0]:.2f} -> {loads[1]:.2f}")
    print(f"before (issue 17, idle machine): {BEFORE}")
    print(
        f"`secc run` ready (SDP answers) after spawn: {spread(readies, 'ms')}; "
        f"target <= {TARGET_READY_MS} ms"
    )
    print(f"  its CPU time by then: {spread(cpus, 'ms')}")
    print(f"VmRSS at SDP-ready: {spread(at_ready, 'MiB', 1)}")
    target_mib = TARGET_RSS_MB * 1e6 / 2**20
    print(
        f"VmRSS after start (post-ready imports done): {spread(settled, 'MiB', 1)}; "
        f"target <= {TARGET_RSS_MB} MB = {target_mib:.1f} MiB"
    )
    print(f"VmRSS before the sessions: {rss_start / 1024:.1f} MiB")
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
        f"5 charge loops each{', the first Plug & Charge' if pnc else ''}) in {took:.1f} s; "
        f"{traces} traces written; exit code {proc.returncode} after SIGTERM"
    )
    if err.strip():
        print("station stderr:\n" + err.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
