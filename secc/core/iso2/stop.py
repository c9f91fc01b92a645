"""SessionStop: Terminate, or Pause (the SessionID may be resumed by a later SessionSetup)."""

from __future__ import annotations

from typing import Any

from secc.core.actions import EndReason
from secc.core.context import Context, Reply, State


def session_stop(ctx: Context, req: Any, now: float) -> Reply:
    mod = ctx.mod
    pause = getattr(req, "charging_session", None)
    reason = (
        EndReason.EV_PAUSE if pause is not None and pause.value == "Pause" else EndReason.EV_STOP
    )
    body = mod.SessionStopRes(response_code=mod.ResponseCode.OK)
    return Reply(body, State.ENDED, end=reason)
