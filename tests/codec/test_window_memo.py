"""The per-field memo of the loop responses' window encoders (issue 17) changes no bit.

``_ew_X`` of a loop response (and of its MeterInfo) keeps, per string field (the EVSEID,
the meter's id: encoded in full each time before), the last value written there, the
state before it and its bits (``_M_X``); the same object after the same state is one
shift.  Here sequences of
responses, each derived from the one before by changing one field (a new value, an
optional appearing or disappearing, an object taken from another field, an equal but not
identical copy, an invalid value, a MeterInfo with one part changed, a bytearray changed
in place), are encoded with the memo as it stands after the previous ones and by the
generic encoder: the same bytes or the same error every time.
"""

from __future__ import annotations

import copy
import dataclasses
from functools import partial
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secc import codec
from secc.codec.exi.runtime import EncodeWindowMiss

from . import strategies
from .test_window import both, generic, generic_bits

# the responses whose window encoders keep a memo, of their own string fields or of their
# MeterInfo's: (schema, class name, in a V2G_Message); DIN's CurrentDemandRes has neither
MEMO = [
    ("iso2", "CurrentDemandRes", True),
    ("iso2", "ChargingStatusRes", True),
    ("din", "ChargingStatusRes", True),
    ("iso20-dc", "DC_ChargeLoopRes", False),
    ("iso20-ac", "AC_ChargeLoopRes", False),
]
BAD = [-(10**6), 10**30, "x", "\x01", True, 2.5, b"\x00", bytearray(b"OK"), ["OK"]]


def _with(value: Any, name: str, x: Any) -> Any:
    """``value`` with field ``name`` set to ``x`` (also an invalid one: no __init__)."""
    new = object.__new__(type(value))
    for f in dataclasses.fields(value):
        object.__setattr__(new, f.name, x if f.name == name else getattr(value, f.name))
    return new


def _whole(mod: ModuleType, header: Any, body: Any, wrapped: bool) -> Any:
    if wrapped:
        return mod.V2G_Message(header=header, body=mod.Body(body_element=body))
    return body


def _memo_tables(mod: ModuleType) -> list[list[Any]]:
    return [t for k, t in vars(mod).items() if k.startswith("_M_") and isinstance(t, list)]


def test_the_loop_responses_keep_a_memo() -> None:
    """The string fields (an EVSEID, a meter's id) are kept: the responses' MeterInfo in
    every schema, the ISO-2 responses' EVSEID."""
    for schema, _name, _wrapped in MEMO:
        mod = codec.schema_module(schema)
        assert "_M_MeterInfo" in mod._ew_MeterInfo.__code__.co_names, schema
    iso2 = codec.schema_module("iso2")
    for name in ("CurrentDemandRes", "ChargingStatusRes"):
        assert f"_M_{name}" in getattr(iso2, f"_ew_{name}").__code__.co_names


def _step(
    data: st.DataObject, mod: ModuleType, body: Any, pool: list[Any], fields: list[str]
) -> Any:
    """The next response: ``body`` with one field changed."""
    name = data.draw(st.sampled_from(fields))
    cur = getattr(body, name)
    how = data.draw(
        st.sampled_from(["pool", "other field", "equal copy", "none", "bad", "meter part"])
    )
    if how == "pool":  # a new value (or an optional appearing / disappearing)
        return _with(body, name, getattr(data.draw(st.sampled_from(pool)), name))
    if how == "other field":  # the same object in another position
        return _with(body, name, getattr(body, data.draw(st.sampled_from(fields))))
    if how == "equal copy":
        return _with(body, name, copy.copy(cur))
    if how == "none":
        return _with(body, name, None)
    if how == "bad":
        return _with(body, name, data.draw(st.sampled_from(BAD)))
    meter = getattr(body, "meter_info", None)
    if type(meter).__name__ != "MeterInfo":  # (absent, or another field's object)
        return _with(body, name, copy.copy(cur))
    part = data.draw(st.sampled_from([f.name for f in dataclasses.fields(meter)]))
    other = getattr(data.draw(st.sampled_from(pool)), "meter_info", None)
    same = type(other) is type(meter) and data.draw(st.booleans())
    x = getattr(other, part) if same else None
    return _with(body, "meter_info", _with(meter, part, x))


@pytest.mark.parametrize(("schema", "name", "wrapped"), MEMO)
def test_sequences_encode_as_the_generic_encoder(schema: str, name: str, wrapped: bool) -> None:
    """Responses changing one field at a time: codec.encode (memo as the previous calls
    left it) gives the generic encoder's bytes or error, and the window encoder alone,
    when it takes the response, the generic bits."""
    mod = codec.schema_module(schema)
    cls = getattr(mod, name)
    fields = strategies.field_names(cls)
    bodies = strategies.instances(schema, cls, frozenset({mod.KeyInfo}))
    header = mod.MessageHeader(session_id=bytes.fromhex("0102030405060708")) if wrapped else None
    taken = {"enc": 0}

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(bodies, min_size=2, max_size=4), st.data())
    def check(pool: list[Any], data: st.DataObject) -> None:
        body = pool[0]
        for _ in range(data.draw(st.integers(1, 8))):
            body = _step(data, mod, body, pool, fields)
            whole = _whole(mod, header, body, wrapped)
            fast, slow = both(partial(codec.encode, whole))
            assert fast == slow
            try:
                bits = getattr(mod, f"_ew_{name}")(body)
            except (EncodeWindowMiss, TypeError, ValueError, AttributeError):
                continue
            taken["enc"] += 1
            with generic():
                assert bits == generic_bits(mod, body)

    check()
    assert taken["enc"] >= 1, taken


@pytest.mark.parametrize(("schema", "name", "wrapped"), MEMO)
def test_unchanged_fields_are_taken_from_the_memo(schema: str, name: str, wrapped: bool) -> None:
    """The usual loop: a response whose fields are the previous one's objects but for
    the measured values; the unchanged fields' memo entries stay (a hit, no new entry),
    and the stream is the generic encoder's."""
    mod = codec.schema_module(schema)
    cls = getattr(mod, name)
    base = strategies.minimal(schema, cls)
    meter = strategies.minimal(schema, mod.MeterInfo)
    base = dataclasses.replace(base, meter_info=dataclasses.replace(meter, meter_id="METER-1"))
    header = mod.MessageHeader(session_id=bytes.fromhex("0102030405060708")) if wrapped else None
    tables = _memo_tables(mod)
    first = _whole(mod, header, base, wrapped)
    fast, slow = both(partial(codec.encode, first))
    assert fast == slow
    # a new response object and MeterInfo, every field the same object
    second = dataclasses.replace(base, meter_info=copy.copy(base.meter_info))
    codec.encode(_whole(mod, header, second, wrapped))
    kept = [list(t) for t in tables]
    assert any(e[0] is not mod._NOMEMO for t in kept for e in t)
    third = dataclasses.replace(base, meter_info=copy.copy(base.meter_info))
    whole = _whole(mod, header, third, wrapped)
    fast, slow = both(lambda: codec.encode(whole))
    assert fast == slow
    for before, after in zip(kept, tables, strict=True):
        assert all(a is b for a, b in zip(before, after, strict=True))


def test_a_bytearray_changed_in_place_is_encoded_again() -> None:
    """An octet string given as a bytearray is never kept: changed in place between two
    responses, the second stream has the new octets."""
    mod = codec.schema_module("iso2")
    base = strategies.minimal("iso2", mod.CurrentDemandRes)
    sig = bytearray(b"\x01\x02")
    meter = mod.MeterInfo(meter_id="M1", meter_reading=5, sig_meter_reading=sig)
    header = mod.MessageHeader(session_id=bytes.fromhex("0102030405060708"))
    outs = []
    for octet in (3, 4):
        sig[0] = octet
        body = dataclasses.replace(base, meter_info=meter)
        whole = _whole(mod, header, body, True)
        fast, slow = both(partial(codec.encode, whole))
        assert fast == slow
        outs.append(fast)
    assert outs[0] != outs[1]


def test_memo_entries_are_small() -> None:
    """One tuple per memoised field, a handful of tables per module."""
    for schema in {s for s, _n, _w in MEMO}:
        tables = _memo_tables(codec.schema_module(schema))
        assert 1 <= len(tables) <= 4, schema
        assert all(len(t) <= 16 for t in tables), schema


def test_the_same_string_after_other_optionals_is_encoded_again() -> None:
    """The EVSEID's event code depends on which optional limits came before it: the same
    EVSEID object after a limit appears or disappears is not taken from the memo."""
    mod = codec.schema_module("iso2")
    base = strategies.minimal("iso2", mod.CurrentDemandRes)
    pv = mod.PhysicalValue(multiplier=0, unit=mod.UnitSymbol.V, value=400)
    evseid = "DE*ABC*E1234567*1"
    header = mod.MessageHeader(session_id=bytes.fromhex("0102030405060708"))
    limits = [
        "evse_maximum_voltage_limit",
        "evse_maximum_current_limit",
        "evse_maximum_power_limit",
    ]
    seen = set()
    for mask in (0, 7, 1, 0, 2, 6, 4, 3, 5, 7, 0):  # every subset, in changing order
        body = dataclasses.replace(
            base,
            evseid=evseid,
            **{n: pv if mask & (1 << i) else None for i, n in enumerate(limits)},
        )
        taken = mod._ew_CurrentDemandRes(body)  # the window encoder takes it itself
        with generic():
            assert taken == generic_bits(mod, body), mask
        whole = _whole(mod, header, body, True)
        fast, slow = both(partial(codec.encode, whole))
        assert fast == slow, mask
        seen.add(fast)
    assert len(seen) == 8
    assert any(e[0] is evseid for e in mod._M_CurrentDemandRes)
