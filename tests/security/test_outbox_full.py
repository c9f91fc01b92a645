"""Issue 15: a full disk never costs a transaction event.  The outbox lives on a real
full filesystem (a tmpfs of a few hundred KiB, mounted by the test and filled up), so
SQLite's writes fail with ENOSPC and the outbox sees SQLITE_FULL ("database or disk is
full") as on a station whose flash ran full.  What the disk refuses is kept in memory,
sent live in order with the rest, reported (an error line naming the full disk and the
security event MemoryExhaustion) and stored once there is room again.  Needs root (mount)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from secc.core.actions import ChargingStateChanged, EndReason, SessionEnded, SessionStarted
from secc.core.events import EvseStatus
from secc.ocpp_bridge.bridge import BridgeConfig
from secc.ocpp_bridge.queue import DurableQueue
from tests.ocpp.csms import TestCsms, wait_for
from tests.ocpp.station import build, running

ISO2 = "urn:iso:15118:2:2013:MsgDef"


@contextlib.contextmanager
def small_fs(where: Path, kib: int = 384) -> Iterator[Path]:
    """A tmpfs of ``kib`` KiB mounted at ``where`` for the test (unmounted after)."""
    if os.geteuid() != 0:
        pytest.fail("mounting the small filesystem needs root (the tests run as root)")
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory: Path) -> Path:
    """Fill the filesystem of ``directory`` up to the last byte; returns the filler."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    finally:
        os.close(fd)
    return filler


def stored_rows(path: Path) -> list[tuple[str, str]]:
    """(message id, action) of every row on disk, read by a connection of its own."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [(r[0], r[1]) for r in db.execute("SELECT message_id, action FROM outbox")]
    finally:
        db.close()


def test_the_outbox_keeps_what_a_full_disk_refuses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with small_fs(tmp_path / "fs") as fs:
        queue = DurableQueue(fs / "outbox.sqlite")
        try:
            first = queue.enqueue("TransactionEvent", {"n": 0}, state={"tx": 1})
            assert first.stored
            filler = fill(fs)
            with caplog.at_level(logging.ERROR, logger="secc.ocpp_bridge.queue"):
                later = [
                    queue.enqueue("TransactionEvent", {"n": n, "pad": "x" * 2000}, state={"tx": n})
                    for n in range(1, 30)
                ]
            assert not any(m.stored for m in later), "the disk took them: it was not full"
            assert queue.full is not None and "full" in queue.full
            assert queue.full_episodes == 1 and queue.spilled == 29 and len(queue) == 30
            assert queue.get_state("tx") == 29  # the state they advanced, in memory
            lines = [r.getMessage() for r in caplog.records]
            assert len(lines) == 1 and "disk full" in lines[0], lines
            # in order: the stored one first, then the spilled ones; acks take them out
            head = queue.head()
            assert head is not None and head.payload == {"n": 0}
            queue.ack(head.seq)
            head = queue.head()
            assert head is not None and head.payload["n"] == 1 and not head.stored
            queue.ack(head.seq)
            assert queue.spilled == 28
            # room again: stored with their message ids, in order, without a new message
            filler.unlink()
            assert queue.store_spilled() and queue.full is None
            ids = [(m.message_id, "TransactionEvent") for m in later[1:]]
            assert stored_rows(fs / "outbox.sqlite") == ids
        finally:
            queue.close()
        reopened = DurableQueue(fs / "outbox.sqlite")  # what a restart finds
        try:
            assert [m.payload["n"] for m in reopened.pending()] == list(range(2, 30))
            assert reopened.get_state("tx") == 29
        finally:
            reopened.close()


def test_no_transaction_event_is_lost_to_a_full_disk(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The bridge's outbox on a full filesystem: one transaction sent live while the
    disk is full (CSMS online), a second one while the CSMS is also down, whose events
    are stored once the disk has room and delivered after reconnect.  The CSMS gets
    every event once, in order, and the security event MemoryExhaustion."""

    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        with small_fs(tmp_path / "fs") as fs:
            station = build(fs, csms.url, config=BridgeConfig(link_retry=0.05))
            bridge = station.bridge
            async with running(station):
                await wait_for(lambda: len(bridge.queue) == 0)  # the start-up event sent
                filler = fill(fs)
                bridge.evse_status(EvseStatus(400.0, 0.0, energy_wh=1000.0))
                bridge.perform(SessionStarted(b"\x01" * 8, b"\x02" * 6, ISO2))
                bridge.perform(ChargingStateChanged(True, soc=40))
                bridge.perform(ChargingStateChanged(False, soc=80))
                bridge.perform(SessionEnded(EndReason.EV_STOP))
                await wait_for(lambda: any(e["eventType"] == "Ended" for _, e in csms.tx_raw))
                await wait_for(lambda: len(bridge.queue) == 0)
                assert bridge.queue.full is not None  # it was all sent from memory
                await wait_for(lambda: "MemoryExhaustion" in _types(csms))
                # the CSMS goes down too: the next transaction waits in memory ...
                await csms.stop()
                await wait_for(lambda: not bridge.client.online.is_set())
                bridge.perform(SessionStarted(b"\x01" * 8, b"\x02" * 6, ISO2))
                bridge.perform(ChargingStateChanged(True, soc=50))
                await wait_for(lambda: bridge.queue.spilled >= 2)
                spilled = [m.message_id for m in bridge.queue.pending() if not m.stored]
                # ... and is stored when there is room again (no new event needed)
                filler.unlink()
                await wait_for(lambda: bridge.queue.spilled == 0, timeout=30)
                on_disk = [m for m, _ in stored_rows(fs / "ocpp.sqlite")]
                assert on_disk[-len(spilled) :] == spilled
                bridge.perform(SessionEnded(EndReason.EV_STOP))
                await csms.start(csms.port)
                await wait_for(lambda: len(bridge.queue) == 0, timeout=30)
                await wait_for(lambda: len(_ended(csms)) == 2)
            await csms.stop()
        stream = csms.transaction_stream()
        by_tx: dict[str, list[dict[str, Any]]] = {}
        for event in stream:
            by_tx.setdefault(str(event["transactionInfo"]["transactionId"]), []).append(event)
        assert len(by_tx) == 2
        for events in by_tx.values():
            assert [e["seqNo"] for e in events] == list(range(len(events)))
            assert events[0]["eventType"] == "Started" and events[-1]["eventType"] == "Ended"
        first, second = by_tx.values()
        assert len(first) == 4 and len(second) == 3
        assert all(e.get("offline") for e in second), second

    with caplog.at_level(logging.INFO):
        asyncio.run(asyncio.wait_for(main(), 90))
    messages = [r.getMessage() for r in caplog.records]
    assert any("disk full (database or disk is full)" in m for m in messages), messages
    assert not any("transaction event lost" in m for m in messages)


def _types(csms: TestCsms) -> list[str]:
    return [str(e["type"]) for e in csms.security_events]


def _ended(csms: TestCsms) -> list[dict[str, object]]:
    return [e for _, e in csms.tx_raw if e["eventType"] == "Ended"]
