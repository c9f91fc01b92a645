"""The encoder's caches (issue 17) give exactly the bytes and errors the plain encoder
gives, also when they answer from the cache.

The generator puts an identity cache in front of the encoder of the types the charging
loop sends again and again (``_e_X`` in front of the plain ``_eu_X``: headers, statuses,
meter info, loop responses, V2G_Message / Body); the writer keeps the bits of short
ASCII strings (``BitWriter.string``) and builds long unsigned integers as one integer.
A window encoder (``_ew_X``) keeps a value's bits when it encodes the same value a
second time in a row (a loop response is new every message when its values change:
keeping each one cost more than it saved).  Here every cached type is encoded both ways
(the cache swapped out for the plain encoder) on the public vectors, on random valid
instances and messages (three times: the third from the cache), on invalid field values
(the same error at the same offset), and a value holding a mutable octet string is never
answered from the cache.
"""

from __future__ import annotations

import copy
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
from secc.codec.exi import bits, runtime
from secc.codec.exi.bits import BitWriter

from . import strategies
from .test_fast_paths import _all_vectors

SCHEMAS = list(codec.SCHEMAS)


def cached(mod: ModuleType) -> list[str]:
    """The type keys with an identity cache in front of their encoder in this module."""
    return sorted(
        name[4:]
        for name, obj in vars(mod).items()
        if name.startswith("_eu_") and getattr(obj, "__module__", None) == mod.__name__
    )


class _NoStrings(dict[Any, Any]):
    """A cache that never keeps anything (the plain path every time)."""

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


@contextmanager
def plain() -> Iterator[None]:
    """Every cached encoder swapped for the plain one (in every module that holds it,
    looked up as module globals at call time), no string cache and no cache of whole
    streams (``codec.encode``)."""
    saved: list[tuple[Any, str, Any]] = []
    mods = [codec.schema_module(s) for s in SCHEMAS]
    for mod in mods:
        for key in cached(mod):
            fast = getattr(mod, f"_e_{key}")
            slow = getattr(mod, f"_eu_{key}")
            for m in mods:
                if vars(m).get(f"_e_{key}") is fast:
                    saved.append((m, f"_e_{key}", fast))
                    setattr(m, f"_e_{key}", slow)
    saved.append((bits, "_STRINGS", bits._STRINGS))
    bits._STRINGS = _NoStrings()
    saved.append((codec, "_STREAMS", codec._STREAMS))
    codec._STREAMS = _NoStrings()  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for m, name, fast in saved:
            setattr(m, name, fast)


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", fn())
    except codec.CodecError as e:
        return ("error", str(e))


def three_ways(fn: Callable[[], Any]) -> tuple[Any, Any, Any]:
    """Plain, cached (the first time: seen; the second: kept, the same outcome), cached
    again (answered from the caches)."""
    with plain():
        slow = outcome(fn)
    first = outcome(fn)
    assert outcome(fn) == first
    return slow, first, outcome(fn)


def test_the_loop_types_are_cached() -> None:
    iso2 = codec.schema_module("iso2")
    for key in ("CurrentDemandRes", "DC_EVSEStatus", "MeterInfo", "MessageHeader"):
        assert key in cached(iso2), key
    assert "DC_ChargeLoopRes" in cached(codec.schema_module("iso20-dc"))
    assert "CurrentDemandRes" in cached(codec.schema_module("din"))


def test_public_vectors_encode_the_same_with_and_without_caches() -> None:
    found = [(s, d) for s, d, fragment in _all_vectors() if not fragment]
    if not found:
        pytest.skip("the vectors in ../shared are absent")
    for schema, data in found:
        try:
            value = codec.decode(data, schema)
        except codec.CodecError:
            continue
        slow, fast, again = three_ways(lambda v=value, s=schema: codec.encode(v, s))
        assert slow == fast == again, (schema, data.hex())
        assert fast == three_ways(lambda v=value: codec.encode(v))[1]  # the class's root


def _cases() -> list[tuple[str, str]]:
    return [(s, key) for s in SCHEMAS for key in cached(codec.schema_module(s))]


@pytest.mark.parametrize(("schema", "key"), _cases())
def test_random_instances_encode_the_same_with_and_without_caches(schema: str, key: str) -> None:
    mod = codec.schema_module(schema)
    cls = getattr(mod, key)
    try:
        strat = strategies.instances(schema, cls, frozenset({mod.KeyInfo}))
    except ValueError:
        pytest.skip(f"{key}: the strategies cannot build it alone")

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strat, st.data(), st.integers(0, 7))
    def check(value: Any, data: st.DataObject, lead: int) -> None:
        def enc(v: Any = value) -> bytes:
            w = BitWriter()
            w.bits(0b1011011 >> (7 - lead), lead)  # the value after 0..7 bits of others
            getattr(mod, f"_e_{key}")(w, v)
            w.bits(1, 1)
            return w.getvalue()

        slow, fast, again = three_ways(enc)
        assert slow == fast == again
        # an invalid value in one field: the same error, at the same offset, both ways
        names = strategies.field_names(cls)
        if not names:  # an empty type (DIN EVSEStatus)
            return
        name = data.draw(st.sampled_from(names))
        bad = data.draw(st.sampled_from([None, -(10**6), 10**6, "x", True, 2.5, b"\x00" * 70]))
        broken = object.__new__(cls)
        for n in names:
            object.__setattr__(broken, n, bad if n == name else getattr(value, n))
        bad_slow, bad_fast, bad_again = three_ways(lambda: enc(broken))
        assert bad_slow == bad_fast == bad_again

    check()


@pytest.mark.parametrize("schema", ["iso2", "din"])
def test_random_messages_encode_the_same_with_and_without_caches(schema: str) -> None:
    mod = codec.schema_module(schema)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategies.messages(schema, mod.CurrentDemandRes))
    def check(msg: Any) -> None:
        slow, fast, again = three_ways(lambda: codec.encode(msg))
        assert slow == fast == again
        assert fast[0] == "ok"
        assert codec.decode(fast[1], schema) == msg

    check()


@pytest.mark.parametrize("cls_name", ["DC_ChargeLoopRes"])
def test_random_iso20_loop_responses_encode_the_same_with_and_without_caches(
    cls_name: str,
) -> None:
    mod = codec.schema_module("iso20-dc")

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategies.iso20_message("iso20-dc", getattr(mod, cls_name)))
    def check(msg: Any) -> None:
        slow, fast, again = three_ways(lambda: codec.encode(msg, "iso20-dc"))
        assert slow == fast == again
        assert fast[0] == "ok"
        assert codec.decode(fast[1], "iso20-dc") == msg

    check()


def test_a_mutable_octet_string_is_never_answered_from_the_cache() -> None:
    iso2 = codec.schema_module("iso2")
    sid = bytearray(b"\x01" * 8)
    msg = iso2.V2G_Message(
        header=iso2.MessageHeader(session_id=sid),  # type: ignore[arg-type]
        body=iso2.Body(body_element=iso2.SessionStopRes(response_code=iso2.ResponseCode.OK)),
    )
    first = codec.encode(msg)
    sid[:] = b"\x02" * 8
    second = codec.encode(msg)
    assert first != second
    assert codec.decode(second, "iso2").header.session_id == b"\x02" * 8


def test_an_equal_value_built_again_gives_the_same_bytes() -> None:
    iso2 = codec.schema_module("iso2")
    status = iso2.DC_EVSEStatus(
        notification_max_delay=3,
        evse_notification=iso2.EVSENotification.None_,
        evse_isolation_status=iso2.IsolationLevel.Valid,
        evse_status_code=iso2.DC_EVSEStatusCode.EVSE_Ready,
    )
    w1, w2 = BitWriter(), BitWriter()
    iso2._e_DC_EVSEStatus(w1, status)
    iso2._e_DC_EVSEStatus(w2, dataclasses.replace(status, notification_max_delay=4))
    assert w1.getvalue() != w2.getvalue()
    w3 = BitWriter()
    iso2._eu_DC_EVSEStatus(w3, dataclasses.replace(status))
    assert w3.getvalue() == w1.getvalue()


def _reference_uint(value: int) -> bytes:
    """EXI Unsigned Integer as octets: 7-bit groups, least significant first."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def test_unsigned_integers_of_every_length() -> None:
    rng = random.Random(17)
    values = [0, 0x7F, 0x80, 0x3FFF, 0x4000, 0x1FFFFF, 0x200000, 2**63 - 1, 2**160 + 5]
    values += [rng.getrandbits(rng.randint(1, 200)) for _ in range(300)]
    for v in values:
        for lead in range(8):
            w = BitWriter()
            w.bits(0, lead)
            w.uint(v)
            ref = BitWriter()
            ref.bits(0, lead)
            ref.raw(_reference_uint(v))
            assert w.getvalue() == ref.getvalue(), (v, lead)


def test_window_unsigned_integers_of_every_length() -> None:
    """The window encoders' ``wuint`` / ``winteger`` (up to five 7-bit groups without a
    loop) give the reference octets after any bits, at every group-count boundary."""
    rng = random.Random(18)
    values = [0, 0x7F, 0x80, 0x3FFF, 0x4000, 0x1FFFFF, 0x200000, 0xFFFFFFF, 0x10000000]
    values += [0x7FFFFFFFF, 0x800000000, 1_700_000_000, 2**63 - 1, 2**64 - 1, 2**160 + 5]
    values += [rng.getrandbits(rng.randint(1, 70)) for _ in range(500)]
    for v in values:
        for lead in range(8):
            head = (1 << lead) | (0b1011011 & ((1 << lead) - 1))
            ref = int.from_bytes(_reference_uint(v), "big")
            n = len(_reference_uint(v)) * 8
            assert runtime.wuint(head, v) == (head << n) | ref, (v, lead)
            for s in (v, -v - 1):
                sign, mag = (1, -s - 1) if s < 0 else (0, s)
                want = (((head << 1) | sign) << n) | int.from_bytes(_reference_uint(mag), "big")
                assert runtime.winteger(head, s) == want, (s, lead)


def test_strings_from_the_cache() -> None:
    words = ["", "a", "DE*ABC*E1234567*1", "x" * 15, "y" * 16, "z" * 63, "w" * 64, "µ"]
    for lead in range(8):
        for word in words:
            outs = []
            saved = bits._STRINGS
            try:
                for cache in (_NoStrings(), {}):  # plain; kept, then from the cache
                    bits._STRINGS = cache
                    w = BitWriter()
                    w.bits(1, lead)
                    w.string(word)
                    w.string(word)
                    outs.append(w.getvalue())
            finally:
                bits._STRINGS = saved
            assert outs[0] == outs[1], (word, lead)


def test_a_lenient_encoding_is_not_answered_to_a_strict_encoder() -> None:
    """A value outside its facets written by a lenient writer is not kept: the strict
    encoder refuses it afterwards as before (the caches hold only strict encodings)."""
    from secc.codec.exi.facets import LenientWriter

    iso2 = codec.schema_module("iso2")
    meter = iso2.MeterInfo(meter_id="M1", meter_status=40000)  # a short: up to 32767
    w = LenientWriter()
    iso2._e_MeterInfo(w, meter)
    assert w.getvalue()
    with pytest.raises(codec.EncodeError, match="MeterStatus"):
        iso2._e_MeterInfo(BitWriter(), meter)
    with pytest.raises(codec.EncodeError):
        iso2._e_MeterInfo(BitWriter(), meter)


def _loop_message(mod: ModuleType, reading: int) -> Any:
    base = strategies.minimal("iso2", mod.CurrentDemandRes)
    meter = mod.MeterInfo(meter_id="M1", meter_reading=reading, t_meter=1_700_000_000)
    return mod.V2G_Message(
        header=mod.MessageHeader(session_id=bytes(8)),
        body=mod.Body(body_element=dataclasses.replace(base, meter_info=meter)),
    )


def test_a_value_is_kept_when_encoded_a_second_time() -> None:
    """Encoded once, a loop response and its message are not kept (nor is a whole
    stream); encoded again, every level is kept and the third encoding is answered from
    the caches with the same bytes."""
    iso2 = codec.schema_module("iso2")
    msg = _loop_message(iso2, 12345)
    body = msg.body.body_element
    caches = [
        (iso2._EC_V2G_Message, msg),
        (iso2._EC_Body, msg.body),
        (iso2._EC_CurrentDemandRes, body),
        (iso2._EC_MeterInfo, body.meter_info),
    ]
    with plain():  # (an equal copy: the plain encoder's sub-calls may keep theirs)
        want = codec.encode(copy.deepcopy(msg))
    assert codec.encode(msg) == want
    assert all(id(v) not in cache for cache, v in caches)
    assert id(msg) not in codec._STREAMS
    assert codec.encode(msg) == want
    assert all(cache[id(v)][0] is v for cache, v in caches)
    assert codec.encode(msg) == want


def test_new_values_every_message_are_not_kept() -> None:
    """The loop with values changing: a new response, message and meter info each time
    (each encoded once) leaves the identity caches as they were."""
    iso2 = codec.schema_module("iso2")
    caches = (iso2._EC_V2G_Message, iso2._EC_Body, iso2._EC_CurrentDemandRes, iso2._EC_MeterInfo)
    codec.encode(_loop_message(iso2, 0))
    before = [dict(c) for c in caches]  # (what other tests left)
    for reading in range(1, 300):
        msg = _loop_message(iso2, reading)
        with plain():
            want = codec.encode(copy.deepcopy(msg))
        assert codec.encode(msg) == want
    assert [dict(c) for c in caches] == before
