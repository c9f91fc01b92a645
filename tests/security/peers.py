"""Hostile peers for the security tests: idle TCP connects, TLS handshakes that send
nothing after, raw V2GTP frames.  Loopback only; every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

from secc import codec
from secc.codec._generated import apphand, iso2
from secc.v2gtp import Framer, encode_frame

ISO2_NS = "urn:iso:15118:2:2013:MsgDef"

SAP_REQ = apphand.supportedAppProtocolReq(
    app_protocol=(
        apphand.AppProtocol(
            protocol_namespace=ISO2_NS,
            version_number_major=2,
            version_number_minor=0,
            schema_id=1,
            priority=1,
        ),
    )
)
SAP_FRAME = encode_frame(codec.encode(SAP_REQ))


def setup_frame(evcc_id: bytes) -> bytes:
    message = iso2.V2G_Message(
        header=iso2.MessageHeader(session_id=b"\x00"),
        body=iso2.Body(body_element=iso2.SessionSetupReq(evccid=evcc_id)),
    )
    return encode_frame(codec.encode(message))


def tls_client(root: Path) -> ssl.SSLContext:
    """An EV's TLS 1.2 client context (ISO 15118-2 suite), verifying the SECC chain."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(str(root))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA256")
    return ctx


async def idle_connects(
    port: int, count: int, host: str = "::1", timeout: float = 2.0
) -> list[asyncio.StreamWriter]:
    """``count`` bare TCP connects that send nothing (the caller closes them)."""
    writers = []
    for _ in range(count):
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection(host, port)
                writers.append(writer)
    return writers


async def tls_connects(
    port: int, count: int, root: Path, host: str = "::1"
) -> list[asyncio.StreamWriter]:
    """``count`` completed TLS handshakes that then send nothing."""
    ctx = tls_client(root)
    writers = []
    for _ in range(count):
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            async with asyncio.timeout(5):
                _, writer = await asyncio.open_connection(host, port, ssl=ctx)
                writers.append(writer)
    return writers


async def close_all(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.close()
    for writer in writers:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await writer.wait_closed()


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, frame: bytes
) -> bytes | None:
    """Send one frame, return the payload of the one answer (None: the station closed)."""
    writer.write(frame)
    await writer.drain()
    framer = Framer()
    async with asyncio.timeout(10):
        while True:
            data = await reader.read(65536)
            if not data:
                return None
            frames = framer.feed(data)
            if frames:
                return frames[0].payload


def raw_socket_count(pid: int) -> int:
    """Open file descriptors of process ``pid`` (``/proc/<pid>/fd``)."""
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def rss_kib(pid: int) -> int:
    """Resident memory of process ``pid`` in KiB (``VmRSS`` in ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")
