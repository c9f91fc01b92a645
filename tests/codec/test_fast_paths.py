"""The fused fast paths (issue 17) give exactly what the generic grammar code gives,
also when they answer from their caches (decoded values by bit pattern, encoded bits by
the identity of the frozen value).

For every fixed-layout type the generator emits a fused ``_d_X`` / ``_e_X`` (one read /
one write for the whole type) and keeps the generic ``_dg_X`` / ``_eg_X`` as the
fallback.  Here every module is run both ways, with the fused functions swapped out for
the generic ones: on the public vectors (ISO-2, DIN, appHandshake, -20), on random valid
instances of each fused type, on random and bit-flipped inputs (same value, or the same
error at the same position), and on invalid field values given to the encoder.
"""

from __future__ import annotations

import json
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

from . import strategies
from .vectors import CODEC_SCHEMA, SHARED, load_vectors

SCHEMAS = list(codec.SCHEMAS)


def fused(mod: ModuleType) -> list[str]:
    """The type keys with a fused fast path in this module (defined here, not imported)."""
    return sorted(
        name[4:]
        for name, obj in vars(mod).items()
        if name.startswith("_dg_") and getattr(obj, "__module__", None) == mod.__name__
    )


@contextmanager
def generic(mod: ModuleType) -> Iterator[None]:
    """Swap the fused functions of ``mod`` (and of modules that imported them) for the
    generic ones; the generated code looks them up as module globals at call time."""
    saved: list[tuple[ModuleType, str, Any]] = []
    mods = [codec.schema_module(s) for s in SCHEMAS]
    for key in fused(mod):
        for prefix in ("_d", "_e"):
            fast = getattr(mod, f"{prefix}_{key}")
            slow = getattr(mod, f"{prefix}g_{key}")
            for m in mods:
                if vars(m).get(f"{prefix}_{key}") is fast:
                    saved.append((m, f"{prefix}_{key}", fast))
                    setattr(m, f"{prefix}_{key}", slow)
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


def both(mod: ModuleType, fn: Callable[[], Any]) -> tuple[tuple[str, Any], tuple[str, Any]]:
    fast = outcome(fn)
    with generic(mod):
        slow = outcome(fn)
    return fast, slow


def test_every_schema_family_has_fused_types() -> None:
    for schema in ("iso2", "din", "iso20-common"):
        assert fused(codec.schema_module(schema)), schema
    assert "PhysicalValue" in fused(codec.schema_module("iso2"))
    assert "DC_EVStatus" in fused(codec.schema_module("iso2"))
    assert "RationalNumber" in fused(codec.schema_module("iso20-common"))


def _all_vectors() -> list[tuple[str, bytes, bool]]:
    out = []
    for v in load_vectors():
        out.append(
            (CODEC_SCHEMA[v["schema"]], bytes.fromhex(v["exi_hex"]), "fragment" in v["schema"])
        )
    path = SHARED / "vectors" / "iso20_public_vectors.jsonl"
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                v = json.loads(line)
                name = v.get("schema", "")
                hexdata = v.get("exi_hex")
                if name in codec.SCHEMAS and hexdata:
                    out.append((name, bytes.fromhex(hexdata), False))
    return out


def test_public_vectors_decode_and_encode_the_same_both_ways() -> None:
    found = _all_vectors()
    if not found:
        pytest.skip("the vectors in ../shared are absent")
    for schema, data, fragment in found:
        mod = codec.schema_module(schema)
        dec: Callable[[], Any] = (
            (lambda d=data, s=schema: codec.decode_fragment(d, s)[1])
            if fragment
            else (lambda d=data, s=schema: codec.decode(d, s))
        )
        fast, slow = both(mod, dec)
        assert fast == slow, (schema, data.hex())
        if fast[0] == "ok" and not fragment:
            value = fast[1]
            enc_fast, enc_slow = both(mod, lambda v=value, s=schema: codec.encode(v, s))
            assert enc_fast == enc_slow, (schema, data.hex())


def _cases() -> list[tuple[str, str]]:
    return [(s, key) for s in SCHEMAS for key in fused(codec.schema_module(s))]


@pytest.mark.parametrize(("schema", "key"), _cases())
def test_random_inputs_decode_the_same_both_ways(schema: str, key: str) -> None:
    """Random bits, and valid encodings with one bit flipped or cut short: the same value,
    or the same error with the same message, from the fused and the generic decoder; and
    the reader stops at the same position."""
    mod = codec.schema_module(schema)
    cls = getattr(mod, key)
    rng = random.Random(key)
    inputs = [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 12))) for _ in range(150)]
    try:
        sample = strategies.minimal(schema, cls)
    except Exception:  # a type the strategies cannot build alone
        sample = None
    if sample is not None:
        w = BitWriter()
        getattr(mod, f"_e_{key}")(w, sample)
        good = w.getvalue() + bytes(4)
        inputs.append(good)
        for i in range(min(len(good) * 8, 120)):
            flipped = bytearray(good)
            flipped[i // 8] ^= 0x80 >> (i % 8)
            inputs.append(bytes(flipped))
            inputs.append(good[: i // 8])
    for data in inputs:

        def run(d: bytes = data) -> tuple[Any, int]:
            r = BitReader(d)
            value = getattr(mod, f"_d_{key}")(r)
            return value, r.pos

        fast, slow = both(mod, run)
        assert fast == slow, data.hex()


@pytest.mark.parametrize(("schema", "key"), _cases())
def test_random_instances_encode_the_same_both_ways(schema: str, key: str) -> None:
    mod = codec.schema_module(schema)
    cls = getattr(mod, key)
    try:
        strat = strategies.instances(schema, cls)
    except ValueError:
        pytest.skip(f"{key}: the strategies cannot build it alone")

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strat, st.data())
    def check(value: Any, data: st.DataObject) -> None:
        def enc(v: Any = value) -> bytes:
            w = BitWriter()
            getattr(mod, f"_e_{key}")(w, v)
            return w.getvalue()

        fast, slow = both(mod, enc)
        assert fast == slow
        assert outcome(enc) == fast  # again: from the encoder's cache
        # the same bytes decode to the same value both ways, and again from the cache
        if fast[0] == "ok":
            decoded = both(mod, lambda: getattr(mod, f"_d_{key}")(BitReader(fast[1])))
            assert decoded[0] == decoded[1] == ("ok", value)
            again = outcome(lambda: getattr(mod, f"_d_{key}")(BitReader(fast[1])))
            assert again == ("ok", value)
        # an invalid value in one field: the same error both ways
        names = strategies.field_names(cls)
        name = data.draw(st.sampled_from(names))
        bad = data.draw(st.sampled_from([None, -(10**6), 10**6, "x", True, 2.5]))
        broken = object.__new__(cls)
        for n in names:
            object.__setattr__(broken, n, bad if n == name else getattr(value, n))
        bad_fast, bad_slow = both(mod, lambda: enc(broken))
        assert bad_fast == bad_slow

    check()
