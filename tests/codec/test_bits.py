"""The bit writer and reader against a plain bit-string model, over random operation
sequences (small and large: the writer flushes its pending integer at 4096 bits)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from secc.codec.exi.bits import BitReader, BitWriter

ops = st.lists(
    st.one_of(
        st.tuples(st.just("bits"), st.integers(1, 40)).flatmap(
            lambda t: st.tuples(st.just("bits"), st.integers(0, (1 << t[1]) - 1), st.just(t[1]))
        ),
        st.tuples(st.just("uint"), st.integers(0, 2**170), st.just(0)),
        st.tuples(st.just("integer"), st.integers(-(2**100), 2**100), st.just(0)),
        st.tuples(st.just("raw"), st.binary(max_size=40), st.just(0)),
        st.tuples(st.just("raw"), st.binary(min_size=500, max_size=700), st.just(0)),
        st.tuples(st.just("string"), st.text(max_size=12), st.just(0)),
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
