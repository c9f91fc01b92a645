"""Connection admission for one EVSE: bounds the connections and TLS handshakes its V2G
servers hold at once, so that a flood of idle connects can neither exhaust the
process's file descriptors and memory nor lock the EV out.

Policy (the numbers are :class:`secc.limits.Limits`): a new connection always gets in
when it can: beyond ``max_handshakes`` pending handshakes the oldest pending one is
dropped; beyond ``max_connections`` the oldest connection without a running session is
dropped (pending handshakes first).  A connection whose session runs (past
SessionSetup) is never dropped; when every slot holds one, the new connection is
refused.  Dropping the oldest rather than refusing the newest means an attacker holding
idle connections cannot keep a real EV out: its connection pushes them out.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from secc.aio.logbudget import LogBudget
from secc.limits import Limits

if TYPE_CHECKING:
    import ctypes

__all__ = ["Admission", "Ticket"]

log = logging.getLogger(__name__)


@dataclass(eq=False, slots=True)
class Ticket:
    """One admitted connection."""

    task: asyncio.Task[None]
    peer: str
    pending: bool = True  # TLS handshake (or ClientHello) not done yet
    protected: Callable[[], bool] = field(default=lambda: False)
    handshake_error: ssl.SSLError | None = None  # why the TLS handshake failed
    spare: socket.socket | None = None  # a second descriptor until TLS is up (alerts)


class Admission:
    """Shared by the servers of one EVSE (see the module docstring)."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.tickets: list[Ticket] = []  # oldest first
        self.dropped = 0
        self.refused = 0
        self._last_log = 0.0
        self._trimmed_at = self._churn = 0  # connections ended, at the last collection
        self._trim_time = 0.0
        # the lines about connections that have no session (secc.aio.logbudget)
        self.log_budget = LogBudget(
            self.limits.connection_log_lines,
            self.limits.connection_log_window,
            what="connection log line(s)",
            logger=logging.getLogger("secc.aio.v2g_server"),
        )

    @property
    def pending(self) -> int:
        return sum(1 for t in self.tickets if t.pending)

    def arrive(self, task: asyncio.Task[None], peer: str, *, tls: bool) -> Ticket | None:
        """Admit a new connection (dropping older ones as the policy says), or None."""
        victims: list[Ticket] = []
        limits = self.limits
        live = [t for t in self.tickets if not t.task.done()]
        if tls:
            pending = [t for t in live if t.pending]
            while len(pending) >= limits.max_handshakes:
                victims.append(pending.pop(0))
        rest = [t for t in live if t not in victims]
        while len(rest) >= limits.max_connections:
            candidates = [t for t in rest if t.pending] or [t for t in rest if not t.protected()]
            if not candidates:
                self.refused += 1
                self._note(f"refused a connection from {peer}: every slot holds a session")
                return None
            victims.append(candidates[0])
            rest.remove(candidates[0])
        for victim in victims:
            self.dropped += 1
            victim.task.cancel()
            self.tickets.remove(victim)
        if victims:
            self._note(
                f"connection limit: dropped {len(victims)} older connection(s) "
                f"({', '.join(v.peer for v in victims)}) for {peer}"
            )
        ticket = Ticket(task, peer, pending=tls)
        self.tickets.append(ticket)
        return ticket

    def opened(self, ticket: Ticket, protected: Callable[[], bool]) -> None:
        """The connection is up (TLS done): it no longer counts as a handshake."""
        ticket.pending = False
        ticket.protected = protected
        if ticket.spare is not None:
            ticket.spare.close()
            ticket.spare = None

    def leave(self, ticket: Ticket) -> None:
        if ticket in self.tickets:
            self.tickets.remove(ticket)
        self._churn += 1
        now = time.monotonic()
        burst = self._churn - self._trimmed_at
        # the last of a burst gone (more than one connection since the last trim; one
        # session ending alone is no reason to stop the loop for a collection)
        settled = not self.tickets and burst > 1
        if settled or (burst >= 8 and now - self._trim_time >= 0.5):
            # under a flood: dropped connections sit in reference cycles (a cancelled
            # task's traceback holds its transport and the transport's 256 KiB TLS
            # buffer) until the cyclic GC runs; collect them and give the heap back
            self._trimmed_at, self._trim_time = self._churn, now
            gc.collect()
            trim_heap()

    def _note(self, text: str) -> None:
        """One warning at most every 10 s (a flood must not fill the log)."""
        now = time.monotonic()
        if now - self._last_log >= 10.0:
            self._last_log = now
            log.warning("%s (%d dropped, %d refused so far)", text, self.dropped, self.refused)


_libc: ctypes.CDLL | None = None


def trim_heap() -> bool:
    """glibc's ``malloc_trim(0)``: return free heap pages to the system (each TLS
    connect allocates an OpenSSL context and buffers; a flood of them leaves the heap
    fragmented).  A no-op elsewhere."""
    global _libc
    try:
        if _libc is None:
            import ctypes  # (here: ctypes.util pulls shutil, tempfile, subprocess)

            try:
                _libc = ctypes.CDLL("libc.so.6")  # glibc's soname: no ldconfig run
            except OSError:
                import ctypes.util

                _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(_libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False


# TLS alert descriptions (RFC 5246 §7.2)
HANDSHAKE_FAILURE = 40
PROTOCOL_VERSION = 70
_VERSION_REASONS = ("UNSUPPORTED_PROTOCOL", "VERSION_TOO_LOW", "VERSION_TOO_HIGH")
# failures on the ClientHello, before the server has sent anything: a plaintext alert
_HELLO_REASONS = (*_VERSION_REASONS, "NO_SHARED_CIPHER", "NO_SHARED_GROUP", "NO_SUITABLE")


def duplicate(sock: socket.socket) -> socket.socket | None:
    """A second descriptor of ``sock`` (None when the process has none left)."""
    try:
        return sock.dup()
    except OSError:
        return None


def send_alert(sock: socket.socket, error: ssl.SSLError | None) -> None:
    """End a refused TLS handshake the way TLS says: a fatal alert record
    (``protocol_version`` or ``handshake_failure``) when OpenSSL refused the ClientHello;
    then close ``sock`` (a duplicate descriptor of the connection)."""
    try:
        reason = str(getattr(error, "reason", "") or "") if error is not None else ""
        if error is not None and reason.startswith(_HELLO_REASONS):
            code = PROTOCOL_VERSION if reason.startswith(_VERSION_REASONS) else HANDSHAKE_FAILURE
            sock.setblocking(False)
            sock.send(bytes((0x15, 0x03, 0x03, 0x00, 0x02, 0x02, code)))
    except OSError:
        pass  # the peer is gone already
    finally:
        sock.close()
