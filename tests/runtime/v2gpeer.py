"""The SECC-side test handler and EV-side messages shared by the V2G server tests."""

from __future__ import annotations

import asyncio

from secc import codec
from secc.aio.v2g_server import V2GConnection
from secc.codec._generated import apphand, iso2
from secc.core.events import ConnectionLost, RequestReceived
from secc.v2gtp import Framer, encode_frame

ISO2_NS = "urn:iso:15118:2:2013:MsgDef"
DIN_NS = "urn:din:70121:2012:MsgDef"

SAP_REQ = apphand.supportedAppProtocolReq(
    app_protocol=(
        apphand.AppProtocol(
            protocol_namespace=DIN_NS,
            version_number_major=2,
            version_number_minor=0,
            schema_id=1,
            priority=2,
        ),
        apphand.AppProtocol(
            protocol_namespace=ISO2_NS,
            version_number_major=2,
            version_number_minor=0,
            schema_id=7,
            priority=1,
        ),
    )
)
SESSION_SETUP_REQ = iso2.V2G_Message(
    header=iso2.MessageHeader(session_id=b"\x00"),
    body=iso2.Body(body_element=iso2.SessionSetupReq(evccid=b"\x02\x00\x00\x00\x00\x01")),
)
SAP_FRAME = encode_frame(codec.encode(SAP_REQ))
SETUP_FRAME = encode_frame(codec.encode(SESSION_SETUP_REQ))


class Recorder:
    """Answers supportedAppProtocolReq with ISO 15118-2 (SchemaID 7) and SessionSetupReq
    with OK_NewSessionEstablished; records everything the server tells it."""

    def __init__(self, conn: V2GConnection) -> None:
        self.conn = conn
        self.requests: list[RequestReceived] = []
        self.lost: list[ConnectionLost] = []
        self.undecodable_payloads: list[bytes] = []
        self.ended = asyncio.Event()

    async def request_received(self, conn: V2GConnection, event: RequestReceived) -> None:
        self.requests.append(event)
        msg = event.message
        if isinstance(msg, apphand.supportedAppProtocolReq):
            await conn.send_message(
                apphand.supportedAppProtocolRes(
                    response_code=apphand.ResponseCode.OK_SuccessfulNegotiation, schema_id=7
                )
            )
        elif isinstance(msg, iso2.V2G_Message) and isinstance(
            msg.body.body_element, iso2.SessionSetupReq
        ):
            await conn.send_message(
                iso2.V2G_Message(
                    header=iso2.MessageHeader(session_id=b"\x01\x02\x03\x04\x05\x06\x07\x08"),
                    body=iso2.Body(
                        body_element=iso2.SessionSetupRes(
                            response_code=iso2.ResponseCode.OK_NewSessionEstablished,
                            evseid="DE*ABC*E1",
                        )
                    ),
                )
            )
        elif isinstance(msg, iso2.V2G_Message) and isinstance(
            msg.body.body_element, iso2.SessionStopReq
        ):
            await conn.close("session stop")
            self.ended.set()

    async def connection_lost(self, conn: V2GConnection, event: ConnectionLost) -> None:
        self.lost.append(event)
        self.ended.set()

    async def undecodable(
        self, conn: V2GConnection, payload: bytes, error: codec.DecodeError
    ) -> None:
        self.undecodable_payloads.append(payload)
        await conn.close("undecodable")
        self.ended.set()


class Handlers:
    """Handler factory remembering every handler it made."""

    def __init__(self) -> None:
        self.made: list[Recorder] = []
        self.new = asyncio.Event()

    def __call__(self, conn: V2GConnection) -> Recorder:
        handler = Recorder(conn)
        self.made.append(handler)
        self.new.set()
        return handler

    async def first(self) -> Recorder:
        await asyncio.wait_for(self.new.wait(), 5)
        return self.made[0]


async def read_frames(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    framer = Framer()
    out: list[bytes] = []
    while len(out) < count:
        data = await asyncio.wait_for(reader.read(65536), 5)
        if not data:
            break
        out += [f.payload for f in framer.feed(data)]
    return out
