"""``secc hal ...``: list backends, run the MCU simulator, run the conformance suite,
probe the PLC modem, run one SLAC matching."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import sys

from hal import registry
from hal.types import CpState, HalError


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="hardware abstraction layer tools")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", required=True)
    sub.add_parser("backends", help="list HAL backends and whether their extras are installed")

    sim = sub.add_parser(
        "mcu-sim",
        help="run the safety-MCU simulator on a pty (docs/mcu-protocol.md)",
        description="Prints the pty path (connect the serial-mcu backend to it), then reads "
        "commands on stdin: A B C D E (EV state), rcd, clear-rcd, weld, unweld, reset, status.",
    )
    sim.add_argument("--pty", action="store_true", required=True, help="create a pty pair")
    sim.add_argument("--heartbeat-ms", type=int, default=500, help="host silence timeout")
    sim.add_argument("--status-ms", type=int, default=100, help="STATUS period")
    sim.add_argument("--ev-state", choices="ABCD", default="A")
    sim.add_argument("--drop", type=float, default=0.0, help="byte drop probability")
    sim.add_argument("--corrupt", type=float, default=0.0, help="bit-flip probability")
    sim.add_argument("--duplicate", type=float, default=0.0, help="byte duplication probability")
    sim.add_argument("--reorder", type=float, default=0.0, help="swap probability per chunk")
    sim.add_argument("--seed", type=int, default=None)
    sim.add_argument(
        "--firmware", default="sim-1.0.0", help="version string the MCU reports (GET_INFO)"
    )
    sim.add_argument(
        "--hardware-id", type=lambda v: int(v, 0), default=0x53494D31, help="u32, e.g. 0x1234"
    )
    sim.add_argument("--no-info", action="store_true", help="act as firmware predating GET_INFO")
    sim.add_argument("--duration", type=float, default=None, help="exit after N seconds")

    conf = sub.add_parser("conformance", help="run hal.testing against an in-tree harness")
    conf.add_argument("harness", choices=["simulated", "serial-mcu"])

    probe = sub.add_parser("probe", help="ask the PLC modem for firmware and link (QCA)")
    probe.add_argument("interface")
    probe.add_argument("--timeout", type=float, default=0.5)

    slac = sub.add_parser("slac", help="run one EVSE-side SLAC matching on an interface")
    slac.add_argument("interface")
    slac.add_argument("--init-timeout", type=float, default=50.0, help="TT_EVSE_SLAC_init")
    return p


def _backends() -> int:
    for name, info in sorted(registry.available().items()):
        missing = registry.missing_dependency(info)
        state = f"missing {missing!r}: pip install 'secc[{info.extra}]'" if missing else "ok"
        print(f"{name:12} {info.kind:5} {state:10}  {info.description}")
    return 0


async def _mcu_sim(args: argparse.Namespace) -> int:
    from hal.backends.serial_mcu.simulator import (
        ByteFaults,
        McuSimulator,
        close_pty,
        open_pty,
        serve_fd,
    )

    rng = random.Random(args.seed)
    sim = McuSimulator(
        status_period_s=args.status_ms / 1000,
        heartbeat_timeout_s=args.heartbeat_ms / 1000,
        rng=rng,
        firmware=None if args.no_info else args.firmware,
        hardware_id=args.hardware_id,
    )
    sim.plant.ev_state = CpState(args.ev_state)

    def faults() -> ByteFaults:
        return ByteFaults(
            args.drop, args.duplicate, args.corrupt, args.reorder, random.Random(rng.random())
        )

    master, path = open_pty()
    print(path, flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if args.duration is not None:
        loop.call_later(args.duration, stop.set)

    def command(line: str) -> None:
        word, *rest = line.split() or [""]
        p = sim.plant
        if word == "card" and 1 <= len(rest) <= 2:  # card UID [ISO14443|ISO15693|KeyCode]
            try:
                kind = rest[1] if len(rest) == 2 else "ISO14443"
                p.present_token(rest[0] if kind == "KeyCode" else rest[0].upper(), kind)
            except ValueError as exc:
                print(f"bad card: {exc}", flush=True)
                return
            print(f"card {rest[0]} presented", flush=True)
            return
        if word in {"A", "B", "C", "D", "E"}:
            p.ev_state = CpState(word)
        elif word == "rcd":
            p.trip_rcd()
        elif word == "clear-rcd":
            p.rcd_tripped = False
        elif word in {"weld", "unweld"}:
            p.contactor_welded = word == "weld"
        elif word == "reset":
            sim.reset(loop.time())
        elif word != "status":
            print(f"unknown command {word!r}", flush=True)
            return
        print(f"status {sim.status()}", flush=True)

    def stdin_ready() -> None:
        line = sys.stdin.readline()
        if not line:
            loop.remove_reader(sys.stdin.fileno())
            return
        command(line)

    with contextlib.suppress(ValueError, OSError, PermissionError):
        loop.add_reader(sys.stdin.fileno(), stdin_ready)
    try:
        await serve_fd(sim, master, faults_in=faults(), faults_out=faults(), stop=stop)
    finally:
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(sys.stdin.fileno())
        close_pty(master)
    print(f"executed {len(sim.executed)} commands, safe-state entries {sim.safe_state_entries}")
    return 0


async def _conformance(name: str) -> int:
    from hal.testing import HARNESSES, run_conformance

    results = await run_conformance(HARNESSES[name])
    for r in results:
        print(f"{r.outcome:8} {r.name:18} {r.detail}")
    return 1 if any(r.outcome == "failed" for r in results) else 0


async def _probe(interface: str, timeout: float) -> int:
    from hal.backends.slac.link import open_packet_socket
    from hal.backends.slac.probe import probe

    sock = open_packet_socket(interface)
    try:
        info = await probe(sock, timeout)
    finally:
        sock.close()
    print(info.describe())
    return 0 if info.answered else 1


async def _slac(interface: str, init: float) -> int:
    from hal.backends.slac.link import SlacLink
    from hal.backends.slac.matcher import SlacTimers
    from hal.types import PlcState

    link = SlacLink(interface, timers=SlacTimers(evse_slac_init=init))
    try:
        await link.start_matching()
        status = await link.wait_outcome(init + 15)
    finally:
        await link.aclose()
    for t in link.trace:
        print(f"{t.time:12.3f} {t.direction} {t.peer} {t.name}")
    if status.state is PlcState.MATCHED and status.ev_mac and status.nid:
        print(f"matched EV {status.ev_mac.hex(':')} NID {status.nid.hex()}")
        return 0
    print(f"no match: {status.detail}")
    return 1


def main(argv: list[str], prog: str) -> int:
    parser = _parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    try:
        if args.cmd == "backends":
            return _backends()
        if args.cmd == "mcu-sim":
            return asyncio.run(_mcu_sim(args))
        if args.cmd == "conformance":
            return asyncio.run(_conformance(args.harness))
        if args.cmd == "probe":
            return asyncio.run(_probe(args.interface, args.timeout))
        if args.cmd == "slac":
            return asyncio.run(_slac(args.interface, args.init_timeout))
    except HalError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    parser.print_usage(sys.stderr)
    return 2
