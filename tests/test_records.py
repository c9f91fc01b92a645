"""``hal.records.record`` against ``@dataclass(frozen=True, slots=True)`` (issue 17).

Every module that defines ``@record`` classes is loaded a second time from its source
with ``record`` swapped for the dataclass decorator; each record class must then match
its dataclass twin: fields (name, type, default, factory, flags, metadata), slots,
``__match_args__``, signature and ``__doc__``, and for instances of the same field
values: ``repr``, ``==`` / ``!=``, ``hash``, the frozen error on assignment and deletion,
the constructor (by keyword, by position, with defaults, missing and unknown arguments,
``__post_init__`` checks: same object or same exception), ``dataclasses.replace``,
``asdict``, ``astuple``, ``is_dataclass``, ``copy`` and ``pickle``.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import enum
import importlib
import importlib.util
import inspect
import pickle
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import hal.records
from hal.records import record

# every module with @record classes (tests/test_records.py fails when one is missing)
MODULES = (
    "hal.types",
    "hal.registry",
    "hal.api",
    "secc.core.events",
    "secc.core.config",
    "secc.config",
    "secc.sdp",
    "secc.preflight",
    "secc.runtime",
    "secc.v2gtp",
    "secc.aio.clienthello",
    "secc.aio.tls",
    "hal.backends.simulated",
    "secc.limits",
    "hal.hooks",
)
ROOT = Path(__file__).resolve().parent.parent


def _is_record(cls: object) -> bool:
    init = getattr(cls, "__init__", None)
    code = getattr(init, "__code__", None)
    return isinstance(cls, type) and code is not None and code.co_filename == "<record>"


def test_every_module_with_records_is_checked() -> None:
    users = set()
    for path in [*(ROOT / "secc").rglob("*.py"), *(ROOT / "hal").rglob("*.py")]:
        if path.name != "records.py" and "@record" in path.read_text(encoding="utf-8"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            users.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    assert users == set(MODULES)


def _stdlib_record(cls: type | None = None, /, *, frozen: bool = True, slots: bool = True) -> Any:
    make = dataclasses.dataclass(frozen=frozen, slots=slots)
    return make if cls is None else make(cls)


def _twin(name: str) -> types.ModuleType:
    """Module ``name`` loaded again with ``@record`` meaning the stdlib dataclass."""
    original = importlib.import_module(name)
    spec = importlib.util.spec_from_file_location(f"_twin_{name}", original.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look the module up)
    hal.records.record = _stdlib_record  # type: ignore[assignment]
    try:
        spec.loader.exec_module(module)
    finally:
        hal.records.record = record
    return module


def _pairs() -> Iterator[tuple[type, type]]:
    for name in MODULES:
        module = importlib.import_module(name)
        twin = _twin(name)
        found = [v for v in vars(module).values() if _is_record(v) and v.__module__ == name]
        assert found, name
        for cls in found:
            other = getattr(twin, cls.__name__)
            assert dataclasses.is_dataclass(other) and not _is_record(other)
            yield cls, other


PAIRS = list(_pairs())


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


OPAQUE = _Opaque()


def _sample(hint: Any, depth: int = 0) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return None if type(None) in args else _sample(args[0], depth)
    if origin is typing.Literal:
        return args[0]
    if origin is tuple:
        return ()
    if origin in (dict, typing.Mapping) or hint is dict:
        return {}
    if origin is frozenset:
        return frozenset()
    simple = {
        int: 7,
        float: 2.5,
        str: "s",
        bool: True,
        bytes: b"\x01",
        Path: Path("/p"),
        dt.datetime: dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
        dt.timedelta: dt.timedelta(seconds=3),
    }
    if hint in simple:
        return simple[hint]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return next(iter(hint))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint) and depth < 3:
        return _instance(hint, depth + 1)
    return OPAQUE


def _values(cls: type, depth: int = 0) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(cls)
    except NameError:
        hints = {}
    values = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            values[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            values[f.name] = f.default_factory()
        else:
            values[f.name] = _sample(hints.get(f.name, object), depth)
    return values


def _instance(cls: type, depth: int = 0, values: dict[str, Any] | None = None) -> Any:
    """An instance with these field values, ``__init__`` (and its checks) bypassed."""
    obj: Any = object.__new__(cls)
    for name, value in (values if values is not None else _values(cls, depth)).items():
        object.__setattr__(obj, name, value)
    return obj


def _outcome(call: Callable[[], Any]) -> tuple[str, ...]:
    try:
        result = call()
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))
    return ("returned", repr(result))


@pytest.mark.parametrize(("ours", "theirs"), PAIRS, ids=[c.__qualname__ for c, _ in PAIRS])
def test_record_matches_the_dataclass(ours: type, theirs: type) -> None:
    attrs = ("name", "type", "default", "default_factory", "init", "repr", "hash", "compare")
    for a, b in zip(dataclasses.fields(ours), dataclasses.fields(theirs), strict=True):
        for attr in (*attrs, "metadata", "kw_only", "_field_type"):
            mine, stdlib = getattr(a, attr), getattr(b, attr)
            if callable(mine) and getattr(mine, "__module__", None) == ours.__module__:
                # a class or function of the same module: the twin module has its own
                mine, stdlib = mine.__qualname__, stdlib.__qualname__
            assert mine == stdlib, (a.name, attr)
    assert ours.__dataclass_params__.frozen == theirs.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert getattr(ours, "__slots__", None) == getattr(theirs, "__slots__", None)
    assert ours.__dataclass_params__.eq == theirs.__dataclass_params__.eq  # type: ignore[attr-defined]
    for f in dataclasses.fields(ours):  # (class attributes: the defaults of an unslotted one)
        assert _class_attr(ours, f.name) == _class_attr(theirs, f.name), f.name
    assert ours.__match_args__ == theirs.__match_args__  # type: ignore[attr-defined]
    assert ours.__doc__ == theirs.__doc__
    hex_id = re.compile(r" at 0x[0-9a-f]+")  # (a default function: the twin has its own)
    assert hex_id.sub("", str(inspect.signature(ours))) == hex_id.sub(
        "", str(inspect.signature(theirs))
    )
    assert ours.__init__.__qualname__ == theirs.__init__.__qualname__  # type: ignore[misc]
    assert ours.__bases__ == theirs.__bases__ == (object,)
    assert hasattr(_instance(ours), "__dict__") == hasattr(_instance(theirs), "__dict__")
    for method in ("__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__"):
        mine, stdlib = getattr(ours, method), getattr(theirs, method)
        assert getattr(mine, "__qualname__", None) == getattr(stdlib, "__qualname__", None)

    values = _values(ours)
    a, b = _instance(ours, values=values), _instance(theirs, values=values)
    assert repr(a).split("(", 1)[1] == repr(b).split("(", 1)[1]
    assert type(a).__qualname__ == type(b).__qualname__
    assert _outcome(lambda: hash(a)) == _outcome(lambda: hash(b))
    same = _instance(ours, values=dict(values))
    assert a == same
    assert not a != same  # noqa: SIM202 - __ne__ (from __eq__) checked too
    assert _outcome(lambda: hash(same)) == _outcome(lambda: hash(a))
    assert a != b  # another class, as between two dataclasses
    for f in dataclasses.fields(ours):
        changed = _instance(ours, values={**values, f.name: OPAQUE})
        twin = _instance(theirs, values={**values, f.name: OPAQUE})
        assert (changed == a) == (twin == b), f.name
        for act in (setattr, delattr):
            args = (f.name, 1) if act is setattr else (f.name,)
            mine = _outcome(lambda c=changed, act=act, args=args: act(c, *args))
            assert mine == _outcome(lambda t=twin, act=act, args=args: act(t, *args))
    if ours.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        # another name: FrozenInstanceError too (a slotted dataclass of Python 3.11 raises
        # TypeError from its super() call there, a CPython bug fixed in 3.12)
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field"):
            a.not_a_field = 1

    def both(call: Callable[[type], Any]) -> None:
        mine, stdlib = _outcome(lambda: call(ours)), _outcome(lambda: call(theirs))
        assert mine == stdlib

    both(lambda c: c(**values))
    both(lambda c: c(*values.values()))
    both(lambda c: c())
    both(lambda c: c(*values.values(), 1))
    both(lambda c: c(not_a_field=1))
    both(lambda c: dataclasses.replace(_instance(c, values=values)))
    both(lambda c: dataclasses.asdict(_instance(c, values=values)))
    both(lambda c: dataclasses.astuple(_instance(c, values=values)))
    both(lambda c: dataclasses.is_dataclass(_instance(c, values=values)))
    both(lambda c: copy.copy(_instance(c, values=values)) == _instance(c, values=values))
    both(lambda c: copy.deepcopy(_instance(c, values=values)) == _instance(c, values=values))
    if _picklable(values):
        # (the twin module is no importable module: ours round-trips to an equal one)
        assert pickle.loads(pickle.dumps(a)) == a


def _class_attr(cls: type, name: str) -> Any:
    value = cls.__dict__.get(name, "<absent>")
    return type(value).__name__ if isinstance(value, types.MemberDescriptorType) else value


def _picklable(values: dict[str, Any]) -> bool:
    if any(v is OPAQUE for v in values.values()):
        return False  # (it unpickles as another object)
    try:
        pickle.dumps(tuple(values.values()))
    except (pickle.PicklingError, TypeError, AttributeError):
        return False
    return True


def test_most_records_are_checked_through_pickle() -> None:
    assert sum(_picklable(_values(ours)) for ours, _ in PAIRS) >= len(PAIRS) * 2 // 3


def test_constructed_records_are_equal_to_the_dataclass_ones() -> None:
    """Through ``__init__`` (defaults, factories and ``__post_init__`` checks run) every
    class with defaults for all fields gives the same values as its twin."""
    made = 0
    for ours, theirs in PAIRS:
        if all(
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            for f in dataclasses.fields(ours)
        ):
            a, b = ours(), theirs()
            assert dataclasses.astuple(a) == dataclasses.astuple(b)
            assert hash(a) == hash(b) if a.__hash__ is not None else True
            made += 1
    assert made >= 10


def test_hot_records_are_built_by_init() -> None:
    """A few records the station builds for every message, built by their constructors
    (keyword and positional) with their checks, equal and hashed like their twins."""
    from hal.types import DcPresent, Duty, MeterReading

    twins = {c.__qualname__: t for c, t in PAIRS}
    for cls, args in (
        (DcPresent, {"voltage_v": 400.0, "current_a": 100.0, "enabled": True}),
        (MeterReading, {"energy_wh": 12.0, "power_w": 3.5, "voltage_v": (1.0,), "current_a": ()}),
        (Duty, {"permille": 50}),
    ):
        kwargs: dict[str, Any] = dict(args)
        a, b = cls(**kwargs), twins[cls.__qualname__](**kwargs)
        assert dataclasses.astuple(a) == dataclasses.astuple(b)
        assert hash(a) == hash(b) and repr(a) == repr(b).replace("_twin_", "")
        assert cls(*kwargs.values()) == a
    with pytest.raises(ValueError, match="duty out of range"):
        Duty(0)


def test_record_refuses_what_it_does_not_build() -> None:
    with pytest.raises(TypeError, match="ClassVar"):

        @record
        class WithClassVar:
            x: typing.ClassVar[int] = 1

    with pytest.raises(TypeError, match="init=True"):

        @record
        class WithInitFalse:
            x: int = dataclasses.field(default=1, init=False)

    with pytest.raises(ValueError, match="mutable default"):

        @record
        class WithList:
            x: list[int] = []

    with pytest.raises(TypeError, match="non-default argument"):

        @record
        class Order:
            x: int = 1
            y: int  # type: ignore[misc]


def test_inherited_and_empty_records_match_dataclasses() -> None:
    @record
    class Base:
        a: int
        b: str = "b"

    @record
    class Child(Base):
        c: tuple[int, ...] = dataclasses.field(default_factory=tuple)

    @record
    class Empty:
        pass

    @dataclasses.dataclass(frozen=True, slots=True)
    class DBase:
        a: int
        b: str = "b"

    @dataclasses.dataclass(frozen=True, slots=True)
    class DChild(DBase):
        c: tuple[int, ...] = dataclasses.field(default_factory=tuple)

    @dataclasses.dataclass(frozen=True, slots=True)
    class DEmpty:
        pass

    assert repr(Child(1)).replace("Child", "X") == repr(DChild(1)).replace("DChild", "X")
    assert Child.__slots__ == ("c",) and DChild.__slots__ == ("c",)  # type: ignore[attr-defined]
    assert hash(Child(1, "x", (2,))) == hash(DChild(1, "x", (2,)))
    assert Child(1) == Child(1) and Child(1) != Child(2) and Child(1) != Base(1)
    assert hash(Empty()) == hash(DEmpty()) and Empty() == Empty()
    assert repr(Empty()).endswith("Empty()")
    assert str(inspect.signature(Child)) == str(inspect.signature(DChild))
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'a'"):
        Child(1).a = 2  # type: ignore[misc]


def test_a_mutable_record_matches_the_dataclass() -> None:
    @record(frozen=False)
    class Box:
        a: int
        b: list[int] = dataclasses.field(default_factory=list, repr=False)

    @dataclasses.dataclass(slots=True)
    class DBox:
        a: int
        b: list[int] = dataclasses.field(default_factory=list, repr=False)

    box, dbox = Box(1), DBox(1)
    box.a = 2
    dbox.a = 2
    assert repr(box).rsplit(".", 1)[-1] == repr(dbox).rsplit(".", 1)[-1].replace("DBox", "Box")
    assert Box.__hash__ is None and DBox.__hash__ is None  # type: ignore[comparison-overlap]
    assert box == Box(2) and box != Box(3) and box.b == [] and box.b is not Box(1).b
    assert not hasattr(box, "__dict__") and Box.__slots__ == DBox.__slots__  # type: ignore[attr-defined]
    assert dataclasses.replace(box, a=5) == Box(5)


def test_an_unslotted_record_is_the_class_itself_as_a_dataclass() -> None:
    """``@record(frozen=False, slots=False)`` changes the class in place, as ``@dataclass``
    does: the same class object (zero-argument ``super()`` works), instance ``__dict__``,
    defaults as class attributes, unhashable, ``==`` by fields; refused when frozen."""

    class Base:
        def hello(self) -> str:
            return "base"

    def make(decorate: Any) -> Any:
        class Hook(Base):
            items: list[int] = dataclasses.field(default_factory=list)
            flag: bool = False

            def hello(self) -> str:
                return "hook+" + super().hello()

        original = Hook
        made = decorate(Hook)
        assert made is original
        return made

    ours = make(record(frozen=False, slots=False))
    theirs = make(dataclasses.dataclass)
    a, b = ours(), theirs()
    assert a.hello() == b.hello() == "hook+base"
    assert vars(a) == vars(b) == {"items": [], "flag": False}
    a.extra = b.extra = 1  # (an unslotted instance takes any attribute)
    assert ours.flag is theirs.flag is False
    assert "items" not in vars(ours) and "items" not in vars(theirs)
    assert ours.__hash__ is None and theirs.__hash__ is None
    assert ours([1], True) == ours([1], True) and ours([1]) != ours([2])
    assert repr(ours([1])).split("(", 1)[1] == repr(theirs([1])).split("(", 1)[1]
    assert str(inspect.signature(ours)) == str(inspect.signature(theirs))
    with pytest.raises(TypeError, match="frozen=False"):
        record(frozen=True, slots=False)
