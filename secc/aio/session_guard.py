"""Checks the driver makes on a decoded request before the core sees it.

- :func:`root_error`: an EXI stream may legally decode to any global element of the
  schema (``8044037800`` is a complete stream whose root is not a message).  Only the
  message roots of the negotiated protocol reach the core; anything else ends the
  connection cleanly with one log line.
- :func:`session_setup_evcc_id`: the EVCCID of a SessionSetupReq, which the EVSE uses to
  decide whether the new session may take over (:meth:`secc.runtime.Evse.claim`).
"""

from __future__ import annotations

from typing import Any

from secc.core.events import RequestReceived, Schema

__all__ = ["root_error", "session_setup_evcc_id"]

# the only roots a request may have, per schema (ISO 15118-20 roots are checked by its core)
_ROOTS = {
    Schema.APPHAND: "supportedAppProtocolReq",
    Schema.ISO2: "V2G_Message",
    Schema.DIN: "V2G_Message",
}


def root_error(event: RequestReceived) -> str | None:
    """Why ``event`` cannot go to the core (its root is not a request message), or None."""
    expected = _ROOTS.get(event.schema)
    if expected is None:
        return None
    name = type(event.message).__name__
    if name != expected:
        return f"the {event.schema.value} stream's root is {name}, not {expected}"
    if expected == "V2G_Message":
        body = getattr(getattr(event.message, "body", None), "body_element", None)
        if body is None:
            return "a V2G_Message without a body element"
    return None


def session_setup_evcc_id(event: RequestReceived) -> bytes | None:
    """The EVCCID when ``event`` is a SessionSetupReq (any protocol), else None."""
    message: Any = event.message
    body = getattr(getattr(message, "body", None), "body_element", message)
    if type(body).__name__ != "SessionSetupReq":
        return None
    value = getattr(body, "evccid", None)
    if isinstance(value, str):
        return value.encode()
    return bytes(value) if value is not None else b""
