"""Window decoders for the charging loop's messages (build time only).

A message of up to ``BitReader.WINDOW`` octets is one integer in the reader (``r.val``,
``r.wend == r.end``).  ``_dw_X(V, q)`` decodes a value of type X from that integer
``V`` whose next bit is ``q`` bits before its end (``q = r.end - r.pos``) and returns
the value and the bits left after it
and the position after it: every read is a shift and a mask of locals (no attribute
of the reader, no call per field), and a child type's window decoder is called with the
same three numbers.  It only decodes the common case: every value within its facets,
every event a first-level one, optional fields the decoder supports; anything else
(an escape, a value outside its facets, a field it does not decode, the end of the
input: a negative shift, an index past a table) raises, and the caller decodes the same
bits again with the generic decoder (``_dx_X`` for an entry type), which gives the
value or the precise error.  ``tests/codec/test_window.py`` checks both give the same
values and positions.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .grammar import Field, TypeGrammar

if TYPE_CHECKING:
    from .emit import Emitter

# the loop's messages and their parts: window decoders for these and what they contain
WINDOW_ROOTS = frozenset(
    {
        "V2G_Message",
        "CurrentDemandReq",
        "CurrentDemandRes",
        "ChargingStatusReq",
        "ChargingStatusRes",
        "DC_ChargeLoopReq",
        "DC_ChargeLoopRes",
        "AC_ChargeLoopReq",
        "AC_ChargeLoopRes",
    }
)
# types whose _d_X tries the window decoder first (the roots the codec decodes)
WINDOW_ENTRY = frozenset(
    {"V2G_Message", "DC_ChargeLoopReq", "DC_ChargeLoopRes", "AC_ChargeLoopReq", "AC_ChargeLoopRes"}
)
# types whose decoded values the window decoder keeps by their bits (immutable values
# the loop sends unchanged: the session's header, without a time stamp)
WINDOW_KEPT = frozenset({"MessageHeader"})
SMALL_GROUP = 8  # substitution groups up to this size take all their members


def _mask(n: int) -> str:
    return f"{(1 << n) - 1:#x}"


def _win_init(em: Emitter) -> None:
    em._win_ok = {}
    em._win_tables = []


def _win_closure(em: Emitter) -> set[str]:
    """Keys of the types reachable from WINDOW_ROOTS (large substitution groups: only
    their members that are roots)."""
    seen: set[str] = set()
    todo = [g.key for g in em.grammars if g.key in WINDOW_ROOTS]
    while todo:
        key = todo.pop()
        g = em._grammar(key)
        if g is None or key in seen:
            continue
        seen.add(key)
        for f in g.fields:
            if f.kind != "elem":
                continue
            for d in f.decls:
                if d.complex is None:
                    continue
                c = em.cls(d.complex)
                if len(f.decls) > SMALL_GROUP and c not in WINDOW_ROOTS:
                    continue
                todo.append(c)
    return seen


def _win_field(em: Emitter, f: Field, closure: set[str], stack: frozenset[str]) -> bool:
    """The window decoder decodes this field's content."""
    if f.kind != "elem" or f.repeated:
        return False
    if len(f.decls) == 1 and f.decls[0].simple is not None:
        vc = em.value_codec(f.decls[0].simple)
        return vc.kind in ("nbit", "enum", "bool", "uint", "sint", "bytes", "str")
    members = [d.complex for d in f.decls]
    if any(c is None for c in members):
        return False
    return any(
        _win_eligible(em, em.cls(c), closure, stack)  # type: ignore[arg-type]
        for c in members
    )


def _win_eligible(
    em: Emitter, key: str, closure: set[str], stack: frozenset[str] = frozenset()
) -> bool:
    if key in em._win_ok:
        return em._win_ok[key]
    g = em._grammar(key)
    if g is None or key not in closure or key in stack or g.mixed:
        return False
    ok = em._fused_plan(g) is not None or _win_plan(em, g, closure, stack | {key})
    em._win_ok[key] = ok
    return ok


def _win_plan(em: Emitter, g: TypeGrammar, closure: set[str], stack: frozenset[str]) -> bool:
    """Every required field decodable, every event read in a known state."""
    states = {0}
    for fid, f in enumerate(g.fields):
        optional = f.optional_in_model or f.min == 0
        if not _win_field(em, f, closure, stack):
            if not optional:
                return False
            continue
        taken = {t for s in states for (_, _, t) in em._moves(g.states[s], fid).values()}
        if len(taken) != 1:
            return False
        states = (states | taken) if optional else taken
    return True


# -- emitting ---------------------------------------------------------------------
def emit_window(em: Emitter) -> None:
    """``_dw_X`` for every eligible type; ``_d_X`` of the entry types tries it first."""
    _win_init(em)
    closure = _win_closure(em)
    own = [g for g in em.grammars if not em._is_shared(g.ctype)]  # type: ignore[arg-type]
    keys = [g.key for g in own if _win_eligible(em, g.key, closure)]
    for key in keys:
        g = em._grammar(key)
        assert g is not None
        if em._fused_plan(g) is not None:
            # the fused read for the usual layout; the window's grammar code for the
            # rest (optional fields left out), where it decodes the type
            slow = _win_plan(em, g, closure, frozenset({key}))
            _emit_window_fused(em, g, f"_dwg_{key}" if slow else None)
            if slow:
                _emit_window_decoder(em, g, closure, f"_dwg_{key}")
        else:
            _emit_window_decoder(em, g, closure)
    for key in keys:
        if key in WINDOW_ENTRY:
            _emit_window_entry(em, key)
    em.lines.extend(em._win_tables)


def _emit_window_entry(em: Emitter, key: str) -> None:
    head = f"def _d_{key}("
    i = max(i for i, ln in enumerate(em.lines) if ln.startswith(head))
    assert em._fused_plan(em._grammar(key)) is None  # type: ignore[arg-type]
    em.lines[i] = em.lines[i].replace(head, f"def _dx_{key}(", 1)
    em.lines += [
        "",
        "",
        f"def _d_{key}(r: BitReader) -> {key}:",
        f'    """The window decoder when the window holds the rest of the input; else (or'
        f' when it does not decode the bits) _dx_{key}."""',
        "    if r.wend == r.end:",
        "        try:",
        f"            o, q = _dw_{key}(r.val, r.end - r.pos)",
        "        except WMISS:",
        "            pass",
        "        else:",
        "            r.pos = r.end - q",
        "            return o",
        f"    return _dx_{key}(r)",
    ]


def _win_read(em: Emitter, g: TypeGrammar, s: int, subst: bool, ind: str) -> list[str]:
    """Read the event code in state ``s``: ``fid`` (and ``m`` for substitution groups)."""
    st = g.states[s]
    entries: list[tuple[int, int]] = []
    for p in st.prods:
        if p.kind in ("AT", "SE", "CH"):
            f = g.fields[p.fid]
            mem = 0
            if p.kind == "SE":
                mem = [d.qname for d in f.decls].index(p.qname)  # type: ignore[arg-type]
            entries.append((p.fid, mem))
        elif p.kind == "EE":
            entries.append((-1, 0))
        else:
            entries.append((-4, 0))
    entries.append((-2, 0))
    while len(entries) < (1 << st.width):
        entries.append((-3, 0))
    if not st.width:
        fid, m = entries[0]
        return [f"{ind}fid = {fid}"] + ([f"{ind}m = {m}"] if subst else [])
    name = f"_W{'M' if subst else ''}_{g.key}_{s}"
    table = tuple(entries) if subst else tuple(e[0] for e in entries)
    line = f"{name} = {table!r}"
    if line not in em._win_tables:
        em._win_tables.append(line)
    w = st.width
    return [
        f"{ind}q -= {w}",
        f"{ind}{'fid, m' if subst else 'fid'} = {name}[(V >> q) & {_mask(w)}]",
    ]


def _emit_window_decoder(
    em: Emitter, g: TypeGrammar, closure: set[str], name: str | None = None
) -> None:
    subst = any(len(f.decls) > 1 and _win_field(em, f, closure, frozenset()) for f in g.fields)
    body: list[str] = []
    ind = "    "
    body += _win_read(em, g, 0, subst, ind)
    states = {0}
    values: list[str] = []
    for fid, f in enumerate(g.fields):
        optional = f.optional_in_model or f.min == 0
        var = f"f{fid}"
        values.append(var if not f.repeated else "()")
        if not _win_field(em, f, closure, frozenset()):
            # optional and not decoded here: present means the generic decoder
            body.append(f"{ind}if fid == {fid}: raise WindowMiss")
            if not f.repeated:
                values[-1] = "None"
            continue
        taken = {t for s in states for (_, _, t) in em._moves(g.states[s], fid).values()}
        (nxt,) = taken
        body.append(f"{ind}if fid == {fid}:")
        inner = ind + "    "
        body += _win_content(em, g, f, var, inner)
        body += _win_read(em, g, nxt, subst, inner)
        body.append(f"{ind}else:")
        body.append(f"{inner}{var} = None" if optional else f"{inner}raise WindowMiss")
        states = (states | taken) if optional else taken
    body.append(f"{ind}if fid != -1: raise WindowMiss")
    out = em.lines
    fn = name or f"_dw_{g.key}"
    kept = g.key in WINDOW_KEPT and not any(f.name == "time_stamp" for f in g.fields)
    out += ["", "", f"def {fn}(V: int, q: int) -> tuple[{g.key}, int]:"]
    if kept:
        # the same bits as a value decoded before (the session's header): that value
        out += [
            f"    _k = _WN_{g.key}",
            "    if _k[0] and _k[0] <= q:",
            f"        _h = _WC_{g.key}.get((V >> (q - _k[0])) & _k[1])",
            "        if _h is not None: return _h, q - _k[0]",
            "    _q0 = q",
        ]
    out += body
    if g.fields:
        out += em._build(g, values, ind)
        if kept:
            out += [
                "    _n = _q0 - q",
                f"    if _n != _k[0]: _WC_{g.key}.clear(); _k[0] = _n; _k[1] = (1 << _n) - 1",
                f"    if len(_WC_{g.key}) >= {em.FUSED_CACHE}: _WC_{g.key}.clear()",
                f"    _WC_{g.key}[(V >> q) & _k[1]] = o",
            ]
        out.append(f"{ind}return o, q")
    else:
        out.append(f"{ind}return {g.key}(), q")
    if kept:
        i = max(i for i, ln in enumerate(out) if ln.startswith(f"def {fn}("))
        out[i:i] = [
            f"_WC_{g.key}: dict[int, {g.key}] = {{}}  # its bits -> value (of one width)",
            f"_WN_{g.key} = [0, 0]  # that width, its mask",
            "",
            "",
        ]


def _win_content(em: Emitter, g: TypeGrammar, f: Field, var: str, ind: str) -> list[str]:
    if len(f.decls) > 1:
        table = f"_SW_{g.key}_{f.name}"
        fns = []
        for d in f.decls:
            c = em.cls(d.complex)  # type: ignore[arg-type]
            fns.append(f"_dw_{c}" if em._win_ok.get(c) else "wmiss")
        em._win_tables.append(f"{table} = ({', '.join(fns)},)")
        return [f"{ind}{var}, q = {table}[m](V, q)"]
    d = f.decls[0]
    if d.complex is not None:
        return [f"{ind}{var}, q = _dw_{em.cls(d.complex)}(V, q)"]
    assert d.simple is not None
    vc = em.value_codec(d.simple)
    if vc.kind in ("nbit", "enum", "bool"):
        n = vc.nbits if vc.kind != "bool" else 1
        t = n + 2  # CH (0), the value, EE (0)
        lines = [
            f"{ind}q -= {t}",
            f"{ind}_x = (V >> q) & {_mask(t)}",
            f"{ind}if _x & {(1 << (t - 1)) | 1:#x}: raise WindowMiss",
        ]
        if vc.kind == "bool":
            lines.append(f"{ind}{var} = _x == 2")
        elif vc.kind == "enum":
            # an index past the values is an IndexError: the generic decoder reports it
            lines.append(f"{ind}{var} = _V_{vc.enum_cls}[_x >> 1]")
        else:
            if (1 << vc.nbits) != vc.hi - vc.lo + 1:  # type: ignore[operator]
                lines.append(f"{ind}if _x > {(vc.hi - vc.lo) << 1}: raise WindowMiss")  # type: ignore[operator]
            value = f"(_x >> 1) + {vc.lo}" if vc.lo else "_x >> 1"
            lines.append(f"{ind}{var} = {value}")
        return lines
    if vc.kind in ("uint", "sint"):
        s = 1 if vc.kind == "sint" else 0
        n = 18 + s  # CH, [sign], two octets, the bit after them
        sign = " ^ -((_x >> 17) & 1)" if s else ""
        one = (1 << (n - 1)) | (1 << 16) | (1 << 8)  # CH, first MSB, EE after one octet
        two = one | 1
        rng = []
        if vc.lo is not None and (s or vc.lo > 0):
            rng.append(f"{vc.lo} <= {var}")
        if vc.hi is not None:
            rng.append(f"{var} <= {vc.hi}")
        lines = [
            f"{ind}_s = q - {n}",
            f"{ind}_x = (V >> _s) & {_mask(n)} if _s >= 0 else -1",
            f"{ind}if _x & {one:#x} == 0:",
            f"{ind}    {var} = ((_x >> 9) & 0x7f){sign}; q = _s + 8",
            f"{ind}elif _x & {two:#x} == 0x10000:",
            f"{ind}    {var} = (((_x >> 9) & 0x7f) | ((_x & 0xfe) << 6)){sign}; q = _s",
            f"{ind}else:",
            f"{ind}    {var}, q = wint(V, q, {s})",
        ]
        if rng:
            lines.append(f"{ind}if not ({' and '.join(rng)}): raise WindowMiss")
        return lines
    # octets or ASCII characters: CH, the length (one 7-bit group), the octets, EE
    off = 2 if vc.kind == "str" else 0
    lines = [
        f"{ind}_n = (V >> (q - 9)) & 0x1ff",
        f"{ind}if _n >= 0x80{' or _n < 2' if off else ''}: raise WindowMiss",
    ]
    if off:
        lines.append(f"{ind}_n -= 2")
    if vc.maxl is not None or vc.minl:
        conds = []
        if vc.minl:
            conds.append(f"_n < {vc.minl}")
        if vc.maxl is not None:
            conds.append(f"_n > {vc.maxl}")
        lines.append(f"{ind}if {' or '.join(conds)}: raise WindowMiss")
    lines += [
        f"{ind}_b = _n << 3",
        f"{ind}q -= 10 + _b",
        f"{ind}_x = (V >> q) & ((2 << _b) - 1)",
        f"{ind}if _x & 1: raise WindowMiss",
    ]
    if vc.kind == "bytes":
        lines.append(f"{ind}{var} = (_x >> 1).to_bytes(_n, 'big')")
    else:
        lines.append(f"{ind}{var} = wascii((_x >> 1).to_bytes(_n, 'big'))")
    return lines


def _emit_window_fused(em: Emitter, g: TypeGrammar, slow: str | None) -> None:
    """The fused fast path of a fixed-layout type on the window (same cache); where
    the layout differs, ``slow`` (the window's grammar code) or a miss."""
    plan = em._fused_plan(g)
    assert plan is not None
    steps, ee_code, ee_w = plan
    total, mask, expected, fields, tail = em._fused_layout(plan)
    out: list[str] = []
    ind = "    "
    conds: list[str] = []
    from .emit import fused_field_reads

    vals, pre = fused_field_reads(fields, conds)
    if not tail:
        out += [
            f"{ind}_s = q - {total}",
            f"{ind}_x = (V >> _s) & {_mask(total)}",
            f"{ind}o = _C_{g.key}.get(_x)",
            f"{ind}if o is not None: return o, _s",
            f"{ind}if _x & {mask:#x} != {expected:#x}: raise WindowMiss",
        ]
        out += [ind + ln for ln in pre]
        if conds:
            out.append(f"{ind}if not ({' and '.join(conds)}): raise WindowMiss")
        out += em._build(g, vals, ind)
        out += [
            f"{ind}if len(_C_{g.key}) >= {em.FUSED_CACHE}: _C_{g.key}.clear()",
            f"{ind}_C_{g.key}[_x] = o",
            f"{ind}return o, _s",
        ]
        _win_fused_out(em, g, out, slow)
        return
    k = 1 + ee_w
    km = (1 << k) - 1
    n = total + 16 + k
    one_mask = (0x80 << k) | km
    two_mask = (0x80 << (8 + k)) | (0x80 << k) | km
    two_want = (0x80 << (8 + k)) | ee_code
    vc_last = steps[-1][4]
    sign = " ^ -(_x & 1)" if vc_last.kind == "sint" else ""
    lo = -16384 if vc_last.kind == "sint" else 0
    rng = []
    if vc_last.lo is not None and vc_last.lo > lo:
        rng.append(f"{vc_last.lo} <= _v")
    if vc_last.hi is not None and vc_last.hi < 16383:
        rng.append(f"_v <= {vc_last.hi}")
    out += [
        f"{ind}_s = q - {n}",
        f"{ind}if _s >= 0:",
        f"{ind}    _y = (V >> _s) & {_mask(n)}",
        f"{ind}    _h = _C_{g.key}.get(_y)",
        f"{ind}    if _h is not None: return _h[0], q - _h[1]",
        f"{ind}else:",
        f"{ind}    _y = (V << -_s) & {_mask(n)}",
        f"{ind}_x = _y >> {16 + k}",
        f"{ind}if _x & {mask:#x} != {expected:#x}: raise WindowMiss",
    ]
    out += [ind + ln for ln in pre]
    if conds:
        out.append(f"{ind}if not ({' and '.join(conds)}): raise WindowMiss")
    out += [
        f"{ind}if (_y >> 8) & {one_mask:#x} == {ee_code}:",
        f"{ind}    _v = ((_y >> {8 + k}) & 0x7f){sign}; _n = {total + 8 + k}",
        f"{ind}elif _y & {two_mask:#x} == {two_want:#x}:",
        f"{ind}    _v = (((_y >> {8 + k}) & 0x7f) | (((_y >> {k}) & 0x7f) << 7)){sign}; _n = {n}",
        f"{ind}else:",
        f"{ind}    raise WindowMiss",
    ]
    vals.append("_v")
    cond = " and ".join(["_n <= q", *rng])
    out.append(f"{ind}if not ({cond}): raise WindowMiss")
    out += em._build(g, vals, ind)
    out += [
        f"{ind}if _s >= 0:",
        f"{ind}    if len(_C_{g.key}) >= {em.FUSED_CACHE}: _C_{g.key}.clear()",
        f"{ind}    _C_{g.key}[_y] = (o, _n)",
        f"{ind}return o, q - _n",
    ]
    _win_fused_out(em, g, out, slow)


def _win_fused_out(em: Emitter, g: TypeGrammar, body: list[str], slow: str | None) -> None:
    em.lines += ["", "", f"def _dw_{g.key}(V: int, q: int) -> tuple[{g.key}, int]:"]
    if slow is not None:
        body = [ln.replace("raise WindowMiss", f"return {slow}(V, q)") for ln in body]
    em.lines += body


# -- window encoders ------------------------------------------------------------------
# ``_ew_X(v) -> (bits, width)``: the value's encoding in a local integer (a child's
# encoding is its own small integer, shifted into the parent's once), made from the
# generic encoder's lines with the writer's accumulator as a local and every error (and
# every value the writer would take from a lenient caller only) a miss: the caller then
# runs the generic encoder on the stream's writer, which raises the precise error.
ENC_ENTRY = frozenset(
    {"V2G_Message", "DC_ChargeLoopRes", "AC_ChargeLoopRes", "DC_ChargeLoopReq", "AC_ChargeLoopReq"}
)
_CHILD = re.compile(r"^(\s*)_e_(\w+)\(w, (\w+)\)$")
_SUBST = re.compile(r"^(\s*)_SE_(\w+)\[m\]\(w, (\w+)\)$")
_RAISE = re.compile(r"raise .*$")
_CHECK = re.compile(r"encode_(range|length)\(w, .*\)$")
_HELPERS = {
    "w.string(x)": "a = wstring(a, x)",
    "w.binary(x)": "a = wbinary(a, x)",
    "w.uint(x)": "a = wuint(a, x)",
    "w.integer(x)": "a = winteger(a, x)",
}
_W = re.compile(r"\bw\b")


def _ew_closure(em: Emitter) -> set[str]:
    return _win_closure(em)


def _generic_encoder(em: Emitter, key: str, fused: bool = False) -> list[str] | None:
    """The body of the type's generic encoder (inside its try), dedented to 4."""
    for name in (f"_eg_{key}",) if fused else (f"_eu_{key}", f"_e_{key}"):
        head = f"def {name}("
        idx = [i for i, ln in enumerate(em.lines) if ln.startswith(head)]
        if idx:
            break
    else:
        return None
    i = idx[-1]
    j = i + 1
    while j < len(em.lines) and (not em.lines[j] or em.lines[j].startswith(" ")):
        j += 1
    fn = "\n".join(em.lines[i:j]).split("\n")
    try:
        t = fn.index("    try:")
        e = fn.index("    except CodecError as e:")
    except ValueError:
        return None
    return [ln[4:] for ln in fn[t + 1 : e]]


def emit_window_encoders(em: Emitter) -> None:
    from .emit import _inline_writes

    em._ew_tables = []
    closure = _ew_closure(em)
    own = [g for g in em.grammars if not em._is_shared(g.ctype)]  # type: ignore[arg-type]
    bodies: dict[str, list[str]] = {}
    fused: list[str] = []
    for g in own:
        if g.key not in closure or g.mixed:
            continue
        if any(f.kind == "value" for f in g.fields):
            continue
        if em._fused_plan(g) is not None:
            fused.append(g.key)
            continue
        body = _generic_encoder(em, g.key)
        if body is not None:
            bodies[g.key] = body
    ok = set(bodies) | set(fused)
    out_fns: dict[str, list[str]] = {}
    changed = True
    while changed:  # a type whose lines still need the writer is dropped, then its users
        changed = False
        for key in sorted(ok - set(fused)):
            lines = _ew_lines(em, key, bodies[key], ok, _inline_writes)
            if lines is None:
                ok.discard(key)
                changed = True
            else:
                out_fns[key] = lines
    for key in fused:
        fg = em._grammar(key)
        assert fg is not None
        # the fused write for the usual layout; the grammar code for the rest
        body = _generic_encoder(em, key, fused=True)
        lines = None if body is None else _ew_lines(em, key, body, ok, _inline_writes)
        _emit_ew_fused(em, fg, lines is not None)
        if lines is not None:
            em.lines += ["", "", f"def _ewg_{key}(v: Any) -> tuple[int, int]:"]
            em.lines += lines
            em.lines.append("    _n = a.bit_length() - 1")
            em.lines.append("    return a ^ (1 << _n), _n")
    # members of a substitution group: their table calls _ew_X without a look-up before;
    # every other caller (a parent's field, the entry's _e_X) looked X up already
    members = {
        em.cls(d.complex)
        for key in ok
        for f in em._grammar(key).fields  # type: ignore[union-attr]
        if len(f.decls) > 1
        for d in f.decls
        if d.complex is not None
    }
    for key in sorted(ok - set(fused)):
        cg = em._grammar(key)
        assert cg is not None
        em.lines += ["", "", f"def _ew_{key}(v: Any) -> tuple[int, int]:"]
        cache = em._enc_cache_checks(cg)
        if cache is not None and key in members:
            em.lines += [
                f"    _c = _EC_{key}.get(id(v))",
                "    if _c is not None and _c[0] is v:",
                "        return _c[1], _c[2]",
            ]
        keep: list[str] = []
        if cache is not None:
            # kept when encoded a second time in a row: a loop response, its message
            # and meter info are new every message when values change, and keeping
            # each (a tuple, a dict entry, the value held until the cache is cleared)
            # cost more than encoding the few values that come again
            cond = " and ".join(cache) or "True"
            keep = [
                f"    if _S_{key}[0] is not v: _S_{key}[0] = v",
                f"    elif {cond}:",
                f"        if len(_EC_{key}) >= {em.ENC_CACHE}: _EC_{key}.clear()",
                f"        _EC_{key}[id(v)] = (v, _b, _n)",
            ]
            em._ew_tables.append(f"_S_{key}: list[Any] = [None]  # the value encoded last")
        lines = _ew_memo(em, cg, out_fns[key]) if key in MEMO_TYPES else out_fns[key]
        run = _ew_run(em, cg, lines, keep) if key in RUN_TYPES else None
        if run is not None:
            fast, plain = run
            em.lines += fast
            em.lines += ["", "", f"def _ewp_{key}(v: Any) -> tuple[int, int]:"]
            em.lines += plain
            continue
        em.lines += lines
        em.lines.append("    _n = a.bit_length() - 1")
        em.lines.append("    _b = a ^ (1 << _n)")
        em.lines += keep
        em.lines.append("    return _b, _n")
    for key in sorted(ok):
        if key in ENC_ENTRY and em._has_enc_cache(key):
            _emit_ew_entry(em, key, ok)
    em.lines.extend(em._ew_tables)


# the loop's responses and their measured parts: their window encoders keep, per field,
# the last value written there and its bits (with the event code before it)
MEMO_TYPES = frozenset(
    {"CurrentDemandRes", "ChargingStatusRes", "DC_ChargeLoopRes", "AC_ChargeLoopRes", "MeterInfo"}
)


_FIELD = re.compile(r"^    x = v\.(\w+)$")
_TAIL = re.compile(r"^    (e = _EE_|a <<= |a = \(a << )")


def _ew_run(
    em: Emitter, g: TypeGrammar, lines: list[str], keep: list[str]
) -> tuple[list[str], list[str]] | None:
    """The run memo of a loop response's window encoder: the lines of ``_ew_X`` and of
    ``_ewp_X`` (the plain encoder, which also keeps the value, its bits, where each
    field's bits start and the grammar state there in ``_R_X``), or None.

    ``_ew_X`` compares each field with the kept value's: a run of fields that are the
    same objects (immutable values: their bits cannot have changed) is taken from the
    kept bits in one shift; a field that is another object is encoded after the state
    kept for it (one encoded to another width moves the kept starts after it).  The rest
    goes to ``_ewp_X``: no value kept, a field appearing or disappearing (the event
    codes after it change).  ``tests/codec/test_window_run.py`` compares
    both with the generic encoder."""
    key = g.key
    head: list[str] = []
    blocks: list[tuple[str, list[str]]] = []
    tail: list[str] = []
    for ln in lines:
        m = _FIELD.match(ln)
        if m is not None and not tail:
            blocks.append((m.group(1), []))
        elif not blocks:
            head.append(ln)
        elif tail or _TAIL.match(ln):
            tail.append(ln)
        else:
            blocks[-1][1].append(ln)
    fields = {f.name: f for f in g.fields}
    if not blocks or [b[0] for b in blocks] != [f.name for f in g.fields] or not tail:
        return None
    has_st = "    st = 0" in head
    n = len(blocks)
    table = f"_R_{key}"
    # the plain encoder: where each field starts (and the state there), then kept
    plain = list(head)
    for k, (name, body) in enumerate(blocks):
        plain.append(f"    _e{k} = a.bit_length()" + (f"; _s{k} = st" if has_st else ""))
        plain.append(f"    x = v.{name}")
        plain += body
    plain.append(f"    _e{n} = a.bit_length()")
    plain += tail
    plain += ["    _n = a.bit_length() - 1", "    _b = a ^ (1 << _n)"]
    mutable = [
        f"type(v.{f.name}) is not bytearray"
        for f in g.fields
        if _run_kind(em, f) == "ident" and _is_bytes(em, f)
    ]
    starts = ", ".join(f"_e{k} - 1" for k in range(n + 1))
    states = ", ".join(f"_s{k}" for k in range(n)) if has_st else ""
    record = f"{table}[0] = (v, _b, _n, ({starts},), ({states}{',' if n == 1 else ''}))"
    if mutable:  # an octet string given as a bytearray may change in place: not kept
        plain.append(f"    if {' and '.join(mutable)}: {record}")
        plain.append(f"    else: {table}[0] = None")
    else:
        plain.append(f"    {record}")
    plain += keep
    plain.append("    return _b, _n")
    # the run memo
    fast = [
        f"    _r = {table}[0]",
        "    if _r is None:",
        f"        return _ewp_{key}(v)",
        "    _P, _A, _T, _E, _S = _r",
        "    a = 1",
        "    _q = 0",
        "    _D = None",
    ]
    for k, (name, body) in enumerate(blocks):
        f = fields[name]
        enc = []
        if k:  # the unchanged fields before this one: their kept bits in one shift
            enc.append(
                f"if _q < {k}: _w = _E[{k}] - _E[_q]; "
                f"a = (a << _w) | ((_A >> (_T - _E[{k}])) & ((1 << _w) - 1))"
            )
        if has_st:
            enc.append(f"st = _S[{k}]")
        enc.append("_L = a.bit_length()")
        enc += [ln[4:] for ln in body]
        enc += [  # another width: the kept starts after it move (wstarts at the end)
            f"_L = a.bit_length() - _L - _E[{k + 1}] + _E[{k}]",
            f"if _L: _D = {{}} if _D is None else _D; _D[{k + 1}] = _L",
            f"_q = {k + 1}",
        ]
        if _run_kind(em, f) == "ident":
            fast += [
                f"    if v.{name} is not _P.{name}:",
                f"        x = v.{name}",
                f"        if x is None or _P.{name} is None: return _ewp_{key}(v)",
            ]
            fast += ["        " + ln for ln in enc]
        else:  # a mutable value: encoded whenever present (its own caches apply)
            fast += [
                f"    x = v.{name}",
                "    if x is None:",
                f"        if _P.{name} is not None: return _ewp_{key}(v)",
                "    else:",
                f"        if _P.{name} is None: return _ewp_{key}(v)",
            ]
            fast += ["        " + ln for ln in enc]
    fast += [
        "    _w = _T - _E[_q]",
        "    a = (a << _w) | (_A & ((1 << _w) - 1))",
        "    _n = a.bit_length() - 1",
        "    _b = a ^ (1 << _n)",
        "    if _D is not None: _E = wstarts(_E, _D)",
        f"    {table}[0] = (v, _b, _n, _E, _S)",
    ]
    if mutable:
        fast[-1] = f"    {table}[0] = (v, _b, _n, _E, _S) if {' and '.join(mutable)} else None"
    fast += keep
    fast.append("    return _b, _n")
    em._ew_tables.append(f"{table}: list[Any] = [None]  # (value, bits, width, starts, states)")
    return fast, plain


def _is_bytes(em: Emitter, f: Field) -> bool:
    t: Any = f.simple if f.kind == "attr" else f.decls[0].simple
    return t is not None and em.value_codec(t).kind == "bytes"


def _run_kind(em: Emitter, f: Field) -> str:
    """ "ident": the same object has the same bits (an immutable value); "always": the
    field is encoded whenever present (a repeated field, a group, a mutable complex
    value)."""
    if f.repeated or f.kind not in ("elem", "attr"):
        return "always"
    if f.kind == "attr":
        return "ident"
    if len(f.decls) != 1:
        return "always"
    d = f.decls[0]
    if d.simple is not None:
        return "ident"
    return "ident" if em._immutable(em.cls(d.complex)) else "always"  # type: ignore[arg-type]


# the loop responses: most of their fields are the previous response's objects (a
# MeterInfo is not: its reading and time are new numbers, its other fields mostly absent)
RUN_TYPES = MEMO_TYPES - {"MeterInfo"}


def _memo_keep(em: Emitter, g: TypeGrammar, f: Field) -> str | None:
    """The condition under which field ``f``'s value ``x`` and its bits may be kept (its
    identity then fixes its bits), or None: the field is always encoded."""
    if f.repeated or f.kind not in ("elem", "attr"):
        return None
    # an integer, a boolean or an enumeration is written faster than looked up
    simple = [f.simple] if f.kind == "attr" else [d.simple for d in f.decls]
    if all(t is not None for t in simple):
        kinds = {em.value_codec(t).kind for t in simple}  # type: ignore[arg-type]
        return "type(x) is not bytearray" if kinds <= {"str", "bytes"} else None
    return None  # a complex value: its type's identity cache finds it


def _ew_memo(em: Emitter, g: TypeGrammar, lines: list[str]) -> list[str]:
    """The window encoder's field blocks with the per-field memo ``_M_X``: a field whose
    value is the object written there last time, after the same state (the optionals
    before it), appends the bits it gave then in one shift; otherwise the field is
    encoded and, when its value is immutable, kept with its bits (one tuple per field,
    replaced whole: another thread sees the old or the new one)."""
    fields = {f.name: f for f in g.fields}
    has_st = any(ln.strip() == "st = 0" for ln in lines)
    out: list[str] = []
    slot = 0
    i = 0
    table = f"_M_{g.key}"
    while i < len(lines):
        ln = lines[i]
        m = re.match(r"^    x = v\.(\w+)$", ln)
        if m is None or i + 1 >= len(lines) or lines[i + 1] != "    if x is None:":
            out.append(ln)
            i += 1
            continue
        j = i + 1
        while j < len(lines) and (
            lines[j].startswith("     ") or lines[j] in ("    if x is None:", "    else:")
        ):
            j += 1
        f = fields.get(m.group(1))
        keep = None if f is None else _memo_keep(em, g, f)
        if keep is None:
            out += lines[i:j]
            i = j
            continue
        body = ["    " + b for b in lines[i + 1 : j]]
        if has_st:
            out += [
                ln,
                f"    _t = {table}[{slot}]",
                "    if _t[0] is x and _t[1] == st:",
                "        a = (a << _t[3]) | _t[2]; st = _t[4]",
                "    else:",
                "        _s = st; _l = a.bit_length()",
                *body,
                f"        if {keep}:",
                "            _n = a.bit_length() - _l",
                f"            {table}[{slot}] = (x, _s, a & ((1 << _n) - 1), _n, st)",
            ]
        else:
            out += [
                ln,
                f"    _t = {table}[{slot}]",
                "    if _t[0] is x: a = (a << _t[2]) | _t[1]",
                "    else:",
                "        _l = a.bit_length()",
                *body,
                f"        if {keep}:",
                "            _n = a.bit_length() - _l",
                f"            {table}[{slot}] = (x, a & ((1 << _n) - 1), _n)",
            ]
        slot += 1
        i = j
    if slot:
        empty = "(_NOMEMO, -1, 0, 0, 0)" if has_st else "(_NOMEMO, 0, 0)"
        em._ew_tables.append(f"{table}: list[tuple[Any, ...]] = [{empty}] * {slot}")
        if "_NOMEMO = object()  # no value is this one" not in em._ew_tables:
            em._ew_tables.insert(0, "_NOMEMO = object()  # no value is this one")
    return out


def _ew_lines(
    em: Emitter, key: str, body: list[str], ok: set[str], inline: Any
) -> list[str] | None:
    out = ["    a = 1", "    st = 0"]
    for ln in body:
        if ln.strip().startswith("_p = "):
            continue
        m = _CHILD.match(ln)
        if m:
            ind, c, x = m.groups()
            if c not in ok:
                out.append(f"{ind}raise EncodeWindowMiss")
                continue
            if em._has_enc_cache(c):
                out += [
                    f"{ind}_c = _EC_{c}.get(id({x}))",
                    f"{ind}if _c is not None and _c[0] is {x}: a = (a << _c[2]) | _c[1]",
                    f"{ind}else:",
                    f"{ind}    _b, _n = _ew_{c}({x}); a = (a << _n) | _b",
                ]
            else:
                out.append(f"{ind}_b, _n = _ew_{c}({x}); a = (a << _n) | _b")
            continue
        m = _SUBST.match(ln)
        if m:
            ind, tname, x = m.groups()
            out.append(f"{ind}_b, _n = _SEW_{tname}[m]({x}); a = (a << _n) | _b")
            g = em._grammar(key)
            assert g is not None
            fname = tname[len(key) + 1 :]
            f = next(f for f in g.fields if f.name == fname)
            fns = [
                f"_ew_{em.cls(d.complex)}"  # type: ignore[arg-type]
                if em.cls(d.complex) in ok  # type: ignore[arg-type]
                else "ewmiss"
                for d in f.decls
            ]
            table = f"_SEW_{tname} = ({', '.join(fns)},)"
            if table not in em._ew_tables:
                em._ew_tables.append(table)
            continue
        line = inline(ln).replace("w.acc", "a")
        for old, new in _HELPERS.items():
            line = line.replace(old, new)
        line = _CHECK.sub("raise EncodeWindowMiss", line)
        line = _RAISE.sub("raise EncodeWindowMiss", line)
        if _W.search(line):
            return None
        out.append(line)
    out = _fold_shifts(out)
    assigns = re.compile(r"^\s*st = \d+$")
    if not any(re.search(r"\bst\b", ln) for ln in out if not assigns.match(ln)):
        out = [ln for ln in out if not assigns.match(ln)]  # every state known: no st
    return out


_SHIFT = re.compile(r"^(\s*)a <<= (\d+)$")
_HIT = re.compile(r"^(\s*if _c is not None and _c\[0\] is \w+: a = \(a << )_c\[2\](\) \| _c\[1\])$")
_CALL = re.compile(r"^(.*; a = \(a << )_n(\) \| _b)$")


def _fold_shifts(lines: list[str]) -> list[str]:
    """An event code of zeros before a child's bits (``a <<= k``) joins the child's
    write: one shift of the growing integer instead of two."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _SHIFT.match(lines[i])
        if m:
            ind, k = m.groups()
            j = i + 1
            while j < len(lines) and (
                lines[j] == f"{ind}st = {lines[j].split('= ')[-1]}"
                or (
                    lines[j].startswith(f"{ind}if type(")
                    and lines[j].endswith("raise EncodeWindowMiss")
                )
            ):
                j += 1
            block = lines[j : j + 4]
            if (
                len(block) == 4
                and block[0].startswith(f"{ind}_c = _EC_")
                and _HIT.match(block[1])
                and block[2] == f"{ind}else:"
                and _CALL.match(block[3])
            ):
                out += lines[i + 1 : j]
                out.append(block[0])
                out.append(_HIT.sub(rf"\g<1>(_c[2] + {k})\g<2>", block[1]))
                out.append(block[2])
                out.append(_CALL.sub(rf"\g<1>(_n + {k})\g<2>", block[3]))
                i = j + 4
                continue
            if j < len(lines) and _CALL.match(lines[j]) and lines[j].startswith(f"{ind}_b, _n = "):
                out += lines[i + 1 : j]
                out.append(_CALL.sub(rf"\g<1>(_n + {k})\g<2>", lines[j]))
                i = j + 1
                continue
        out.append(lines[i])
        i += 1
    return out


def _emit_ew_entry(em: Emitter, key: str, ok: set[str]) -> None:
    """The entry's identity-cache encoder tries the window encoder before the generic
    one (its cache-hit return is followed by the try)."""
    head = f"def _e_{key}("
    i = max(i for i, ln in enumerate(em.lines) if ln.startswith(head))
    j = next(j for j in range(i, len(em.lines)) if em.lines[j] == "        return")
    # a message whose body has no window encoder (a certificate installation, a session
    # set-up) goes to the generic encoder at once, without a miss
    guard = "    if True:"
    g = em._grammar(key)
    assert g is not None
    for f in g.fields:
        if f.kind != "elem" or len(f.decls) != 1 or f.decls[0].complex is None:
            continue
        cg = em._grammar(em.cls(f.decls[0].complex))
        group = [sf for sf in (cg.fields if cg else []) if len(sf.decls) > SMALL_GROUP]
        if cg is not None and len(group) == 1 and len(cg.fields) == 1:
            (sf,) = group
            members = sorted({em.cls(d.complex) for d in sf.decls if d.complex is not None} & ok)
            table = f"_EWB_{key}"
            em._ew_tables.append(f"{table} = frozenset({{{', '.join(members)}}})")
            guard = (
                f"    if type(_x := getattr(v, {f.name!r}, None)) is {cg.key} and "
                f"type(_x.{sf.name}) in {table}:"
            )
    em.lines[j + 1 : j + 1] = [
        guard,
        "        try:",
        f"            _b, _n = _ew_{key}(v)",
        "        except Exception:",
        "            pass  # the generic encoder below gives the value's encoding or error",
        "        else:",
        "            w.acc = (w.acc << _n) | _b",
        "            return",
    ]


def _emit_ew_fused(em: Emitter, g: TypeGrammar, slow: bool) -> None:
    """The fused encoder of a fixed-layout type as (bits, width), same cache."""
    plan = em._fused_plan(g)
    assert plan is not None
    head = f"def _e_{g.key}("
    i = max(i for i, ln in enumerate(em.lines) if ln.startswith(head))
    j = i + 1
    while j < len(em.lines) and (not em.lines[j] or em.lines[j].startswith(" ")):
        j += 1
    out = ["", "", f"def _ew_{g.key}(v: Any) -> tuple[int, int]:"]
    src = "\n".join(em.lines[i + 1 : j]).split("\n")
    k = 0
    while k < len(src):
        ln = src[k]
        s = ln.strip()
        if s.startswith('"""'):
            k += 1
            continue
        if s == "w.acc = (w.acc << _c[2]) | _c[1]":
            out.append(ln.replace(s, "return _c[1], _c[2]"))
            k += 2  # and its return
            continue
        if s == "w.acc = (w.acc << _n) | _b":
            out.append(ln.replace(s, "return _b, _n"))
            k += 2
            continue
        if s.startswith("w.bits(") and k + 3 < len(src) and src[k + 1].strip() == "w.uint(_u)":
            # a value of three or more 7-bit groups: head, the groups, the closing bits
            m = re.match(r"w\.bits\((.+), (\d+)\)$", s)
            e = re.match(r"w\.bits\((.+), (\d+)\)$", src[k + 2].strip())
            assert m and e
            ind = ln[: len(ln) - len(ln.lstrip())]
            out.append(
                f"{ind}a = wuint((1 << {m.group(2)}) | {m.group(1)}, _u); "
                f"a = (a << {e.group(2)}) | {e.group(1)}"
            )
            out.append(f"{ind}_n = a.bit_length() - 1")
            out.append(f"{ind}return a ^ (1 << _n), _n")
            k += 4
            continue
        if s == f"_eg_{g.key}(w, v)":
            out.append(
                ln.replace(s, f"return _ewg_{g.key}(v)" if slow else "raise EncodeWindowMiss")
            )
            k += 1
            continue
        if _W.search(ln):
            raise ValueError(f"fused encoder line not made a window encoder: {ln}")
        out.append(ln)
        k += 1
    em.lines += out
