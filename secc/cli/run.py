"""``secc run --config FILE``: the station.

Reads and checks the TOML configuration, then checks the machine (:mod:`secc.preflight`:
interfaces and addresses, free ports, HAL devices, certificate store, keys and password
files), starts every EVSE, tells systemd it is ready (``READY=1`` on ``$NOTIFY_SOCKET``,
``WATCHDOG=1`` every half ``$WATCHDOG_USEC``) and runs until SIGTERM or SIGINT, then
shuts down cleanly: contactors open, sessions closed, traces flushed.  Logs go to stderr,
without time stamps under systemd (journald adds them: ``$JOURNAL_STREAM`` is set).

A start-up failure is one line on stderr naming the file, the dotted key, the EVSE and
the cause (``secc run: error: FILE: evse[0].interface = "eth9" (EVSE ...): no such
network interface``), no traceback unless ``--debug``.  ``--check`` makes the same
checks and starts nothing.

Exit status: 0 after a clean stop (or ``--check`` found nothing wrong); 1 when the
configuration is invalid or the station cannot start (the line says why); 2 on a usage
error.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from secc import preflight
from secc.config import DEFAULT_PATH, StationConfig, load_file
from secc.errors import ConfigError
from secc.sdnotify import Notifier, watchdog_loop

if TYPE_CHECKING:
    import argparse

    from hal.api import Board
    from secc.aio.tls import LoadedChains
    from secc.runtime import Station

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
    """After SDP-ready: import the session driver and core and the codec of each protocol
    an EVSE offers (and no other: the core imports schema modules lazily), and the OCPP
    bridge's modules with ``[ocpp]``, then move every object that lives as long as the
    process out of the garbage collector's reach (``gc.freeze``), so that no collection
    during a session walks the generated codec's classes and tables.  ``secc run`` calls
    it in a worker thread (:func:`serve`): the imports take ~100 ms, during which the
    event loop keeps answering SDP and accepting connections (a connection that needs a
    module being imported waits for it)."""
    import gc

    # no collection while the imports run, and none before the freeze: a full collection
    # holds the GIL for its whole walk (tens of ms over ~40k objects), which would stall
    # the event loop this thread shares it with; the start leaves no cyclic garbage
    # worth collecting (gc.collect() finds none at this point)
    enabled = gc.isenabled()
    gc.disable()
    try:
        import secc.aio.driver
        from secc import codec

        for name in ["apphand", *sorted({p for e in config.evse for p in e.protocols})]:
            if name in codec.SCHEMAS:
                codec.schema_module(name)
        if config.ocpp is not None:  # the bridge (built on the loop once this is done)
            import secc.ocpp_bridge.authorization
            import secc.ocpp_bridge.bridge
            import secc.ocpp_bridge.client
            import secc.ocpp_bridge.device_model
            import secc.ocpp_bridge.queue  # noqa: F401
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _settle(config: StationConfig) -> None:
    """The post-ready work of the worker thread: glibc's mmap threshold (``ctypes``, not
    needed before a TLS session), :func:`settle`, then the garbage collector back on
    (:func:`main` turns it off for the start: nothing the start makes is garbage)."""
    try:
        if not fix_mmap_threshold():
            log.debug("mallopt(M_MMAP_THRESHOLD) not available: glibc's dynamic threshold stays")
        settle(config)
    finally:
        gc.enable()


async def _after_ready(config: StationConfig, station: Station) -> None:
    """What ``secc run`` does once SDP answers: :func:`_settle` in a worker thread, then
    the OCPP bridges on the loop (their modules are imported by then)."""
    try:
        await asyncio.to_thread(_settle, config)
    finally:
        station.start_ocpp()


class StartError(Exception):
    """The station did not start; ``str()`` is the one line that says why."""


async def open_boards(config: StationConfig, source: str) -> dict[str, Board]:
    """Every EVSE's HAL board, opened here so that a failure names its EVSE and key."""
    from hal import registry
    from hal.types import HalError

    boards: dict[str, Board] = {}
    for i, section in enumerate(config.evse):
        try:
            boards[section.evse_id] = await registry.open_board(
                section.hal.backend,
                dict(section.hal_options),
                plc=section.hal.plc,
                plc_options=dict(section.hal_plc_options),
            )
        except (HalError, OSError, ValueError) as exc:
            for board in boards.values():
                await board.aclose()
            problem = preflight.Problem(
                f"evse[{i}].hal.backend",
                section.hal.backend,
                f"the board cannot be opened: {preflight.describe(exc)}",
                section.evse_id,
            )
            raise StartError(problem.line(source)) from exc
    return boards


def _start_failure(exc: BaseException, station: Station, source: str) -> str:
    """The line for a start-up failure the checks did not foresee (a race, a bug)."""
    cause = preflight.describe(exc)
    if isinstance(exc, ConfigError):
        return f"{source}: {cause}"
    starting = station.evses[-1] if station.evses else None
    if starting is not None and starting.sdp is None:  # it failed in this EVSE's start
        i = [e.evse_id for e in station.config.evse].index(starting.evse_id)
        return f"{source}: evse[{i}] (EVSE {starting.evse_id}): cannot start: {cause}"
    return f"{source}: cannot start the station: {cause}"


async def serve(
    config: StationConfig, source: str = "secc.toml", tls_loaded: LoadedChains | None = None
) -> int:
    """Run the station until SIGTERM or SIGINT (``tls_loaded``: the SECC chains as the
    start-up checks loaded them, :func:`secc.preflight.check_station`)."""
    from secc.runtime import Station

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    boards = await open_boards(config, source)
    station = Station(config, boards=boards)
    try:
        await station.start(defer_ocpp=True, tls_loaded=tls_loaded)
    except Exception as exc:
        adopted = {e.evse_id for e in station.evses}
        for evse_id, board in boards.items():
            if evse_id not in adopted:
                with contextlib.suppress(Exception):
                    await board.aclose()
        raise StartError(_start_failure(exc, station, source)) from exc
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
    settling = asyncio.create_task(_after_ready(config, station), name="settle")
    # the watchdog is fed only while every EVSE serves: a wedged station gets restarted
    watchdog = asyncio.create_task(watchdog_loop(notifier, healthy=lambda: station.healthy))
    try:
        await stop.wait()
        log.info("stopping: opening contactors, closing sessions")
        notifier.stopping()
    finally:
        if not settling.done():
            with contextlib.suppress(Exception):
                await settling  # (a thread cannot be cancelled: let the imports finish)
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog
        await station.aclose()
        notifier.close()
    log.info("stopped")
    return 0


def _formatter() -> type[argparse.HelpFormatter]:
    import argparse

    class _Formatter(argparse.HelpFormatter):
        """argparse's help formatter without ``shutil`` (which it imports for the terminal
        width, and which imports bz2 and lzma: a few ms of ``secc run``'s start)."""

        def __init__(
            self,
            prog: str,
            indent_increment: int = 2,
            max_help_position: int = 24,
            width: int | None = None,
        ) -> None:
            if width is None:
                try:
                    width = int(os.environ.get("COLUMNS", "")) - 2
                except ValueError:
                    out = sys.__stdout__
                    try:
                        width = os.get_terminal_size(out.fileno()).columns - 2 if out else 78
                    except (AttributeError, ValueError, OSError):
                        width = 78
            super().__init__(prog, indent_increment, max_help_position, width)

    return _Formatter


def _parser(prog: str) -> argparse.ArgumentParser:
    import argparse

    from secc.cli._help import summary

    parser = argparse.ArgumentParser(
        prog=prog,
        formatter_class=_formatter(),
        description=summary(__doc__),
        epilog="A start-up failure is one line on stderr: FILE: key = value (EVSE id): "
        "cause. Exit status: 0 after a clean stop or when --check found nothing; 1 when "
        "the configuration is invalid or the station cannot start; 2 on a usage error.",
    )
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_PATH, help=f"station TOML (default {DEFAULT_PATH})"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="make the start-up checks (configuration, interfaces and addresses, free "
        "ports, HAL devices, certificate store, keys, password files) and exit",
    )
    parser.add_argument(
        "--config-only",
        action="store_true",
        help="with --check: check the file alone, not this machine (a file written for "
        "another station)",
    )
    parser.add_argument(
        "--user",
        metavar="NAME",
        help="with --check: check file access as this user (default: as root, the "
        f"service user {preflight.SERVICE_USER!r} if it exists; else the current user)",
    )
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    parser.add_argument(
        "--debug", action="store_true", help="log level debug, and a traceback on failure"
    )
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="event loop (default asyncio; uvloop: pip install 'secc[uvloop]', about 12 %% "
        "fewer instructions per TLS round trip, bench/instructions.py)",
    )
    return parser


def _quick(argv: list[str]) -> Any:
    """The arguments of a plain ``secc run`` or ``secc run --config FILE`` (how the
    service starts it) without argparse (issue 17: its import and the parser are ~10M
    instructions of the start); None for anything else, which argparse parses (with its
    errors and ``--help``) as before."""
    if not argv:
        config = DEFAULT_PATH
    elif len(argv) == 2 and argv[0] == "--config" and argv[1] and argv[1][0] != "-":
        config = Path(argv[1])
    elif len(argv) == 1 and argv[0].startswith("--config=") and len(argv[0]) > 9:
        config = Path(argv[0][9:])
    else:
        return None
    return SimpleNamespace(
        config=config,
        check=False,
        config_only=False,
        user=None,
        log_level=None,
        debug=False,
        loop="asyncio",
    )


def main(argv: list[str], prog: str) -> int:
    # no garbage collection during the start (issue 17: its collections walk every
    # object the imports make, ~10M instructions, and find no garbage); the worker
    # thread turns it back on after SDP-ready (_settle), or this on the way out
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _main(argv, prog)
    finally:
        if enabled:
            gc.enable()


def _main(argv: list[str], prog: str) -> int:
    args = _quick(argv)
    if args is None:
        args = _parser(prog).parse_args(argv)
    source = str(args.config)
    if args.loop == "uvloop":
        import importlib

        try:
            uvloop = importlib.import_module("uvloop")  # an optional extra
        except ModuleNotFoundError:
            why = "--loop uvloop needs uvloop: pip install 'secc[uvloop]'"
            print(f"{prog}: error: {why}", file=sys.stderr)
            return 2
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        config = load_file(args.config)
        user = preflight.service_user(args.user) if args.check else None
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyError:
        print(f"{prog}: error: --user {args.user}: no such user", file=sys.stderr)
        return 2
    if args.check and args.config_only:
        print(f"{source}: OK, {len(config.evse)} EVSE(s) (the file only: this machine unchecked)")
        return 0
    # the checks load each SECC chain into a TLS context: the station serves those
    loaded: LoadedChains = {}
    problems = preflight.check_station(config, user=user, loaded=loaded)
    for problem in problems:
        print(f"{prog}: error: {problem.line(source)}", file=sys.stderr)
    if problems:
        return 1
    if args.check:
        who = f"as user {user.name}" if user is not None else "as this user"
        print(f"{source}: OK, {len(config.evse)} EVSE(s); start-up checks passed ({who})")
        return 0
    setup_logging("debug" if args.debug else args.log_level or config.station.log_level)
    try:
        return asyncio.run(serve(config, source, loaded))
    except StartError as exc:
        if args.debug and exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__, file=sys.stderr)
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
