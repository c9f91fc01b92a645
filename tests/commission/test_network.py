"""The network check for real, in a network namespace with a veth pair (root): the PLC
interface up with its link-local address and SDP answering on it, first from a
temporary responder (no `secc run`), then from a running SDP server; a down interface
and a missing one give their FAIL and fix.  The CLI runs inside the namespace."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.commission.conftest import StationDir
from tests.runtime.netns import link_pair, netns_unavailable

pytestmark = pytest.mark.skipif(netns_unavailable() is not None, reason=str(netns_unavailable()))

SDP_SERVER = """
import asyncio, ipaddress, sys
from secc.aio.sdp_server import SdpServer
from secc.sdp import SdpOffer, SdpResponder
async def main():
    offer = SdpOffer(ipaddress.IPv6Address("fe80::1"), tls_port=49152)
    async with SdpServer(SdpResponder(offer), interface="veth0"):
        print("up", flush=True)
        await asyncio.sleep(30)
asyncio.run(main())
"""


SQUATTER = """
import socket, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(("::", 15118))
print("up", flush=True)
time.sleep(30)
"""
EV_QUERY = """
import asyncio
from secc.commission.system import sdp_query
answer = asyncio.run(sdp_query("veth1", 15118, 2.0))
print(answer.security.name, answer.address, answer.port)
"""


def commission_in(ns: str, station: StationDir) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            sys.executable,
            "-m",
            "secc.cli.main",
            "commission",
            "--config",
            str(station.config),
            "--state-dir",
            str(station.state),
            "--non-interactive",
            "--only",
            "network",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_network_and_sdp_on_a_veth_pair(station: StationDir) -> None:
    station.write_config(extra_evse='interface = "veth0"\n')
    with link_pair() as pair:
        # a station has its loopback up (answers to its own address travel over it)
        subprocess.run(["ip", "-n", pair.evse, "link", "set", "lo", "up"], check=True)
        done = commission_in(pair.evse, station)
        assert done.returncode == 3, done.stdout + done.stderr  # --only: passed, partial
        assert "PASS Network and SDP" in done.stdout
        assert (
            "veth0 up, fe80::1; SDP works on it (answered by a temporary responder" in done.stdout
        )

        server = subprocess.Popen(
            ["ip", "netns", "exec", pair.evse, sys.executable, "-c", SDP_SERVER],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "up"
            done = commission_in(pair.evse, station)
            assert done.returncode == 3, done.stdout + done.stderr  # --only: passed, partial
            assert "SDP answered by the running station: TLS at [fe80::1]:49152" in done.stdout
            # from the EV side of the link, that server answers
            ev = subprocess.run(
                ["ip", "netns", "exec", pair.ev, sys.executable, "-c", EV_QUERY],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert "TLS fe80::1 49152" in ev.stdout, ev.stdout + ev.stderr
        finally:
            server.kill()
            server.wait(10)

        subprocess.run(["ip", "-n", pair.evse, "link", "set", "veth0", "down"], check=True)
        time.sleep(0.1)
        down = commission_in(pair.evse, station)
        assert down.returncode == 1
        assert "FAIL Network and SDP (DE*ABC*E1234567*1): interface veth0 is down" in down.stdout
        assert "fix: `ip link set veth0 up`" in down.stdout

        # something holds UDP 15118 without answering SDP
        squatter = subprocess.Popen(
            ["ip", "netns", "exec", pair.evse, sys.executable, "-c", SQUATTER],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert squatter.stdout is not None and squatter.stdout.readline().strip() == "up"
            subprocess.run(["ip", "-n", pair.evse, "link", "set", "veth0", "up"], check=True)
            # taken down and up with addrgenmode none, veth0 lost its link-local address
            bare = commission_in(pair.evse, station)
            assert "interface veth0 has no IPv6 link-local address" in bare.stdout
            assert "disable_ipv6=0" in bare.stdout
            subprocess.run(
                ["ip", "-n", pair.evse, "-6", "addr", "add", "fe80::1/64", "dev", "veth0", "nodad"],
                check=True,
            )
            held = commission_in(pair.evse, station)
            assert held.returncode == 1, held.stdout
            assert "a program holds UDP 15118 on this station but does not answer" in held.stdout
        finally:
            squatter.kill()
            squatter.wait(10)

        station.write_config(extra_evse='interface = "plc9"\n')
        missing = commission_in(pair.evse, station)
        assert missing.returncode == 1 and "interface plc9 does not exist" in missing.stdout


def test_plc_modem_that_does_not_answer(station: StationDir) -> None:
    """hal.plc = "slac" on a veth end: the QCA probe (VS_SW_VER over AF_PACKET) gets no
    answer, as with an absent or unpowered modem."""
    station.write_config(
        extra_evse='interface = "veth0"\n[evse.hal]\nbackend = "simulated"\nplc = "slac"\n'
        '[evse.hal.plc_options]\ninterface = "veth0"\n'
    )
    with link_pair() as pair:
        done = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                pair.evse,
                sys.executable,
                "-m",
                "secc.cli.main",
                "commission",
                "--config",
                str(station.config),
                "--state-dir",
                str(station.state),
                "--non-interactive",
                "--only",
                "hal",
                "--no-hal-self-test",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the PLC modem on veth0 did not answer" in done.stdout
    assert "`secc hal probe veth0`" in done.stdout
