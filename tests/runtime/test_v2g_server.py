"""secc.aio.v2g_server over real TCP sockets on loopback: framing, schema switching,
negative V2GTP handling, connection loss reporting (TLS is in test_tls.py)."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from secc import codec
from secc.aio.v2g_server import V2GConnection, V2GServer, negotiated_schema
from secc.codec._generated import apphand, iso2
from secc.core.events import Schema
from secc.v2gtp import encode_frame, encode_header
from tests.runtime.v2gpeer import SAP_FRAME, SAP_REQ, SETUP_FRAME, Handlers, read_frames

STOP_FRAME = encode_frame(
    codec.encode(
        iso2.V2G_Message(
            header=iso2.MessageHeader(session_id=b"\x01\x02\x03\x04\x05\x06\x07\x08"),
            body=iso2.Body(
                body_element=iso2.SessionStopReq(charging_session=iso2.ChargingSession.Terminate)
            ),
        )
    )
)


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(main(), 20)

    return asyncio.run(bounded())


async def connect(server: V2GServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("::1", server.port)


async def expect_eof(reader: asyncio.StreamReader) -> None:
    assert await asyncio.wait_for(reader.read(100), 5) == b""


def test_tcp_session_switches_from_apphand_to_the_negotiated_schema() -> None:
    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(handlers) as server:
            reader, writer = await connect(server)
            writer.write(SAP_FRAME)
            (sap_res,) = await read_frames(reader, 1)
            res = codec.decode(sap_res, "apphand")
            assert res == apphand.supportedAppProtocolRes(
                response_code=apphand.ResponseCode.OK_SuccessfulNegotiation, schema_id=7
            )
            writer.write(SETUP_FRAME)
            (setup_res,) = await read_frames(reader, 1)
            body = codec.decode(setup_res, "iso2").body.body_element
            assert isinstance(body, iso2.SessionSetupRes)
            assert body.response_code is iso2.ResponseCode.OK_NewSessionEstablished
            writer.write(STOP_FRAME)  # the handler closes: no connection_lost follows
            await expect_eof(reader)
            handler = await handlers.first()
            await asyncio.wait_for(handler.ended.wait(), 5)
            assert [e.schema for e in handler.requests] == [
                Schema.APPHAND,
                Schema.ISO2,
                Schema.ISO2,
            ]
            assert handler.lost == []
            assert handler.conn.closed and handler.conn.close_reason == "session stop"
            assert not handler.conn.tls
            writer.close()

    run(main)


def test_split_frames_are_reassembled() -> None:
    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(handlers) as server:
            reader, writer = await connect(server)
            writer.transport.get_extra_info("socket").setsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
            )
            for i in range(len(SAP_FRAME)):
                writer.write(SAP_FRAME[i : i + 1])
                await writer.drain()
                await asyncio.sleep(0.002)
            (res,) = await read_frames(reader, 1)
            assert codec.decode(res, "apphand").schema_id == 7
            handler = await handlers.first()
            assert len(handler.requests) == 1
            writer.close()

    run(main)


def test_coalesced_frames_are_answered_in_order_each_in_one_write() -> None:
    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(handlers) as server:
            reader, writer = await connect(server)
            writer.write(SAP_FRAME + SETUP_FRAME)  # one segment, two messages
            sap_res, setup_res = await read_frames(reader, 2)
            assert codec.decode(sap_res, "apphand").schema_id == 7
            assert isinstance(
                codec.decode(setup_res, "iso2").body.body_element, iso2.SessionSetupRes
            )
            handler = await handlers.first()
            assert [e.schema for e in handler.requests] == [Schema.APPHAND, Schema.ISO2]
            writer.close()

    run(main)


def _check_closed_with(header: bytes, fragment: str, max_payload: int = 100) -> None:
    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(handlers, max_payload=max_payload) as server:
            reader, writer = await connect(server)
            writer.write(header)  # the header alone: the payload never needs to arrive
            await expect_eof(reader)
            handler = await handlers.first()
            await asyncio.wait_for(handler.ended.wait(), 5)
            assert handler.requests == []
            (lost,) = handler.lost
            assert fragment in lost.reason
            writer.close()

    run(main)


def test_oversized_length_field_closes_the_connection() -> None:
    _check_closed_with(encode_header(0x8001, 101), "payload length 101 above the maximum 100")


def test_huge_length_field_closes_the_connection() -> None:
    _check_closed_with(encode_header(0x8001, 0xFFFFFFFF), "payload length")


def test_bad_version_closes_the_connection() -> None:
    _check_closed_with(b"\x02\xfd\x80\x01\x00\x00\x00\x01", "protocol version")


def test_sdp_payload_type_on_the_stream_closes_the_connection() -> None:
    _check_closed_with(encode_header(0x9000, 2) + b"\x00\x00", "payload type 0x9000")


def test_bad_frame_after_a_good_one_is_answered_then_closed() -> None:
    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(handlers, max_payload=100) as server:
            reader, writer = await connect(server)
            writer.write(SAP_FRAME + encode_header(0xA000, 1) + b"x")
            (res,) = await read_frames(reader, 1)
            assert codec.decode(res, "apphand").schema_id == 7
            await expect_eof(reader)
            handler = await handlers.first()
            await asyncio.wait_for(handler.ended.wait(), 5)
            assert len(handler.requests) == 1 and "payload type 0xa000" in handler.lost[0].reason
            writer.close()

    run(main)


def test_peer_reset_is_reported_as_connection_lost() -> None:
    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(handlers) as server:
            reader, writer = await connect(server)
            writer.write(SAP_FRAME)
            await read_frames(reader, 1)
            sock = writer.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()  # RST, not FIN
            handler = await handlers.first()
            await asyncio.wait_for(handler.ended.wait(), 5)
            (lost,) = handler.lost
            assert "Connection reset by peer" in lost.reason
            assert handler.conn.closed

    run(main)


def test_peer_closing_inside_a_message_is_reported() -> None:
    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(handlers) as server:
            _reader, writer = await connect(server)
            writer.write(SAP_FRAME[:12])
            await writer.drain()
            writer.close()
            handler = await handlers.first()
            await asyncio.wait_for(handler.ended.wait(), 5)
            assert "inside a message" in handler.lost[0].reason
            assert handler.requests == []

    run(main)


def test_undecodable_payload_goes_to_the_handler() -> None:
    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(handlers) as server:
            reader, writer = await connect(server)
            writer.write(encode_frame(b"\x80\xff\xff\xff"))
            await expect_eof(reader)
            handler = await handlers.first()
            assert handler.undecodable_payloads == [b"\x80\xff\xff\xff"]
            assert handler.lost == [] and handler.conn.close_reason == "undecodable"
            writer.close()

    run(main)


def test_server_shutdown_reports_connection_lost() -> None:
    async def main() -> None:
        handlers = Handlers()
        server = V2GServer(handlers)
        await server.start()
        reader, writer = await connect(server)
        writer.write(SAP_FRAME)
        await read_frames(reader, 1)
        handler = await handlers.first()
        await server.aclose()
        assert [e.reason for e in handler.lost] == ["server shutdown"]
        await expect_eof(reader)
        writer.close()

    run(main)


def test_handler_failure_ends_the_connection_with_connection_lost() -> None:
    class Broken(Handlers):
        def __call__(self, conn: V2GConnection) -> Any:
            handler = super().__call__(conn)

            async def boom(conn: V2GConnection, event: object) -> None:
                raise KeyError("bug")

            handler.request_received = boom  # type: ignore[method-assign]
            return handler

    async def main() -> None:
        handlers = Broken()
        async with V2GServer(handlers) as server:
            reader, writer = await connect(server)
            writer.write(SAP_FRAME)
            await expect_eof(reader)
            handler = await handlers.first()
            assert [e.reason for e in handler.lost] == ["internal error in the session handler"]
            writer.close()

    run(main)


def test_several_connections_are_served_concurrently() -> None:
    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(handlers) as server:
            pairs = [await connect(server) for _ in range(3)]
            for _, writer in pairs:
                writer.write(SAP_FRAME)
            for reader, writer in pairs:
                (res,) = await read_frames(reader, 1)
                assert codec.decode(res, "apphand").schema_id == 7
                writer.close()
            assert len(handlers.made) == 3

    run(main)


def test_negotiated_schema() -> None:
    ok = apphand.ResponseCode.OK_SuccessfulNegotiation
    assert (
        negotiated_schema(SAP_REQ, apphand.supportedAppProtocolRes(response_code=ok, schema_id=7))
        is Schema.ISO2
    )
    assert (
        negotiated_schema(SAP_REQ, apphand.supportedAppProtocolRes(response_code=ok, schema_id=1))
        is Schema.DIN
    )
    assert (
        negotiated_schema(SAP_REQ, apphand.supportedAppProtocolRes(response_code=ok, schema_id=9))
        is None
    )
    failed = apphand.ResponseCode.Failed_NoNegotiation
    assert negotiated_schema(SAP_REQ, apphand.supportedAppProtocolRes(response_code=failed)) is None
    assert (
        negotiated_schema(None, apphand.supportedAppProtocolRes(response_code=ok, schema_id=7))
        is None
    )


def test_port_zero_is_in_the_dynamic_range() -> None:
    """EVs drop SDP answers naming a port below 49152: port 0 is chosen in 49152-65535."""
    from secc.aio.v2g_server import DYNAMIC_PORTS, _listen_socket

    socks = [_listen_socket("::1", 0, None) for _ in range(20)]
    try:
        ports = {s.getsockname()[1] for s in socks}
        assert all(p in DYNAMIC_PORTS for p in ports)
        assert len(ports) == 20
    finally:
        for s in socks:
            s.close()
