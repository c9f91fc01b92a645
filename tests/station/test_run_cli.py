"""``secc run`` as systemd runs it: a subprocess with a generated config, READY=1 and
WATCHDOG=1 on a Unix datagram socket, a session against it, SIGTERM, a clean stop."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from secc.aio.ev_client import run_ev_sdp
from secc.sdp import Security
from tests.station.conftest import script

CONFIG = """
[station]
trace_dir = "{traces}"
[certs]
store = "{store}"
[[evse]]
evse_id = "DE*ABC*E1234567*1"
address = "::1"
tls_port = 0
tcp_port = 0
sdp_port = 0
energy_modes = ["AC_three_phase_core", "DC_extended"]
[evse.hal]
backend = "simulated"
control = "none"
[evse.hal.options]
ev_state = "C"
"""
READY = re.compile(r"EVSE (\S+) ready on (\S+) .*SDP port (\d+), tls port (\d+), tcp port (\d+)")


def write_config(directory: Path, pki_dir: Path) -> Path:
    path = directory / "secc.toml"
    traces = directory / "traces"
    path.write_text(CONFIG.format(traces=traces, store=pki_dir / "station"))
    return path


def wait_for_line(path: Path, pattern: re.Pattern[str], timeout: float = 20) -> re.Match[str]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = pattern.search(path.read_text())
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"{pattern.pattern!r} not in {path.read_text()}")


def test_run_notifies_systemd_serves_and_stops_on_sigterm(pki_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, pki_dir)
    notify_path = tmp_path / "notify"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(20)
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(notify_path),
        "WATCHDOG_USEC": "200000",
        "JOURNAL_STREAM": "8:1234",
    }
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "secc.cli.main", "run", "--config", str(config)],
            stderr=err,
            stdout=subprocess.DEVNULL,
            env=env,
        )
    try:
        messages = [notify.recv(4096).decode()]
        assert messages[0].startswith("READY=1\n")
        ready = wait_for_line(log, READY)
        sdp_port = int(ready.group(3))
        result = asyncio.run(
            run_ev_sdp(
                script("dc"),
                security=Security.TLS,
                address="::1",
                sdp_port=sdp_port,
                cafile=pki_dir / "v2g" / "root.pem",
            )
        )
        assert result.ended == "done" and result.tls
        assert result.steps[-1].response == "SessionStopRes"
        messages.append(notify.recv(4096).decode())
        assert messages[-1] == "WATCHDOG=1"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()
    text = log.read_text()
    assert "stopping: opening contactors" in text and text.rstrip().endswith("stopped")
    # under systemd (JOURNAL_STREAM set) no time stamps: journald adds its own
    assert all(
        re.match(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) ", line) for line in text.splitlines()
    )
    traces = list((tmp_path / "traces").glob("*.jsonl"))
    assert len(traces) == 1


def test_run_sigterm_mid_session_opens_and_ends(pki_dir: Path, tmp_path: Path) -> None:
    """SIGTERM while the EV charges: the process ends the session (trace flushed with an
    end record) and exits 0; the EV sees the connection closed."""
    config = write_config(tmp_path, pki_dir)
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "secc.cli.main", "run", "--config", str(config)],
            stderr=err,
            stdout=subprocess.DEVNULL,
        )
    try:
        ready = wait_for_line(log, READY)

        async def ev() -> str:
            task = asyncio.create_task(
                run_ev_sdp(
                    script("ac", charge_loops=100_000),
                    security=Security.NONE,
                    address="::1",
                    sdp_port=int(ready.group(3)),
                )
            )
            await asyncio.sleep(1.0)
            proc.send_signal(signal.SIGTERM)
            return (await asyncio.wait_for(task, 20)).ended

        ended = asyncio.run(ev())
        assert "closed" in ended or "lost" in ended, ended
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    trace = next((tmp_path / "traces").glob("*.jsonl")).read_text().splitlines()
    assert '"kind":"end"' in trace[-1]
    assert '"action":"OpenContactors"' in "\n".join(trace[-6:])


# --- start-up failures: one line naming the file, the key, the EVSE and the cause -------------
#
# Every case runs the real `secc run` twice: the start, and `--check`.  Both must refuse with
# exit 1 and the same single line on stderr (`secc run: error: FILE: key = value (EVSE id):
# cause`), no traceback.

EVSE = "DE*ABC*E1234567*1"
MINIMAL = """
{before}
[[evse]]
evse_id = "DE*ABC*E1234567*1"
address = "::1"
tls_port = {tls_port}
tcp_port = 0
sdp_port = 0
{evse}
[evse.hal]
backend = "{backend}"
control = "none"
{hal}
"""


def minimal(
    directory: Path,
    *,
    before: str = "",
    evse: str = "",
    backend: str = "simulated",
    hal: str = "",
    tls_port: int = 0,
) -> Path:
    path = directory / "secc.toml"
    path.write_text(
        MINIMAL.format(before=before, evse=evse, backend=backend, hal=hal, tls_port=tls_port)
    )
    return path


def _drop_caps(*caps: int) -> Callable[[], None]:
    """For the child, as root: give up these capabilities (from the bounding set, so the
    exec'd interpreter never has them)."""

    def drop() -> None:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        for cap in caps:
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")

    return drop


# CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH: without them root obeys file modes like the
# service user does
_OBEY_MODES = _drop_caps(1, 2)
CAP_NET_RAW = 13


def secc_run(
    config: Path,
    *extra: str,
    obey_modes: bool = False,
    drop: Callable[[], None] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """``secc run`` as a subprocess; ``obey_modes``: root without its file override;
    ``drop``: run this in the child first (``_drop_caps``)."""
    if obey_modes and os.geteuid() == 0:
        drop = _OBEY_MODES
    return subprocess.run(
        [sys.executable, "-m", "secc.cli.main", "run", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=drop,
        stdin=subprocess.DEVNULL,
    )


def start_and_stop(config: Path, log: Path) -> None:
    """The station starts (READY in the log) and stops cleanly on SIGTERM."""
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "secc.cli.main", "run", "--config", str(config)],
            stderr=err,
            stdout=subprocess.DEVNULL,
        )
    try:
        wait_for_line(log, READY)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def assert_refused(
    config: Path,
    expected: str,
    *,
    obey_modes: bool = False,
    drop: Callable[[], None] | None = None,
) -> None:
    """The start and --check both exit 1 with exactly this line."""
    line = f"secc run: error: {config}: {expected}"
    start = secc_run(config, obey_modes=obey_modes, drop=drop)
    assert start.returncode == 1, start.stderr
    assert start.stderr.splitlines() == [line], start.stderr
    check = secc_run(config, "--check", obey_modes=obey_modes, drop=drop)
    assert check.returncode == 1 and check.stdout == "", check.stdout
    assert check.stderr == start.stderr


def copy_store(pki_dir: Path, target: Path) -> Path:
    shutil.copytree(pki_dir / "station", target, symlinks=True)
    return target


def with_store(store: Path, extra: str = "") -> str:
    return f'[certs]\nstore = "{store}"\n{extra}'


def test_a_missing_interface(tmp_path: Path) -> None:
    assert_refused(
        minimal(tmp_path, evse='interface = "nosuch9"'),
        f'evse[0].interface = "nosuch9" (EVSE {EVSE}): no such network interface',
    )


def test_an_address_this_machine_does_not_have(tmp_path: Path) -> None:
    config = minimal(tmp_path)
    config.write_text(config.read_text().replace('address = "::1"', 'address = "2001:db8::7"'))
    assert_refused(
        config,
        f'evse[0].address = "2001:db8::7" (EVSE {EVSE}): not an address of this machine '
        "(or still tentative: duplicate address detection)",
    )


def test_a_tcp_port_in_use(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as holder:
        holder.bind(("::1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        config = minimal(tmp_path, tls_port=-1)
        config.write_text(config.read_text().replace("tcp_port = 0", f"tcp_port = {port}"))
        assert_refused(
            config,
            f"evse[0].tcp_port = {port} (EVSE {EVSE}): TCP port {port} is in use by another "
            "program",
        )


def test_the_tls_port_in_use(tmp_path: Path, pki_dir: Path) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as holder:
        holder.bind(("::", 0))  # a wildcard listener holds it for ::1 as well
        holder.listen(1)
        port = holder.getsockname()[1]
        config = minimal(tmp_path, before=with_store(pki_dir / "station"), tls_port=port)
        assert_refused(
            config,
            f"evse[0].tls_port = {port} (EVSE {EVSE}): TCP port {port} is in use by another "
            "program",
        )


def test_the_sdp_port_in_use(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as holder:
        holder.bind(("::", 0))  # without SO_REUSEADDR: nobody else may bind the port
        port = holder.getsockname()[1]
        config = minimal(tmp_path)
        config.write_text(config.read_text().replace("sdp_port = 0", f"sdp_port = {port}"))
        assert_refused(
            config,
            f"evse[0].sdp_port = {port} (EVSE {EVSE}): UDP port {port} is in use by another "
            "program",
        )


def test_a_missing_or_wrong_serial_port(tmp_path: Path) -> None:
    assert_refused(
        minimal(tmp_path, backend="serial-mcu", hal='[evse.hal.options]\nport = "/dev/ttyNOPE9"'),
        f'evse[0].hal.options.port = "/dev/ttyNOPE9" (EVSE {EVSE}): no such serial port',
    )
    assert_refused(
        minimal(tmp_path, backend="serial-mcu", hal='[evse.hal.options]\nport = "/dev/null"'),
        f'evse[0].hal.options.port = "/dev/null" (EVSE {EVSE}): not a serial port (not a '
        "terminal device)",
    )


def test_an_unknown_backend_and_an_unknown_option(tmp_path: Path) -> None:
    assert_refused(
        minimal(tmp_path, backend="simulatd"),
        "evse[0].hal.backend: no board backend 'simulatd' (known: gpiod, serial-mcu, simulated)",
    )
    assert_refused(
        minimal(tmp_path, hal='[evse.hal.options]\nev_stat = "C"'),
        "unknown key evse[0].hal.options.ev_stat "
        "(the simulated backend takes: ev_hlc, ev_state, tamper_file)",
    )
    assert_refused(
        minimal(tmp_path, hal='[evse.hal.options]\nev_state = "Z"'),
        f'evse[0].hal.options.ev_state = "Z" (EVSE {EVSE}): not a control pilot state (one of '
        "A, B, C, D, E, F)",
    )


def test_the_gpiod_board(tmp_path: Path) -> None:
    pwm = tmp_path / "pwmchip0"
    pwm.mkdir()
    adc = tmp_path / "in_voltage0_raw"
    adc.write_text("0\n")
    good = (
        '[evse.hal.options]\nchip = "/dev/null"\ncontactor_out = 3\ncontactor_fb = 4\n'
        f'pwm_chip = "{pwm}"\ncp_adc = "{adc}"\n'
    )
    assert_refused(
        minimal(tmp_path, backend="gpiod", hal=good.replace("fb = 4", 'fb = "4"')),
        f'evse[0].hal.options.contactor_fb = "4" (EVSE {EVSE}): must be an integer',
    )
    assert_refused(
        minimal(tmp_path, backend="gpiod", hal=good.replace(str(adc), str(adc) + "x")),
        f'evse[0].hal.options.cp_adc = "{adc}x" (EVSE {EVSE}): no such file',
    )
    assert_refused(
        minimal(tmp_path, backend="gpiod", hal=good.replace("/dev/null", str(adc))),
        f'evse[0].hal.options.chip = "{adc}" (EVSE {EVSE}): not a GPIO chip (not a character '
        "device)",
    )


def test_the_slac_plc_link(tmp_path: Path) -> None:
    assert_refused(
        minimal(tmp_path, hal='plc = "slac"\n[evse.hal.plc_options]\ninterface = "nosuch3"'),
        f'evse[0].hal.plc_options.interface = "nosuch3" (EVSE {EVSE}): no such network interface',
    )
    # without CAP_NET_RAW (a unit that lost AmbientCapabilities; a test run as a user)
    unprivileged = os.geteuid() != 0
    drop = None if unprivileged else _drop_caps(CAP_NET_RAW)
    assert_refused(
        minimal(tmp_path, hal='plc = "slac"\n[evse.hal.plc_options]\ninterface = "lo"'),
        f'evse[0].hal.plc = "slac" (EVSE {EVSE}): SLAC on lo needs a raw socket (AF_PACKET): '
        "CAP_NET_RAW (the shipped units grant it)",
        drop=drop,
    )
    if unprivileged:
        return  # the range checks below come after the raw socket's line
    assert_refused(
        minimal(
            tmp_path,
            hal='plc = "slac"\n[evse.hal.plc_options]\ninterface = "lo"\nslac_init_s = 5',
        ),
        f"evse[0].hal.plc_options.slac_init_s = 5 (EVSE {EVSE}): must lie in 20..50 s "
        "(TT_EVSE_SLAC_init)",
    )


@pytest.mark.parametrize(
    ("evse", "hal", "message"),
    [
        ("sdp_port = 70000", "", "evse[0]: sdp_port must be a port number (0: any)"),
        ("", "poll_interval = 0", "evse[0].hal: hal.poll_interval must be between 0.005 and 5"),
        ("schedule_wait = 99", "", "evse[0]: schedule_wait must be between 0 and 55 seconds"),
        ('address = "localhost"', "", "evse[0]: address 'localhost' must be an IPv6 address"),
    ],
)
def test_values_out_of_range(tmp_path: Path, evse: str, hal: str, message: str) -> None:
    config = minimal(tmp_path, evse=evse, hal=hal)
    text = config.read_text()
    if "sdp_port" in evse:
        text = text.replace("sdp_port = 0\n", "")
    if "address" in evse:
        text = text.replace('address = "::1"\n', "")
    config.write_text(text)
    start = secc_run(config)
    assert start.returncode == 1
    assert len(start.stderr.splitlines()) == 1, start.stderr
    assert start.stderr.startswith(f"secc run: error: {config}: {message}"), start.stderr
    assert secc_run(config, "--check").stderr == start.stderr


def test_a_store_or_password_file_that_is_not_there(tmp_path: Path, pki_dir: Path) -> None:
    missing = tmp_path / "no-store"
    assert_refused(
        minimal(tmp_path, before=with_store(missing)),
        f'certs.store = "{missing}": no such directory',
    )
    password = tmp_path / "no-password"
    assert_refused(
        minimal(
            tmp_path,
            before=with_store(pki_dir / "station", f'key_password_file = "{password}"'),
        ),
        f'certs.key_password_file = "{password}": no such file',
    )
    empty = tmp_path / "empty-password"
    empty.write_text("\n")
    assert_refused(
        minimal(tmp_path, before=with_store(pki_dir / "station", f'key_password_file = "{empty}"')),
        f'certs.key_password_file = "{empty}": the file is empty',
    )


def test_nothing_to_serve(tmp_path: Path, pki_dir: Path) -> None:
    """TLS only (tcp_port = -1, the default) needs a SECC chain under an installed V2G
    root: without one the station would serve nothing."""
    config = minimal(tmp_path)
    config.write_text(config.read_text().replace("tcp_port = 0\n", ""))
    assert_refused(
        config,
        f"evse[0].tcp_port = -1 (EVSE {EVSE}): nothing to serve: plain TCP is off and TLS "
        "needs a SECC chain under an installed V2G root in certs.store (none)",
    )
    store = copy_store(pki_dir, tmp_path / "store")
    for root in (store / "trust" / "v2g").iterdir():
        root.unlink()  # the chains are there, but no root that issued them
    config.write_text(with_store(store) + config.read_text())
    assert_refused(
        config,
        f"evse[0].tcp_port = -1 (EVSE {EVSE}): nothing to serve: plain TCP is off and TLS "
        "needs a SECC chain under an installed V2G root in certs.store (none)",
    )


def test_directories_the_station_writes(tmp_path: Path) -> None:
    keylog = tmp_path / "no-such-dir" / "keys.log"
    assert_refused(
        minimal(tmp_path, before=f'[station]\ntls_keylog = "{keylog}"\n'),
        f'station.tls_keylog = "{keylog}": no such directory {keylog.parent}',
    )
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    traces = a_file / "traces"
    assert_refused(
        minimal(tmp_path, before=f'[station]\ntrace_dir = "{traces}"\n'),
        f'station.trace_dir = "{traces}": cannot be created: {a_file} is not a directory',
    )
    # a trace directory that does not exist yet is created by the station: fine
    ok = minimal(tmp_path, before=f'[station]\ntrace_dir = "{tmp_path / "new" / "traces"}"\n')
    assert secc_run(ok, "--check").returncode == 0


def _leaf(store: Path) -> tuple[Path, Path]:
    from certs.store import Store

    return Store(store).leaf_paths("v2g")


def test_a_bad_key_and_a_key_not_matching_its_certificate(tmp_path: Path, pki_dir: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    store = copy_store(pki_dir, tmp_path / "store")
    chain, key = _leaf(store)
    config = minimal(tmp_path, before=with_store(store))
    original = key.read_bytes()
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    assert_refused(
        config,
        f'certs.store = "{store}": v2g chain: private key {key}: not a private key in PEM or '
        "DER form",
    )
    other = ec.generate_private_key(ec.SECP256R1())
    key.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert_refused(
        config,
        f'certs.store = "{store}": v2g chain: private key {key} does not match the certificate '
        f"{chain}",
    )
    # an encrypted key: without the password file, and with a wrong password
    secret = serialization.load_pem_private_key(original, None)
    key.write_bytes(
        secret.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"right"),
        )
    )
    assert_refused(
        config,
        f'certs.store = "{store}": v2g chain: private key {key}: it is encrypted and '
        "certs.key_password_file is not set",
    )
    wrong = tmp_path / "password"
    wrong.write_text("wrong\n")
    config = minimal(tmp_path, before=with_store(store, f'key_password_file = "{wrong}"'))
    assert_refused(
        config,
        f'certs.store = "{store}": v2g chain: private key {key}: does not decrypt with the '
        f"password in {wrong} (wrong password, or not a key)",
    )
    # the right password: --check passes (the -20 chain's key is not encrypted: TLS takes
    # it with a password file set as well)
    wrong.write_text("right\n")
    ok = secc_run(config, "--check")
    assert ok.returncode == 0, ok.stderr
    start_and_stop(config, tmp_path / "stderr.txt")


def _open_dir() -> Path:
    """A directory another user can enter (pytest's tmp_path is root's alone)."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="secc-run-"))
    path.chmod(0o755)
    return path


def _unreadable(path: Path) -> str:
    """Make ``path`` unreadable for the station; the user name its message gives."""
    import pwd

    if os.geteuid() == 0:  # root without its file override (secc_run obey_modes)
        os.chown(path, 65534, 65534)
        path.chmod(0o600)
    else:
        path.chmod(0o000)
    return pwd.getpwuid(os.geteuid()).pw_name


def test_an_unreadable_password_file_or_key(tmp_path: Path, pki_dir: Path) -> None:
    state = tmp_path / "state"
    password = tmp_path / "csms-password"
    password.write_text("secret\n")
    user = _unreadable(password)
    before = (
        f'[ocpp]\nurl = "ws://127.0.0.1:9/ocpp"\nstation_id = "CS-1"\n'
        f'state_dir = "{state}"\nbasic_auth_password_file = "{password}"\n'
    )
    assert_refused(
        minimal(tmp_path, before=before),
        f'ocpp.basic_auth_password_file = "{password}": user {user} cannot read it '
        "(permission denied)",
        obey_modes=True,
    )
    store = copy_store(pki_dir, tmp_path / "store")
    _, key = _leaf(store)
    user = _unreadable(key)
    assert_refused(
        minimal(tmp_path, before=with_store(store)),
        f'certs.store = "{store}": v2g chain: private key {key}: user {user} cannot read it '
        "(permission denied)",
        obey_modes=True,
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="checks for another user need root")
def test_root_checks_file_access_as_the_service_user(pki_dir: Path) -> None:
    """``secc run --check --user NAME`` (and commission) run as root but judge the files
    by the service user's permissions: a key only root can read fails the check."""
    base = _open_dir()
    try:
        store = copy_store(pki_dir, base / "store")
        for path in [store, *store.rglob("*")]:
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)
        _, key = _leaf(store)
        key.chmod(0o600)  # root's
        config = minimal(base, before=with_store(store))
        check = secc_run(config, "--check", "--user", "nobody")
        assert check.returncode == 1
        assert check.stderr.splitlines() == [
            f'secc run: error: {config}: certs.store = "{store}": v2g chain: private key '
            f"{key}: user nobody cannot read it (permission denied)"
        ]
        key.chmod(0o644)
        assert secc_run(config, "--check", "--user", "nobody").returncode == 0
        no_user = secc_run(config, "--check", "--user", "no-such-user-x")
        assert no_user.returncode == 2 and "no such user" in no_user.stderr
    finally:
        shutil.rmtree(base)


def test_a_board_that_does_not_answer_is_one_line_and_debug_shows_the_traceback(
    tmp_path: Path,
) -> None:
    """A failure no check can foresee without talking to the board (an MCU that stays
    silent on a real terminal device): the start says so in one line, naming the EVSE
    and the key; --debug adds the traceback."""
    master, slave = os.openpty()
    try:
        port = os.ttyname(slave)
        config = minimal(tmp_path, backend="serial-mcu", hal=f'[evse.hal.options]\nport = "{port}"')
        assert secc_run(config, "--check").returncode == 0  # a terminal device: it may start
        start = secc_run(config)
        assert start.returncode == 1, start.stderr
        assert "Traceback" not in start.stderr
        last = start.stderr.splitlines()[-1]
        assert last.startswith(
            f'secc run: error: {config}: evse[0].hal.backend = "serial-mcu" (EVSE {EVSE}): '
            "the board cannot be opened: no STATUS from the MCU"
        ), start.stderr
        debug = secc_run(config, "--debug")
        assert debug.returncode == 1 and "Traceback" in debug.stderr
        assert debug.stderr.splitlines()[-1] == last
    finally:
        os.close(master)
        os.close(slave)


def test_a_port_taken_after_the_checks_still_fails_in_one_line(tmp_path: Path) -> None:
    """A port taken between the checks and the start (a race no check can close): the
    start's own failure names the file, the EVSE and the cause."""
    from secc.cli.run import StartError, serve
    from secc.config import load_file

    config = minimal(tmp_path, tls_port=-1)
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as holder:
        holder.bind(("::1", 0))
        port = holder.getsockname()[1]
        config.write_text(config.read_text().replace("tcp_port = 0", f"tcp_port = {port}"))
        loaded = load_file(config)
        holder.listen(1)  # taken after the checks would have run
        with pytest.raises(StartError) as info:
            asyncio.run(serve(loaded, str(config)))
    assert str(info.value) == (
        f"{config}: evse[0] (EVSE {EVSE}): cannot start: a port it binds is in use by another "
        "program"
    )


def test_a_good_config_passes_the_check_and_starts(tmp_path: Path, pki_dir: Path) -> None:
    config = write_config(tmp_path, pki_dir)
    check = secc_run(config, "--check")
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith(f"{config}: OK, 1 EVSE(s); start-up checks passed")
    start_and_stop(config, tmp_path / "stderr.txt")
