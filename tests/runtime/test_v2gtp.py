"""secc.v2gtp: header codec and the incremental framer over any chunking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secc.v2gtp import (
    HEADER_LENGTH,
    Frame,
    Framer,
    FramingError,
    HeaderCheck,
    PayloadType,
    decode_header,
    encode_frame,
    encode_header,
    parse_datagram,
)


def test_header_layout_matches_the_standard() -> None:
    assert encode_header(PayloadType.EXI, 0x0102) == bytes.fromhex("01fe800100000102")
    assert encode_header(PayloadType.SDP_REQUEST, 2) == bytes.fromhex("01fe900000000002")
    assert encode_header(PayloadType.SDP_RESPONSE, 20) == bytes.fromhex("01fe900100000014")
    assert decode_header(bytes.fromhex("01fe800100000017")) == (0x8001, 0x17)


def test_encode_header_rejects_values_that_do_not_fit() -> None:
    with pytest.raises(ValueError):
        encode_header(0x10000, 0)
    with pytest.raises(ValueError):
        encode_header(PayloadType.EXI, 1 << 32)


@pytest.mark.parametrize(
    ("data", "check"),
    [
        (bytes.fromhex("02fe800100000001"), HeaderCheck.VERSION),
        (bytes.fromhex("01ff800100000001"), HeaderCheck.VERSION),
        (bytes.fromhex("01fe900000000001"), HeaderCheck.PAYLOAD_TYPE),  # SDP on the TCP stream
        (bytes.fromhex("01fe800200000001"), HeaderCheck.PAYLOAD_TYPE),  # reserved
        (bytes.fromhex("01fea00000000001"), HeaderCheck.PAYLOAD_TYPE),  # manufacturer specific
        (bytes.fromhex("01fe8001ffffffff"), HeaderCheck.PAYLOAD_LENGTH),
        (bytes.fromhex("01fe800100"), HeaderCheck.TRUNCATED),
    ],
)
def test_decode_header_names_the_failed_check(data: bytes, check: HeaderCheck) -> None:
    with pytest.raises(FramingError) as info:
        decode_header(data, max_payload=1000)
    assert info.value.check is check


def test_parse_datagram_requires_exact_length() -> None:
    good = encode_frame(b"\x00\x00", PayloadType.SDP_REQUEST)
    assert parse_datagram(good) == Frame(0x9000, b"\x00\x00")
    with pytest.raises(FramingError) as info:
        parse_datagram(good[:-1])
    assert info.value.check is HeaderCheck.TRUNCATED
    with pytest.raises(FramingError) as info:
        parse_datagram(good + b"\x00")
    assert info.value.check is HeaderCheck.TRAILING_DATA
    with pytest.raises(FramingError) as info:
        parse_datagram(encode_frame(b"\x00\x00", PayloadType.EXI))
    assert info.value.check is HeaderCheck.PAYLOAD_TYPE


def test_split_frames_are_reassembled_byte_by_byte() -> None:
    stream = encode_frame(b"hello") + encode_frame(b"") + encode_frame(b"world!")
    framer = Framer(max_payload=100)
    out: list[Frame] = []
    for i in range(len(stream)):
        out += framer.feed(stream[i : i + 1])
    assert [f.payload for f in out] == [b"hello", b"", b"world!"]
    assert framer.buffered == 0
    framer.close()


def test_coalesced_frames_come_out_of_one_feed() -> None:
    payloads = [bytes([i]) * i for i in range(1, 20)]
    framer = Framer(max_payload=100)
    frames = framer.feed(b"".join(encode_frame(p) for p in payloads))
    assert [f.payload for f in frames] == payloads
    assert all(f.payload_type == PayloadType.EXI for f in frames)


def test_oversized_length_fails_before_the_payload_arrives() -> None:
    framer = Framer(max_payload=64)
    header = encode_header(PayloadType.EXI, 65)
    assert framer.feed(header[:7]) == []
    with pytest.raises(FramingError) as info:
        framer.feed(header[7:])  # the 8th header byte completes the length field
    assert info.value.check is HeaderCheck.PAYLOAD_LENGTH
    assert framer.buffered == 0
    # a dead framer stays dead
    with pytest.raises(FramingError):
        framer.feed(b"x" * 65)
    assert framer.failed is info.value


def test_bad_version_is_reported_on_the_first_byte() -> None:
    framer = Framer()
    with pytest.raises(FramingError) as info:
        framer.feed(b"\x02")
    assert info.value.check is HeaderCheck.VERSION


def test_bad_type_is_reported_after_a_good_frame_in_the_same_chunk() -> None:
    framer = Framer()
    assert framer.feed(encode_frame(b"ok") + encode_frame(b"x", 0x9001)) == [Frame(0x8001, b"ok")]
    assert framer.failed is not None and framer.failed.check is HeaderCheck.PAYLOAD_TYPE
    with pytest.raises(FramingError) as info:
        framer.feed(b"")
    assert info.value is framer.failed


def test_maximum_payload_is_inclusive_and_zero_is_allowed() -> None:
    assert Framer(max_payload=3).feed(encode_frame(b"abc")) == [Frame(0x8001, b"abc")]
    assert Framer(max_payload=0).feed(encode_frame(b"")) == [Frame(0x8001, b"")]


@pytest.mark.parametrize("cut", [1, 7, 8, 9, 12])
def test_stream_ending_inside_a_frame_is_truncated(cut: int) -> None:
    framer = Framer()
    framer.feed(encode_frame(b"abcde")[:cut])
    with pytest.raises(FramingError) as info:
        framer.close()
    assert info.value.check is HeaderCheck.TRUNCATED


def _chunkings(data: bytes) -> st.SearchStrategy[list[bytes]]:
    cuts = st.lists(st.integers(0, len(data)), max_size=12).map(sorted)
    return cuts.map(lambda c: [data[a:b] for a, b in zip([0, *c], [*c, len(data)], strict=True)])


payload_lists = st.lists(st.binary(max_size=40), min_size=0, max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.data(), payload_lists)
def test_any_chunking_yields_the_same_frames(data: st.DataObject, payloads: list[bytes]) -> None:
    stream = b"".join(encode_frame(p) for p in payloads)
    chunks = data.draw(_chunkings(stream))
    framer = Framer(max_payload=40)
    out: list[Frame] = []
    for chunk in chunks:
        out += framer.feed(chunk)
        assert framer.buffered <= HEADER_LENGTH + 40
    framer.close()
    assert [f.payload for f in out] == payloads


@settings(max_examples=300, deadline=None)
@given(st.data(), payload_lists, st.binary(min_size=8, max_size=8))
def test_a_bad_header_anywhere_fails_with_a_framing_error(
    data: st.DataObject, payloads: list[bytes], header: bytes
) -> None:
    # good frames, then a random 8-byte header: either it is valid (a frame or a partial
    # frame) or FramingError names the check; never another exception
    stream = b"".join(encode_frame(p) for p in payloads) + header
    framer = Framer(max_payload=40)
    out: list[Frame] = []
    try:
        for chunk in data.draw(_chunkings(stream)):
            out += framer.feed(chunk)
            if framer.failed is not None:
                raise framer.failed
    except FramingError as exc:
        assert exc.check in {
            HeaderCheck.VERSION,
            HeaderCheck.PAYLOAD_TYPE,
            HeaderCheck.PAYLOAD_LENGTH,
        }
        good = header[:2] == b"\x01\xfe" and header[2:4] == b"\x80\x01"
        assert not good or int.from_bytes(header[4:], "big") > 40
    assert [f.payload for f in out][: len(payloads)] == payloads[: len(out)]
