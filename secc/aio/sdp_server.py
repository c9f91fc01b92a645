"""SDP server: UDP port 15118 on the PLC interface, joined to ``ff02::1``, answering each
SECC Discovery request through the pure :class:`secc.sdp.SdpResponder`.

On a station: ``SdpServer(responder, interface="eth1")`` binds ``[::]:15118`` to the
interface (SO_BINDTODEVICE) and joins the all-nodes group ``ff02::1`` on it
(IPV6_JOIN_GROUP with the interface index), so it hears the EV's multicast request and
nothing from other interfaces.  Answers go by unicast to the request's source address
and port (with its scope id).  Malformed or foreign datagrams are ignored and counted.
Logging is rate-limited (:class:`secc.aio.logbudget.LogBudget`): anyone on the link can
send datagrams as fast as it likes, so at most a few lines per window are written and
the rest summed up.
In tests ``interface=None, host="::1", port=<free port>`` serves a unicast request on
loopback.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Any, cast

from secc.aio.logbudget import LogBudget
from secc.sdp import (
    SDP_MULTICAST_ADDRESS,
    SDP_PORT,
    DatagramReceived,
    Ignored,
    SdpResponder,
    SendDatagram,
)

__all__ = ["SdpServer", "open_sdp_socket"]

log = logging.getLogger(__name__)


def open_sdp_socket(
    interface: str | None, *, host: str = "::", port: int = SDP_PORT, join: bool = True
) -> socket.socket:
    """A non-blocking UDP socket bound to ``[host]:port``; with an ``interface``, bound to
    that device and joined to ``ff02::1`` on it."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        scope = 0
        if interface:
            scope = socket.if_nametoindex(interface)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.bind((host, port, 0, scope if host.startswith("fe80") else 0))
        if interface and join:
            group = socket.inet_pton(socket.AF_INET6, SDP_MULTICAST_ADDRESS)
            sock.setsockopt(
                socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group + struct.pack("@I", scope)
            )
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: SdpServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.server._datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.warning("SDP socket error: %s", exc)


class SdpServer:
    """Asyncio adapter around :class:`SdpResponder` (see the module docstring)."""

    def __init__(
        self,
        responder: SdpResponder,
        *,
        interface: str | None = None,
        host: str = "::",
        port: int = SDP_PORT,
    ) -> None:
        self.responder = responder
        self.interface, self.host, self._port = interface, host, port
        self.answered = 0
        self.ignored = 0
        self.last_ignored: str | None = None
        self.log_budget = LogBudget(5, 10.0, what="SDP datagram(s)", logger=log)
        self._protocol: _Protocol | None = None

    @property
    def port(self) -> int:
        if self._protocol is None or self._protocol.transport is None:
            raise RuntimeError("SDP server not started")
        return int(self._protocol.transport.get_extra_info("sockname")[1])

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        sock = open_sdp_socket(self.interface, host=self.host, port=self._port)
        _, self._protocol = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        offer = self.responder.offer
        log.info(
            "SDP on [%s]:%d%s: offering %s at %s",
            self.host,
            self.port,
            f" ({self.interface}, joined {SDP_MULTICAST_ADDRESS})" if self.interface else "",
            ", ".join(
                f"{name} port {p}"
                for name, p in (("TLS", offer.tls_port), ("TCP", offer.tcp_port))
                if p is not None
            ),
            offer.address,
        )

    async def __aenter__(self) -> SdpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
            await asyncio.sleep(0)  # the transport closes its socket on the next loop turn
        self._protocol = None

    def _datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        now = asyncio.get_running_loop().time()
        for action in self.responder.handle(DatagramReceived(data, addr), now):
            if isinstance(action, SendDatagram):
                assert self._protocol is not None and self._protocol.transport is not None
                self._protocol.transport.sendto(action.data, action.destination)  # type: ignore[arg-type]
                self.answered += 1
                if not self.log_budget.allow(now):
                    continue
                log.info(
                    "SDP request from %s (%s): answered %s port %d",
                    addr[0],
                    action.request.security.name,
                    action.response.security.name,
                    action.response.port,
                )
            elif isinstance(action, Ignored):
                self.ignored += 1
                self.last_ignored = action.reason
                if not self.log_budget.allow(now):
                    continue
                log.info("SDP: ignored datagram from %s: %s", addr[0], action.reason)
