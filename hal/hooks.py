"""Station hooks: what a station maker writes so the CSMS's operations reach the hardware.

The OCPP bridge decides *when* (the use case's rules: transactions ended first, statuses
reported, everything durable); a hook only *does* the station-specific part.  Each hook
is a small Protocol with a simulated implementation used by the tests and the simulator.

* :class:`ResetHook` (OCPP B11/B12): restart the station once its transactions have
  ended and their events are on disk.  The default, :class:`ExitForRestart`, ends the
  process with a failure status so systemd (``Restart=on-failure``) starts it again.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

log = logging.getLogger(__name__)

EXIT_FOR_RESTART = 75  # EX_TEMPFAIL: systemd's Restart=on-failure starts the service again


@runtime_checkable
class ResetHook(Protocol):
    """Restart the charging station (the whole station: OCPP resets of one EVSE are refused).

    Called after every transaction was ended (stoppedReason ImmediateReset, or the last
    one ended by itself for OnIdle) and the outbox has been written; ``kind`` is the
    ResetEnumType (``Immediate`` / ``OnIdle``).  It may return (a simulated reset) or
    never return (a real one)."""

    def reset(self, kind: str) -> None: ...


class ExitForRestart:
    """The production default: exit the process now with :data:`EXIT_FOR_RESTART`."""

    def reset(self, kind: str) -> None:
        log.warning("OCPP Reset (%s): exiting with status %d for a restart", kind, EXIT_FOR_RESTART)
        logging.shutdown()
        os._exit(EXIT_FOR_RESTART)


@dataclass
class SimulatedReset:
    """Records the resets asked for (tests, simulator); the process keeps running."""

    resets: list[str] = field(default_factory=list)

    def reset(self, kind: str) -> None:
        log.info("simulated reset (%s)", kind)
        self.resets.append(kind)


@dataclass
class StationHooks:
    """The hooks a station gives the OCPP bridge (defaults: production behaviour)."""

    reset: ResetHook = field(default_factory=ExitForRestart)
