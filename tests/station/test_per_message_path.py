"""The station's per-message path (issue 17), checked against what it replaced.

- ``secc.aio.v2g_server.V2GStream`` (the connection's protocol, instead of asyncio's
  StreamReader / StreamWriter): a peer that sends faster than its requests are handled
  is paused (not buffered without bound) and loses nothing; a response written to a peer
  that does not read waits in ``send`` while the transport is paused and is delivered
  whole once the peer reads; a write after the peer reset the connection raises.
- ``secc.aio.driver._Turn`` (instead of ``asyncio.Lock`` around the driver's feed): one
  holder at a time, first come first served, a cancelled waiter neither keeps nor loses
  the turn.
- ``Evse.perform_hal``'s SetDcTarget path and ``Evse.read_status``'s positional
  EvseStatus: the same result as the generic path / the dataclass's constructor.
- the status poll's timer: with no request (so no HAL action poking the poll) a
  changed board still reaches the running session.

Real sockets on loopback, the simulated board; waits are bounded, nothing is timed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import struct
from pathlib import Path
from typing import Any

import pytest

from hal.backends.simulated import build_board
from hal.types import ContactorState, CpState
from secc import codec
from secc.aio.driver import _Turn
from secc.aio.v2g_server import READ_SIZE, V2GConnection, V2GServer
from secc.core.actions import SetDcTarget
from secc.core.events import ConnectionLost, EvseFault, EvseStatus, RequestReceived, Schema
from secc.runtime import _STATUS_FIELDS, Station
from secc.v2gtp import Framer, encode_frame
from tests.station.conftest import EVSE_ID, evse, run, script, station_config, wait_until

# --- V2GStream ----------------------------------------------------------------------------


class Blocking:
    """A session handler that holds its first request until ``release`` is set and
    records every payload it is handed (undecodable ones: the test sends junk EXI)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.payloads: list[bytes] = []
        self.lost: list[str] = []
        self.conn: V2GConnection | None = None

    def __call__(self, conn: V2GConnection) -> Blocking:
        self.conn = conn
        return self

    async def request_received(self, conn: V2GConnection, event: RequestReceived) -> None:
        self.payloads.append(conn.last_payload)
        await self.release.wait()

    async def undecodable(self, conn: V2GConnection, payload: bytes, error: Any) -> None:
        self.payloads.append(payload)
        await self.release.wait()

    async def connection_lost(self, conn: V2GConnection, event: ConnectionLost) -> None:
        self.lost.append(event.reason)


def test_a_peer_sending_faster_than_it_is_served_is_paused_and_loses_nothing() -> None:
    frames = [encode_frame(bytes([0x80, i % 256]) + bytes(990)) for i in range(400)]
    data = b"".join(frames)
    assert len(data) > 3 * READ_SIZE

    async def main() -> None:
        handler = Blocking()
        async with V2GServer(handler) as server:
            _reader, writer = await asyncio.open_connection("::1", server.port)
            writer.write(data)  # (the kernel's buffers take it; drained below)
            drained = asyncio.create_task(writer.drain())
            await wait_until(lambda: handler.conn is not None and handler.payloads != [])
            conn = handler.conn
            assert conn is not None and conn._transport is not None
            # the read loop is held in the handler: the station stops reading once two
            # reads' worth is waiting, instead of buffering all the peer sends
            await wait_until(lambda: conn._stream._reading_paused, timeout=20)
            assert not conn._transport.is_reading()
            assert len(conn._stream._buffer) <= 2 * READ_SIZE + 256 * 1024
            handler.release.set()
            await wait_until(lambda: len(handler.payloads) == len(frames), timeout=20)
            assert handler.payloads == [f[8:] for f in frames]  # all, in order
            assert conn._transport.is_reading() and not conn._stream._reading_paused
            await drained
            writer.close()

    run(main)


def _send_buffer_max() -> int:
    """The most a TCP socket's send buffer grows to here (tcp_wmem's maximum)."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        return 4 << 20


class Sender:
    """Answers its first request with ``count`` frames of 60 kB (more than the kernel
    buffers while the peer does not read), counting the ones ``send`` returned from."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.sent = 0
        self.done = asyncio.Event()
        self.conn: V2GConnection | None = None

    def __call__(self, conn: V2GConnection) -> Sender:
        self.conn = conn
        return self

    async def request_received(self, conn: V2GConnection, event: RequestReceived) -> None:
        await self._send_all(conn)

    async def undecodable(self, conn: V2GConnection, payload: bytes, error: Any) -> None:
        await self._send_all(conn)

    async def _send_all(self, conn: V2GConnection) -> None:
        while self.sent < self.count:
            await conn.send(bytes([self.sent % 256]) * 60_000)
            self.sent += 1
        self.done.set()

    async def connection_lost(self, conn: V2GConnection, event: ConnectionLost) -> None:
        pass


def test_send_waits_while_the_peer_does_not_read_and_everything_arrives() -> None:
    count = (_send_buffer_max() + (2 << 20)) // 60_000

    async def main() -> None:
        handler = Sender(count)
        async with V2GServer(handler) as server:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("::1", server.port))
            sock.setblocking(False)
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(encode_frame(b"\x80\xff"))
            await wait_until(lambda: handler.conn is not None)
            conn = handler.conn
            assert conn is not None
            await wait_until(lambda: conn._stream._writing_paused, timeout=20)
            # paused: the handler's send does not return while nobody reads
            sent = handler.sent
            for _ in range(20):
                await asyncio.sleep(0)
            assert handler.sent == sent < count and not handler.done.is_set()
            framer = Framer(max_payload=65536)
            got: list[bytes] = []
            while len(got) < count:
                data = await asyncio.wait_for(reader.read(65536), 20)
                assert data, "the station closed the connection"
                got += [f.payload for f in framer.feed(data)]
            assert got == [bytes([i % 256]) * 60_000 for i in range(count)]
            await asyncio.wait_for(handler.done.wait(), 20)
            assert not conn._stream._writing_paused
            writer.close()

    run(main)


def test_a_write_after_the_peer_reset_the_connection_raises() -> None:
    class AfterReset(Blocking):
        raised: BaseException | None = None

        async def undecodable(self, conn: V2GConnection, payload: bytes, error: Any) -> None:
            await self.release.wait()
            await wait_until(lambda: conn._stream._lost)
            try:
                await conn.send(b"\x80\x00")
            except (ConnectionError, OSError) as exc:
                self.raised = exc

    async def main() -> None:
        handler = AfterReset()
        async with V2GServer(handler) as server:
            _reader, writer = await asyncio.open_connection("::1", server.port)
            writer.write(encode_frame(b"\x80\xff"))
            await writer.drain()
            await wait_until(lambda: handler.conn is not None)
            sock = writer.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()  # RST
            handler.release.set()
            await wait_until(lambda: handler.lost != [])
            assert isinstance(handler.raised, ConnectionError)
            assert "Connection reset by peer" in handler.lost[0]

    run(main)


# --- the driver's turn --------------------------------------------------------------------


def test_the_turn_is_held_by_one_feeder_at_a_time_in_arrival_order() -> None:
    async def main() -> None:
        turn = _Turn()
        order: list[str] = []
        inside = 0

        async def feeder(name: str, steps: int) -> None:
            nonlocal inside
            if turn.busy:
                await turn.wait()
            else:
                turn.busy = True
            try:
                inside += 1
                assert inside == 1
                order.append(name)
                for _ in range(steps):
                    await asyncio.sleep(0)
            finally:
                inside -= 1
                turn.release()

        await asyncio.gather(*(feeder(f"f{i}", 3 - i % 3) for i in range(6)))
        assert order == [f"f{i}" for i in range(6)]
        assert not turn.busy and not turn._waiters

    run(main)


def test_a_cancelled_waiter_neither_keeps_nor_loses_the_turn() -> None:
    async def main() -> None:
        turn = _Turn()
        turn.busy = True  # held by this test
        got: list[str] = []

        async def waiter(name: str) -> None:
            await turn.wait()
            got.append(name)
            turn.release()

        a = asyncio.create_task(waiter("a"))
        b = asyncio.create_task(waiter("b"))
        c = asyncio.create_task(waiter("c"))
        await wait_until(lambda: len(turn._waiters) == 3)
        a.cancel()  # cancelled while waiting: gone from the queue
        await asyncio.gather(a, return_exceptions=True)
        assert len(turn._waiters) == 2
        turn.release()  # handed to b ...
        b.cancel()  # ... which is cancelled before it runs: the turn passes on to c
        await asyncio.gather(b, c, return_exceptions=True)
        assert got == ["c"]
        assert not turn.busy and not turn._waiters

    run(main)


# --- the EVSE's HAL path ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("voltage", "current", "dc"),
    [(400.0, 50.0, True), (400.0, 900.0, True), (20.0, 10.0, True), (400.0, 50.0, False)],
    ids=["in-limits", "over-current", "under-voltage", "no-dc-supply"],
)
def test_set_dc_target_fast_path_does_what_the_generic_path_does(
    pki_dir: Path, voltage: float, current: float, dc: bool
) -> None:
    async def outcome(generic: bool) -> tuple[Any, ...]:
        board, plant = build_board()
        if not dc:
            board = dataclasses.replace(board, dc_supply=None)
        config = station_config(pki_dir, None, evse())
        async with Station(config, boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            e._poke.clear()
            action = SetDcTarget(voltage, current)
            fault = await (e._perform_hal(action) if generic else e.perform_hal(action))
            return fault, plant.dc_target, plant.dc_enabled, e._poke.is_set()

    fast = run(lambda: outcome(generic=False))
    generic = run(lambda: outcome(generic=True))
    assert fast == generic
    fault, *_state, poked = fast
    assert poked
    assert (fault is None) == (dc and voltage == 400.0 and current == 50.0)
    if fault is not None:
        assert type(fault) is EvseFault


def test_the_status_is_the_dataclass_the_core_knows(pki_dir: Path) -> None:
    assert tuple(f.name for f in dataclasses.fields(EvseStatus)) == _STATUS_FIELDS

    async def main() -> None:
        board, plant = build_board()
        config = station_config(pki_dir, None, evse())
        async with Station(config, boards={EVSE_ID: board}) as st:
            plant.ev_state = CpState.C
            plant.contactor_command = True
            plant.dc_enabled, plant.dc_target = True, (401.5, 23.25)
            plant.energy_wh, plant.energy_export_wh = 1234.5, 6.5
            status = await st.evse(EVSE_ID).read_status()
        assert type(status) is EvseStatus
        expected = EvseStatus(
            present_voltage=401.5,
            present_current=23.25,
            isolation="Invalid",  # no insulation test in this session
            contactors_closed=True,
            energy_wh=1234.5,
            power_w=401.5 * 23.25,
            energy_export_wh=6.5,
        )
        assert status == expected and hash(status) == hash(expected)
        with pytest.raises(dataclasses.FrozenInstanceError):
            status.present_voltage = 0.0  # type: ignore[misc]

    run(main)


def test_a_changed_board_reaches_an_idle_session_through_the_poll_timer(
    pki_dir: Path,
) -> None:
    """A DC EV in its charging loop that then sends nothing (its next CurrentDemandReq
    only after the test): no HAL action pokes the status poll, yet a meter reading that
    changes on the board is fed to the session by the poll interval's timer."""
    from secc.ev.iso2 import EvSimulator

    async def main() -> None:
        board, plant = build_board()
        plant.ev_state = CpState.C
        section = evse(tls_port=-1, hal=dataclasses.replace(evse().hal, poll_interval=0.05))
        section = dataclasses.replace(
            section, timers=dataclasses.replace(section.timers, sequence_timeout=60.0)
        )
        config = station_config(pki_dir, None, section)
        async with Station(config, boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            reader, writer = await asyncio.open_connection("::1", e.ports["tcp"])
            framer = Framer()

            async def exchange(frame: bytes) -> bytes:
                writer.write(frame)
                while True:
                    data = await reader.read(65536)
                    assert data, "the station closed the connection"
                    got = framer.feed(data)
                    if got:
                        return got[0].payload

            sim = EvSimulator(script("dc", charge_loops=5))
            step = sim.start()
            loops = 0
            while loops < 2:  # up to and including two CurrentDemand round trips
                await asyncio.sleep(step.delay)
                payload = await exchange(encode_frame(codec.encode(step.message)))
                loops += step.name == "CurrentDemandReq"
                schema = Schema.APPHAND if step.schema is Schema.APPHAND else sim.schema
                nxt = sim.receive(codec.decode(payload, schema.value), schema)
                assert nxt is not None, sim.responses[-1]
                step = nxt
            driver = e.active
            assert driver is not None and driver.last_status is not None
            assert plant.contactor_feedback is ContactorState.CLOSED and plant.dc_enabled
            plant.advance(3600.0)  # an hour at the present power, on the meter only
            target = plant.energy_wh
            assert driver.last_status.energy_wh != target
            await wait_until(
                lambda: driver.last_status is not None and driver.last_status.energy_wh == target,
                timeout=20,
            )
            assert e._poll_timer is not None  # one timer, re-armed
            writer.close()

    run(main, timeout=60)
