"""The durable outbox for transaction-related OCPP messages (SQLite), and its sender.

Theory of operation
-------------------
Every TransactionEvent is *written here first* and sent from here only: ``enqueue``
commits the message (action, wire payload, a message id chosen once) together with the
transaction state it advances (seqNo counter, open transaction) in one SQLite
transaction.  The :class:`Sender` sends the oldest message, waits for the CSMS's
CallResult and only then deletes it (``ack``).  Hence:

* **Nothing lost**: a message exists on disk before any attempt to send it; CSMS outages
  and ``kill -9`` leave it in the table, and it is sent after reconnect / restart.
* **In order**: one message in flight, always the oldest (``seq`` is an AUTOINCREMENT key).
* **Exactly once at the CSMS**: OCPP-J has no transport-level deduplication, so the
  wire gives *at least once*: if the process dies after the CSMS received a message but
  before the ack was committed, the message is sent again after restart.  The resend is
  byte-identical (same OCPP message id, same transactionId and seqNo, same timestamp),
  which is exactly what OCPP gives the CSMS to recognise it: seqNo is defined as the
  means to detect duplicates and gaps.  The window is the round trip of one message.
  The test CSMS in ``tests/ocpp`` deduplicates on (transactionId, seqNo), asserts any
  repeat is byte-identical, and checks the deduplicated stream is complete and ordered.
* **offline**: the bridge sets ``offline: true`` in the payload when the event happened
  while the CSMS link was down; it is part of the stored payload, so it survives restarts.
* **CallError**: a CSMS that *answers* with a CallError has received the message; it is
  retried ``max_attempts`` times (OCPP MessageAttemptsTransactionEvent) at
  ``retry_interval`` and then dropped with an error log.  Timeouts and lost connections
  never count as attempts: the message waits for the link.

Durability setting: WAL with ``synchronous=FULL``.  With NORMAL, WAL survives a process
kill but a power cut may drop the last commits; a charge controller's typical failure is
exactly a power cut, and the write rate (a few messages per minute per connector) makes
the extra fsync per commit irrelevant.  SQLite calls run in a worker thread
of their own (:meth:`DurableQueue.off_loop`), so an fsync on slow flash never stalls the
V2G event loop nor the ``ocpp`` package's schema validation (which uses the loop's
default executor).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    action TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class QueueError(RuntimeError):
    """The queue database cannot be opened or is damaged."""


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    seq: int
    message_id: str
    action: str
    payload: dict[str, object]
    attempts: int


class DurableQueue:
    """SQLite outbox plus a small key/value state table, committed together."""

    def __init__(self, path: Path, *, new_id: Callable[[], str] | None = None) -> None:
        self.path = Path(path)
        self._new_id = new_id or (lambda: str(uuid.uuid4()))
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ocpp-queue")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise QueueError(f"{self.path}: cannot open the OCPP queue: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._executor.shutdown(wait=False)

    async def off_loop(self, fn: Callable[..., T], *args: object) -> T:
        """Run a (blocking) queue operation in the queue's own worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # --- writing ---------------------------------------------------------------------------

    def enqueue(
        self,
        action: str,
        payload: Mapping[str, object],
        *,
        state: Mapping[str, object | None] | None = None,
    ) -> QueuedMessage:
        """Store a message (and the state it advances) durably; returns it with its id.

        ``state`` maps keys to JSON values (``None`` deletes the key); it is committed in
        the same transaction as the message, so seqNo counters never run ahead of or
        behind the messages that used them.
        """
        text = json.dumps(payload, separators=(",", ":"), sort_keys=True)
        message_id = self._new_id()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute(
                    "INSERT INTO outbox (message_id, action, payload) VALUES (?, ?, ?)",
                    (message_id, action, text),
                )
                self._write_state(state or {})
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite already rolled back on a full disk
                    self._db.execute("ROLLBACK")
                raise
        seq = cur.lastrowid
        assert seq is not None
        return QueuedMessage(seq, message_id, action, json.loads(text), 0)

    def _write_state(self, state: Mapping[str, object | None]) -> None:
        for key, value in state.items():
            if value is None:
                self._db.execute("DELETE FROM state WHERE key = ?", (key,))
            else:
                self._db.execute(
                    "INSERT INTO state (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, json.dumps(value)),
                )

    def set_state(self, state: Mapping[str, object | None]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._write_state(state)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite already rolled back on a full disk
                    self._db.execute("ROLLBACK")
                raise

    def ack(self, seq: int) -> None:
        """The CSMS answered the message: delete it (durably)."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def count_attempt(self, seq: int) -> int:
        with self._lock:
            self._db.execute("UPDATE outbox SET attempts = attempts + 1 WHERE seq = ?", (seq,))
            row = self._db.execute("SELECT attempts FROM outbox WHERE seq = ?", (seq,)).fetchone()
        return int(row[0]) if row else 0

    # --- reading ---------------------------------------------------------------------------

    def get_state(self, key: str) -> object | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def head(self) -> QueuedMessage | None:
        """The oldest unsent message.  A row whose payload no longer parses (storage
        damage: only ``json.dumps`` output is ever stored) is logged and removed, so one
        bad sector cannot block every later message."""
        while True:
            with self._lock:
                row = self._db.execute(
                    "SELECT seq, message_id, action, payload, attempts FROM outbox "
                    "ORDER BY seq LIMIT 1"
                ).fetchone()
            if row is None:
                return None
            try:
                payload = json.loads(row[3])
                if not isinstance(payload, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                log.error("%s: dropping damaged message %s: %s", self.path, row[1], exc)
                self.ack(int(row[0]))
                continue
            return QueuedMessage(int(row[0]), str(row[1]), str(row[2]), payload, int(row[4]))

    def pending(self) -> list[QueuedMessage]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, message_id, action, payload, attempts FROM outbox ORDER BY seq"
            ).fetchall()
        return [QueuedMessage(int(r[0]), r[1], r[2], json.loads(r[3]), int(r[4])) for r in rows]

    def __len__(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(row[0])


# --- sending ---------------------------------------------------------------------------------

SendFn = Callable[[str, dict[str, object], str], Awaitable[dict[str, object]]]
"""``send(action, payload, message_id) -> response payload``; raises :class:`Rejected`
when the CSMS answered with a CallError, anything else (timeout, connection) keeps the
message for a later attempt."""


class Rejected(Exception):  # noqa: N818 - reads as the CSMS's answer
    """The CSMS answered a queued message with a CallError."""


@dataclass(frozen=True, slots=True)
class SenderPolicy:
    max_attempts: int = 3  # OCPP MessageAttemptsTransactionEvent
    retry_interval: float = 10.0  # OCPP MessageAttemptIntervalTransactionEvent, seconds
    link_retry: float = 1.0  # pause after a timeout / lost link before trying again


class Sender:
    """Delivers the queue's messages in order while ``online`` is set."""

    def __init__(
        self,
        queue: DurableQueue,
        send: SendFn,
        online: asyncio.Event,
        *,
        policy: SenderPolicy | Callable[[], SenderPolicy] | None = None,
        on_response: Callable[[QueuedMessage, dict[str, object]], None] | None = None,
    ) -> None:
        """``policy`` may be a callable, read at every use (the device model's
        MessageAttemptsTransactionEvent / MessageAttemptIntervalTransactionEvent)."""
        self.queue = queue
        self._send = send
        self._online = online
        if policy is None or isinstance(policy, SenderPolicy):
            fixed = policy or SenderPolicy()
            self._policy_of: Callable[[], SenderPolicy] = lambda: fixed
        else:
            self._policy_of = policy
        self._on_response = on_response
        self._wake = asyncio.Event()
        self.delivered = 0
        self.dropped = 0

    def wake(self) -> None:
        """Something was enqueued: look at the queue again."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._online.wait()
            message = await self.queue.off_loop(self.queue.head)
            if message is None:
                self._wake.clear()
                if await self.queue.off_loop(len, self.queue) == 0:
                    await self._wake.wait()
                continue
            await self._deliver(message)

    @property
    def _policy(self) -> SenderPolicy:
        return self._policy_of()

    async def _deliver(self, message: QueuedMessage) -> None:
        try:
            response = await self._send(message.action, message.payload, message.message_id)
        except Rejected as exc:
            attempts = await self.queue.off_loop(self.queue.count_attempt, message.seq)
            if attempts >= self._policy.max_attempts:
                log.error(
                    "dropping %s %s after %d CallErrors: %s",
                    message.action,
                    message.message_id,
                    attempts,
                    exc,
                )
                await self.queue.off_loop(self.queue.ack, message.seq)
                self.dropped += 1
            else:
                await asyncio.sleep(self._policy.retry_interval)
            return
        except (TimeoutError, ConnectionError, OSError) as exc:
            log.info("%s %s not delivered yet: %s", message.action, message.message_id, exc)
            await asyncio.sleep(self._policy.link_retry)
            return
        await self.queue.off_loop(self.queue.ack, message.seq)
        self.delivered += 1
        if self._on_response is not None:
            self._on_response(message, response)
