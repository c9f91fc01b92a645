"""SECC Discovery Protocol (ISO 15118-2 §7.10.1): messages and the station's responder.

The EVCC multicasts an SDP request (V2GTP payload type ``0x9000``, 2 payload bytes) to
``ff02::1`` port 15118; the SECC answers by unicast with an SDP response (``0x9001``, 20
payload bytes)::

    request   Security (1) | TransportProtocol (1)
    response  SECC IPv6 address (16) | SECC port (2, big endian) | Security (1) |
              TransportProtocol (1)

Security is ``0x00`` for TLS and ``0x10`` for no transport-layer security;
TransportProtocol ``0x00`` is TCP (``0x10``, UDP, is reserved; ISO 15118-2 V2G
communication always runs over TCP).

Theory of operation: the responder is stateless.  Each datagram is one
:class:`DatagramReceived` event; the answer is one :class:`SendDatagram` action or one
:class:`Ignored` action carrying the reason (the adapter logs it).  The response names
the security the station will speak on the advertised port: the one the EV asked for
when the station offers it; otherwise the one the station does offer (a station without
a SECC certificate answers "no TLS" to a TLS request; a station configured for TLS only
answers "TLS" to a no-TLS request), and the EV decides whether to go on or retry
[V2G2-???].  The transport is always TCP.  ``deadline`` is always ``None``; the
``handle(event, now)`` shape matches the other protocol machines.  Pure module: no I/O.
"""

from __future__ import annotations

from enum import IntEnum
from ipaddress import IPv6Address

from hal.records import record
from secc.errors import SeccError
from secc.v2gtp import FramingError, PayloadType, encode_frame, parse_datagram

__all__ = [
    "SDP_MULTICAST_ADDRESS",
    "SDP_PORT",
    "DatagramReceived",
    "Ignored",
    "SdpError",
    "SdpOffer",
    "SdpRequest",
    "SdpResponder",
    "SdpResponse",
    "Security",
    "SendDatagram",
    "TransportProtocol",
]

SDP_PORT = 15118
SDP_MULTICAST_ADDRESS = "ff02::1"
REQUEST_LENGTH = 2
RESPONSE_LENGTH = 20


class Security(IntEnum):
    TLS = 0x00
    NONE = 0x10


class TransportProtocol(IntEnum):
    TCP = 0x00
    UDP = 0x10  # reserved by ISO 15118-2; never offered


class SdpError(SeccError):
    """A datagram that is not a valid SDP message; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _security(value: int) -> Security:
    try:
        return Security(value)
    except ValueError:
        raise SdpError(f"unknown Security value {value:#04x}") from None


def _transport(value: int) -> TransportProtocol:
    try:
        return TransportProtocol(value)
    except ValueError:
        raise SdpError(f"unknown TransportProtocol value {value:#04x}") from None


def _payload(data: bytes, payload_type: PayloadType, length: int) -> bytes:
    try:
        frame = parse_datagram(data, max_payload=length, allowed_types=(payload_type,))
    except FramingError as exc:
        raise SdpError(str(exc)) from exc
    if len(frame.payload) != length:
        raise SdpError(f"payload is {len(frame.payload)} bytes, expected {length}")
    return frame.payload


@record
class SdpRequest:
    security: Security = Security.TLS
    transport: TransportProtocol = TransportProtocol.TCP

    def encode(self) -> bytes:
        """The whole datagram, V2GTP header included."""
        return encode_frame(bytes((self.security, self.transport)), PayloadType.SDP_REQUEST)

    @classmethod
    def decode(cls, data: bytes) -> SdpRequest:
        payload = _payload(data, PayloadType.SDP_REQUEST, REQUEST_LENGTH)
        return cls(_security(payload[0]), _transport(payload[1]))


@record
class SdpResponse:
    address: IPv6Address
    port: int
    security: Security
    transport: TransportProtocol = TransportProtocol.TCP

    def __post_init__(self) -> None:
        if not 0 < self.port <= 0xFFFF:
            raise ValueError(f"port {self.port} out of range")

    def encode(self) -> bytes:
        """The whole datagram, V2GTP header included."""
        payload = (
            self.address.packed
            + self.port.to_bytes(2, "big")
            + bytes((self.security, self.transport))
        )
        return encode_frame(payload, PayloadType.SDP_RESPONSE)

    @classmethod
    def decode(cls, data: bytes) -> SdpResponse:
        payload = _payload(data, PayloadType.SDP_RESPONSE, RESPONSE_LENGTH)
        port = int.from_bytes(payload[16:18], "big")
        if port == 0:
            raise SdpError("port 0 in SDP response")
        return cls(IPv6Address(payload[:16]), port, _security(payload[18]), _transport(payload[19]))


@record
class SdpOffer:
    """What the station offers: its link-local address and the TCP port of each
    security level it serves (``None``: not offered).  A station without a SECC
    certificate has ``tls_port=None``."""

    address: IPv6Address
    tls_port: int | None = None
    tcp_port: int | None = None

    def __post_init__(self) -> None:
        if self.tls_port is None and self.tcp_port is None:
            raise ValueError("an SDP offer needs a TLS port, a TCP port or both")


@record
class DatagramReceived:
    data: bytes
    source: object  # the adapter's peer address, handed back in SendDatagram


@record
class SendDatagram:
    data: bytes
    destination: object
    request: SdpRequest
    response: SdpResponse


@record
class Ignored:
    reason: str
    source: object


SdpAction = SendDatagram | Ignored


class SdpResponder:
    """Answers SDP requests per :class:`SdpOffer`; see the module docstring."""

    __slots__ = ("offer",)

    def __init__(self, offer: SdpOffer) -> None:
        self.offer = offer

    @property
    def deadline(self) -> float | None:
        return None

    def respond(self, request: SdpRequest) -> SdpResponse:
        offer = self.offer
        if request.security is Security.TLS and offer.tls_port is not None:
            security, port = Security.TLS, offer.tls_port
        elif request.security is Security.NONE and offer.tcp_port is not None:
            security, port = Security.NONE, offer.tcp_port
        elif offer.tls_port is not None:
            security, port = Security.TLS, offer.tls_port
        else:
            assert offer.tcp_port is not None
            security, port = Security.NONE, offer.tcp_port
        return SdpResponse(offer.address, port, security, TransportProtocol.TCP)

    def handle(self, event: DatagramReceived, now: float) -> list[SdpAction]:
        del now  # stateless; the parameter keeps the shape of the other machines
        try:
            request = SdpRequest.decode(event.data)
        except SdpError as exc:
            return [
                Ignored(f"not an SDP request ({len(event.data)} bytes): {exc.reason}", event.source)
            ]
        response = self.respond(request)
        return [SendDatagram(response.encode(), event.source, request, response)]
