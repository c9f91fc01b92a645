"""Python source emitter for one schema set (build time only).

Emits, for every complex type, a frozen slotted dataclass, a decode table (per state:
code width, second-level width, and per code the field it stands for and the next
state), an encode function and a decode function.  Encode functions are straight-line:
fields in particle order, each field's event code a constant wherever the state before
it is known at generation time, a table look-up otherwise.  Decode functions are
straight-line too: one read of an event code, then the fields in order, each checking
whether the pending event is its own.
"""

from __future__ import annotations

import hashlib
import keyword
import re
from pathlib import Path

from . import window
from .grammar import Field, GrammarBuilder, State, TypeGrammar
from .values import ValueCodec, ValueEmitter, inline_bits
from .xsd import UNBOUNDED, ComplexType, ElementDecl, QName, SchemaSet, SimpleType

ESC, INVALID, ANY_, CHU_ = -2, -3, -4, -5
DS_NS = "http://www.w3.org/2000/09/xmldsig#"


def _pyname_enum(value: str) -> str:
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in value)
    if not name or name[0].isdigit():
        name = "_" + name
    if keyword.iskeyword(name) or name in {"name", "value"}:
        name += "_"
    return name


_WRITE = re.compile(r"w\.bits\((.+?), (\d+|[et]\[\d\])\)")


def _inline_writes(line: str) -> str:
    """``w.bits(v, n)`` as the statement it stands for, ``w.acc = (w.acc << n) | v``: the
    writer's pending bits are one integer, and a method call costs several times the
    shift (first arguments never hold ", ", so the lazy match ends at the width)."""
    if "w.bits(" not in line:
        return line

    def one(m: re.Match[str]) -> str:
        value, n = m.group(1), m.group(2)
        if value == "0":
            return f"w.acc <<= {n}"
        return f"w.acc = (w.acc << {n}) | {value}"

    return _WRITE.sub(one, line)


class Emitter(ValueEmitter):
    def __init__(
        self,
        schema: SchemaSet,
        module: str,
        shared: Emitter | None = None,
        sources: list[Path] | None = None,
    ) -> None:
        self.schema = schema
        self.module = module
        self.shared = shared  # the xmldsig emitter whose classes this module imports
        self.builder = GrammarBuilder(schema)
        self.sources = sources or []
        self.class_names: dict[int, str] = {}
        self.grammars: list[TypeGrammar] = []
        self.enums: dict[str, tuple[str, ...]] = {}  # class name -> values
        self.enum_names: dict[int, str] = {}
        self.lines: list[str] = []
        self._built: list[str] = []  # classes whose decoders build values (_B_X)
        self._repeated: dict[str, dict[str, str]] = {}
        self._win_ok: dict[str, bool] = {}  # window.py: type key -> has a window decoder
        self._win_tables: list[str] = []  # window.py: its event-code and member tables
        self._ew_tables: list[str] = []
        self._name_types()

    # -- naming ---------------------------------------------------------------------
    def _is_shared(self, ct: ComplexType) -> bool:
        ns = ct.qname[0] if ct.anonymous_of is None else ct.anonymous_of[0]
        return self.shared is not None and ns == DS_NS

    def _name_types(self) -> None:
        used: set[str] = set()
        cts: list[ComplexType] = list(self.schema.complex_types.values())
        for decl in self.schema.all_element_decls():
            if decl.complex is not None and decl.complex.anonymous_of is not None:
                cts.append(decl.complex)
        seen: set[int] = set()
        for ct in cts:
            if id(ct) in seen:
                continue
            seen.add(id(ct))
            if ct.anonymous_of is not None:
                base = ct.anonymous_of[1]
            else:
                base = ct.qname[1]
                if base.endswith("Type") and len(base) > 4:
                    base = base[:-4]
            name = base
            n = 2
            while name in used:
                name = f"{base}{n}"
                n += 1
            used.add(name)
            self.class_names[id(ct)] = name
        for ct in cts:
            g = self.builder.grammar(ct, self.class_names[id(ct)])
            if g not in self.grammars:
                self.grammars.append(g)
        for st in self._all_simple():
            if st.kind == "enum" and id(st) not in self.enum_names:
                base = st.name[:1].upper() + st.name[1:]
                if base.endswith("Type") and len(base) > 4:
                    base = base[:-4]
                name = base
                while name in used:
                    name = name + "Enum"
                used.add(name)
                self.enum_names[id(st)] = name
                self.enums[name] = st.enum

    def _all_simple(self) -> list[SimpleType]:
        out: list[SimpleType] = []
        for g in self.grammars:
            for f in g.fields:
                if f.simple is not None:
                    out.append(f.simple)  # type: ignore[arg-type]
                for d in f.decls:
                    if d.simple is not None:
                        out.append(d.simple)
        for d in self.schema.all_element_decls():
            if d.simple is not None:
                out.append(d.simple)
        return out

    def cls(self, ct: ComplexType) -> str:
        return self.class_names[id(ct)]

    # -- per type ---------------------------------------------------------------------
    def field_pytype(self, f: Field) -> str:
        if f.kind in ("attr", "value"):
            t = self.value_codec(f.simple).pytype  # type: ignore[arg-type]
        else:
            ts = []
            for d in f.decls:
                if d.complex is not None:
                    ts.append(self.cls(d.complex))
                else:
                    assert d.simple is not None
                    ts.append(self.value_codec(d.simple).pytype)
            t = " | ".join(dict.fromkeys(ts))
        if f.repeated:
            return f"tuple[{t}, ...]"
        if f.optional_in_model or f.min == 0:
            return f"{t} | None"
        return t

    def field_default(self, f: Field) -> str:
        if f.repeated:
            return " = ()"
        if f.optional_in_model or f.min == 0:
            return " = None"
        return ""

    def emit_class(self, g: TypeGrammar) -> None:
        out = self.lines
        out.append("")
        out.append("")
        out.append("@dataclass(frozen=True, slots=True, kw_only=True)")
        out.append(f"class {g.key}:")
        ct = g.ctype
        assert ct is not None
        if ct.anonymous_of is not None:
            out.append(f'    """Element {{{ct.anonymous_of[0]}}}{ct.anonymous_of[1]}."""')
        else:
            out.append(f'    """{{{ct.qname[0]}}}{ct.qname[1]}."""')
        if not g.fields:
            return
        out.append("")
        for f in g.fields:
            out.append(f"    {f.name}: {self.field_pytype(f)}{self.field_default(f)}")

    def _xml_name(self, f: Field) -> str:
        return f"@{f.qname[1]}" if f.kind == "attr" else (f.qname[1] or "value")

    def emit_tables(self, g: TypeGrammar) -> None:
        out = self.lines
        rows = []
        for s in g.states:
            entries: list[tuple[int, int, int]] = []
            for p in s.prods:
                if p.kind in ("AT", "SE", "CH"):
                    f = g.fields[p.fid]
                    mem = 0
                    if p.kind == "SE":
                        mem = [d.qname for d in f.decls].index(p.qname)  # type: ignore[arg-type]
                    entries.append((p.fid, mem, p.target))
                elif p.kind == "EE":
                    entries.append((-1, 0, p.target))
                elif p.kind == "ANY":
                    entries.append((ANY_, 0, p.target))
                else:
                    entries.append((CHU_, 0, p.target))
            entries.append((ESC, 1 if s.ee_first else 0, 0))
            while len(entries) < (1 << s.width):
                entries.append((INVALID, 0, 0))
            rows.append(f"({s.width}, {s.ee2_width}, {tuple(entries)!r})")
        out.append("")
        out.append(f"_DT_{g.key} = ({', '.join(rows)},)")
        names = tuple(self._xml_name(f) for f in g.fields)
        out.append(f"_N_{g.key} = {names!r}")

    def _enc_table(self, g: TypeGrammar) -> str:
        rows = []
        for s in g.states:
            d: dict[tuple[int, int], tuple[int, int, int]] = {}
            for code, p in enumerate(s.prods):
                if p.kind in ("AT", "SE", "CH"):
                    f = g.fields[p.fid]
                    mem = 0
                    if p.kind == "SE":
                        mem = [x.qname for x in f.decls].index(p.qname)  # type: ignore[arg-type]
                    d[(p.fid, mem)] = (code, s.width, p.target)
            rows.append(repr(d))
        return f"({', '.join(rows)},)"

    def _ee_table(self, g: TypeGrammar) -> str:
        vals = []
        for s in g.states:
            codes = [i for i, p in enumerate(s.prods) if p.kind == "EE"]
            vals.append(f"({codes[0]}, {s.width})" if codes else "None")
        return f"({', '.join(vals)},)"

    @staticmethod
    def _moves(s: State, fid: int) -> dict[int, tuple[int, int, int]]:
        out = {}
        for code, p in enumerate(s.prods):
            if p.fid == fid and p.kind in ("AT", "SE", "CH"):
                out[code] = (code, s.width, p.target)
        return out

    def emit_encoder(self, g: TypeGrammar) -> None:
        out = self.lines
        need_table = False
        body: list[str] = []
        states = {0}
        ind = "        "
        for fid, f in enumerate(g.fields):
            label = self._xml_name(f)
            attr = f"v.{f.name}"
            optional = f.optional_in_model or f.min == 0
            taken: set[int] = set()
            if f.repeated:
                frontier = set(states)
                while frontier:
                    nxt = {
                        t for s in frontier for (_, _, t) in self._moves(g.states[s], fid).values()
                    } - taken
                    taken |= nxt
                    frontier = nxt
                states = (states | taken) if (optional or f.min == 0) else taken
            body.append(f"{ind}_p = {label!r}")
            if f.repeated:
                body.append(f"{ind}for x in {attr}:")
                inner = ind + "    "
                self._enc_event(g, fid, f, inner, body)
                need_table = True
                self._enc_content(f, "x", label, inner, body)
                if f.max != UNBOUNDED:
                    body.append(
                        f"{ind}if len({attr}) > {f.max}: raise bad_value({label!r}, len({attr}), "
                        f"'occurrences, more than {f.max}', w)"
                    )
                continue
            for s in states:
                for _c, (_, _, t) in self._moves(g.states[s], fid).items():
                    taken.add(t)
            body.append(f"{ind}x = {attr}")
            body.append(f"{ind}if x is None:")
            if optional:
                body.append(f"{ind}    pass")
            else:
                body.append(f"{ind}    raise missing({label!r}, w)")
            body.append(f"{ind}else:")
            inner = ind + "    "
            if f.kind == "value" and self.value_codec(f.simple).kind in ("str", "bytes"):  # type: ignore[arg-type]
                # an empty value kept in the 2nd-level EE form it arrived in (EXI-NOTES §8)
                marker = "EmptyStr" if self.value_codec(f.simple).kind == "str" else "EmptyBytes"  # type: ignore[arg-type]
                body.append(f"{inner}if type(x) is {marker}:")
                body.append(f"{inner}    e = _ESC_{g.key}[st]")
                body.append(f"{inner}    w.bits(e[0], e[1]); w.bits(0, e[2])")
                body.append(f"{inner}    return")
                out.append(
                    f"_ESC_{g.key} = "
                    f"{tuple((len(s.prods), s.width, s.ee2_width) for s in g.states)!r}"
                )
            const = None
            if len(states) == 1 and len(f.decls) <= 1:
                (s,) = states
                moves = self._moves(g.states[s], fid)
                if len(moves) == 1:
                    const = next(iter(moves.values()))
            prefix = None
            if const is not None:
                code, wbits, tgt = const
                simple_elem = f.kind == "elem" and f.decls[0].simple is not None
                if simple_elem:
                    prefix = (code, wbits)
                elif wbits:
                    body.append(f"{inner}w.bits({code}, {wbits})")
                body.append(f"{inner}st = {tgt}")
            elif (
                len(f.decls) <= 1
                and len(states) <= 4
                and all(len(self._moves(g.states[s], fid)) <= 1 for s in states)
            ):
                # a few possible states: compare st instead of a table look-up
                for i, s in enumerate(sorted(states)):
                    moves = self._moves(g.states[s], fid)
                    kw = "if" if i == 0 else "elif"
                    if not moves:
                        body.append(f"{inner}{kw} st == {s}: raise not_allowed({label!r}, w)")
                        continue
                    ((code, wbits, tgt),) = moves.values()
                    write = f"w.bits({code}, {wbits}); " if wbits else ""
                    body.append(f"{inner}{kw} st == {s}: {write}st = {tgt}")
                body.append(f"{inner}else: raise not_allowed({label!r}, w)")
            else:
                need_table = True
                self._enc_event(g, fid, f, inner, body)
            self._enc_content(f, "x", label, inner, body, prefix)
            states = (states | taken) if optional else taken
        # EE
        body.append(f"{ind}_p = None")
        ee_codes = {
            s: [i for i, p in enumerate(g.states[s].prods) if p.kind == "EE"] for s in states
        }
        if len(states) == 1 and all(ee_codes.values()):
            (s,) = states
            wbits = g.states[s].width
            if wbits:
                body.append(f"{ind}w.bits({ee_codes[s][0]}, {wbits})")
        else:
            need_table = True
            body.append(f"{ind}e = _EE_{g.key}[st]")
            body.append(
                f"{ind}if e is None: raise EncodeError('required content is missing', "
                "w.bit_position)"
            )
            body.append(f"{ind}w.bits(e[0], e[1])")
        if need_table:
            out.append(f"_ET_{g.key} = {self._enc_table(g)}")
            out.append(f"_EE_{g.key} = {self._ee_table(g)}")
        out.append("")
        out.append("")
        out.append(f"def _e_{g.key}(w: BitWriter, v: Any) -> None:")
        out.append("    _p = None")
        out.append("    st = 0")
        out.append("    try:")
        out.extend(body if body else ["        pass"])
        out.append("    except CodecError as e:")
        out.append("        if _p is not None: e.at(_p)")
        out.append("        raise")

    def _enc_event(self, g: TypeGrammar, fid: int, f: Field, ind: str, body: list[str]) -> None:
        if len(f.decls) > 1:
            body.append(f"{ind}m = _SM_{g.key}_{fid}.get(type(x))")
            body.append(
                f"{ind}if m is None: raise bad_value({self._xml_name(f)!r}, x, "
                "'is not a member of the substitution group', w)"
            )
            key = f"({fid}, m)"
        else:
            key = f"({fid}, 0)"
        body.append(f"{ind}t = _ET_{g.key}[st].get({key})")
        body.append(f"{ind}if t is None: raise not_allowed({self._xml_name(f)!r}, w)")
        body.append(f"{ind}w.bits(t[0], t[1])")
        body.append(f"{ind}st = t[2]")

    def _enc_content(
        self,
        f: Field,
        x: str,
        label: str,
        ind: str,
        body: list[str],
        prefix: tuple[int, int] | None = None,
    ) -> None:
        if f.kind in ("attr", "value"):
            body.extend(self.enc_value(self.value_codec(f.simple), x, label, ind))  # type: ignore[arg-type]
            return
        if len(f.decls) > 1:
            names = tuple(d.qname[1] for d in f.decls)
            body.append(f"{ind}_p = {names!r}[m]")
            body.append(f"{ind}_SE_{self._cur}_{f.name}[m](w, {x})")
            return
        d = f.decls[0]
        if d.complex is not None:
            c = self.cls(d.complex)
            body.append(
                f"{ind}if type({x}) is not {c}: raise bad_value({label!r}, {x}, 'is not a {c}', w)"
            )
            body.append(f"{ind}_e_{c}(w, {x})")
        else:
            assert d.simple is not None
            body.extend(self.enc_simple_elem(d.simple, x, label, ind, prefix))

    def _read_event(self, g: TypeGrammar, states: set[int], ind: str) -> list[str]:
        """Read the next event code; inline when the state is known at generation time."""
        if len(states) != 1:
            return [f"{ind}fid, m, nst = ev(r, _DT_{g.key}, st)"]
        (s,) = states
        st = g.states[s]
        row = f"_R_{g.key}_{s}"
        self._rows.add((g.key, s))
        if not st.width:
            return [
                f"{ind}fid, m, nst = e = {row}[0]",
                f"{ind}if fid < -1: fid, m, nst = ev_special(r, e, {s}, {st.ee2_width})",
            ]
        return [
            *inline_bits("_c", st.width, ind),
            f"{ind}fid, m, nst = e = {row}[_c]",
            f"{ind}if fid < -1: fid, m, nst = ev_special(r, e, {s}, {st.ee2_width})",
        ]

    def emit_decoder(self, g: TypeGrammar) -> None:
        out = self.lines
        body: list[str] = []
        ind = "        "
        self._rows: set[tuple[str, int]] = set()
        states = {0}
        body.extend(self._read_event(g, states, ind))
        args = []
        for fid, f in enumerate(g.fields):
            label = self._xml_name(f)
            var = f"f{fid}"
            optional = f.optional_in_model or f.min == 0
            body.append(f"{ind}_p = {label!r}")
            if f.repeated:
                taken: set[int] = set()
                frontier = set(states)
                while frontier:
                    nxt = {
                        t for s in frontier for (_, _, t) in self._moves(g.states[s], fid).values()
                    } - taken
                    taken |= nxt
                    frontier = nxt
                body.append(f"{ind}{var} = []")
                # the list's length is the index of a violation's element (facets.py)
                self._repeated.setdefault(g.key, {})[label] = var
                body.append(f"{ind}while fid == {fid}:")
                inner = ind + "    "
                body.append(f"{inner}st = nst")
                self._dec_content(g, f, fid, inner, body)
                body.append(f"{inner}{var}.append(_x)")
                body.extend(self._read_event(g, taken if len(taken) == 1 else {-1, -2}, inner))
                if f.min > 0 and not f.optional_in_model:
                    # a second-level EE may end the element before the required occurrences
                    body.append(f"{ind}if len({var}) < {f.min}: raise missing({label!r}, r)")
                args.append(f"{f.name}=tuple({var})")
                states = (states | taken) if (optional or f.min == 0) else taken
                continue
            taken = {t for s in states for (_, _, t) in self._moves(g.states[s], fid).values()}
            body.append(f"{ind}if fid == {fid}:")
            inner = ind + "    "
            body.append(f"{inner}st = nst")
            self._dec_content(g, f, fid, inner, body)
            body.append(f"{inner}{var} = _x")
            body.extend(self._read_event(g, taken, inner))
            if optional:
                body.append(f"{ind}else:")
                body.append(f"{inner}{var} = None")
            elif f.kind == "value":
                vc = self.value_codec(f.simple)  # type: ignore[arg-type]
                body.append(f"{ind}elif fid == -1:")
                if vc.kind in ("str", "bytes"):
                    marker = "EmptyStr('')" if vc.kind == "str" else "EmptyBytes(b'')"
                    body.append(f"{inner}{var} = {marker}")
                else:
                    body.append(f"{inner}raise missing('value', r)")
                body.append(f"{ind}else:")
                body.append(f"{inner}raise unexpected(r, fid, _N_{g.key})")
            else:
                body.append(f"{ind}else:")
                body.append(f"{inner}raise missing({label!r}, r)")
            states = (states | taken) if optional else taken
            args.append(f"{f.name}={var}")
        body.append(f"{ind}_p = None")
        body.append(f"{ind}if fid != -1: raise unexpected(r, fid, _N_{g.key})")
        for key, s in sorted(self._rows):
            out.append(f"_R_{key}_{s} = _DT_{key}[{s}][2]")
        out.append("")
        out.append("")
        out.append(f"def _d_{g.key}(r: BitReader) -> {g.key}:")
        out.append("    _p = None")
        if any("ev(r, _DT_" in ln for ln in body):
            out.append("    st = 0")
        else:  # every state is known where an event is read: st is never needed
            body = [ln for ln in body if ln.strip() != "st = nst"]
        out.append("    try:")
        out.extend(body)
        out.append("    except CodecError as e:")
        out.append("        if _p is not None: e.at(_p)")
        out.append("        raise")
        if g.fields:
            out.extend(self._build(g, [a.split("=", 1)[1] for a in args], "    "))
            out.append("    return o")
        else:
            out.append(f"    return {g.key}()")

    def _build(self, g: TypeGrammar, values: list[str], ind: str) -> list[str]:
        """``o`` = a new value of ``g`` holding ``values`` (one per field): a plain
        object with the class's slots (``_B_X``, see ``runtime.Builders``) whose slots
        are set by plain stores, then given the frozen class (a frozen dataclass sets
        each field through ``object.__setattr__``; a descriptor call each costs ten
        times a store)."""
        self._built.append(g.key)
        lines = [f"{ind}o = _B_{g.key}()"]
        lines += [f"{ind}o.{f.name} = {v}" for f, v in zip(g.fields, values, strict=True)]
        lines.append(f"{ind}o.__class__ = {g.key}")
        return lines

    def _dec_content(self, g: TypeGrammar, f: Field, fid: int, ind: str, body: list[str]) -> None:
        label = self._xml_name(f)
        if f.kind in ("attr", "value"):
            lines, _ = self.dec_value(self.value_codec(f.simple), label)  # type: ignore[arg-type]
            body.extend(ind + ln for ln in lines)
            return
        if len(f.decls) > 1:
            names = tuple(d.qname[1] for d in f.decls)
            body.append(f"{ind}_p = {names!r}[m]")
            body.append(f"{ind}_x = _SD_{g.key}_{f.name}[m](r)")
            return
        d = f.decls[0]
        if d.complex is not None:
            body.append(f"{ind}_x = _d_{self.cls(d.complex)}(r)")
        else:
            assert d.simple is not None
            body.extend(self.dec_simple_elem(d.simple, label, ind))

    def _add_fused(self, g: TypeGrammar) -> None:
        """Where the type has a fixed layout, the generic functions just emitted become
        ``_eg_X`` / ``_dg_X`` and fused ``_e_X`` / ``_d_X`` fall back to them."""
        if self._fused_plan(g) is None:
            return
        for prefix in ("_e", "_d"):
            head = f"def {prefix}_{g.key}("
            i = max(i for i, ln in enumerate(self.lines) if ln.startswith(head))
            self.lines[i] = self.lines[i].replace(head, f"def {prefix}g_{g.key}(", 1)
        self.emit_fused_encoder(g)
        self.emit_fused_decoder(g)

    # -- fused fast paths for fixed-layout types ---------------------------------------
    def _fused_plan(
        self, g: TypeGrammar
    ) -> tuple[list[tuple[int, Field, int, int, ValueCodec]], int, int] | None:
        """The layout of a type made only of simple elements (all present, in order): per
        field its event code and width and value codec, then the EE code and its width.

        Only fixed-width values (nbit, enum, bool) qualify, and one integer (uint/sint) as
        the last field.  Optional fields are taken as present: the fast path is for the
        common case, the generic decoder/encoder handles every other stream and value.
        """
        if not g.fields:
            return None
        states = {0}
        steps = []
        for fid, f in enumerate(g.fields):
            if f.repeated or f.kind != "elem" or len(f.decls) != 1 or f.decls[0].simple is None:
                return None
            if len(states) != 1:
                return None
            (s,) = states
            moves = self._moves(g.states[s], fid)
            if len(moves) != 1:
                return None
            code, wbits, tgt = next(iter(moves.values()))
            vc = self.value_codec(f.decls[0].simple)
            if vc.kind not in ("nbit", "enum", "bool", "uint", "sint"):
                return None
            if vc.kind in ("uint", "sint") and fid != len(g.fields) - 1:
                return None
            steps.append((fid, f, code, wbits, vc))
            states = {tgt}
        (s,) = states
        ee = [i for i, p in enumerate(g.states[s].prods) if p.kind == "EE"]
        if not ee:
            return None
        return steps, ee[0], g.states[s].width

    @staticmethod
    def _fixed_bits(vc: ValueCodec) -> int:
        return 1 if vc.kind == "bool" else vc.nbits

    def _fused_layout(
        self, plan: tuple[list[tuple[int, Field, int, int, ValueCodec]], int, int]
    ) -> tuple[int, int, int, list[tuple[int, int, ValueCodec]], bool]:
        """(total bits, mask, expected, [(shift, width, vc) per field], integer tail)
        of the first read: event codes, CH and EE bits are fixed (mask/expected), values
        are extracted; an integer last field ends the read after its sign bit."""
        steps, ee_code, ee_w = plan
        items: list[tuple[str, int, int, ValueCodec | None]] = []  # (kind, width, value, vc)
        tail = steps[-1][4].kind in ("uint", "sint")
        for _fid, _f, code, wbits, vc in steps:
            items.append(("fix", wbits, code, None))
            items.append(("fix", 1, 0, None))  # CH
            if vc.kind in ("uint", "sint"):
                if vc.kind == "sint":
                    items.append(("val", 1, 0, vc))  # the sign
                else:
                    items.append(("val", 0, 0, vc))
                break
            items.append(("val", self._fixed_bits(vc), 0, vc))
            items.append(("fix", 1, 0, None))  # EE of the simple element
        if not tail:
            items.append(("fix", ee_w, ee_code, None))
        total = sum(w for _, w, _, _ in items)
        mask = expected = 0
        fields: list[tuple[int, int, ValueCodec]] = []
        pos = total
        for kind, w, value, item_vc in items:
            pos -= w
            if kind == "fix":
                mask |= ((1 << w) - 1) << pos
                expected |= value << pos
            else:
                assert item_vc is not None
                fields.append((pos, w, item_vc))
        return total, mask, expected, fields, tail

    FUSED_CACHE = 256  # decoded values kept per fixed-layout type (frozen, so shareable)

    def emit_fused_decoder(self, g: TypeGrammar) -> bool:
        """``_d_X``: one read for the whole fixed layout (an integer last field adds its
        octets and the closing bits); anything else rewinds and runs ``_dg_X``."""
        plan = self._fused_plan(g)
        if plan is None:
            return False
        _steps, ee_code, ee_w = plan
        total, mask, expected, fields, tail = self._fused_layout(plan)
        if tail:
            return self._emit_fused_tail_decoder(g, plan)
        out = self.lines
        out.append("")
        out.append(f"_C_{g.key}: dict[int, {g.key}] = {{}}  # bit pattern -> decoded value")
        out.append("")
        out.append("")
        out.append(f"def _d_{g.key}(r: BitReader) -> {g.key}:")
        out.append(f'    """Fused fast path (one read); the generic _dg_{g.key} otherwise."""')
        out.append("    _s = r.pos")
        out.append("    try:")
        k = 1 + ee_w  # after an integer: its EE (0) and the type's EE code
        if tail:
            # one peek: the fixed head, up to two octet groups of the integer, the EE bits
            n = total + 16 + k
            out.append(f"        _q = _s + {n}")
            out.append(f"        if _q > r.wend: _y = r.peek({n})")
            out.append(f"        else: _y = (r.val >> (r.wend - _q)) & {(1 << n) - 1:#x}")
            # a bit pattern decoded before gives the same (frozen) object again
            out.append(f"        if (_y >> {8 + k}) & 0x80: _k = _y << 1; _q = _s + {n}")
            out.append(f"        else: _k = ((_y >> 8) << 1) | 1; _q = _s + {total + 8 + k}")
            out.append(f"        o = _C_{g.key}.get(_k)")
            out.append("        if o is not None and _q <= r.end:")
            out.append("            r.pos = _q")
            out.append("            return o")
            out.append(f"        _x = _y >> {16 + k}")
        else:
            out.extend(inline_bits("_x", total, "        "))
            out.append(f"        o = _C_{g.key}.get(_x)")
            out.append("        if o is not None: return o")
            out.append("        _k = _x")
        out.append(f"        if _x & {mask:#x} == {expected:#x}:")
        ind = "            "
        conds = []
        vals = []
        for i, (shift, w, vc) in enumerate(fields):
            if vc.kind in ("uint", "sint"):
                continue
            src = f"(_x >> {shift}) & {(1 << w) - 1:#x}" if w else "0"
            out.append(f"{ind}a{i} = {src}")
            if vc.kind == "nbit":
                if (1 << vc.nbits) != vc.hi - vc.lo + 1:  # type: ignore[operator]
                    conds.append(f"a{i} <= {vc.hi - vc.lo}")  # type: ignore[operator]
                vals.append(f"a{i} + {vc.lo}" if vc.lo else f"a{i}")
            elif vc.kind == "enum":
                if (1 << vc.nbits) != vc.count:
                    conds.append(f"a{i} < {vc.count}")
                vals.append(f"_V_{vc.enum_cls}[a{i}]")
            else:
                vals.append(f"a{i} == 1")
        if tail:
            shift, w, vc = fields[-1]
            km = (1 << k) - 1
            out.append(f"{ind}_v = (_y >> {8 + k}) & 0xFF")
            out.append(f"{ind}if _v < 0x80:")
            out.append(f"{ind}    _t = (_y >> 8) & {km:#x}; _q = _s + {total + 8 + k}")
            out.append(f"{ind}else:")
            out.append(f"{ind}    _g = (_y >> {k}) & 0xFF")
            out.append(f"{ind}    _v = (_v & 0x7F) | (_g << 7)")
            out.append(
                f"{ind}    _t = _y & {km:#x} if _g < 0x80 else -1; _q = _s + {total + 16 + k}"
            )
            if vc.kind == "sint":
                out.append(f"{ind}if _x & 1: _v = -_v - 1")
            conds.append(f"_t == {ee_code}")
            conds.append("_q <= r.end")
            if vc.lo is not None and (vc.kind == "sint" or vc.lo > 0):
                conds.append(f"{vc.lo} <= _v")
            if vc.hi is not None:
                conds.append(f"_v <= {vc.hi}")
            vals.append("_v")
        if conds:
            out.append(f"{ind}if {' and '.join(conds)}:")
            ind += "    "
        if tail:
            out.append(f"{ind}r.pos = _q")
        out.extend(self._build(g, vals, ind))
        out.append(f"{ind}if len(_C_{g.key}) >= {self.FUSED_CACHE}: _C_{g.key}.clear()")
        out.append(f"{ind}_C_{g.key}[_k] = o")
        out.append(f"{ind}return o")
        out.append("    except CodecError:")
        out.append("        pass")
        out.append("    r.rewind(_s)")
        out.append(f"    return _dg_{g.key}(r)")
        return True

    def _emit_fused_tail_decoder(
        self, g: TypeGrammar, plan: tuple[list[tuple[int, Field, int, int, ValueCodec]], int, int]
    ) -> bool:
        """``_d_X`` of a fixed layout whose last field is an integer (PhysicalValue,
        RationalNumber): one read of the head, two octets of the integer and the closing
        bits.  A read seen before (the whole read, so also the bits after a one-octet
        integer) gives its value again from ``_C_X``; a value of one or two 7-bit groups
        is decoded from the read; anything else rewinds and runs ``_dg_X``."""
        steps, ee_code, ee_w = plan
        total, mask, expected, fields, _tail = self._fused_layout(plan)
        k = 1 + ee_w  # after the integer: its EE (0) and the type's EE code
        km = (1 << k) - 1
        n = total + 16 + k
        one_mask = (0x80 << k) | km  # of _y >> 8: the first octet's MSB, the closing bits
        two_mask = (0x80 << (8 + k)) | (0x80 << k) | km
        two_want = (0x80 << (8 + k)) | ee_code
        vc_last = steps[-1][4]
        out = self.lines
        out += [
            "",
            f"_C_{g.key}: dict[int, tuple[{g.key}, int]] = {{}}  # read -> (value, its bits)",
            "",
            "",
            f"def _d_{g.key}(r: BitReader) -> {g.key}:",
            f'    """Fused fast path (one read); the generic _dg_{g.key} otherwise."""',
            "    _s = r.pos",
            f"    _q = _s + {n}",
            "    if _q <= r.wend:",
            f"        _y = (r.val >> (r.wend - _q)) & {(1 << n) - 1:#x}",
            f"        _h = _C_{g.key}.get(_y)",
            "        if _h is not None:",
            "            r.pos = _s + _h[1]",
            "            return _h[0]",
            "    else:",
            f"        _y = r.peek({n})",
            f"    _x = _y >> {16 + k}",
        ]
        ind = "    "
        conds = [f"_x & {mask:#x} == {expected:#x}"]
        vals, pre = fused_field_reads(fields, conds)
        sign = " ^ -(_x & 1)" if vc_last.kind == "sint" else ""
        lo = -16384 if vc_last.kind == "sint" else 0
        rng = []
        if vc_last.lo is not None and vc_last.lo > lo:
            rng.append(f"{vc_last.lo} <= _v")
        if vc_last.hi is not None and vc_last.hi < 16383:
            rng.append(f"_v <= {vc_last.hi}")
        out.append(f"{ind}if {' and '.join(conds)}:")
        ind2 = ind + "    "
        out += [ind2 + ln for ln in pre]
        out += [
            f"{ind2}if (_y >> 8) & {one_mask:#x} == {ee_code}:",
            f"{ind2}    _v = ((_y >> {8 + k}) & 0x7f){sign}; _n = {total + 8 + k}",
            f"{ind2}elif _y & {two_mask:#x} == {two_want:#x}:",
            f"{ind2}    _v = (((_y >> {8 + k}) & 0x7f) | (((_y >> {k}) & 0x7f) << 7)){sign}"
            f"; _n = {n}",
            f"{ind2}else:",
            f"{ind2}    _n = 0",
        ]
        vals.append("_v")
        cond = " and ".join(["_n", "_s + _n <= r.end", *rng])
        out.append(f"{ind2}if {cond}:")
        ind3 = ind2 + "    "
        out.append(f"{ind3}r.pos = _s + _n")
        out.extend(self._build(g, vals, ind3))
        out += [
            f"{ind3}if len(_C_{g.key}) >= {self.FUSED_CACHE}: _C_{g.key}.clear()",
            f"{ind3}if _q <= r.wend: _C_{g.key}[_y] = (o, _n)",
            f"{ind3}return o",
            f"    return _dg_{g.key}(r)",
        ]
        return True

    def emit_fused_encoder(self, g: TypeGrammar) -> bool:
        """``_e_X``: every value checked, then one write for the fixed layout (an integer
        last field adds its octets and the closing bits); anything else (an absent or
        invalid value) runs the generic ``_eg_X``, which raises the precise error."""
        plan = self._fused_plan(g)
        if plan is None:
            return False
        steps, ee_code, ee_w = plan
        total, _mask, expected, fields, tail = self._fused_layout(plan)
        out = self.lines
        out.append("")
        out.append("")
        out.append(f"def _e_{g.key}(w: BitWriter, v: Any) -> None:")
        out.append(f'    """Fused fast path (one write); the generic _eg_{g.key} otherwise."""')
        conds = []
        parts = [f"{expected:#x}"] if expected else []
        for i, ((_fid, f, _c, _w, vc), (shift, _fw, _)) in enumerate(
            zip(steps, fields, strict=True)
        ):
            out.append(f"    x{i} = v.{f.name}")
            if vc.kind == "nbit":
                conds.append(f"type(x{i}) is int and {vc.lo} <= x{i} <= {vc.hi}")
                val = f"(x{i} - {vc.lo})" if vc.lo else f"x{i}"
            elif vc.kind == "enum":
                out.append(f"    try: i{i} = _I_{vc.enum_cls}.get(x{i})")
                out.append(f"    except TypeError: i{i} = None  # unhashable: the generic error")
                conds.append(f"i{i} is not None")
                val = f"i{i}"
            elif vc.kind == "bool":
                conds.append(f"type(x{i}) is bool")
                val = f"x{i}"
            else:
                c = [f"type(x{i}) is int"]
                if vc.lo is not None:
                    c.append(f"{vc.lo} <= x{i}")
                if vc.hi is not None:
                    c.append(f"x{i} <= {vc.hi}")
                conds.append(" and ".join(c))
                val = f"(x{i} < 0)" if vc.kind == "sint" else ""
            if val and (vc.kind != "nbit" or vc.nbits) and (vc.kind != "enum" or vc.nbits):
                parts.append(f"({val} << {shift})" if shift else val)
        head = " | ".join(parts) or "0"
        cache = f"_EC_{g.key}"
        store = [
            f"        if len({cache}) >= {self.FUSED_CACHE}: {cache}.clear()",
            f"        {cache}[id(v)] = (v, _b, _n)",
            "        w.acc = (w.acc << _n) | _b",
            "        return",
        ]
        out.append(f"    if {' and '.join(f'({c})' for c in conds)}:")
        if tail:
            i = len(steps) - 1
            vc = steps[-1][4]
            k = 1 + ee_w
            u = f"(-x{i} - 1 if x{i} < 0 else x{i})" if vc.kind == "sint" else f"x{i}"
            out.append(f"        _u = {u}")
            out.append("        if _u < 0x80:")
            out.append(f"            _b = (({head}) << {8 + k}) | (_u << {k}) | {ee_code}")
            out.append(f"            _n = {total + 8 + k}")
            out.append("        elif _u < 0x4000:")
            out.append(
                f"            _b = (({head}) << {16 + k}) | ((((_u & 0x7F) << 8) | 0x8000 | "
                f"(_u >> 7)) << {k}) | {ee_code}"
            )
            out.append(f"            _n = {total + 16 + k}")
            out.append("        else:")
            out.append(f"            w.bits({head}, {total})")
            out.append("            w.uint(_u)")
            out.append(f"            w.bits({ee_code}, {k})")
            out.append("            return")
        else:
            out.append(f"        _b = {head}")
            out.append(f"        _n = {total}")
        out.extend(store)
        out.append(f"    _eg_{g.key}(w, v)")
        # the encoder's cache: the bits of a value encoded before (held, so its id stays)
        i = max(i for i, ln in enumerate(out) if ln.startswith(f"def _e_{g.key}("))
        out[i:i] = [
            f"{cache}: dict[int, tuple[Any, int, int]] = {{}}  # id -> (value, bits, width)",
            "",
            "",
        ]
        out.insert(
            i + 5,
            f"    _c = {cache}.get(id(v))\n"
            "    if _c is not None and _c[0] is v:\n"
            "        w.acc = (w.acc << _c[2]) | _c[1]\n"
            "        return",
        )
        return True

    # -- identity caches of whole encodings -------------------------------------------
    # Types whose values the charging loop sends again and again (a header, a status,
    # limits, a loop response the core keeps while nothing changed): the bits of a value
    # encoded before are written again in one shift, found by the value's identity.
    ENC_CACHED = frozenset(
        {
            "MessageHeader",
            "MessageHeaderType",
            "V2G_Message",
            "Body",
            "DC_EVSEStatus",
            "AC_EVSEStatus",
            "EVSEStatus",
            "EVSEStatusType",
            "MeterInfo",
            "MeterInfoType",
            "CurrentDemandRes",
            "ChargingStatusRes",
            "DC_ChargeLoopRes",
            "AC_ChargeLoopRes",
            "Scheduled_DC_CLResControlMode",
            "Dynamic_DC_CLResControlMode",
            "BPT_Scheduled_DC_CLResControlMode",
            "BPT_Dynamic_DC_CLResControlMode",
            "Scheduled_AC_CLResControlMode",
            "Dynamic_AC_CLResControlMode",
            "BPT_Scheduled_AC_CLResControlMode",
            "BPT_Dynamic_AC_CLResControlMode",
        }
    )
    ENC_CACHE = 256  # encodings kept per type

    def _grammar(self, key: str) -> TypeGrammar | None:
        for g in self.grammars:
            if g.key == key and not self._is_shared(g.ctype):  # type: ignore[arg-type]
                return g
        return None

    def _has_enc_cache(self, key: str) -> bool:
        """The module keeps an identity cache (``_EC_key``) of the type's encodings."""
        g = self._grammar(key)
        if g is None:
            return False
        return self._fused_plan(g) is not None or self._enc_cache_checks(g) is not None

    def _immutable(self, key: str, seen: frozenset[str] = frozenset()) -> bool:
        """Every value of the type is immutable whatever it was given: its fields are
        strings, integers, enumerations, booleans or values of such types (no octet
        string, which could be a bytearray; no repeated field, which could be a list)."""
        g = self._grammar(key)
        if g is None or key in seen or g.mixed:
            return False
        for f in g.fields:
            if f.repeated:
                return False
            if f.kind in ("attr", "value"):
                if self.value_codec(f.simple).kind == "bytes":  # type: ignore[arg-type]
                    return False
                continue
            for d in f.decls:
                if d.simple is not None:
                    if self.value_codec(d.simple).kind == "bytes":
                        return False
                elif not self._immutable(self.cls(d.complex), seen | {key}):  # type: ignore[arg-type]
                    return False
        return True

    def _enc_cache_checks(self, g: TypeGrammar) -> list[str] | None:
        """The conditions under which an encoded value of ``g`` may be kept (None: the
        type is not cached): its octet strings are ``bytes`` (immutable), each complex
        field absent or a value its own type's cache holds, no repeated field."""
        if g.key not in self.ENC_CACHED or self._fused_plan(g) is not None or g.mixed:
            return None
        checks: list[str] = []
        for f in g.fields:
            if f.repeated:
                return None
            x = f"v.{f.name}"
            if f.kind in ("attr", "value"):
                if self.value_codec(f.simple).kind == "bytes":  # type: ignore[arg-type]
                    checks.append(f"({x} is None or type({x}) is bytes)")
                continue
            if len(f.decls) == 1 and f.decls[0].simple is not None:
                if self.value_codec(f.decls[0].simple).kind == "bytes":
                    checks.append(f"({x} is None or type({x}) is bytes)")
                continue
            if len(f.decls) == 1:
                key = self.cls(f.decls[0].complex)  # type: ignore[arg-type]
                if self._immutable(key):
                    continue  # nothing in it can change
                if key != g.key and self._has_enc_cache(key):
                    held = f"((_h := _EC_{key}.get(id({x}))) is not None and _h[0] is {x})"
                    checks.append(f"({x} is None or {held})")
                    continue
            else:  # a substitution group: the member's own cache, when it has one
                held = (
                    f"((_t := _ECD.get(type({x}))) is not None and "
                    f"(_h := _t.get(id({x}))) is not None and _h[0] is {x})"
                )
                checks.append(f"({x} is None or {held})")
                continue
            checks.append(f"{x} is None")
        return checks

    def _add_enc_cache(self, g: TypeGrammar) -> None:
        """``_e_X`` as an identity cache in front of the generic encoder (now ``_eu_X``):
        a value kept before is one shift; otherwise it is encoded into the stream's
        writer, and its bits (the pending bits it added) are kept when the writer is
        strict (a lenient one may have written values outside their facets), no octets
        were flushed meanwhile and the value is immutable.  An error is raised by the plain
        encoder in the stream's writer, with its offset in the stream."""
        checks = self._enc_cache_checks(g)
        if checks is None:
            return
        head = f"def _e_{g.key}("
        i = max(i for i, ln in enumerate(self.lines) if ln.startswith(head))
        self.lines[i] = self.lines[i].replace(head, f"def _eu_{g.key}(", 1)
        cache = f"_EC_{g.key}"
        cond = " and ".join(checks) or "True"
        out = self.lines
        out += [
            "",
            f"{cache}: dict[int, tuple[Any, int, int]] = {{}}  # id -> (value, bits, width)",
            "",
            "",
            f"def _e_{g.key}(w: BitWriter, v: Any) -> None:",
            f'    """The bits of a value encoded before; else _eu_{g.key} (and keep them)."""',
            f"    _c = {cache}.get(id(v))",
            "    if _c is not None and _c[0] is v:",
            "        w.acc = (w.acc << _c[2]) | _c[1]",
            "        return",
            "    _a = w.acc.bit_length()",
            "    _b = len(w.buf)",
            f"    _eu_{g.key}(w, v)",
            f"    if type(w) is BitWriter and len(w.buf) == _b and {cond}:",
            "        _n = w.acc.bit_length() - _a",
            f"        if len({cache}) >= {self.ENC_CACHE}: {cache}.clear()",
            f"        {cache}[id(v)] = (v, w.acc & ((1 << _n) - 1), _n)",
        ]

    def emit_subst_tables(self, g: TypeGrammar) -> None:
        for fid, f in enumerate(g.fields):
            if len(f.decls) <= 1:
                continue
            classes = []
            for d in f.decls:
                if d.complex is None:
                    raise ValueError(f"substitution member {d.qname} is simple-typed")
                classes.append(self.cls(d.complex))
            if len(set(classes)) != len(classes):
                raise ValueError(f"substitution group {f.qname}: members share a type")
            sm = ", ".join(f"{c}: {i}" for i, c in enumerate(classes))
            self.lines.append(f"_SM_{g.key}_{fid} = {{{sm}}}")
            self.lines.append(f"_SE_{g.key}_{f.name} = ({', '.join(f'_e_{c}' for c in classes)},)")
            self.lines.append(f"_SD_{g.key}_{f.name} = ({', '.join(f'_d_{c}' for c in classes)},)")

    # -- metadata for XML / JSON / property tests -----------------------------------------
    def tinfo(self, st: SimpleType) -> str:
        vc = self.value_codec(st)
        if vc.kind in ("nbit", "uint", "sint"):
            return f"('int', {vc.lo}, {vc.hi})"
        if vc.kind == "bool":
            return "('bool',)"
        if vc.kind == "str":
            return f"('str', {vc.minl}, {vc.maxl})"
        if vc.kind == "bytes":
            return f"('bytes', {vc.minl}, {vc.maxl}, {vc.encoding!r})"
        return f"('enum', {vc.enum_cls})"

    def field_meta(self, f: Field) -> str:
        if f.kind in ("attr", "value"):
            t = self.tinfo(f.simple)  # type: ignore[arg-type]
        else:
            members = []
            for d in f.decls:
                if d.complex is not None:
                    members.append(
                        f"({d.qname[0]!r}, {d.qname[1]!r}, ('class', {self.cls(d.complex)}))"
                    )
                else:
                    members.append(f"({d.qname[0]!r}, {d.qname[1]!r}, {self.tinfo(d.simple)})")  # type: ignore[arg-type]
            t = f"('elem', ({', '.join(members)},))"
        opt = f.optional_in_model or f.min == 0
        return (
            f"FieldInfo({f.name!r}, {f.kind!r}, {f.qname[0]!r}, {f.qname[1]!r}, {opt!r}, "
            f"{f.repeated!r}, {f.max if f.repeated else 1}, {t})"
        )

    # -- whole module -------------------------------------------------------------------
    def emit(self) -> str:
        out = self.lines
        digest = hashlib.sha256()
        for p in self.sources:
            digest.update(p.read_bytes())
        out.append(
            "# Generated by `python -m secc.codec.codegen` from "
            + ", ".join(p.name for p in self.sources)
        )
        out.append(f"# (sha256 of the schema files: {digest.hexdigest()[:16]}). Do not edit.")
        out.append("# ruff: noqa")
        out.append("# mypy: ignore-errors")
        out.append("from __future__ import annotations")
        out.append("")
        out.append("from dataclasses import dataclass")
        out.append("from enum import StrEnum")
        out.append("from typing import Any")
        out.append("")
        out.append("from secc.codec.errors import CodecError")
        out.append("from secc.codec.exi.meta import FieldInfo, RootInfo")
        out.append(
            "from secc.codec.exi.runtime import (BitReader, BitWriter, EmptyBytes, EmptyStr, "
            "EncodeError, bad_value, empty_value, ev, ev_special, expect_ee, expect_ee_failed, "
            "builders, missing, not_allowed, unexpected, WMISS, WindowMiss, EncodeWindowMiss, "
            "ewmiss, wascii, wbinary, winteger, wint, wmiss, wstarts, wstring, wuint)"
        )
        out.append(
            "from secc.codec.exi.facets import (encode_length, encode_range, length_violation, "
            "range_violation)"
        )
        own = [g for g in self.grammars if not self._is_shared(g.ctype)]  # type: ignore[arg-type]
        shared = [g for g in self.grammars if self._is_shared(g.ctype)]  # type: ignore[arg-type]
        if shared:
            names = []
            for g in shared:
                names += [g.key, f"_e_{g.key}", f"_d_{g.key}"]
            out.append(f"from secc.codec._generated.{self.shared.module} import (")  # type: ignore[union-attr]
            out.extend(f"    {n}," for n in names)
            out.append(")")
        for name, values in self.enums.items():
            out.append("")
            out.append("")
            out.append(f"class {name}(StrEnum):")
            for v in values:
                out.append(f"    {_pyname_enum(v)} = {v!r}")
            out.append("")
            out.append("")
            out.append(f"_V_{name} = tuple({name})")
            out.append(f"_I_{name} = {{v: i for i, v in enumerate(_V_{name})}}")
        for g in own:
            self.emit_class(g)
        for g in own:
            self._cur = g.key
            self.emit_tables(g)
            self.emit_encoder(g)
            self.emit_decoder(g)
            self._add_fused(g)
            self._add_enc_cache(g)
        for g in own:
            self.emit_subst_tables(g)
        window.emit_window(self)
        window.emit_window_encoders(self)
        # decode function -> {label of a repeated field: its list}: element indices in
        # the paths of facet violations
        repeated = {}
        for key, labels in self._repeated.items():
            for fn in (f"_d_{key}", f"_dg_{key}", f"_dx_{key}"):
                repeated[fn] = labels
        out.append("")
        out.append(f"_REPEATED = {repeated!r}")
        cached = [g.key for g in own if self._has_enc_cache(g.key)]
        out.append("")
        out.append("# class -> its identity cache of encodings (substitution-group members)")
        out.append("_ECD: dict[type, dict[int, tuple[Any, int, int]]] = {")
        out.extend(f"    {k}: _EC_{k}," for k in cached)
        out.append("}")
        out.append("")
        built = ", ".join(dict.fromkeys(self._built))
        out.append(f"builders(globals(), ({built},))")
        # metadata
        out.append("")
        out.append("FIELDS: dict[type, tuple[FieldInfo, ...]] = {")
        for g in own:
            metas = ", ".join(self.field_meta(f) for f in g.fields)
            out.append(f"    {g.key}: ({metas}{',' if g.fields else ''}),")
        out.append("}")
        out.append("ENCODERS: dict[type, Any] = {")
        out.extend(f"    {g.key}: _e_{g.key}," for g in own)
        out.append("}")
        out.append("DECODERS: dict[type, Any] = {")
        out.extend(f"    {g.key}: _d_{g.key}," for g in own)
        out.append("}")
        if shared:
            assert self.shared is not None
            out.append(
                f"from secc.codec._generated.{self.shared.module} import "
                "FIELDS as _SF, ENCODERS as _SEN, DECODERS as _SDE"
            )
            out.append("FIELDS.update(_SF); ENCODERS.update(_SEN); DECODERS.update(_SDE)")
        self.emit_roots()
        return "\n".join(_inline_writes(ln) for ln in out) + "\n"

    def _elem_root(self, d: ElementDecl, ident: str) -> str:
        """RootInfo for a global or fragment element."""
        if d.complex is not None:
            c = self.cls(d.complex)
            return f"RootInfo({d.qname[0]!r}, {d.qname[1]!r}, {c}, _e_{c}, _d_{c}, None)"
        assert d.simple is not None
        out = self.lines
        out.append("")
        out.append("")
        out.append(f"def _es_{ident}(w: BitWriter, x: Any) -> None:")
        out.extend(self.enc_simple_elem(d.simple, "x", d.qname[1], "    "))
        out.append("")
        out.append("")
        out.append(f"def _ds_{ident}(r: BitReader) -> Any:")
        out.extend(self.dec_simple_elem(d.simple, d.qname[1], "    "))
        out.append("    return _x")
        return (
            f"RootInfo({d.qname[0]!r}, {d.qname[1]!r}, None, _es_{ident}, _ds_{ident}, "
            f"{self.tinfo(d.simple)})"
        )

    def emit_roots(self) -> None:
        out = self.lines
        globals_ = sorted(self.schema.elements.values(), key=lambda d: (d.qname[1], d.qname[0]))
        roots = [self._elem_root(d, f"g{i}") for i, d in enumerate(globals_)]
        out.append("")
        out.append(f"DOCUMENT: tuple[RootInfo, ...] = ({', '.join(roots)},)")
        # fragment grammar: unique qnames of all element declarations
        by_q: dict[QName, list[ElementDecl]] = {}
        for d in self.schema.all_element_decls():
            by_q.setdefault(d.qname, []).append(d)
        frags = []
        for i, q in enumerate(sorted(by_q, key=lambda q: (q[1], q[0]))):
            decls = by_q[q]
            kinds = {
                (
                    id(d.complex) if d.complex is not None else d.type_qname or id(d.simple),
                    d.nillable,
                )
                for d in decls
            }
            if len(kinds) == 1:
                frags.append(self._elem_root(decls[0], f"f{i}"))
            else:
                classes = {self.cls(d.complex) for d in decls if d.complex is not None}
                c = classes.pop() if len(classes) == 1 else None
                frags.append(f"RootInfo({q[0]!r}, {q[1]!r}, {c}, None, None, 'relaxed')")
        out.append("")
        out.append(f"FRAGMENT: tuple[RootInfo, ...] = ({', '.join(frags)},)")
        attrs: set[QName] = set()
        for ct in self.schema.complex_types.values():
            attrs.update(a.qname for a in ct.attributes)
        for d in self.schema.all_element_decls():
            if d.complex is not None:
                attrs.update(a.qname for a in d.complex.attributes)
        out.append(
            f"FRAGMENT_ATTRIBUTES: tuple[tuple[str, str], ...] = "
            f"{tuple(sorted(attrs, key=lambda q: (q[1], q[0])))!r}"
        )


def fused_field_reads(
    fields: list[tuple[int, int, ValueCodec]], conds: list[str]
) -> tuple[list[str], list[str]]:
    """The value expressions and plain assignments of a fused read's bit fields (the
    integer fields are read apart): (vals, pre); the range checks of fields whose width
    covers more than their values go to ``conds``.  Shared by the reader's fused decoders
    and the window decoders (:mod:`.window`)."""
    vals: list[str] = []
    pre: list[str] = []
    for i, (shift, w, vc) in enumerate(fields):
        if vc.kind in ("uint", "sint"):
            continue
        src = f"(_x >> {shift}) & {(1 << w) - 1:#x}" if w else "0"
        if vc.kind == "nbit":
            if (1 << vc.nbits) != vc.hi - vc.lo + 1:  # type: ignore[operator]
                conds.append(f"(a{i} := {src}) <= {vc.hi - vc.lo}")  # type: ignore[operator]
            else:
                pre.append(f"a{i} = {src}")
            vals.append(f"a{i} + {vc.lo}" if vc.lo else f"a{i}")
        elif vc.kind == "enum":
            if (1 << vc.nbits) != vc.count:
                conds.append(f"(a{i} := {src}) < {vc.count}")
            else:
                pre.append(f"a{i} = {src}")
            vals.append(f"_V_{vc.enum_cls}[a{i}]")
        else:
            pre.append(f"a{i} = {src}")
            vals.append(f"a{i} == 1")
    return vals, pre
