"""The run memo of the loop responses' window encoders (issue 17) changes no bit.

``_ew_X`` of a loop response (``codegen/window.py`` ``_ew_run``) keeps the value it
encoded last, its bits, where each field's bits start and the grammar state there
(``_R_X``); the next response's fields that are the same objects are taken from those
bits, a run of them in one shift, and only the others are encoded.  ``_ewp_X`` (the
plain window encoder) runs when nothing is kept or a field appears or disappears.
Here sequences of responses, each derived from the one before by changing one field (a
new value, one of another width, an optional appearing or disappearing, an object taken
from another field, an equal but not identical copy, an invalid value, a bytearray), are
encoded by ``_ew_X`` as the previous ones left its memo, by ``_ewp_X`` and by the
generic encoder, and through ``codec.encode`` with and without the window functions:
the same bits, bytes or error every time.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secc import codec
from secc.codec.exi.runtime import EncodeWindowMiss, wstarts

from . import strategies
from .test_window import both, generic, generic_bits
from .test_window_memo import _step, _whole, _with

# the responses with a run memo: (schema, class name, in a V2G_Message)
RUN = [
    ("iso2", "CurrentDemandRes", True),
    ("iso2", "ChargingStatusRes", True),
    ("din", "CurrentDemandRes", True),
    ("din", "ChargingStatusRes", True),
    ("iso20-dc", "DC_ChargeLoopRes", False),
    ("iso20-ac", "AC_ChargeLoopRes", False),
]
_MISS = (EncodeWindowMiss, TypeError, ValueError, AttributeError)


def _bits(fn: Any, value: Any) -> Any:
    try:
        return ("ok", fn(value))
    except _MISS as e:
        return ("miss", type(e).__name__)


def test_the_loop_responses_have_a_run_memo() -> None:
    for schema, name, _wrapped in RUN:
        mod = codec.schema_module(schema)
        assert f"_R_{name}" in getattr(mod, f"_ew_{name}").__code__.co_names, (schema, name)
        assert hasattr(mod, f"_ewp_{name}"), (schema, name)


@pytest.mark.parametrize(("schema", "name", "wrapped"), RUN)
def test_sequences_encode_as_the_plain_and_the_generic_encoder(
    schema: str, name: str, wrapped: bool
) -> None:
    """Responses changing one field at a time: ``_ew_X`` (its memo as the previous calls
    left it) gives ``_ewp_X``'s bits or miss, and the generic encoder's bits when it takes
    the value; ``codec.encode`` the generic stream or error."""
    mod = codec.schema_module(schema)
    cls = getattr(mod, name)
    fields = strategies.field_names(cls)
    bodies = strategies.instances(schema, cls, frozenset({mod.KeyInfo}))
    header = mod.MessageHeader(session_id=bytes.fromhex("0102030405060708")) if wrapped else None
    fast_fn = getattr(mod, f"_ew_{name}")
    plain_fn = getattr(mod, f"_ewp_{name}")
    taken = {"run": 0}

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(bodies, min_size=2, max_size=4), st.data())
    def check(pool: list[Any], data: st.DataObject) -> None:
        body = pool[0]
        _bits(fast_fn, body)  # kept (when it encodes)
        for _ in range(data.draw(st.integers(1, 10))):
            body = _step(data, mod, body, pool, fields)
            kept = getattr(mod, f"_R_{name}")[0]
            fast = _bits(fast_fn, body)
            if kept is not None and fast[0] == "ok":
                taken["run"] += 1
            plain = _bits(plain_fn, body)
            assert fast == plain
            if fast[0] == "ok":
                with generic():
                    assert fast[1] == generic_bits(mod, body)
            whole = _whole(mod, header, body, wrapped)
            enc_fast, enc_slow = both(partial(codec.encode, whole))
            assert enc_fast == enc_slow

    check()
    assert taken["run"] >= 1, taken


def _loop_response(mod: ModuleType, name: str, i: int) -> Any:
    """The usual loop's response ``i``: the measured values new objects, the rest the
    same objects as in response 0."""
    base = _BASES.get((mod.__name__, name))
    if base is None:
        base = _BASES[(mod.__name__, name)] = _usual(mod, name)
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(base):
        x = getattr(base, f.name)
        if f.name.startswith(("evse_present_", "present_")) and x is not None:
            changes[f.name] = _number(mod, x, i)
    return dataclasses.replace(base, **changes)


_BASES: dict[tuple[str, str], Any] = {}


def _usual(mod: ModuleType, name: str) -> Any:
    schema = next(s for s, n, _w in RUN if n == name and codec.schema_module(s) is mod)
    base = strategies.minimal(schema, getattr(mod, name))
    if hasattr(mod, "PhysicalValue"):  # -2, DIN
        number = mod.PhysicalValue(multiplier=0, unit=mod.UnitSymbol.V, value=1)
    else:
        number = mod.RationalNumber(exponent=0, value=1)
    for f in dataclasses.fields(base):
        if f.name.startswith(("evse_present_", "present_")) and getattr(base, f.name) is None:
            base = dataclasses.replace(base, **{f.name: number})
    return base


def _number(mod: ModuleType, x: Any, i: int) -> Any:
    """A new object for a measured value: i's value, crossing a 7-bit-group boundary
    (another width) now and then."""
    value = (i * 37) % 300
    return dataclasses.replace(x, value=value)


@pytest.mark.parametrize(("schema", "name", "wrapped"), RUN)
def test_the_usual_loop_is_answered_by_the_run_memo(schema: str, name: str, wrapped: bool) -> None:
    """Responses whose measured values are new objects (some of another width) and the
    rest the previous one's: ``_ew_X`` encodes them without ``_ewp_X`` after the first,
    with the generic encoder's bits and ``codec.encode``'s generic stream."""
    mod = codec.schema_module(schema)
    fast_fn = getattr(mod, f"_ew_{name}")
    calls = {"plain": 0}
    real = getattr(mod, f"_ewp_{name}")

    def counting(v: Any) -> Any:
        calls["plain"] += 1
        return real(v)

    header = mod.MessageHeader(session_id=bytes.fromhex("0102030405060708")) if wrapped else None
    fast_fn(_loop_response(mod, name, 0))
    setattr(mod, f"_ewp_{name}", counting)
    try:
        for i in range(1, 40):
            body = _loop_response(mod, name, i)
            got = fast_fn(body)
            with generic():
                assert got == generic_bits(mod, body), i
            enc_fast, enc_slow = both(partial(codec.encode, _whole(mod, header, body, wrapped)))
            assert enc_fast == enc_slow
    finally:
        setattr(mod, f"_ewp_{name}", real)
    assert calls["plain"] == 0


def test_an_optional_appearing_goes_to_the_plain_encoder() -> None:
    """A limit appearing or disappearing changes the event codes after it: the plain
    encoder answers, with the generic bits, and keeps the new starts."""
    mod = codec.schema_module("iso2")
    base = _usual(mod, "CurrentDemandRes")
    pv = mod.PhysicalValue(multiplier=0, unit=mod.UnitSymbol.W, value=200)
    for limit in (None, pv, None, pv, pv, None):
        body = dataclasses.replace(base, evse_maximum_power_limit=limit, evseid="DE*A*E1")
        got = mod._ew_CurrentDemandRes(body)
        with generic():
            assert got == generic_bits(mod, body)


def test_a_bytearray_is_not_kept() -> None:
    """An octet string given as a bytearray may change in place: a response holding one
    leaves no run memo, and the one after it is encoded with its new octets."""
    mod = codec.schema_module("iso20-dc")
    base = strategies.minimal("iso20-dc", mod.DC_ChargeLoopRes)
    sid = bytearray(b"\x01" * 8)
    header = _with(base.header, "session_id", sid)
    body = dataclasses.replace(base, header=header)
    outs = []
    for octet in (2, 3):
        sid[0] = octet
        fast, slow = both(partial(codec.encode, body))
        assert fast == slow
        outs.append(fast)
    assert outs[0] != outs[1]


def test_wstarts_moves_the_starts_after_each_changed_field() -> None:
    assert wstarts((0, 8, 20, 30, 41), {}) == (0, 8, 20, 30, 41)
    assert wstarts((0, 8, 20, 30, 41), {2: 8}) == (0, 8, 28, 38, 49)
    assert wstarts((0, 8, 20, 30, 41), {1: -3, 4: 8}) == (0, 5, 17, 27, 46)
