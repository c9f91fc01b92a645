"""The bit writer and reader against a plain bit-string model, over random operation
sequences (small and large: the writer flushes its pending integer at 4096 bits)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secc.codec import DecodeError, EncodeError
from secc.codec.exi.bits import BitReader, BitWriter

from .strategies import CHARACTERS

ops = st.lists(
    st.one_of(
        st.tuples(st.just("bits"), st.integers(1, 40)).flatmap(
            lambda t: st.tuples(st.just("bits"), st.integers(0, (1 << t[1]) - 1), st.just(t[1]))
        ),
        st.tuples(st.just("uint"), st.integers(0, 2**170), st.just(0)),
        st.tuples(st.just("integer"), st.integers(-(2**100), 2**100), st.just(0)),
        st.tuples(st.just("raw"), st.binary(max_size=40), st.just(0)),
        st.tuples(st.just("raw"), st.binary(min_size=500, max_size=700), st.just(0)),
        st.tuples(st.just("string"), st.text(CHARACTERS, max_size=12), st.just(0)),
    ),
    max_size=60,
)


def _model_uint(v: int) -> str:
    out = ""
    while True:
        group = v & 0x7F
        v >>= 7
        out += format(group | (0x80 if v else 0), "08b")
        if not v:
            return out


def _model(op: str, value: object, n: int) -> str:
    if op == "bits":
        return format(value, f"0{n}b")
    if op == "uint":
        return _model_uint(value)  # type: ignore[arg-type]
    if op == "integer":
        v = value  # type: ignore[assignment]
        return "1" + _model_uint(-v - 1) if v < 0 else "0" + _model_uint(v)  # type: ignore[operator]
    if op == "raw":
        return "".join(format(b, "08b") for b in value)  # type: ignore[union-attr]
    s = value  # type: ignore[assignment]
    return _model_uint(len(s) + 2) + "".join(_model_uint(ord(c)) for c in s)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(ops)
def test_writer_matches_model_and_reader_reads_back(
    sequence: list[tuple[str, object, int]],
) -> None:
    w = BitWriter()
    expected = ""
    for op, value, n in sequence:
        if op == "bits":
            w.bits(value, n)  # type: ignore[arg-type]
        else:
            getattr(w, op)(value)
        expected += _model(op, value, n)
        assert w.bit_position == len(expected)
    data = w.getvalue()
    padded = expected + "0" * (-len(expected) % 8)
    assert "".join(format(b, "08b") for b in data) == padded
    r = BitReader(data)
    for op, value, n in sequence:
        if op == "bits":
            assert r.bits(n) == value
        elif op == "raw":
            assert r.raw(len(value)) == value  # type: ignore[arg-type]
        else:
            assert getattr(r, op)() == value
    assert r.pos == len(expected)


@pytest.mark.parametrize(
    "text", ["\x1b", "ab\x00", "x\x1f", "\x0b", "\u00e9\x08", "\ufffe", "\u20ac\uffff"]
)
def test_characters_outside_xml_1_0_are_refused_both_ways(text: str) -> None:
    """EXI strings carry XML character data: the C0 controls but TAB/LF/CR and
    U+FFFE/U+FFFF are not XML 1.0 Chars, on the ASCII path and the code-point path."""
    with pytest.raises(EncodeError, match=r"not an XML 1\.0 character"):
        BitWriter().string(text)
    # the same string written code point by code point, as a foreign encoder would
    w = BitWriter()
    w.uint(len(text) + 2)
    for ch in text:
        w.uint(ord(ch))
    with pytest.raises(DecodeError, match=r"U\+[0-9A-F]{4} in a string is not an XML 1\.0"):
        BitReader(w.getvalue()).string()


@pytest.mark.parametrize("text", ["\t\n\r", "\x7f\x85", "\ud7ff\ue000\ufffd", "\U0010ffff"])
def test_xml_characters_at_the_edges_pass(text: str) -> None:
    w = BitWriter()
    w.string(text)
    assert BitReader(w.getvalue()).string() == text
