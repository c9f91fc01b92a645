"""The one-read path for integer simple elements (issue 17: values of one or two 7-bit
groups read with CH, sign, octets and EE at once) gives exactly what the general lines
give: the same value, violation or error (same message, same offset) and the same
position after, on the public vectors and on corrupted copies of them.

The general modules are generated here from the XSDs with that path switched off
(``ValueEmitter._dec_int_elem`` returning the general lines), so the test needs
``../shared/schemas`` and says so when it is absent.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from secc import codec
from secc.codec.codegen import values
from secc.codec.codegen.__main__ import generate
from secc.codec.exi.bits import BitReader
from secc.codec.exi.facets import CheckedReader

from .test_fast_paths import _all_vectors
from .vectors import SCHEMAS

PREFIX = "secc.codec._generated._general_"


@pytest.fixture(scope="module")
def general() -> Iterator[dict[str, types.ModuleType]]:
    """Schema name -> its module generated without the integer fast path."""
    if not SCHEMAS.is_dir():
        pytest.skip(f"{SCHEMAS} is absent: cannot generate the general modules")
    fast = values.ValueEmitter._dec_int_elem
    values.ValueEmitter._dec_int_elem = lambda self, vc, label, ind, slow: slow  # type: ignore[method-assign]
    try:
        sources = generate(SCHEMAS)
    finally:
        values.ValueEmitter._dec_int_elem = fast  # type: ignore[method-assign]
    mods: dict[str, types.ModuleType] = {}
    for schema, module in codec.SCHEMAS.items():
        assert "if _q <= r.wend else -1" not in sources[module]
        mod = types.ModuleType(PREFIX + module)
        sys.modules[mod.__name__] = mod  # dataclasses look the module up
        exec(compile(sources[module], f"<general {module}>", "exec"), mod.__dict__)
        mods[schema] = mod
    yield mods
    for mod in mods.values():
        sys.modules.pop(mod.__name__, None)


def run(mod: types.ModuleType, data: bytes, lenient: bool) -> tuple[Any, ...]:
    """Decode a whole stream with ``mod``'s document grammar (without the header)."""
    r = (CheckedReader if lenient else BitReader)(data, 8)
    roots = mod.DOCUMENT
    try:
        code = r.bits(max(len(roots), 1).bit_length())
        if code >= len(roots):
            return ("no root",)
        value = roots[code].decode(r)
    except codec.CodecError as e:
        return ("error", str(e))
    found = list(getattr(r, "violations", []))
    return ("ok", repr(value), r.pos, found)


def corrupted(data: bytes) -> Iterator[bytes]:
    yield data
    for i in range(8, min(len(data) * 8, 400), 3):
        flipped = bytearray(data)
        flipped[i // 8] ^= 0x80 >> (i % 8)
        yield bytes(flipped)
    for n in range(1, len(data), 5):
        yield data[:n]


def test_integer_fast_path_matches_the_general_lines(general: dict[str, types.ModuleType]) -> None:
    found = [(s, d) for s, d, fragment in _all_vectors() if not fragment]
    if not found:
        pytest.skip("the vectors in ../shared are absent")
    seen = 0
    for schema, data in found:
        fast_mod = codec.schema_module(schema)
        for d in corrupted(data):
            for lenient in (False, True):
                assert run(fast_mod, d, lenient) == run(general[schema], d, lenient), (
                    schema,
                    d.hex(),
                    lenient,
                )
                seen += 1
    assert seen > 1000


def test_integer_fast_path_takes_the_general_lines_for_long_values(
    general: dict[str, types.ModuleType],
) -> None:
    """A -20 header's TimeStamp (five groups) and values of one, two and three groups,
    positive and negative, decode the same both ways."""
    dc = codec.schema_module("iso20-dc")
    for stamp in (0, 1, 127, 128, 16383, 16384, 1_700_000_000):
        for value in (0, 5, -1, -128, 127, 128, -129, 16383, -16384, 16384, 32767, -32768):
            req = dc.DC_PreChargeReq(
                header=dc.MessageHeader(session_id=bytes(8), time_stamp=stamp),
                ev_processing=dc.Processing.Finished,
                ev_present_voltage=dc.RationalNumber(exponent=0, value=value),
                ev_target_voltage=dc.RationalNumber(exponent=-1, value=-value - 1),
            )
            data = codec.encode(req)
            assert run(dc, data, False) == run(general["iso20-dc"], data, False)
            assert codec.decode(data, "iso20-dc") == req
