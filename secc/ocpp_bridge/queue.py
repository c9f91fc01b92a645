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
* **A full disk** (SQLite's "database or disk is full", or another write error of the
  storage): the message is not lost.  It is kept in memory (*spilled*, with the state it
  advances), sent live after the stored ones (one order for both), and written to the
  table, with the same message id, as soon as a write succeeds again (the next enqueue,
  the sender's next look at the queue, or its retry every ``SPILL_RETRY`` seconds).  The
  episode is logged once, as a full disk when SQLite says so (:attr:`DurableQueue.full`
  tells the bridge, which raises the security event MemoryExhaustion).  Only a kill while
  messages are spilled loses them; at most ``MAX_SPILLED`` are held.
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
import contextlib
import dataclasses
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

MAX_SPILLED = 10_000  # messages held in memory while the disk is full (a few MB)
SPILL_RETRY = 2.0  # seconds between attempts to store spilled messages

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
    stored: bool = True  # False: spilled (held in memory, the disk was full)


class DurableQueue:
    """SQLite outbox plus a small key/value state table, committed together."""

    def __init__(self, path: Path, *, new_id: Callable[[], str] | None = None) -> None:
        self.path = Path(path)
        self._new_id = new_id or (lambda: str(uuid.uuid4()))
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ocpp-queue")
        # messages the disk could not take, oldest first (negative seq), and their state
        self._spilled: list[QueuedMessage] = []
        self._spill_state: dict[str, object | None] = {}
        self._spill_seq = 0
        self._moved: dict[int, str] = {}  # spilled seq -> message id, once stored
        self._gone: set[int] = set()  # delivered, but the disk refused the delete
        self._tries: dict[int, int] = {}  # CallErrors the disk refused to count
        self.full: str | None = None  # why the disk refuses writes (None: it takes them)
        self.full_episodes = 0  # times the disk started refusing writes
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
        json.dumps(dict(state or {}))  # a state that cannot be stored is refused before
        message_id = self._new_id()
        with self._lock:
            if self._spilled and not self._store_spilled():
                return self._spill(message_id, action, text, state or {}, self.full or "")
            try:
                seq = self._insert([(message_id, action, text)], state or {})[0]
            except sqlite3.DatabaseError as exc:
                if not _storage_error(exc):
                    raise
                return self._spill(message_id, action, text, state or {}, str(exc))
            if not self._gone:
                self.full = None  # the episode is over
        return QueuedMessage(seq, message_id, action, json.loads(text), 0)

    def _insert(
        self, rows: list[tuple[str, str, str]], state: Mapping[str, object | None]
    ) -> list[int]:
        """Insert messages and state in one SQLite transaction (under the lock)."""
        seqs = []
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for row in rows:
                cur = self._db.execute(
                    "INSERT INTO outbox (message_id, action, payload) VALUES (?, ?, ?)", row
                )
                assert cur.lastrowid is not None
                seqs.append(cur.lastrowid)
            self._write_state(state)
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # SQLite already rolled back on a full disk
                self._db.execute("ROLLBACK")
            raise
        return seqs

    # --- a full disk -------------------------------------------------------------------

    @property
    def spilled(self) -> int:
        """Messages held in memory because the disk refused them."""
        return len(self._spilled)

    def _spill(
        self,
        message_id: str,
        action: str,
        text: str,
        state: Mapping[str, object | None],
        why: str,
    ) -> QueuedMessage:
        """Keep a message the disk refused in memory (under the lock)."""
        if len(self._spilled) >= MAX_SPILLED:
            raise QueueError(f"{self.path}: {why}; {MAX_SPILLED} messages already in memory")
        if self.full is None:
            self.full = why
            self.full_episodes += 1
            kind = "disk full" if "full" in why else "storage error"
            log.error(
                "%s: %s (%s): %s %s kept in memory and sent live; stored when the disk "
                "has room again",
                self.path,
                kind,
                why,
                action,
                message_id,
            )
        self._spill_seq -= 1
        message = QueuedMessage(
            self._spill_seq, message_id, action, json.loads(text), 0, stored=False
        )
        self._spilled.append(message)
        self._spill_state.update(state)
        return message

    def _store_spilled(self) -> bool:
        """Catch up with the disk: delete what was delivered while it refused deletes,
        then write the spilled messages (and their state) to the table in order, with
        their message ids.  True when nothing is left in memory (under the lock)."""
        if self._gone:
            gone = sorted(self._gone)

            def delete() -> None:  # one transaction: all of them or none
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(g,) for g in gone])
                self._db.execute("COMMIT")

            if not self._try_write(delete):
                return False
            self._gone.difference_update(gone)
            for g in gone:
                self._tries.pop(g, None)
        if not self._spilled:
            self.full = None
            return True
        rows = [
            (m.message_id, m.action, json.dumps(m.payload, separators=(",", ":"), sort_keys=True))
            for m in self._spilled
        ]
        try:
            self._insert(rows, self._spill_state)
        except sqlite3.DatabaseError as exc:
            if not _storage_error(exc):
                raise
            return False
        # only the oldest can be in flight (the sender sends the head): its ack finds it
        self._moved = {self._spilled[0].seq: self._spilled[0].message_id}
        log.warning(
            "%s: the disk takes writes again: %d message(s) kept in memory are stored",
            self.path,
            len(self._spilled),
        )
        self._spilled.clear()
        self._spill_state.clear()
        self.full = None
        return True

    def _try_write(self, write: Callable[[], object]) -> bool:
        """One write; False when the storage refused it (under the lock)."""
        try:
            write()
        except sqlite3.DatabaseError as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if not _storage_error(exc):
                raise
            return False
        return True

    def store_spilled(self) -> bool:
        """Try to catch up with the disk now; True when nothing is left in memory."""
        with self._lock:
            return self._store_spilled()

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
            self._store_spilled()  # older spilled state first (a full disk: raises below)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._write_state(state)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite already rolled back on a full disk
                    self._db.execute("ROLLBACK")
                raise

    def _stored_seq(self, seq: int) -> int | None:
        """The table's seq of a message (a spilled one's, once stored); None: in memory
        or gone (under the lock)."""
        if seq >= 0:
            return seq
        moved = self._moved.get(seq)
        if moved is None:
            return None
        row = self._db.execute("SELECT seq FROM outbox WHERE message_id = ?", (moved,)).fetchone()
        return None if row is None else int(row[0])

    def ack(self, seq: int) -> None:
        """The CSMS answered the message: delete it (durably; a full disk: remembered
        and deleted when it has room)."""
        with self._lock:
            if seq < 0:  # a spilled message: in memory, or stored since it was sent
                self._spilled = [m for m in self._spilled if m.seq != seq]
            stored = self._stored_seq(seq)
            self._moved.pop(seq, None)
            if stored is None:
                return
            if not self._try_write(
                lambda: self._db.execute("DELETE FROM outbox WHERE seq = ?", (stored,))
            ):
                self._gone.add(stored)

    def count_attempt(self, seq: int) -> int:
        with self._lock:
            for i, m in enumerate(self._spilled):
                if m.seq == seq:
                    self._spilled[i] = dataclasses.replace(m, attempts=m.attempts + 1)
                    return m.attempts + 1
            stored = self._stored_seq(seq)
            if stored is None:
                return 0
            if not self._try_write(
                lambda: self._db.execute(
                    "UPDATE outbox SET attempts = attempts + 1 WHERE seq = ?", (stored,)
                )
            ):
                self._tries[stored] = self._tries.get(stored, 0) + 1
            row = self._db.execute(
                "SELECT attempts FROM outbox WHERE seq = ?", (stored,)
            ).fetchone()
            return int(row[0]) + self._tries.get(stored, 0) if row else 0

    # --- reading ---------------------------------------------------------------------------

    def get_state(self, key: str) -> object | None:
        """The value stored under ``key`` (None: none).  A value that no longer parses
        (storage damage: only ``json.dumps`` output is ever stored) is logged as an error
        naming the file and the key, and removed, so one damaged record cannot keep the
        station from starting or block the other records."""
        with self._lock:
            if key in self._spill_state:  # advanced by a spilled message
                return self._spill_state[key]
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            try:
                value: object = json.loads(row[0])
            except (ValueError, TypeError) as exc:
                log.error(
                    "%s: state record %r is damaged (%s): %.80r; dropped",
                    self.path,
                    key,
                    exc,
                    row[0],
                )
                self._try_write(lambda: self._db.execute("DELETE FROM state WHERE key = ?", (key,)))
                return None
        return value

    def head(self) -> QueuedMessage | None:
        """The oldest unsent message.  A row whose payload no longer parses (storage
        damage: only ``json.dumps`` output is ever stored) is logged and removed, so one
        bad sector cannot block every later message."""
        while True:
            with self._lock:
                if self._spilled or self._gone:
                    self._store_spilled()
                rows = self._db.execute(
                    "SELECT seq, message_id, action, payload, attempts FROM outbox "
                    "ORDER BY seq LIMIT ?",
                    (len(self._gone) + 1,),
                ).fetchall()
                row = next((r for r in rows if int(r[0]) not in self._gone), None)
                if row is None:  # the spilled ones come after every stored one
                    return self._spilled[0] if self._spilled else None
                tries = self._tries.get(int(row[0]), 0)
            try:
                payload = json.loads(row[3])
                if not isinstance(payload, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                log.error("%s: dropping damaged message %s: %s", self.path, row[1], exc)
                self.ack(int(row[0]))
                continue
            return QueuedMessage(
                int(row[0]), str(row[1]), str(row[2]), payload, int(row[4]) + tries
            )

    def pending(self) -> list[QueuedMessage]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, message_id, action, payload, attempts FROM outbox ORDER BY seq"
            ).fetchall()
            rows = [r for r in rows if int(r[0]) not in self._gone]
            spilled = list(self._spilled)
        stored = []
        for r in rows:
            try:
                payload = json.loads(r[3])
            except ValueError:  # damaged: head() logs and drops it; it is no message to send
                continue
            stored.append(QueuedMessage(int(r[0]), r[1], r[2], payload, int(r[4])))
        return stored + spilled

    def __len__(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
            return int(row[0]) - len(self._gone) + len(self._spilled)


def _storage_error(exc: sqlite3.DatabaseError) -> bool:
    """The storage refused a write (SQLITE_FULL, SQLITE_IOERR*, a read-only file
    system), as opposed to a bad statement or value."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return isinstance(exc, sqlite3.OperationalError) and "full" in str(exc)
    return (code & 0xFF) in (_SQLITE_FULL, _SQLITE_IOERR, _SQLITE_READONLY)


_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL = 8, 10, 13


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
            while not self._online.is_set():
                await self._store_spilled(self._online)
            message = await self.queue.off_loop(self.queue.head)
            if message is None:
                self._wake.clear()
                if await self.queue.off_loop(len, self.queue) == 0:
                    await self._wake.wait()
                continue
            await self._deliver(message)

    async def _store_spilled(self, event: asyncio.Event) -> None:
        """Wait for ``event``; meanwhile store what a full disk left in memory (tried
        every ``SPILL_RETRY`` seconds)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SPILL_RETRY):
                await event.wait()
                return
        if self.queue.spilled:
            await self.queue.off_loop(self.queue.store_spilled)

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
