"""ISO 15118-2 / DIN SPEC 70121 SessionSetup (new or resumed session) and DIN's EVSEID."""

from __future__ import annotations

from typing import Any

from secc.core.actions import SessionStarted
from secc.core.config import SessionConfig
from secc.core.context import Context, Reply, State
from secc.core.events import Schema


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
        if not text or len(text) > 64 or text.strip("0123456789*"):
            return b"\x00"
    nibbles = "".join("A" if c == "*" else c for c in text)
    if len(nibbles) % 2:
        nibbles += "F"
    return bytes.fromhex(nibbles)
