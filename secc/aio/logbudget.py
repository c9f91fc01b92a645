"""Rate-limited logging for what anyone on the link can trigger at will.

A :class:`LogBudget` allows ``lines`` log lines per ``window`` seconds; what it holds
back is counted and summed up in one line when the next window opens (or when
:meth:`LogBudget.flush` is called).  SDP uses one per server; each EVSE's V2G servers
share one (:class:`secc.aio.admission.Admission`) for the lines about connections:
a flood of 1,000 connects writes a few lines, not thousands.  :class:`BudgetedLog` is a
``LoggerAdapter`` whose lines go through a budget unless it is ``exempt`` (the driver
exempts a connection once its SessionSetupReq claimed the EVSE: a real EV's session is
always logged in full).  ``exempt`` is a plain flag, not a callback: a callback holding
the driver would tie each connection's transport into a reference cycle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, MutableMapping
from typing import Any

__all__ = ["BudgetedLog", "LogBudget"]


class LogBudget:
    """At most ``lines`` log lines per ``window`` seconds; what is held back is counted
    and reported in one line (on ``logger``, naming ``what``) when the next window
    opens."""

    def __init__(
        self,
        lines: int = 5,
        window: float = 10.0,
        *,
        what: str = "datagram(s)",
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lines, self.window = lines, window
        self.what = what
        self.logger = logger or logging.getLogger(__name__)
        self.clock = clock
        self._start = float("-inf")
        self._used = 0
        self.suppressed = 0
        self.suppressed_total = 0

    def allow(self, now: float | None = None) -> bool:
        """Whether one more line may be written now (counts it)."""
        now = self.clock() if now is None else now
        if now - self._start >= self.window:
            self.flush()
            self._start, self._used = now, 0
        if self._used < self.lines:
            self._used += 1
            return True
        self.suppressed += 1
        self.suppressed_total += 1
        return False

    def flush(self) -> None:
        """Say how many lines were held back since the last summary."""
        if self.suppressed:
            self.logger.info(
                "%d more %s in the last %.0f s not logged", self.suppressed, self.what, self.window
            )
            self.suppressed = 0


class BudgetedLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger adapter whose lines spend ``budget`` (when there is one) unless
    ``exempt``; ``prefix(extra)`` formats the line's prefix."""

    def __init__(
        self,
        logger: logging.Logger,
        extra: MutableMapping[str, object],
        budget: LogBudget | None = None,
        *,
        exempt: bool = False,
        prefix: Callable[[MutableMapping[str, object]], str] | None = None,
    ) -> None:
        super().__init__(logger, extra)
        self.budget = budget
        self.exempt = exempt
        self._prefix = prefix

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        if self._prefix is None or self.extra is None:
            return msg, kwargs
        return f"{self._prefix(self.extra)}{msg}", kwargs  # type: ignore[arg-type]

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        if self.budget is not None and not self.exempt and not self.budget.allow():
            return
        super().log(level, msg, *args, **kwargs)
