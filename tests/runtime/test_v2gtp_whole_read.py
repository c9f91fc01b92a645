"""The framer's usual read, exactly one whole message, takes a shorter path
(secc.v2gtp.Framer.feed): it must give the same frame as the incremental path and
refuse the same bad headers, naming the same check."""

from __future__ import annotations

import pytest

from secc.v2gtp import Framer, FramingError, HeaderCheck, PayloadType, encode_frame


def test_a_whole_message_gives_the_same_frame_as_byte_by_byte() -> None:
    data = encode_frame(b"\x80\x98\x02", PayloadType.EXI)
    whole = Framer().feed(data)
    split = Framer()
    frames = [f for i in range(len(data)) for f in split.feed(data[i : i + 1])]
    assert whole == frames and whole[0].payload == b"\x80\x98\x02"
    assert whole[0].payload_type == PayloadType.EXI
    assert Framer().feed(bytearray(data)) == whole  # any buffer type


@pytest.mark.parametrize(
    ("data", "check"),
    [
        (b"\x02\xfe\x80\x01\x00\x00\x00\x01\x00", HeaderCheck.VERSION),
        (b"\x01\xff\x80\x01\x00\x00\x00\x01\x00", HeaderCheck.VERSION),
        (b"\x01\xfe\x80\x04\x00\x00\x00\x01\x00", HeaderCheck.PAYLOAD_TYPE),  # -20 type early
        (b"\x01\xfe\x80\x01\x00\x00\x00\x09" + bytes(9), HeaderCheck.PAYLOAD_LENGTH),
    ],
)
def test_a_whole_message_with_a_bad_header_is_refused(data: bytes, check: HeaderCheck) -> None:
    framer = Framer(max_payload=8)
    with pytest.raises(FramingError) as err:
        framer.feed(data)
    assert err.value.check is check
    with pytest.raises(FramingError):  # and the framer stays dead
        framer.feed(encode_frame(b"\x00"))


def test_allow_with_the_same_set_keeps_it_and_a_new_set_applies() -> None:
    framer = Framer()
    allowed = framer.allowed_types
    framer.allow(allowed)
    assert framer.allowed_types == frozenset({PayloadType.EXI})
    framer.allow((0x8004,))
    assert framer.feed(encode_frame(b"\x01", 0x8004))[0].payload_type == 0x8004
    with pytest.raises(FramingError) as err:
        framer.feed(encode_frame(b"\x01", PayloadType.EXI))
    assert err.value.check is HeaderCheck.PAYLOAD_TYPE
