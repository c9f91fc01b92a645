"""The relaxed ElementFragment grammar (EXI 1.0 §8.5.3), for fragment elements whose
qname is declared more than once with different types.

In ISO 15118-2 that is ``{MsgBody}eMAID`` (a plain string in PaymentDetailsReq, a string
with an ``Id`` attribute in CertificateInstallationRes / CertificateUpdateRes), the
element a CertificateInstallationRes signature references (EXI-NOTES §9.3).  Only simple
content with attributes is supported here, which is all that qname ever carries.

Start state: AT(A_0..A_a-1) sorted, AT(*), SE(F_0..F_n-1), SE(*), EE, CH[untyped].
Content state: SE(F_0..F_n-1), SE(*), EE, CH[untyped].
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from secc.codec.errors import DecodeError, EncodeError
from secc.codec.exi.bits import BitReader, BitWriter
from secc.codec.exi.meta import FieldInfo, RootInfo


def _widths(n_elems: int, n_attrs: int) -> tuple[int, int, int, int]:
    start_count = n_attrs + 1 + n_elems + 1 + 1 + 1
    content_count = n_elems + 3
    return (
        (start_count - 1).bit_length(),
        (content_count - 1).bit_length(),
        start_count - 2,  # EE in the start state
        start_count - 1,  # CH in the start state
    )


def encode_relaxed(w: BitWriter, value: Any, mod: ModuleType, n_elems: int) -> None:
    attrs: tuple[tuple[str, str], ...] = mod.FRAGMENT_ATTRIBUTES
    start_w, content_w, ee_start, ch_start = _widths(n_elems, len(attrs))
    fields: tuple[FieldInfo, ...] | None = mod.FIELDS.get(type(value))
    if fields is None:
        raise EncodeError(
            f"{type(value).__name__}: not encodable with the relaxed fragment grammar"
        )
    text: str | None = None
    for f in fields:
        v = getattr(value, f.name)
        if f.kind == "attr":
            if v is None:
                continue
            if not isinstance(v, str):
                raise EncodeError(f"attribute {f.local}: only string attributes are supported")
            w.bits(attrs.index((f.ns, f.local)), start_w)
            w.string(v)
        elif f.kind == "value":
            if not isinstance(v, str):
                raise EncodeError(f"{f.local or 'value'}: only string content is supported")
            text = v
        else:
            raise EncodeError("element content in the relaxed fragment grammar is not supported")
    if text:
        w.bits(ch_start, start_w)
        w.string(text)
        w.bits(n_elems + 1, content_w)  # EE in the content state
    else:
        w.bits(ee_start, start_w)


def decode_relaxed(r: BitReader, root: RootInfo, mod: ModuleType, n_elems: int) -> Any:
    attrs: tuple[tuple[str, str], ...] = mod.FRAGMENT_ATTRIBUTES
    start_w, content_w, ee_start, ch_start = _widths(n_elems, len(attrs))
    if root.cls is None:
        raise DecodeError(f"{root.local}: no single class for the relaxed grammar", r.pos)
    fields: tuple[FieldInfo, ...] = mod.FIELDS[root.cls]
    by_qname = {(f.ns, f.local): f.name for f in fields if f.kind == "attr"}
    value_field = next((f.name for f in fields if f.kind == "value"), None)
    kwargs: dict[str, Any] = {}
    while True:
        pos = r.pos
        code = r.bits(start_w)
        if code < len(attrs):
            name = by_qname.get(attrs[code])
            if name is None:
                raise DecodeError(f"attribute {attrs[code][1]} not declared for {root.local}", pos)
            kwargs[name] = r.string()
            continue
        if code == ee_start:
            text = ""
            break
        if code == ch_start:
            text = r.string()
            pos = r.pos
            if r.bits(content_w) != n_elems + 1:
                raise DecodeError("only character content is supported here", pos)
            break
        raise DecodeError(f"event {code} in the relaxed fragment grammar is not supported", pos)
    if value_field is None:
        raise DecodeError(f"{root.local} has no character content", r.pos)
    kwargs[value_field] = text
    for f in fields:
        if f.kind == "attr" and not f.optional and f.name not in kwargs:
            raise DecodeError(f"required attribute {f.local} of {root.local} is missing", r.pos)
    return root.cls(**kwargs)
