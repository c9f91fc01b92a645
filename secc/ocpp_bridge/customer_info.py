"""Customer information (OCPP 2.0.1 N09 Get Customer Information, N10 Clear Customer
Information): what the station holds about one customer, reported and / or cleared on
the CSMS's request (e.g. for privacy law).

A request names the customer by exactly one of idToken, customerCertificate and
customerIdentifier, and asks for a report, a clear or both; anything else is answered
``Invalid`` (nothing done).  What this station holds about a customer:

* for an idToken (IdTokens compare case-insensitively, the type exactly): its entry in
  the Local Authorization List (reported, never cleared: the list is the CSMS's own,
  changed with SendLocalList), its Authorization Cache entry (reported and cleared), the
  ongoing transactions it authorized and the transaction messages naming it still in
  the outbox (reported; a running transaction and the CSMS's undelivered transaction
  data are not the station's to drop);
* for a customerCertificate or a customerIdentifier: nothing (the station keeps no
  contract certificates, they come from the EV in each session, and no customer
  identifiers), which the report says.

The report is taken before the clear (a request with both reports what was held), then
sent as NotifyCustomerInformation messages of at most 512 characters (``seqNo`` from 0,
``tbc`` on all but the last); a report without data says so (N09/N10 "no data")."""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING

from secc.ocpp_bridge import mapping
from secc.ocpp_bridge.client import Reply

if TYPE_CHECKING:
    from secc.ocpp_bridge.bridge import Bridge

log = logging.getLogger(__name__)
IDENTIFIERS = ("idToken", "customerCertificate", "customerIdentifier")
DATA_MAX = 512  # NotifyCustomerInformationRequest.data


def _invalid(reason: str) -> Reply:
    info = {"reasonCode": "InvalidValue", "additionalInfo": reason}
    return Reply({"status": "Invalid", "statusInfo": info})


def _same(token: object, id_token: str, kind: str) -> bool:
    return (
        isinstance(token, dict)
        and isinstance(token.get("idToken"), str)
        and token["idToken"].casefold() == id_token.casefold()
        and token.get("type") == kind
    )


def token_lines(bridge: Bridge, id_token: str, kind: str) -> list[str]:
    """What the station holds about an idToken, one human-readable line per item."""
    lines = []
    listed = bridge.auth.customer_list_entry(id_token, kind)
    if listed is not None:
        status, group = listed
        lines.append(
            f"local authorization list: status {status}"
            + (f", group {group}" if group else "")
            + " (kept: the list is the CSMS's)"
        )
    cached = bridge.auth.customer_cache_entry(id_token, kind)
    if cached is not None:
        status, group, expires = cached
        lines.append(
            f"authorization cache: status {status}"
            + (f", group {group}" if group else "")
            + f", kept until {mapping.ocpp_timestamp(expires)}"
        )
    for evse_id, evse in sorted(bridge.primary.evses.items()):
        tx, started_by = evse.transaction, evse._tx_id_token
        if (
            tx is not None
            and started_by is not None
            and _same({"idToken": started_by[0], "type": started_by[1]}, id_token, kind)
        ):
            lines.append(f"ongoing transaction {tx['id']} on EVSE {evse_id}, authorized by it")
    queued = [
        m
        for m in bridge.queue.pending()
        if m.action == "TransactionEvent" and _same(m.payload.get("idToken"), id_token, kind)
    ]
    if queued:
        ids = sorted(
            {
                str(info.get("transactionId"))
                for m in queued
                if isinstance(info := m.payload.get("transactionInfo"), dict)
            }
        )
        lines.append(
            f"{len(queued)} transaction message(s) naming it wait in the outbox for the CSMS "
            f"(transactions {', '.join(ids)})"
        )
    return lines


def chunks(text: str, size: int = DATA_MAX) -> list[str]:
    """``text`` in parts of at most ``size`` characters (at least one part)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def customer_information(bridge: Bridge, p: dict[str, object]) -> Reply:
    """The CustomerInformation handler (see the module docstring)."""
    named = [k for k in IDENTIFIERS if p.get(k) is not None]
    if len(named) != 1:
        return _invalid("exactly one of idToken, customerCertificate, customerIdentifier")
    report, clear = p.get("report") is True, p.get("clear") is True
    if not report and not clear:
        return _invalid("neither report nor clear asked")
    request_id = p.get("requestId")
    what = named[0]
    lines: list[str]
    if what == "idToken":
        token = p["idToken"]
        assert isinstance(token, dict)  # the schema's IdTokenType
        id_token, kind = str(token.get("idToken")), str(token.get("type"))
        subject = f"idToken {id_token} ({kind})"
        try:
            lines = token_lines(bridge, id_token, kind) if report else []
            if clear:
                removed = bridge.auth.forget(id_token, kind)
                log.info("customer information of %s cleared: %d cache entries", subject, removed)
        except sqlite3.Error as exc:  # nothing reported as done that was not
            log.error("customer information of %s: %s", subject, exc)
            return Reply({"status": "Rejected", "statusInfo": {"reasonCode": "InternalError"}})
    elif what == "customerCertificate":
        subject = "the customer certificate"
        lines = []  # contract certificates come from the EV in each session: none kept
    else:
        subject = f"customer identifier {p.get('customerIdentifier')}"
        lines = []  # the station keeps no customer identifiers
    if not report:
        return Reply({"status": "Accepted"})
    text = (
        f"{subject}: " + "; ".join(lines)
        if lines
        else f"no data: the station holds no information about {subject}"
    )
    parts = chunks(text)
    client = bridge.client

    async def notify() -> None:
        generated = mapping.ocpp_timestamp(bridge.utc_now())
        for seq, part in enumerate(parts):
            await client.call(
                "NotifyCustomerInformation",
                {
                    "data": part,
                    "tbc": seq < len(parts) - 1,
                    "seqNo": seq,
                    "generatedAt": generated,
                    "requestId": request_id,
                },
            )

    return Reply({"status": "Accepted"}, after=notify)
