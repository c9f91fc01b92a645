"""Issue 15: SDP datagrams cannot fill the log: 400 requests and 400 junk datagrams on
loopback are all answered or counted, but only a bounded number of lines is written."""

from __future__ import annotations

import asyncio
import logging
import socket
from ipaddress import IPv6Address

import pytest

from secc.aio.sdp_server import SdpServer
from secc.sdp import SdpOffer, SdpRequest, SdpResponder, Security
from tests.station.conftest import run


def test_sdp_flood_is_answered_and_logged_briefly(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        responder = SdpResponder(SdpOffer(IPv6Address("fe80::1"), tls_port=50000))
        async with SdpServer(responder, host="::1", port=0) as server:
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
                sock.bind(("::1", 0))
                sock.setblocking(False)
                request = SdpRequest(Security.TLS).encode()
                for i in range(800):
                    data = request if i % 2 == 0 else b"\x01\xfe\x90\x00junk"
                    await loop.sock_sendto(sock, data, ("::1", server.port))
                    if i % 50 == 0:
                        await asyncio.sleep(0.01)  # let the server keep up (UDP drops)
                async with asyncio.timeout(10):
                    while server.answered + server.ignored < 800:
                        await asyncio.sleep(0.01)
            assert server.answered == 400 and server.ignored == 400

    with caplog.at_level(logging.INFO, logger="secc.aio.sdp_server"):
        run(main)
    lines = [r for r in caplog.records if r.name == "secc.aio.sdp_server"]
    assert len(lines) <= 10, len(lines)
