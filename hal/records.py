"""``@record``: a frozen, slotted dataclass built without compiling code for each class.

``@dataclass(frozen=True, slots=True)`` writes the source of ``__init__``, ``__repr__``,
``__eq__``, ``__hash__``, ``__setattr__`` and ``__delattr__`` for every class and
compiles it: about 4M instructions a class, and ``secc run`` defined ~60 such classes
before it was ready (issue 17: most of the station's own start-up work).  ``@record``
makes the same class (``__slots__``, the methods, ``__match_args__``, the dataclass
``Field`` objects in ``__dataclass_fields__``, so ``dataclasses.fields``, ``replace``,
``asdict`` and ``is_dataclass`` work) for ~0.5M instructions:

- ``__init__``, ``__eq__`` and ``__hash__`` from code templates, each compiled once per
  shape (number of fields; for ``__init__`` also which ones have a default factory and
  whether ``__post_init__`` is called) and renamed for the class (parameters, attribute
  names): the same operations as the dataclass's own, so the same signature, errors
  and speed; ``__eq__`` and ``__hash__`` are made when first called; the ``__init__``
  templates of the shapes the project's classes have are not compiled at all but
  loaded with the bytecode of the generated :mod:`hal._record_shapes`;
- ``__repr__``, ``__setattr__``, ``__delattr__`` as closures over the field names.

Supported: fields with a type annotation, a default value or ``dataclasses.field(...)``
(``default``, ``default_factory``, ``repr``, ``hash``, ``compare``, ``metadata``),
``__post_init__``, base classes that are records themselves, and
``@record(frozen=False)`` for what ``@dataclass(slots=True)`` makes and
``@record(frozen=False, slots=False)`` for what ``@dataclass`` makes.  Anything else
(``ClassVar``, ``InitVar``, ``KW_ONLY``, ``init=False``, a field named ``self``) is
refused when the class is defined, rather than built differently from a dataclass.
``tests/test_records.py`` checks every record class of the project against the
dataclass built from the same source.

It lives in ``hal`` because ``hal`` never imports ``secc`` and the session core may
import from ``hal``: both use it.
"""

from __future__ import annotations

import abc
import builtins
import dataclasses
import reprlib
import types
from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform, overload

__all__ = ["record"]

_T = TypeVar("_T")
_MISSING: Any = dataclasses.MISSING
_FACTORY: Any = dataclasses._HAS_DEFAULT_FACTORY  # type: ignore[attr-defined]  # (its repr: <factory>)
_FIELD: Any = dataclasses._FIELD  # type: ignore[attr-defined]
_FrozenInstanceError = dataclasses.FrozenInstanceError
_PLACEHOLDER = "_record_p{}_"

# (method, field count, positions with a default factory, calls __post_init__) -> code
_templates: dict[tuple[str, int, tuple[int, ...], bool], types.CodeType] = {}


def _source(kind: str, count: int, factories: tuple[int, ...], post_init: bool) -> str:
    """The text of a method for ``count`` fields named by placeholders, written as
    dataclasses write it (the same operations, so the same speed)."""
    names = [_PLACEHOLDER.format(i) for i in range(count)]
    if kind == "__init__":
        lines = [f"def __init__(self{''.join(', ' + n for n in names)}):"]
        for i, n in enumerate(names):
            # object.__setattr__ per field, the factory called only when the argument
            # was not given
            value = f"_f{i}() if {n} is _FACTORY else {n}" if i in factories else n
            lines.append(f"    _set(self, {n!r}, {value})")
        if post_init:
            lines.append("    self.__post_init__()")
        return "\n".join(lines if len(lines) > 1 else [*lines, "    pass"])
    mine = "".join(f"self.{n}," for n in names)
    if kind == "__eq__":
        theirs = "".join(f"other.{n}," for n in names)
        return (
            "def __eq__(self, other):\n"
            "    if other.__class__ is self.__class__:\n"
            f"        return ({mine}) == ({theirs})\n"
            "    return NotImplemented"
        )
    return f"def __hash__(self):\n    return hash(({mine}))"


def _compiled(key: tuple[str, int, tuple[int, ...], bool]) -> types.CodeType:
    """The template of shape ``key``, compiled from :func:`_source`."""
    scope: dict[str, Any] = {}
    exec(compile(_source(*key), "<record>", "exec"), scope)  # noqa: S102 - text of our own
    code: types.CodeType = scope[key[0]].__code__
    return code


def _shape_name(key: tuple[str, int, tuple[int, ...], bool]) -> str:
    """The name of shape ``key``'s template in :mod:`hal._record_shapes`."""
    kind, count, factories, post_init = key
    return (
        f"{kind.strip('_')}_{count}"
        + "".join(f"_f{i}" for i in factories)
        + ("_post" if post_init else "")
    )


def _precompiled(key: tuple[str, int, tuple[int, ...], bool]) -> types.CodeType | None:
    """The template of shape ``key`` from :mod:`hal._record_shapes` (the shapes the
    project's record classes have, written out by ``python -m hal.records``: loaded with
    the module's bytecode instead of compiled at every start, issue 17), made the code
    :func:`_compiled` gives (same name, file and lines; ``tests/test_records.py`` checks
    both are equal); None for another shape."""
    from hal import _record_shapes

    function = getattr(_record_shapes, _shape_name(key), None)
    if function is None:
        return None
    code: types.CodeType = function.__code__
    return code.replace(
        co_name=key[0], co_qualname=key[0], co_filename="<record>", co_firstlineno=1
    )


def shapes_module(keys: list[tuple[str, int, tuple[int, ...], bool]]) -> str:
    """The text of :mod:`hal._record_shapes` holding the templates of ``keys``."""
    parts = [
        '"""Generated by ``python -m hal.records MODULE...`` (hal/records.py): the method '
        "templates\nof the shapes the project's record classes have, loaded with this "
        'module\'s bytecode\ninstead of compiled at every start (issue 17).  Do not edit."""\n'
        "# ruff: noqa\n# mypy: ignore-errors\n# fmt: off\n\n"
        "from __future__ import annotations  # (as in hal/records.py, where they compile)\n"
    ]
    for key in sorted(set(keys)):
        text = _source(*key).replace(f"def {key[0]}(", f"def {_shape_name(key)}(", 1)
        parts.append(f"\n\n{text}\n")
    parts.append("\n# fmt: on\n")
    return "".join(parts)


def project_shapes(modules: list[str]) -> list[tuple[str, int, tuple[int, ...], bool]]:
    """The ``__init__`` shapes of the record classes ``modules`` define (imported here)."""
    import importlib

    keys = []
    for name in modules:
        module = importlib.import_module(name)
        for cls in vars(module).values():
            init = getattr(cls, "__init__", None)
            code = getattr(init, "__code__", None)
            if not isinstance(cls, type) or cls.__module__ != name or code is None:
                continue
            if code.co_filename == "<record>" and code.co_name == "__init__":
                fields = list(cls.__dataclass_fields__.values())  # type: ignore[attr-defined]
                factories = tuple(
                    i for i, f in enumerate(fields) if f.default_factory is not _MISSING
                )
                post_init = any("__post_init__" in vars(c) for c in cls.__mro__)
                keys.append(("__init__", len(fields), factories, post_init))
    return keys


def _method(
    kind: str,
    qualname: str,
    names: list[str],
    namespace: dict[str, Any],
    defaults: tuple[Any, ...] | None = None,
    factories: tuple[int, ...] = (),
    post_init: bool = False,
) -> Any:
    """Method ``kind`` of class ``qualname`` over the fields ``names``: its template
    (compiled once per shape) with the placeholders renamed to the field names."""
    key = (kind, len(names), factories, post_init)
    template = _templates.get(key)
    if template is None:
        template = _templates[key] = _precompiled(key) or _compiled(key)
    rename = {_PLACEHOLDER.format(i): n for i, n in enumerate(names)}
    code = template.replace(
        co_varnames=tuple(rename.get(n, n) for n in template.co_varnames),
        co_names=tuple(rename.get(n, n) for n in template.co_names),
        co_consts=tuple(rename.get(c, c) if isinstance(c, str) else c for c in template.co_consts),
        co_qualname=f"{qualname}.{kind}",
    )
    function = types.FunctionType(code, namespace, kind, defaults)
    function.__qualname__ = f"{qualname}.{kind}"
    return function


def _init(
    qualname: str, fields: list[dataclasses.Field[Any]], post_init: bool
) -> Callable[..., None]:
    namespace: dict[str, Any] = {
        "__builtins__": builtins,
        "_set": object.__setattr__,
        "_FACTORY": _FACTORY,
    }
    defaults = []
    for i, f in enumerate(fields):
        if f.name == "self":
            raise TypeError(f"{qualname}: @record has no field named self")
        if f.default_factory is not _MISSING:
            namespace[f"_f{i}"] = f.default_factory
            defaults.append(_FACTORY)
        elif f.default is not _MISSING:
            defaults.append(f.default)
        elif defaults:
            raise TypeError(f"non-default argument {f.name!r} follows default argument")
    factories = tuple(i for i, f in enumerate(fields) if f.default_factory is not _MISSING)
    names = [f.name for f in fields]
    function: Callable[..., None] = _method(
        "__init__", qualname, names, namespace, tuple(defaults) or None, factories, post_init
    )
    function.__annotations__ = {**{f.name: f.type for f in fields}, "return": None}
    return function


_BUILTINS = {"__builtins__": builtins}


def _methods(
    qualname: str, fields: list[dataclasses.Field[Any]], owner: list[type]
) -> dict[str, Any]:
    """The methods besides ``__init__``; ``owner`` holds the class once it is made."""
    shown = tuple(f.name for f in fields if f.repr)
    compared = [f.name for f in fields if f.compare]
    hashed = [f.name for f in fields if (f.compare if f.hash is None else f.hash)]
    names = frozenset(f.name for f in fields)

    @reprlib.recursive_repr()
    def __repr__(self: Any) -> str:  # noqa: N807
        inner = ", ".join([f"{n}={getattr(self, n)!r}" for n in shown])
        return f"{self.__class__.__qualname__}({inner})"

    def __setattr__(self: Any, name: str, value: Any) -> None:  # noqa: N807
        cls = owner[0]
        if type(self) is cls or name in names:
            raise _FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)  # type: ignore[arg-type]

    def __delattr__(self: Any, name: str) -> None:  # noqa: N807
        cls = owner[0]
        if type(self) is cls or name in names:
            raise _FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)  # type: ignore[arg-type]

    for function in (__repr__, __setattr__, __delattr__):
        function.__qualname__ = f"{qualname}.{function.__name__}"
    return {
        "__repr__": __repr__,
        "__eq__": _on_first_call("__eq__", qualname, compared, owner),
        "__hash__": _on_first_call("__hash__", qualname, hashed, owner),
        "__setattr__": __setattr__,
        "__delattr__": __delattr__,
    }


def _on_first_call(kind: str, qualname: str, names: list[str], owner: list[type]) -> Any:
    """A stand-in for ``__eq__`` / ``__hash__`` that makes the method from its template
    when first called and puts it in the class: the ~40 classes the station defines
    before it is ready compile nothing for these then (most are never compared), and
    those compared in a session get the same code as a dataclass's."""

    def first_call(self: Any, *other: Any) -> Any:
        method = _method(kind, qualname, names, _BUILTINS)
        for cls in owner:  # (a class of its own once made; a subclass has its own)
            type.__setattr__(cls, kind, method)
        return method(self, *other)

    first_call.__name__ = kind
    first_call.__qualname__ = f"{qualname}.{kind}"
    return first_call


def _fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    """The class's fields, its bases' first, as ``dataclasses`` collects them."""
    fields: dict[str, dataclasses.Field[Any]] = {}
    for base in cls.__mro__[-1:0:-1]:
        inherited = base.__dict__.get("__dataclass_fields__")
        if inherited is not None:
            fields.update(inherited)
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063 - (cheaper)
        text = annotation if isinstance(annotation, str) else repr(annotation)
        if text.startswith(("ClassVar", "typing.ClassVar", "InitVar", "KW_ONLY", "dataclasses.")):
            raise TypeError(f"{cls.__qualname__}.{name}: @record has no ClassVar/InitVar")
        default = cls.__dict__.get(name, _MISSING)
        if isinstance(default, dataclasses.Field):
            f = default
            if not f.init or f.kw_only is True:
                raise TypeError(f"{cls.__qualname__}.{name}: @record needs init=True fields")
        else:
            if isinstance(default, types.MemberDescriptorType):
                default = _MISSING  # (a slot of a base class of the same name)
            f = dataclasses.field(default=default)
        if f.default is not _MISSING and f.default.__class__.__hash__ is None:
            raise ValueError(
                f"mutable default {type(f.default)} for field {name} is not allowed: "
                "use default_factory"
            )
        f.name = name
        f.type = annotation
        f._field_type = _FIELD  # type: ignore[attr-defined]
        f.kw_only = False
        fields[name] = f
    return fields


def _params(frozen: bool, slots: bool) -> Any:
    """``__dataclass_params__`` of such a dataclass (its fields vary by Python)."""
    make: Any = dataclasses._DataclassParams  # type: ignore[attr-defined]
    try:
        return make(True, True, True, False, False, frozen)  # 3.11
    except TypeError:
        return make(True, True, True, False, False, frozen, True, False, slots, False)


_PARAMS = {(f, s): _params(f, s) for f in (True, False) for s in (True, False)}


def _signature_doc(cls: type, fields: list[dataclasses.Field[Any]]) -> str:
    """The ``__doc__`` dataclasses give a class without a docstring: its signature."""
    parts = []
    for f in fields:
        text = f"{f.name}: {f.type!r}" if isinstance(f.type, str) else f"{f.name}: {f.type}"
        if f.default_factory is not _MISSING:
            text += " = <factory>"
        elif f.default is not _MISSING:
            text += f" = {f.default!r}"
        parts.append(text)
    return f"{cls.__name__}({', '.join(parts)})"


@overload
def record(cls: type[_T], /) -> type[_T]: ...


@overload
def record(*, frozen: bool = True, slots: bool = True) -> Callable[[type[_T]], type[_T]]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def record(cls: type[_T] | None = None, /, *, frozen: bool = True, slots: bool = True) -> Any:
    """Make ``cls`` what ``@dataclass(frozen=True, slots=True)`` makes of it;
    ``@record(frozen=False)``: what ``@dataclass(slots=True)`` makes of it;
    ``@record(frozen=False, slots=False)``: what ``@dataclass`` makes of it (the class
    itself, changed in place; see the module docstring for what is supported)."""
    if not slots and frozen:
        raise TypeError("@record(slots=False) is only built with frozen=False")
    if cls is None:
        return lambda cls: _build(cls, frozen, slots)
    return _build(cls, frozen, slots)


def _build(cls: type[_T], frozen: bool, slots: bool = True) -> type[_T]:
    fields_by_name = _fields(cls)
    fields = list(fields_by_name.values())
    qualname = cls.__qualname__
    given = cls.__dict__
    if not frozen and any("__setattr__" in vars(c) for c in cls.__mro__[:-1]):
        raise TypeError(f"{qualname}: @record(frozen=False) sets fields with object.__setattr__")
    if not slots:
        return _build_in_place(cls, fields_by_name)
    namespace = dict(given)
    for name in fields_by_name:
        namespace.pop(name, None)
    namespace.pop("__dict__", None)
    namespace.pop("__weakref__", None)
    inherited_slots = {
        slot for base in cls.__mro__[1:-1] for slot in base.__dict__.get("__slots__", ())
    }
    namespace["__slots__"] = tuple(n for n in fields_by_name if n not in inherited_slots)
    namespace["__dataclass_fields__"] = fields_by_name
    namespace["__dataclass_params__"] = _PARAMS[frozen, True]
    namespace.setdefault("__match_args__", tuple(fields_by_name))
    if namespace.get("__doc__") is None:
        namespace["__doc__"] = _signature_doc(cls, fields)
    if frozen and "__getstate__" not in namespace:  # (pickling, as dataclasses do)
        namespace["__getstate__"] = dataclasses._dataclass_getstate  # type: ignore[attr-defined]
        namespace["__setstate__"] = dataclasses._dataclass_setstate  # type: ignore[attr-defined]
    if "__init__" not in given:
        post_init = any("__post_init__" in vars(c) for c in cls.__mro__)
        namespace["__init__"] = _init(qualname, fields, post_init)
    owner: list[type] = []
    # a class that defines __eq__ but not __hash__ gets __hash__ = None from Python: the
    # dataclass replaces that one, as it does when neither is defined
    explicit_hash = "__hash__" in given and not (given["__hash__"] is None and "__eq__" in given)
    for name, method in _methods(qualname, fields, owner).items():
        if name in ("__setattr__", "__delattr__"):
            if not frozen:
                continue
            if name in given:
                raise TypeError(f"Cannot overwrite attribute {name} in class {cls.__name__}")
        if name == "__hash__":
            if not explicit_hash:  # (eq without frozen: unhashable, as a dataclass)
                namespace[name] = method if frozen else None
        elif name not in given:
            namespace[name] = method
    meta: Any = type(cls)
    new: type[_T] = meta(cls.__name__, cls.__bases__, namespace)
    new.__qualname__ = qualname
    owner.append(new)
    return new


def _build_in_place(cls: type[_T], fields_by_name: dict[str, dataclasses.Field[Any]]) -> type[_T]:
    """What ``@dataclass`` (not frozen, no slots) does to ``cls``: the same class, its
    fields' defaults left as class attributes (a default factory's ``field()`` removed)."""
    fields = list(fields_by_name.values())
    qualname = cls.__qualname__
    given = dict(cls.__dict__)
    for f in fields:
        if f.default is not _MISSING:
            setattr(cls, f.name, f.default)
        elif f.name in given:
            delattr(cls, f.name)
    changes: dict[str, Any] = {
        "__dataclass_fields__": fields_by_name,
        "__dataclass_params__": _PARAMS[False, False],
    }
    if "__match_args__" not in given:
        changes["__match_args__"] = tuple(fields_by_name)
    if given.get("__doc__") is None:
        changes["__doc__"] = _signature_doc(cls, fields)
    if "__init__" not in given:
        post_init = any("__post_init__" in vars(c) for c in cls.__mro__)
        changes["__init__"] = _init(qualname, fields, post_init)
    owner: list[type] = [cls]
    explicit_hash = "__hash__" in given and not (given["__hash__"] is None and "__eq__" in given)
    for name, method in _methods(qualname, fields, owner).items():
        if name in ("__setattr__", "__delattr__"):
            continue
        if name == "__hash__":
            if not explicit_hash:  # (eq without frozen: unhashable, as a dataclass)
                changes[name] = None
        elif name not in given:
            changes[name] = method
    for name, value in changes.items():
        setattr(cls, name, value)
    abc.update_abstractmethods(cls)  # (as dataclasses do)
    return cls


def main(argv: list[str]) -> int:
    """``python -m hal.records MODULE...``: write :mod:`hal._record_shapes` for the
    record classes of these modules (``tests/test_records.py`` checks it is current)."""
    from pathlib import Path

    Path(__file__).with_name("_record_shapes.py").write_text(shapes_module(project_shapes(argv)))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
