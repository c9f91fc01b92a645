"""Loop time stamps (the -20 header TimeStamp, -2 MeterInfo TMeter) come from
Context.unix_seconds: the wall clock is read at most once per second of session time and
carried forward by the session clock in between, so they stay the wall clock's seconds."""

from __future__ import annotations

import datetime as dt

from secc.core.config import SessionConfig
from secc.core.context import Context

START = dt.datetime(2026, 6, 1, 12, 0, 0, 400_000, tzinfo=dt.UTC)


def test_read_once_per_second_and_carried_forward() -> None:
    reads: list[float] = []
    session_start = 50.0

    def utc_now() -> dt.datetime:
        reads.append(ctx.now)
        return START + dt.timedelta(seconds=ctx.now - session_start)

    ctx = Context(config=SessionConfig(), random_bytes=bytes, utc_now=utc_now)
    base = int(START.timestamp())
    for step in range(30):  # a 10 Hz loop for 3 s
        ctx.now = session_start + step * 0.1
        expected = int((START + dt.timedelta(seconds=step * 0.1)).timestamp())
        assert ctx.unix_seconds() == expected  # the wall clock's second
    assert len(reads) == 3  # at 0.0, 1.0 and 2.0 s: not 30
    assert ctx.unix_seconds() >= base + 2


def test_the_clock_is_read_again_when_session_time_goes_back() -> None:
    reads = 0

    def utc_now() -> dt.datetime:
        nonlocal reads
        reads += 1
        return START

    ctx = Context(config=SessionConfig(), random_bytes=bytes, utc_now=utc_now)
    ctx.now = 10.0
    ctx.unix_seconds()
    ctx.now = 9.5  # (a replay, a test clock): never extrapolated backwards
    ctx.unix_seconds()
    assert reads == 2
