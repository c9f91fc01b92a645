"""The station's limits against floods and misuse: ``[evse.limits]`` and
``[station.traces]`` of the configuration (docs/security.md says why each exists).

Frozen data, no I/O: :mod:`secc.aio.admission` enforces the connection limits,
:mod:`secc.trace` the trace limits, :mod:`secc.runtime` the session replacement rule.
"""

from __future__ import annotations

from hal.records import record


@record
class Limits:
    """Per EVSE (its TLS and TCP servers together)."""

    # connections open at once (TLS handshakes included); a new one beyond this closes the
    # oldest that has no running session, or is refused when every one has
    max_connections: int = 8
    # TLS handshakes (ClientHello included) under way at once; the oldest is dropped
    max_handshakes: int = 4
    # seconds for the TCP connect to TLS-up (ClientHello and handshake)
    handshake_timeout: float = 5.0
    # a new SessionSetupReq from the EV of the running session (same EVCCID) replaces
    # that session only once the running one has been silent this many seconds
    replace_after_silence: float = 2.0
    # accept() failing (EMFILE, ENOBUFS, ...) this long makes the EVSE unhealthy, which
    # stops the systemd watchdog; the server keeps retrying with a backoff meanwhile
    accept_stall: float = 30.0
    # log lines about connections without a session (connects, refused handshakes,
    # undecodable streams, their ends) per window; the rest is counted in one line
    connection_log_lines: int = 20
    connection_log_window: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_connections <= 1024:
            raise ValueError("limits.max_connections must be between 1 and 1024")
        if not 1 <= self.max_handshakes <= self.max_connections:
            raise ValueError("limits.max_handshakes must be between 1 and max_connections")
        if not 0.5 <= self.handshake_timeout <= 60.0:
            raise ValueError("limits.handshake_timeout must be between 0.5 and 60 seconds")
        if not 0.0 <= self.replace_after_silence <= 600.0:
            raise ValueError("limits.replace_after_silence must be between 0 and 600 seconds")
        if not 1.0 <= self.accept_stall <= 3600.0:
            raise ValueError("limits.accept_stall must be between 1 and 3600 seconds")
        if not 1 <= self.connection_log_lines <= 10_000:
            raise ValueError("limits.connection_log_lines must be between 1 and 10000")
        if not 1.0 <= self.connection_log_window <= 3600.0:
            raise ValueError("limits.connection_log_window must be between 1 and 3600 seconds")


@record
class TraceLimits:
    """The trace directory: the oldest files are removed beyond these bounds."""

    max_files: int = 1000  # trace (and pcap) files kept
    max_bytes: int = 200_000_000  # all of them together
    max_file_bytes: int = 20_000_000  # one trace stops growing here (a record says so)

    def __post_init__(self) -> None:
        if self.max_files < 1:
            raise ValueError("traces.max_files must be at least 1")
        if self.max_file_bytes < 4096 or self.max_bytes < self.max_file_bytes:
            raise ValueError("traces: need 4096 <= max_file_bytes <= max_bytes")
