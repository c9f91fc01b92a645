"""The SECC session core: pure, sans-I/O ISO 15118-2 / DIN SPEC 70121 session logic.

Fed events (decoded requests, EVSE facts, outside results, time) through
``handle(event, now) -> list[Action]``; the runtime performs the actions.  See
:mod:`secc.core.events` and :mod:`secc.core.actions` for the vocabulary shared with the
runtime (``secc.aio``, ``secc.runtime``) and the OCPP bridge (``secc.ocpp_bridge``).

For the runtime, per V2G connection::

    session = SeccSession(config, now=monotonic(), random_bytes=os.urandom,
                          utc_now=lambda: datetime.now(UTC), resume=paused_or_None)
    actions = session.handle(RequestReceived(message, session.schema), monotonic())
    # ... perform actions in order; when monotonic() >= session.deadline:
    actions = session.handle(TimerExpired("deadline"), monotonic())
    # after SessionEnded(EV_PAUSE): keep session.paused for the connector's next session

Modules: :mod:`~secc.core.session` (the machine), :mod:`~secc.core.states` (the legal
transition tables), :mod:`~secc.core.handlers` (one module per message family),
:mod:`~secc.core.din` (DIN SPEC 70121 differences), :mod:`~secc.core.failures`
(PeerError tree, minimal FAILED responses), :mod:`~secc.core.config` (SessionConfig,
Timers, PausedSession), :mod:`~secc.core.pnc_crypto` (Plug & Charge on :mod:`certs`).
"""
