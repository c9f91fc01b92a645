"""The V2G server's one-time binding (issue 17): the codec and the core's events load
after SDP-ready, bound once (secc.aio.v2g_server._bind); a connection that comes before
the post-ready step is served all the same, with the very objects the generic path uses;
port 0 is chosen without the ``random`` module, each dynamic port equally likely."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from asyncio import sslproto

import pytest

from secc import codec
from secc.codec._generated import apphand
from secc.core.events import Schema
from tests.runtime.v2gpeer import SAP_FRAME, SAP_REQ


def _run(code: str) -> list[str]:
    """``code`` in a fresh interpreter (nothing bound, nothing imported yet)."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.split()


def test_a_connection_before_the_binding_is_served() -> None:
    """A car that connects before ``secc run``'s post-ready step (nothing bound, no codec
    loaded) is answered; its connection binds the server's names once."""
    out = _run(
        f"""
        import asyncio, socket, sys
        import secc.aio.v2g_server as v

        def loaded():
            return [m for m in ("secc.codec", "secc.core.events", "random")
                    if m in sys.modules]

        class Answer:  # supportedAppProtocolReq -> ISO 15118-2, SchemaID 7
            def __init__(self, conn):
                self.events = []

            async def request_received(self, conn, event):
                from secc.codec._generated import apphand

                self.events.append(event)
                await conn.send_message(apphand.supportedAppProtocolRes(
                    response_code=apphand.ResponseCode.OK_SuccessfulNegotiation,
                    schema_id=7))

            async def connection_lost(self, conn, event):
                pass

            async def undecodable(self, conn, payload, error):
                pass

        async def main():
            handlers = []

            def factory(conn):
                handlers.append(Answer(conn))
                return handlers[-1]

            async with v.V2GServer(factory) as server:
                print("before", v._bound, loaded() or "-")
                reader, writer = await asyncio.open_connection("::1", server.port)
                writer.write(bytes.fromhex({SAP_FRAME.hex()!r}))
                header = await asyncio.wait_for(reader.readexactly(8), 20)
                payload = await asyncio.wait_for(
                    reader.readexactly(int.from_bytes(header[4:], "big")), 20)
                (event,) = handlers[0].events
                (conn,) = server.connections
                print("after", v._bound, header[:4].hex(), payload.hex())
                print("event", event.schema.value, type(event.message).__name__,
                      event.element, event.violations == ())
                print("schema", conn.schema.value)
                writer.close()

        asyncio.run(main())
        """
    )
    assert out[:3] == ["before", "False", "-"]
    assert out[3:5] == ["after", "True"]
    assert out[5] == "01fe8001"  # V2GTP 1, EXI
    res = codec.decode(bytes.fromhex(out[6]), "apphand")
    assert res == apphand.supportedAppProtocolRes(
        response_code=apphand.ResponseCode.OK_SuccessfulNegotiation, schema_id=7
    )
    assert out[7:] == [
        "event",
        Schema.APPHAND.value,
        "supportedAppProtocolReq",
        "supportedAppProtocolReq",
        "True",
        "schema",
        Schema.ISO2.value,
    ]


def test_the_tables_read_from_outside_bind_once() -> None:
    """``from secc.aio.v2g_server import PAYLOAD_TYPES`` (the driver, in ``secc run``'s
    post-ready step) binds; an unknown name is still an AttributeError; importing the
    module loads none of it."""
    out = _run(
        """
        import sys
        import secc.aio.v2g_server as v

        print(v._bound, "secc.codec" in sys.modules, "secc.core.events" in sys.modules)
        import secc.aio.driver
        print(v._bound, "secc.codec" in sys.modules)
        try:
            v.NO_SUCH_NAME
        except AttributeError as exc:
            print("AttributeError", "NO_SUCH_NAME" in str(exc))
        """
    )
    assert out == ["False", "False", "False", "True", "True", "AttributeError", "True"]


def test_the_bound_names_are_the_generic_objects() -> None:
    """What the per-message path reads is what it read before the binding: the codec's
    functions, the core's classes, the same tables."""
    import secc.aio.v2g_server as v
    from secc.core.events import ConnectionLost, RequestReceived
    from secc.v2gtp import PayloadType

    v._bind()  # (bound already in this process, or now: once)
    before = {name: getattr(v, name) for name in ("_received", "_AlertingSSLProtocol")}
    v._bind()
    assert {name: getattr(v, name) for name in before} == before
    assert v._decode_checked is codec.decode_checked
    assert v._encode is codec.encode
    assert v._DecodeError is codec.DecodeError
    assert v._ConnectionLost is ConnectionLost
    assert v._APPHAND is Schema.APPHAND
    assert v._AlertingSSLProtocol is not None
    assert issubclass(v._AlertingSSLProtocol, sslproto.SSLProtocol)
    assert {s: s.value for s in Schema} == v._NAMES
    assert v.PROTOCOL_SCHEMAS == {
        "urn:iso:15118:2:2013:MsgDef": Schema.ISO2,
        "urn:din:70121:2012:MsgDef": Schema.DIN,
        "urn:iso:std:iso:15118:-20:AC": Schema.ISO20_COMMON,
        "urn:iso:std:iso:15118:-20:DC": Schema.ISO20_COMMON,
    }
    assert {
        int(PayloadType.ISO20_COMMON): Schema.ISO20_COMMON,
        int(PayloadType.ISO20_AC): Schema.ISO20_AC,
        int(PayloadType.ISO20_DC): Schema.ISO20_DC,
        int(PayloadType.ISO20_ACDP): Schema.ISO20_ACDP,
        int(PayloadType.ISO20_WPT): Schema.ISO20_WPT,
    } == v.ISO20_SCHEMAS
    built = v._received(SAP_REQ, Schema.APPHAND, (), "supportedAppProtocolReq")
    assert type(built) is RequestReceived
    assert built == RequestReceived(
        message=SAP_REQ,
        schema=Schema.APPHAND,
        violations=(),
        element="supportedAppProtocolReq",
    )


def test_port_zero_picks_every_dynamic_port_equally(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every value os.urandom can give maps to a port of 49152-65535, each port reached
    by equally many of them (exactly uniform, no ``random``)."""
    from secc.aio.v2g_server import DYNAMIC_PORTS, _random_port

    draws = iter(range(1 << 16))
    sizes: set[int] = set()

    def urandom(n: int) -> bytes:
        sizes.add(n)
        return next(draws).to_bytes(n, "big")

    monkeypatch.setattr(os, "urandom", urandom)
    counts: dict[int, int] = {}
    for _ in range(1 << 16):
        port = _random_port()
        counts[port] = counts.get(port, 0) + 1
    assert sizes == {2}
    assert set(counts) == set(DYNAMIC_PORTS)
    assert set(counts.values()) == {(1 << 16) // len(DYNAMIC_PORTS)}
