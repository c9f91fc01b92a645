"""``hal._record_shapes``: the ``@record`` method templates loaded from bytecode instead
of compiled at every start (issue 17) are current and are the code the compiler makes.

``hal.records`` takes an ``__init__`` template from the generated module when it holds
the class's shape (field count, default-factory positions, ``__post_init__``) and
compiles :func:`hal.records._source` otherwise; both must give the same code object
(bytecode, constants, names, flags, line and column positions), so a record class is
the same whichever way its template came.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import hal.records
from hal.records import _compiled, _precompiled, project_shapes, record, shapes_module
from tests.test_records import MODULES

ROOT = Path(__file__).resolve().parent.parent


def test_the_generated_module_is_current() -> None:
    """``python -m hal.records <tests/test_records.py MODULES>`` writes the same file."""
    text = (ROOT / "hal" / "_record_shapes.py").read_text(encoding="utf-8")
    assert text == shapes_module(project_shapes(list(MODULES))), (
        f"hal/_record_shapes.py is stale: run `python -m hal.records {' '.join(MODULES)}`"
    )


def test_every_precompiled_template_is_the_compiled_one() -> None:
    keys = sorted(set(project_shapes(list(MODULES))))
    assert len(keys) >= 20
    for key in keys:
        loaded, compiled = _precompiled(key), _compiled(key)
        assert loaded is not None, key
        assert loaded == compiled, key
        assert loaded.co_flags == compiled.co_flags, key
        assert loaded.co_qualname == compiled.co_qualname, key
        assert loaded.co_filename == compiled.co_filename == "<record>", key
        assert list(loaded.co_positions()) == list(compiled.co_positions()), key
        assert loaded.co_consts == compiled.co_consts, key


def test_a_shape_not_in_the_module_is_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """A class of a shape no project class has (33 fields, a factory last) is still
    made, from the compiled template, and behaves as its dataclass."""
    key = ("__init__", 33, (32,), False)
    assert _precompiled(key) is None
    monkeypatch.setattr(hal.records, "_templates", {})
    names = [f"f{i}" for i in range(33)]
    namespace: dict[str, object] = {"__annotations__": dict.fromkeys(names, "int")}
    namespace["f32"] = dataclasses.field(default_factory=lambda: 5)
    ours = record(type("Wide", (), dict(namespace)))
    theirs = dataclasses.dataclass(frozen=True, slots=True)(type("Wide", (), dict(namespace)))
    assert key in hal.records._templates
    args = list(range(32))
    assert dataclasses.astuple(ours(*args)) == dataclasses.astuple(theirs(*args))
    assert ours(*args).f32 == 5
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'f31'"):
        ours(*args[:-1])


def test_the_start_path_compiles_no_template(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every record class of the project gets its ``__init__`` from the generated module:
    the templates made from scratch for them are none."""
    compiled: list[tuple[str, int, tuple[int, ...], bool]] = []
    real = hal.records._compiled

    def spy(key: tuple[str, int, tuple[int, ...], bool]) -> object:
        compiled.append(key)
        return real(key)

    monkeypatch.setattr(hal.records, "_compiled", spy)
    monkeypatch.setattr(hal.records, "_templates", {})
    for key in set(project_shapes(list(MODULES))):
        hal.records._method(key[0], "C", [f"x{i}" for i in range(key[1])], {}, None, *key[2:])
    assert compiled == []
