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
import sys
from pathlib import Path

from secc.cli._help import summary
from secc.config import DEFAULT_PATH, StationConfig, load_file
from secc.errors import ConfigError
from secc.sdnotify import Notifier, watchdog_loop

log = logging.getLogger("secc.run")


def setup_logging(level: str) -> None:
    if os.environ.get("JOURNAL_STREAM"):
        fmt = "%(levelname)s %(name)s: %(message)s"
    else:
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr, force=True)


M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def fix_mmap_threshold(threshold: int = 128 * 1024) -> bool:
    """Keep glibc's mmap threshold fixed (glibc only; elsewhere a no-op).

    asyncio allocates a 256 KiB buffer for every TLS connection.  glibc raises its mmap
    threshold dynamically after the first such buffer is freed, so later ones come from
    the heap, where they fragment it: the station grew by about 7 MiB over its first 100
    TLS sessions (bench/footprint.py).  With the threshold fixed they are mapped and given
    back to the system when the session ends, and the resident size stays flat.
    """
    import ctypes  # (imported here: only `secc run` calls this)

    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc's soname: no ldconfig run to find it
    except OSError:
        import ctypes.util

        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError:
            return False
    try:
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    except AttributeError:
        return False


def settle(config: StationConfig) -> None:
    """After SDP-ready: import the codec of each protocol an EVSE offers (and no other:
    the core imports schema modules lazily), then move every object that lives as long
    as the process out of the garbage collector's reach (``gc.freeze``), so that no
    collection during a session walks the generated codec's classes and tables."""
    import gc

    import secc.aio.driver  # noqa: F401  (the session core: the first connection's)
    from secc import codec

    for name in ["apphand", *sorted({p for e in config.evse for p in e.protocols})]:
        if name in codec.SCHEMAS:
            codec.schema_module(name)
    gc.collect()
    gc.freeze()


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
    notifier = Notifier.from_environment()
    notifier.ready("serving " + ", ".join(e.evse_id for e in station.evses))
    settle(config)
    # the watchdog is fed only while every EVSE serves: a wedged station gets restarted
    watchdog = asyncio.create_task(watchdog_loop(notifier, healthy=lambda: station.healthy))
    try:
        await stop.wait()
        log.info("stopping: opening contactors, closing sessions")
        notifier.stopping()
    finally:
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog
        await station.aclose()
        notifier.close()
    log.info("stopped")
    return 0


def main(argv: list[str], prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=summary(__doc__))
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_PATH, help=f"station TOML (default {DEFAULT_PATH})"
    )
    parser.add_argument(
        "--check", action="store_true", help="only check the configuration and exit"
    )
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="event loop (default asyncio; uvloop: pip install 'secc[uvloop]', about 12 %% "
        "fewer instructions per TLS round trip, bench/instructions.py)",
    )
    args = parser.parse_args(argv)
    if args.loop == "uvloop":
        import importlib

        try:
            uvloop = importlib.import_module("uvloop")  # an optional extra
        except ModuleNotFoundError:
            why = "--loop uvloop needs uvloop: pip install 'secc[uvloop]'"
            print(f"{prog}: {why}", file=sys.stderr)
            return 2
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        config = load_file(args.config)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    if args.check:
        print(f"{args.config}: OK, {len(config.evse)} EVSE(s)")
        return 0
    setup_logging(args.log_level or config.station.log_level)
    if not fix_mmap_threshold():
        log.debug("mallopt(M_MMAP_THRESHOLD) not available: glibc's dynamic threshold stays")
    return asyncio.run(serve(config))
