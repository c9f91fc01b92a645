"""The TLS key log (secc.aio.keylog): created 0600 whatever the umask, appended per
handshake (TLS 1.2 and TLS 1.3, real handshakes on a socket pair with the test PKI),
unsafe existing files refused with a clear message, and the station refusing to start
on one (``secc run`` reports it in one line)."""

from __future__ import annotations

import os
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509

from hal.backends.simulated import build_board
from secc.aio.keylog import KeylogError, enable_keylog, prepare_keylog
from secc.aio.tls import SeccChain, secc_context, secc_context13
from secc.runtime import Station
from tests.station.conftest import EVSE_ID, evse, run, station_config


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _chain(pki_dir: Path, tree: str) -> SeccChain:
    root = x509.load_pem_x509_certificate((pki_dir / tree / "root.pem").read_bytes())
    return SeccChain(pki_dir / tree / "secc_chain.pem", pki_dir / tree / "secc.key", root)


def _handshake(server: ssl.SSLContext, root: Path) -> tuple[str, bytes]:
    """One real handshake over a socket pair, the client trusting ``root``; returns the
    negotiated version and the server's certificate."""
    client = ssl.create_default_context(cafile=str(root))
    client.check_hostname = False
    a, b = socket.socketpair()
    out: list[BaseException] = []

    def serve() -> None:
        try:
            with server.wrap_socket(a, server_side=True) as s:
                s.recv(1)
        except BaseException as e:  # reported by the main thread
            out.append(e)

    t = threading.Thread(target=serve)
    t.start()
    with client.wrap_socket(b) as c:
        version = c.version() or ""
        cert = c.getpeercert(binary_form=True) or b""
        c.sendall(b"x")
    t.join(timeout=30)
    assert not t.is_alive() and not out, out
    return version, cert


def _entries(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if not line.startswith("#")]


def test_key_log_is_0600_under_a_permissive_umask_and_appended(
    pki_dir: Path, tmp_path: Path
) -> None:
    keylog = tmp_path / "keys.log"
    with umask(0):
        ctx12 = secc_context(_chain(pki_dir, "v2g"), keylog_file=keylog)
        assert stat.S_IMODE(keylog.stat().st_mode) == 0o600
        assert _handshake(ctx12, pki_dir / "v2g" / "root.pem")[0] == "TLSv1.2"
        first = _entries(keylog)
        assert [e[0] for e in first] == ["CLIENT_RANDOM"]
        assert len(first[0][1]) == 64 and len(first[0][2]) == 96  # 32-octet random, 48 master
        # a second connection appends; so does a new context on the same file (TLS 1.3)
        _handshake(ctx12, pki_dir / "v2g" / "root.pem")
        ctx13 = secc_context13(_chain(pki_dir, "v2g20"), keylog_file=keylog)
        assert _handshake(ctx13, pki_dir / "v2g20" / "root.pem")[0] == "TLSv1.3"
    entries = _entries(keylog)
    assert entries[:1] == first
    assert [e[0] for e in entries[1:2]] == ["CLIENT_RANDOM"]
    labels = {e[0] for e in entries[2:]}
    assert {
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    } <= labels
    # every TLS 1.3 line of the handshake names the same client random
    assert len({e[1] for e in entries[2:]}) == 1
    assert stat.S_IMODE(keylog.stat().st_mode) == 0o600


def test_an_empty_world_readable_file_is_repaired(tmp_path: Path) -> None:
    keylog = tmp_path / "touched.log"
    with umask(0):
        keylog.touch()
    assert stat.S_IMODE(keylog.stat().st_mode) == 0o666
    assert prepare_keylog(keylog) == keylog
    assert stat.S_IMODE(keylog.stat().st_mode) == 0o600


def test_unsafe_files_are_refused_with_a_clear_message(tmp_path: Path) -> None:
    used = tmp_path / "used.log"
    used.write_text("CLIENT_RANDOM 00 11\n")
    used.chmod(0o644)
    with pytest.raises(KeylogError) as info:
        prepare_keylog(used)
    assert str(info.value) == (
        f"TLS key log {used}: is readable by group or others (mode 0644) and already holds "
        "secrets; refused: remove it, or chmod 600 it if nobody else could have read it"
    )
    assert used.read_text() == "CLIENT_RANDOM 00 11\n"  # nothing lost, nothing changed
    assert stat.S_IMODE(used.stat().st_mode) == 0o644
    link = tmp_path / "link.log"
    link.symlink_to(tmp_path / "elsewhere.log")
    with pytest.raises(KeylogError, match="is a symbolic link; refused"):
        enable_keylog(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), link)
    assert not (tmp_path / "elsewhere.log").exists()
    with pytest.raises(KeylogError, match="is not a regular file"):
        prepare_keylog("/dev/null")
    with pytest.raises(KeylogError, match="cannot open it: Is a directory"):
        prepare_keylog(tmp_path)
    with pytest.raises(KeylogError, match="cannot open it: No such file or directory"):
        prepare_keylog(tmp_path / "no" / "such" / "dir.log")
    if os.geteuid() == 0:  # root can hand a file to someone else
        foreign = tmp_path / "foreign.log"
        foreign.touch(mode=0o600)
        os.chown(foreign, 65534, 65534)
        with pytest.raises(KeylogError, match="owned by uid 65534, not by this user"):
            prepare_keylog(foreign)


def test_the_station_refuses_to_start_on_an_unsafe_key_log(pki_dir: Path, tmp_path: Path) -> None:
    used = tmp_path / "keys.log"
    used.write_text("CLIENT_RANDOM 00 11\n")
    used.chmod(0o640)
    config = station_config(pki_dir, None, evse())
    config = replace(config, station=replace(config.station, tls_keylog=used))

    async def main() -> None:
        station = Station(config, boards={EVSE_ID: build_board()[0]})
        try:
            with pytest.raises(KeylogError, match="mode 0640"):
                await station.start()
        finally:
            await station.aclose()

    run(main)
    # an OSError: `secc run` reports it as "cannot start the station: ..." in one line
    assert isinstance(KeylogError("x"), OSError)
