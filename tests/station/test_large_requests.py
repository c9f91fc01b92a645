"""A large request does not hold the event loop while it is decoded (issue 17).

Requests above ``INLINE_DECODE_MAX`` octets are decoded in a worker thread: the loop
keeps turning (other EVSEs' sessions are answered) while a dense 60 kB message, about
0.1 s of decoding here, is read.  Counted, not timed: a ticker task counts the loop's
turns during the server's dispatch of the request.  Small requests (the charging loop's)
are decoded inline, with no thread hand-over.
"""

from __future__ import annotations

import asyncio
from typing import Any

from secc import codec
from secc.aio.v2g_server import INLINE_DECODE_MAX, V2GConnection, V2GServer
from secc.core.events import ConnectionLost, RequestReceived, Schema

iso2 = codec.schema_module("iso2")
ds = codec.schema_module("xmldsig")


def dense_request(xpaths: int) -> bytes:
    """A valid SessionStopReq whose header Signature holds one Reference with one
    Transform of ``xpaths`` empty XPath elements (the schema leaves them unbounded): about
    1.5 octets per element, each a full grammar step for the decoder."""
    transform = ds.Transform(
        algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116", x_path=("",) * xpaths
    )
    ref = ds.Reference(
        uri="#id1",
        transforms=ds.Transforms(transform=(transform,)),
        digest_method=ds.DigestMethod(algorithm="http://www.w3.org/2001/04/xmlenc#sha256"),
        digest_value=bytes(32),
    )
    signature = ds.Signature(
        signed_info=ds.SignedInfo(
            canonicalization_method=ds.CanonicalizationMethod(
                algorithm="http://www.w3.org/TR/canonical-exi/"
            ),
            signature_method=ds.SignatureMethod(
                algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
            ),
            reference=(ref,),
        ),
        signature_value=ds.SignatureValue(value=bytes(64)),
    )
    msg = iso2.V2G_Message(
        header=iso2.MessageHeader(session_id=bytes(8), signature=signature),
        body=iso2.Body(
            body_element=iso2.SessionStopReq(charging_session=iso2.ChargingSession.Terminate)
        ),
    )
    return codec.encode(msg)


class Recorder:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def request_received(self, conn: V2GConnection, event: RequestReceived) -> None:
        self.messages.append(event.message)

    async def connection_lost(self, conn: V2GConnection, event: ConnectionLost) -> None:
        pass

    async def undecodable(self, conn: V2GConnection, payload: bytes, error: Any) -> None:
        self.messages.append(error)


async def turns_during_dispatch(payload: bytes) -> tuple[int, Recorder]:
    """The event loop's turns (a ticker task's steps) while the server dispatches one
    request of ``payload`` on a connection that speaks ISO 15118-2."""
    recorder = Recorder()
    server = V2GServer(lambda conn: recorder)
    conn = V2GConnection(None, ("::1", 50000), None, None)  # type: ignore[arg-type]
    conn.schema = Schema.ISO2
    ticks = 0
    running = True

    async def ticker() -> None:
        nonlocal ticks
        while running:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    await server._dispatch(conn, recorder, payload)
    during = ticks - before
    running = False
    await task
    return during, recorder


def test_a_large_dense_request_lets_the_loop_turn_while_it_is_decoded() -> None:
    payload = dense_request(40_000)
    assert 50_000 < len(payload) <= 65_536
    turns, recorder = asyncio.run(turns_during_dispatch(payload))
    (message,) = recorder.messages
    assert message == codec.decode(payload, "iso2")
    assert turns > 0


def test_a_small_request_is_decoded_inline() -> None:
    payload = dense_request(10)
    assert len(payload) <= INLINE_DECODE_MAX
    turns, recorder = asyncio.run(turns_during_dispatch(payload))
    (message,) = recorder.messages
    assert message == codec.decode(payload, "iso2")
    assert turns == 0


def test_an_undecodable_large_request_is_reported_as_before() -> None:
    payload = dense_request(40_000)
    broken = payload[:-200]  # cut short
    _turns, recorder = asyncio.run(turns_during_dispatch(broken))
    (error,) = recorder.messages
    assert isinstance(error, codec.DecodeError)
