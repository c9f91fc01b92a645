"""secc.sdp: message codec and the responder's security negotiation."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secc.sdp import (
    DatagramReceived,
    Ignored,
    SdpError,
    SdpOffer,
    SdpRequest,
    SdpResponder,
    SdpResponse,
    Security,
    SendDatagram,
    TransportProtocol,
)

ADDR = IPv6Address("fe80::1234:5678:9abc:def0")


def test_request_bytes() -> None:
    assert SdpRequest(Security.TLS).encode() == bytes.fromhex("01fe9000000000020000")
    assert SdpRequest(Security.NONE).encode() == bytes.fromhex("01fe9000000000021000")
    assert SdpRequest.decode(bytes.fromhex("01fe9000000000021000")) == SdpRequest(Security.NONE)


def test_response_bytes_round_trip() -> None:
    res = SdpResponse(ADDR, 0xC350, Security.TLS)
    data = res.encode()
    assert data[:8] == bytes.fromhex("01fe900100000014")
    assert data[8:24] == ADDR.packed
    assert data[24:] == bytes.fromhex("c3500000")
    assert SdpResponse.decode(data) == res


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "truncated"),
        (bytes.fromhex("01fe90000000000200"), "truncated"),
        (bytes.fromhex("01fe900000000002000000"), "trailing"),
        (bytes.fromhex("01fe9000000000030000"), "payload length"),
        (bytes.fromhex("01fe8001000000020000"), "payload type"),
        (bytes.fromhex("01fe9001000000020000"), "payload type"),
        (bytes.fromhex("02fd9000000000020000"), "protocol version"),
        (bytes.fromhex("01fe9000000000020100"), "Security"),
        (bytes.fromhex("01fe9000000000020001"), "TransportProtocol"),
        (b"GET / HTTP/1.1\r\n\r\n", "protocol version"),
    ],
)
def test_malformed_requests_are_rejected_with_a_reason(data: bytes, fragment: str) -> None:
    with pytest.raises(SdpError) as info:
        SdpRequest.decode(data)
    assert fragment in info.value.reason
    responder = SdpResponder(SdpOffer(ADDR, tls_port=50000))
    (action,) = responder.handle(DatagramReceived(data, "peer"), 0.0)
    assert isinstance(action, Ignored)
    assert fragment in action.reason and action.source == "peer"


def test_response_decode_rejects_port_zero_and_bad_fields() -> None:
    good = SdpResponse(ADDR, 1, Security.NONE).encode()
    with pytest.raises(SdpError):
        SdpResponse.decode(good[:-4] + b"\x00\x00\x00\x00")
    with pytest.raises(SdpError):
        SdpResponse.decode(good[:-2] + b"\x20\x00")
    with pytest.raises(SdpError):
        SdpResponse.decode(good[:-1])


@pytest.mark.parametrize(
    ("tls_port", "tcp_port", "asked", "security", "port"),
    [
        (50000, 50001, Security.TLS, Security.TLS, 50000),
        (50000, 50001, Security.NONE, Security.NONE, 50001),
        (None, 50001, Security.TLS, Security.NONE, 50001),  # no SECC certificate
        (None, 50001, Security.NONE, Security.NONE, 50001),
        (50000, None, Security.NONE, Security.TLS, 50000),  # TLS-only station
        (50000, None, Security.TLS, Security.TLS, 50000),
    ],
)
def test_responder_negotiates_security(
    tls_port: int | None, tcp_port: int | None, asked: Security, security: Security, port: int
) -> None:
    responder = SdpResponder(SdpOffer(ADDR, tls_port=tls_port, tcp_port=tcp_port))
    assert responder.deadline is None
    (action,) = responder.handle(DatagramReceived(SdpRequest(asked).encode(), ("fe80::2", 1)), 5.0)
    assert isinstance(action, SendDatagram)
    assert action.destination == ("fe80::2", 1)
    res = SdpResponse.decode(action.data)
    assert res == SdpResponse(ADDR, port, security, TransportProtocol.TCP)
    assert action.response == res and action.request == SdpRequest(asked)


def test_udp_transport_request_is_answered_with_tcp() -> None:
    responder = SdpResponder(SdpOffer(ADDR, tcp_port=50001))
    (action,) = responder.handle(
        DatagramReceived(SdpRequest(Security.NONE, TransportProtocol.UDP).encode(), None), 0.0
    )
    assert isinstance(action, SendDatagram)
    assert action.response.transport is TransportProtocol.TCP


def test_offer_needs_a_port() -> None:
    with pytest.raises(ValueError):
        SdpOffer(ADDR)


@given(st.binary(max_size=40))
def test_random_datagrams_answer_or_are_ignored(data: bytes) -> None:
    responder = SdpResponder(SdpOffer(ADDR, tls_port=50000, tcp_port=50001))
    (action,) = responder.handle(DatagramReceived(data, None), 0.0)
    assert isinstance(action, (SendDatagram, Ignored))
