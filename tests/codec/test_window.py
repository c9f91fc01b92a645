"""The window decoders and encoders of the charging loop's messages (issue 17) give
exactly what the generic grammar code gives.

``_dw_X`` decodes a type from the reader's whole-input integer with local shifts, and
``_ew_X`` encodes a value into its own small integer; the entry types' ``_d_X`` /
``_e_X`` try them first and run the generic code (``_dx_X`` / ``_eu_X``) on anything
they do not handle.  Here every entry is run both ways (the window functions swapped for
ones that always miss): on the public vectors, on property-generated loop messages, on
bit-flipped and cut streams (the same value, or the same error with the same message),
on invalid field values given to the encoder, and the window functions are shown to
decode and encode the loop's messages themselves (no miss) with the generic result.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secc import codec
from secc.codec.exi.bits import BitReader, BitWriter
from secc.codec.exi.runtime import EncodeWindowMiss, WindowMiss

from . import strategies
from .test_fast_paths import _all_vectors

SCHEMAS = list(codec.SCHEMAS)
# the loop's messages: (schema, class name, inside a V2G_Message)
LOOP = [
    ("iso2", "CurrentDemandReq", True),
    ("iso2", "CurrentDemandRes", True),
    ("iso2", "ChargingStatusReq", True),
    ("iso2", "ChargingStatusRes", True),
    ("din", "CurrentDemandReq", True),
    ("din", "CurrentDemandRes", True),
    ("iso20-dc", "DC_ChargeLoopReq", False),
    ("iso20-dc", "DC_ChargeLoopRes", False),
    ("iso20-ac", "AC_ChargeLoopReq", False),
    ("iso20-ac", "AC_ChargeLoopRes", False),
]


# invalid field values (an unhashable one among them)
BAD_VALUES = [None, -(10**6), 10**6, 10**30, "x", "\x01", True, 2.5, bytearray(b"OK")]


def _entries(mod: ModuleType, prefix: str) -> list[str]:
    """Entry types whose _d_X / _e_X try a window function first."""
    if prefix == "_dw_":
        return sorted(k[4:] for k in vars(mod) if k.startswith("_dx_"))
    return sorted(
        k[3:]
        for k, fn in vars(mod).items()
        if k.startswith("_e_")
        and f"_ew_{k[3:]}" in getattr(getattr(fn, "__code__", None), "co_names", ())
    )


def _dmiss(val: int, q: int) -> Any:
    raise WindowMiss


def _emiss(v: Any) -> Any:
    raise EncodeWindowMiss


@contextmanager
def generic() -> Iterator[None]:
    """Every entry's window decoder and encoder always misses (the generic code runs)."""
    saved: list[tuple[ModuleType, str, Any]] = []
    for schema in SCHEMAS:
        mod = codec.schema_module(schema)
        for prefix, stub in (("_dw_", _dmiss), ("_ew_", _emiss)):
            for key in _entries(mod, prefix):
                saved.append((mod, prefix + key, getattr(mod, prefix + key)))
                setattr(mod, prefix + key, stub)
    codec._STREAMS.clear()
    try:
        yield
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)
        codec._STREAMS.clear()


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", fn())
    except codec.CodecError as e:
        return ("error", str(e))


def both(fn: Callable[[], Any]) -> tuple[tuple[str, Any], tuple[str, Any]]:
    codec._STREAMS.clear()
    fast = outcome(fn)
    with generic():
        slow = outcome(fn)
    return fast, slow


def test_the_loop_messages_have_window_functions() -> None:
    for schema, name, wrapped in LOOP:
        mod = codec.schema_module(schema)
        assert hasattr(mod, f"_dw_{name}"), (schema, name)
        assert hasattr(mod, f"_ew_{name}"), (schema, name)
        entry = "V2G_Message" if wrapped else name
        assert entry in _entries(mod, "_dw_"), (schema, entry)
        if name.endswith("Res"):
            assert entry in _entries(mod, "_ew_"), (schema, entry)


def _loop_strategy(schema: str, name: str, wrapped: bool) -> st.SearchStrategy[Any]:
    mod = codec.schema_module(schema)
    cls = getattr(mod, name)
    if wrapped:
        return strategies.messages(schema, cls)
    return strategies.iso20_message(schema, cls)


def _window_decode(mod: ModuleType, data: bytes) -> tuple[Any, int]:
    """The entry's window decoder alone on a whole stream (its root event code read)."""
    r = BitReader(data, 8)
    code = r.bits(codec._code_width(len(mod.DOCUMENT) + 1))
    root = mod.DOCUMENT[code]
    value, q = getattr(mod, f"_dw_{root.cls.__name__}")(r.val, r.end - r.pos)
    return value, r.end - q


def _generic_decode(mod: ModuleType, data: bytes) -> tuple[Any, int]:
    r = BitReader(data, 8)
    code = r.bits(codec._code_width(len(mod.DOCUMENT) + 1))
    root = mod.DOCUMENT[code]
    name = root.cls.__name__
    fn = getattr(mod, f"_dx_{name}", None) or getattr(mod, f"_d_{name}")
    return fn(r), r.pos


def generic_bits(mod: ModuleType, value: Any) -> tuple[int, int]:
    """The generic encoder's bits for ``value`` (the octets it moved to the writer's
    buffer included: a long value flushes whole octets) and their number, as a window
    encoder returns them."""
    w = BitWriter()
    name = type(value).__name__
    fn = getattr(mod, f"_eu_{name}", None) or getattr(mod, f"_e_{name}")
    fn(w, value)
    n = w.acc.bit_length() - 1
    return (int.from_bytes(w.buf, "big") << n) | (w.acc ^ (1 << n)), len(w.buf) * 8 + n


@pytest.mark.parametrize(("schema", "name", "wrapped"), LOOP)
def test_window_functions_decode_and_encode_the_loop_messages(
    schema: str, name: str, wrapped: bool
) -> None:
    """Random valid loop messages whose strings are ASCII and whose integers are small
    (what the loop sends): the window decoder and encoder take them themselves and give
    the generic code's value, end position and bits."""
    mod = codec.schema_module(schema)
    taken = {"dec": 0, "enc": 0}

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_loop_strategy(schema, name, wrapped))
    def check(value: Any) -> None:
        data = outcome(lambda: codec.encode(value))
        if data[0] != "ok":
            return
        with generic():
            generic_value, generic_end = _generic_decode(mod, data[1])
            want_bits = generic_bits(mod, value)
        try:
            got, end = _window_decode(mod, data[1])
        except (WindowMiss, ValueError, IndexError):
            pass
        else:
            taken["dec"] += 1
            assert (got, end) == (generic_value, generic_end)
        try:
            bits = getattr(mod, f"_ew_{type(value).__name__}")(value)
        except EncodeWindowMiss:
            pass
        else:
            taken["enc"] += 1
            assert bits == want_bits

    check()
    # random messages are taken (others: non-ASCII strings, long values, a Signature)
    assert taken["dec"] >= 1, taken
    assert taken["enc"] >= 1, taken


@pytest.mark.parametrize(("schema", "name", "wrapped"), LOOP)
def test_window_functions_take_the_usual_loop_messages(
    schema: str, name: str, wrapped: bool
) -> None:
    """A loop message with its required fields and a plain header (what the loop sends
    every 50-250 ms) is decoded and encoded by the window functions themselves."""
    mod = codec.schema_module(schema)
    body = strategies.minimal(schema, getattr(mod, name))
    if wrapped:
        value = mod.V2G_Message(
            header=mod.MessageHeader(session_id=bytes.fromhex("0102030405060708")),
            body=mod.Body(body_element=body),
        )
    else:
        value = body
    data = codec.encode(value)
    with generic():
        generic_value, generic_end = _generic_decode(mod, data)
        want_bits = generic_bits(mod, value)
    assert generic_value == value
    assert _window_decode(mod, data) == (generic_value, generic_end)
    assert getattr(mod, f"_ew_{type(value).__name__}")(value) == want_bits


@pytest.mark.parametrize(("schema", "name", "wrapped"), LOOP)
def test_loop_messages_decode_and_encode_the_same_both_ways(
    schema: str, name: str, wrapped: bool
) -> None:
    """Whole streams through codec.decode / encode / decode_checked with and without the
    window functions: the same value (and violations) or the same error; random valid
    messages, then each with an invalid value in one field for the encoder."""
    mod = codec.schema_module(schema)
    cls = getattr(mod, name)

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_loop_strategy(schema, name, wrapped), st.data())
    def check(value: Any, data: st.DataObject) -> None:
        enc_fast, enc_slow = both(lambda: codec.encode(value))
        assert enc_fast == enc_slow
        lenient = both(lambda: codec.encode(value, lenient=True))
        assert lenient[0] == lenient[1]
        if enc_fast[0] == "ok":
            stream = enc_fast[1]
            for strict in (False, True):
                dec = both(lambda s=strict: codec.decode(stream, schema, strict=s))
                assert dec[0] == dec[1] == ("ok", value)
            checked = both(lambda: codec.decode_checked(stream, schema))
            assert checked[0] == checked[1]
        # an invalid value in one field of the loop message: the same error both ways
        body = value.body.body_element if wrapped else value
        names = strategies.field_names(cls)
        if not names:  # an empty request (ISO-2 ChargingStatusReq)
            return
        field = data.draw(st.sampled_from(names))
        bad = data.draw(st.sampled_from(BAD_VALUES))
        broken = object.__new__(cls)
        for n in names:
            object.__setattr__(broken, n, bad if n == field else getattr(body, n))
        if wrapped:
            whole = mod.V2G_Message(header=value.header, body=mod.Body(body_element=broken))
        else:
            whole = broken
        bad_fast, bad_slow = both(lambda: codec.encode(whole))
        assert bad_fast == bad_slow
        lenient_fast, lenient_slow = both(lambda: codec.encode(whole, lenient=True))
        assert lenient_fast == lenient_slow

    check()


@pytest.mark.parametrize(("schema", "name", "wrapped"), LOOP)
def test_flipped_and_cut_streams_decode_the_same_both_ways(
    schema: str, name: str, wrapped: bool
) -> None:
    """A valid loop message with each bit flipped in turn, and cut short at each octet:
    the same value or the same error (message and offset) with and without the window
    decoders, strict and lenient (with the same violations)."""
    mod = codec.schema_module(schema)
    value = strategies.minimal(schema, getattr(mod, name))
    if wrapped:
        value = mod.V2G_Message(
            header=mod.MessageHeader(session_id=bytes.fromhex("0102030405060708")),
            body=mod.Body(body_element=value),
        )
    good = outcome(lambda: codec.encode(value))
    if good[0] != "ok":
        pytest.skip("the example drawn does not encode")
    stream: bytes = good[1]
    rng = random.Random(f"{schema}{name}")
    inputs = [stream, stream + bytes(2), stream + b"\x01"]
    for i in range(len(stream) * 8):
        flipped = bytearray(stream)
        flipped[i // 8] ^= 0x80 >> (i % 8)
        inputs.append(bytes(flipped))
    inputs += [stream[:i] for i in range(1, len(stream))]
    inputs += [bytes([0x80] + [rng.getrandbits(8) for _ in range(len(stream))]) for _ in range(50)]
    for data in inputs:
        for strict in (False, True):
            fast, slow = both(lambda d=data, s=strict: codec.decode(d, schema, strict=s))
            assert fast == slow, data.hex()
        fast, slow = both(lambda d=data: codec.decode_checked(d, schema))
        assert fast == slow, data.hex()


def test_public_vectors_decode_and_encode_the_same_both_ways() -> None:
    """The public vectors (ISO-2, DIN, -20) through the codec with and without the window
    functions; the loop's messages among them are taken by the window decoder."""
    found = _all_vectors()
    if not found:
        pytest.skip("the vectors in ../shared are absent")
    taken = 0
    for schema, data, fragment in found:
        if fragment:
            continue
        mod = codec.schema_module(schema)
        fast, slow = both(lambda d=data, s=schema: codec.decode(d, s))
        assert fast == slow, (schema, data.hex())
        if fast[0] != "ok":
            continue
        value = fast[1]
        enc = both(lambda v=value, s=schema: codec.encode(v, s))
        assert enc[0] == enc[1], (schema, data.hex())
        body = value.body.body_element if hasattr(value, "body") else value
        if any(type(body).__name__ == n and schema == s for s, n, _ in LOOP):
            try:
                got, _end = _window_decode(mod, data)
            except (WindowMiss, ValueError, IndexError):
                continue
            assert got == value
            taken += 1
    assert taken > 0


@pytest.mark.parametrize("bad", [bytearray(b"OK"), ["OK"], {"OK": 1}])
def test_an_unhashable_enumeration_value_is_an_encode_error(bad: Any) -> None:
    """An unhashable value (a bytearray, a list) in an enumeration field is refused with
    the codec's EncodeError naming the field, as any other value that is not one of the
    enumeration's, by the window, the fused and the generic encoders alike."""
    iso2 = codec.schema_module("iso2")
    body = strategies.minimal("iso2", iso2.CurrentDemandRes)
    header = iso2.MessageHeader(session_id=bytes(8))
    pv = iso2.PhysicalValue(multiplier=0, unit=iso2.UnitSymbol.V, value=400)
    broken_pv = object.__new__(iso2.PhysicalValue)
    for name in ("multiplier", "unit", "value"):
        object.__setattr__(broken_pv, name, bad if name == "unit" else getattr(pv, name))
    cases = [
        (dataclasses.replace(body, response_code=bad), "ResponseCode"),  # window -> generic
        (dataclasses.replace(body, evse_present_voltage=broken_pv), "Unit"),  # fused type
    ]
    for broken, field in cases:
        msg = iso2.V2G_Message(header=header, body=iso2.Body(body_element=broken))
        fast, slow = both(lambda m=msg: codec.encode(m))
        assert fast == slow
        assert fast[0] == "error" and field in fast[1] and "is not a value of" in fast[1], fast
        with pytest.raises(codec.EncodeError, match=field):
            codec.encode(msg, lenient=True)
    # the fused encoder alone, and a -20 enumeration
    with pytest.raises(codec.EncodeError, match="Unit"):
        iso2._e_PhysicalValue(BitWriter(), broken_pv)
    dc = codec.schema_module("iso20-dc")
    res = strategies.minimal("iso20-dc", dc.DC_ChargeLoopRes)
    with pytest.raises(codec.EncodeError, match="ResponseCode"):
        codec.encode(dataclasses.replace(res, response_code=bad))
