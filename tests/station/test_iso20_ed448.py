"""``secc run`` with a test PKI made by ``secc certs make-test-pki --iso20-algorithm ed448``:
the station serves the Ed448 -20 SECC chain over TLS 1.3 (a TLS client trusting only the
Ed448 V2G root completes the handshake and receives the Ed448 leaf), and ``secc ev
--protocol iso20`` charges DC over it to SessionStop, with EIM and with Plug & Charge over
mutual TLS 1.3 (the Ed448 vehicle chain, the Ed448 contract chain and signature).  All
real: subprocesses, loopback sockets, OpenSSL."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed448

from certs._util import load_certificates, signed_by
from tests.station.test_run_cli import wait_for_line

CONFIG = """
[station]
trace_dir = "{traces}"
[certs]
store = "{store}"
[[evse]]
evse_id = "DE*ABC*E1234567*1"
address = "::1"
tls_port = 0
tcp_port = -1
sdp_port = 0
energy_modes = ["DC_extended"]
protocols = ["iso20-dc", "iso2"]
[evse.hal]
backend = "simulated"
control = "none"
[evse.hal.options]
ev_state = "C"
"""
READY = re.compile(r"EVSE \S+ ready on .*SDP port (\d+), tls port (\d+)")
ISO20_SUITES = {"TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}


@pytest.fixture(scope="module")
def ed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ed448") / "pki"
    done = subprocess.run(
        [sys.executable, "-m", "secc.cli.main", "certs", "make-test-pki", str(directory),
         "--iso20-algorithm", "ed448"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return directory


def _handshake(port: int, root: Path) -> tuple[str | None, str | None, bytes]:
    """A TLS 1.3 client trusting only ``root``: version, cipher and the server's leaf."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # the SECC leaf names the EVSE, not a host
    ctx.load_verify_locations(cafile=str(root))
    with (
        socket.create_connection(("::1", port), timeout=20) as raw,
        ctx.wrap_socket(raw) as tls,
    ):
        leaf = tls.getpeercert(binary_form=True)
        assert leaf is not None
        cipher = tls.cipher()
        return tls.version(), cipher[0] if cipher else None, leaf


def test_secc_run_serves_the_ed448_iso20_chain_over_tls13(ed_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "secc.toml"
    config.write_text(CONFIG.format(traces=tmp_path / "traces", store=ed_dir / "station"))
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "secc.cli.main", "run", "--config", str(config)],
            stderr=err,
            stdout=subprocess.DEVNULL,
        )
    try:
        ready = wait_for_line(log, READY, timeout=60)
        sdp_port, tls_port = int(ready.group(1)), int(ready.group(2))

        version, cipher, leaf_der = _handshake(tls_port, ed_dir / "v2g20" / "root.pem")
        assert version == "TLSv1.3" and cipher in ISO20_SUITES, (version, cipher)
        leaf = x509.load_der_x509_certificate(leaf_der)
        assert isinstance(leaf.public_key(), ed448.Ed448PublicKey)
        served = load_certificates((ed_dir / "v2g20" / "secc_chain.pem").read_bytes())
        assert leaf == served[0]
        assert signed_by(leaf, served[1])

        async def ev(*extra: str) -> tuple[int, str]:
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "secc.cli.main", "ev", "--address", "::1",
                "--sdp-port", str(sdp_port), "--pki", str(ed_dir), "--loops", "3",
                "--tls", "--protocol", "iso20", "--mode", "dc", *extra,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            out, _ = await asyncio.wait_for(child.communicate(), 60)
            return child.returncode or 0, out.decode()

        code, out = asyncio.run(ev())
        assert code == 0, out
        assert "TLSv1.3" in out and "SessionStopRes" in out, out
        assert out.count("DC_ChargeLoopRes") == 3, out
        # Plug & Charge over mutual TLS 1.3: the Ed448 vehicle chain, the Ed448 contract
        # signature
        code, out = asyncio.run(ev("--payment", "pnc"))
        assert code == 0, out
        assert "TLSv1.3" in out and "SessionStopRes" in out, out
        assert out.count("DC_ChargeLoopRes") == 3, out
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "TLS 1.3 for ISO 15118-20 with 1 SECC chain(s): v2g20" in text
    # the PnC session: the Ed448 vehicle chain verified in the handshake, the contract
    # (Ed448 chain and signature) checked by the core before the local authorization
    assert "vehicle certificate DC=OEM,C=DE,O=Test OEM,CN=WVWZZZ1JZXW000001 verified" in text
    assert "local authorization of eMAID DE8AACA2B3C4D5L: accept" in text
