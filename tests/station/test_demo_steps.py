"""``secc demo``'s own waits and reports: a step the simulated station does not reach in
time is a named FAILED session (not a traceback), and a session a timer ended shows
what the station was waiting for, read from its trace's end record."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from secc.cli import demo


def test_a_step_not_reached_names_it() -> None:
    with pytest.raises(demo.DemoError, match=r"^no 5 % duty within 0.05 s$"):
        asyncio.run(demo._wait_for(lambda: False, 0.05, "5 % duty"))


def test_the_outstanding_message_comes_from_the_trace(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    end = {
        "kind": "end",
        "t": 2.1,
        "reason": "sequence_timeout",
        "detail": "V2G_SECC_Sequence_Timeout ran out in 20:ChargeLoop",
        "outstanding": "last response DC_ChargeLoopRes sent at t=1.571 s; 0 octets unread",
    }
    trace.write_text(json.dumps({"kind": "session"}) + "\n" + json.dumps(end) + "\n")
    assert demo._outstanding(trace) == end["outstanding"]
    del end["outstanding"]  # a normal end names nothing
    trace.write_text(json.dumps(end) + "\n")
    assert demo._outstanding(trace) == ""
    assert demo._outstanding(tmp_path / "missing.jsonl") == ""
    assert demo._outstanding(None) == ""
