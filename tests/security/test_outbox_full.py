"""Issue 15: a full disk is reported as such by the OCPP outbox ("database or disk is
full"), not hidden behind a failing ROLLBACK ("cannot rollback"), and the outbox keeps
working once there is room again.  SQLite's max_page_count makes the database full the
way a full filesystem does (SQLITE_FULL, which rolls the transaction back itself)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from secc.ocpp_bridge.queue import DurableQueue


def test_full_outbox_says_so_and_recovers(tmp_path: Path) -> None:
    queue = DurableQueue(tmp_path / "outbox.db")
    try:
        pages = queue._db.execute("PRAGMA page_count").fetchone()[0]
        queue._db.execute(f"PRAGMA max_page_count = {pages + 2}")
        with pytest.raises(sqlite3.OperationalError, match="full"):
            for i in range(100):
                queue.enqueue("TransactionEvent", {"pad": "x" * 3000, "i": i})
        queue._db.execute("PRAGMA max_page_count = 1000000")
        stored = queue.enqueue("TransactionEvent", {"i": "after"}, state={"seq": 7})
        assert stored.payload == {"i": "after"}
    finally:
        queue.close()
