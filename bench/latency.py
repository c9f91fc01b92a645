"""Request -> response latency of the V2G transport alone (secc.aio.v2g_server), over
TLS 1.2 (ECDHE-ECDSA-AES128-SHA256) or plain TCP on loopback.  Prints p50/p99; asserts
nothing.

    .venv/bin/python bench/latency.py [--count 2000] [--tcp]

Transport-only: the session handler is a trivial echo that answers every
SessionSetupReq with a precomputed SessionSetupRes, so the figure covers V2GTP framing,
TLS records, the EXI *decode* of the request and the event loop, not the session core.
Client and server share one event loop and one CPU core; a separate EV adds the
scheduling of its own process.  A test PKI is generated in a temporary directory.
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--tcp", action="store_true", help="plain TCP instead of TLS")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        samples = asyncio.run(measure(args.count, not args.tcp, Path(tmp)))
    samples.sort()
    us = [s * 1e6 for s in samples]
    p50 = statistics.median(us)
    p99 = us[min(len(us) - 1, int(len(us) * 0.99))]
    print(f"python {sys.version.split()[0]} on {platform.machine()}, {ssl.OPENSSL_VERSION}")
    print(
        f"{'TLS 1.2' if not args.tcp else 'TCP'} SessionSetupReq -> SessionSetupRes, "
        f"{len(us)} round trips on loopback (transport only, echo handler): "
        f"p50 {p50:.0f} us, p99 {p99:.0f} us, max {us[-1]:.0f} us"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
