"""The EVSE's PLC link state (SLAC match, D-LINK_READY, lost link) as an OCPP 2.0.1
NotifyEvent the CSMS can see (docs/ocpp.md, "The PLC link").

OCPP 2.0.1 has no message of its own for the link to the EV; the device model's way
for a station to report a state change it detects itself is NotifyEvent (N07: an
event the station's software raises, ``eventNotificationType`` HardWiredNotification,
``trigger`` Delta for a changed value) on the component the state belongs to.  The
EV on an EVSE is the standardized component ConnectedEV (on that EVSE); its variable
Available is true while the EV is on the link (matched and joined) and false when it
is not.  ``techInfo`` carries what the station knows: the SLAC state, the EV's MAC,
the NID and the D-LINK_READY confirmation.  The event goes through the durable outbox,
in order with the transaction's events, and names the open transaction.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time

from hal.types import PlcStatus
from secc.aio.plc_watch import link_up
from secc.ocpp_bridge import mapping

__all__ = ["link_event"]

COMPONENT = "ConnectedEV"
VARIABLE = "Available"
# event ids: unique within the process, and across restarts as long as the clock runs on
_ids = itertools.count(int(time.time() * 10) % 1_000_000_000)


def link_event(
    status: PlcStatus,
    *,
    evse_id: int,
    now: dt.datetime,
    transaction_id: str | None = None,
) -> dict[str, object]:
    """The NotifyEvent payload for a new link state of EVSE ``evse_id``."""
    parts = [f"SLAC {status.state.value}"]
    if status.ev_mac:
        parts.append(f"EV MAC {status.ev_mac.hex(':')}")
    if status.nid:
        parts.append(f"NID {status.nid.hex()}")
    if status.detail:
        parts.append(status.detail)
    timestamp = mapping.ocpp_timestamp(now)
    event: dict[str, object] = {
        "eventId": next(_ids),
        "timestamp": timestamp,
        "trigger": "Delta",
        "actualValue": "true" if link_up(status) else "false",
        "techInfo": "; ".join(parts)[:500],
        "component": {"name": COMPONENT, "evse": {"id": evse_id}},
        "variable": {"name": VARIABLE},
        "eventNotificationType": "HardWiredNotification",
    }
    if transaction_id is not None:
        event["transactionId"] = transaction_id
    return {"generatedAt": timestamp, "seqNo": 0, "eventData": [event]}
