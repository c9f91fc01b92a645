"""``secc commission`` makes the checks ``secc run`` makes before it starts (the shared
``secc.preflight``): for each bad station its ``start`` check FAILs with the very line the
start and ``secc run --check`` print, and a station it passes does start."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.commission.conftest import EVSE_ID, StationDir
from tests.commission.test_commission import cli

PREFIX = "secc run: error: "


def run_check(station: StationDir) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "secc.cli.main", "run", "--check", "--config", str(station.config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def start_line(station: StationDir) -> str:
    """The line the real start prints (and exits 1)."""
    done = subprocess.run(
        [sys.executable, "-m", "secc.cli.main", "run", "--config", str(station.config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX), done.stderr
    return lines[0].removeprefix(PREFIX)


def commission_start(station: StationDir) -> subprocess.CompletedProcess[str]:
    return cli(station, "--only", "start", "--no-hal-self-test", "--no-sdp")


EVSE = 'address = "::1"\ntls_port = 0\nsdp_port = 0\n'


def _mismatched_key(station: StationDir) -> str:
    _, key = station.store().leaf_paths("v2g")
    key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return "does not match the certificate"


@pytest.mark.parametrize("case", ["interface", "port", "key", "password", "serial"])
def test_commission_fails_with_the_line_the_start_gives(station: StationDir, case: str) -> None:
    holder = None
    evse = EVSE
    if case == "interface":
        evse += 'interface = "nosuch7"\n'
    elif case == "port":
        holder = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        holder.bind(("::1", 0))
        holder.listen(1)
        evse += f"tcp_port = {holder.getsockname()[1]}\n"
    elif case == "serial":
        evse += '[evse.hal]\nbackend = "serial-mcu"\n[evse.hal.options]\nport = "/dev/ttyNO7"\n'
    try:
        station.write_config(extra_evse=evse)
        if case == "key":
            _mismatched_key(station)
        elif case == "password":
            text = station.config.read_text()
            missing = station.root / "key-password"
            station.config.write_text(
                text.replace("[certs]\n", f'[certs]\nkey_password_file = "{missing}"\n')
            )
        line = start_line(station)
        check = run_check(station)
        assert check.returncode == 1 and check.stderr == f"{PREFIX}{line}\n"
        done = commission_start(station)
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"FAIL secc run start-up checks: {line}\n" in done.stdout, done.stdout
        assert "NOT READY" in done.stdout
    finally:
        if holder is not None:
            holder.close()


def test_what_commission_passes_starts(station: StationDir, tmp_path: Path) -> None:
    station.write_config(extra_evse=EVSE + "tcp_port = 0\n")
    done = commission_start(station)
    assert done.returncode == 3, done.stdout + done.stderr  # partial: --only
    assert "PASS secc run start-up checks" in done.stdout and "`secc run` will start" in (
        done.stdout
    )
    assert run_check(station).returncode == 0
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "secc.cli.main", "run", "--config", str(station.config)],
            stderr=err,
            stdout=subprocess.DEVNULL,
        )
    try:
        from tests.station.test_run_cli import READY, wait_for_line

        ready = wait_for_line(log, READY)
        assert ready.group(1) == EVSE_ID
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="judging another user's access needs root")
def test_commission_judges_files_as_the_service_user(station: StationDir) -> None:
    """Run as root, commission looks at the files with the service user's eyes (--user,
    or service_user in the answers): root's private store is no store for user nobody."""
    station.write_config(extra_evse=EVSE + "tcp_port = 0\n")
    assert "PASS secc run start-up checks" in commission_start(station).stdout
    done = cli(station, "--only", "start", "--no-hal-self-test", "--no-sdp", "--user", "nobody")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "user nobody cannot read it" in done.stdout, done.stdout
    answers = station.root / "answers.toml"
    answers.write_text('service_user = "nobody"\nhal_self_test = false\nsdp_probe = false\n')
    by_file = cli(station, "--only", "start", "--answers", str(answers))
    assert by_file.returncode == 1 and "user nobody cannot read it" in by_file.stdout
    unknown = cli(station, "--only", "start", "--user", "no-such-user-x")
    assert unknown.returncode == 2 and "no such user" in unknown.stderr
