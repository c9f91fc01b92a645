"""The host <-> safety-MCU serial protocol (docs/mcu-protocol.md), without any I/O.

Theory of operation
-------------------
Bytes are framed with COBS and a 0x00 delimiter, so a receiver resynchronises at the
next zero after any damage.  A decoded frame is ``type, mcu_epoch, host_session(2), seq,
length, payload, CRC-16/CCITT-FALSE``.  Commands from the host are *reliable*: stop-and-wait with
one command in flight, retransmitted every ``retransmit_s`` until the MCU's ACK for that
``seq`` arrives, at most ``max_tries`` times.  The MCU executes a given ``seq`` once and
answers a duplicate (the same ``seq`` again) with the stored result, so a lost ACK never
runs a command twice; any other ``seq`` is a new command (a UART is FIFO, so an old frame
cannot overtake a newer one, and the host skips the ``seq`` of a command it gave up on).
``mcu_epoch`` (low byte of the MCU's boot id) and ``host_session`` tie a command to one
MCU lifetime and one host lifetime: frames of another lifetime are ignored, never run.

Both sides send a heartbeat (host: HEARTBEAT, MCU: STATUS) every ``heartbeat_s``.  The MCU
opens the contactors and drives state F when it hears no valid frame from the host for
``heartbeat_timeout_s``; the host reports :class:`LinkLost` in the same case.

``GET_INFO`` is a command like the others whose answer is an ``INFO`` frame (firmware
version, protocol version, hardware id) instead of an ACK; an MCU that predates it answers
``ACK(MALFORMED)`` as for any unknown type, and the host then knows no version.

``CARD`` (protocol version 2) carries a card read by the MCU's RFID reader to the host:
the MCU numbers each read (``read_id``), keeps it until the host answers ``CARD_ACK`` with
that number and resends it with every STATUS until then; the host reports each
(MCU boot, read_id) once and acknowledges every copy, so a lost frame in either direction
neither loses nor doubles a read.

:class:`HostLink` is the host's machine: ``handle(event, now) -> list[action]`` plus
``deadline``.  :class:`McuLink` is the MCU's half (used by the simulator and a reference
for firmware authors).
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from dataclasses import dataclass

from hal.backends.serial_mcu.framing import (
    Frame,
    FrameReader,
    ProtocolError,
    encode_frame,
)
from hal.types import TokenRead

PROTOCOL_VERSION = 2  # 1: GET_INFO / INFO; 2: CARD / CARD_ACK; no GET_INFO: "version 0"
FIRMWARE_MAX = 32  # bytes of the INFO firmware version string
CARD_UID_MAX = 16  # bytes of a CARD's UID (ISO 14443: 4, 7 or 10; ISO 15693: 8)
CARD_PENDING_MAX = 8  # reads an MCU keeps while the host does not acknowledge them


# --------------------------------------------------------------------------- messages


class CpMode(enum.IntEnum):
    CONSTANT = 0  # +12 V, no PWM (X1)
    PWM = 1
    STATE_F = 2  # -12 V


class AckResult(enum.IntEnum):
    OK = 0
    REJECTED = 1  # not allowed now (e.g. close while RCD tripped or in safe state)
    MALFORMED = 2  # unknown type or bad payload


@dataclass(frozen=True, slots=True)
class HostHeartbeat:
    TYPE = 0x01


@dataclass(frozen=True, slots=True)
class SetCp:
    mode: CpMode
    duty_permille: int = 1000
    TYPE = 0x10


@dataclass(frozen=True, slots=True)
class SetContactors:
    closed: bool
    TYPE = 0x11


@dataclass(frozen=True, slots=True)
class SetLock:
    locked: bool
    TYPE = 0x12


@dataclass(frozen=True, slots=True)
class RcdTest:
    TYPE = 0x13


@dataclass(frozen=True, slots=True)
class ClearFaults:
    TYPE = 0x14


@dataclass(frozen=True, slots=True)
class Configure:
    heartbeat_timeout_ms: int
    TYPE = 0x15


@dataclass(frozen=True, slots=True)
class GetInfo:
    """Ask the MCU who it is; answered with :class:`Info` (or ACK(MALFORMED) by old firmware)."""

    host_protocol: int = PROTOCOL_VERSION
    TYPE = 0x16


def _check_firmware(raw: bytes) -> str:
    if not 1 <= len(raw) <= FIRMWARE_MAX:
        raise ProtocolError(f"firmware version of {len(raw)} bytes (1..{FIRMWARE_MAX} allowed)")
    if any(not 0x20 <= b <= 0x7E for b in raw):
        raise ProtocolError(f"firmware version {raw!r} is not printable ASCII")
    return raw.decode("ascii")


@dataclass(frozen=True, slots=True)
class Info:
    """The MCU's answer to GET_INFO; the frame's ``seq`` is the GET_INFO's."""

    protocol: int  # the MCU's protocol version (PROTOCOL_VERSION)
    hardware_id: int  # u32, board / MCU identity chosen by the firmware author
    firmware: str  # 1..FIRMWARE_MAX printable ASCII bytes, e.g. "1.4.2"
    TYPE = 0x82
    HEAD = struct.Struct(">BIB")  # protocol, hardware_id, firmware length

    def __post_init__(self) -> None:
        if not 0 <= self.protocol <= 0xFF or not 0 <= self.hardware_id <= 0xFFFFFFFF:
            raise ProtocolError("INFO protocol must fit u8 and hardware_id u32")
        _check_firmware(self.firmware.encode("utf-8"))  # a non-ASCII byte is refused there


@dataclass(frozen=True, slots=True)
class Ack:
    seq: int
    result: AckResult
    TYPE = 0x80


class CardKind(enum.IntEnum):
    ISO14443 = 0  # UID bytes
    ISO15693 = 1  # UID bytes
    KEY_CODE = 2  # printable ASCII typed on a key pad


@dataclass(frozen=True, slots=True)
class CardRead:
    """A card (or key code) the MCU's reader read; sent until :class:`CardAck`."""

    read_id: int  # u8, counts reads since the MCU's boot
    kind: CardKind
    uid: bytes  # 1..CARD_UID_MAX bytes
    TYPE = 0x83
    HEAD = struct.Struct(">BBB")  # read_id, kind, uid length

    def __post_init__(self) -> None:
        if not 0 <= self.read_id <= 0xFF:
            raise ProtocolError("CARD read_id must fit u8")
        if not 1 <= len(self.uid) <= CARD_UID_MAX:
            raise ProtocolError(f"CARD uid of {len(self.uid)} bytes (1..{CARD_UID_MAX})")
        if self.kind is CardKind.KEY_CODE and any(not 0x21 <= b <= 0x7E for b in self.uid):
            raise ProtocolError("CARD key code is not printable ASCII")

    def token(self) -> TokenRead:
        """The token as OCPP knows it (UID in upper-case hex, or the key code)."""
        if self.kind is CardKind.KEY_CODE:
            return TokenRead(self.uid.decode("ascii"), "KeyCode")
        kind = "ISO14443" if self.kind is CardKind.ISO14443 else "ISO15693"
        return TokenRead.from_uid(self.uid, kind)


@dataclass(frozen=True, slots=True)
class CardAck:
    """The host got the CARD with ``read_id`` (sent for every copy; not a command)."""

    read_id: int
    TYPE = 0x17


FLAG_RCD_TRIPPED = 0x01
FLAG_SAFE_STATE = 0x02  # heartbeat lost: contactors forced open, CP in F
FLAG_RCD_TEST_OK = 0x04


@dataclass(frozen=True, slots=True)
class Status:
    boot_id: int
    cp_mv: int
    cp_mode: CpMode
    duty_permille: int
    contactor_cmd: bool
    contactor_fb: bool
    lock_fb: int  # 0 unlocked, 1 locked, 2 unknown
    flags: int
    residual_da: int  # residual current in 0.1 mA
    TYPE = 0x81
    FORMAT = struct.Struct(">IhBHBBBBH")


Command = SetCp | SetContactors | SetLock | RcdTest | ClearFaults | Configure | GetInfo
Message = Command | HostHeartbeat | Ack | Status | Info | CardRead | CardAck

_EMPTY: dict[int, type[HostHeartbeat | RcdTest | ClearFaults]] = {
    HostHeartbeat.TYPE: HostHeartbeat,
    RcdTest.TYPE: RcdTest,
    ClearFaults.TYPE: ClearFaults,
}


def encode_payload(msg: Message) -> bytes:
    match msg:
        case SetCp(mode=mode, duty_permille=duty):
            return struct.pack(">BH", int(mode), duty)
        case SetContactors(closed=b) | SetLock(locked=b):
            return bytes([1 if b else 0])
        case Configure(heartbeat_timeout_ms=ms):
            return struct.pack(">H", ms)
        case Ack(seq=seq, result=result):
            return bytes([seq, int(result)])
        case GetInfo(host_protocol=version):
            return bytes([version])
        case Info(protocol=version, hardware_id=hw, firmware=fw):
            return Info.HEAD.pack(version, hw, len(fw)) + fw.encode("ascii")
        case CardRead(read_id=read_id, kind=kind, uid=uid):
            return CardRead.HEAD.pack(read_id, int(kind), len(uid)) + uid
        case CardAck(read_id=read_id):
            return bytes([read_id])
        case Status():
            return Status.FORMAT.pack(
                msg.boot_id,
                msg.cp_mv,
                int(msg.cp_mode),
                msg.duty_permille,
                int(msg.contactor_cmd),
                int(msg.contactor_fb),
                msg.lock_fb,
                msg.flags,
                msg.residual_da,
            )
        case _:
            return b""


def _bool(payload: bytes) -> bool:
    if len(payload) != 1 or payload[0] > 1:
        raise ProtocolError("boolean payload must be one byte 0 or 1")
    return payload[0] == 1


def decode_payload(mtype: int, payload: bytes) -> Message:
    """The message of a frame; ProtocolError for unknown types and bad payloads."""
    try:
        if mtype in _EMPTY:
            if payload:
                raise ProtocolError(f"type 0x{mtype:02x} carries no payload")
            return _EMPTY[mtype]()
        if mtype == SetCp.TYPE:
            if len(payload) != 3:
                raise ProtocolError("SET_CP needs 3 bytes")
            mode, duty = struct.unpack(">BH", payload)
            if duty > 1000:
                raise ProtocolError(f"duty {duty} per mille out of range")
            return SetCp(CpMode(mode), duty)
        if mtype == SetContactors.TYPE:
            return SetContactors(_bool(payload))
        if mtype == SetLock.TYPE:
            return SetLock(_bool(payload))
        if mtype == Configure.TYPE:
            if len(payload) != 2:
                raise ProtocolError("CONFIG needs 2 bytes")
            return Configure(struct.unpack(">H", payload)[0])
        if mtype == GetInfo.TYPE:
            if len(payload) != 1:
                raise ProtocolError("GET_INFO needs 1 byte")
            return GetInfo(payload[0])
        if mtype == Info.TYPE:
            if len(payload) < Info.HEAD.size:
                raise ProtocolError(f"INFO needs at least {Info.HEAD.size} bytes")
            version, hw, n = Info.HEAD.unpack_from(payload)
            raw = payload[Info.HEAD.size :]
            if n != len(raw):
                raise ProtocolError(f"INFO firmware length {n} but {len(raw)} bytes follow")
            return Info(version, hw, _check_firmware(raw))
        if mtype == CardRead.TYPE:
            if len(payload) < CardRead.HEAD.size:
                raise ProtocolError(f"CARD needs at least {CardRead.HEAD.size} bytes")
            read_id, kind, n = CardRead.HEAD.unpack_from(payload)
            uid = payload[CardRead.HEAD.size :]
            if n != len(uid):
                raise ProtocolError(f"CARD uid length {n} but {len(uid)} bytes follow")
            return CardRead(read_id, CardKind(kind), uid)
        if mtype == CardAck.TYPE:
            if len(payload) != 1:
                raise ProtocolError("CARD_ACK needs 1 byte")
            return CardAck(payload[0])
        if mtype == Ack.TYPE:
            if len(payload) != 2:
                raise ProtocolError("ACK needs 2 bytes")
            return Ack(payload[0], AckResult(payload[1]))
        if mtype == Status.TYPE:
            if len(payload) != Status.FORMAT.size:
                raise ProtocolError(f"STATUS needs {Status.FORMAT.size} bytes")
            f = Status.FORMAT.unpack(payload)
            return Status(f[0], f[1], CpMode(f[2]), f[3], bool(f[4]), bool(f[5]), *f[6:])
    except ValueError as exc:  # enum conversion of an out-of-range value
        if isinstance(exc, ProtocolError):
            raise
        raise ProtocolError(str(exc)) from exc
    raise ProtocolError(f"unknown message type 0x{mtype:02x}")


# --------------------------------------------------------------------------- host machine


@dataclass(frozen=True, slots=True)
class BytesIn:
    data: bytes


@dataclass(frozen=True, slots=True)
class Submit:
    token: int  # the caller's handle, echoed in CommandDone / CommandFailed
    command: Command


@dataclass(frozen=True, slots=True)
class Tick:
    """Nothing but the passing of time (the adapter sends it at ``deadline``)."""


HostEvent = BytesIn | Submit | Tick


@dataclass(frozen=True, slots=True)
class Write:
    data: bytes


@dataclass(frozen=True, slots=True)
class StatusIn:
    status: Status


@dataclass(frozen=True, slots=True)
class CommandDone:
    token: int
    result: AckResult
    info: Info | None = None  # the answer to GET_INFO


@dataclass(frozen=True, slots=True)
class CommandFailed:
    token: int
    reason: str


@dataclass(frozen=True, slots=True)
class McuRebooted:
    old_boot_id: int
    new_boot_id: int


@dataclass(frozen=True, slots=True)
class LinkLost:
    silent_s: float


@dataclass(frozen=True, slots=True)
class LinkUp:
    boot_id: int


@dataclass(frozen=True, slots=True)
class CardIn:
    """A card read, reported once per (MCU boot, read_id)."""

    card: CardRead


HostAction = (
    Write | StatusIn | CommandDone | CommandFailed | McuRebooted | LinkLost | LinkUp | CardIn
)


@dataclass(frozen=True, slots=True)
class LinkTiming:
    heartbeat_s: float = 0.1
    heartbeat_timeout_s: float = 0.5
    retransmit_s: float = 0.05
    max_tries: int = 10


@dataclass(slots=True)
class _InFlight:
    token: int
    command: Command
    seq: int
    sent_at: float
    tries: int


class HostLink:
    """The host's half of the link; see the module docstring."""

    def __init__(self, host_session: int, now: float, timing: LinkTiming | None = None) -> None:
        self.timing = timing or LinkTiming()
        self.session = host_session & 0xFFFF
        self.reader = FrameReader()
        self.boot_id: int | None = None
        self.up = False
        self._seq = 0
        self._queue: deque[Submit] = deque()
        self._flight: _InFlight | None = None
        self._last_rx = now
        self._next_heartbeat = now
        self._last_card: tuple[int, int] | None = None  # (boot_id, read_id) reported last

    @property
    def epoch(self) -> int:
        return (self.boot_id or 0) & 0xFF

    @property
    def deadline(self) -> float:
        t = [self._next_heartbeat, self._last_rx + self.timing.heartbeat_timeout_s]
        if self._flight is not None:
            t.append(self._flight.sent_at + self.timing.retransmit_s)
        return min(t)

    def handle(self, event: HostEvent, now: float) -> list[HostAction]:
        out: list[HostAction] = []
        if isinstance(event, BytesIn):
            for frame in self.reader.feed(event.data):
                self._on_frame(frame, now, out)
        elif isinstance(event, Submit):
            self._queue.append(event)
        self._timers(now, out)
        self._pump(now, out)
        return out

    def _frame(self, msg: Message, seq: int) -> bytes:
        return encode_frame(Frame(msg.TYPE, self.epoch, self.session, seq, encode_payload(msg)))

    def _on_frame(self, frame: Frame, now: float, out: list[HostAction]) -> None:
        try:
            msg = decode_payload(frame.mtype, frame.payload)
        except ProtocolError as exc:
            self.reader.dropped += 1
            flight = self._flight
            if (
                frame.mtype == Info.TYPE
                and flight is not None
                and isinstance(flight.command, GetInfo)
                and self._ours(frame)
                and frame.seq == flight.seq
            ):  # a CRC-valid but malformed INFO: the MCU's bug, resending won't cure it
                self._last_rx = now
                self._flight = None
                self._seq = (self._seq + 1) & 0xFF
                out.append(CommandFailed(flight.token, f"malformed INFO: {exc}"))
            return
        if isinstance(msg, Status):
            self._last_rx = now
            if self.boot_id is not None and msg.boot_id != self.boot_id:
                out.append(McuRebooted(self.boot_id, msg.boot_id))
                self._fail_all("MCU rebooted", out)
                self._seq = 0
            if not self.up or msg.boot_id != self.boot_id:
                self.up = True
                out.append(LinkUp(msg.boot_id))
            self.boot_id = msg.boot_id
            out.append(StatusIn(msg))
        elif isinstance(msg, CardRead):
            if self.boot_id is None or frame.epoch != self.epoch:
                return  # before the first STATUS or from an earlier boot: it is resent
            self._last_rx = now
            ack = CardAck(msg.read_id)
            payload = encode_payload(ack)
            out.append(Write(encode_frame(Frame(ack.TYPE, self.epoch, self.session, 0, payload))))
            if self._last_card != (self.boot_id, msg.read_id):
                self._last_card = (self.boot_id, msg.read_id)
                out.append(CardIn(msg))
        elif isinstance(msg, Ack | Info):
            if not self._ours(frame):
                return  # another lifetime's answer
            self._last_rx = now
            flight = self._flight
            seq = msg.seq if isinstance(msg, Ack) else frame.seq
            if flight is None or seq != flight.seq:
                return
            if isinstance(msg, Info) and not isinstance(flight.command, GetInfo):
                return  # an INFO answers GET_INFO only
            self._flight = None
            self._seq = (self._seq + 1) & 0xFF
            if isinstance(msg, Info):
                out.append(CommandDone(flight.token, AckResult.OK, msg))
            else:
                out.append(CommandDone(flight.token, msg.result))

    def _ours(self, frame: Frame) -> bool:
        """From the current MCU boot and for this host lifetime."""
        return (
            self.boot_id is not None and frame.epoch == self.epoch and frame.session == self.session
        )

    def _fail_all(self, reason: str, out: list[HostAction]) -> None:
        if self._flight is not None:
            out.append(CommandFailed(self._flight.token, reason))
            self._flight = None
        while self._queue:
            out.append(CommandFailed(self._queue.popleft().token, reason))

    def _timers(self, now: float, out: list[HostAction]) -> None:
        silent = now - self._last_rx
        if self.up and silent >= self.timing.heartbeat_timeout_s:
            self.up = False
            out.append(LinkLost(silent))
        if now >= self._next_heartbeat:
            out.append(Write(self._frame(HostHeartbeat(), 0)))
            self._next_heartbeat = now + self.timing.heartbeat_s
        flight = self._flight
        if flight is not None and now >= flight.sent_at + self.timing.retransmit_s:
            if flight.tries >= self.timing.max_tries:
                self._flight = None
                # the MCU may have run it: never reuse this seq for another command
                self._seq = (self._seq + 1) & 0xFF
                out.append(CommandFailed(flight.token, f"no ACK after {flight.tries} tries"))
            else:
                flight.tries += 1
                flight.sent_at = now
                out.append(Write(self._frame(flight.command, flight.seq)))

    def _pump(self, now: float, out: list[HostAction]) -> None:
        if self._flight is not None or not self._queue or self.boot_id is None:
            return
        sub = self._queue.popleft()
        self._flight = _InFlight(sub.token, sub.command, self._seq, now, 1)
        out.append(Write(self._frame(sub.command, self._seq)))


# --------------------------------------------------------------------------- MCU half


@dataclass(frozen=True, slots=True)
class Execute:
    """The MCU must run ``command`` now and answer :meth:`McuLink.ack` with its result."""

    seq: int
    command: Command


class McuLink:
    """The MCU's half: dedup by (host session, seq), heartbeat watchdog, frame building."""

    def __init__(
        self,
        boot_id: int,
        now: float,
        heartbeat_timeout_s: float = 0.5,
        *,
        answers_info: bool = True,
    ) -> None:
        self.answers_info = answers_info  # False: firmware predating GET_INFO (tests, labs)
        self.boot_id = boot_id & 0xFFFFFFFF
        self.epoch = boot_id & 0xFF
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.reader = FrameReader()
        self.host_session: int | None = None
        self.last_seq: int | None = None
        self.last_result = AckResult.OK
        self.last_reply = b""  # the frame that answered last_seq, resent for a duplicate
        self.last_host_rx = now
        self.heard_host = False
        self.cards: deque[CardRead] = deque()  # reads the host has not acknowledged
        self._read_id = 0

    def card(self, kind: CardKind, uid: bytes) -> bytes:
        """A new read: kept until the host acknowledges it; returns its first frame.
        Beyond CARD_PENDING_MAX unacknowledged reads the oldest is given up."""
        read = CardRead(self._read_id, kind, uid)
        self._read_id = (self._read_id + 1) & 0xFF
        if len(self.cards) >= CARD_PENDING_MAX:
            self.cards.popleft()
        self.cards.append(read)
        return self.card_frame() or b""

    def card_frame(self) -> bytes | None:
        """The oldest unacknowledged read's frame (resent with every STATUS)."""
        if not self.cards:
            return None
        payload = encode_payload(self.cards[0])
        session = self.host_session or 0
        return encode_frame(Frame(CardRead.TYPE, self.epoch, session, 0, payload))

    def host_silent(self, now: float) -> bool:
        return now - self.last_host_rx >= self.heartbeat_timeout_s

    def receive(self, data: bytes, now: float) -> tuple[list[Execute], list[bytes]]:
        """Commands to execute (each at most once) and frames to write at once (re-ACKs)."""
        runs: list[Execute] = []
        writes: list[bytes] = []
        for frame in self.reader.feed(data):
            try:
                msg = decode_payload(frame.mtype, frame.payload)
                if isinstance(msg, GetInfo) and not self.answers_info:
                    raise ProtocolError("unknown message type 0x16")
            except ProtocolError:
                writes.append(self._ack_frame(frame.seq, AckResult.MALFORMED, frame.session))
                continue
            if isinstance(msg, Ack | Status | Info | CardRead):
                continue  # not ours to receive
            self.last_host_rx = now
            self.heard_host = True
            if isinstance(msg, CardAck):
                head = self.cards[0] if self.cards else None
                if frame.epoch == self.epoch and head is not None and head.read_id == msg.read_id:
                    self.cards.popleft()
                    following = self.card_frame()
                    if following is not None:
                        writes.append(following)
                continue
            if isinstance(msg, HostHeartbeat):
                if frame.session != self.host_session:
                    self.host_session = frame.session  # a new host lifetime announces itself
                    self.last_seq = None
                continue
            if frame.epoch != self.epoch or frame.session != self.host_session:
                continue  # for an earlier boot of this MCU or an earlier host: never run it
            if frame.seq == self.last_seq:
                writes.append(self.last_reply)
                continue
            runs.append(Execute(frame.seq, msg))
        return runs, writes

    def ack(self, seq: int, result: AckResult) -> bytes:
        self.last_seq = seq
        self.last_result = result
        self.last_reply = self._ack_frame(seq, result, self.host_session or 0)
        return self.last_reply

    def info(self, seq: int, info: Info) -> bytes:
        """The answer to the GET_INFO with ``seq`` (instead of :meth:`ack`)."""
        payload = encode_payload(info)
        self.last_seq = seq
        self.last_result = AckResult.OK
        self.last_reply = encode_frame(
            Frame(Info.TYPE, self.epoch, self.host_session or 0, seq, payload)
        )
        return self.last_reply

    def _ack_frame(self, seq: int, result: AckResult, session: int) -> bytes:
        msg = Ack(seq, result)
        return encode_frame(Frame(Ack.TYPE, self.epoch, session, seq, encode_payload(msg)))

    def status_frame(self, status: Status) -> bytes:
        payload = encode_payload(status)
        return encode_frame(Frame(Status.TYPE, self.epoch, self.host_session or 0, 0, payload))
