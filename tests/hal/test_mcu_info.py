"""GET_INFO / INFO (docs/mcu-protocol.md §6): the codec and its bad input, and the query
between the real host machine (HostLink) and the real MCU simulator over the fake-clock
fault-injection bench of test_mcu_protocol: retransmission under damaged bytes, a firmware
that predates GET_INFO, and an MCU that answers with a malformed version string."""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field

import pytest

from hal.backends.serial_mcu.framing import MAX_FRAME, Frame, ProtocolError, encode_frame
from hal.backends.serial_mcu.protocol import (
    FIRMWARE_MAX,
    PROTOCOL_VERSION,
    AckResult,
    CommandDone,
    CpMode,
    GetInfo,
    HostLink,
    Info,
    LinkTiming,
    SetCp,
    decode_payload,
    encode_payload,
)
from hal.backends.serial_mcu.simulator import ByteFaults, McuSimulator
from tests.hal.test_mcu_protocol import Bench, Wire, executed_duties


def info_payload(firmware: bytes, *, length: int | None = None, hw: int = 0x01020304) -> bytes:
    n = len(firmware) if length is None else length
    return struct.pack(">BIB", PROTOCOL_VERSION, hw, n) + firmware


def test_get_info_and_info_round_trip_through_frames() -> None:
    longest = Info(PROTOCOL_VERSION, 0xFFFFFFFF, "v" * FIRMWARE_MAX)
    for msg in (GetInfo(), Info(1, 0x53494D31, "1.4.2"), longest):
        wire = encode_frame(Frame(msg.TYPE, 3, 0xBEEF, 7, encode_payload(msg)))
        assert len(wire) <= MAX_FRAME + 2  # the longest INFO fits a frame
        assert decode_payload(msg.TYPE, encode_payload(msg)) == msg
    assert encode_payload(GetInfo()) == bytes([PROTOCOL_VERSION])
    assert (
        encode_payload(Info(1, 0x01020304, "1.4.2")) == bytes.fromhex("01 01020304 05") + b"1.4.2"
    )


@pytest.mark.parametrize(
    ("mtype", "payload", "error"),
    [
        (GetInfo.TYPE, b"", "GET_INFO needs 1 byte"),  # truncated
        (GetInfo.TYPE, b"\x01\x00", "GET_INFO needs 1 byte"),  # oversized
        (Info.TYPE, b"\x01\x00\x00", "at least 6 bytes"),  # truncated header
        (Info.TYPE, info_payload(b"1.4", length=5), "length 5 but 3 bytes"),  # truncated string
        (Info.TYPE, info_payload(b"1.4.2", length=3), "length 3 but 5 bytes"),  # trailing bytes
        (Info.TYPE, info_payload(b"x" * 33), "33 bytes (1..32 allowed)"),  # oversized string
        (Info.TYPE, info_payload(b""), "0 bytes (1..32 allowed)"),  # empty string
        (Info.TYPE, info_payload(b"1.4\x002"), "not printable ASCII"),  # wrong type: binary
        (Info.TYPE, info_payload("1.4.2-ü".encode()), "not printable ASCII"),  # UTF-8
        (Info.TYPE, info_payload(b"1.4\n"), "not printable ASCII"),  # a log-injection newline
    ],
)
def test_bad_info_payloads_are_clear_protocol_errors(
    mtype: int, payload: bytes, error: str
) -> None:
    with pytest.raises(ProtocolError, match=error.replace("(", r"\(").replace(")", r"\)")):
        decode_payload(mtype, payload)


@pytest.mark.parametrize("firmware", ["", "x" * 33, "1.4.2-ü", "tab\there"])
def test_info_refuses_to_be_built_with_a_bad_version(firmware: str) -> None:
    with pytest.raises(ProtocolError):
        Info(PROTOCOL_VERSION, 1, firmware)
    with pytest.raises(ProtocolError):
        McuSimulator(firmware=firmware)


# ------------------------------------------------------------------ over the fake-clock bench


@dataclass
class InfoBench(Bench):
    answers: dict[int, CommandDone] = field(default_factory=dict)

    def _host(self, actions: list) -> None:  # type: ignore[type-arg]
        self.answers.update({a.token: a for a in actions if isinstance(a, CommandDone)})
        super()._host(actions)

    def ask(self, token: int, command: GetInfo | SetCp) -> None:
        self.submit(token, command)  # type: ignore[arg-type]


def info_bench(mcu: McuSimulator, seed: int = 1, faults: float = 0.0) -> InfoBench:
    rng = random.Random(seed)
    timing = LinkTiming(heartbeat_s=0.05, heartbeat_timeout_s=0.3, retransmit_s=0.03, max_tries=40)

    def wire() -> Wire:
        return Wire(ByteFaults(drop=faults, corrupt=faults, rng=random.Random(rng.random())))

    b = InfoBench(HostLink(rng.getrandbits(16), 0.0, timing), mcu, wire(), wire())
    for _ in range(200):
        b.run(0.05)
        if b.host.up:
            return b
    raise AssertionError("link never came up")


def sim(**kwargs: object) -> McuSimulator:
    return McuSimulator(
        rng=random.Random(7), status_period_s=0.05, heartbeat_timeout_s=0.3, **kwargs
    )  # type: ignore[arg-type]


def test_clean_link_answers_get_info_with_the_configured_identity() -> None:
    b = info_bench(sim(firmware="1.4.2", hardware_id=0xCAFE0001))
    b.ask(1, GetInfo())
    b.run(0.2)
    assert b.answers[1] == CommandDone(1, AckResult.OK, Info(PROTOCOL_VERSION, 0xCAFE0001, "1.4.2"))


def test_get_info_survives_dropped_and_corrupted_bytes_by_retransmission() -> None:
    b = info_bench(sim(firmware="2.0.1-rc3"), seed=11, faults=0.01)
    for i in range(30):  # GET_INFO between commands: the seq stream stays exact
        b.ask(2 * i, GetInfo())
        b.ask(2 * i + 1, SetCp(CpMode.PWM, 100 + i))
    b.run(20.0)
    assert not b.failed, b.failed
    infos = [b.answers[2 * i].info for i in range(30)]
    assert infos == [Info(PROTOCOL_VERSION, 0x53494D31, "2.0.1-rc3")] * 30
    assert executed_duties(b) == [100 + i for i in range(30)]  # each once, in order
    assert b.host.reader.dropped + b.mcu.link.reader.dropped > 0  # the faults did happen


def test_a_lost_info_is_resent_from_the_stored_reply() -> None:
    b = info_bench(sim(firmware="1.4.2"), seed=3)
    b.up.cut = True  # the INFO is lost: the host retransmits GET_INFO
    b.ask(1, GetInfo())
    b.run(0.1)
    b.up.cut = False
    b.run(0.3)
    assert b.answers[1].info == Info(PROTOCOL_VERSION, 0x53494D31, "1.4.2")
    runs = [c for _boot, _seq, c in b.mcu.executed if isinstance(c, GetInfo)]
    assert len(runs) == 1  # the duplicate was answered, not run again


def test_firmware_predating_get_info_answers_malformed_and_the_link_goes_on() -> None:
    b = info_bench(sim(firmware=None), seed=4)
    b.ask(1, GetInfo())
    b.ask(2, SetCp(CpMode.PWM, 250))
    b.run(0.5)
    assert b.answers[1] == CommandDone(1, AckResult.MALFORMED, None)
    assert b.answers[2].result is AckResult.OK and executed_duties(b) == [250]
    assert not b.failed


class BadInfoMcu(McuSimulator):
    """A buggy MCU: answers GET_INFO with an INFO frame (good CRC) carrying ``payload``."""

    def __init__(self, payload: bytes, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.bad_payload = payload

    def feed(self, data: bytes, now: float) -> bytes:
        runs, writes = self.link.receive(data, now)
        out = bytearray(b"".join(writes))
        for run in runs:
            self.executed.append((self.boot_id, run.seq, run.command))
            if isinstance(run.command, GetInfo):
                link = self.link
                link.last_seq = run.seq
                link.last_reply = encode_frame(
                    Frame(Info.TYPE, link.epoch, link.host_session or 0, run.seq, self.bad_payload)
                )
                out += link.last_reply
            else:
                out += self.link.ack(run.seq, self._execute(run.command))
        return bytes(out + self.tick(now))


BAD_INFOS = {
    "oversized": info_payload(b"9" * 40),
    "binary": info_payload(b"1.4\xff\x00"),
    "length-mismatch": info_payload(b"1.4.2", length=9),
    "truncated": b"\x01\x00\x00\x00",
}


@pytest.mark.parametrize("payload", BAD_INFOS.values(), ids=BAD_INFOS.keys())
def test_malformed_info_fails_the_query_at_once_and_loses_nothing(payload: bytes) -> None:
    b = info_bench(
        BadInfoMcu(payload, rng=random.Random(5), status_period_s=0.05, heartbeat_timeout_s=0.3)
    )
    dropped = b.host.reader.dropped
    b.ask(1, GetInfo())
    b.ask(2, SetCp(CpMode.PWM, 321))
    b.run(0.5)
    assert b.failed[1].startswith("malformed INFO: "), b.failed
    assert b.host.reader.dropped == dropped + 1  # counted, and not retried 40 times
    assert b.answers[2].result is AckResult.OK and executed_duties(b) == [321]
    assert b.host.up


def test_an_info_never_completes_a_command_other_than_get_info() -> None:
    b = info_bench(sim(), seed=6)
    b.down.cut = True  # the SET_CP stays in flight
    b.ask(1, SetCp(CpMode.PWM, 400))
    b.run(0.01)
    flight_seq = b.host._flight.seq if b.host._flight else -1
    forged = encode_frame(
        Frame(
            Info.TYPE,
            b.host.epoch,
            b.host.session,
            flight_seq,
            encode_payload(Info(PROTOCOL_VERSION, 1, "forged")),
        )
    )
    b.up.put(b.now, forged)
    b.run(0.05)
    assert 1 not in b.answers and 1 not in b.failed
    b.down.cut = False
    b.run(0.3)
    assert b.answers[1] == CommandDone(1, AckResult.OK, None)


def test_framing_module_is_pure() -> None:
    """framing.py (split out of protocol.py) follows the pure-module rule of
    tests/test_import_rules.py, which recognises modules by the leaf name ``protocol``."""
    import ast
    from pathlib import Path

    import hal.backends.serial_mcu.framing as framing

    tree = ast.parse(Path(framing.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.partition(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "struct", "dataclasses"}, imported
    assert "environ" not in ast.dump(tree)
