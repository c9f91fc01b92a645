"""supportedAppProtocol negotiation and SessionSetup (new or resumed session)."""

from __future__ import annotations

from typing import Any

from secc import codec
from secc.core.actions import EndReason, SessionStarted
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


def session_setup(ctx: Context, req: Any, now: float) -> Reply:
    """A new SessionID, or the paused one when the EV presents it [V2G2-???]."""
    mod = ctx.mod
    ctx.evcc_id = bytes(req.evccid)
    asked = bytes(ctx.header.session_id)
    paused = ctx.resume
    if paused is not None and asked == paused.session_id and paused.protocol == ctx.protocol:
        ctx.session_id = paused.session_id
        ctx.payment_option = paused.payment_option
        ctx.emaid = paused.emaid
        ctx.contract_chain = paused.contract_chain
        ctx.resumed = True
        code = mod.ResponseCode.OK_OldSessionJoined
    else:
        ctx.session_id = ctx.new_session_id()
        code = mod.ResponseCode.OK_NewSessionEstablished
    started = SessionStarted(ctx.session_id, ctx.evcc_id, ctx.protocol)
    stamp = int(ctx.utc_now().timestamp())
    if ctx.schema is Schema.DIN:
        body = mod.SessionSetupRes(
            response_code=code, evseid=din_evse_id(ctx.config), date_time_now=stamp
        )
    else:
        body = mod.SessionSetupRes(
            response_code=code, evseid=ctx.config.evse_id, evse_time_stamp=stamp
        )
    return Reply(body, State.SESSION_SETUP, (started,))


def din_evse_id(config: SessionConfig) -> bytes:
    """DIN's EVSEID (hexBinary): the DIN SPEC 91286 EVSE ID packed one character per
    nibble, digits as themselves and '*' as 0xA, an odd count padded with 0xF
    ("49*89*6360" -> 49 A8 9A 63 60); an ID that is not of that form (ISO 15118-2's
    "DE*ABC*E1234567*1") is sent as 0x00, "no EVSE ID" [V2G-DC-???]."""
    text = config.din_evse_id
    if text is None:
        text = config.evse_id.lstrip("+")
        if not text or len(text) > 32 or text.strip("0123456789*"):
            return b"\x00"
    nibbles = "".join("A" if c == "*" else c for c in text)
    if len(nibbles) % 2:
        nibbles += "F"
    return bytes.fromhex(nibbles)
