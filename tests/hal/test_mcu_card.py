"""CARD / CARD_ACK (docs/mcu-protocol.md): the codec and its bad input, every read reported
exactly once and in order between the real host machine and the MCU simulator over the
fault-injection bench (damaged bytes, a cut return path that loses every CARD_ACK), and the
``serial-mcu`` board's token reader over a real pty."""

from __future__ import annotations

import asyncio

import pytest

from hal.backends.serial_mcu.framing import ProtocolError
from hal.backends.serial_mcu.protocol import (
    CARD_UID_MAX,
    CardAck,
    CardIn,
    CardKind,
    CardRead,
    decode_payload,
    encode_payload,
)
from hal.backends.serial_mcu.simulator import ByteFaults
from hal.types import TokenRead
from tests.hal.test_mcu_protocol import Bench, bench
from tests.hal.test_mcu_pty import rig
from tests.hal.test_mcu_pty import run as run_pty


def test_card_and_card_ack_round_trip() -> None:
    for msg in (
        CardRead(0, CardKind.ISO14443, bytes.fromhex("04A1B2C3D4E5F6")),
        CardRead(255, CardKind.ISO15693, bytes(range(8))),
        CardRead(7, CardKind.KEY_CODE, b"1234"),
        CardAck(9),
    ):
        assert decode_payload(msg.TYPE, encode_payload(msg)) == msg
    assert encode_payload(CardRead(3, CardKind.ISO14443, b"\x04\xa1\xb2\xc3")) == bytes.fromhex(
        "03 00 04 04a1b2c3"
    )
    read = CardRead(1, CardKind.ISO14443, bytes.fromhex("04a1b2c3d4e5f6"))
    assert read.token() == TokenRead("04A1B2C3D4E5F6", "ISO14443")
    assert CardRead(1, CardKind.KEY_CODE, b"0815").token() == TokenRead("0815", "KeyCode")


@pytest.mark.parametrize(
    ("mtype", "payload", "error"),
    [
        (CardRead.TYPE, b"\x01\x00", "at least 3 bytes"),  # truncated header
        (CardRead.TYPE, b"\x01\x00\x04\x04\xa1", "length 4 but 2 bytes"),  # truncated uid
        (CardRead.TYPE, b"\x01\x00\x00", "0 bytes"),  # empty uid
        (CardRead.TYPE, b"\x01\x00\x11" + bytes(17), f"(1..{CARD_UID_MAX})"),  # oversized
        (CardRead.TYPE, b"\x01\x07\x01\x04", "7"),  # unknown kind
        (CardRead.TYPE, b"\x01\x02\x02\x31\x00", "not printable"),  # key code with a NUL
        (CardAck.TYPE, b"", "CARD_ACK needs 1 byte"),
        (CardAck.TYPE, b"\x01\x02", "CARD_ACK needs 1 byte"),
    ],
)
def test_bad_card_payloads_are_protocol_errors(mtype: int, payload: bytes, error: str) -> None:
    with pytest.raises(ProtocolError, match=error.replace("(", r"\(").replace(")", r"\)")):
        decode_payload(mtype, payload)


def cards_seen(b: Bench) -> list[TokenRead]:
    return [fact.card.token() for _t, fact in b.facts if isinstance(fact, CardIn)]


UIDS = ["04A1B2C3", "04A1B2C3D4E5F6", "E004010203040506", "04FFEEDD", "0815"]
KINDS = ["ISO14443", "ISO14443", "ISO15693", "ISO14443", "KeyCode"]


@pytest.mark.parametrize("seed", range(6))
def test_every_read_once_and_in_order_over_damaged_bytes(seed: int) -> None:
    faults = ByteFaults(drop=0.01, corrupt=0.01, duplicate=0.01)
    b = bench(seed, down=faults, up=ByteFaults(drop=0.01, corrupt=0.01))
    for uid, kind in zip(UIDS, KINDS, strict=True):
        b.mcu.plant.present_token(uid, kind)
        b.run(0.03)
    for _ in range(100):
        b.run(0.05)
        if not b.mcu.link.cards:
            break
    assert cards_seen(b) == [TokenRead(u, k) for u, k in zip(UIDS, KINDS, strict=True)]
    assert not b.mcu.link.cards  # every read acknowledged


def test_lost_card_acks_do_not_double_a_read() -> None:
    b = bench(1)
    b.down.cut = True  # the host hears the CARD but its CARD_ACKs (and heartbeats) are lost
    b.mcu.plant.present_token("04A1B2C3")
    b.run(0.2)  # the MCU resends the read with every STATUS
    assert len(b.mcu.link.cards) == 1
    b.down.cut = False
    b.run(0.3)
    assert cards_seen(b) == [TokenRead("04A1B2C3")]
    assert not b.mcu.link.cards


def test_serial_mcu_board_reads_cards_over_a_pty() -> None:
    async def main() -> None:
        async with rig() as r:
            assert r.board.token_reader is not None
            r.sim.plant.present_token("04A1B2C3D4E5F6")
            r.sim.plant.present_token("0815", "KeyCode")
            first = await asyncio.wait_for(r.board.token_reader.read(), 5)
            second = await asyncio.wait_for(r.board.token_reader.read(), 5)
            assert (first, second) == (TokenRead("04A1B2C3D4E5F6"), TokenRead("0815", "KeyCode"))
            await asyncio.sleep(0.2)  # resends, if any, are not reported again
            assert r.conn.cards.empty()

    run_pty(main)
