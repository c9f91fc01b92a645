"""Issue 15: the admission policy of an EVSE's V2G servers (secc.aio.admission), on
loopback with real sockets and TLS: pending TLS handshakes beyond ``max_handshakes``
drop the oldest pending one (a real EV's handshake still gets in); connections beyond
``max_connections`` drop the oldest one without a running session; a running session is
never dropped, and when every slot holds one the newcomer is refused."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from secc.aio.admission import Admission
from secc.aio.tls import TlsSelector
from secc.aio.v2g_server import V2GConnection, V2GServer
from secc.limits import Limits
from tests.runtime.conftest import Pki
from tests.runtime.tlsclient import python_client
from tests.runtime.v2gpeer import SAP_FRAME, SETUP_FRAME, Handlers, Recorder, read_frames


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(main(), 30))


async def until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not predicate():
            await asyncio.sleep(0.01)


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(100), 5) == b""
    except (ConnectionError, ssl.SSLError):
        return True


class SessionRecorder(Recorder):
    """A connection that counts as a running session once SessionSetup passed
    (``protected``, as :class:`secc.aio.driver.SessionDriver` reports it)."""

    @property
    def protected(self) -> bool:
        return len(self.requests) >= 2 and not self.lost


class SessionHandlers(Handlers):
    def __call__(self, conn: V2GConnection) -> Recorder:
        handler = SessionRecorder(conn)
        self.made.append(handler)
        self.new.set()
        return handler


def test_pending_handshakes_are_bounded_oldest_dropped(pki: Pki) -> None:
    async def main() -> None:
        admission = Admission(Limits(max_connections=6, max_handshakes=2))
        tls = TlsSelector([pki.a.chain])
        async with V2GServer(
            Handlers(), tls=tls, admission=admission, handshake_timeout=30
        ) as server:
            idle = [await asyncio.open_connection("::1", server.port) for _ in range(5)]
            await until(lambda: admission.dropped >= 3)
            assert admission.pending <= 2
            for reader, _ in idle[:3]:  # the oldest three were dropped
                assert await closed_by_server(reader)
            # an EV's handshake still gets in (it pushes the oldest pending one out)
            reader, writer = await asyncio.open_connection(
                "::1", server.port, ssl=python_client(pki.a.root_file)
            )
            writer.write(SAP_FRAME)
            assert len(await read_frames(reader, 1)) == 1
            assert admission.dropped >= 4 and admission.pending <= 2
            writer.close()
            for _, w in idle:
                w.close()

    run(main)


def test_connections_are_bounded_and_running_sessions_never_dropped() -> None:
    async def main() -> None:
        admission = Admission(Limits(max_connections=2, max_handshakes=1))
        handlers = SessionHandlers()
        async with V2GServer(handlers, admission=admission) as server:
            ev1 = await asyncio.open_connection("::1", server.port)
            ev1[1].write(SAP_FRAME + SETUP_FRAME)
            assert len(await read_frames(ev1[0], 2)) == 2  # a running session
            idle = await asyncio.open_connection("::1", server.port)
            await until(lambda: len(server.connections) == 2)
            ev2 = await asyncio.open_connection("::1", server.port)
            assert await closed_by_server(idle[0])  # the idle one made room
            ev2[1].write(SAP_FRAME + SETUP_FRAME)
            assert len(await read_frames(ev2[0], 2)) == 2
            # every slot holds a session: a newcomer is refused, both sessions stay
            late = await asyncio.open_connection("::1", server.port)
            assert await closed_by_server(late[0])
            assert admission.refused == 1 and admission.dropped == 1
            assert len(server.connections) == 2
            first, dropped, second = handlers.made  # the refused one never got a handler
            assert not first.lost and not second.lost and dropped.lost
            for _, w in (ev1, ev2, idle, late):
                w.close()

    run(main)
