"""The V2G TCP/TLS server: accept, (choose the TLS chain,) frame V2GTP, decode EXI, and
hand each request to a per-connection session handler.

Wiring for the integrator (``secc.runtime``)::

    class CoreHandler:                       # one per connection, made by the factory
        def __init__(self, conn: V2GConnection) -> None:
            self.conn, self.session = conn, SeccSession(...)
        async def request_received(self, conn, event: RequestReceived) -> None:
            await perform(self.session.handle(event, monotonic()))
        async def connection_lost(self, conn, event: ConnectionLost) -> None:
            await perform(self.session.handle(event, monotonic()))
        async def undecodable(self, conn, payload: bytes, error: DecodeError) -> None:
            ...                               # e.g. answer FAILED or close
    # perform(): SendResponse -> await conn.send_message(a.message)   (one write)
    #            CloseConnection -> await conn.close(a.reason)
    server = V2GServer(CoreHandler, host="fe80::1%eth1", interface="eth1", port=0,
                       tls=station_tls(chains))          # None: plain TCP
    await server.start(); advertise server.port through SDP

Requests of one connection are handed over one at a time, in order (the next is read
after ``request_received`` returns).  ``send_message`` / ``send`` / ``close`` may also be
called outside a handler call, e.g. from a per-connection task that feeds the core's
``deadline`` as TimerExpired and performs the resulting actions.

Schema: the first request of a connection is decoded as appHandshake.  When the handler
sends a ``supportedAppProtocolReq``'s answer through :meth:`V2GConnection.send_message`,
the connection switches to the schema of the protocol the answer selected (ISO 15118-2,
DIN SPEC 70121, or ISO 15118-20's CommonMessages); a handler can set
:attr:`V2GConnection.schema` itself at any time.  Payload types follow the schema
(:data:`PAYLOAD_TYPES`): until ISO 15118-20 is negotiated only 0x8001 is accepted, after
it only 0x8002-0x8006, and each -20 frame is decoded with the schema of its payload type
(0x8003 AC, 0x8004 DC, ...); a frame of another type is a V2GTP payload type error.

Framing errors get the ISO 15118-2 V2GTP handling (see :mod:`secc.v2gtp`): the message
is discarded, the failed check logged, the connection closed, and the handler told
through ``connection_lost``.  ``connection_lost`` is called exactly once for every
connection that ends other than by the handler's own :meth:`V2GConnection.close` (peer
close, reset, framing error, an exception escaping the handler, server shutdown).
Each response is written with one write (header + payload): some EVCCs read each
message with a single ``read``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import ssl
import sys
from asyncio import sslproto
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from secc.aio.admission import Admission, Ticket, duplicate, send_alert
from secc.aio.clienthello import (
    MAX_HELLO,
    RECORD_HEADER,
    ClientHello,
    ClientHelloError,
    scan_client_hello,
)
from secc.aio.logbudget import BudgetedLog, LogBudget
from secc.aio.tls import Selection, TlsSelector, verified_chain, without_anchor
from secc.v2gtp import DEFAULT_MAX_PAYLOAD, Framer, FramingError, PayloadType, encode_frame

if TYPE_CHECKING:  # annotations only (issue 17: no cryptography before SDP-ready)
    from cryptography import x509

    from secc.codec import Decoded, DecodeError
    from secc.core.events import ConnectionLost, RequestReceived, Schema

__all__ = [
    "ISO20_SCHEMAS",
    "PAYLOAD_TYPES",
    "PROTOCOL_SCHEMAS",
    "SessionHandler",
    "V2GConnection",
    "V2GServer",
    "negotiated_schema",
    "peek_client_hello",
]

log = logging.getLogger(__name__)

# The codec and the session core's events are not needed before the first connection:
# they load after SDP-ready (tests/station/test_startup.py; ~15M instructions of the
# start, issue 17).  _bind() binds the names below once: when the driver imports
# PAYLOAD_TYPES (``secc run``'s post-ready settle step), or at the latest when the first
# connection is accepted or a V2GConnection made (one check per connection), or when a
# table is read from outside (module __getattr__).  The per-message path reads them as
# plain module globals (no import, no check per message).
_bound = False
PROTOCOL_SCHEMAS: dict[str, Schema]  # supportedAppProtocol namespace -> first schema
# the V2GTP payload type each schema's messages travel in (ISO 15118-20 Table 13)
PAYLOAD_TYPES: dict[Schema, PayloadType]
ISO20_SCHEMAS: dict[int, Schema]  # -20 payload type -> the schema its frames are in
_APPHAND: Schema
_NAMES: dict[Schema, str]  # (an Enum's .value is two Python calls)
_decode_checked: Callable[[bytes, str], Decoded]
_encode: Callable[[object], bytes]
_DecodeError: type[DecodeError]
_ConnectionLost: type[ConnectionLost]
# RequestReceived per request, without the frozen dataclass's keyword __init__
_received: Callable[[Any, Schema, Any, str], RequestReceived]
_AlertingSSLProtocol: type[Any] | None  # (_alerting_ssl_protocol(): for TLS connections)
_LAZY = frozenset({"PROTOCOL_SCHEMAS", "PAYLOAD_TYPES", "ISO20_SCHEMAS"})


def _bind() -> None:
    """Import the codec and the core's events and bind the module's names (see above);
    idempotent, safe in the settle thread while the loop runs."""
    global PROTOCOL_SCHEMAS, PAYLOAD_TYPES, ISO20_SCHEMAS, _APPHAND, _NAMES
    global _decode_checked, _encode, _DecodeError, _ConnectionLost, _received, _bound
    global _AlertingSSLProtocol
    if _bound:
        return
    from secc import codec
    from secc.core.construct import builder
    from secc.core.events import ConnectionLost, RequestReceived, Schema

    PROTOCOL_SCHEMAS = {
        "urn:iso:15118:2:2013:MsgDef": Schema.ISO2,
        "urn:din:70121:2012:MsgDef": Schema.DIN,
        # ISO 15118-20: whatever family was chosen, the session starts with CommonMessages
        "urn:iso:std:iso:15118:-20:AC": Schema.ISO20_COMMON,
        "urn:iso:std:iso:15118:-20:DC": Schema.ISO20_COMMON,
    }
    PAYLOAD_TYPES = {
        Schema.APPHAND: PayloadType.EXI,
        Schema.ISO2: PayloadType.EXI,
        Schema.DIN: PayloadType.EXI,
        Schema.ISO20_COMMON: PayloadType.ISO20_COMMON,
        Schema.ISO20_AC: PayloadType.ISO20_AC,
        Schema.ISO20_DC: PayloadType.ISO20_DC,
        Schema.ISO20_ACDP: PayloadType.ISO20_ACDP,
        Schema.ISO20_WPT: PayloadType.ISO20_WPT,
    }
    ISO20_SCHEMAS = {int(t): s for s, t in PAYLOAD_TYPES.items() if t is not PayloadType.EXI}
    _APPHAND = Schema.APPHAND
    _NAMES = {s: s.value for s in Schema}
    _decode_checked, _encode, _DecodeError = codec.decode_checked, codec.encode, codec.DecodeError
    _ConnectionLost = ConnectionLost
    _received = builder(RequestReceived, "message", "schema", "violations", "element")
    _AlertingSSLProtocol = _alerting_ssl_protocol()
    _bound = True


def __getattr__(name: str) -> Any:
    """PROTOCOL_SCHEMAS, PAYLOAD_TYPES, ISO20_SCHEMAS read before :func:`_bind` ran."""
    if name in _LAZY:
        _bind()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


READ_SIZE = 65536
# Requests up to this size are decoded on the event loop (every charging-loop message is
# a few hundred octets); larger ones in a worker thread, so that no input the V2GTP
# layer accepts holds the loop for longer than one interpreter switch interval (5 ms)
# at a time.  A lower payload limit is no way out: ISO 15118-20 lets an EV send
# ScheduleExchangeReq / PowerDeliveryReq with schedules of up to 1024 entries (beyond
# 64 kB at the schemas' bounds, bench/request_bound.py).  Dense 4 kB: about 8 ms here.
INLINE_DECODE_MAX = 4096
_EXI_ONLY = frozenset({int(PayloadType.EXI)})
_ISO20_TYPES = frozenset(
    int(t) for t in (PayloadType.ISO20_COMMON, PayloadType.ISO20_AC, PayloadType.ISO20_DC,
                     PayloadType.ISO20_ACDP, PayloadType.ISO20_WPT)
)  # fmt: skip


def negotiated_schema(request: Any, response: Any) -> Schema | None:
    """The schema a ``supportedAppProtocolRes`` selected from its request, or ``None``
    (Failed_NoNegotiation, no SchemaID, or a protocol this stack does not decode)."""
    if not _bound:
        _bind()
    if str(getattr(response, "response_code", "")).startswith("Failed"):
        return None
    schema_id = getattr(response, "schema_id", None)
    for protocol in getattr(request, "app_protocol", ()):
        if protocol.schema_id == schema_id:
            return PROTOCOL_SCHEMAS.get(protocol.protocol_namespace)
    return None


class SessionHandler(Protocol):
    """What the server calls for one connection (see the module docstring)."""

    async def request_received(self, conn: V2GConnection, event: RequestReceived) -> None: ...

    async def connection_lost(self, conn: V2GConnection, event: ConnectionLost) -> None: ...

    async def undecodable(
        self, conn: V2GConnection, payload: bytes, error: DecodeError
    ) -> None: ...


if TYPE_CHECKING:  # (a runtime alias with a forward reference compiles it: issue 17)
    HandlerFactory = Callable[["V2GConnection"], SessionHandler]


class V2GStream(asyncio.Protocol):
    """The protocol of one V2G connection (TCP, or the application side of asyncio's
    TLS transport): what arrives is kept for the connection's read loop, which takes it
    all at once (:meth:`read`); the transport's write back-pressure is followed for
    :meth:`V2GConnection.send`.  It does what ``asyncio.StreamReader`` and
    ``StreamWriter`` did here (the same end-of-stream, error, back-pressure and close
    semantics) with less work per message (issue 17): one buffer hand-over per read,
    no per-write drain call while the transport is not paused."""

    def __init__(self, over_ssl: bool = False) -> None:
        self._loop = asyncio.get_running_loop()
        self._over_ssl = over_ssl
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None  # the read loop, waiting
        self._eof = False
        self._exc: BaseException | None = None  # what connection_lost reported
        self._lost = False
        self._reading_paused = False
        self._writing_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._close_waiters: list[asyncio.Future[None]] = []

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (asyncio's and uvloop's TCP and TLS transports; _open checks it can write)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        # a peer that sends faster than its requests are handled: stop reading beyond
        # two reads' worth (as asyncio.StreamReader with limit=READ_SIZE did)
        if not self._reading_paused and len(self._buffer) > 2 * READ_SIZE:
            assert self.transport is not None
            try:
                self.transport.pause_reading()
            except NotImplementedError:
                pass  # (a transport that cannot pause: keep the data)
            else:
                self._reading_paused = True

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        # plain TCP: keep the transport half-open, the server closes it; TLS transports
        # close by themselves (asyncio warns if asked to keep them open)
        return not self._over_ssl

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if exc is None:
            self._eof = True
        else:
            self._exc = exc
        self._wake()
        for waiters in (self._drain_waiters, self._close_waiters):
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
            waiters.clear()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        for fut in self._drain_waiters:
            if not fut.done():
                fut.set_result(None)
        self._drain_waiters.clear()

    # --- the connection's side ----------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def read(self) -> bytes:
        """Everything received and not read yet (at least one octet), waiting for it;
        ``b""`` at the end of the stream; raises the error the connection ended with."""
        if self._exc is not None:
            raise self._exc
        while not self._buffer:
            if self._exc is not None:
                raise self._exc
            if self._eof:
                return b""
            if self._waiter is not None:
                raise RuntimeError("V2GStream.read: already waiting for data")
            waiter = self._waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        data = bytes(self._buffer)
        self._buffer.clear()
        if self._reading_paused:
            self._reading_paused = False
            assert self.transport is not None
            self.transport.resume_reading()
        return data

    async def drain(self) -> None:
        """After a write: raise the connection's error; wait while the transport's
        buffer is above its high-water mark (as ``asyncio.StreamWriter.drain``)."""
        if self._exc is not None:
            raise self._exc
        assert self.transport is not None
        if self.transport.is_closing():
            await asyncio.sleep(0)  # let connection_lost run
        if self._lost:
            raise ConnectionResetError("Connection lost")
        if not self._writing_paused:
            return
        fut = self._loop.create_future()
        self._drain_waiters.append(fut)
        await fut
        if self._exc is not None:  # (lost meanwhile: its error, none after a clean end)
            raise self._exc

    async def wait_closed(self) -> None:
        """Until ``connection_lost`` has been called."""
        if self._lost:
            return
        fut = self._loop.create_future()
        self._close_waiters.append(fut)
        await fut


class V2GConnection:
    """One accepted EV connection, as the session handler sees it."""

    def __init__(
        self,
        stream: V2GStream,
        peer: tuple[Any, ...],
        selection: Selection | None,
        hello: ClientHello | None,
        log_budget: LogBudget | None = None,
    ) -> None:
        if not _bound:  # (a connection before the post-ready binding: once)
            _bind()
        self._stream = stream
        self._transport = stream.transport if stream is not None else None
        self.peer = peer
        self.selection = selection  # the TLS chain served, None on plain TCP
        self.client_hello = hello  # the peeked ClientHello, if the server looked at it
        self.schema: Schema = _APPHAND  # the schema the next request is decoded with
        self.closed = False
        self.close_reason = ""
        self.last_payload = b""  # the EXI payload of the request being handled (traces)
        self.last_payload_type = int(PayloadType.EXI)
        # ISO 15118-20 mutual TLS: the EV's chain OpenSSL verified, leaf first, without
        # the trust anchor (empty: no client certificate, or TLS 1.2 / TCP)
        self.vehicle_chain: tuple[x509.Certificate, ...] = ()
        self._last_sap_request: Any = None
        # lines about the connection spend the EVSE's budget until the connection's
        # session claimed the EVSE (the driver sets ``log.exempt`` then)
        self.log_budget = log_budget
        self.log = BudgetedLog(log, {"peer": peer}, log_budget)

    @property
    def tls(self) -> bool:
        return self.selection is not None

    @property
    def tls_version(self) -> str | None:
        """The negotiated TLS version (``TLSv1.2``, ``TLSv1.3``), None on plain TCP."""
        ssl_object = self._extra("ssl_object")
        return None if ssl_object is None else ssl_object.version()

    @property
    def payload_types(self) -> frozenset[int]:
        """The V2GTP payload types accepted now: 0x8001 until ISO 15118-20 is
        negotiated, 0x8002-0x8006 after."""
        if self.schema in PAYLOAD_TYPES and PAYLOAD_TYPES[self.schema] is not PayloadType.EXI:
            return _ISO20_TYPES
        return _EXI_ONLY

    def schema_of(self, payload_type: int) -> Schema:
        """The schema a frame of ``payload_type`` is decoded with."""
        return ISO20_SCHEMAS.get(payload_type, self.schema)

    @property
    def sockname(self) -> tuple[Any, ...] | None:
        """The station's end of the connection (address, port, ...)."""
        name = self._extra("sockname")
        return tuple(name) if name is not None else None

    @property
    def cipher(self) -> tuple[str, str, int] | None:
        info = self._extra("cipher")
        return info if info is None else (str(info[0]), str(info[1]), int(info[2]))

    def _extra(self, name: str) -> Any:
        return None if self._transport is None else self._transport.get_extra_info(name)

    def input_waiting(self) -> int:
        """Octets the EV sent that the station has not read yet: kept by the stream for
        the read loop, or still in the kernel's receive queue.  The session driver asks
        when its deadline has passed, to handle a request that already came first (its
        own lateness is no silence of the EV: :class:`secc.aio.driver.SessionDriver`)."""
        import fcntl  # (only here, when a deadline ran out: not on the start path)
        import termios

        waiting = len(self._stream._buffer) if self._stream is not None else 0
        sock = self._extra("socket")
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                queued = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
                waiting += int.from_bytes(queued, sys.byteorder, signed=True)
        return waiting

    async def send(self, payload: bytes, payload_type: int = PayloadType.EXI) -> None:
        """Write one V2GTP message (header + payload) with one write."""
        if self.closed:
            raise ConnectionError(f"connection closed: {self.close_reason}")
        transport = self._transport
        assert transport is not None
        transport.write(encode_frame(payload, payload_type))
        stream = self._stream
        if stream._writing_paused or stream._lost or stream._exc is not None:
            await stream.drain()  # (else what drain would do is nothing)
        elif transport.is_closing():
            await stream.drain()

    async def send_message(self, message: object, schema: Schema | None = None) -> None:
        """Encode ``message`` with the codec and send it (with the payload type of
        ``schema``, 0x8001 when not given); a supportedAppProtocolRes switches
        :attr:`schema` to the negotiated protocol."""
        payload = _encode(message)
        if type(message).__name__ == "supportedAppProtocolRes":
            negotiated = negotiated_schema(self._last_sap_request, message)
            if negotiated is not None:
                self.schema = negotiated
        await self.send(payload, PayloadType.EXI if schema is None else PAYLOAD_TYPES[schema])

    async def close(self, reason: str) -> None:
        """Close the connection (no ``connection_lost`` call follows)."""
        self._mark_closed(reason)
        await self._shutdown()

    def _mark_closed(self, reason: str) -> bool:
        if self.closed:
            return False
        self.closed, self.close_reason = True, reason
        return True

    async def _shutdown(self) -> None:
        if self._transport is None:
            return
        self._transport.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            async with asyncio.timeout(2.0):
                await self._stream.wait_closed()


def _alerting_ssl_protocol() -> type[Any] | None:
    """asyncio's server-side TLS protocol, made to send OpenSSL's alert when the handshake
    fails: asyncio (3.11-3.13) closes the socket right after a failed handshake without
    writing out what OpenSSL put in the outgoing buffer, so an EV whose certificate the
    station refuses (mutual TLS 1.3) would see a bare EOF instead of the alert saying why
    (unknown_ca, certificate_expired, ...).  Built on asyncio's internal SSLProtocol; if
    that ever lacks the two methods used, None: the plain asyncio path (no alert)."""
    base = getattr(sslproto, "SSLProtocol", None)
    if base is None or not all(
        hasattr(base, name)
        for name in ("_on_handshake_complete", "_process_outgoing", "_get_app_transport")
    ):
        return None

    class AlertingSSLProtocol(base):  # type: ignore[misc, valid-type]
        def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
            if handshake_exc is not None:
                with contextlib.suppress(Exception):
                    self._process_outgoing()  # the alert, before asyncio closes
            super()._on_handshake_complete(handshake_exc)

    return AlertingSSLProtocol


async def _readable(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    loop.add_reader(sock.fileno(), ready)
    try:
        await fut
    finally:
        loop.remove_reader(sock.fileno())


async def peek_client_hello(sock: socket.socket) -> ClientHello:
    """Read the ClientHello at the start of ``sock`` without consuming it (MSG_PEEK;
    SO_RCVLOWAT makes the loop wait until the bytes it needs are there).  Raises
    :class:`ClientHelloError` or :class:`ConnectionError`; the caller bounds the time."""
    need = RECORD_HEADER
    try:
        while True:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, need)
            await _readable(sock)
            data = sock.recv(MAX_HELLO + 64 * RECORD_HEADER, socket.MSG_PEEK)
            if len(data) < need:  # readable below the low-water mark: end of stream
                raise ConnectionError(f"connection ended after {len(data)} ClientHello bytes")
            got = scan_client_hello(data)
            if isinstance(got, ClientHello):
                return got
            need = got.total
    finally:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)


# ISO 15118-2 wants the SECC's TCP port in the dynamic range [V2G2-???]; EVs drop SDP
# answers naming a lower port (seen with the iso15118 EVCC), and the kernel's ephemeral
# range on Linux starts at 32768, so port 0 is resolved here, not by the kernel.
DYNAMIC_PORTS = range(49152, 65536)
_PORT_TRIES = 64


def _listen_socket(host: str, port: int, interface: str | None) -> socket.socket:
    if port:
        return _bind_port(host, port, interface)
    for _ in range(_PORT_TRIES):
        try:
            return _bind_port(host, _random_port(), interface)
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, f"no free port in {DYNAMIC_PORTS} after {_PORT_TRIES} tries")


def _random_port() -> int:
    """A port of DYNAMIC_PORTS, each equally likely (os.urandom, rejection sampling:
    no ``random`` module before SDP-ready)."""
    n = len(DYNAMIC_PORTS)
    bits = (n - 1).bit_length()
    while True:
        r = int.from_bytes(os.urandom((bits + 7) // 8), "big") >> (-bits % 8)
        if r < n:
            return DYNAMIC_PORTS[r]


def _bind_port(host: str, port: int, interface: str | None) -> socket.socket:
    # (bytes: a str host is IDNA-encoded, which imports encodings.idna and stringprep)
    infos = socket.getaddrinfo(host.encode(), port, socket.AF_INET6, socket.SOCK_STREAM)
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if interface:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.bind(infos[0][4])
        sock.listen(8)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class V2GServer:
    """Asyncio TCP or TLS server for V2G sessions (see the module docstring).

    ``host`` is an IPv6 address, link-local with its scope (``fe80::1%eth1``) on a
    station, ``::1`` in tests; ``port`` 0 picks a free port in the dynamic range
    49152-65535 (read :attr:`port`).  ``tls=None`` serves plain TCP.
    """

    def __init__(
        self,
        handler_factory: HandlerFactory,
        *,
        host: str = "::1",
        port: int = 0,
        interface: str | None = None,
        tls: TlsSelector | None = None,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        handshake_timeout: float = 10.0,
        admission: Admission | None = None,
        accept_stall: float = 30.0,
    ) -> None:
        self._factory = handler_factory
        self._host, self._port, self._interface = host, port, interface
        self._tls = tls
        self._max_payload = max_payload
        self._handshake_timeout = handshake_timeout
        self._sock: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections: set[V2GConnection] = set()
        self._admission = admission or Admission()
        self._tickets: dict[asyncio.Task[Any], Ticket] = {}
        self._accept_stall = accept_stall
        self._accept_backoff = 0.05
        self.accept_failing_since: float | None = None  # loop time of the first failure
        # per-connection lines before a session claims the EVSE: rate-limited (a flood of
        # connects must not fill the journal), shared by the EVSE's servers
        self.log_budget = self._admission.log_budget
        self._log = BudgetedLog(log, {}, self.log_budget)

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("server not started")
        return int(self._sock.getsockname()[1])

    @property
    def sockname(self) -> tuple[Any, ...]:
        if self._sock is None:
            raise RuntimeError("server not started")
        return tuple(self._sock.getsockname())

    async def start(self) -> None:
        self._sock = _listen_socket(self._host, self._port, self._interface)
        if self._tls is None:
            log.info("V2G server on [%s]:%d: TCP without TLS", self._host, self.port)
        else:
            log.info(
                "V2G server on [%s]:%d: %s, SECC chain(s): %s",
                self._host,
                self.port,
                "TLS 1.2 and 1.3" if self._tls.tls13 and self._tls.chains else
                "TLS 1.3" if self._tls.tls13 else "TLS 1.2",
                ", ".join(self._tls.labels()),
            )  # fmt: skip
        self._accept_task = asyncio.create_task(self._accept_loop(), name="v2g-accept")

    async def __aenter__(self) -> V2GServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def serving(self) -> bool:
        """True while the accept loop runs and accepts (False before start, after close,
        if it died, or while accept() has failed for longer than ``accept_stall``)."""
        if self._accept_task is None or self._accept_task.done():
            return False
        since = self.accept_failing_since
        return since is None or asyncio.get_running_loop().time() - since < self._accept_stall

    async def aclose(self) -> None:
        if self._accept_task is not None:
            self._accept_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept_task
            self._accept_task = None
        if self._sock is not None:
            self._sock.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        while True:
            try:
                conn_sock, peer = await loop.sock_accept(self._sock)
            except OSError as exc:
                await self._accept_failed(exc)
                continue
            self.accept_failing_since = None
            task = asyncio.create_task(self._admitted(conn_sock, peer), name=f"v2g-{peer[0]}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _accept_failed(self, exc: OSError) -> None:
        """accept() failed (EMFILE, ENFILE, ENOBUFS, ENOMEM, ECONNABORTED, ...): never
        stop accepting; back off (50 ms doubling to 2 s) and retry.  Health turns false
        when it lasts (:attr:`serving`)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self.accept_failing_since is None:
            self.accept_failing_since = now
            self._accept_backoff = 0.05
            log.error("V2G server [%s]:%d: accept failed: %s; retrying", self._host, self.port, exc)
        else:
            self._accept_backoff = min(2.0, self._accept_backoff * 2)
        await asyncio.sleep(self._accept_backoff)

    async def _admitted(self, sock: socket.socket, peer: tuple[Any, ...]) -> None:
        """:meth:`_serve` under the EVSE's connection limits (:mod:`secc.aio.admission`)."""
        task = asyncio.current_task()
        assert task is not None
        ticket = self._admission.arrive(task, str(peer[0]), tls=self._tls is not None)
        if ticket is None:
            sock.close()
            return
        self._tickets[task] = ticket
        # asyncio drops the alert OpenSSL queues when a handshake fails: keep a second
        # descriptor of the socket to send one ourselves (secc.aio.admission.send_alert)
        ticket.spare = duplicate(sock) if self._tls is not None else None
        try:
            await self._serve(sock, peer)
        finally:
            self._tickets.pop(task, None)
            self._admission.leave(ticket)
            if ticket.spare is not None:
                send_alert(ticket.spare, ticket.handshake_error)
                ticket.spare = None

    def _setup_failed(self, exc: BaseException) -> None:
        task = asyncio.current_task()
        ticket = self._tickets.get(task) if task is not None else None
        if ticket is not None and isinstance(exc, ssl.SSLError):
            ticket.handshake_error = exc

    def _opened(self, handler: SessionHandler) -> None:
        task = asyncio.current_task()
        ticket = self._tickets.get(task) if task is not None else None
        if ticket is not None:
            self._admission.opened(ticket, lambda: bool(getattr(handler, "protected", False)))

    async def _open(
        self, sock: socket.socket, peer: tuple[Any, ...]
    ) -> tuple[V2GStream, Selection | None, ClientHello | None]:
        loop = asyncio.get_running_loop()
        selection: Selection | None = None
        hello: ClientHello | None = None
        if self._tls is not None:
            selection = self._tls.default
            if self._tls.needs_client_hello:
                try:
                    async with asyncio.timeout(self._handshake_timeout):
                        hello = await peek_client_hello(sock)
                    selection = self._tls.select(hello)
                except ClientHelloError as exc:
                    # not a TLS ClientHello: the handshake below fails and says so
                    self._log.warning("%s: unreadable ClientHello: %s", peer[0], exc)
            log.debug(
                "%s: serving chain %s (%s)", peer[0], selection.chain.label(), selection.reason
            )
        stream = V2GStream(over_ssl=selection is not None)
        if selection is not None and _AlertingSSLProtocol is not None:
            waiter: asyncio.Future[None] = loop.create_future()
            ssl_protocol = _AlertingSSLProtocol(
                loop,
                stream,
                selection.context,
                waiter,
                server_side=True,
                ssl_handshake_timeout=self._handshake_timeout,
            )
            raw, _ = await loop.connect_accepted_socket(lambda: ssl_protocol, sock)
            try:
                await waiter
            except BaseException:
                raw.close()
                raise
        else:
            await loop.connect_accepted_socket(
                lambda: stream,
                sock,
                ssl=selection.context if selection else None,
                ssl_handshake_timeout=self._handshake_timeout if selection else None,
            )
        # (the TLS application transport: set by connection_made after the handshake)
        assert isinstance(stream.transport, asyncio.WriteTransport)
        return stream, selection, hello

    async def _serve(self, sock: socket.socket, peer: tuple[Any, ...]) -> None:
        if not _bound:  # (a connection before the post-ready binding: once)
            _bind()
        try:
            stream, selection, hello = await self._open(sock, peer)
        except (OSError, ssl.SSLError, ConnectionError, TimeoutError) as exc:
            self._log.warning(
                "%s: connection refused during setup: %s", peer[0], exc or type(exc).__name__
            )
            self._setup_failed(exc)
            sock.close()
            return
        except asyncio.CancelledError:
            sock.close()
            raise
        conn = V2GConnection(stream, peer, selection, hello, self.log_budget)
        if selection is not None:
            conn.log.info("%s: TLS up, %s, chain %s", peer[0], conn.cipher, selection.chain.label())
            verified: tuple[x509.Certificate, ...] = ()
            if selection.tls13:
                try:
                    verified = verified_chain(conn._extra("ssl_object"))
                    conn.vehicle_chain = without_anchor(verified)
                except (ValueError, TypeError, AttributeError) as exc:  # fail closed
                    conn.log.warning(
                        "%s: cannot read the vehicle chain (%s): closing", peer[0], exc
                    )
                    conn._mark_closed("unreadable vehicle certificate chain")
                    await conn._shutdown()
                    return
                if conn.vehicle_chain:
                    conn.log.info(
                        "%s: vehicle certificate %s verified (%d certificate(s))",
                        peer[0],
                        conn.vehicle_chain[0].subject.rfc4514_string(),
                        len(conn.vehicle_chain),
                    )
            refusal = selection.refusal(conn.cipher, verified)
            if refusal is not None:  # a suite OpenSSL allows but the profile does not
                conn.log.warning("%s: %s; closing the connection", peer[0], refusal)
                conn._mark_closed(refusal)
                await conn._shutdown()
                return
        self.connections.add(conn)
        handler = self._factory(conn)
        self._opened(handler)
        reason = "peer closed the connection"
        try:
            reason = await self._read_loop(conn, handler, stream)
        except asyncio.CancelledError:
            reason = "server shutdown"
        except Exception:  # a handler bug must still end in connection_lost
            self._log.exception("%s: session handler failed", peer[0])
            reason = "internal error in the session handler"
        finally:
            self.connections.discard(conn)
            if conn._mark_closed(reason):
                await conn._shutdown()
                await asyncio.shield(handler.connection_lost(conn, _ConnectionLost(reason)))

    async def _read_loop(
        self, conn: V2GConnection, handler: SessionHandler, stream: V2GStream
    ) -> str:
        framer = Framer(self._max_payload, conn.payload_types)
        schema = conn.schema
        while not conn.closed:
            if conn.schema is not schema:  # the negotiated protocol's types
                schema = conn.schema
                framer.allow(conn.payload_types)
            try:
                data = await stream.read()
            except (OSError, ssl.SSLError) as exc:
                return f"connection error: {exc or type(exc).__name__}"
            if not data:
                try:
                    framer.close()
                except FramingError as exc:
                    return f"peer closed the connection inside a message ({exc.detail})"
                return "peer closed the connection"
            try:
                frames = framer.feed(data)
            except FramingError as exc:
                # ISO 15118-2 V2GTP handling: discard, close [V2G2-???]
                conn.log.warning("%s: %s; closing the connection", conn.peer[0], exc)
                return str(exc)
            for frame in frames:
                if conn.closed:
                    break
                await self._dispatch(conn, handler, frame.payload, frame.payload_type)
            if framer.failed is not None and not conn.closed:
                conn.log.warning("%s: %s; closing the connection", conn.peer[0], framer.failed)
                return str(framer.failed)
        return conn.close_reason

    async def _dispatch(
        self,
        conn: V2GConnection,
        handler: SessionHandler,
        payload: bytes,
        payload_type: int = PayloadType.EXI,
    ) -> None:
        schema = conn.schema_of(payload_type)
        conn.last_payload = payload
        conn.last_payload_type = payload_type
        try:
            if len(payload) <= INLINE_DECODE_MAX:
                root, message, violations = _decode_checked(payload, _NAMES[schema])
            else:  # a large request: decoded off the loop (the loop runs every 5 ms)
                loop = asyncio.get_running_loop()
                root, message, violations = await loop.run_in_executor(
                    None, _decode_checked, payload, schema.value
                )
        except _DecodeError as exc:
            conn.log.warning("%s: undecodable %s payload: %s", conn.peer[0], schema.value, exc)
            await handler.undecodable(conn, payload, exc)
            return
        if schema is _APPHAND:
            conn._last_sap_request = message
        await handler.request_received(conn, _received(message, schema, violations, root.local))
