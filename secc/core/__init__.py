"""The SECC session core: pure, sans-I/O ISO 15118-2 / DIN SPEC 70121 / ISO 15118-20 logic.

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

Modules: :mod:`~secc.core.session` (the engine of every family),
:mod:`~secc.core.handshake` (supportedAppProtocol), one package per protocol family:
:mod:`~secc.core.iso2` (ISO 15118-2 and DIN SPEC 70121: legal-transition tables, one
handler module per message family) and :mod:`~secc.core.iso20` (ISO 15118-20: its states,
AC and DC tables and handlers); :mod:`~secc.core.failures`
(PeerError tree, minimal FAILED responses), :mod:`~secc.core.config` (SessionConfig,
Timers, PausedSession), :mod:`~secc.core.pnc_crypto` (Plug & Charge on :mod:`certs`).
"""
