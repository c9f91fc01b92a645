"""No silent defaults for the HAL: the file names every EVSE's backend, every backend
refuses an option it does not know, and certificate installation without a back end is
refused at start.  Errors name the file and the dotted key."""

from __future__ import annotations

import ast
import asyncio
import tomllib
from pathlib import Path

import pytest

from hal import registry
from hal.backends import gpiod_backend, simulated
from hal.backends.serial_mcu import backend as serial_mcu
from hal.backends.slac import link as slac
from hal.registry import BUILTIN, UnknownOptionError
from secc.config import parse
from secc.errors import ConfigError
from tests.hal.fake_gpiod import FakeChip, fake_module

FILE = "/etc/secc/secc.toml"
HEAD = '[[evse]]\nevse_id = "DE*ABC*E1234567*1"\n'


def _parse(text: str) -> object:
    return parse(tomllib.loads(text), FILE)


def _refused(text: str, *needles: str) -> str:
    with pytest.raises(ConfigError) as info:
        _parse(text)
    message = str(info.value)
    assert message.startswith(FILE + ":"), message
    for needle in needles:
        assert needle in message, message
    return message


# --- the backend is named in the file --------------------------------------------------------


def test_a_file_without_a_backend_is_refused() -> None:
    _refused(HEAD, "missing required key evse[0].hal.backend", "serial-mcu", "simulated")
    _refused(HEAD + '[evse.hal]\ncontrol = "none"\n', "evse[0].hal.backend")


def test_a_misplaced_backend_key_does_not_fall_back_to_the_simulated_plant() -> None:
    # the issue: `backend` written into the options table ran the simulated plant
    _refused(
        HEAD + '[evse.hal]\ncontrol = "iec61851"\n[evse.hal.options]\nbackend = "serial-mcu"\n',
        "missing required key evse[0].hal.backend",
    )
    _refused(HEAD + 'backend = "serial-mcu"\n', "unknown key evse[0].backend")
    _refused('backend = "serial-mcu"\n' + HEAD, "unknown key backend")


def test_the_second_evse_is_checked_too() -> None:
    one = HEAD + '[evse.hal]\nbackend = "simulated"\n'
    two = '[[evse]]\nevse_id = "DE*ABC*E1234567*2"\nsdp_port = 15119\n'
    _refused(one + two, "evse[1].hal.backend")


def test_an_unknown_backend_name_is_refused_at_load() -> None:
    _refused(
        HEAD + '[evse.hal]\nbackend = "serial_mcu"\n',
        "evse[0].hal.backend",
        "'serial_mcu'",
        "serial-mcu",
    )
    _refused(
        HEAD + '[evse.hal]\nbackend = "simulated"\nplc = "simulated"\n',
        "evse[0].hal.plc",
        "slac",
    )


def test_a_named_backend_loads() -> None:
    config = _parse(
        HEAD + '[evse.hal]\nbackend = "serial-mcu"\n[evse.hal.options]\nport = "/dev/ttyS1"\n'
    )
    evse = config.evse[0]  # type: ignore[attr-defined]
    assert evse.hal.backend == "serial-mcu" and dict(evse.hal_options) == {"port": "/dev/ttyS1"}


# --- unknown options -------------------------------------------------------------------------


def test_a_typo_in_the_options_is_refused_at_load() -> None:
    message = _refused(
        HEAD + '[evse.hal]\nbackend = "serial-mcu"\n'
        '[evse.hal.options]\nport = "/dev/ttyS1"\nbaud = 9600\n',
        "unknown key evse[0].hal.options.baud",
        "baudrate",
    )
    assert "heartbeat_timeout_ms" in message


def test_a_typo_in_the_plc_options_is_refused_at_load() -> None:
    _refused(
        HEAD + '[evse.hal]\nbackend = "simulated"\nplc = "slac"\n'
        '[evse.hal.plc_options]\ninterface = "eth1"\nslac_init = 30\n',
        "unknown key evse[0].hal.plc_options.slac_init",
        "slac_init_s",
    )


def test_simulated_refuses_an_unknown_option() -> None:
    with pytest.raises(UnknownOptionError, match=r"'ev_sate'.*ev_hlc, ev_state"):
        asyncio.run(simulated.open_board({"ev_sate": "B"}))
    with pytest.raises(UnknownOptionError, match="'ev_sate'"):
        asyncio.run(registry.open_board("simulated", {"ev_sate": "B"}))


def test_serial_mcu_refuses_an_unknown_option_before_opening_the_port(tmp_path: Path) -> None:
    port = tmp_path / "no-such-tty"
    with pytest.raises(UnknownOptionError) as info:
        asyncio.run(serial_mcu.open_board({"port": str(port), "baud": 9600}))
    assert info.value.option == "baud" and "baudrate" in info.value.known


def test_slac_refuses_an_unknown_option() -> None:
    with pytest.raises(UnknownOptionError, match="'slac_init'"):
        asyncio.run(slac.open_plc({"interface": "lo", "slac_init": 30.0}))


def test_gpiod_refuses_an_unknown_option(tmp_path: Path) -> None:
    options = {"contactor_out": 1, "contactor_fb": 2, "cp_adc": str(tmp_path / "adc"), "chp": "x"}
    with pytest.raises(UnknownOptionError, match="'chp'"):
        gpiod_backend.build_board(options, gpiod_module=fake_module(FakeChip(simulated.Plant())))


MODULES = {
    "simulated": simulated,
    "serial-mcu": serial_mcu,
    "gpiod": gpiod_backend,
    "slac": slac,
}


def _options_read(path: Path) -> set[str]:
    """The option names a backend module reads: ``options.get("x")``, ``options["x"]``,
    ``"x" in options``, ``helper(options, "x")``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            args = node.args
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "get"
                and isinstance(func.value, ast.Name)
                and func.value.id == "options"
                and args
                and isinstance(args[0], ast.Constant)
            ):
                names.add(args[0].value)
            elif (
                len(args) >= 2
                and isinstance(args[0], ast.Name)
                and args[0].id == "options"
                and isinstance(args[1], ast.Constant)
                and isinstance(args[1].value, str)
            ):
                names.add(args[1].value)
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            if node.value.id == "options" and isinstance(node.slice, ast.Constant):
                names.add(node.slice.value)
        elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant):
            right = node.comparators[0]
            if isinstance(right, ast.Name) and right.id == "options":
                names.add(node.left.value)
    names.discard("simulated")  # check_options("simulated", options): a backend name
    names.discard("serial-mcu")
    names.discard("gpiod")
    names.discard("slac")
    return names


@pytest.mark.parametrize("name", sorted(MODULES))
def test_the_declared_options_are_the_ones_the_backend_reads(name: str) -> None:
    read = _options_read(Path(MODULES[name].__file__ or ""))
    assert read, name
    assert read == BUILTIN[name].options


# --- certificate installation needs a back end -----------------------------------------------

BACKEND = '[evse.hal]\nbackend = "simulated"\n'
OCPP = '[ocpp]\nurl = "ws://127.0.0.1:9000/ocpp"\nstation_id = "CS-1"\n'


def test_certificate_installation_without_a_back_end_is_refused() -> None:
    _refused(
        HEAD + "certificate_installation = true\n" + BACKEND,
        "evse[0].certificate_installation",
        "[ocpp]",
    )


def test_certificate_installation_is_off_without_a_back_end_and_on_with_one() -> None:
    alone = _parse(HEAD + BACKEND)
    assert alone.evse[0].certificate_installation is False  # type: ignore[attr-defined]
    with_csms = _parse(OCPP + HEAD + BACKEND)
    assert with_csms.evse[0].certificate_installation is True  # type: ignore[attr-defined]
    explicit = _parse(OCPP + HEAD + "certificate_installation = true\n" + BACKEND)
    assert explicit.evse[0].certificate_installation is True  # type: ignore[attr-defined]
    off = _parse(HEAD + "certificate_installation = false\n" + BACKEND)
    assert off.evse[0].certificate_installation is False  # type: ignore[attr-defined]
