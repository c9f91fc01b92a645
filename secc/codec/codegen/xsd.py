"""XSD component model, read with lxml (build time only).

Reads a schema set (a root XSD and everything it imports) into plain data: simple types
resolved to one EXI datatype each, complex types with their attribute uses and particle
trees (extension chains already concatenated, base content first), global element
declarations with their substitution groups.  Only the XSD features the ISO 15118-2,
DIN SPEC 70121, AppProtocol and xmldsig schemas use are supported; anything else stops
generation with a clear error rather than producing a wrong grammar.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

try:
    from lxml import etree
except ModuleNotFoundError as exc:  # an extra: a charge controller installs without it
    raise ModuleNotFoundError(
        "the codec generator needs lxml: pip install 'secc[xml]'", name="lxml"
    ) from exc

XS = "http://www.w3.org/2001/XMLSchema"
_XS = "{" + XS + "}"
UNBOUNDED = -1

QName = tuple[str, str]  # (namespace uri, local name)


class SchemaError(Exception):
    """The XSDs use something the generator does not support, or are inconsistent."""


# Builtin datatypes: name -> (kind, min, max).  kind: int, bool, string, binary-hex,
# binary-b64.  Integer bounds are None where unbounded.
_BUILTIN: dict[str, tuple[str, int | None, int | None]] = {
    "string": ("string", None, None),
    "normalizedString": ("string", None, None),
    "token": ("string", None, None),
    "anyURI": ("string", None, None),
    "ID": ("string", None, None),
    "IDREF": ("string", None, None),
    "NCName": ("string", None, None),
    "boolean": ("bool", None, None),
    "hexBinary": ("hex", None, None),
    "base64Binary": ("b64", None, None),
    "integer": ("int", None, None),
    "long": ("int", -(2**63), 2**63 - 1),
    "int": ("int", -(2**31), 2**31 - 1),
    "short": ("int", -(2**15), 2**15 - 1),
    "byte": ("int", -128, 127),
    "nonNegativeInteger": ("int", 0, None),
    "positiveInteger": ("int", 1, None),
    "unsignedLong": ("int", 0, 2**64 - 1),
    "unsignedInt": ("int", 0, 2**32 - 1),
    "unsignedShort": ("int", 0, 2**16 - 1),
    "unsignedByte": ("int", 0, 255),
}


@dataclass(frozen=True)
class SimpleType:
    """A simple type resolved to the one EXI representation it gets."""

    name: str  # XSD name (local), or the builtin's name
    kind: str  # int | bool | string | hex | b64 | enum
    min: int | None = None
    max: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    enum: tuple[str, ...] = ()
    builtin: str = ""


@dataclass
class Particle:
    """One node of a content model: element, wildcard or model group."""

    kind: str  # element | any | sequence | choice
    min: int = 1
    max: int = 1  # UNBOUNDED for unbounded
    element: ElementDecl | None = None
    children: list[Particle] = field(default_factory=list)


@dataclass
class AttributeUse:
    qname: QName
    type: SimpleType
    required: bool


@dataclass
class ComplexType:
    qname: QName
    attributes: list[AttributeUse] = field(default_factory=list)
    content: Particle | None = None  # element-only / mixed content
    simple: SimpleType | None = None  # simple content
    mixed: bool = False
    abstract: bool = False
    anonymous_of: QName | None = None  # element qname for anonymous types
    base: QName | None = None


@dataclass
class ElementDecl:
    qname: QName
    type_qname: QName | None = None  # named complex or simple type
    simple: SimpleType | None = None
    complex: ComplexType | None = None
    abstract: bool = False
    nillable: bool = False
    substitution_head: QName | None = None
    is_global: bool = False


@dataclass
class SchemaSet:
    """Everything reachable from one root XSD."""

    root: Path
    complex_types: dict[QName, ComplexType] = field(default_factory=dict)
    simple_types: dict[QName, SimpleType] = field(default_factory=dict)
    elements: dict[QName, ElementDecl] = field(default_factory=dict)  # global
    local_elements: list[ElementDecl] = field(default_factory=list)
    substitutions: dict[QName, list[QName]] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)

    def all_element_decls(self) -> list[ElementDecl]:
        return list(self.elements.values()) + self.local_elements


class _Doc:
    def __init__(self, path: Path, tree: etree._ElementTree) -> None:
        self.path = path
        self.root = tree.getroot()
        self.tns = self.root.get("targetNamespace", "")
        self.element_qualified = self.root.get("elementFormDefault") == "qualified"
        self.attribute_qualified = self.root.get("attributeFormDefault") == "qualified"

    def resolve(self, node: etree._Element, ref: str) -> QName:
        prefix, _, local = ref.rpartition(":")
        nsmap = node.nsmap
        uri = nsmap.get(prefix or None)
        if uri is None:
            if not prefix:
                uri = ""
            else:
                raise SchemaError(f"{self.path}: unknown prefix in {ref!r}")
        return (uri, local)


class Loader:
    """Loads a schema set and resolves all references."""

    def __init__(self, root: Path) -> None:
        self.set = SchemaSet(root=root)
        self._docs: list[_Doc] = []
        self._seen: set[Path] = set()
        self._raw_simple: dict[QName, tuple[_Doc, etree._Element]] = {}
        self._raw_complex: dict[QName, tuple[_Doc, etree._Element]] = {}
        self._raw_elements: dict[QName, tuple[_Doc, etree._Element]] = {}
        self._load(root.resolve())
        self._build()

    def _load(self, path: Path) -> None:
        if path in self._seen:
            return
        self._seen.add(path)
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        doc = _Doc(path, etree.parse(str(path), parser))
        self._docs.append(doc)
        if doc.tns not in self.set.namespaces:
            self.set.namespaces.append(doc.tns)
        for child in doc.root:
            if not isinstance(child.tag, str):
                continue
            tag = child.tag
            name = child.get("name")
            if tag == _XS + "import":
                loc = child.get("schemaLocation")
                if loc:
                    self._load(_locate(path, loc))
            elif tag == _XS + "include":
                raise SchemaError(f"{path}: xs:include is not supported")
            elif tag == _XS + "simpleType" and name:
                self._raw_simple[(doc.tns, name)] = (doc, child)
            elif tag == _XS + "complexType" and name:
                self._raw_complex[(doc.tns, name)] = (doc, child)
            elif tag == _XS + "element" and name:
                self._raw_elements[(doc.tns, name)] = (doc, child)
            elif tag in (_XS + "annotation",):
                continue
            elif tag in (_XS + "group", _XS + "attributeGroup", _XS + "attribute"):
                raise SchemaError(f"{path}: top-level {tag} is not supported")

    # -- simple types ---------------------------------------------------------------
    def simple_type(self, qname: QName) -> SimpleType:
        if qname in self.set.simple_types:
            return self.set.simple_types[qname]
        if qname[0] == XS:
            if qname[1] not in _BUILTIN:
                raise SchemaError(f"unsupported builtin type xs:{qname[1]}")
            kind, lo, hi = _BUILTIN[qname[1]]
            st = SimpleType(name=qname[1], kind=kind, min=lo, max=hi, builtin=qname[1])
        else:
            if qname not in self._raw_simple:
                raise SchemaError(f"unknown simple type {qname}")
            doc, node = self._raw_simple[qname]
            st = self._simple_from_node(doc, node, qname[1])
        self.set.simple_types[qname] = st
        return st

    def _simple_from_node(self, doc: _Doc, node: etree._Element, name: str) -> SimpleType:
        restriction = node.find(_XS + "restriction")
        if restriction is None:
            raise SchemaError(f"{doc.path}: simple type {name}: only restrictions are supported")
        base = self.simple_type(doc.resolve(restriction, restriction.get("base", "")))
        lo, hi = base.min, base.max
        min_len, max_len = base.min_length, base.max_length
        enum: list[str] = []
        for facet in restriction:
            if not isinstance(facet.tag, str):
                continue
            fname = facet.tag.replace(_XS, "")
            value = facet.get("value", "")
            if fname == "enumeration":
                enum.append(value)
            elif fname == "minInclusive":
                lo = int(value)
            elif fname == "maxInclusive":
                hi = int(value)
            elif fname == "length":
                min_len = max_len = int(value)
            elif fname == "minLength":
                min_len = int(value)
            elif fname == "maxLength":
                max_len = int(value)
            elif fname == "annotation":
                continue
            else:
                raise SchemaError(f"{doc.path}: simple type {name}: facet {fname} not supported")
        if enum:
            if base.kind != "string":
                raise SchemaError(f"{doc.path}: {name}: enumeration over {base.kind}")
            return SimpleType(name=name, kind="enum", enum=tuple(enum), builtin=base.builtin)
        return SimpleType(
            name=name,
            kind=base.kind,
            min=lo,
            max=hi,
            min_length=min_len,
            max_length=max_len,
            builtin=base.builtin,
        )

    # -- complex types ----------------------------------------------------------------
    def complex_type(self, qname: QName) -> ComplexType:
        if qname in self.set.complex_types:
            return self.set.complex_types[qname]
        if qname not in self._raw_complex:
            raise SchemaError(f"unknown complex type {qname}")
        doc, node = self._raw_complex[qname]
        ct = ComplexType(qname=qname)
        self.set.complex_types[qname] = ct  # before recursion
        self._fill_complex(doc, node, ct)
        return ct

    def _fill_complex(self, doc: _Doc, node: etree._Element, ct: ComplexType) -> None:
        ct.mixed = node.get("mixed") == "true"
        ct.abstract = node.get("abstract") == "true"
        children = [c for c in node if isinstance(c.tag, str) and c.tag != _XS + "annotation"]
        own_attrs: list[AttributeUse] = []
        content: Particle | None = None
        for child in children:
            tag = child.tag
            if tag in (_XS + "sequence", _XS + "choice"):
                content = self._particle(doc, child)
            elif tag == _XS + "attribute":
                own_attrs.append(self._attribute(doc, child))
            elif tag == _XS + "complexContent":
                if child.get("mixed") == "true":
                    ct.mixed = True
                self._complex_content(doc, child, ct)
                return
            elif tag == _XS + "simpleContent":
                self._simple_content(doc, child, ct)
                return
            elif tag == _XS + "anyAttribute":
                raise SchemaError(f"{doc.path}: anyAttribute not supported")
            else:
                raise SchemaError(f"{doc.path}: {tag} in complexType not supported")
        ct.attributes = own_attrs
        ct.content = content

    def _complex_content(self, doc: _Doc, node: etree._Element, ct: ComplexType) -> None:
        ext = node.find(_XS + "extension")
        if ext is None:
            raise SchemaError(f"{doc.path}: complexContent restriction not supported")
        base_q = doc.resolve(ext, ext.get("base", ""))
        base = self.complex_type(base_q)
        ct.base = base_q
        if base.simple is not None:
            raise SchemaError(f"{doc.path}: complexContent over simple content")
        ext_content: Particle | None = None
        attrs = list(base.attributes)
        for child in ext:
            if not isinstance(child.tag, str) or child.tag == _XS + "annotation":
                continue
            if child.tag in (_XS + "sequence", _XS + "choice"):
                ext_content = self._particle(doc, child)
            elif child.tag == _XS + "attribute":
                attrs.append(self._attribute(doc, child))
            else:
                raise SchemaError(f"{doc.path}: {child.tag} in extension not supported")
        ct.attributes = attrs
        ct.mixed = ct.mixed or base.mixed
        parts = [p for p in (base.content, ext_content) if p is not None]
        if not parts:
            ct.content = None
        elif len(parts) == 1:
            ct.content = parts[0]
        else:
            ct.content = Particle(kind="sequence", children=parts)

    def _simple_content(self, doc: _Doc, node: etree._Element, ct: ComplexType) -> None:
        ext = node.find(_XS + "extension")
        if ext is None:
            raise SchemaError(f"{doc.path}: simpleContent restriction not supported")
        base_q = doc.resolve(ext, ext.get("base", ""))
        if base_q[0] != XS and base_q in self._raw_complex:
            base = self.complex_type(base_q)
            ct.simple = base.simple
            attrs = list(base.attributes)
        else:
            ct.simple = self.simple_type(base_q)
            attrs = []
        for child in ext:
            if not isinstance(child.tag, str) or child.tag == _XS + "annotation":
                continue
            if child.tag != _XS + "attribute":
                raise SchemaError(f"{doc.path}: {child.tag} in simpleContent not supported")
            attrs.append(self._attribute(doc, child))
        ct.attributes = attrs

    def _attribute(self, doc: _Doc, node: etree._Element) -> AttributeUse:
        if node.get("ref"):
            raise SchemaError(f"{doc.path}: attribute refs not supported")
        name = node.get("name", "")
        form = node.get("form")
        qualified = form == "qualified" if form else doc.attribute_qualified
        qname = (doc.tns if qualified else "", name)
        type_ref = node.get("type")
        if type_ref:
            st = self.simple_type(doc.resolve(node, type_ref))
        else:
            inline = node.find(_XS + "simpleType")
            if inline is None:
                st = self.simple_type((XS, "string"))
            else:
                st = self._simple_from_node(doc, inline, name)
        return AttributeUse(qname=qname, type=st, required=node.get("use") == "required")

    def _occurs(self, node: etree._Element) -> tuple[int, int]:
        lo = int(node.get("minOccurs", "1"))
        hi_s = node.get("maxOccurs", "1")
        hi = UNBOUNDED if hi_s == "unbounded" else int(hi_s)
        return lo, hi

    def _particle(self, doc: _Doc, node: etree._Element) -> Particle:
        lo, hi = self._occurs(node)
        tag = node.tag
        if tag in (_XS + "sequence", _XS + "choice"):
            kids = [
                self._particle(doc, c)
                for c in node
                if isinstance(c.tag, str) and c.tag != _XS + "annotation"
            ]
            return Particle(kind=tag.replace(_XS, ""), min=lo, max=hi, children=kids)
        if tag == _XS + "any":
            return Particle(kind="any", min=lo, max=hi)
        if tag == _XS + "element":
            return Particle(kind="element", min=lo, max=hi, element=self._local_element(doc, node))
        raise SchemaError(f"{doc.path}: particle {tag} not supported")

    def _local_element(self, doc: _Doc, node: etree._Element) -> ElementDecl:
        ref = node.get("ref")
        if ref:
            return self.element(doc.resolve(node, ref))
        name = node.get("name", "")
        form = node.get("form")
        qualified = form == "qualified" if form else doc.element_qualified
        decl = ElementDecl(qname=(doc.tns if qualified else "", name))
        decl.nillable = node.get("nillable") == "true"
        self._element_type(doc, node, decl)
        self.set.local_elements.append(decl)
        return decl

    def element(self, qname: QName) -> ElementDecl:
        if qname in self.set.elements:
            return self.set.elements[qname]
        if qname not in self._raw_elements:
            raise SchemaError(f"unknown element {qname}")
        doc, node = self._raw_elements[qname]
        decl = ElementDecl(qname=qname, is_global=True)
        self.set.elements[qname] = decl
        decl.abstract = node.get("abstract") == "true"
        decl.nillable = node.get("nillable") == "true"
        head = node.get("substitutionGroup")
        if head:
            decl.substitution_head = doc.resolve(node, head)
        self._element_type(doc, node, decl)
        return decl

    def _element_type(self, doc: _Doc, node: etree._Element, decl: ElementDecl) -> None:
        type_ref = node.get("type")
        if type_ref:
            tq = doc.resolve(node, type_ref)
            decl.type_qname = tq
            if tq[0] == XS or tq in self._raw_simple:
                decl.simple = self.simple_type(tq)
            else:
                decl.complex = self.complex_type(tq)
            return
        inline_ct = node.find(_XS + "complexType")
        inline_st = node.find(_XS + "simpleType")
        if inline_ct is not None:
            ct = ComplexType(qname=("", ""), anonymous_of=decl.qname)
            self._fill_complex(doc, inline_ct, ct)
            decl.complex = ct
        elif inline_st is not None:
            decl.simple = self._simple_from_node(doc, inline_st, decl.qname[1])
        else:
            # no type: xs:anyType.  Not used by the supported schemas.
            raise SchemaError(f"{doc.path}: element {decl.qname} has no type")

    def _build(self) -> None:
        for qname in list(self._raw_elements):
            self.element(qname)
        for qname in list(self._raw_complex):
            self.complex_type(qname)
        for qname in list(self._raw_simple):
            self.simple_type(qname)
        for decl in self.set.elements.values():
            if decl.substitution_head is not None:
                self.set.substitutions.setdefault(decl.substitution_head, []).append(decl.qname)


def _locate(importer: Path, location: str) -> Path:
    """An imported file, or a file of the same name in a parent folder.

    The `iso15118` wheel ships one xmldsig-core-schema.xsd at the top of its schema folder
    while the DIN schemas import it from their own folder.
    """
    candidate = (importer.parent / location).resolve()
    if candidate.exists():
        return candidate
    for parent in importer.parents:
        alt = parent / Path(location).name
        if alt.exists():
            return alt.resolve()
    raise SchemaError(f"{importer}: imported schema {location} not found")


def load(root: Path) -> SchemaSet:
    """Load the schema set rooted at ``root``."""
    return Loader(root).set
