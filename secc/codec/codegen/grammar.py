"""EXI grammars from the XSD component model (build time only).

Theory of operation
-------------------
For every complex type the content model (attribute uses, sorted by local name then
URI, followed by the particle tree) is turned into a Thompson NFA whose edges are
terminals: AT(q), SE(q) (a substitution group expands to its head plus members), SE(*)
for wildcards, and CH[typed] for simple content.  Bounded ``maxOccurs`` is unrolled,
``unbounded`` loops.  Subset construction gives the deterministic EXI grammar states
(EXI 1.0 §8.5.4.1 and its normalisation §8.5.4.2).  Each state's productions are ordered
as EXI §8.5.4.4.2 orders them: AT sorted, SE in particle order (substitution members by
local name then URI), SE(*), EE, CH; mixed types get a CH[untyped] self-loop in every
content state.  Grammars are non-strict (EXI-NOTES §2): each state's first-level code
has one more slot, the escape to second-level events, so its width is
ceil(log2(productions + 1)).

The data model follows the particle tree: each element particle is one field of the
generated class (a tuple where it may repeat), each attribute use one field; the NFA
terminals carry the field index, so the state tables tell the emitter, for every state,
which field each code stands for and which state follows.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field

from .xsd import UNBOUNDED, ComplexType, ElementDecl, Particle, QName, SchemaError, SchemaSet

# -- naming -----------------------------------------------------------------------------


# spec words that read better as one word in snake_case
_WORDS = {"SoC": "Soc", "eMAID": "Emaid", "DHpublickey": "DhPublicKey"}


def snake(name: str) -> str:
    """XML local name -> Python field name (EVSEMaxCurrent -> evse_max_current)."""
    for word, plain in _WORDS.items():
        name = name.replace(word, plain)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    s = s.replace("-", "_").lower()
    s = re.sub(r"_+", "_", s)
    if keyword.iskeyword(s):
        s += "_"
    return s


def width(n: int) -> int:
    """Bits needed for n distinct codes (0 for n <= 1)."""
    return (n - 1).bit_length() if n > 1 else 0


# -- data model -------------------------------------------------------------------------


@dataclass
class Field:
    """One field of a generated class."""

    name: str
    kind: str  # attr | elem | value
    qname: QName  # attribute or element qname (first member for substitution groups)
    min: int
    repeated: bool
    max: int  # UNBOUNDED or count (for repeated fields: the upper bound of the tuple)
    # element fields: the possible element declarations (several for substitution groups)
    decls: list[ElementDecl] = field(default_factory=list)
    simple: object | None = None  # SimpleType for attr/value fields
    optional_in_model: bool = False  # may be absent (min 0 or inside an optional group/choice)


@dataclass
class Prod:
    kind: str  # AT | SE | ANY | EE | CH | CHU
    fid: int  # field index (-1 for EE / ANY / CHU)
    target: int
    decl: ElementDecl | None = None  # for SE
    qname: QName | None = None


@dataclass
class State:
    prods: list[Prod]
    width: int
    ee2_width: int  # width of the second-level code (for the 2nd-level EE of empty values)
    ee_first: bool  # EE is a first-level production


@dataclass
class TypeGrammar:
    key: str  # unique key (class name)
    ctype: ComplexType | None
    fields: list[Field]
    states: list[State]
    mixed: bool
    simple_value: object | None  # SimpleType of simple content


@dataclass(frozen=True)
class _Term:
    fid: int
    kind: str  # AT | SE | ANY | CH
    qnames: tuple[QName, ...]
    order: int


class _NFA:
    def __init__(self) -> None:
        self.edges: list[list[tuple[_Term, int]]] = []
        self.eps: list[list[int]] = []
        self.content: set[int] = set()
        self.marking_content = False

    def new(self) -> int:
        self.edges.append([])
        self.eps.append([])
        n = len(self.edges) - 1
        if self.marking_content:
            self.content.add(n)
        return n

    def closure(self, states: frozenset[int]) -> frozenset[int]:
        stack = list(states)
        seen = set(states)
        while stack:
            s = stack.pop()
            for t in self.eps[s]:
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        return frozenset(seen)


class GrammarBuilder:
    """Builds the grammar of every complex type in a schema set."""

    def __init__(self, schema: SchemaSet) -> None:
        self.schema = schema
        self.grammars: dict[int, TypeGrammar] = {}  # id(ComplexType) -> grammar
        self._order = 0

    def substitution_members(self, decl: ElementDecl) -> list[ElementDecl]:
        """The head (even if abstract) plus all members, transitively, sorted."""
        out = {decl.qname: decl}
        stack = [decl.qname]
        while stack:
            q = stack.pop()
            for m in self.schema.substitutions.get(q, []):
                if m not in out:
                    out[m] = self.schema.elements[m]
                    stack.append(m)
        return [out[q] for q in sorted(out, key=lambda q: (q[1], q[0]))]

    def grammar(self, ct: ComplexType, key: str) -> TypeGrammar:
        if id(ct) in self.grammars:
            return self.grammars[id(ct)]
        fields: list[Field] = []
        nfa = _NFA()
        start = nfa.new()
        s = start
        used_names: set[str] = set()

        def add_field(f: Field) -> int:
            base = f.name
            n = 2
            while f.name in used_names:
                f.name = f"{base}_{n}"
                n += 1
            used_names.add(f.name)
            fields.append(f)
            return len(fields) - 1

        for attr in sorted(ct.attributes, key=lambda a: (a.qname[1], a.qname[0])):
            fid = add_field(
                Field(
                    name=snake(attr.qname[1]),
                    kind="attr",
                    qname=attr.qname,
                    min=1 if attr.required else 0,
                    repeated=False,
                    max=1,
                    simple=attr.type,
                    optional_in_model=not attr.required,
                )
            )
            term = _Term(fid, "AT", (attr.qname,), 0)
            t = nfa.new()
            nfa.edges[s].append((term, t))
            if not attr.required:
                nfa.eps[s].append(t)
            s = t
        nfa.marking_content = True
        content_start = nfa.new()
        nfa.eps[s].append(content_start)
        if ct.simple is not None:
            fid = add_field(
                Field(name="value", kind="value", qname=("", ""), min=1, repeated=False, max=1)
            )
            fields[fid].simple = ct.simple
            end = nfa.new()
            nfa.edges[content_start].append((_Term(fid, "CH", (), 0), end))
        elif ct.content is not None:
            end = self._particle(nfa, content_start, ct.content, add_field, False, False)
        else:
            end = content_start
        final = end
        states = self._determinize(nfa, start, final, ct.mixed)
        g = TypeGrammar(
            key=key, ctype=ct, fields=fields, states=states, mixed=ct.mixed, simple_value=ct.simple
        )
        self.grammars[id(ct)] = g
        return g

    def _particle(
        self,
        nfa: _NFA,
        s: int,
        p: Particle,
        add_field: object,
        optional: bool,
        repeated: bool,
    ) -> int:
        opt = optional or p.min == 0
        rep = repeated or p.max == UNBOUNDED or p.max > 1
        term: _Term | None = None
        if p.kind == "element":
            assert p.element is not None
            decl = p.element
            members = self.substitution_members(decl) if decl.is_global else [decl]
            fid = add_field(  # type: ignore[operator]
                Field(
                    name=snake(decl.qname[1]),
                    kind="elem",
                    qname=decl.qname,
                    min=p.min,
                    repeated=rep,
                    max=p.max if not repeated else UNBOUNDED,
                    decls=members,
                    optional_in_model=opt,
                )
            )
            self._order += 1
            term = _Term(fid, "SE", tuple(m.qname for m in members), self._order)
        elif p.kind == "any":
            self._order += 1
            term = _Term(-1, "ANY", (), self._order)

        def body(start: int) -> int:
            if term is not None:
                t = nfa.new()
                nfa.edges[start].append((term, t))
                return t
            cur = start
            if p.kind == "sequence":
                for child in p.children:
                    cur = self._particle(nfa, cur, child, add_field, opt, rep)
                return cur
            if p.kind == "choice":
                join = nfa.new()
                for child in p.children:
                    entry = nfa.new()
                    nfa.eps[start].append(entry)
                    e = self._particle(nfa, entry, child, add_field, True, rep)
                    nfa.eps[e].append(join)
                return join
            raise SchemaError(f"particle kind {p.kind}")

        # The body is built once per copy; fields are created on the first copy only.
        copies_needed = p.min if p.max == UNBOUNDED else p.max
        cur = s
        if term is None and (p.max == UNBOUNDED or p.max > 1 or p.min > 1):
            # model group repeated: build its body once, then reuse via a loop
            # (only xmldsig uses this; fields repeat accordingly).
            loop = nfa.new()
            nfa.eps[cur].append(loop)
            e = body(loop)
            nfa.eps[e].append(loop)
            exit_ = nfa.new()
            if p.min == 0:
                nfa.eps[loop].append(exit_)
            nfa.eps[e].append(exit_)
            return exit_
        for i in range(max(copies_needed, 1)):
            if i < p.min:
                cur = body(cur)
            else:
                j = nfa.new()
                e = body(cur)
                nfa.eps[cur].append(j)
                nfa.eps[e].append(j)
                cur = j
        if p.max == UNBOUNDED:
            loop = nfa.new()
            nfa.eps[cur].append(loop)
            e = body(loop)
            nfa.eps[e].append(loop)
            cur = loop
        return cur

    def _determinize(self, nfa: _NFA, start: int, final: int, mixed: bool) -> list[State]:
        index: dict[frozenset[int], int] = {}
        order: list[frozenset[int]] = []
        first = nfa.closure(frozenset({start}))
        index[first] = 0
        order.append(first)
        raw: list[list[tuple[tuple[int, ...], _Term | None, str, frozenset[int]]]] = []
        i = 0
        while i < len(order):
            cur = order[i]
            i += 1
            moves: dict[tuple[str, object], tuple[_Term, set[int]]] = {}
            for s in cur:
                for term, t in nfa.edges[s]:
                    keys: list[tuple[str, object]]
                    if term.kind == "SE":
                        keys = [("SE", q) for q in term.qnames]
                    elif term.kind == "AT":
                        keys = [("AT", term.qnames[0])]
                    else:
                        keys = [(term.kind, None)]
                    for k in keys:
                        if k in moves:
                            other, targets = moves[k]
                            if other.fid != term.fid:
                                raise SchemaError(f"ambiguous content model at {k}")
                            targets.add(t)
                        else:
                            moves[k] = (term, {t})
            entries = []
            for k, (term, targets) in moves.items():
                tgt = nfa.closure(frozenset(targets))
                if tgt not in index:
                    index[tgt] = len(order)
                    order.append(tgt)
                entries.append((k, term, tgt))
            raw.append(entries)  # type: ignore[arg-type]
        states: list[State] = []
        for n, cur in enumerate(order):
            ats: list[Prod] = []
            ses: list[tuple[tuple[int, int], Prod]] = []
            anys: list[Prod] = []
            chs: list[Prod] = []
            for k, term, tgt in raw[n]:  # type: ignore[misc]
                kind, qo = k
                q: QName | None = qo  # type: ignore[assignment]
                target = index[tgt]
                if kind == "AT":
                    ats.append(Prod("AT", term.fid, target, qname=q))
                elif kind == "SE":
                    pos = term.qnames.index(q)
                    ses.append(((term.order, pos), Prod("SE", term.fid, target, qname=q)))
                elif kind == "ANY":
                    anys.append(Prod("ANY", -1, target))
                elif kind == "CH":
                    chs.append(Prod("CH", term.fid, target))
            ats.sort(key=lambda p: (p.qname[1], p.qname[0]))  # type: ignore[index]
            ses.sort(key=lambda x: x[0])
            prods = ats + [p for _, p in ses] + anys[:1]
            ee = final in cur
            if ee:
                prods.append(Prod("EE", -1, n))
            prods.extend(chs)
            is_content = any(s in nfa.content for s in cur)
            if mixed and is_content and not chs:
                prods.append(Prod("CHU", -1, n))
            nprods = len(prods)
            # second level (non-strict undeclared productions, EXI §8.5.4.4.1)
            if n == 0 or ats:
                n2 = (0 if ee else 1) + (2 if n == 0 else 0) + 1 + len(ats) + 2
            else:
                n2 = (0 if ee else 1) + 2
            states.append(
                State(prods=prods, width=width(nprods + 1), ee2_width=width(n2), ee_first=ee)
            )
        return states
