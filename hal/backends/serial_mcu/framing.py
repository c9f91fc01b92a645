"""Framing of docs/mcu-protocol.md §2, without any I/O: COBS, CRC-16/CCITT-FALSE, the frame
header, and an incremental reader with a bounded buffer that resynchronises at the next
0x00 delimiter after any damage.  The messages and both link machines are in
:mod:`hal.backends.serial_mcu.protocol`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

MAX_FRAME = 64  # decoded bytes, header and CRC included
HEADER = struct.Struct(">BBHBB")  # type, mcu_epoch, host_session, seq, payload length
CRC_LEN = 2


class ProtocolError(ValueError):
    """A frame or message that does not follow the protocol."""


# --------------------------------------------------------------------------- CRC and COBS


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xorout)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def cobs_encode(data: bytes) -> bytes:
    out = bytearray()
    block = bytearray()
    for byte in data:
        if byte == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(byte)
            if len(block) == 254:
                out.append(255)
                out += block
                block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        code = data[i]
        if code == 0:
            raise ProtocolError("zero byte inside a COBS block")
        end = i + code
        if end > len(data) + (1 if code == 1 else 0) or end - 1 > len(data):
            raise ProtocolError("COBS block runs past the frame")
        out += data[i + 1 : end]
        i = end
        if code != 255 and i < len(data):
            out.append(0)
    return bytes(out)


# --------------------------------------------------------------------------- frames


@dataclass(frozen=True, slots=True)
class Frame:
    mtype: int
    epoch: int
    session: int
    seq: int
    payload: bytes = b""


def encode_frame(frame: Frame) -> bytes:
    head = HEADER.pack(frame.mtype, frame.epoch, frame.session, frame.seq, len(frame.payload))
    body = head + frame.payload
    if len(body) + CRC_LEN > MAX_FRAME:
        raise ProtocolError("frame too long")
    body += crc16(body).to_bytes(2, "big")
    return cobs_encode(body) + b"\x00"


def parse_frame(encoded: bytes) -> Frame:
    """One frame from the bytes between two delimiters (delimiter excluded)."""
    if len(encoded) > MAX_FRAME + 2:
        raise ProtocolError("frame too long")
    body = cobs_decode(encoded)
    if len(body) < HEADER.size + CRC_LEN:
        raise ProtocolError("frame too short")
    if crc16(body[:-CRC_LEN]) != int.from_bytes(body[-CRC_LEN:], "big"):
        raise ProtocolError("CRC mismatch")
    mtype, epoch, session, seq, length = HEADER.unpack_from(body)
    payload = body[HEADER.size : -CRC_LEN]
    if length != len(payload):
        # catches a lost trailing zero, which a CRC without final XOR cannot always see
        raise ProtocolError(f"length field {length} but {len(payload)} payload bytes")
    return Frame(mtype, epoch, session, seq, payload)


@dataclass(slots=True)
class FrameReader:
    """Incremental deframer with a bounded buffer; counts what it throws away."""

    buffer: bytearray = field(default_factory=bytearray)
    dropped: int = 0
    overflow: bool = False

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        for byte in data:
            if byte != 0:
                if len(self.buffer) > MAX_FRAME + 2:
                    self.overflow = True  # skip to the next delimiter
                    self.buffer.clear()
                if not self.overflow:
                    self.buffer.append(byte)
                continue
            if self.overflow:
                self.dropped += 1
                self.overflow = False
            elif self.buffer:
                try:
                    frames.append(parse_frame(bytes(self.buffer)))
                except ProtocolError:
                    self.dropped += 1
            self.buffer.clear()
        return frames
