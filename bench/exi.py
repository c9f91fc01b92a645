"""Microseconds per EXI encode and decode (median of repeated runs) for the messages the
station handles most, or that are the largest.  Prints figures; asserts nothing.

    .venv/bin/python bench/exi.py [--repeat 7] [--number 2000]

Messages are built from the generated classes with every optional field filled
(``--minimal`` leaves them out); the CertificateInstallationRes carries a full chain
(three 800-octet certificates for each chain and an encrypted private key).  The ISO
15118-20 charge loop (DC_ChargeLoopReq in the dynamic and the scheduled control mode,
DC_ChargeLoopRes, AC_ChargeLoopReq) stands next to the -2 CurrentDemandReq it replaces.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import timeit
from typing import Any

from secc import codec

iso2 = codec.schema_module("iso2")
iso20_dc = codec.schema_module("iso20-dc")
iso20_ac = codec.schema_module("iso20-ac")


def fill(
    cls: type,
    *,
    minimal: bool = False,
    prefer: dict[str, str] | None = None,
    mod: Any = iso2,
) -> Any:
    """An instance of ``cls`` with every field set (optional ones unless ``minimal``)."""
    prefer = prefer or {}
    kwargs: dict[str, Any] = {}
    taken_choice = False
    for f in mod.FIELDS[cls]:
        if f.optional and minimal:
            continue
        value = _value(f, minimal, prefer, mod)
        if value is None:
            continue
        if f.optional and f.kind == "elem" and _is_choice_alternative(cls, f):
            if taken_choice:
                continue
            taken_choice = True
        kwargs[f.name] = (value,) * (2 if f.max == -1 or f.max > 1 else 1) if f.repeated else value
    return cls(**kwargs)


def _is_choice_alternative(cls: type, f: Any) -> bool:
    return cls.__name__ == "Parameter"


def _value(f: Any, minimal: bool, prefer: dict[str, str], mod: Any) -> Any:
    t = f.tinfo
    if f.kind == "elem":
        members = t[1]
        pick = next((m for m in members if m[1] == prefer.get(f.local)), None)
        if pick is None:
            # not an abstract head (BodyBase, the -20 CLReqControlMode named like the field)
            group = len(members) > 1
            concrete = [
                m
                for m in members
                if m[2][0] != "class"
                or (m[2][1].__name__ != "BodyBase" and not (group and m[1] == f.local))
            ]
            pick = concrete[0]
        t = pick[2]
        if t[0] == "class":
            if t[1].__name__ in {"Signature", "SignedInfo"}:
                return None
            return fill(t[1], minimal=minimal, prefer=prefer, mod=mod)
    kind = t[0]
    if kind == "int":
        lo, hi = t[1], t[2]
        if lo is not None and hi is not None:
            return 400 if lo <= 400 <= hi else (lo + hi) // 2
        return 1234 if lo is None or lo <= 1234 else lo
    if kind == "bool":
        return True
    if kind == "str":
        n = min(t[2] or 12, 12)
        return ("DE*ABC*E" + "1" * 40)[: max(n, t[1] or 0)]
    if kind == "bytes":
        n = min(t[2] or 8, 8) if t[2] is None or t[2] < 100 else 8
        return bytes(range(n))
    if kind == "enum":
        return next(iter(t[1]))
    raise ValueError(t)


def message(body: Any) -> Any:
    return iso2.V2G_Message(
        header=iso2.MessageHeader(session_id=bytes.fromhex("0102030405060708")),
        body=iso2.Body(body_element=body),
    )


def cert_installation_res() -> Any:
    cert = bytes(range(256)) * 3 + bytes(32)  # 800 octets
    chain = iso2.CertificateChain(
        id="id1", certificate=cert, sub_certificates=iso2.SubCertificates(certificate=(cert, cert))
    )
    return iso2.CertificateInstallationRes(
        response_code=iso2.ResponseCode.OK,
        sa_provisioning_certificate_chain=iso2.CertificateChain(
            certificate=cert, sub_certificates=iso2.SubCertificates(certificate=(cert, cert))
        ),
        contract_signature_cert_chain=chain,
        contract_signature_encrypted_private_key=iso2.ContractSignatureEncryptedPrivateKey(
            id="id2", value=bytes(48)
        ),
        dh_public_key=iso2.DiffieHellmanPublickey(id="id3", value=b"\x04" + bytes(64)),
        emaid=iso2.EMAID(id="id4", value="DE1ABCD2EF345G"),
    )


def cases(minimal: bool) -> list[tuple[str, Any, str]]:
    dc = {"EVChargeParameter": "DC_EVChargeParameter"}
    dyn = {"CLReqControlMode": "Dynamic_DC_CLReqControlMode"}
    sch = {"CLReqControlMode": "Scheduled_DC_CLReqControlMode"}
    dyn_res = {"CLResControlMode": "Dynamic_DC_CLResControlMode"}
    ac_dyn = {"CLReqControlMode": "Dynamic_AC_CLReqControlMode"}
    dcm, acm = iso20_dc, iso20_ac
    iso2_cases = [
        ("SessionSetupReq", message(fill(iso2.SessionSetupReq, minimal=minimal))),
        (
            "ChargeParameterDiscoveryReq (DC)",
            message(fill(iso2.ChargeParameterDiscoveryReq, minimal=minimal, prefer=dc)),
        ),
        ("CurrentDemandReq", message(fill(iso2.CurrentDemandReq, minimal=minimal))),
        ("ChargingStatusRes", message(fill(iso2.ChargingStatusRes, minimal=minimal))),
        ("CertificateInstallationRes (full chain)", message(cert_installation_res())),
    ]
    iso20_cases = [
        (
            "-20 DC_ChargeLoopReq (dynamic)",
            fill(dcm.DC_ChargeLoopReq, minimal=minimal, prefer=dyn, mod=dcm),
            "iso20-dc",
        ),
        (
            "-20 DC_ChargeLoopReq (scheduled)",
            fill(dcm.DC_ChargeLoopReq, minimal=minimal, prefer=sch, mod=dcm),
            "iso20-dc",
        ),
        (
            "-20 DC_ChargeLoopRes (dynamic)",
            fill(dcm.DC_ChargeLoopRes, minimal=minimal, prefer=dyn_res, mod=dcm),
            "iso20-dc",
        ),
        (
            "-20 AC_ChargeLoopReq (dynamic)",
            fill(acm.AC_ChargeLoopReq, minimal=minimal, prefer=ac_dyn, mod=acm),
            "iso20-ac",
        ),
    ]
    return [(name, msg, "iso2") for name, msg in iso2_cases] + iso20_cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=2000)
    parser.add_argument("--minimal", action="store_true")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.processor()}")
    print(f"{'message':42} {'bytes':>6} {'encode us':>10} {'decode us':>10}")
    for name, msg, schema in cases(args.minimal):
        data = codec.encode(msg)
        assert codec.decode(data, schema) == msg
        number = max(1, args.number // (1 + len(data) // 200))
        enc = timeit.repeat(lambda m=msg: codec.encode(m), number=number, repeat=args.repeat)
        dec = timeit.repeat(
            lambda d=data, s=schema: codec.decode(d, s), number=number, repeat=args.repeat
        )
        enc_us = statistics.median(enc) / number * 1e6
        dec_us = statistics.median(dec) / number * 1e6
        print(f"{name:42} {len(data):6d} {enc_us:10.1f} {dec_us:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
