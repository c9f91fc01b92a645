"""``secc run --loop uvloop`` (issue 17): uvloop is an optional extra; asyncio's own loop
stays the default (every other station test runs on it).  Without the extra installed
the option is refused with the extra's name; with it, uvloop's policy is in place."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from secc.cli import run

CONFIG = """
[[evse]]
evse_id = "DE*ABC*E1234567*1"
address = "::1"
tcp_port = 0
tls_port = -1
sdp_port = 0
[evse.hal]
backend = "simulated"
"""


def test_the_default_loop_is_asyncio(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "secc.toml"
    config.write_text(CONFIG)
    before = asyncio.get_event_loop_policy()
    assert run.main(["--config", str(config), "--check"], prog="secc run") == 0
    assert asyncio.get_event_loop_policy() is before
    assert "OK" in capsys.readouterr().out


def test_uvloop_is_an_optional_extra(tmp_path: Path) -> None:
    config = tmp_path / "secc.toml"
    config.write_text(CONFIG)
    if importlib.util.find_spec("uvloop") is None:
        out = subprocess.run(
            [sys.executable, "-m", "secc.cli.main", "run", "--loop", "uvloop", "--config", config],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 2
        assert "pip install 'secc[uvloop]'" in out.stderr
        return
    before = asyncio.get_event_loop_policy()
    try:
        args = ["--config", str(config), "--check", "--loop", "uvloop"]
        assert run.main(args, prog="secc run") == 0
        assert type(asyncio.get_event_loop_policy()).__module__.startswith("uvloop")
    finally:
        asyncio.set_event_loop_policy(before)
