"""Hypothesis strategies for random VALID instances of every generated class.

Built from the ``FIELDS`` metadata alone: ranges, maxLength, enumerations and maxOccurs
come from each field's ``tinfo``; a substitution group picks one member (never the
abstract head: every head in these schemas is abstract); optional fields are sometimes
absent.  Sizes stay small: at most 3 items per repeated field, 10 characters per string
and 16 octets per binary value unless the facet is smaller; characters include non-ASCII
code points (any XML 1.0 character: EXI strings carry XML character data, so the codec
refuses the C0 controls but TAB/LF/CR, U+FFFE/U+FFFF and lone surrogates).

What the metadata does not say is how the schema's ``xs:choice`` groups were flattened
into optional fields (``ParameterType``: exactly one of boolValue, byteValue, ...).  That
is learnt once per class by asking the encoder (:func:`choice_groups`): starting from a
minimal instance, two optional fields that are each accepted alone but refused together
belong to one choice; if the minimal instance is refused, the choice is required.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from types import ModuleType
from typing import Any

from hypothesis import strategies as st

from secc import codec
from secc.codec.exi.meta import FieldInfo, RootInfo

MAX_ITEMS = 3
MAX_CHARS = 10
MAX_OCTETS = 16

# any XML 1.0 character: ASCII, Latin-1, CJK, emoji all show up
NOT_XML = "".join(chr(c) for c in range(0x20) if c not in (0x9, 0xA, 0xD)) + "\ufffe\uffff"
CHARACTERS = st.characters(blacklist_categories=("Cs",), blacklist_characters=NOT_XML)


def _members(f: FieldInfo) -> list[tuple[str, str, tuple[Any, ...]]]:
    members: list[tuple[str, str, tuple[Any, ...]]] = list(f.tinfo[1])
    if len(members) > 1:
        # the head of a substitution group (named like the field) is abstract
        members = [m for m in members if m[1] != f.local] or members
    return members


def simple_values(tinfo: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    kind = tinfo[0]
    if kind == "int":
        lo, hi = tinfo[1], tinfo[2]
        lo = -(2**70) if lo is None else lo  # xs:integer is unbounded
        hi = 2**70 if hi is None else hi
        return st.integers(lo, hi)
    if kind == "bool":
        return st.booleans()
    if kind == "enum":
        return st.sampled_from(list(tinfo[1]))
    if kind == "str":
        hi = MAX_CHARS if tinfo[2] is None else min(tinfo[2], MAX_CHARS)
        lo = min(tinfo[1] or 0, hi)
        return st.text(CHARACTERS, min_size=lo, max_size=hi)
    if kind == "bytes":
        hi = MAX_OCTETS if tinfo[2] is None else min(tinfo[2], MAX_OCTETS)
        lo = min(tinfo[1] or 0, hi)
        return st.binary(min_size=lo, max_size=hi)
    raise ValueError(f"no strategy for {tinfo!r}")


def _minimal_simple(tinfo: tuple[Any, ...]) -> Any:
    kind = tinfo[0]
    if kind == "int":
        lo, hi = tinfo[1], tinfo[2]
        return max(lo, 0) if lo is not None and (hi is None or hi >= 0) else (lo or 0)
    if kind == "bool":
        return False
    if kind == "enum":
        return next(iter(tinfo[1]))
    if kind == "str":
        return "a" * (tinfo[1] or 1)
    return b"\x01" * (tinfo[1] or 1)


def _fragment_root(mod: ModuleType, cls: type) -> RootInfo | None:
    roots: tuple[RootInfo, ...] = mod.FRAGMENT
    return next((r for r in roots if r.cls is cls and r.tinfo != "relaxed"), None)


def _encodes(mod: ModuleType, schema: str, value: object) -> bool:
    root = _fragment_root(mod, type(value))
    if root is None:
        return True
    try:
        codec.encode_fragment(value, schema, name=f"{{{root.ns}}}{root.local}")
    except codec.EncodeError:
        return False
    return True


def _one(f: FieldInfo, mod: ModuleType, schema: str) -> Any:
    """A minimal value for field ``f`` (a 1-tuple for repeated fields)."""
    if f.kind != "elem":
        item = _minimal_simple(f.tinfo)
    else:
        _ns, _local, tinfo = _members(f)[0]
        item = minimal(schema, tinfo[1]) if tinfo[0] == "class" else _minimal_simple(tinfo)
    return (item,) if f.repeated else item


# optional fields the encoder refuses on their own (they need a partner the metadata does
# not name, like xmldsig DSAKeyValue's P and Q): no strategy is offered for such a class
_LONERS: dict[tuple[str, type], tuple[str, ...]] = {}
# required repeated fields whose minimum count is above 1: (schema, class) -> {field: n}
_LEAST: dict[tuple[str, type], dict[str, int]] = {}


@cache
def _analysis(schema: str, cls: type) -> tuple[dict[str, Any], tuple[tuple[str, ...], ...], bool]:
    """(minimal kwargs, choice groups of optional fields, whether the first one is required)."""
    mod = codec.schema_module(schema)
    fields: tuple[FieldInfo, ...] = mod.FIELDS[cls]
    base = {f.name: _one(f, mod, schema) for f in fields if not f.optional}
    options = [f for f in fields if f.optional and f.kind == "elem"]

    def ok(extra: dict[str, Any]) -> bool:
        return _encodes(mod, schema, cls(**base, **extra))

    # a required repeated element with minOccurs > 1 (-20 WPT PulseSequenceOrder: 2): the
    # metadata has no minimum count, so grow the minimal instance's count until it encodes
    least: dict[str, int] = {}
    for f in fields:
        if f.repeated and not f.optional and not ok({}):
            for n in range(2, 9):
                trial = {**base, f.name: base[f.name] * n}
                if _encodes(mod, schema, cls(**trial)):
                    base[f.name] = trial[f.name]
                    least[f.name] = n
                    break
    _LEAST[schema, cls] = least
    choices: list[tuple[str, ...]] = []
    required = not ok({})
    if required:
        # the minimal instance needs one of the fields that fix it: a required choice
        fixing = [f for f in options if ok({f.name: _one(f, mod, schema)})]
        if not fixing:
            raise ValueError(f"no minimal valid {cls.__name__} found")
        choices.append(tuple(f.name for f in fixing))
        base[fixing[0].name] = _one(fixing[0], mod, schema)
        options = [f for f in options if f not in fixing]
    good = [f for f in options if ok({f.name: _one(f, mod, schema)})]
    _LONERS[schema, cls] = tuple(f.name for f in options if f not in good)
    parent = {f.name: f.name for f in good}

    def find(x: str) -> str:
        while parent[x] != x:
            x = parent[x]
        return x

    for i, f in enumerate(good):
        for g in good[i + 1 :]:
            if not ok({f.name: _one(f, mod, schema), g.name: _one(g, mod, schema)}):
                parent[find(g.name)] = find(f.name)
    groups: dict[str, list[str]] = {}
    for f in good:
        groups.setdefault(find(f.name), []).append(f.name)
    choices.extend(tuple(names) for names in groups.values() if len(names) > 1)
    if required:
        base.pop(choices[0][0])
        base[choices[0][0]] = _one(next(f for f in fields if f.name == choices[0][0]), mod, schema)
    return base, tuple(choices), required


def choice_groups(schema: str, cls: type) -> tuple[tuple[tuple[str, ...], ...], bool]:
    """The flattened ``xs:choice`` groups of ``cls`` and whether the first is required."""
    _base, choices, required = _analysis(schema, cls)
    return choices, required


def minimal(schema: str, cls: type) -> Any:
    """A small valid instance of ``cls`` (required fields only, plus a required choice)."""
    base, _choices, _required = _analysis(schema, cls)
    return cls(**base)


@cache
def instances(
    schema: str, cls: type, skip: frozenset[type] = frozenset()
) -> st.SearchStrategy[Any]:
    """Random valid instances of ``cls``; classes in ``skip`` are left out where optional."""
    mod = codec.schema_module(schema)
    fields: tuple[FieldInfo, ...] = mod.FIELDS[cls]
    choices, required = choice_groups(schema, cls)
    if _LONERS[schema, cls]:
        raise ValueError(
            f"{cls.__name__}: {', '.join(_LONERS[schema, cls])} cannot stand alone and the"
            " metadata does not say what they need: skip the class"
        )
    in_choice = {name for group in choices for name in group}
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for f in fields:
        if f.name in in_choice:
            continue
        values = _field_values(f, schema, skip, least=_LEAST[schema, cls].get(f.name, 1))
        if values is None:  # only skipped classes fit here: leave the field absent
            continue
        parts[f.name] = st.one_of(st.none(), values) if f.optional and not f.repeated else values
    fixed = st.fixed_dictionaries(parts)
    by_name = {f.name: f for f in fields}
    for index, group in enumerate(choices):
        options = []
        for name in group:
            values = _field_values(by_name[name], schema, skip, at_least_one=True)
            if values is not None:
                options.append(values.map(lambda v, n=name: {n: v}))
        if not (index == 0 and required):
            options.append(st.just({}))
        fixed = st.tuples(fixed, st.one_of(options)).map(lambda p: {**p[0], **p[1]})
    return fixed.map(lambda kwargs: cls(**kwargs))


def _field_values(
    f: FieldInfo,
    schema: str,
    skip: frozenset[type],
    *,
    at_least_one: bool = False,
    least: int = 1,
) -> st.SearchStrategy[Any] | None:
    if f.kind != "elem":
        item: st.SearchStrategy[Any] = simple_values(f.tinfo)
    else:
        options = []
        for _ns, _local, tinfo in _members(f):
            if tinfo[0] != "class":
                options.append(simple_values(tinfo))
            elif tinfo[1] not in skip:
                options.append(st.deferred(lambda c=tinfo[1]: instances(schema, c, skip)))
        if not options:
            if not f.optional:
                raise ValueError(f"{f.name} is required but every member is skipped")
            return None
        item = st.one_of(options)
    if not f.repeated:
        return item
    cap = MAX_ITEMS if f.max < 0 else min(f.max, MAX_ITEMS)
    low = least if (at_least_one or not f.optional) else 0
    cap = max(cap, low)
    return st.lists(item, min_size=low, max_size=cap).map(tuple)


def body_members(schema: str) -> list[tuple[str, type]]:
    """(element name, class) of every non-abstract member of the Body substitution group."""
    mod = codec.schema_module(schema)
    (f,) = mod.FIELDS[mod.Body]
    return [(m[1], m[2][1]) for m in _members(f)]


def messages(schema: str, body_cls: type | None = None) -> st.SearchStrategy[Any]:
    """Whole V2G_Messages (ISO-2 or DIN) with a body of ``body_cls`` (any member if None).

    A header Signature is generated without KeyInfo: that subtree (DSAKeyValue's P/Q
    pair, PGPData's choice of sequences, wildcard content) carries co-occurrence rules the
    flattened metadata does not express, and ISO 15118 signatures do not use it.
    """
    mod = codec.schema_module(schema)
    skip = frozenset({mod.KeyInfo})
    if body_cls is None:
        body = instances(schema, mod.Body, skip)
    else:
        body = instances(schema, body_cls, skip).map(lambda b: mod.Body(body_element=b))
    header = instances(schema, mod.MessageHeader, skip)
    return st.builds(mod.V2G_Message, header=header, body=body)


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


ISO20_SCHEMAS = ("iso20-common", "iso20-ac", "iso20-dc", "iso20-wpt", "iso20-acdp")


def iso20_messages(schema: str) -> list[tuple[str, type]]:
    """(element name, class) of every ISO 15118-20 message of a schema set: the global
    elements of its own namespace named ...Req / ...Res (no V2G_Message wrapper in -20)."""
    mod = codec.schema_module(schema)
    roots: tuple[RootInfo, ...] = mod.DOCUMENT
    own = {r.ns for r in roots if r.local.endswith(("Req", "Res"))}
    assert len(own) == 1, own
    return [
        (r.local, r.cls)
        for r in roots
        if r.ns in own and r.cls is not None and r.local.endswith(("Req", "Res"))
    ]


def iso20_message(schema: str, cls: type) -> st.SearchStrategy[Any]:
    """Random valid -20 messages of ``cls``; a header Signature comes without KeyInfo, as
    in :func:`messages`."""
    mod = codec.schema_module(schema)
    return instances(schema, cls, frozenset({mod.KeyInfo}))
