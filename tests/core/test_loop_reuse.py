"""The charging loop reuses its unchanged response (issue 17) and never a stale one.

The core keeps the last loop response (CurrentDemandRes, -20 DC_ChargeLoopRes) and the
frozen parts it is made of; while nothing changed it answers with the same objects (no
per-message churn; the encoder finds their bits by identity).  Here a session in its
DC charging loop gets the same request again and again, and between them the EVSE's
measured values, a stop request and a new meter reading change: every response carries
what holds at that moment, exactly as a response built from scratch would.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from secc import codec
from secc.core.actions import SendResponse
from secc.core.config import DIN_NAMESPACE, ISO20_DC_NAMESPACE, SessionConfig
from secc.core.context import value_of
from secc.core.events import EvseStatus, RequestReceived, StopRequested
from secc.core.iso20.common import number
from secc.core.session import SeccSession
from secc.ev.iso2 import EvScript
from secc.ev.iso20 import Ev20Script
from secc.testing.harness import run_session

CASES = {
    "iso2": (
        SessionConfig(meter_id="METER-1"),
        EvScript(energy_mode="DC_extended"),
        "CurrentDemandReq",
    ),
    "din": (
        SessionConfig(protocols=(DIN_NAMESPACE,)),
        EvScript(protocol="din", energy_mode="DC_extended"),
        "CurrentDemandReq",
    ),
    "iso20": (
        SessionConfig(protocols=(ISO20_DC_NAMESPACE,), iso20_allow_tcp=True),
        Ev20Script(mode="dc", control="scheduled"),
        "DC_ChargeLoopReq",
    ),
}


def _name(event: RequestReceived) -> str:
    body = getattr(event.message, "body", None)
    return type(body.body_element if body is not None else event.message).__name__


def in_loop(case: str) -> tuple[SeccSession, RequestReceived, EvseStatus]:
    """A session that has just answered its first loop request, that request again, and
    the EVSE status the session last heard."""
    config, script, request = CASES[case]
    found: list[tuple[SeccSession, RequestReceived]] = []

    def keep(session: SeccSession, event: Any, actions: Any) -> None:
        if isinstance(event, RequestReceived) and _name(event) == request and not found:
            found.append((copy.deepcopy(session), event))

    run_session(config, script, check=keep)
    assert found, f"{case}: the session never reached {request}"
    session, event = found[0]
    return session, event, session._ctx.status


def send(session: SeccSession, event: RequestReceived, now: float) -> SendResponse:
    acts = session.handle(event, now)
    (res,) = [a for a in acts if isinstance(a, SendResponse)]
    return res


def answer(session: SeccSession, event: RequestReceived, now: float) -> Any:
    return send(session, event, now).message


def body_of(message: Any) -> Any:
    body = getattr(message, "body", None)
    return body.body_element if body is not None else message


def present_voltage(res: Any) -> float:
    pv = body_of(res).evse_present_voltage
    return number(pv) if hasattr(pv, "exponent") else value_of(pv)


@pytest.mark.parametrize("case", list(CASES))
def test_unchanged_loop_answers_with_the_same_message(case: str) -> None:
    session, event, _ = in_loop(case)
    assert session.deadline is not None
    now = session.deadline - session.config.timers.sequence_timeout + 0.1
    first = answer(session, event, now)
    second = answer(session, event, now + 0.1)
    assert second is first
    assert codec.encode(second) == codec.encode(first)


@pytest.mark.parametrize("case", list(CASES))
def test_every_change_shows_in_the_next_response(case: str) -> None:
    session, event, status = in_loop(case)
    assert session.deadline is not None
    now = session.deadline - session.config.timers.sequence_timeout + 0.1
    first = answer(session, event, now)
    seen = [first]
    for volts in (351.0, 352.5, 351.0, status.present_voltage):
        status = dataclasses.replace(status, present_voltage=volts)
        assert session.handle(status, now) == []
        out = send(session, event, now)
        res = out.message
        assert present_voltage(res) == volts
        data = codec.encode(res)
        assert present_voltage(codec.decode(data, out.schema.value)) == volts
        seen.append(res)
    # the same values as the first answer: equal to it (whether or not the same object)
    assert body_of(seen[-1]) == body_of(first)
    assert codec.encode(seen[-1]) == codec.encode(first)
    if case == "iso2":  # a new meter reading and time show in MeterInfo
        status = dataclasses.replace(status, energy_wh=status.energy_wh + 7)
        session.handle(status, now)
        res = answer(session, event, now)
        assert body_of(res).meter_info.meter_reading == int(status.energy_wh)
    # a stop request changes the status the next answer carries
    session.handle(StopRequested(reason="test"), now)
    res = answer(session, event, now)
    body = body_of(res)
    if case == "iso20":
        assert body.evse_status is not None
        assert body.evse_status.evse_notification.value == "Terminate"
    else:
        status_field = body.dc_evse_status
        assert status_field.evse_notification.value == "StopCharging"
        assert status_field.evse_status_code.value == "EVSE_Shutdown"
    assert res is not first
