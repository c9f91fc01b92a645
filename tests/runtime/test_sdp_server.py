"""secc.aio.sdp_server on loopback: a unicast SDP request to ::1 on a test port."""

from __future__ import annotations

import asyncio
import socket
from ipaddress import IPv6Address

from secc.aio.sdp_server import SdpServer
from secc.sdp import SdpOffer, SdpRequest, SdpResponder, SdpResponse, Security, TransportProtocol
from tests.runtime.test_v2g_server import run

ADDR = IPv6Address("fe80::1")


def _client() -> socket.socket:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.bind(("::1", 0))
    sock.setblocking(False)
    return sock


async def _exchange(
    sock: socket.socket, port: int, data: bytes, timeout: float = 2.0
) -> bytes | None:
    loop = asyncio.get_running_loop()
    await loop.sock_sendto(sock, data, ("::1", port))
    try:
        return await asyncio.wait_for(loop.sock_recv(sock, 100), timeout)
    except TimeoutError:
        return None


def test_loopback_request_is_answered_per_offer() -> None:
    async def main() -> None:
        responder = SdpResponder(SdpOffer(ADDR, tls_port=50000, tcp_port=50001))
        async with SdpServer(responder, host="::1", port=0) as server:
            with _client() as sock:
                tls = await _exchange(sock, server.port, SdpRequest(Security.TLS).encode())
                plain = await _exchange(sock, server.port, SdpRequest(Security.NONE).encode())
            assert tls is not None and plain is not None
            assert SdpResponse.decode(tls) == SdpResponse(
                ADDR, 50000, Security.TLS, TransportProtocol.TCP
            )
            assert SdpResponse.decode(plain) == SdpResponse(ADDR, 50001, Security.NONE)
            assert server.answered == 2 and server.ignored == 0

    run(main)


def test_station_without_certificate_answers_no_tls() -> None:
    async def main() -> None:
        async with SdpServer(
            SdpResponder(SdpOffer(ADDR, tcp_port=50001)), host="::1", port=0
        ) as server:
            with _client() as sock:
                res = await _exchange(sock, server.port, SdpRequest(Security.TLS).encode())
            assert res is not None and SdpResponse.decode(res).security is Security.NONE

    run(main)


def test_malformed_and_foreign_datagrams_are_ignored_and_counted() -> None:
    async def main() -> None:
        async with SdpServer(
            SdpResponder(SdpOffer(ADDR, tls_port=50000)), host="::1", port=0
        ) as server:
            with _client() as sock:
                for junk in (
                    b"",
                    b"\x01\xfe\x90\x00",
                    SdpResponse(ADDR, 1, Security.TLS).encode(),
                    b"x" * 1500,
                ):
                    assert await _exchange(sock, server.port, junk, timeout=0.2) is None
                assert server.ignored == 4 and server.last_ignored is not None
                assert "payload" in server.last_ignored or "version" in server.last_ignored
                # still answering afterwards
                assert await _exchange(sock, server.port, SdpRequest().encode()) is not None
            assert server.answered == 1

    run(main)
