"""Source snippets for simple values (build time only): how each EXI datatype of a
simple type is written and read, and the fused fast paths for fixed-width values."""

from __future__ import annotations

from dataclasses import dataclass

from .grammar import width
from .xsd import SimpleType


def inline_bits(var: str, n: int, ind: str) -> list[str]:
    """``var = r.bits(n)`` without the call where the window holds the bits (a method call
    costs several times the shift and mask); ``r.bits`` moves the window or raises."""
    return [
        f"{ind}_q = r.pos + {n}",
        f"{ind}if _q > r.wend: {var} = r.bits({n})",
        f"{ind}else: r.pos = _q; {var} = (r.val >> (r.wend - _q)) & {(1 << n) - 1:#x}",
    ]


@dataclass
class ValueCodec:
    kind: str  # nbit | uint | sint | bool | str | bytes | enum
    lo: int | None = None
    hi: int | None = None
    nbits: int = 0
    minl: int | None = None
    maxl: int | None = None
    enum_cls: str = ""
    count: int = 0
    encoding: str = ""  # hex | b64 for bytes

    @property
    def pytype(self) -> str:
        return {
            "nbit": "int",
            "uint": "int",
            "sint": "int",
            "bool": "bool",
            "str": "str",
            "bytes": "bytes",
        }.get(self.kind, self.enum_cls)


class ValueEmitter:
    """Mixin for :class:`secc.codec.codegen.emit.Emitter`: value encode/decode snippets."""

    enum_names: dict[int, str]

    def value_codec(self, st: SimpleType) -> ValueCodec:
        if st.kind == "enum":
            name = self.enum_names[id(st)]
            return ValueCodec("enum", nbits=width(len(st.enum)), enum_cls=name, count=len(st.enum))
        if st.kind == "bool":
            return ValueCodec("bool")
        if st.kind == "string":
            return ValueCodec("str", minl=st.min_length, maxl=st.max_length)
        if st.kind in ("hex", "b64"):
            return ValueCodec("bytes", minl=st.min_length, maxl=st.max_length, encoding=st.kind)
        assert st.kind == "int", st
        lo, hi = st.min, st.max
        if lo is not None and hi is not None and hi - lo + 1 <= 4096:
            return ValueCodec("nbit", lo=lo, hi=hi, nbits=width(hi - lo + 1))
        if lo is not None and lo >= 0:
            return ValueCodec("uint", lo=lo, hi=hi)
        return ValueCodec("sint", lo=lo, hi=hi)

    # -- value snippets -------------------------------------------------------------
    def enc_value(self, vc: ValueCodec, x: str, label: str, ind: str) -> list[str]:
        out: list[str] = []
        if vc.kind == "nbit":
            # outside the facets: a lenient writer takes what the n bits hold
            rhi = vc.lo + (1 << vc.nbits) - 1  # type: ignore[operator]
            out.append(
                f"{ind}if type({x}) is not int or not {vc.lo} <= {x} <= {vc.hi}: "
                f"encode_range(w, {label!r}, {x}, {vc.lo}, {vc.hi}, {vc.lo}, {rhi})"
            )
            out.append(
                f"{ind}w.bits({x} - {vc.lo}, {vc.nbits})"
                if vc.lo
                else f"{ind}w.bits({x}, {vc.nbits})"
            )
        elif vc.kind in ("uint", "sint"):
            conds = [f"type({x}) is not int"]
            if vc.lo is not None:
                conds.append(f"{x} < {vc.lo}")
            if vc.hi is not None:
                conds.append(f"{x} > {vc.hi}")
            rlo = 0 if vc.kind == "uint" else None  # a varint holds any integer above
            out.append(
                f"{ind}if {' or '.join(conds)}: "
                f"encode_range(w, {label!r}, {x}, {vc.lo}, {vc.hi}, {rlo}, None)"
            )
            # one octet (a sign bit and one octet) written inline, the writer otherwise
            if vc.kind == "uint":
                out.append(f"{ind}if {x} < 0x80: w.acc = (w.acc << 8) | {x}")
                out.append(f"{ind}else: w.uint({x})")
            else:
                out.append(
                    f"{ind}if -0x81 < {x} < 0x80: "
                    f"w.acc = (w.acc << 9) | ({x} if {x} >= 0 else 0x100 | (-{x} - 1))"
                )
                out.append(f"{ind}else: w.integer({x})")
        elif vc.kind == "bool":
            out.append(
                f"{ind}if type({x}) is not bool: "
                f"raise bad_value({label!r}, {x}, 'is not a bool', w)"
            )
            out.append(f"{ind}w.bits({x}, 1)")
        elif vc.kind in ("str", "bytes"):
            t = "str" if vc.kind == "str" else "(bytes, bytearray)"
            conds = [f"not isinstance({x}, {t})"]
            if vc.maxl is not None:
                conds.append(f"len({x}) > {vc.maxl}")
            out.append(
                f"{ind}if {' or '.join(conds)}: "
                f"encode_length(w, {label!r}, {x}, {vc.maxl}, {vc.kind!r})"
            )
            out.append(f"{ind}w.{'string' if vc.kind == 'str' else 'binary'}({x})")
        elif vc.kind == "enum":
            # an unhashable value (a list, a bytearray) is no value of it either
            out.append(f"{ind}try: _i = _I_{vc.enum_cls}.get({x})")
            out.append(f"{ind}except TypeError: _i = None")
            out.append(
                f"{ind}if _i is None: raise bad_value({label!r}, {x}, "
                f"'is not a value of {vc.enum_cls}', w)"
            )
            if vc.nbits:
                out.append(f"{ind}w.bits(_i, {vc.nbits})")
        return out

    @staticmethod
    def range_check(vc: ValueCodec, label: str) -> str:
        """The statement for a decoded integer outside its facets: reported or refused."""
        return f"range_violation(r, {label!r}, _x, {vc.lo}, {vc.hi})"

    def dec_value(self, vc: ValueCodec, label: str) -> tuple[list[str], str]:
        """Lines that leave the value in ``_x``."""
        if vc.kind == "nbit":
            lines = [f"_x = r.bits({vc.nbits}) + {vc.lo}" if vc.lo else f"_x = r.bits({vc.nbits})"]
            if (1 << vc.nbits) != vc.hi - vc.lo + 1:  # type: ignore[operator]
                lines.append(f"if _x > {vc.hi}: {self.range_check(vc, label)}")
            return lines, "_x"
        # the decoder checks the encoder's facets: a value outside them is reported (a
        # lenient reader) or refused (strict), and re-encodes with a lenient writer
        if vc.kind in ("uint", "sint"):
            lines = ["_x = r.uint()" if vc.kind == "uint" else "_x = r.integer()"]
            conds = []
            if vc.lo is not None and (vc.kind == "sint" or vc.lo > 0):
                conds.append(f"_x < {vc.lo}")
            if vc.hi is not None:
                conds.append(f"_x > {vc.hi}")
            if conds:
                lines.append(f"if {' or '.join(conds)}: {self.range_check(vc, label)}")
            return lines, "_x"
        if vc.kind == "bool":
            return ["_x = r.bit() == 1"], "_x"
        if vc.kind in ("str", "bytes"):
            # any length the input holds (the reader checks that before the characters);
            # the length facets are checked on the value
            lines = [f"_x = r.{'string' if vc.kind == 'str' else 'binary'}()"]
            conds = []
            if vc.minl:
                conds.append(f"len(_x) < {vc.minl}")
            if vc.maxl is not None:
                conds.append(f"len(_x) > {vc.maxl}")
            if conds:
                lines.append(
                    f"if {' or '.join(conds)}: "
                    f"length_violation(r, {label!r}, _x, {vc.minl}, {vc.maxl})"
                )
            return lines, "_x"
        assert vc.kind == "enum"
        lines = [f"_x = r.bits({vc.nbits})" if vc.nbits else "_x = 0"]
        if (1 << vc.nbits) != vc.count:
            lines.append(
                f"if _x >= {vc.count}: raise bad_value({label!r}, _x, 'is not an index of "
                f"{vc.enum_cls}', r)"
            )
        lines.append(f"_x = _V_{vc.enum_cls}[_x]")
        return lines, "_x"

    # -- simple elements ------------------------------------------------------------
    SIMPLE_EE2 = width(6)  # start state of a simple-typed element: EE, xsi:type, xsi:nil,
    # AT(*), SE(*), CH[untyped] at the second level

    def enc_simple_elem(
        self, st: SimpleType, x: str, label: str, ind: str, prefix: tuple[int, int] | None = None
    ) -> list[str]:
        """SE's code (``prefix``, when constant), CH, the value, EE."""
        vc = self.value_codec(st)
        n = {"nbit": vc.nbits, "enum": vc.nbits, "bool": 1}.get(vc.kind)
        if n is not None:
            # fixed width: one write for [code] CH(0) value EE(0)
            checks = (
                self.enc_value(vc, x, label, ind)[:-1]
                if vc.nbits or vc.kind == "bool"
                else self.enc_value(vc, x, label, ind)
            )
            expr = {"nbit": f"({x} - {vc.lo})" if vc.lo else x, "enum": "_i", "bool": x}[vc.kind]
            if vc.kind == "enum" and not vc.nbits:
                expr = "0"
            if vc.kind == "nbit" and not vc.nbits:
                expr = "0"
            code, wbits = prefix if prefix else (0, 0)
            total = wbits + n + 2
            head = f"{code << (n + 2)} | " if code else ""
            return [*checks, f"{ind}w.bits({head}({expr} << 1), {total})"]
        body = []
        code, wbits = prefix if prefix else (0, 0)
        if vc.kind in ("str", "bytes") and wbits:
            body.append(f"{ind}w.bits({code}, {wbits})")
            code, wbits = 0, 0
        # [code] CH(0) in one write, then the value, then EE(0)
        inner = [
            f"{ind}w.bits({code << 1}, {wbits + 1})",
            *self.enc_value(vc, x, label, ind),
            f"{ind}w.bits(0, 1)",
        ]
        if vc.kind in ("str", "bytes"):
            marker = "EmptyStr" if vc.kind == "str" else "EmptyBytes"
            return [
                *body,
                f"{ind}if type({x}) is {marker}:",
                f"{ind}    w.bits(1, 1); w.bits(0, {self.SIMPLE_EE2})",
                f"{ind}else:",
                *[ln.replace(ind, ind + "    ", 1) for ln in inner],
            ]
        return body + inner

    def dec_simple_elem(self, st: SimpleType, label: str, ind: str) -> list[str]:
        vc = self.value_codec(st)
        kind = vc.kind if vc.kind in ("str", "bytes") else vc.pytype
        lines, _ = self.dec_value(vc, label)
        slow = [
            f"{ind}if r.bit():",
            f"{ind}    _x = empty_value(r, {self.SIMPLE_EE2}, {kind!r})",
            f"{ind}else:",
            *[f"{ind}    {ln}" for ln in lines],
            f"{ind}    expect_ee(r)",
        ]
        if vc.kind in ("uint", "sint"):
            return self._dec_int_elem(vc, label, ind, slow)
        n = {"nbit": vc.nbits, "enum": vc.nbits, "bool": 1}.get(vc.kind)
        if n is None:
            return slow
        # fixed width: CH (1 bit 0), the value, EE (1 bit 0) in one read
        total = n + 2
        fast = [
            *inline_bits("_x", total, ind),
            f"{ind}if _x >> {n + 1}:",
            f"{ind}    r.pos -= {total}",
        ]
        fast += ["    " + ln for ln in slow]
        fast.append(f"{ind}else:")
        fast.append(f"{ind}    if _x & 1: expect_ee_failed(r)")
        mask = (1 << n) - 1
        if vc.kind == "bool":
            fast.append(f"{ind}    _x = (_x >> 1) == 1")
        elif vc.kind == "nbit":
            fast.append(
                f"{ind}    _x = ((_x >> 1) & {mask}) + {vc.lo}"
                if vc.lo
                else f"{ind}    _x = (_x >> 1) & {mask}"
            )
            if (1 << vc.nbits) != vc.hi - vc.lo + 1:  # type: ignore[operator]
                fast.append(f"{ind}    if _x > {vc.hi}: {self.range_check(vc, label)}")
        else:
            fast.append(f"{ind}    _x = (_x >> 1) & {mask}")
            if (1 << vc.nbits) != vc.count:
                fast.append(
                    f"{ind}    if _x >= {vc.count}: raise bad_value({label!r}, _x, "
                    f"'is not an index of {vc.enum_cls}', r)"
                )
            fast.append(f"{ind}    _x = _V_{vc.enum_cls}[_x]")
        return fast

    def _dec_int_elem(self, vc: ValueCodec, label: str, ind: str, slow: list[str]) -> list[str]:
        """An integer simple element whose value has one or two 7-bit groups (most do:
        SoC, times, counters below 16384) in one read of CH, [sign,] two octets and the
        element's EE; anything else (a longer value, an escape, a wrong EE, the end of
        the window) runs the general lines from the same position."""
        lines, _ = self.dec_value(vc, label)
        s = 1 if vc.kind == "sint" else 0  # the sign bit

        def check(lo: int, hi: int) -> list[str]:
            """The facets, where values of lo..hi can break them; a violation's offset
            is the end of the value, before the EE bit, as in the general lines."""
            if (vc.lo is None or vc.lo <= lo) and (vc.hi is None or vc.hi >= hi):
                return []
            return [
                ln.replace("range_violation(", "r.pos -= 1; range_violation(") + "; r.pos += 1"
                for ln in lines[1:]
            ]

        n = 18 + s  # CH, [sign], two octets, the bit after the first octet
        top = 1 << (n - 1)  # CH
        one = top | (1 << 16) | (1 << 8)  # CH, the first octet's MSB, EE after it
        two = one | 1  # CH, both MSBs, EE after the second
        sign = " ^ -((_x >> 17) & 1)" if s else ""
        return [
            f"{ind}_q = r.pos + {n}",
            f"{ind}_x = (r.val >> (r.wend - _q)) & {(1 << n) - 1:#x} if _q <= r.wend else -1",
            f"{ind}if _x & {one:#x} == 0:",
            f"{ind}    r.pos = _q - 8",
            f"{ind}    _x = ((_x >> 9) & 0x7f){sign}",
            *[f"{ind}    {ln}" for ln in check(-128 * s, 127)],
            f"{ind}elif _x & {two:#x} == 0x10000:",
            f"{ind}    r.pos = _q",
            f"{ind}    _x = (((_x >> 9) & 0x7f) | ((_x & 0xfe) << 6)){sign}",
            *[f"{ind}    {ln}" for ln in check(-16384 * s, 16383)],
            f"{ind}else:",
            *["    " + ln for ln in slow],
        ]
