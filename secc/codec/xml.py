"""XML and JSON views of decoded EXI values, driven only by the ``FIELDS`` metadata.

The generated modules describe every class field by field (``secc.codec.exi.meta``), so one
walker serves every class of ISO-2, DIN, the appHandshake, xmldsig and the five ISO 15118-20
schema sets (CommonMessages, AC, DC, WPT, ACDP; CommonTypes for the shared types)::

    root, msg = decode_document(data, "iso2")
    text = to_xml(msg, root=root)           # pretty-printed, namespaced XML
    root, again = from_xml(text, "iso2")    # == msg, so encode(again) == data
    obj = to_json(msg)                      # {"V2G_Message": {"Header": {...}, ...}}
    root, again = from_json(obj, "iso2")

XML: element qnames come from the metadata, attributes are qualified as the schema
qualifies them (ISO-2 ``v2gci_b:Id``, xmldsig ``Id``), prefixes are fixed
(:data:`PREFIXES`; -20: ``v2gci_cm``, ``v2gci_ct``, ``v2gci_ac``, ``v2gci_dc``,
``v2gci_wpt``, ``v2gci_acdp``).  Values use the XSD lexical forms: hexBinary in uppercase hex,
base64Binary in base64, booleans ``true``/``false``, enumerations by value.

JSON: one key naming the root element; element local names as keys (a substitution group
member by its own name: ``"Body": {"CurrentDemandReq": {...}}``), a list for every
repeatable element, ``"@Name"`` for attributes, ``"#text"`` for the simple content of an
element that also has attributes; bytes as hex or base64 as the type says.

Empty values.  EXI has two encodings for an empty string or binary value (EXI-NOTES §8):
CH("") (decoded as plain ``""`` / ``b""``) and the second-level EE EXIficient writes
(decoded as :class:`EmptyStr` / :class:`EmptyBytes`, so that re-encoding gives the same
bytes).  XML cannot tell ``<a></a>`` from ``<a/>``, so the second form is marked with the
processing instruction ``<?secc-exi empty-ee?>`` as the element's only content: a
processing instruction is the XML means for application data outside the document's
content, schema validators ignore it, and ``<a/>`` still reads back as plain ``""``.
In JSON the second form is ``null`` (no character event at all) and CH("") is ``""``.

Every problem in the input raises :class:`XmlError` naming the element path, never a raw
Python exception.  Children are matched to fields in schema order, so one ambiguity
remains: xmldsig ``PGPData`` declares ``PGPKeyPacket`` in both branches of a choice and a
lone packet reads back into the first branch (no ISO 15118 message carries PGPData).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from enum import Enum
from types import ModuleType
from typing import Any

try:
    from lxml import etree
except ModuleNotFoundError as exc:  # an extra: a charge controller installs without it
    raise ModuleNotFoundError(
        "the XML view needs lxml: pip install 'secc[xml]'", name="lxml"
    ) from exc

from secc.codec import schema_module
from secc.codec.errors import CodecError
from secc.codec.exi.bits import not_xml_char
from secc.codec.exi.meta import FieldInfo, RootInfo
from secc.codec.exi.runtime import EmptyBytes, EmptyStr

__all__ = [
    "EMPTY_PI_TARGET",
    "PREFIXES",
    "XmlError",
    "from_element",
    "from_json",
    "from_xml",
    "to_element",
    "to_json",
    "to_xml",
]

PREFIXES: dict[str, str] = {
    "urn:iso:15118:2:2013:MsgDef": "v2gci_d",
    "urn:iso:15118:2:2013:MsgHeader": "v2gci_h",
    "urn:iso:15118:2:2013:MsgBody": "v2gci_b",
    "urn:iso:15118:2:2013:MsgDataTypes": "v2gci_t",
    "urn:din:70121:2012:MsgDef": "v2gdin_d",
    "urn:din:70121:2012:MsgHeader": "v2gdin_h",
    "urn:din:70121:2012:MsgBody": "v2gdin_b",
    "urn:din:70121:2012:MsgDataTypes": "v2gdin_t",
    "urn:iso:15118:2:2010:AppProtocol": "v2gapp",
    "urn:iso:std:iso:15118:-20:CommonMessages": "v2gci_cm",
    "urn:iso:std:iso:15118:-20:CommonTypes": "v2gci_ct",
    "urn:iso:std:iso:15118:-20:AC": "v2gci_ac",
    "urn:iso:std:iso:15118:-20:DC": "v2gci_dc",
    "urn:iso:std:iso:15118:-20:WPT": "v2gci_wpt",
    "urn:iso:std:iso:15118:-20:ACDP": "v2gci_acdp",
    "http://www.w3.org/2000/09/xmldsig#": "xmlsig",
}
_NSMAP: dict[str, str] = {prefix: ns for ns, prefix in PREFIXES.items()}
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
EMPTY_PI_TARGET = "secc-exi"
_EMPTY_PI_TEXT = "empty-ee"
_INT = re.compile(r"[+-]?[0-9]+")


class XmlError(CodecError):
    """The XML or JSON form is not a valid message (or a value has no XML form)."""

    def __str__(self) -> str:
        return f"{self.reason} at /{'/'.join(self.path)}" if self.path else self.reason


# ---------------------------------------------------------------------------- helpers


def _brief(x: object) -> str:
    shown = repr(x)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def _qname(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}" if ns else local


def _shown(ns: str, local: str) -> str:
    prefix = PREFIXES.get(ns)
    if prefix:
        return f"{prefix}:{local}"
    return _qname(ns, local)


def _roots(mod: ModuleType, fragment: bool) -> tuple[RootInfo, ...]:
    roots: tuple[RootInfo, ...] = mod.FRAGMENT if fragment else mod.DOCUMENT
    return roots


def _module_of(value: object, schema: str | None) -> ModuleType:
    if schema is not None:
        return schema_module(schema)
    module = type(value).__module__
    prefix = "secc.codec._generated."
    if not module.startswith(prefix):
        raise XmlError(f"{type(value).__name__} is not a generated message class: pass schema=")
    return schema_module(module[len(prefix) :])


def _root_for(
    value: object, root: RootInfo | None, schema: str | None, name: str | None, fragment: bool
) -> tuple[ModuleType, RootInfo]:
    mod = _module_of(value, schema)
    if root is not None:
        return mod, root
    roots = _roots(mod, fragment)
    if name is not None:
        ns, _, local = name[1:].partition("}") if name.startswith("{") else ("", "", name)
        hits = [r for r in roots if r.local == local and (not ns or r.ns == ns)]
    else:
        hits = [r for r in roots if r.cls is not None and r.cls is type(value)]
    if len(hits) != 1:
        what = name or type(value).__name__
        raise XmlError(
            f"{'no' if not hits else 'more than one'} root element for {what}: pass root="
        )
    return mod, hits[0]


def _members(f: FieldInfo) -> tuple[tuple[str, str, tuple[Any, ...]], ...]:
    members: tuple[tuple[str, str, tuple[Any, ...]], ...] = f.tinfo[1]
    return members


def _member_of(f: FieldInfo, item: object) -> tuple[str, str, tuple[Any, ...]]:
    members = _members(f)
    if len(members) == 1:
        return members[0]
    for m in members:
        if m[2][0] == "class" and type(item) is m[2][1]:
            return m
    raise XmlError(f"{type(item).__name__} is not a member of the {f.local} group")


def _lexical(value: object, tinfo: tuple[Any, ...]) -> str:
    """A Python value in its XSD lexical form (checked against the type)."""
    kind = tinfo[0]
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if kind == "bool" and isinstance(value, bool):
        return "true" if value else "false"
    if kind == "enum":
        try:
            member: Enum = tinfo[1](value)
        except ValueError:
            raise XmlError(f"{_brief(value)} is not a {tinfo[1].__name__}") from None
        return str(member.value)
    if kind == "str" and isinstance(value, str):
        bad = not_xml_char(value)  # the codec refuses these too (EXI carries XML text)
        if bad:
            raise XmlError(f"character U+{ord(bad):04X} has no XML 1.0 form")
        return value
    if kind == "bytes" and isinstance(value, (bytes, bytearray)):
        if tinfo[3] == "hex":
            return bytes(value).hex().upper()
        return base64.b64encode(value).decode("ascii")
    raise XmlError(f"{_brief(value)} is not a valid {kind} value")


# set by from_xml / from_element / from_json(lenient=True): values outside their range
# and maxLength facets are taken as they are written (a lenient encode then writes them
# if their EXI representation holds them, as a decoded stream with violations had them)
_LENIENT: ContextVar[bool] = ContextVar("secc_codec_xml_lenient", default=False)


@contextmanager
def _leniency(lenient: bool) -> Iterator[None]:
    token = _LENIENT.set(lenient)
    try:
        yield
    finally:
        _LENIENT.reset(token)


def _parse_value(text: str, tinfo: tuple[Any, ...]) -> Any:
    """The inverse of :func:`_lexical`, with the facets the encoder enforces."""
    kind = tinfo[0]
    if kind == "int":
        t = text.strip()
        if not _INT.fullmatch(t) or len(t) > 100:
            raise XmlError(f"{t[:40]!r} is not an integer of at most 100 digits")
        n = int(t)
        lo, hi = tinfo[1], tinfo[2]
        if ((lo is not None and n < lo) or (hi is not None and n > hi)) and not _LENIENT.get():
            raise XmlError(f"{n} is outside {lo}..{hi}")
        return n
    if kind == "bool":
        t = text.strip()
        if t in {"true", "1"}:
            return True
        if t in {"false", "0"}:
            return False
        raise XmlError(f"{_brief(text)} is not a boolean (true or false)")
    if kind == "enum":
        try:
            return tinfo[1](text.strip())
        except ValueError:
            allowed = ", ".join(e.value for e in tinfo[1])
            if len(allowed) > 120:
                allowed = allowed[:117] + "..."
            raise XmlError(f"{text.strip()!r} is not one of {allowed}") from None
    if kind == "str":
        if tinfo[2] is not None and len(text) > tinfo[2] and not _LENIENT.get():
            raise XmlError(f"{len(text)} characters, at most {tinfo[2]} allowed")
        return text
    if kind == "bytes":
        try:
            if tinfo[3] == "hex":
                raw = bytes.fromhex(text.strip())
            else:
                raw = base64.b64decode("".join(text.split()), validate=True)
        except (ValueError, binascii.Error):
            form = "hexBinary" if tinfo[3] == "hex" else "base64Binary"
            raise XmlError(f"{text.strip()[:40]!r} is not valid {form}") from None
        if tinfo[2] is not None and len(raw) > tinfo[2] and not _LENIENT.get():
            raise XmlError(f"{len(raw)} octets, at most {tinfo[2]} allowed")
        return raw
    raise XmlError(f"values of type {kind} have no text form")


def _empty_of(tinfo: tuple[Any, ...]) -> Any:
    if tinfo[0] == "str":
        return EmptyStr("")
    if tinfo[0] == "bytes":
        return EmptyBytes(b"")
    raise XmlError(f"an empty {tinfo[0]} value cannot be encoded")


def _check_class(value: object, cls: type) -> None:
    if type(value) is not cls:
        raise XmlError(f"{type(value).__name__} given where a {cls.__name__} belongs")


def _field_items(value: object, f: FieldInfo) -> tuple[Any, ...]:
    v = getattr(value, f.name)
    if v is None:
        if not f.optional:
            raise XmlError(f"required field {f.name} ({f.local}) is missing")
        return ()
    if f.repeated:
        if not isinstance(v, (tuple, list)):
            raise XmlError(f"{f.name} must be a tuple, got {type(v).__name__}")
        if not v and not f.optional:
            raise XmlError(f"required field {f.name} ({f.local}) is empty")
        return tuple(v)
    return (v,)


# ------------------------------------------------------------------------- to XML


def to_element(
    value: object,
    *,
    root: RootInfo | None = None,
    schema: str | None = None,
    name: str | None = None,
    fragment: bool = False,
) -> etree._Element:
    """The element tree of a decoded value (``root`` as ``decode_document`` returns it)."""
    mod, root = _root_for(value, root, schema, name, fragment)
    el = etree.Element(_qname(root.ns, root.local), nsmap=_NSMAP)
    try:
        if root.cls is None:
            _simple_to(el, value, root.tinfo)
        else:
            _class_to(el, value, root.cls, mod)
    except XmlError as e:
        e.at(root.local)
        raise
    etree.cleanup_namespaces(el)
    return el


def to_xml(value: object, **where: Any) -> str:
    """Pretty-printed XML text of a decoded value (keywords as :func:`to_element`)."""
    text: str = etree.tostring(to_element(value, **where), pretty_print=True, encoding="unicode")
    return text


def _simple_to(el: etree._Element, value: object, tinfo: tuple[Any, ...]) -> None:
    if type(value) in (EmptyStr, EmptyBytes):
        el.append(etree.ProcessingInstruction(EMPTY_PI_TARGET, _EMPTY_PI_TEXT))
    else:
        el.text = _lexical(value, tinfo)


def _class_to(el: etree._Element, value: object, cls: type, mod: ModuleType) -> None:
    _check_class(value, cls)
    for f in mod.FIELDS[cls]:
        items = _field_items(value, f)
        if f.kind == "attr":
            for item in items:
                el.set(_qname(f.ns, f.local), _lexical(item, f.tinfo))
        elif f.kind == "value":
            for item in items:
                _simple_to(el, item, f.tinfo)
        else:
            for item in items:
                ns, local, tinfo = _member_of(f, item)
                child = etree.SubElement(el, _qname(ns, local))
                try:
                    if tinfo[0] == "class":
                        _class_to(child, item, tinfo[1], mod)
                    else:
                        _simple_to(child, item, tinfo)
                except XmlError as e:
                    e.at(local)
                    raise


# ----------------------------------------------------------------------- from XML


def from_xml(
    text: str | bytes, schema: str, *, fragment: bool = False, lenient: bool = False
) -> tuple[RootInfo, Any]:
    """Parse XML text (no DTD, no entities, no network) into (root info, value);
    ``lenient``: values outside their range / maxLength facets are accepted (for
    ``codec.encode(..., lenient=True)``: the XML of a stream decoded with violations)."""
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        doc = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        raise XmlError(f"not well-formed XML: {e}") from None
    return from_element(doc, schema, fragment=fragment, lenient=lenient)


def from_element(
    el: etree._Element, schema: str, *, fragment: bool = False, lenient: bool = False
) -> tuple[RootInfo, Any]:
    """The value an element tree describes, checked against the schema's metadata
    (``lenient`` as in :func:`from_xml`)."""
    with _leniency(lenient):
        return _from_element(el, schema, fragment)


def _from_element(el: etree._Element, schema: str, fragment: bool) -> tuple[RootInfo, Any]:
    mod = schema_module(schema)
    if not isinstance(el.tag, str):
        raise XmlError("the document has no root element")
    q = etree.QName(el)
    ns, local = q.namespace or "", q.localname
    root = next((r for r in _roots(mod, fragment) if r.ns == ns and r.local == local), None)
    if root is None:
        kind = "fragment" if fragment else "global"
        raise XmlError(f"{_shown(ns, local)} is not a {kind} element of the {schema} schema")
    try:
        value = _simple_from(el, root.tinfo) if root.cls is None else _class_from(el, root.cls, mod)
    except XmlError as e:
        e.at(local)
        raise
    return root, value


def _content(el: etree._Element) -> tuple[list[etree._Element], bool]:
    """Child elements (comments dropped) and whether the empty-EE marker is there."""
    children: list[etree._Element] = []
    marker = False
    for child in el:
        if isinstance(child, etree._ProcessingInstruction):
            if child.target == EMPTY_PI_TARGET and (child.text or "").strip() == _EMPTY_PI_TEXT:
                marker = True
                continue
            raise XmlError(f"unknown processing instruction <?{child.target!s}?>")
        if isinstance(child.tag, str):
            children.append(child)
    return children, marker


def _text_of(el: etree._Element) -> str:
    parts = [el.text or ""]
    parts.extend(child.tail or "" for child in el)
    return "".join(parts)


def _simple_from(el: etree._Element, tinfo: tuple[Any, ...]) -> Any:
    if len(el.attrib):
        raise XmlError(f"unexpected attribute {next(iter(el.attrib))!s}")
    children, marker = _content(el)
    if children:
        raise XmlError(f"unexpected element {_shown(*_split(children[0]))} in a simple value")
    text = _text_of(el)
    if marker:
        if text.strip():  # whitespace around the marker is pretty-printing
            raise XmlError(f"<?{EMPTY_PI_TARGET} {_EMPTY_PI_TEXT}?> marks an empty value")
        return _empty_of(tinfo)
    return _parse_value(text, tinfo)


def _split(el: etree._Element) -> tuple[str, str]:
    q = etree.QName(el)
    return q.namespace or "", q.localname


def _attrs_from(el: etree._Element, fields: tuple[FieldInfo, ...]) -> dict[str, Any]:
    attrs = [f for f in fields if f.kind == "attr"]
    out: dict[str, Any] = {}
    for key, text in el.attrib.items():
        q = etree.QName(key)
        ns, local = q.namespace or "", q.localname
        if ns == _XSI and local in {"schemaLocation", "noNamespaceSchemaLocation"}:
            continue
        hit = next((f for f in attrs if f.ns == ns and f.local == local), None)
        if hit is None and not ns:
            # tolerate an unqualified attribute where the schema qualifies it
            same = [f for f in attrs if f.local == local]
            hit = same[0] if len(same) == 1 else None
        if hit is None:
            raise XmlError(f"unknown attribute {_shown(ns, local)}")
        try:
            out[hit.name] = _parse_value(str(text), hit.tinfo)
        except XmlError as e:
            e.at("@" + local)
            raise
    for f in attrs:
        if f.name not in out and not f.optional:
            raise XmlError(f"required attribute {_shown(f.ns, f.local)} is missing")
    return out


def _class_from(el: etree._Element, cls: type, mod: ModuleType) -> Any:
    fields: tuple[FieldInfo, ...] = mod.FIELDS[cls]
    kwargs = _attrs_from(el, fields)
    value_field = next((f for f in fields if f.kind == "value"), None)
    if value_field is not None:
        children, marker = _content(el)
        if children:
            raise XmlError(f"unexpected element {_shown(*_split(children[0]))}")
        text = _text_of(el)
        if marker and text.strip():
            raise XmlError(f"<?{EMPTY_PI_TARGET} {_EMPTY_PI_TEXT}?> marks an empty value")
        tinfo = value_field.tinfo
        kwargs[value_field.name] = _empty_of(tinfo) if marker else _parse_value(text, tinfo)
        return cls(**kwargs)
    children, marker = _content(el)
    if marker or _text_of(el).strip():
        raise XmlError(f"unexpected text in {cls.__name__} (element content only)")
    elems = [f for f in fields if f.kind == "elem"]
    found: dict[str, list[Any]] = {f.name: [] for f in elems}
    j = 0
    for child in children:
        key = _split(child)
        while j < len(elems):
            f = elems[j]
            member = next((m for m in _members(f) if (m[0], m[1]) == key), None)
            room = f.max < 0 or len(found[f.name]) < f.max
            if member is not None and room:
                break
            j += 1
        else:
            declared = any((m[0], m[1]) == key for f in elems for m in _members(f))
            why = "out of order or repeated too often" if declared else "not declared here"
            raise XmlError(f"unexpected element {_shown(*key)} ({why})")
        try:
            tinfo = member[2]
            if tinfo[0] == "class":
                found[f.name].append(_class_from(child, tinfo[1], mod))
            else:
                found[f.name].append(_simple_from(child, tinfo))
        except XmlError as e:
            e.at(key[1])
            raise
    for f in elems:
        items = found[f.name]
        if not items and not f.optional:
            raise XmlError(f"required element {_shown(f.ns, f.local)} is missing")
        kwargs[f.name] = tuple(items) if f.repeated else (items[0] if items else None)
    return cls(**kwargs)


# ------------------------------------------------------------------------------ JSON


def to_json(
    value: object,
    *,
    root: RootInfo | None = None,
    schema: str | None = None,
    name: str | None = None,
    fragment: bool = False,
) -> dict[str, Any]:
    """The JSON-ready dict form of a decoded value: ``{root local name: content}``."""
    mod, root = _root_for(value, root, schema, name, fragment)
    try:
        body = (
            _json_simple(value, root.tinfo)
            if root.cls is None
            else _json_class(value, root.cls, mod)
        )
    except XmlError as e:
        e.at(root.local)
        raise
    return {root.local: body}


def _json_simple(value: object, tinfo: tuple[Any, ...]) -> Any:
    if type(value) in (EmptyStr, EmptyBytes):
        return None
    if tinfo[0] == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tinfo[0] == "bool" and isinstance(value, bool):
        return value
    if tinfo[0] == "str" and isinstance(value, str):
        return value  # any code point: JSON escapes what XML cannot carry
    return _lexical(value, tinfo)


def _json_class(value: object, cls: type, mod: ModuleType) -> dict[str, Any]:
    _check_class(value, cls)
    out: dict[str, Any] = {}
    for f in mod.FIELDS[cls]:
        items = _field_items(value, f)
        if not items:
            continue
        if f.kind == "attr":
            out["@" + f.local] = _json_simple(items[0], f.tinfo)
        elif f.kind == "value":
            out["#text"] = _json_simple(items[0], f.tinfo)
        else:
            for item in items:
                _ns, local, tinfo = _member_of(f, item)
                try:
                    if tinfo[0] == "class":
                        jv: Any = _json_class(item, tinfo[1], mod)
                    else:
                        jv = _json_simple(item, tinfo)
                except XmlError as e:
                    e.at(local)
                    raise
                if f.repeated:
                    out.setdefault(local, []).append(jv)
                elif local in out:
                    raise XmlError(f"{local} twice: no JSON form for this value")
                else:
                    out[local] = jv
    return out


def from_json(
    obj: object, schema: str, *, fragment: bool = False, lenient: bool = False
) -> tuple[RootInfo, Any]:
    """Parse the dict form (as :func:`to_json` writes it) into (root info, value)
    (``lenient`` as in :func:`from_xml`)."""
    with _leniency(lenient):
        return _from_json(obj, schema, fragment)


def _from_json(obj: object, schema: str, fragment: bool) -> tuple[RootInfo, Any]:
    mod = schema_module(schema)
    if not isinstance(obj, Mapping) or len(obj) != 1:
        raise XmlError("JSON form: expected an object with exactly one key, the root element")
    ((key, body),) = obj.items()
    key = str(key)
    ns, _, local = key[1:].partition("}") if key.startswith("{") else ("", "", key)
    hits = [r for r in _roots(mod, fragment) if r.local == local and (not ns or r.ns == ns)]
    if len(hits) != 1:
        problem = "is not a" if not hits else "names more than one"
        raise XmlError(f"{key} {problem} root element of the {schema} schema")
    root = hits[0]
    try:
        if root.cls is None:
            value = _json_value(body, root.tinfo)
        else:
            value = _json_class_from(body, root.cls, mod)
    except XmlError as e:
        e.at(root.local)
        raise
    return root, value


def _json_value(v: object, tinfo: tuple[Any, ...]) -> Any:
    kind = tinfo[0]
    if v is None:
        return _empty_of(tinfo)
    if kind == "int":
        if not isinstance(v, int) or isinstance(v, bool):
            raise XmlError(f"{str(v)[:40]!r} is not a JSON integer")
        if v.bit_length() > 332:  # 100 decimal digits, as in the XML form
            raise XmlError("an integer of more than 100 digits")
        return _parse_value(str(v), tinfo)
    if kind == "bool":
        if not isinstance(v, bool):
            raise XmlError(f"{_brief(v)} is not a JSON boolean")
        return v
    if not isinstance(v, str):
        raise XmlError(f"{_brief(v)} is not a JSON string")
    return _parse_value(v, tinfo)


def _json_class_from(body: object, cls: type, mod: ModuleType) -> Any:
    if not isinstance(body, Mapping):
        raise XmlError(f"expected a JSON object for {cls.__name__}, got {type(body).__name__}")
    fields: tuple[FieldInfo, ...] = mod.FIELDS[cls]
    by_key: dict[str, tuple[FieldInfo, tuple[Any, ...]]] = {}
    for f in fields:
        if f.kind == "attr":
            by_key.setdefault("@" + f.local, (f, f.tinfo))
        elif f.kind == "value":
            by_key.setdefault("#text", (f, f.tinfo))
        else:
            for _ns, local, tinfo in _members(f):
                by_key.setdefault(local, (f, tinfo))
    kwargs: dict[str, Any] = {}
    for key, v in body.items():
        hit = by_key.get(str(key))
        if hit is None:
            raise XmlError(f"unknown key {key!r} in {cls.__name__}")
        f, tinfo = hit
        if f.name in kwargs:
            raise XmlError(f"{key}: {f.local} given twice")
        try:
            if f.repeated:
                if not isinstance(v, list):
                    raise XmlError(
                        f"a repeatable element needs a JSON list, got {type(v).__name__}"
                    )
                if f.max >= 0 and len(v) > f.max:
                    raise XmlError(f"{len(v)} items, at most {f.max} allowed")
                kwargs[f.name] = tuple(_json_member(x, tinfo, mod) for x in v)
            else:
                if isinstance(v, list):
                    raise XmlError("a single element, not a list, belongs here")
                kwargs[f.name] = _json_member(v, tinfo, mod)
        except XmlError as e:
            e.at(str(key))
            raise
    for f in fields:
        given = kwargs.get(f.name)
        if not f.optional and (given is None or given == ()):
            what = {"attr": "@" + f.local, "value": "#text"}.get(f.kind, f.local)
            raise XmlError(f"required {what} is missing")
    return cls(**kwargs)


def _json_member(v: object, tinfo: tuple[Any, ...], mod: ModuleType) -> Any:
    if tinfo[0] == "class":
        return _json_class_from(v, tinfo[1], mod)
    return _json_value(v, tinfo)
