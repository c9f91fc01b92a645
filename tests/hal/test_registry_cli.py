"""Registry (names, extras, entry points) and the ``secc hal`` command line."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hal import registry
from hal.backends.serial_mcu.backend import board_on, connect
from hal.backends.serial_mcu.link import McuConnection
from hal.cli import main
from hal.types import CpState, MissingExtraError, UnavailableError

ROOT = Path(__file__).resolve().parents[2]


def test_builtins_are_listed_with_their_extras() -> None:
    names = registry.available()
    assert {"simulated", "serial-mcu", "gpiod", "slac"} <= set(names)
    assert names["serial-mcu"].extra == "serial" and names["gpiod"].extra == "gpiod"
    assert names["slac"].kind == "plc"


def test_unknown_backend_names_the_known_ones() -> None:
    with pytest.raises(UnavailableError, match="simulated"):
        registry.load("no-such-board")


def test_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    info = registry.BackendInfo(
        "fancy", "hal.backends.simulated:open_board", "x", extra="fancy", requires="no_such_mod_1"
    )
    monkeypatch.setitem(registry.BUILTIN, "fancy", info)
    with pytest.raises(MissingExtraError) as err:
        registry.load("fancy")
    assert "pip install 'secc[fancy]'" in str(err.value) and "no_such_mod_1" in str(err.value)


def test_kind_mismatch_and_plc_without_interface() -> None:
    with pytest.raises(UnavailableError, match="provides a plc"):
        registry.load("slac")

    async def go() -> None:
        with pytest.raises(UnavailableError, match="interface"):
            await registry.open_board("simulated", plc="slac", plc_options={})

    asyncio.run(go())


def test_out_of_tree_backend_through_the_entry_point_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "acme_board.py").write_text(
        "from hal.backends.simulated import build_board\n"
        "async def open_board(options):\n"
        "    board, _ = build_board(name='acme')\n"
        "    return board\n"
    )
    dist = tmp_path / "acme_board-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-board\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[secc.hal_backends]\nacme = acme_board:open_board\nsimulated = acme_board:open_board\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    found = registry.available()
    assert found["acme"].origin == "acme-board"
    assert found["simulated"].origin == "builtin"  # no shadowing of a built-in

    async def go() -> str:
        board = await registry.open_board("acme")
        return board.name

    assert asyncio.run(go()) == "acme"


def test_gpiod_backend_names_its_extra_or_its_missing_options() -> None:
    """With the gpiod bindings installed, missing pin options are named; without them,
    the missing extra is (CI installs only the test extra, so both paths are real)."""

    async def go() -> None:
        if importlib.util.find_spec("gpiod") is None:
            with pytest.raises(MissingExtraError, match=r"secc\[gpiod\]"):
                await registry.open_board("gpiod", {})
        else:
            with pytest.raises(UnavailableError, match="contactor_out"):
                await registry.open_board("gpiod", {})

    asyncio.run(go())


def test_gpiod_backend_option_errors_over_the_fake_chip(tmp_path: Path) -> None:
    from hal.backends.gpiod_backend import build_board
    from hal.backends.simulated import Plant
    from tests.hal.fake_gpiod import FakeChip, fake_module

    mod = fake_module(FakeChip(Plant()))
    with pytest.raises(UnavailableError, match="contactor_out"):
        build_board({}, gpiod_module=mod)
    with pytest.raises(UnavailableError, match="cp_adc"):
        build_board({"contactor_out": 5, "contactor_fb": 6}, gpiod_module=mod)
    with pytest.raises(UnavailableError, match="integer"):
        build_board({"contactor_out": "5", "contactor_fb": 6}, gpiod_module=mod)
    (tmp_path / "pwm0").mkdir()
    options = {
        "chip": "/dev/gpiochip-missing",
        "contactor_out": 5,
        "contactor_fb": 6,
        "cp_adc": str(tmp_path / "adc"),
        "pwm_chip": str(tmp_path),
    }
    with pytest.raises(UnavailableError, match="gpiochip-missing"):
        build_board(options, gpiod_module=mod)


def test_cli_backends_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends"], "secc hal") == 0
    out = capsys.readouterr().out
    assert "serial-mcu" in out and "slac" in out
    assert main(["nonsense"], "secc hal") == 2
    assert main([], "secc hal") == 2
    assert main(["conformance", "simulated"], "secc hal") == 0
    assert "passed   contactors" in capsys.readouterr().out


def test_cli_probe_without_interface_fails_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "no-such-if0"], "secc hal") == 1
    assert "no-such-if0" in capsys.readouterr().err


def test_cli_mcu_sim_on_a_pty_for_lab_engineers() -> None:
    code = "import sys; from hal.cli import main; sys.exit(main(sys.argv[1:], 'secc hal'))"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-c", code, "mcu-sim", "--pty"),
            *("--status-ms", "20", "--duration", "20", "--firmware", "1.4.2"),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/pts/")

        async def go() -> None:
            conn = McuConnection.open_serial(path)
            await connect(conn, 500)
            board = await board_on(conn)
            assert board.firmware_version == "1.4.2"  # the GET_INFO answer
            assert await board.control_pilot.read_state() is CpState.A
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("C\n")
            proc.stdin.flush()
            assert "status" in await asyncio.to_thread(proc.stdout.readline)
            await asyncio.sleep(0.1)
            assert await board.control_pilot.read_state() is CpState.C
            proc.stdin.write("card 04a1b2c3\n")  # a card at the MCU's reader
            proc.stdin.flush()
            assert "presented" in await asyncio.to_thread(proc.stdout.readline)
            assert board.token_reader is not None
            read = await asyncio.wait_for(board.token_reader.read(), 5)
            assert (read.id_token, read.kind) == ("04A1B2C3", "ISO14443")
            await board.contactors.close()
            await board.aclose()

        asyncio.run(asyncio.wait_for(go(), 15))
        os.kill(proc.pid, signal.SIGTERM)
        rest, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert "executed" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
