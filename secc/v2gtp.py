"""V2G Transfer Protocol (ISO 15118-2 §7.8.3): the 8-byte header and an incremental framer.

Every V2GTP message is a generic header followed by the payload::

    byte 0     protocol version          0x01
    byte 1     inverse protocol version  0xFE
    bytes 2-3  payload type              big endian (Table 10 of ISO 15118-2)
    bytes 4-7  payload length            big endian, bytes after the header

Payload types used by ISO 15118-2 and DIN SPEC 70121: ``0x8001`` EXI encoded V2G message
(appHandshake, ISO 15118-2 and DIN messages alike), ``0x9000`` SDP request, ``0x9001`` SDP
response.  ISO 15118-20 keeps ``0x8001`` for the appHandshake and adds one type per
schema of its messages (Table 13): ``0x8002`` CommonMessages, ``0x8003`` AC, ``0x8004``
DC, ``0x8005`` ACDP, ``0x8006`` WPT.  Which types a receiver supports depends on what was
negotiated (a -20 type before the handshake chose -20 is refused): :class:`Framer` takes
the set and :meth:`Framer.allow` changes it between reads.  ``0xA000``-``0xFFFF`` are
manufacturer specific; a receiver supports none of them here.

Header checks, in the order the standard's processing figure applies them [V2G2-???]:
protocol version and its inverse, payload type known to the receiving entity, payload
length not above the receiver's buffer.  ISO 15118-2 defines no negative-acknowledge
message for V2GTP (unlike ISO 13400, which V2GTP is derived from): a failed check means
the message is discarded, and on a TCP stream, which cannot be resynchronised after a
bad header, the connection is closed.  :class:`Framer` reports which check failed in a
:class:`FramingError`; the transport adapter logs it and closes.

A TCP read is not a message: :class:`Framer` takes whatever arrives, in any chunking, and
yields whole frames.  The length field is checked against the configured maximum as
soon as the header is complete, before any payload byte is kept.  Pure module: no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from enum import IntEnum, StrEnum

from hal.records import record
from secc.errors import SeccError

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "HEADER_LENGTH",
    "INVERSE_VERSION",
    "VERSION",
    "Frame",
    "Framer",
    "FramingError",
    "HeaderCheck",
    "PayloadType",
    "decode_header",
    "encode_frame",
    "encode_header",
    "parse_datagram",
]

VERSION = 0x01
INVERSE_VERSION = 0xFE
HEADER_LENGTH = 8
MAX_LENGTH_FIELD = 0xFFFFFFFF

# A CertificateInstallationRes with a full contract chain and an encrypted private key is
# the largest ISO 15118-2 message in practice (a few kB); 64 KiB leaves room for schedules
# and still bounds what a peer can make the station buffer.
DEFAULT_MAX_PAYLOAD = 65536


class PayloadType(IntEnum):
    """V2GTP payload types (ISO 15118-2 Table 10, ISO 15118-20 Table 13)."""

    EXI = 0x8001  # EXI encoded V2G message (SAP, ISO 15118-2, DIN 70121)
    ISO20_COMMON = 0x8002  # ISO 15118-20 CommonMessages
    ISO20_AC = 0x8003
    ISO20_DC = 0x8004
    ISO20_ACDP = 0x8005
    ISO20_WPT = 0x8006
    SDP_REQUEST = 0x9000
    SDP_RESPONSE = 0x9001


class HeaderCheck(StrEnum):
    """Which V2GTP check an input failed."""

    VERSION = "protocol version"  # byte 0 not 0x01 or byte 1 not its inverse
    PAYLOAD_TYPE = "payload type"  # not a payload type this receiver supports
    PAYLOAD_LENGTH = "payload length"  # above the configured maximum
    TRUNCATED = "truncated"  # the input ended inside a header or payload
    TRAILING_DATA = "trailing data"  # a datagram longer than header + payload length


class FramingError(SeccError):
    """A V2GTP header check failed.  ``check`` says which; the message is discarded and,
    on a stream, the connection closed [V2G2-???]."""

    def __init__(self, check: HeaderCheck, detail: str) -> None:
        super().__init__(f"V2GTP {check.value}: {detail}")
        self.check = check
        self.detail = detail


@record
class Frame:
    """One whole V2GTP message."""

    payload_type: int
    payload: bytes


_HEADER = struct.Struct(">BBHI")  # version, inverse version, payload type, length


def _frame(payload_type: int, payload: bytes) -> Frame:
    """A :class:`Frame` without the frozen dataclass's ``__init__`` (one per message)."""
    frame = object.__new__(Frame)
    _set_type(frame, payload_type)
    _set_payload(frame, payload)
    return frame


_set_type = getattr(Frame, "payload_type").__set__  # noqa: B009 - the slot's descriptor
_set_payload = getattr(Frame, "payload").__set__  # noqa: B009


def encode_header(payload_type: int, length: int) -> bytes:
    """The 8-byte V2GTP header for a payload of ``length`` bytes."""
    if not 0 <= payload_type <= 0xFFFF:
        raise ValueError(f"payload type {payload_type:#x} does not fit 16 bits")
    if not 0 <= length <= MAX_LENGTH_FIELD:
        raise ValueError(f"payload length {length} does not fit 32 bits")
    return _HEADER.pack(VERSION, INVERSE_VERSION, payload_type, length)


def encode_frame(payload: bytes, payload_type: int = PayloadType.EXI) -> bytes:
    """Header and payload as one buffer (write it with one write: some EVCCs read each
    message with a single read)."""
    length = len(payload)
    if 0 <= payload_type <= 0xFFFF and length <= MAX_LENGTH_FIELD:  # (one pack, no checks
        return _HEADER.pack(VERSION, INVERSE_VERSION, payload_type, length) + payload  # again)
    return encode_header(payload_type, length) + bytes(payload)


def _check_prefix(data: bytes | bytearray | memoryview, allowed: frozenset[int]) -> None:
    """Check whatever part of a header ``data`` holds (0..8 bytes), as early as possible."""
    if len(data) >= 1 and data[0] != VERSION:
        raise FramingError(HeaderCheck.VERSION, f"version byte {data[0]:#04x}, expected 0x01")
    if len(data) >= 2 and data[1] != INVERSE_VERSION:
        raise FramingError(
            HeaderCheck.VERSION, f"inverse version byte {data[1]:#04x}, expected 0xfe"
        )
    if len(data) >= 4:
        ptype = int.from_bytes(data[2:4], "big")
        if ptype not in allowed:
            raise FramingError(HeaderCheck.PAYLOAD_TYPE, f"payload type {ptype:#06x} not supported")


def decode_header(
    data: bytes | bytearray | memoryview,
    *,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
    allowed_types: Iterable[int] = (PayloadType.EXI,),
) -> tuple[int, int]:
    """Check and decode the first 8 bytes of ``data``: ``(payload_type, payload_length)``.

    Raises :class:`FramingError` naming the failed check (``TRUNCATED`` if fewer than 8
    bytes are given)."""
    allowed = frozenset(allowed_types)
    _check_prefix(data[:HEADER_LENGTH], allowed)
    if len(data) < HEADER_LENGTH:
        raise FramingError(HeaderCheck.TRUNCATED, f"{len(data)} of 8 header bytes")
    length = int.from_bytes(data[4:8], "big")
    if length > max_payload:
        raise FramingError(
            HeaderCheck.PAYLOAD_LENGTH, f"payload length {length} above the maximum {max_payload}"
        )
    return int.from_bytes(data[2:4], "big"), length


def parse_datagram(
    data: bytes,
    *,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
    allowed_types: Iterable[int] = (PayloadType.SDP_REQUEST,),
) -> Frame:
    """A whole V2GTP message in one datagram (SDP over UDP): header and payload length
    must match the datagram exactly."""
    ptype, length = decode_header(data, max_payload=max_payload, allowed_types=allowed_types)
    got = len(data) - HEADER_LENGTH
    if got < length:
        raise FramingError(HeaderCheck.TRUNCATED, f"{got} of {length} payload bytes")
    if got > length:
        raise FramingError(
            HeaderCheck.TRAILING_DATA, f"{got - length} bytes after the {length}-byte payload"
        )
    return Frame(ptype, bytes(data[HEADER_LENGTH:]))


class Framer:
    """Incremental V2GTP framer over a byte stream.

    ``feed(chunk)`` returns the frames completed by ``chunk`` (zero, one or several) and
    raises :class:`FramingError` on the first bad header.  Frames completed before a bad
    header in the same chunk are still returned; the error is then in :attr:`failed`
    (check it after handling them) and raised by the next call.  After an error the
    framer is dead and every further ``feed`` raises the same error.  ``close()`` reports a stream
    that ended inside a frame.  Memory is bounded: at most one header plus
    ``max_payload`` bytes are kept between calls.
    """

    __slots__ = ("_allowed", "_buffer", "_error", "_expected", "_max_payload", "_ptype")

    def __init__(
        self,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        allowed_types: Iterable[int] = (PayloadType.EXI,),
    ) -> None:
        if max_payload < 0:
            raise ValueError("max_payload must not be negative")
        self._max_payload = max_payload
        self._allowed = frozenset(int(t) for t in allowed_types)
        self._buffer = bytearray()
        self._expected: int | None = None  # payload length once the header is checked
        self._ptype = 0
        self._error: FramingError | None = None

    def allow(self, allowed_types: Iterable[int]) -> None:
        """Change the payload types accepted from the next header on (e.g. after the
        appHandshake selected ISO 15118-20)."""
        if allowed_types is self._allowed:
            return  # (the same set again: the reader passes it before every read)
        self._allowed = frozenset(int(t) for t in allowed_types)

    @property
    def allowed_types(self) -> frozenset[int]:
        return self._allowed

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._buffer)

    @property
    def failed(self) -> FramingError | None:
        return self._error

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        if self._error is not None:
            raise self._error
        if self._expected is None and not self._buffer and len(data) >= HEADER_LENGTH:
            # the usual read: exactly one whole, valid message (else the general path
            # below, which also names the check that failed)
            version, inverse, ptype, length = _HEADER.unpack_from(data)
            if (
                version == VERSION
                and inverse == INVERSE_VERSION
                and ptype in self._allowed
                and length <= self._max_payload
                and len(data) == HEADER_LENGTH + length
            ):
                return [_frame(ptype, bytes(data[HEADER_LENGTH:]))]
        frames: list[Frame] = []
        view = memoryview(data)
        pos = 0
        try:
            while True:
                if self._expected is None:
                    take = min(HEADER_LENGTH - len(self._buffer), len(view) - pos)
                    self._buffer += view[pos : pos + take]
                    pos += take
                    if len(self._buffer) < HEADER_LENGTH:
                        _check_prefix(self._buffer, self._allowed)
                        break
                    self._ptype, self._expected = decode_header(
                        self._buffer, max_payload=self._max_payload, allowed_types=self._allowed
                    )
                    self._buffer.clear()
                take = min(self._expected - len(self._buffer), len(view) - pos)
                self._buffer += view[pos : pos + take]
                pos += take
                if len(self._buffer) < self._expected:
                    break
                frames.append(_frame(self._ptype, bytes(self._buffer)))
                self._buffer.clear()
                self._expected = None
                if pos == len(view):
                    break
        except FramingError as exc:
            self._error = exc
            self._buffer.clear()
            if not frames:
                raise
            # frames completed before the bad header are delivered; the error is in
            # ``failed`` now and raised by the next call
        return frames

    def close(self) -> None:
        """The stream ended: raise ``TRUNCATED`` if it ended inside a frame."""
        if self._error is not None:
            return
        if self._expected is not None:
            raise FramingError(
                HeaderCheck.TRUNCATED,
                f"stream ended after {len(self._buffer)} of {self._expected} payload bytes",
            )
        if self._buffer:
            raise FramingError(
                HeaderCheck.TRUNCATED, f"stream ended after {len(self._buffer)} of 8 header bytes"
            )
