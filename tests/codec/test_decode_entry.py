"""codec.decode's usual call (a known schema name, a bytes stream with the EXI header)
decodes without _reader / _document / schema_module (issue 17); it gives exactly what
the full path gives: the same value, or the same error with the same message and offset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secc import codec

from . import strategies


def _outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", fn())
    except codec.CodecError as e:
        return ("error", (type(e).__name__, str(e)))
    except (ValueError, TypeError) as e:
        return ("raised", (type(e).__name__, str(e)))


def _both(data: Any, schema: str, strict: bool) -> tuple[tuple[str, Any], tuple[str, Any]]:
    """(full path: no schema known, known schema: the short path)."""
    codec._DOC_ROOTS.clear()
    full = _outcome(lambda: codec.decode(data, schema, strict=strict))
    codec.decode(codec.encode(_a_message(schema)), schema)  # the schema is known now
    assert schema in codec._DOC_ROOTS
    short = _outcome(lambda: codec.decode(data, schema, strict=strict))
    return full, short


def _a_message(schema: str) -> Any:
    mod = codec.schema_module(schema)
    if schema in ("iso2", "din"):
        return mod.V2G_Message(
            header=mod.MessageHeader(session_id=bytes(8)),
            body=mod.Body(body_element=strategies.minimal(schema, mod.CurrentDemandReq)),
        )
    if schema == "apphand":
        return strategies.minimal(schema, mod.supportedAppProtocolReq)
    return strategies.minimal(schema, mod.DC_ChargeLoopReq)


SCHEMAS = ["iso2", "din", "apphand", "iso20-dc"]


@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize("strict", [False, True])
def test_edge_streams_decode_the_same_both_ways(schema: str, strict: bool) -> None:
    good = codec.encode(_a_message(schema))
    cases: list[Any] = [
        good,
        bytearray(good),
        memoryview(good),
        good + b"\x00",
        good + b"\x01",
        b"",
        b"\x80",
        b"\x81" + good[1:],
        good[:-1],
        b"\x80\xff\xff\xff",
        "not bytes",
    ]
    for data in cases:
        full, short = _both(data, schema, strict)
        assert full == short, (schema, data)


def test_an_unknown_schema_name_is_refused_both_ways() -> None:
    codec._DOC_ROOTS.clear()
    with pytest.raises(ValueError, match="unknown schema"):
        codec.decode(codec.encode(_a_message("iso2")), "iso-3")
    assert "iso-3" not in codec._DOC_ROOTS


@pytest.mark.parametrize("schema", ["iso2", "din"])
def test_random_and_flipped_streams_decode_the_same_both_ways(schema: str) -> None:
    mod = codec.schema_module(schema)

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategies.messages(schema, mod.CurrentDemandReq), st.data())
    def check(value: Any, data: st.DataObject) -> None:
        try:
            stream = codec.encode(value)
        except codec.CodecError:
            return
        flipped = bytearray(stream)
        bit = data.draw(st.integers(0, len(stream) * 8 - 1))
        flipped[bit >> 3] ^= 0x80 >> (bit & 7)
        for one in (stream, bytes(flipped), stream[: data.draw(st.integers(1, len(stream)))]):
            for strict in (False, True):
                full, short = _both(one, schema, strict)
                assert full == short

    check()
