"""SDP discovery and V2G sessions across a veth pair between two network namespaces:
the EV multicasts to ff02::1%veth1, the station answers with fe80::1 and a port, the EV
connects to fe80::1%veth1 (TLS or TCP) and runs the appHandshake."""

from __future__ import annotations

import socket
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

import pytest

from secc import codec
from secc.aio.sdp_server import SdpServer
from secc.aio.tls import TlsSelector
from secc.aio.v2g_server import V2GServer
from secc.sdp import SDP_PORT, SdpOffer, SdpRequest, SdpResponder, SdpResponse, Security
from secc.v2gtp import Framer
from tests.runtime.conftest import Pki
from tests.runtime.netns import LinkPair, acall_in_netns, link_pair, netns_unavailable, run_in_netns
from tests.runtime.tlsclient import python_client
from tests.runtime.v2gpeer import SAP_FRAME, Handlers

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(netns_unavailable() is not None, reason=str(netns_unavailable())),
]


def _ev_session(
    pair: LinkPair, security: Security, root_file: Path | None, junk: bytes = b""
) -> dict[str, Any]:
    """The EV side, blocking, inside the EV namespace: SDP by multicast, then connect."""
    index = socket.if_nametoindex(pair.ev_if)
    out: dict[str, Any] = {}
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as udp:
        udp.settimeout(5)
        udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        udp.bind(("::", 0, 0, 0))
        if junk:
            udp.sendto(junk, ("ff02::1", SDP_PORT, 0, index))
        udp.sendto(SdpRequest(security).encode(), ("ff02::1", SDP_PORT, 0, index))
        data, source = udp.recvfrom(100)
    response = SdpResponse.decode(data)
    out["response"], out["source"] = response, source
    target = (f"{response.address}%{pair.ev_if}", response.port)
    with socket.create_connection(target, timeout=5) as tcp:
        stream: Any = tcp
        if response.security is Security.TLS:
            stream = python_client(root_file).wrap_socket(tcp)
            out["cipher"] = stream.cipher()[0]
        stream.sendall(SAP_FRAME)
        framer, frames = Framer(), []
        while not frames:
            frames = framer.feed(stream.recv(7000))
        out["reply"] = codec.decode(frames[0].payload, "apphand")
        out["peer"] = stream.getpeername()
        if stream is not tcp:
            stream.close()
    return out


def _station(
    pair: LinkPair, pki: Pki | None, security: Security, junk: bytes = b""
) -> tuple[dict[str, Any], Any]:
    async def main() -> tuple[dict[str, Any], Any]:
        handlers = Handlers()
        tls = TlsSelector([pki.a.chain, pki.b.chain]) if pki else None
        host = f"{pair.evse_addr}%{pair.evse_if}"
        async with V2GServer(handlers, host=host, interface=pair.evse_if, tls=tls) as v2g:
            port = v2g.port
            offer = SdpOffer(
                IPv6Address(pair.evse_addr),
                tls_port=port if tls else None,
                tcp_port=None if tls else port,
            )
            async with SdpServer(SdpResponder(offer), interface=pair.evse_if) as sdp:
                root = pki.a.root_file if pki else None
                ev = await acall_in_netns(pair.ev, lambda: _ev_session(pair, security, root, junk))
                counters = (sdp.answered, sdp.ignored, sdp.last_ignored)
            handler = await handlers.first()
            return ev, (counters, port, handler.conn.tls, handler.conn.peer)

    return run_in_netns(pair.evse, main)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def pair() -> Any:
    with link_pair() as made:
        yield made


def test_multicast_discovery_then_tls_session(pair: LinkPair, pki: Pki) -> None:
    ev, ((answered, ignored, last_ignored), port, tls, peer) = _station(
        pair, pki, Security.TLS, junk=b"\x01\xfe\x90\x00\x00\x00\x00\x05hello"
    )
    response: SdpResponse = ev["response"]
    assert response == SdpResponse(IPv6Address("fe80::1"), port, Security.TLS)
    assert ev["source"][0] == "fe80::1"  # the answer came from the station's link-local address
    assert ev["cipher"] == "ECDHE-ECDSA-AES128-SHA256"
    assert ev["reply"].schema_id == 7
    assert ev["peer"][0] == "fe80::1"
    assert tls and peer[0] == "fe80::2"
    assert (
        (answered, ignored) == (1, 1)
        and last_ignored is not None
        and "payload length" in last_ignored
    )


def test_station_without_certificate_answers_no_tls_and_serves_tcp(pair: LinkPair) -> None:
    ev, ((answered, ignored, _), port, tls, _) = _station(pair, None, Security.TLS)
    assert ev["response"] == SdpResponse(IPv6Address("fe80::1"), port, Security.NONE)
    assert "cipher" not in ev and ev["reply"].schema_id == 7
    assert not tls and (answered, ignored) == (1, 0)


def _all_nodes_users(dev: str) -> int:
    for line in Path("/proc/thread-self/net/igmp6").read_text().splitlines():
        fields = line.split()
        if fields[1] == dev and fields[2] == "ff020000000000000000000000000001":
            return int(fields[3])
    return 0


def test_sdp_socket_joins_all_nodes_on_its_interface(pair: LinkPair) -> None:
    # Linux delivers ff02::1 to any bound socket, so the membership is checked directly:
    # the join adds one user of the group on veth0 (igmp6 of this thread's netns)
    async def main() -> tuple[int, int, int]:
        before = _all_nodes_users(pair.evse_if)
        offer = SdpOffer(IPv6Address(pair.evse_addr), tcp_port=50001)
        async with SdpServer(SdpResponder(offer), interface=pair.evse_if):
            during = _all_nodes_users(pair.evse_if)
        return before, during, _all_nodes_users(pair.evse_if)

    before, during, after = run_in_netns(pair.evse, main)
    assert during == before + 1 and after == before
