"""ISO 15118-20 payload types on a real loopback connection (secc.aio.v2g_server).

ISO 15118-20 Table 13: the appHandshake travels as 0x8001; after it selected -20 the
messages travel as 0x8002 (CommonMessages), 0x8003 (AC), 0x8004 (DC), 0x8005 (ACDP),
0x8006 (WPT), each decoded with its own schema.  A -20 type before the handshake chose
-20 is a payload type the receiver does not support: the message is discarded and the
connection closed (V2GTP handling), as is a 0x8001 frame once -20 runs.
"""

from __future__ import annotations

import asyncio

from secc import codec
from secc.aio.v2g_server import PAYLOAD_TYPES, V2GConnection, V2GServer, negotiated_schema
from secc.codec._generated import apphand, iso20_common, iso20_dc
from secc.core.events import ConnectionLost, RequestReceived, Schema
from secc.v2gtp import Framer, PayloadType, encode_frame
from tests.runtime.test_v2g_server import connect, expect_eof, run

ISO20_DC_NS = "urn:iso:std:iso:15118:-20:DC"
ISO2_NS = "urn:iso:15118:2:2013:MsgDef"
SESSION = b"\x11\x22\x33\x44\x55\x66\x77\x88"

SAP_20 = apphand.supportedAppProtocolReq(
    app_protocol=(
        apphand.AppProtocol(
            protocol_namespace=ISO20_DC_NS,
            version_number_major=1,
            version_number_minor=0,
            schema_id=3,
            priority=1,
        ),
        apphand.AppProtocol(
            protocol_namespace=ISO2_NS,
            version_number_major=2,
            version_number_minor=0,
            schema_id=7,
            priority=2,
        ),
    )
)
SETUP_20 = iso20_common.SessionSetupReq(
    header=iso20_common.MessageHeader(session_id=b"\x00", time_stamp=1_700_000_000),
    evccid="WMIV1234567890ABC",
)
CABLE_CHECK = iso20_dc.DC_CableCheckReq(
    header=iso20_dc.MessageHeader(session_id=SESSION, time_stamp=1_700_000_001)
)
STOP_20 = iso20_common.SessionStopReq(
    header=iso20_common.MessageHeader(session_id=SESSION, time_stamp=1_700_000_002),
    charging_session=iso20_common.ChargingSession.Terminate,
)


class Iso20Peer:
    """SECC-side handler that selects -20 DC (SchemaID 3) and answers like a -20 session:
    SessionSetupRes as CommonMessages, DC_CableCheckRes as DC."""

    def __init__(self, conn: V2GConnection) -> None:
        self.conn = conn
        self.requests: list[RequestReceived] = []
        self.lost: list[ConnectionLost] = []
        self.ended = asyncio.Event()

    async def request_received(self, conn: V2GConnection, event: RequestReceived) -> None:
        self.requests.append(event)
        msg = event.message
        if isinstance(msg, apphand.supportedAppProtocolReq):
            await conn.send_message(
                apphand.supportedAppProtocolRes(
                    response_code=apphand.ResponseCode.OK_SuccessfulNegotiation, schema_id=3
                ),
                Schema.APPHAND,
            )
        elif isinstance(msg, iso20_common.SessionSetupReq):
            await conn.send_message(
                iso20_common.SessionSetupRes(
                    header=iso20_common.MessageHeader(session_id=SESSION, time_stamp=1),
                    response_code=iso20_common.ResponseCode.OK_NewSessionEstablished,
                    evseid="DE*ABC*E1234567*1",
                ),
                Schema.ISO20_COMMON,
            )
        elif isinstance(msg, iso20_dc.DC_CableCheckReq):
            await conn.send_message(
                iso20_dc.DC_CableCheckRes(
                    header=iso20_dc.MessageHeader(session_id=SESSION, time_stamp=2),
                    response_code=iso20_dc.ResponseCode.OK,
                    evse_processing=iso20_dc.Processing.Finished,
                ),
                Schema.ISO20_DC,
            )
        elif isinstance(msg, iso20_common.SessionStopReq):
            await conn.close("session stop")
            self.ended.set()

    async def connection_lost(self, conn: V2GConnection, event: ConnectionLost) -> None:
        self.lost.append(event)
        self.ended.set()

    async def undecodable(
        self, conn: V2GConnection, payload: bytes, error: codec.DecodeError
    ) -> None:
        await conn.close("undecodable")
        self.ended.set()


class Made:
    def __init__(self) -> None:
        self.made: list[Iso20Peer] = []

    def __call__(self, conn: V2GConnection) -> Iso20Peer:
        self.made.append(Iso20Peer(conn))
        return self.made[-1]


async def read_typed(reader: asyncio.StreamReader, count: int) -> list[tuple[int, bytes]]:
    """Frames with their payload types, as an EV reads them (every -20 type accepted)."""
    framer = Framer(allowed_types=list(PayloadType))
    out: list[tuple[int, bytes]] = []
    while len(out) < count:
        data = await asyncio.wait_for(reader.read(65536), 5)
        if not data:
            break
        out += [(f.payload_type, f.payload) for f in framer.feed(data)]
    return out


def test_each_response_travels_with_the_payload_type_of_its_schema() -> None:
    async def main() -> None:
        made = Made()
        async with V2GServer(made) as server:
            reader, writer = await connect(server)
            writer.write(encode_frame(codec.encode(SAP_20)))
            ((ptype, sap_res),) = await read_typed(reader, 1)
            assert ptype == 0x8001
            assert codec.decode(sap_res, "apphand").schema_id == 3
            writer.write(encode_frame(codec.encode(SETUP_20), 0x8002))
            ((ptype, setup_res),) = await read_typed(reader, 1)
            assert ptype == 0x8002
            assert isinstance(codec.decode(setup_res, "iso20-common"), iso20_common.SessionSetupRes)
            writer.write(encode_frame(codec.encode(CABLE_CHECK), 0x8004))
            ((ptype, cable_res),) = await read_typed(reader, 1)
            assert ptype == 0x8004
            assert isinstance(codec.decode(cable_res, "iso20-dc"), iso20_dc.DC_CableCheckRes)
            writer.write(encode_frame(codec.encode(STOP_20), 0x8002))
            await expect_eof(reader)
            (peer,) = made.made
            await asyncio.wait_for(peer.ended.wait(), 5)
            assert [e.schema for e in peer.requests] == [
                Schema.APPHAND,
                Schema.ISO20_COMMON,
                Schema.ISO20_DC,
                Schema.ISO20_COMMON,
            ]
            assert peer.lost == []
            writer.close()

    run(main)


def _refused(frames: list[bytes], answers: int, fragment: str) -> None:
    async def main() -> None:
        made = Made()
        async with V2GServer(made) as server:
            reader, writer = await connect(server)
            for frame in frames[:-1]:
                writer.write(frame)
                await read_typed(reader, 1)
            writer.write(frames[-1])
            await expect_eof(reader)
            (peer,) = made.made
            await asyncio.wait_for(peer.ended.wait(), 5)
            assert len(peer.requests) == answers
            (lost,) = peer.lost
            assert fragment in lost.reason
            writer.close()

    run(main)


def test_an_iso20_frame_before_the_handshake_selected_iso20_is_refused() -> None:
    # the first frame of a connection: only the appHandshake's 0x8001 is known yet
    _refused([encode_frame(codec.encode(SETUP_20), 0x8002)], 0, "payload type 0x8002")


def test_a_0x8001_frame_after_iso20_was_negotiated_is_refused() -> None:
    frames = [
        encode_frame(codec.encode(SAP_20)),
        encode_frame(codec.encode(SETUP_20), 0x8002),
        encode_frame(codec.encode(CABLE_CHECK)),  # DC message in the SAP/-2 payload type
    ]
    _refused(frames, 2, "payload type 0x8001")


def test_reserved_types_stay_refused_after_iso20() -> None:
    frames = [
        encode_frame(codec.encode(SAP_20)),
        encode_frame(codec.encode(SETUP_20), 0x8002),
        encode_frame(codec.encode(CABLE_CHECK), 0x8101),  # ScheduleRenegotiation: not served
    ]
    _refused(frames, 2, "payload type 0x8101")


def test_schema_and_payload_type_tables() -> None:
    ok = apphand.ResponseCode.OK_SuccessfulNegotiation
    res = apphand.supportedAppProtocolRes(response_code=ok, schema_id=3)
    assert negotiated_schema(SAP_20, res) is Schema.ISO20_COMMON
    assert {s: int(t) for s, t in PAYLOAD_TYPES.items()} == {
        Schema.APPHAND: 0x8001,
        Schema.ISO2: 0x8001,
        Schema.DIN: 0x8001,
        Schema.ISO20_COMMON: 0x8002,
        Schema.ISO20_AC: 0x8003,
        Schema.ISO20_DC: 0x8004,
        Schema.ISO20_ACDP: 0x8005,
        Schema.ISO20_WPT: 0x8006,
    }
