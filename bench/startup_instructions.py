"""x86 instructions of ``secc run`` from the spawn to its ready notification (issue 17),
counted by ``valgrind --tool=callgrind`` (independent of the machine's load, unlike the
wall-clock figure of ``bench/footprint.py``).  Prints the count; asserts nothing.

    .venv/bin/python bench/startup_instructions.py [--runs 1] [--source TREE] [--editable]
                                                   [--importtime]

The station is the one ``bench/footprint.py`` starts (same configuration, an
installed-like console script, bytecode cached by one start before), run under callgrind
with ``$NOTIFY_SOCKET`` set to a socket of this script.  Callgrind dumps its counters
before every call of libc's ``sendto``; the first one the station makes is the
``READY=1`` datagram (nothing sends before it: SDP only answers), so the first dump
holds the instructions from the spawn (interpreter start-up included) to the ready
notification.  ``PYTHONHASHSEED=0`` makes runs repeatable (a few 100k apart).
``--importtime`` prints, instead, the ``-X importtime`` lines of one start without
valgrind (self and cumulative µs; the top modules by self time) up to the ready point;
``--keep DIR`` keeps the callgrind dumps for ``callgrind_annotate``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import footprint  # noqa: E402  (bench/footprint.py: the station and its configuration)

from certs import testpki  # noqa: E402

TARGET = 340_000_000  # ≈ 90 ms median on the idle dev machine (112 ms median for 421M)


def _wait_ready(notify: socket.socket, proc: subprocess.Popen[bytes], limit: float) -> None:
    notify.settimeout(1.0)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            data = notify.recv(4096)
        except TimeoutError:
            if proc.poll() is not None:
                raise SystemExit("the station exited before it was ready") from None
            continue
        if b"READY=1" in data.split(b"\n"):
            return
    raise SystemExit("the station did not notify READY=1 in time")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def setup(directory: Path, source: Path, editable: bool) -> tuple[list[str], dict[str, str]]:
    """The ``secc run`` command line and environment (bytecode cache filled)."""
    pki = testpki.build_test_pki(dt.datetime.now(dt.UTC))
    testpki.write_test_pki(pki, directory)
    port = footprint.free_udp_port()
    config = directory / "secc.toml"
    config.write_text(
        footprint.CONFIG.format(dir=directory, evse_id=pki.options.evse_id, sdp_port=port, ocpp="")
    )
    if editable:
        secc = Path(sys.executable).with_name("secc")
    else:
        secc = footprint.installed_like(directory, source.resolve())
    command = [str(secc), "run", "--config", str(config)]
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPYCACHEPREFIX=str(directory / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    footprint.stop(footprint.start(command, env, port)[0])  # fills the bytecode cache
    return command, env


def count(directory: Path, command: list[str], env: dict[str, str], run: int) -> int:
    """Instructions from the spawn to the first ``sendto`` (the READY=1 datagram)."""
    address = str(directory / f"notify-{run}")
    out = directory / f"callgrind-{run}.out"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(address)
        proc = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                "--dump-before=sendto",
                *command,
            ],
            env=dict(env, NOTIFY_SOCKET=address),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_ready(notify, proc, 600)
        finally:
            _stop(proc)
    first = Path(f"{out}.1")
    m = re.search(r"^summary:\s*(\d+)", first.read_text(), re.MULTILINE)
    if m is None:
        raise SystemExit(f"no summary in {first}")
    return int(m.group(1))


def importtime(command: list[str], env: dict[str, str], top: int = 25) -> None:
    """One start with ``-X importtime`` up to the ready notification (no valgrind)."""
    with tempfile.TemporaryDirectory() as tmp:
        address = str(Path(tmp) / "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(address)
            python = Path(command[0]).read_text().splitlines()[0][2:]
            proc = subprocess.Popen(
                [python, "-X", "importtime", *command],
                env=dict(env, NOTIFY_SOCKET=address),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            try:
                _wait_ready(notify, proc, 60)
            finally:
                proc.kill()  # (at once: SIGTERM would let the post-ready imports finish)
                _, err = proc.communicate(timeout=60)
    rows = []
    for line in err.decode().splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(1)), int(m.group(2)), m.group(4)))
    # (the post-ready imports start in a thread right after READY=1: the first few of
    # them may be listed too)
    print(f"{len(rows)} modules; self µs total {sum(r[0] for r in rows):,}")
    for own, cumulative, name in sorted(rows, reverse=True)[:top]:
        print(f"{own:8,} {cumulative:9,}  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--editable", action="store_true", help="the worktree's secc script")
    parser.add_argument("--importtime", action="store_true", help="-X importtime, no valgrind")
    parser.add_argument(
        "--keep", type=Path, help="copy the callgrind dumps here (for callgrind_annotate)"
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=HERE.parent,
        help="the tree whose secc, hal and certs run (default: this one)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        command, env = setup(directory, args.source, args.editable)
        if args.importtime:
            importtime(command, env)
            return 0
        counts = [count(directory, command, env, run) for run in range(args.runs)]
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for dump in directory.glob("callgrind-*.out*"):
                dump.replace(args.keep / dump.name)
    shown = ", ".join(f"{c / 1e6:,.1f}M" for c in counts)
    print(
        f"`secc run` spawn to READY=1 ({args.source}): {shown} instructions "
        f"(min {min(counts) / 1e6:,.1f}M); aim <= {TARGET / 1e6:,.0f}M"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
