"""Request -> response latency over TLS 1.2 (ECDHE-ECDSA-AES128-SHA256) or plain TCP on
loopback.  Prints p50/p99; asserts nothing.

    .venv/bin/python bench/latency.py [--count 2000] [--tcp] [--no-trace]
    .venv/bin/python bench/latency.py --transport-only [--count 2000] [--tcp]

Default: the whole station (``secc.runtime.Station``: driver, session core, codec,
trace writer, simulated HAL board polled every 100 ms) serves a DC session; the EV
simulator runs it up to the first CurrentDemandReq, then sends that request ``count``
times and times each one from the write to the complete response frame.
``--transport-only``: the session handler is a trivial echo that answers every
SessionSetupReq with a precomputed SessionSetupRes (V2GTP framing, TLS records, EXI
*decode* and the event loop only).  Client and server share one event loop and one CPU
core; a separate EV adds the scheduling of its own process.  A test PKI is generated in
a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

from secc import codec
from secc.aio.tls import SeccChain, TlsSelector
from secc.aio.v2g_server import V2GConnection, V2GServer
from secc.core.events import ConnectionLost, RequestReceived, Schema
from secc.v2gtp import Framer, encode_frame

iso2 = codec.schema_module("iso2")
REQ = iso2.V2G_Message(
    header=iso2.MessageHeader(session_id=b"\x00"),
    body=iso2.Body(body_element=iso2.SessionSetupReq(evccid=b"\x02\x00\x00\x00\x00\x01")),
)
RES = codec.encode(
    iso2.V2G_Message(
        header=iso2.MessageHeader(session_id=bytes(range(8))),
        body=iso2.Body(
            body_element=iso2.SessionSetupRes(
                response_code=iso2.ResponseCode.OK_NewSessionEstablished, evseid="DE*ABC*E1"
            )
        ),
    )
)


class Echo:
    def __init__(self, conn: V2GConnection) -> None:
        conn.schema = Schema.ISO2  # skip the appHandshake: every request is iso2

    async def request_received(self, conn: V2GConnection, event: RequestReceived) -> None:
        await conn.send(RES)

    async def connection_lost(self, conn: V2GConnection, event: ConnectionLost) -> None:
        pass

    async def undecodable(
        self, conn: V2GConnection, payload: bytes, error: codec.DecodeError
    ) -> None:
        await conn.close("undecodable")


def make_pki(directory: Path) -> tuple[SeccChain, Path]:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def cert(
        cn: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: str,
        ikey: ec.EllipticCurvePrivateKey,
        ca: bool,
    ) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(ikey, hashes.SHA256())
        )

    rkey, lkey = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = cert("V2G Root", rkey, "V2G Root", rkey, True)
    leaf = cert("SECC", lkey, "V2G Root", rkey, False)
    (directory / "chain.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        lkey.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (directory / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    return SeccChain(directory / "chain.pem", directory / "key.pem", root), directory / "root.pem"


async def measure(count: int, use_tls: bool, directory: Path) -> list[float]:
    chain, root_file = make_pki(directory)
    tls = TlsSelector([chain]) if use_tls else None
    client_ctx = None
    if use_tls:
        client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client_ctx.check_hostname = False
        client_ctx.load_verify_locations(str(root_file))
    frame = encode_frame(codec.encode(REQ))
    async with V2GServer(Echo, tls=tls) as server:
        reader, writer = await asyncio.open_connection("::1", server.port, ssl=client_ctx)
        framer = Framer()
        samples = []
        for i in range(count + 100):
            start = time.perf_counter()
            writer.write(frame)
            got: list[object] = []
            while not got:
                got = list(framer.feed(await reader.read(65536)))
            if i >= 100:  # warm-up
                samples.append(time.perf_counter() - start)
        writer.close()
    return samples


async def measure_core(count: int, use_tls: bool, directory: Path, trace: bool) -> list[float]:
    import datetime as dt

    from certs import testpki
    from hal.backends.simulated import build_board
    from secc.config import CertsSection, EvseSection, HalSection, StationConfig, StationSection
    from secc.ev.iso2 import EvScript, EvSimulator
    from secc.runtime import Station

    pki = testpki.build_test_pki(dt.datetime.now(dt.UTC))
    testpki.write_test_pki(pki, directory)
    evse_id = pki.options.evse_id
    config = StationConfig(
        station=StationSection(trace_dir=directory / "traces" if trace else None),
        certs=CertsSection(store=directory / "station"),
        evse=(
            EvseSection(
                evse_id=evse_id,
                address="::1",
                tls_port=0 if use_tls else -1,
                tcp_port=-1 if use_tls else 0,
                sdp_port=0,
                energy_modes=("DC_extended",),
                hal=HalSection(control="none"),
            ),
        ),
    )
    client_ctx = None
    if use_tls:
        from secc.aio.ev_client import tls_client_context

        client_ctx = tls_client_context(directory / "v2g" / "root.pem")
    async with Station(config, boards={evse_id: build_board()[0]}) as station:
        port = station.evses[0].ports["tls" if use_tls else "tcp"]
        reader, writer = await asyncio.open_connection("::1", port, ssl=client_ctx)
        framer = Framer()

        async def exchange(frame: bytes) -> bytes:
            writer.write(frame)
            while True:
                got = framer.feed(await reader.read(65536))
                if got:
                    return got[0].payload

        ev = EvSimulator(
            EvScript(energy_mode="DC_extended", think_time=0, poll_interval=0.02, charge_loops=2)
        )
        step = ev.start()
        while step.name != "CurrentDemandReq":
            await asyncio.sleep(step.delay)
            payload = await exchange(encode_frame(codec.encode(step.message)))
            schema = Schema.APPHAND if step.schema is Schema.APPHAND else ev.schema
            nxt = ev.receive(codec.decode(payload, schema.value), schema)
            if nxt is None:
                raise SystemExit(f"session ended before CurrentDemandReq: {ev.responses[-1]}")
            step = nxt
        frame = encode_frame(codec.encode(step.message))
        samples = []
        for i in range(count + 100):
            start = time.perf_counter()
            payload = await exchange(frame)
            if i >= 100:  # warm-up
                samples.append(time.perf_counter() - start)
        res = codec.decode(payload, ev.schema.value).body.body_element
        if res.response_code.value != "OK":
            raise SystemExit(f"CurrentDemandRes {res.response_code.value}")
        writer.close()
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--tcp", action="store_true", help="plain TCP instead of TLS")
    parser.add_argument("--transport-only", action="store_true", help="echo handler, no core")
    parser.add_argument("--no-trace", action="store_true", help="station writes no trace")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.transport_only:
            samples = asyncio.run(measure(args.count, not args.tcp, Path(tmp)))
        else:
            samples = asyncio.run(
                measure_core(args.count, not args.tcp, Path(tmp), not args.no_trace)
            )
    samples.sort()
    us = [s * 1e6 for s in samples]
    p50 = statistics.median(us)
    p99 = us[min(len(us) - 1, int(len(us) * 0.99))]
    print(f"python {sys.version.split()[0]} on {platform.machine()}, {ssl.OPENSSL_VERSION}")
    if args.transport_only:
        what = "SessionSetupReq -> SessionSetupRes (transport only, echo handler)"
    else:
        trace = "no trace" if args.no_trace else "JSONL trace on"
        what = f"CurrentDemandReq -> CurrentDemandRes (station runtime + core, {trace})"
    print(
        f"{'TLS 1.2' if not args.tcp else 'TCP'} {what}, {len(us)} round trips on loopback: "
        f"p50 {p50:.0f} us, p99 {p99:.0f} us, max {us[-1]:.0f} us"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
