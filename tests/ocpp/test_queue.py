"""The durable outbox: SQLite settings, atomic state, order, CallError policy, and a real
``kill -9`` of a process writing to it."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from secc.ocpp_bridge.queue import (
    DurableQueue,
    QueuedMessage,
    QueueError,
    Rejected,
    Sender,
    SenderPolicy,
)


def test_wal_full_order_state_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "q" / "ocpp.sqlite"
    q = DurableQueue(path)
    assert q._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert q._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    ids = [
        q.enqueue("TransactionEvent", {"seqNo": n}, state={"seq": n}).message_id for n in range(5)
    ]
    assert len(set(ids)) == 5
    assert q.get_state("seq") == 4
    head = q.head()
    assert head is not None and head.payload == {"seqNo": 0}
    q.ack(head.seq)
    q.close()
    q2 = DurableQueue(path)  # a restart sees the same messages with the same ids
    assert [m.payload["seqNo"] for m in q2.pending()] == [1, 2, 3, 4]
    assert [m.message_id for m in q2.pending()] == ids[1:]
    q2.set_state({"seq": None, "tx": {"id": "t"}})
    assert q2.get_state("seq") is None
    assert q2.get_state("tx") == {"id": "t"}
    assert len(q2) == 4


def test_state_and_message_commit_together(tmp_path: Path) -> None:
    q = DurableQueue(tmp_path / "q.sqlite")
    with pytest.raises(TypeError):  # the state value cannot be stored: nothing is committed
        q.enqueue("TransactionEvent", {"seqNo": 0}, state={"bad": object()})
    assert len(q) == 0
    assert q.get_state("bad") is None


def test_damaged_row_is_dropped_not_blocking(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    q = DurableQueue(path)
    for n in range(3):
        q.enqueue("TransactionEvent", {"seqNo": n})
    q._db.execute("UPDATE outbox SET payload = '{\"seqNo\": 0, trunc' WHERE seq = 1")
    q._db.execute("UPDATE outbox SET payload = '[1, 2]' WHERE seq = 2")
    head = q.head()
    assert head is not None and head.payload == {"seqNo": 2}
    assert len(q) == 1


def test_damaged_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(QueueError, match="cannot open"):
        DurableQueue(path)


def test_sender_order_callerror_policy_and_link_loss(tmp_path: Path) -> None:
    async def main() -> None:
        q = DurableQueue(tmp_path / "q.sqlite")
        online = asyncio.Event()
        sent: list[tuple[str, int]] = []
        script = {2: ["reject", "reject"], 3: ["timeout"], 4: ["reject"] * 5}
        answered: list[int] = []

        async def send(
            action: str, payload: dict[str, object], message_id: str
        ) -> dict[str, object]:
            n = int(payload["seqNo"])  # type: ignore[call-overload]
            sent.append((message_id, n))
            step = script.get(n, [])
            what = step.pop(0) if step else "ok"
            if what == "reject":
                raise Rejected("InternalError")
            if what == "timeout":
                raise TimeoutError("no answer")
            return {"n": n}

        def on_response(message: QueuedMessage, response: dict[str, object]) -> None:
            answered.append(int(response["n"]))  # type: ignore[call-overload]

        sender = Sender(
            q, send, online, policy=SenderPolicy(3, 0.01, 0.01), on_response=on_response
        )
        task = asyncio.ensure_future(sender.run())
        for n in range(6):
            q.enqueue("TransactionEvent", {"seqNo": n})
        await asyncio.sleep(0.1)
        assert sent == []  # offline: nothing is sent
        online.set()
        sender.wake()
        while len(q) or sender.delivered + sender.dropped < 6:  # acked and answered
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # 2 succeeds on its third attempt; 3 waits out a timeout; 4 is dropped after 3 CallErrors
        assert [n for _, n in sent] == [0, 1, 2, 2, 2, 3, 3, 4, 4, 4, 5]
        assert answered == [0, 1, 2, 3, 5]
        assert (sender.delivered, sender.dropped) == (5, 1)
        ids = {}
        for mid, n in sent:
            assert ids.setdefault(n, mid) == mid  # a resend reuses the message id

    asyncio.run(asyncio.wait_for(main(), 30))


WRITER = """
import sys
from pathlib import Path
from secc.ocpp_bridge.queue import DurableQueue
q = DurableQueue(Path(sys.argv[1]))
n = q.get_state("next") or 0
while True:
    q.enqueue("TransactionEvent", {"seqNo": n, "pad": "x" * 200}, state={"next": n + 1})
    n += 1
    if n % 50 == 0:
        print(n, flush=True)
"""


def test_kill_9_while_writing_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    for _round in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        proc.stdout.readline()  # it has committed at least 50 messages
        time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        q = DurableQueue(path)
        seqs = [m.payload["seqNo"] for m in q.pending()]
        # every committed message is there, in order, and the counter matches the messages
        assert seqs == list(range(len(seqs)))
        assert q.get_state("next") == len(seqs)
        assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        q.close()
    assert len(seqs) >= 150
