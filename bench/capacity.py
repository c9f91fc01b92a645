"""Capacity: N EVSEs served by one station process, each with a DC EV sending a
CurrentDemandReq every 100 ms (10 Hz) over TLS 1.2 on loopback.  Prints, for each N, the
p50/p99 request -> response latency seen by the EVs and the station's CPU per EVSE (its
process's user + system time over the measured window).  Prints figures; asserts nothing.

    .venv/bin/python bench/capacity.py [--evses 1 16 64] [--seconds 10] [--tcp]

The station (``secc.runtime.Station``, simulated HAL boards, no traces, ``gc.freeze()``
after start as ``secc run`` does) runs in a child process; the EVs (the EV simulator
brought to the charging loop, then the same request at 10 Hz) run in this one, so the
EVs' own CPU is not counted.  On a 2-core machine the two processes share the cores
with whatever else runs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import platform
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from secc import codec
from secc.core.events import Schema
from secc.v2gtp import Framer, encode_frame

TICK = os.sysconf("SC_CLK_TCK")


def evse_ids(n: int) -> list[str]:
    return [f"DE*ABC*E{i:07d}*1" for i in range(n)]


# --- the station (child process) ---------------------------------------------------------


async def station_main(
    n: int, directory: Path, use_tls: bool, poll: float = 0.1, quiet: bool = False
) -> None:
    from hal.backends.simulated import build_board
    from secc.cli.run import settle
    from secc.config import CertsSection, EvseSection, HalSection, StationConfig, StationSection
    from secc.runtime import Station

    config = StationConfig(
        station=StationSection(trace_dir=None, log_level="warning"),
        certs=CertsSection(store=directory / "station"),
        evse=tuple(
            EvseSection(
                evse_id=evse_id,
                address="::1",
                tls_port=0 if use_tls else -1,
                tcp_port=-1 if use_tls else 0,
                sdp_port=0,
                energy_modes=("DC_extended",),
                protocols=("iso2",),
                hal=HalSection(control="none", poll_interval=poll),
            )
            for evse_id in evse_ids(n)
        ),
    )
    if quiet:  # counted by callgrind, every answer is late: no over-budget warning each
        import logging

        logging.getLogger("secc").setLevel(logging.ERROR)
    boards = {e.evse_id: build_board()[0] for e in config.evse}
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with Station(config, boards=boards) as station:
        settle(config)
        ports = [e.ports["tls" if use_tls else "tcp"] for e in station.evses]
        (directory / "ports.json").write_text(json.dumps(ports))
        await stop.wait()


# --- the EVs (this process) --------------------------------------------------------------


async def dc_ev_at_loop(
    port: int, ctx: ssl.SSLContext | None
) -> tuple[Callable[[bytes], Awaitable[bytes]], bytes, asyncio.StreamWriter]:
    """One DC EV brought up to its charging loop: the exchange function (one V2GTP frame
    out, the answer's payload back), its first CurrentDemandReq frame, the writer."""
    from secc.ev.iso2 import EvScript, EvSimulator

    reader, writer = await asyncio.open_connection("::1", port, ssl=ctx)
    framer = Framer()

    async def exchange(frame: bytes) -> bytes:
        writer.write(frame)
        while True:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("the station closed the connection")
            got = framer.feed(data)
            if got:
                return got[0].payload

    sim = EvSimulator(
        EvScript(energy_mode="DC_extended", think_time=0, poll_interval=0.02, charge_loops=2)
    )
    step = sim.start()
    while step.name != "CurrentDemandReq":
        await asyncio.sleep(step.delay)
        payload = await exchange(encode_frame(codec.encode(step.message)))
        schema = Schema.APPHAND if step.schema is Schema.APPHAND else sim.schema
        nxt = sim.receive(codec.decode(payload, schema.value), schema)
        if nxt is None:
            raise SystemExit(f"session ended before CurrentDemandReq: {sim.responses[-1]}")
        step = nxt
    return exchange, encode_frame(codec.encode(step.message)), writer


async def ev(
    port: int, ctx: ssl.SSLContext | None, window: dict[str, float], out: list[float]
) -> None:
    """One EV: a DC session up to the charging loop, then a CurrentDemandReq every 100 ms
    until the window's end; the round trips inside the window are recorded."""
    exchange, frame, writer = await dc_ev_at_loop(port, ctx)
    loop = asyncio.get_running_loop()
    nxt_t = loop.time()
    while True:
        start = time.perf_counter()
        if start >= window["end"]:
            break
        await exchange(frame)
        if start >= window["start"]:
            out.append(time.perf_counter() - start)
        nxt_t += 0.1
        await asyncio.sleep(max(0.0, nxt_t - loop.time()))
    writer.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


async def run_evs(
    ports: list[int], ctx: ssl.SSLContext | None, seconds: float, pid: int
) -> tuple[list[float], float]:
    """Sessions come up first (staggered TLS handshakes, not measured); then every EV runs
    for ``seconds``.  Returns the round trips and the station's CPU fraction."""
    samples: list[float] = []
    window = {"start": float("inf"), "end": float("inf")}
    tasks = []
    for port in ports:
        tasks.append(asyncio.create_task(ev(port, ctx, window, samples)))
        await asyncio.sleep(0.01)
    await asyncio.sleep(1.0 + 0.05 * len(ports))
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    window["start"], window["end"] = t0, t0 + seconds
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    return samples, (cpu_seconds(pid) - cpu0) / elapsed


def measure(
    n: int, seconds: float, use_tls: bool, directory: Path, use_uvloop: bool = False
) -> dict[str, Any]:
    (directory / "ports.json").unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, __file__, "--station", str(n), str(directory)]
        + (["--tcp"] if not use_tls else [])
        + (["--uvloop"] if use_uvloop else [])
    )
    try:
        deadline = time.monotonic() + 120
        while not (directory / "ports.json").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the station did not start")
            time.sleep(0.1)
        ports = json.loads((directory / "ports.json").read_text())
        ctx = None
        if use_tls:
            from secc.aio.ev_client import tls_client_context

            ctx = tls_client_context(directory / "v2g" / "root.pem")
        samples, cpu_fraction = asyncio.run(run_evs(ports, ctx, seconds, proc.pid))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    us = sorted(s * 1e6 for s in samples)
    return {
        "n": n,
        "round_trips": len(us),
        "p50_us": statistics.median(us) if us else float("nan"),
        "p99_us": us[min(len(us) - 1, int(len(us) * 0.99))] if us else float("nan"),
        "cpu_per_evse": cpu_fraction / n,
        "cpu_us_per_round_trip": cpu_fraction * seconds / max(1, len(us)) * 1e6,
        "sessions_up": len(us) > 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evses", type=int, nargs="*", default=[1, 16, 64])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--tcp", action="store_true", help="plain TCP instead of TLS")
    parser.add_argument("--station", nargs=2, help=argparse.SUPPRESS)
    # the HAL's status poll period in the station (bench/instructions.py: 5 s, so that
    # no time-driven poll falls into a counted round trip)
    parser.add_argument("--poll", type=float, default=0.1, help=argparse.SUPPRESS)
    parser.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--uvloop", action="store_true", help="the station on uvloop (PyPI)")
    args = parser.parse_args()
    if args.station:
        station = int(args.station[0]), Path(args.station[1])
        if args.uvloop:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(station_main(*station, not args.tcp, args.poll, args.quiet))
        return 0
    from certs import testpki

    gc.freeze()
    print(f"python {platform.python_version()} on {platform.machine()}, {ssl.OPENSSL_VERSION}")
    print(f"{'TCP' if args.tcp else 'TLS 1.2'}, 10 Hz CurrentDemand per EV, {args.seconds:.0f} s")
    print(
        f"{'EVSEs':>6} {'round trips':>12} {'p50 ms':>8} {'p99 ms':>8} {'CPU/EVSE':>9} "
        f"{'CPU µs/round trip':>18}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        pki = testpki.build_test_pki(dt.datetime.now(dt.UTC))
        testpki.write_test_pki(pki, directory)
        for n in args.evses:
            r = measure(n, args.seconds, not args.tcp, directory, args.uvloop)
            print(
                f"{r['n']:6d} {r['round_trips']:12d} {r['p50_us'] / 1e3:8.2f} "
                f"{r['p99_us'] / 1e3:8.2f} {r['cpu_per_evse'] * 100:8.2f}% "
                f"{r['cpu_us_per_round_trip']:18.0f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
