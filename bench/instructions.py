"""x86 instructions per EXI decode / encode and per station round trip, counted by
``valgrind --tool=callgrind`` (independent of the machine's load).  Prints figures next to
the issue-17 targets and the figures before the work; asserts nothing.

    .venv/bin/python bench/instructions.py [--number 200] [--only NAME ...]

Each figure runs a child process twice under callgrind, once doing the work ``--number``
times and once zero times after the same set-up (and one warm-up call); the difference
divided by ``--number`` is the cost of one call.  After the set-up the child freezes
its objects (``gc.freeze()``), as ``secc run`` does after start-up.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# name -> (target, figure before issue 17: this script at commit 5710fd6, same machine)
TARGETS: dict[str, tuple[int | None, int | None]] = {
    "decode CurrentDemandReq": (116_000, 331_102),
    "decode CurrentDemandReq, cold caches": (None, 331_102),
    # values changing every message (the "before" of these four: commit 662cbb8)
    "decode CurrentDemandReq, values changing": (80_000, 168_720),
    "decode DC_ChargeLoopReq, values changing": (None, 293_217),
    "encode CurrentDemandRes, new values": (50_000, 152_990),
    "encode DC_ChargeLoopRes, new values": (50_000, 147_810),
    "encode CurrentDemandReq": (107_000, 195_913),
    "decode CurrentDemandRes": (None, 409_492),
    "encode CurrentDemandRes": (None, 254_565),
    "decode SessionSetupReq": (None, 71_294),
    "decode CertificateInstallationRes": (None, 1_175_917),
    "encode CertificateInstallationRes": (None, 435_159),
    "decode+core+encode": (200_000, 586_923),
    "-20 DC_ChargeLoop decode+core+encode": (200_000, None),
    "decode+core+encode, values changing": (200_000, None),
    "-20 DC_ChargeLoop, values changing": (200_000, None),
    "core, values changing": (60_000, None),
    "-20 DC_ChargeLoop core, values changing": (None, None),
    "decode 64 kB": (None, 1_006_674_592),
    "decode 4 kB dense (largest inline)": (None, None),
    "decode 60 kB dense (in a thread)": (None, None),
}


# the station process per CurrentDemand round trip (V2GTP, asyncio, driver, codec, core,
# HAL, TLS records where set), the EV in another process: name -> (TLS, uvloop)
STATION = {
    "station per round trip, TCP": (False, False),
    "station per round trip, TLS": (True, False),
    "station per round trip, TLS, uvloop": (True, True),  # needs uvloop importable
}


def _workloads() -> dict[str, Callable[[], Callable[[], Any]]]:
    """name -> set-up returning the call to count (imports happen in the child only)."""
    sys.path.insert(0, str(HERE))
    from secc import codec

    def cdreq() -> Any:
        import exi  # bench/exi.py

        return exi.message(exi.fill(exi.iso2.CurrentDemandReq))

    def cdreq_distinct() -> Any:
        """All optionals, every PhysicalValue different (no hit inside the message)."""
        import dataclasses

        import exi

        body = exi.fill(exi.iso2.CurrentDemandReq)
        pvs = {
            f.name: dataclasses.replace(getattr(body, f.name), value=401 + i)
            for i, f in enumerate(dataclasses.fields(body))
            if type(getattr(body, f.name)) is exi.iso2.PhysicalValue
        }
        return exi.message(dataclasses.replace(body, **pvs))

    def changing(build: Callable[[int], Any], schema: str) -> Callable[[], Callable[[], Any]]:
        """Decoding 1,000 prepared messages in turn whose values all differ (every
        PhysicalValue / RationalNumber, the SoC, times): no value cache finds one."""

        def setup() -> Callable[[], Any]:
            streams = [codec.encode(build(i)) for i in range(1000)]
            turn = iter(range(10**9))
            return lambda: codec.decode(streams[next(turn) % 1000], schema)

        return setup

    def new_values(build: Callable[[int], Any]) -> Callable[[], Callable[[], Any]]:
        """Encoding 1,000 prepared responses in turn, each a new object whose measured
        values differ (present voltage and current, the meter reading); what the core
        keeps between responses (status, limits, EVSEID) is the same object."""

        def setup() -> Callable[[], Any]:
            msgs = [build(i) for i in range(1000)]
            turn = iter(range(10**9))
            return lambda: codec.encode(msgs[next(turn) % 1000])

        return setup

    def vary(value: Any, i: int, salt: int = 0) -> Any:
        """``value`` with every PhysicalValue / RationalNumber value, SoC and remaining
        time in it set from ``i`` (each field a different number)."""
        import dataclasses

        if not dataclasses.is_dataclass(value):
            return value
        name = type(value).__name__
        if name in ("PhysicalValue", "RationalNumber"):
            return dataclasses.replace(value, value=100 + (i * 13 + salt * 101) % 20000)
        changes = {}
        for n, f in enumerate(dataclasses.fields(value)):
            x = getattr(value, f.name)
            if dataclasses.is_dataclass(x):
                changes[f.name] = vary(x, i, salt * 16 + n + 1)
            elif type(x) is int and ("soc" in f.name or "remaining" in f.name):
                changes[f.name] = (i + n) % 101
            elif f.name == "time_stamp":
                changes[f.name] = 1_700_000_000 + i
        return dataclasses.replace(value, **changes)

    def cdreq_changing(i: int) -> Any:
        import exi

        return exi.message(vary(exi.fill(exi.iso2.CurrentDemandReq), i))

    def clreq_changing(i: int) -> Any:
        import exi

        sch = {"CLReqControlMode": "Scheduled_DC_CLReqControlMode"}
        return vary(exi.fill(exi.iso20_dc.DC_ChargeLoopReq, prefer=sch, mod=exi.iso20_dc), i)

    cdres_base: list[Any] = []

    def cdres_new(i: int) -> Any:
        import dataclasses

        import exi

        if not cdres_base:
            body = exi.fill(exi.iso2.CurrentDemandRes)
            header = exi.iso2.MessageHeader(session_id=bytes.fromhex("0102030405060708"))
            cdres_base.extend((body, header))
        body, header = cdres_base
        pv = exi.iso2.PhysicalValue
        new = dataclasses.replace(
            body,
            evse_present_voltage=pv(multiplier=-1, unit=exi.iso2.UnitSymbol.V, value=3500 + i),
            evse_present_current=pv(multiplier=-1, unit=exi.iso2.UnitSymbol.A, value=100 + i),
            meter_info=dataclasses.replace(body.meter_info, meter_reading=10_000 + i),
        )
        return exi.iso2.V2G_Message(header=header, body=exi.iso2.Body(body_element=new))

    clres_base: list[Any] = []

    def clres_new(i: int) -> Any:
        import dataclasses

        import exi

        dcm = exi.iso20_dc
        if not clres_base:
            res = {"CLResControlMode": "Scheduled_DC_CLResControlMode"}
            clres_base.append(
                dataclasses.replace(
                    exi.fill(dcm.DC_ChargeLoopRes, prefer=res, mod=dcm), receipt=None
                )
            )
        (body,) = clres_base
        rn = dcm.RationalNumber
        return dataclasses.replace(
            body,
            header=dataclasses.replace(body.header, time_stamp=1_700_000_000 + i),
            evse_present_voltage=rn(exponent=-1, value=3500 + i),
            evse_present_current=rn(exponent=-1, value=100 + i),
            meter_info=dataclasses.replace(body.meter_info, charged_energy_reading_wh=10_000 + i),
        )

    def cdres() -> Any:
        import exi

        return exi.message(exi.fill(exi.iso2.CurrentDemandRes))

    def setup_req() -> Any:
        import exi

        return exi.message(exi.fill(exi.iso2.SessionSetupReq))

    def cert_res() -> Any:
        import exi

        return exi.message(exi.cert_installation_res())

    def dec(build: Callable[[], Any]) -> Callable[[], Callable[[], Any]]:
        def setup() -> Callable[[], Any]:
            data = codec.encode(build())
            return lambda: codec.decode(data, "iso2")

        return setup

    def enc(build: Callable[[], Any]) -> Callable[[], Callable[[], Any]]:
        def setup() -> Callable[[], Any]:
            msg = build()
            return lambda: codec.encode(msg)

        return setup

    def cold(build: Callable[[], Any]) -> Callable[[], Callable[[], Any]]:
        """Decoding with the fused decoders' value caches emptied before each call."""

        def setup() -> Callable[[], Any]:
            data = codec.encode(build())
            caches = [
                v
                for s in ("iso2", "xmldsig")
                for k, v in vars(codec.schema_module(s)).items()
                if k.startswith("_C_") and isinstance(v, dict)
            ]

            def call() -> Any:
                for c in caches:
                    c.clear()
                return codec.decode(data, "iso2")

            return call

        return setup

    def loop(
        index: int, vary: bool = False, core_only: bool = False
    ) -> Callable[[], Callable[[], Any]]:
        """decode + core + encode of one charge-loop request (bench/session.py's cases:
        0 = ISO 15118-2 CurrentDemandReq, 1 = ISO 15118-20 DC_ChargeLoopReq).

        ``vary``: every call a different request (the EV's target current and present
        voltage) and different measured values (the EVSE's present voltage, current and
        meter reading), from 1,000 prepared ones in turn: no cache finds a whole
        message or response, only the parts that stay (limits, status, header).
        ``core_only``: the requests are decoded beforehand and the response is not
        encoded: the session core's share alone."""

        def setup() -> Callable[[], Any]:
            import dataclasses

            import session as bench_session  # bench/session.py

            from secc.core.actions import SendResponse
            from secc.core.construct import builder
            from secc.core.events import RequestReceived

            # as the V2G server makes it (secc.aio.v2g_server._received)
            received = builder(RequestReceived, "message", "schema", "violations")

            sess, data, schema = bench_session.charging_session(bench_session.CASES[index])
            assert sess.deadline is not None
            now = sess.deadline - sess.config.timers.sequence_timeout + 0.1
            name = schema.value
            if not vary:

                def whole() -> bytes:
                    acts = sess.handle(received(codec.decode(data, name), schema, ()), now)
                    res = next(a for a in acts if isinstance(a, SendResponse))
                    return codec.encode(res.message)

                return whole

            ctx = sess._ctx
            msg = codec.decode(data, name)
            body = msg.body.body_element if index == 0 else msg
            inputs = []
            for i in range(1000):
                if index == 0:
                    pv = body.ev_target_current
                    new = dataclasses.replace(
                        body, ev_target_current=dataclasses.replace(pv, value=20 + i % 97)
                    )
                    req = dataclasses.replace(
                        msg, body=dataclasses.replace(msg.body, body_element=new)
                    )
                else:
                    rn = body.ev_present_voltage
                    req = dataclasses.replace(
                        body, ev_present_voltage=dataclasses.replace(rn, value=300 + i % 97)
                    )
                status = dataclasses.replace(
                    ctx.status,
                    present_voltage=350.0 + i % 89,
                    present_current=10.0 + i % 83,
                    energy_wh=float(i),
                )
                req_data = codec.encode(req)
                inputs.append((codec.decode(req_data, name) if core_only else req_data, status))
            turn = iter(range(10**9))

            def core() -> Any:
                req, status = inputs[next(turn) % 1000]
                ctx.status = status
                return sess.handle(received(req, schema, ()), now)

            if core_only:
                return core

            def varying() -> bytes:
                req_data, status = inputs[next(turn) % 1000]
                ctx.status = status
                acts = sess.handle(received(codec.decode(req_data, name), schema, ()), now)
                res = next(a for a in acts if isinstance(a, SendResponse))
                return codec.encode(res.message)

            return varying

        return setup

    def big() -> Callable[[], Any]:
        data = big_message(64 * 1024)
        return lambda: codec.decode(data, "iso2")

    def dense(size: int) -> Callable[[], Callable[[], Any]]:
        def setup() -> Callable[[], Any]:
            data = dense_message(size)
            return lambda: codec.decode(data, "iso2")

        return setup

    return {
        "decode CurrentDemandReq": dec(cdreq),
        "decode CurrentDemandReq, cold caches": cold(cdreq_distinct),
        "encode CurrentDemandReq": enc(cdreq),
        "decode CurrentDemandReq, values changing": changing(cdreq_changing, "iso2"),
        "decode DC_ChargeLoopReq, values changing": changing(clreq_changing, "iso20-dc"),
        "encode CurrentDemandRes, new values": new_values(cdres_new),
        "encode DC_ChargeLoopRes, new values": new_values(clres_new),
        "decode CurrentDemandRes": dec(cdres),
        "encode CurrentDemandRes": enc(cdres),
        "decode SessionSetupReq": dec(setup_req),
        "decode CertificateInstallationRes": dec(cert_res),
        "encode CertificateInstallationRes": enc(cert_res),
        "decode+core+encode": loop(0),
        "-20 DC_ChargeLoop decode+core+encode": loop(1),
        "decode+core+encode, values changing": loop(0, vary=True),
        "-20 DC_ChargeLoop, values changing": loop(1, vary=True),
        "core, values changing": loop(0, vary=True, core_only=True),
        "-20 DC_ChargeLoop core, values changing": loop(1, vary=True, core_only=True),
        "decode 64 kB": big,
        "decode 4 kB dense (largest inline)": dense(4096),
        "decode 60 kB dense (in a thread)": dense(60_000),
    }


def big_message(size: int) -> bytes:
    """A valid ISO-2 message of at least ``size`` octets made of many small values: a
    header Signature whose SignedInfo holds as many References (each a URI, a digest
    method and a 32-octet digest) as needed; the schema leaves their number unbounded."""
    from secc import codec

    iso2 = codec.schema_module("iso2")
    ds = codec.schema_module("xmldsig")
    sha = "http://www.w3.org/2001/04/xmlenc#sha256"
    ref = ds.Reference(
        uri="#id1", digest_method=ds.DigestMethod(algorithm=sha), digest_value=bytes(32)
    )
    per_ref = 80  # octets, about
    signature = ds.Signature(
        signed_info=ds.SignedInfo(
            canonicalization_method=ds.CanonicalizationMethod(
                algorithm="http://www.w3.org/TR/canonical-exi/"
            ),
            signature_method=ds.SignatureMethod(
                algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
            ),
            reference=(ref,) * (size // per_ref + 1),
        ),
        signature_value=ds.SignatureValue(value=bytes(64)),
    )
    msg = iso2.V2G_Message(
        header=iso2.MessageHeader(session_id=bytes(8), signature=signature),
        body=iso2.Body(
            body_element=iso2.SessionStopReq(charging_session=next(iter(iso2.ChargingSession)))
        ),
    )
    return codec.encode(msg)


# --- the station's own instructions per CurrentDemand round trip --------------------------

STATION_TARGET = 500_000


async def _ev_loops(port: int, ctx: Any, loops: int) -> None:
    """An EV (this process, not counted): a DC session up to its first CurrentDemandReq,
    then that request ``loops`` times back to back, each after the previous answer."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import capacity  # bench/capacity.py

    exchange, frame, writer = await capacity.dc_ev_at_loop(port, ctx)
    for _ in range(loops):
        await exchange(frame)
    writer.close()


def station_count(loops: int, use_tls: bool, directory: Path, use_uvloop: bool = False) -> int:
    """Instructions of a whole station process (``bench/capacity.py``'s station: one
    EVSE, simulated HAL polled every 5 s and no over-budget warnings, so that the count
    does not depend on how long the run takes under callgrind; the status read after
    each SetDcTarget stays) under callgrind that
    serves one DC session with ``loops`` CurrentDemand round trips; the EV runs in this
    process."""
    import asyncio
    import json
    import signal
    import time

    (directory / "ports.json").unlink(missing_ok=True)
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        str(HERE / "capacity.py"),
        "--station",
        "1",
        str(directory),
        "--poll",
        "5",
        "--quiet",
    ]
    cmd += ([] if use_tls else ["--tcp"]) + (["--uvloop"] if use_uvloop else [])
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 600
        ports = directory / "ports.json"
        while not (ports.exists() and ports.read_text().strip().endswith("]")):
            if proc.poll() is not None or time.monotonic() > deadline:  # (written, not
                raise RuntimeError("the station did not start under callgrind")  # half)
            time.sleep(0.2)
        (port,) = json.loads(ports.read_text())
        ctx = None
        if use_tls:
            from secc.aio.ev_client import tls_client_context

            ctx = tls_client_context(directory / "v2g" / "root.pem")
        asyncio.run(_ev_loops(port, ctx, loops))
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=600)
    m = re.search(r"Collected\s*:\s*(\d+)", err)
    if m is None:
        raise RuntimeError(f"callgrind failed for the station: {err[-2000:]}")
    return int(m.group(1))


def station_per_round_trip(
    use_tls: bool, use_uvloop: bool = False, loops: tuple[int, int] = (20, 220)
) -> int:
    """(station with many round trips - station with few) / the difference: start-up,
    session set-up and shutdown cancel out."""
    import datetime as dt
    import tempfile

    from certs import testpki

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        pki = testpki.build_test_pki(dt.datetime.now(dt.UTC))
        testpki.write_test_pki(pki, directory)
        few = station_count(loops[0], use_tls, directory, use_uvloop)
        many = station_count(loops[1], use_tls, directory, use_uvloop)
    return round((many - few) / (loops[1] - loops[0]))


def dense_message(size: int) -> bytes:
    """A valid ISO-2 message of at most ``size`` octets, as dense in decoder work as the
    schema allows: a header Signature with one Reference whose Transform holds empty
    XPath elements (unbounded), about 1.5 octets and one grammar step each.  Requests up
    to ``secc.aio.v2g_server.INLINE_DECODE_MAX`` octets are decoded on the event loop."""
    from secc import codec

    iso2 = codec.schema_module("iso2")
    ds = codec.schema_module("xmldsig")

    def build(xpaths: int) -> bytes:
        transform = ds.Transform(
            algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116", x_path=("",) * xpaths
        )
        ref = ds.Reference(
            uri="#id1",
            transforms=ds.Transforms(transform=(transform,)),
            digest_method=ds.DigestMethod(algorithm="http://www.w3.org/2001/04/xmlenc#sha256"),
            digest_value=bytes(32),
        )
        signature = ds.Signature(
            signed_info=ds.SignedInfo(
                canonicalization_method=ds.CanonicalizationMethod(
                    algorithm="http://www.w3.org/TR/canonical-exi/"
                ),
                signature_method=ds.SignatureMethod(
                    algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
                ),
                reference=(ref,),
            ),
            signature_value=ds.SignatureValue(value=bytes(64)),
        )
        msg = iso2.V2G_Message(
            header=iso2.MessageHeader(session_id=bytes(8), signature=signature),
            body=iso2.Body(
                body_element=iso2.SessionStopReq(charging_session=iso2.ChargingSession.Terminate)
            ),
        )
        return codec.encode(msg)

    lo, hi = 0, size * 8
    while lo < hi:  # the most XPath elements that fit in ``size`` octets
        mid = (lo + hi + 1) // 2
        if len(build(mid)) <= size:
            lo = mid
        else:
            hi = mid - 1
    return build(lo)


def child(name: str, number: int) -> None:
    call = _workloads()[name]()
    call()  # warm-up: lazy imports, caches
    # as `secc run` after start-up: the set-up's objects (1,000 prepared messages) frozen,
    # so a collection that falls among the counted calls does not traverse them
    gc.collect()
    gc.freeze()
    for _ in range(number):
        call()


def count(name: str, number: int) -> int:
    """Instructions callgrind counts for the child doing ``name`` ``number`` times."""
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        name,
        str(number),
    ]
    env = dict(os.environ, PYTHONHASHSEED="0")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    m = re.search(r"Collected\s*:\s*(\d+)", out.stderr)
    if out.returncode != 0 or m is None:
        raise RuntimeError(f"callgrind failed for {name}: {out.stderr[-2000:]}")
    return int(m.group(1))


def per_call(name: str, number: int) -> int:
    return round((count(name, number) - count(name, 0)) / number)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--child", nargs=2, metavar=("NAME", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return 0
    names = args.only or [*TARGETS, *(n for n in STATION if "uvloop" not in n)]
    print(f"{'instructions per call':36} {'now':>10} {'target':>10} {'before':>10}")
    for name in names:
        if name in STATION:
            n = station_per_round_trip(*STATION[name])
            print(f"{name:36} {n:10,} {STATION_TARGET:>10,} {'-':>10}", flush=True)
            continue
        big = ("64 kB", "60 kB", "Certificate")
        number = 5 if any(b in name for b in big) else args.number
        n = per_call(name, number)
        target, before = TARGETS.get(name, (None, None))
        t = f"{target:,}" if target else "-"
        b = f"{before:,}" if before else "-"
        print(f"{name:36} {n:10,} {t:>10} {b:>10}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
