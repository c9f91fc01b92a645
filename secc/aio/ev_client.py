"""The EV simulator over real sockets: SDP discovery (UDP, multicast to ``ff02::1`` on an
interface or unicast to a given address), then TCP or TLS to the offered port, V2GTP
framing, and a sans-I/O EV deciding each request: :class:`secc.ev.iso2.EvSimulator`
for ISO 15118-2 / DIN SPEC 70121 (an :class:`~secc.ev.iso2.EvScript`),
:class:`secc.ev.iso20.Ev20Simulator` for ISO 15118-20 (an
:class:`~secc.ev.iso20.Ev20Script`).

For lab engineers (``secc ev``), the demo, the station tests and the benches.  For -2
the TLS client offers TLS 1.2 with the ISO 15118-2 suite only; for -20 it speaks TLS 1.3
only (as -20 requires) and may present a vehicle certificate (``client_cert``: mutual TLS
for -20 Plug & Charge; ``credentials`` give the -20 EV its contract and OEM material).  Either way
it checks the SECC chain against the V2G root(s) it is given (``cafile``: one PEM file or
several); Python's ssl cannot send ``trusted_ca_keys``.  ``keylog`` writes the TLS secrets
of the connection in the SSLKEYLOGFILE format (for Wireshark), to a file made 0600 first.

Each response is awaited ``response_timeout`` seconds, or with ``response_timeout=None``
for the standard's V2G_EVCC_Msg_Timeout of that request (ISO 15118-2 Table 109, DIN SPEC
70121 Table 75, ISO 15118-20's message timeouts: the EV's ``message_timeout``); ``secc
ev`` uses the standard's, the library's default is a lenient 10 s for loaded test
machines.  -20 messages travel in the payload type of their
schema (0x8002 CommonMessages, 0x8003 AC, 0x8004 DC; the handshake stays 0x8001) and each
response is decoded with the schema of the payload type it arrived in.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secc import codec
from secc.aio.keylog import KeylogError, enable_keylog
from secc.aio.tls import CIPHERS
from secc.core.events import Schema
from secc.ev.iso2 import EvScript, EvSimulator, Outgoing, evse_id_text
from secc.ev.iso20 import Ev20Script, Ev20Simulator
from secc.ev.pnc20 import Ev20Credentials, Ev20Faults
from secc.sdp import (
    SDP_MULTICAST_ADDRESS,
    SDP_PORT,
    SdpError,
    SdpRequest,
    SdpResponse,
    Security,
)
from secc.trace import body_of, summarize
from secc.v2gtp import Frame, Framer, FramingError, PayloadType, encode_frame

SDP_TIMEOUT = 0.25  # ISO 15118-2 TT_SDP_Request [V2G2-???]: retry after 250 ms
SDP_RETRIES = 50
CONNECT_TIMEOUT = 20.0  # V2G_EVCC_CommunicationSetup_Timeout (ISO 15118-2 Table 111)
STALL_WAIT = 70.0  # a stalled EV waits out the station's V2G_SECC_Sequence_Timeout (60 s)
LATE_TURNS = 8  # loop turns a run-out timer gives an answer already received to be read

CaFiles = Path | Sequence[Path] | None


# the V2GTP payload type each schema travels in (ISO 15118-20 Table 13), and back
PAYLOAD_TYPES: dict[Schema, PayloadType] = {
    Schema.APPHAND: PayloadType.EXI,
    Schema.ISO2: PayloadType.EXI,
    Schema.DIN: PayloadType.EXI,
    Schema.ISO20_COMMON: PayloadType.ISO20_COMMON,
    Schema.ISO20_AC: PayloadType.ISO20_AC,
    Schema.ISO20_DC: PayloadType.ISO20_DC,
}
ISO20_SCHEMAS = {int(t): s for s, t in PAYLOAD_TYPES.items() if t is not PayloadType.EXI}

AnyScript = EvScript | Ev20Script
AnyEv = EvSimulator | Ev20Simulator


def make_ev(
    script: AnyScript,
    credentials: Ev20Credentials | None = None,
    faults: Ev20Faults | None = None,
) -> AnyEv:
    """The sans-I/O EV for ``script``: -20 for an Ev20Script (with its Plug & Charge
    ``credentials`` and ``faults``), else -2 / DIN."""
    if isinstance(script, Ev20Script):
        return Ev20Simulator(script, credentials=credentials, faults=faults)
    return EvSimulator(script)


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
    ev: AnyEv
    sdp: SdpResponse | None = None
    tls: bool = False
    cipher: str | None = None
    tls_version: str | None = None
    steps: list[Step] = field(default_factory=list)
    ended: str = ""  # why the EV stopped: "done", "vanished", "closed by the station", ...
    # when the EV stopped without an answer: the request outstanding, when it went and the
    # last answer before it (times in seconds since the EV connected)
    outstanding: str = ""

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


def tls_client_context(
    cafile: CaFiles,
    *,
    iso20: bool = False,
    client_cert: tuple[Path, Path] | None = None,
    keylog: Path | None = None,
) -> ssl.SSLContext:
    """TLS 1.2 with the ISO 15118-2 suite, or TLS 1.3 only for ISO 15118-20; trusts
    ``cafile`` (the V2G root, or several) or nothing is checked when it is None;
    ``client_cert`` (certificate chain PEM, key PEM) is presented when the station asks
    for one; ``keylog``: the TLS secrets are appended there (created 0600 and checked by
    :func:`secc.aio.keylog.enable_keylog`)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if iso20:
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    else:
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(CIPHERS)
    ctx.check_hostname = False  # the SECC certificate names the EVSE, not a host
    if client_cert is not None:
        ctx.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
    files = [cafile] if isinstance(cafile, Path) else list(cafile or ())
    if not files:
        ctx.verify_mode = ssl.CERT_NONE
    for path in files:
        ctx.load_verify_locations(cafile=str(path))
    if keylog is not None:
        try:
            enable_keylog(ctx, keylog)
        except KeylogError as exc:
            raise EvError(str(exc)) from None
    return ctx


class _Link:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.framer = Framer(allowed_types=(int(t) for t in set(PAYLOAD_TYPES.values())))
        self._frames: deque[Frame] = deque()  # received, not handed out yet

    async def exchange(self, payload: bytes, timeout: float, payload_type: int) -> Frame | None:
        self.writer.write(encode_frame(payload, payload_type))
        await self.writer.drain()
        return await self.receive(timeout)

    async def receive(self, timeout: float) -> Frame | None:
        """The next frame within ``timeout`` s; None at the end of the stream.  When the
        timer runs out, what already came is read first: an EV whose own process was
        starved finds the answer it was too late to read, not the station's silence."""
        try:
            async with asyncio.timeout(timeout):
                return await self._next()
        except TimeoutError:
            return await self._already_here()

    async def _next(self) -> Frame | None:
        while not self._frames:
            data = await self.reader.read(65536)
            if not data:
                return None
            self._frames.extend(self.framer.feed(data))
        return self._frames.popleft()

    async def _already_here(self) -> Frame | None:
        """After the timer: the frame that is here already, or TimeoutError."""
        for _ in range(LATE_TURNS):
            if self._frames:
                return self._frames.popleft()
            if getattr(self.reader, "_buffer", None) or self.reader.at_eof():
                data = await self.reader.read(65536)  # (at once: buffered, or the end)
                if not data:
                    return None
                self._frames.extend(self.framer.feed(data))
                continue
            if not self._kernel_waiting():
                break
            await asyncio.sleep(0)  # the transport reads (and decrypts) it
        raise TimeoutError

    def _kernel_waiting(self) -> bool:
        """Whether octets wait in the socket's receive queue."""
        import fcntl  # (only when a timer ran out)
        import termios

        sock = self.writer.get_extra_info("socket")
        if sock is None:
            return False
        try:
            queued = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        except (OSError, ValueError):
            return False
        return int.from_bytes(queued, sys.byteorder, signed=True) > 0

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
    script: AnyScript,
    *,
    host: str,
    port: int,
    tls: bool,
    cafile: CaFiles = None,
    interface: str | None = None,
    response_timeout: float | None = 10.0,
    on_step: Callable[[Step], None] | None = None,
    result: EvResult | None = None,
    client_cert: tuple[Path, Path] | None = None,
    credentials: Ev20Credentials | None = None,
    faults: Ev20Faults | None = None,
    keylog: Path | None = None,
) -> EvResult:
    """Run one V2G session against ``[host]:port``; returns what the EV saw.
    ``response_timeout=None``: each response within the standard's message timeout."""
    ev = make_ev(script, credentials, faults)
    iso20 = isinstance(ev, Ev20Simulator)
    out = result or EvResult(ev)
    out.ev, out.tls = ev, tls
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    if interface and host.startswith("fe80") and "%" not in host:
        host = f"{host}%{interface}"
    ctx = (
        tls_client_context(cafile, iso20=iso20, client_cert=client_cert, keylog=keylog)
        if tls
        else None
    )
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ctx, server_hostname=None),
            timeout=response_timeout or CONNECT_TIMEOUT,
        )
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        raise EvError(f"cannot connect to [{host}]:{port}: {exc or type(exc).__name__}") from exc
    link = _Link(reader, writer)
    cipher = writer.get_extra_info("cipher")
    out.cipher = cipher[0] if cipher else None
    out.tls_version = cipher[1] if cipher else None
    step: Outgoing | None = ev.start()
    # a step's delay runs from the answer before it (as the sans-I/O EV counts it), not
    # from when this task got round to it: an EV whose process was starved for a while
    # sends what is due at once, as a car's fixed-cycle controller would
    answered = loop.time()
    try:
        while step is not None:
            if step.delay > 0:
                wait = answered + step.delay - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            if step.kind == "vanish":
                link.reset()
                out.ended = f"vanished before {step.name}"
                return out
            if step.kind == "stall":
                await link.receive(response_timeout * 10 if response_timeout else STALL_WAIT)
                out.ended = f"stalled before {step.name}; station closed the connection"
                return out
            sent = loop.time()
            payload_type = int(PAYLOAD_TYPES[step.schema])
            wait = response_timeout or ev.message_timeout(step.name)
            try:
                frame = await link.exchange(codec.encode(step.message), wait, payload_type)
            except TimeoutError:
                why = "" if response_timeout else " (V2G_EVCC_Msg_Timeout)"
                out.ended = f"no answer to {step.name} within {wait:g} s{why}"
                out.outstanding = _outstanding(step.name, sent, loop.time(), t0, out)
                return out
            except FramingError as exc:
                out.ended = f"bad V2GTP frame in answer to {step.name}: {exc}"
                return out
            except (ConnectionError, OSError, ssl.SSLError) as exc:
                out.ended = f"connection lost after {step.name}: {exc}"
                out.outstanding = _outstanding(step.name, sent, loop.time(), t0, out)
                return out
            if frame is None:
                out.ended = f"station closed the connection after {step.name}"
                out.outstanding = _outstanding(step.name, sent, loop.time(), t0, out)
                return out
            if step.schema is Schema.APPHAND:
                schema = Schema.APPHAND
            elif iso20:
                if frame.payload_type not in ISO20_SCHEMAS:
                    out.ended = (
                        f"answer to {step.name} in payload type {frame.payload_type:#06x}, "
                        "not an ISO 15118-20 one"
                    )
                    return out
                schema = ISO20_SCHEMAS[frame.payload_type]
            else:
                schema = ev.schema
            try:
                message = codec.decode(frame.payload, schema.value)
            except codec.DecodeError as exc:
                out.ended = f"undecodable answer to {step.name} ({schema.value}): {exc}"
                return out
            body = body_of(message)
            now = loop.time()
            code = getattr(body, "response_code", None)
            summary = summarize(body)
            if type(body).__name__ == "SessionSetupRes":  # DIN: hexBinary, -2/-20: a string
                summary["evse_id"] = evse_id_text(body.evseid)
            record = Step(
                step.name,
                type(body).__name__,
                str(getattr(code, "value", code)),
                (now - sent) * 1000,
                now - t0,
                summary,
            )
            out.steps.append(record)
            if on_step is not None:
                on_step(record)
            step = ev.receive(message, schema, now)
            answered = now
        error = getattr(ev, "error", None)
        out.ended = f"EV gave up: {error}" if error else "done"
        return out
    finally:
        if not out.ended.startswith("vanished"):
            await link.close()


def _outstanding(name: str, sent: float, now: float, t0: float, out: EvResult) -> str:
    """The request the EV waited on when the session ended without its answer."""
    text = f"{name} sent at t={sent - t0:.3f} s, no answer by t={now - t0:.3f} s"
    if out.steps:
        last = out.steps[-1]
        text += f"; the last answer {last.response} came at t={last.at:.3f} s"
    return text


async def run_ev_sdp(
    script: AnyScript,
    *,
    security: Security,
    interface: str | None = None,
    address: str | None = None,
    sdp_port: int = SDP_PORT,
    cafile: CaFiles = None,
    on_step: Callable[[Step], None] | None = None,
    on_sdp: Callable[[SdpResponse], None] | None = None,
    client_cert: tuple[Path, Path] | None = None,
    credentials: Ev20Credentials | None = None,
    faults: Ev20Faults | None = None,
    response_timeout: float | None = 10.0,
    keylog: Path | None = None,
) -> EvResult:
    """SDP, then :func:`run_ev` to the address and port the station offered."""
    answer = await discover(security, interface=interface, address=address, port=sdp_port)
    if on_sdp is not None:
        on_sdp(answer)
    host = str(answer.address)
    if interface and answer.address.is_link_local:
        host = f"{host}%{interface}"
    result = EvResult(make_ev(script, credentials, faults), sdp=answer)
    return await run_ev(
        script,
        host=host,
        port=answer.port,
        tls=answer.security is Security.TLS,
        cafile=cafile,
        on_step=on_step,
        result=result,
        client_cert=client_cert,
        credentials=credentials,
        faults=faults,
        response_timeout=response_timeout,
        keylog=keylog,
    )
