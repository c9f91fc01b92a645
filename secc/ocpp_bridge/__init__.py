"""The station's OCPP 2.0.1 link to the CSMS (``ocpp`` package over ``websockets``).

- :mod:`~secc.ocpp_bridge.mapping`: pure; core actions → OCPP payloads (wire form),
  OCPP answers → core events.
- :mod:`~secc.ocpp_bridge.queue`: the durable SQLite outbox for TransactionEvents.
- :mod:`~secc.ocpp_bridge.client`: the typed client (security profiles 1-3, boot,
  heartbeat, reconnect, per-call deadlines, CSMS-initiated calls).
- :mod:`~secc.ocpp_bridge.device_model`: the variables a CSMS reads and sets, persisted.
- :mod:`~secc.ocpp_bridge.authorization`: local list, cache and the offline policy.
- :mod:`~secc.ocpp_bridge.bridge` and :mod:`~secc.ocpp_bridge.csms_handlers`: the flows.

``docs/ocpp.md`` lists the supported use cases and shows the wiring.
"""
