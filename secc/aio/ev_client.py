"""The EV simulator over real sockets: SDP discovery (UDP, multicast to ``ff02::1`` on an
interface or unicast to a given address), then TCP or TLS 1.2 to the offered port, V2GTP
framing, and the sans-I/O :class:`secc.testing.ev.EvSimulator` deciding each request.

For lab engineers (``secc ev``), the demo, the station tests and the benches.  The TLS
client offers the ISO 15118-2 suite only and checks the SECC chain against the V2G root
it is given (``cafile``); Python's ssl cannot send ``trusted_ca_keys``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secc import codec
from secc.aio.tls import CIPHERS
from secc.core.events import Schema
from secc.sdp import (
    SDP_MULTICAST_ADDRESS,
    SDP_PORT,
    SdpError,
    SdpRequest,
    SdpResponse,
    Security,
)
from secc.testing.ev import EvScript, EvSimulator, Outgoing
from secc.trace import body_of, summarize
from secc.v2gtp import Framer, encode_frame

SDP_TIMEOUT = 0.25  # ISO 15118-2 TT_SDP_Request [V2G2-???]: retry after 250 ms
SDP_RETRIES = 50


class EvError(Exception):
    """The EV could not reach or talk to the station."""


@dataclass(frozen=True, slots=True)
class Step:
    """One request → response exchange as the EV saw it."""

    request: str
    response: str
    code: str
    ms: float
    at: float  # seconds since the EV started
    summary: dict[str, Any]


@dataclass(slots=True)
class EvResult:
    ev: EvSimulator
    sdp: SdpResponse | None = None
    tls: bool = False
    cipher: str | None = None
    steps: list[Step] = field(default_factory=list)
    ended: str = ""  # why the EV stopped: "done", "vanished", "closed by the station", ...

    @property
    def codes(self) -> list[tuple[str, str]]:
        return [(s.response, s.code) for s in self.steps]


async def discover(
    security: Security,
    *,
    interface: str | None = None,
    address: str | None = None,
    port: int = SDP_PORT,
    retries: int = SDP_RETRIES,
    timeout: float = SDP_TIMEOUT,
) -> SdpResponse:
    """SDP: ask ``address`` (or ``ff02::1`` on ``interface``) until a station answers."""
    scope = socket.if_nametoindex(interface) if interface else 0
    target = (address or SDP_MULTICAST_ADDRESS, port, 0, scope)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        if interface:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, scope)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.bind(("::", 0, 0, 0))
        sock.setblocking(False)
        request = SdpRequest(security).encode()
        for _ in range(retries):
            await loop.sock_sendto(sock, request, target)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    while True:
                        data = await loop.sock_recv(sock, 100)
                        try:
                            return SdpResponse.decode(data)
                        except (SdpError, ValueError):
                            continue  # not an SDP response: keep listening
        raise EvError(f"no SDP answer from {target[0]} after {retries} requests")
    finally:
        sock.close()


def tls_client_context(cafile: Path | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(CIPHERS)
    ctx.check_hostname = False  # the SECC certificate names the EVSE, not a host
    if cafile is None:
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(cafile=str(cafile))
    return ctx


class _Link:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.framer = Framer()

    async def exchange(self, payload: bytes, timeout: float) -> bytes | None:
        self.writer.write(encode_frame(payload))
        await self.writer.drain()
        return await self.receive(timeout)

    async def receive(self, timeout: float) -> bytes | None:
        async with asyncio.timeout(timeout):
            while True:
                data = await self.reader.read(65536)
                if not data:
                    return None
                frames = self.framer.feed(data)
                if frames:
                    return frames[0].payload

    def reset(self) -> None:
        """Vanish: close with a TCP reset (SO_LINGER 0), as a car that loses power does."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            async with asyncio.timeout(2):
                await self.writer.wait_closed()


async def run_ev(
    script: EvScript,
    *,
    host: str,
    port: int,
    tls: bool,
    cafile: Path | None = None,
    interface: str | None = None,
    response_timeout: float = 10.0,
    on_step: Callable[[Step], None] | None = None,
    result: EvResult | None = None,
) -> EvResult:
    """Run one V2G session against ``[host]:port``; returns what the EV saw."""
    ev = EvSimulator(script)
    out = result or EvResult(ev)
    out.ev, out.tls = ev, tls
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    if interface and host.startswith("fe80") and "%" not in host:
        host = f"{host}%{interface}"
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host, port, ssl=tls_client_context(cafile) if tls else None, server_hostname=None
            ),
            timeout=response_timeout,
        )
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        raise EvError(f"cannot connect to [{host}]:{port}: {exc or type(exc).__name__}") from exc
    link = _Link(reader, writer)
    cipher = writer.get_extra_info("cipher")
    out.cipher = cipher[0] if cipher else None
    step: Outgoing | None = ev.start()
    try:
        while step is not None:
            if step.delay > 0:
                await asyncio.sleep(step.delay)
            if step.kind == "vanish":
                link.reset()
                out.ended = f"vanished before {step.name}"
                return out
            if step.kind == "stall":
                data = await link.receive(response_timeout * 10)
                out.ended = f"stalled before {step.name}; station closed the connection"
                return out
            sent = loop.time()
            try:
                data = await link.exchange(codec.encode(step.message), response_timeout)
            except TimeoutError:
                out.ended = f"no answer to {step.name} within {response_timeout} s"
                return out
            except (ConnectionError, OSError, ssl.SSLError) as exc:
                out.ended = f"connection lost after {step.name}: {exc}"
                return out
            if data is None:
                out.ended = f"station closed the connection after {step.name}"
                return out
            schema = Schema.APPHAND if step.schema is Schema.APPHAND else ev.schema
            message = codec.decode(data, schema.value)
            body = body_of(message)
            now = loop.time()
            code = getattr(body, "response_code", None)
            record = Step(
                step.name,
                type(body).__name__,
                str(getattr(code, "value", code)),
                (now - sent) * 1000,
                now - t0,
                summarize(body),
            )
            out.steps.append(record)
            if on_step is not None:
                on_step(record)
            step = ev.receive(message, schema)
        out.ended = "done"
        return out
    finally:
        if not out.ended.startswith("vanished"):
            await link.close()


async def run_ev_sdp(
    script: EvScript,
    *,
    security: Security,
    interface: str | None = None,
    address: str | None = None,
    sdp_port: int = SDP_PORT,
    cafile: Path | None = None,
    on_step: Callable[[Step], None] | None = None,
    on_sdp: Callable[[SdpResponse], None] | None = None,
) -> EvResult:
    """SDP, then :func:`run_ev` to the address and port the station offered."""
    answer = await discover(security, interface=interface, address=address, port=sdp_port)
    if on_sdp is not None:
        on_sdp(answer)
    host = str(answer.address)
    if interface and answer.address.is_link_local:
        host = f"{host}%{interface}"
    result = EvResult(EvSimulator(script), sdp=answer)
    return await run_ev(
        script,
        host=host,
        port=answer.port,
        tls=answer.security is Security.TLS,
        cafile=cafile,
        on_step=on_step,
        result=result,
    )
