"""A fake clock: monotonic seconds and an aware UTC wall clock that move together."""

from __future__ import annotations

import datetime as dt
import random


class FakeClock:
    def __init__(
        self, start: float = 1000.0, utc: dt.datetime | None = None, seed: int = 15118
    ) -> None:
        self.now = start
        self._start = start
        self._utc = utc or dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
        self._random = random.Random(seed)

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self.now += seconds
        return self.now

    def advance_to(self, when: float) -> float:
        self.now = max(self.now, when)
        return self.now

    def utc_now(self) -> dt.datetime:
        return self._utc + dt.timedelta(seconds=self.now - self._start)

    def random_bytes(self, n: int) -> bytes:
        """Deterministic randomness for reproducible sessions."""
        return self._random.randbytes(n)
