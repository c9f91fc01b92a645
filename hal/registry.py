"""Backends by name, imported lazily, with a clear error naming a missing extra.

Built-in backends are listed in :data:`BUILTIN`.  Out-of-tree boards register through the
``secc.hal_backends`` entry-point group; the entry point names an ``open_board`` coroutine
function ``async def open_board(options: Mapping[str, object]) -> hal.api.Board``::

    [project.entry-points."secc.hal_backends"]
    myboard = "myboard.hal:open_board"

Every built-in backend refuses an option it does not know (:func:`check_options`): a typo
such as ``baud`` for ``baudrate`` stops the station instead of being ignored.  The option
names live here, so the configuration loader checks them without importing the backend.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping
from typing import cast

from hal.api import Board, PlcLink
from hal.records import record
from hal.types import MissingExtraError, UnavailableError

ENTRY_POINT_GROUP = "secc.hal_backends"

OpenBoard = Callable[[Mapping[str, object]], Awaitable[Board]]
OpenPlc = Callable[[Mapping[str, object]], Awaitable[PlcLink]]


@record
class BackendInfo:
    name: str
    target: str  # "module:function"
    description: str
    extra: str | None = None  # the pip extra that provides its dependency
    requires: str | None = None  # the import name of that dependency
    origin: str = "builtin"
    kind: str = "board"  # "board": open_board -> Board;  "plc": open_plc -> PlcLink
    options: frozenset[str] | None = None  # the option names it takes; None: it checks itself


BUILTIN: dict[str, BackendInfo] = {
    "simulated": BackendInfo(
        "simulated",
        "hal.backends.simulated:open_board",
        "simulated plant (EV, relays, meter, RCD, PLC) for demo, tests and lab work",
        options=frozenset({"ev_state", "ev_hlc", "tamper_file"}),
    ),
    "serial-mcu": BackendInfo(
        "serial-mcu",
        "hal.backends.serial_mcu.backend:open_board",
        "safety MCU on a UART (CP, contactors, lock, RCD) speaking docs/mcu-protocol.md",
        extra="serial",
        requires="serial",
        options=frozenset({"port", "baudrate", "heartbeat_timeout_ms"}),
    ),
    "gpiod": BackendInfo(
        "gpiod",
        "hal.backends.gpiod_backend:open_board",
        "relays and feedback on GPIO (libgpiod v2), CP by sysfs PWM and IIO ADC",
        extra="gpiod",
        requires="gpiod",
        options=frozenset(
            {
                "chip",
                "contactor_out",
                "contactor_fb",
                "lock_out",
                "lock_fb",
                "rcd_in",
                "active_low",
                "pwm_chip",
                "pwm_channel",
                "pwm_period_ns",
                "cp_adc",
                "cp_adc_scale",
                "cp_adc_offset",
            }
        ),
    ),
    "slac": BackendInfo(
        "slac",
        "hal.backends.slac.link:open_plc",
        "PLC link only: SLAC (ISO 15118-3) over AF_PACKET on the modem's interface",
        kind="plc",
        options=frozenset({"interface", "slac_init_s", "modem_mac", "max_sessions"}),
    ),
}


class UnknownOptionError(UnavailableError):
    """An option the backend does not take (``option``; ``known``: the ones it does)."""

    def __init__(self, backend: str, option: str, known: frozenset[str]) -> None:
        super().__init__(
            f"HAL backend {backend!r} has no option {option!r} "
            f"(its options: {', '.join(sorted(known)) or 'none'})"
        )
        self.backend = backend
        self.option = option
        self.known = known


def check_options(name: str, options: Mapping[str, object]) -> None:
    """Refuse an option backend ``name`` does not know (built-ins; a plug-in checks its
    own).  Raises :class:`UnknownOptionError` naming the first unknown option."""
    info = BUILTIN.get(name)
    if info is None or info.options is None:
        return
    unknown = sorted(set(options) - info.options)
    if unknown:
        raise UnknownOptionError(name, unknown[0], info.options)


def _entry_points() -> dict[str, BackendInfo]:
    import importlib.metadata  # (here: scanning the installed distributions is slow)

    found: dict[str, BackendInfo] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        found[ep.name] = BackendInfo(
            ep.name, ep.value, f"out-of-tree backend from {dist}", origin=dist
        )
    return found


def available() -> dict[str, BackendInfo]:
    """Every known backend, built-in first; an entry point cannot shadow a built-in."""
    out = dict(BUILTIN)
    for name, info in _entry_points().items():
        out.setdefault(name, info)
    return out


def missing_dependency(info: BackendInfo) -> str | None:
    """The import name of a missing optional dependency, or None when all is there."""
    if info.requires is None:
        return None
    try:
        importlib.import_module(info.requires)
    except ImportError:
        return info.requires
    return None


def load(name: str) -> OpenBoard:
    """The ``open_board`` function of a backend; UnavailableError / MissingExtraError else."""
    return cast(OpenBoard, _load(name, "board"))


def load_plc(name: str) -> OpenPlc:
    """The ``open_plc`` function of a PLC backend (``slac``)."""
    return cast(OpenPlc, _load(name, "plc"))


def _load(name: str, kind: str) -> object:
    info = BUILTIN.get(name) or available().get(name)  # a built-in needs no plug-in scan
    if info is None:
        known = ", ".join(sorted(available()))
        raise UnavailableError(f"unknown HAL backend {name!r} (known: {known})")
    if info.kind != kind:
        raise UnavailableError(f"HAL backend {name!r} provides a {info.kind}, not a {kind}")
    missing = missing_dependency(info)
    if missing is not None:
        raise MissingExtraError(name, info.extra or "?", missing)
    module_name, _, attr = info.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if info.extra and exc.name and exc.name.split(".")[0] == info.requires:
            raise MissingExtraError(name, info.extra, exc.name) from exc
        raise UnavailableError(f"HAL backend {name!r} failed to import: {exc}") from exc
    func = getattr(module, attr, None)
    if func is None:
        raise UnavailableError(f"HAL backend {name!r}: {info.target} does not exist")
    return func


async def open_board(
    name: str,
    options: Mapping[str, object] | None = None,
    *,
    plc: str | None = None,
    plc_options: Mapping[str, object] | None = None,
) -> Board:
    """Open a board; ``plc`` names a PLC backend that replaces the board's own PLC link."""
    board = await load(name)(options or {})
    if plc is not None:
        try:
            board.plc = await load_plc(plc)(plc_options or {})
        except BaseException:
            await board.aclose()
            raise
    return board
