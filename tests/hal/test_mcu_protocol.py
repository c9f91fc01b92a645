"""The serial MCU protocol: codec, bad input, and the link under fault injection.

The fault-injection runs connect the real host machine (HostLink) to the real MCU
simulator through byte channels that drop, duplicate, corrupt and reorder, with a fake
clock, so hundreds of simulated seconds take a fraction of a real one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hal.backends.serial_mcu.framing import (
    Frame,
    FrameReader,
    ProtocolError,
    cobs_decode,
    cobs_encode,
    crc16,
    encode_frame,
    parse_frame,
)
from hal.backends.serial_mcu.protocol import (
    Ack,
    AckResult,
    BytesIn,
    CommandDone,
    CommandFailed,
    CpMode,
    HostLink,
    LinkLost,
    LinkTiming,
    LinkUp,
    McuRebooted,
    SetContactors,
    SetCp,
    Status,
    StatusIn,
    Submit,
    Tick,
    Write,
    decode_payload,
    encode_payload,
)
from hal.backends.serial_mcu.simulator import ByteFaults, McuSimulator
from hal.types import CpState


def test_crc16_ccitt_false_check_value() -> None:
    assert crc16(b"123456789") == 0x29B1


@given(st.binary(max_size=600))
def test_cobs_round_trip_has_no_zero(data: bytes) -> None:
    enc = cobs_encode(data)
    assert 0 not in enc
    assert cobs_decode(enc) == data


def test_frame_round_trip_and_every_message() -> None:
    status = Status(7, -12000, CpMode.STATE_F, 0, False, True, 2, 0x05, 300)
    for msg in (SetCp(CpMode.PWM, 50), SetContactors(True), Ack(3, AckResult.REJECTED), status):
        frame = Frame(msg.TYPE, 1, 0xBEEF, 9, encode_payload(msg))
        wire = encode_frame(frame)
        assert wire.endswith(b"\x00") and 0 not in wire[:-1]
        back = parse_frame(wire[:-1])
        assert back == frame
        assert decode_payload(back.mtype, back.payload) == msg


@pytest.mark.parametrize(
    ("mtype", "payload"),
    [
        (SetCp.TYPE, b"\x01\x00"),  # truncated
        (SetCp.TYPE, b"\x01\x00\x32\x00"),  # oversized
        (SetCp.TYPE, b"\x07\x00\x32"),  # bad enum
        (SetCp.TYPE, b"\x01\x03\xe9"),  # duty 1001
        (SetContactors.TYPE, b"\x02"),  # not a boolean
        (Status.TYPE, b"\x00" * 5),
        (0x01, b"\x00"),  # heartbeat with payload
        (0x7F, b""),  # unknown type
    ],
)
def test_bad_payloads_raise_protocol_error(mtype: int, payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_payload(mtype, payload)


def test_reader_rejects_corrupt_short_and_oversized_frames_and_resyncs() -> None:
    good = encode_frame(Frame(SetContactors.TYPE, 0, 1, 0, b"\x01"))
    bad = bytearray(good)
    bad[3] ^= 0x10
    reader = FrameReader()
    stream = bytes(bad) + b"\x02\x01\x00" + b"\x05" * 500 + b"\x00" + good
    frames = reader.feed(stream)
    assert frames == [parse_frame(good[:-1])]
    assert reader.dropped == 3
    with pytest.raises(ProtocolError):
        parse_frame(b"\x05" * 100)
    with pytest.raises(ProtocolError):
        cobs_decode(b"\x05\x01")


@given(st.binary(max_size=300))
def test_reader_never_raises_on_garbage(data: bytes) -> None:
    FrameReader().feed(data)


# ------------------------------------------------------------------ fault-injection harness


@dataclass
class Wire:
    """One direction: bytes in flight with a latency, optionally mangled, optionally cut."""

    faults: ByteFaults
    latency: float = 0.002
    cut: bool = False
    queue: list[tuple[float, bytes]] = field(default_factory=list)

    def put(self, now: float, data: bytes) -> None:
        if data and not self.cut:
            self.queue.append((now + self.latency, self.faults.mangle(data)))

    def take(self, now: float) -> bytes:
        due = [d for t, d in self.queue if t <= now]
        self.queue = [(t, d) for t, d in self.queue if t > now]
        return b"".join(due)


@dataclass
class Bench:
    host: HostLink
    mcu: McuSimulator
    down: Wire  # host -> MCU
    up: Wire  # MCU -> host
    now: float = 0.0
    done: dict[int, AckResult] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    facts: list[object] = field(default_factory=list)
    statuses: int = 0

    def _host(self, actions: list) -> None:  # type: ignore[type-arg]
        for a in actions:
            if isinstance(a, Write):
                self.down.put(self.now, a.data)
            elif isinstance(a, CommandDone):
                self.done[a.token] = a.result
            elif isinstance(a, CommandFailed):
                self.failed[a.token] = a.reason
            elif isinstance(a, StatusIn):
                self.statuses += 1
            else:
                self.facts.append((self.now, a))

    def submit(self, token: int, command: SetCp | SetContactors) -> None:
        self._host(self.host.handle(Submit(token, command), self.now))

    def run(self, seconds: float, step: float = 0.002) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now = round(self.now + step, 6)
            data = self.down.take(self.now)
            self.up.put(
                self.now, self.mcu.feed(data, self.now) if data else self.mcu.tick(self.now)
            )
            data = self.up.take(self.now)
            event = BytesIn(data) if data else Tick()
            self._host(self.host.handle(event, self.now))


def bench(seed: int, down: ByteFaults | None = None, up: ByteFaults | None = None) -> Bench:
    rng = random.Random(seed)
    timing = LinkTiming(heartbeat_s=0.05, heartbeat_timeout_s=0.3, retransmit_s=0.03, max_tries=20)
    mcu = McuSimulator(rng=rng, status_period_s=0.05, heartbeat_timeout_s=0.3)
    b = Bench(
        HostLink(rng.getrandbits(16), 0.0, timing),
        mcu,
        Wire(down or ByteFaults()),
        Wire(up or ByteFaults()),
    )
    for _ in range(100):
        b.run(0.05)
        if b.host.up:
            return b
    raise AssertionError("link never came up")


def executed_duties(b: Bench) -> list[int]:
    return [c.duty_permille for _boot, _seq, c in b.mcu.executed if isinstance(c, SetCp)]


def test_clean_link_runs_each_command_once_in_order() -> None:
    b = bench(1)
    for i in range(20):
        b.submit(i, SetCp(CpMode.PWM, 100 + i))
    b.run(2.0)
    assert b.done == dict.fromkeys(range(20), AckResult.OK)
    assert executed_duties(b) == [100 + i for i in range(20)]


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**32),
    st.floats(0, 0.02),
    st.floats(0, 0.02),
    st.floats(0, 0.02),
    st.floats(0, 0.3),
)
def test_faulty_bytes_never_run_a_command_twice_nor_out_of_order(
    seed: int, drop: float, dup: float, corrupt: float, reorder: float
) -> None:
    rng = random.Random(seed)
    faults = {"drop": drop, "duplicate": dup, "corrupt": corrupt, "reorder": reorder}
    b = bench(
        seed,
        ByteFaults(**faults, rng=random.Random(rng.random())),
        ByteFaults(**faults, rng=random.Random(rng.random())),
    )
    for i in range(15):
        b.submit(i, SetCp(CpMode.PWM, 100 + i))
    b.run(4.0, step=0.004)
    assert set(b.done) | set(b.failed) == set(range(15))
    runs = executed_duties(b)
    assert len(runs) == len(set(runs)), "a command ran twice"
    assert runs == sorted(runs), "commands ran out of order"
    # every acknowledged command ran; an unacknowledged one ran at most once
    assert {100 + t for t in b.done} <= set(runs)
    seqs = [(boot, seq) for boot, seq, _c in b.mcu.executed]
    assert len(seqs) == len(set(seqs))


def test_heavy_corruption_still_gets_every_command_through() -> None:
    noisy = {"drop": 0.01, "duplicate": 0.01, "corrupt": 0.01, "reorder": 0.2}
    b = bench(
        7, ByteFaults(**noisy, rng=random.Random(1)), ByteFaults(**noisy, rng=random.Random(2))
    )
    for i in range(30):
        b.submit(i, SetCp(CpMode.PWM, 200 + i))
    b.run(10.0)
    assert sorted(b.done) == list(range(30)) and not b.failed
    assert executed_duties(b) == [200 + i for i in range(30)]
    assert b.host.reader.dropped + b.mcu.link.reader.dropped > 0  # the faults did happen


def test_lost_ack_is_answered_from_the_stored_result() -> None:
    b = bench(3)
    b.up.cut = True  # the ACK is lost: the host retransmits, the MCU must not run it again
    b.submit(1, SetCp(CpMode.PWM, 321))
    b.run(0.1)
    b.up.cut = False
    b.run(0.5)
    assert b.done == {1: AckResult.OK}
    assert executed_duties(b) == [321]


def test_mcu_reset_fails_in_flight_commands_and_old_epoch_frames_never_run() -> None:
    b = bench(4)
    b.down.latency = 0.05  # commands are still on the wire when the MCU resets
    b.submit(1, SetCp(CpMode.PWM, 111))
    b.run(0.01)
    b.mcu.reset(b.now)
    b.run(0.5)
    assert 111 not in executed_duties(b)  # addressed to the old boot: not run after reset
    assert 1 in b.failed
    assert any(isinstance(f, McuRebooted) for _t, f in b.facts)
    b.down.latency = 0.002
    b.submit(2, SetCp(CpMode.PWM, 222))
    b.run(0.5)
    assert b.done[2] is AckResult.OK and executed_duties(b) == [222]


def test_host_silence_opens_contactors_within_the_heartbeat_timeout() -> None:
    b = bench(5)
    b.mcu.plant.ev_state = CpState.C
    b.submit(1, SetContactors(True))
    b.run(0.2)
    assert b.mcu.plant.contactor_command
    b.down.cut = True  # Linux goes silent
    cut_at = b.now
    b.run(1.0)
    assert not b.mcu.plant.contactor_command and b.mcu.safe
    assert b.mcu.safe_since is not None
    assert b.mcu.safe_since - cut_at <= 0.3 + 0.05  # heartbeat timeout + last-frame slack
    assert b.mcu.plant.cp_volts == -12.0  # state F
    b.down.cut = False
    b.submit(2, SetContactors(True))
    b.run(0.3)
    assert b.done[2] is AckResult.REJECTED  # latched until ClearFaults
    assert not b.mcu.plant.contactor_command


def test_mcu_silence_is_reported_as_link_lost_then_link_up() -> None:
    b = bench(6)
    b.up.cut = True
    b.run(0.6)
    lost = [t for t, f in b.facts if isinstance(f, LinkLost)]
    assert lost and not b.host.up
    b.up.cut = False
    b.run(0.3)
    assert b.host.up and any(isinstance(f, LinkUp) for _t, f in b.facts)


def test_command_without_any_ack_fails_after_max_tries_and_seq_is_not_reused() -> None:
    b = bench(8)
    b.down.cut = True
    b.submit(1, SetCp(CpMode.PWM, 500))
    b.run(1.0)
    assert "no ACK" in b.failed[1]
    b.down.cut = False
    b.mcu.link.last_host_rx = b.now  # (the MCU went safe meanwhile; irrelevant here)
    b.submit(2, SetCp(CpMode.CONSTANT, 1000))
    b.run(0.3)
    assert 2 in b.done


def test_pwm_duty_outside_1_to_999_is_rejected_not_crashing() -> None:
    b = bench(9)
    b.submit(1, SetCp(CpMode.PWM, 0))
    b.submit(2, SetCp(CpMode.PWM, 1000))
    b.run(0.3)
    assert b.done == {1: AckResult.REJECTED, 2: AckResult.REJECTED}


def test_host_restart_is_not_mistaken_for_a_duplicate_and_old_frames_are_ignored() -> None:
    b = bench(10)
    b.submit(1, SetCp(CpMode.PWM, 101))
    b.run(0.2)
    old_session = b.host.session
    stale = encode_frame(
        Frame(SetCp.TYPE, b.host.epoch, old_session, 1, encode_payload(SetCp(CpMode.PWM, 666)))
    )
    # a new host process: new session, seq 0 again (the old one also used seq 0)
    b.host = HostLink(old_session ^ 0x5555, b.now, b.host.timing)
    b.run(0.2)
    b.submit(2, SetCp(CpMode.PWM, 202))
    b.run(0.3)
    b.mcu.feed(stale, b.now)  # a leftover of the dead host, arriving late
    b.run(0.1)
    assert executed_duties(b) == [101, 202]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=90), max_size=12), st.booleans())
def test_both_machines_survive_garbage_and_forged_frames(chunks: list[bytes], forge: bool) -> None:
    """Random bytes, or well-framed frames with a good CRC but arbitrary content: neither
    machine raises, and the MCU never runs a command it could not decode."""
    host = HostLink(1, 0.0)
    mcu = McuSimulator(rng=random.Random(0))
    now = 0.0
    for chunk in chunks:
        now += 0.01
        data = chunk
        if forge:
            data = encode_frame(Frame(chunk[0] if chunk else 0x81, 0, 1, 0, chunk[1:40]))
        host.handle(BytesIn(data), now)
        mcu.feed(data, now)
    for _boot, _seq, command in mcu.executed:
        assert decode_payload(command.TYPE, encode_payload(command)) == command
