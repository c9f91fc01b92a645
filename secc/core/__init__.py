"""The SECC session core: pure, sans-I/O ISO 15118-2 / DIN SPEC 70121 session logic.

Fed events (decoded requests, EVSE facts, outside results, time) through
``handle(event, now) -> list[Action]``; the runtime performs the actions.  See
:mod:`secc.core.events` and :mod:`secc.core.actions` for the vocabulary shared with the
runtime (``secc.aio``, ``secc.runtime``) and the OCPP bridge (``secc.ocpp_bridge``).
"""
