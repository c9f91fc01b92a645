"""``secc run --config FILE``: the station.

Reads and checks the TOML configuration (an unknown key or a bad value stops it here,
naming the file, key and reason: exit 1), starts every EVSE, tells systemd it is ready
(``READY=1`` on ``$NOTIFY_SOCKET``, ``WATCHDOG=1`` every half ``$WATCHDOG_USEC``) and runs
until SIGTERM or SIGINT, then shuts down cleanly: contactors open, sessions closed,
traces flushed.  Logs go to stderr, without time stamps under systemd (journald adds
them: ``$JOURNAL_STREAM`` is set).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from secc.config import DEFAULT_PATH, StationConfig, load_file
from secc.errors import ConfigError

log = logging.getLogger("secc.run")


def setup_logging(level: str) -> None:
    if os.environ.get("JOURNAL_STREAM"):
        fmt = "%(levelname)s %(name)s: %(message)s"
    else:
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr, force=True)


def sd_notify(message: str) -> bool:
    """Send ``message`` to systemd's notification socket, if there is one."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), address)
    except OSError as exc:
        log.warning("sd_notify(%s) failed: %s", message.split("\n", maxsplit=1)[0], exc)
        return False
    return True


async def _watchdog(interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        sd_notify("WATCHDOG=1")


async def serve(config: StationConfig) -> int:
    from secc.runtime import Station

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    station = Station(config)
    try:
        await station.start()
    except ConfigError as exc:
        log.error("%s", exc)
        return 1
    except OSError as exc:
        log.error("cannot start the station: %s", exc)
        return 1
    for evse in station.evses:
        ports = ", ".join(f"{k} port {p}" for k, p in evse.ports.items())
        sdp = evse.sdp.port if evse.sdp is not None else "-"
        log.info(
            "EVSE %s ready on %s (%s): SDP port %s, %s",
            evse.evse_id,
            evse.section.address,
            evse.section.interface or "no interface",
            sdp,
            ports,
        )
    sd_notify("READY=1\nSTATUS=serving " + ", ".join(e.evse_id for e in station.evses))
    watchdog: asyncio.Task[None] | None = None
    usec = os.environ.get("WATCHDOG_USEC", "")
    if usec.isdigit() and int(usec) > 0:
        watchdog = asyncio.create_task(_watchdog(int(usec) / 2e6))
    try:
        await stop.wait()
        log.info("stopping: opening contactors, closing sessions")
        sd_notify("STOPPING=1")
    finally:
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        await station.aclose()
    log.info("stopped")
    return 0


def main(argv: list[str], prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_PATH, help=f"station TOML (default {DEFAULT_PATH})"
    )
    parser.add_argument(
        "--check", action="store_true", help="only check the configuration and exit"
    )
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    args = parser.parse_args(argv)
    try:
        config = load_file(args.config)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    if args.check:
        print(f"{args.config}: OK, {len(config.evse)} EVSE(s)")
        return 0
    setup_logging(args.log_level or config.station.log_level)
    return asyncio.run(serve(config))
