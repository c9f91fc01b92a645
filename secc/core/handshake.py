"""supportedAppProtocol negotiation, the step before every family: it picks the protocol
(ISO 15118-2, DIN SPEC 70121, ISO 15118-20 AC or DC) and with it the session's grammar."""

from __future__ import annotations

from typing import Any

from secc import codec
from secc.core.actions import EndReason
from secc.core.config import (
    DIN_NAMESPACE,
    ISO2_NAMESPACE,
    ISO20_AC_NAMESPACE,
    ISO20_DC_NAMESPACE,
    SessionConfig,
)
from secc.core.context import Context, Reply, State
from secc.core.events import Schema
from secc.core.iso20.common import Iso20State

apphand = codec.schema_module("apphand")

# namespace -> (schema, major, minor) of what this stack implements
KNOWN: dict[str, tuple[Schema, int, int]] = {
    ISO2_NAMESPACE: (Schema.ISO2, 2, 0),
    DIN_NAMESPACE: (Schema.DIN, 2, 0),
    ISO20_AC_NAMESPACE: (Schema.ISO20_COMMON, 1, 0),
    ISO20_DC_NAMESPACE: (Schema.ISO20_COMMON, 1, 0),
}
# a -20 namespace names the energy transfer family of the whole session
ISO20_FAMILY = {ISO20_AC_NAMESPACE: "AC", ISO20_DC_NAMESPACE: "DC"}


def _usable(config: SessionConfig, namespace: str) -> bool:
    """Enabled, and for -20: TLS 1.3 (or the lab switch) and an energy mode of its family."""
    if namespace not in config.protocols:
        return False
    family = ISO20_FAMILY.get(namespace)
    if family is None:
        return True
    return config.iso20_allowed and any(m.startswith(family) for m in config.energy_modes)


def supported_app_protocol(ctx: Context, req: Any, now: float) -> Reply:
    """Pick the EV's highest-priority offer (Priority 1 first) among the enabled protocols.

    Same major version: OK_SuccessfulNegotiation, or ..WithMinorDeviation when the minor
    differs; nothing usable: Failed_NoNegotiation and the session closes.  ISO 15118-20
    is usable only over TLS 1.3 (``tls13``) unless ``iso20_allow_tcp``, and only for an
    energy family (AC, DC) the station has.
    """
    rc = apphand.ResponseCode
    for offer in sorted(req.app_protocol, key=lambda p: p.priority):
        known = KNOWN.get(offer.protocol_namespace)
        if known is None or not _usable(ctx.config, offer.protocol_namespace):
            continue
        schema, major, minor = known
        if offer.version_number_major != major:
            continue
        ctx.schema = schema
        ctx.protocol = offer.protocol_namespace
        code = (
            rc.OK_SuccessfulNegotiation
            if offer.version_number_minor == minor
            else rc.OK_SuccessfulNegotiationWithMinorDeviation
        )
        body = apphand.supportedAppProtocolRes(response_code=code, schema_id=offer.schema_id)
        family = ISO20_FAMILY.get(offer.protocol_namespace)
        if family is not None:
            ctx.energy_mode = family  # "AC" / "DC": Context.is_dc reads it
            return Reply(body, Iso20State.WAIT_SESSION_SETUP)
        return Reply(body, State.WAIT_SESSION_SETUP)
    body = apphand.supportedAppProtocolRes(response_code=rc.Failed_NoNegotiation)
    return Reply(body, State.ENDED, end=EndReason.FAILED_RESPONSE)
