"""Walk the legal-transition tables: every (state, request type) absent from a table is
answered FAILED_SequenceError with that request's response type, and the session closes
(contactors opened first).  Sessions in every state come from real scenario runs."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from secc import codec
from secc.core.actions import (
    CloseConnection,
    EndReason,
    OpenContactors,
    SendResponse,
    SessionEnded,
)
from secc.core.config import SessionConfig
from secc.core.context import State
from secc.core.events import RequestReceived, Schema
from secc.core.failures import minimal_element, response_name
from secc.core.iso2.states import TABLES
from secc.core.session import SeccSession
from secc.ev.iso2 import EvScript
from secc.testing.clock import FakeClock
from secc.testing.evse import FakeStation
from secc.testing.harness import run_session
from secc.testing.pki import certificate_backend, make_credentials

START = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def request_types(schema: Schema) -> list[str]:
    mod = codec.schema_module(schema.value)
    body = next(f for f in mod.FIELDS[mod.Body] if f.name == "body_element")
    names = [m[2][1].__name__ for m in body.tinfo[1]]
    return [n for n in names if n.endswith("Req") or n == "SessionStop"]


def snapshots() -> dict[tuple[Schema, State], SeccSession]:
    """A copy of a session in each state reached by the scenarios (first time reached)."""
    seen: dict[tuple[Schema, State], SeccSession] = {}

    def keep(session: SeccSession, event: Any, actions: Any) -> None:
        key = (session.schema, session.state)
        if session.state is not State.ENDED and key not in seen:
            seen[key] = copy.deepcopy(session, {id(session.config): session.config})

    creds = make_credentials(START)
    eim = SessionConfig()
    pnc = SessionConfig(tls=True, trust=creds.trust, metering_receipts=True)
    for mode in ("AC_three_phase_core", "DC_extended"):
        run_session(eim, EvScript(energy_mode=mode), check=keep)
        clock = FakeClock(utc=START)
        station = FakeStation(backend=certificate_backend(creds, clock.random_bytes))
        script = EvScript(
            energy_mode=mode, payment="Contract", credentials=creds, install_certificate=True
        )
        run_session(pnc, script, check=keep, clock=clock, station=station)
    run_session(eim, EvScript(protocol="din", energy_mode="DC_extended"), check=keep)
    # the handshake state is the one before any event
    fresh = SeccSession(eim, now=0.0, random_bytes=bytes, utc_now=lambda: START)
    for schema in (Schema.ISO2, Schema.DIN):
        seen[(schema, State.WAIT_HANDSHAKE)] = fresh
    return seen


SNAPSHOTS = snapshots()
CASES = [
    (schema, state, request)
    for schema, table in TABLES.items()
    for state in table
    if state is not State.ENDED
    for request in request_types(schema)
    if request not in table[state]
]


def test_every_state_of_every_table_was_reached() -> None:
    missing = [
        (schema.value, state.value)
        for schema, table in TABLES.items()
        for state in table
        if state is not State.ENDED and (schema, state) not in SNAPSHOTS
    ]
    assert missing == []


def message(schema: Schema, request: str, session_id: bytes, dc: bool) -> Any:
    mod = codec.schema_module(schema.value)
    msg = mod.V2G_Message(
        header=mod.MessageHeader(session_id=session_id),
        body=mod.Body(body_element=minimal_element(schema.value, request, dc=dc)),
    )
    return codec.decode(codec.encode(msg), schema.value)


@pytest.mark.parametrize(("schema", "state", "req_type"), CASES, ids=str)
def test_absent_transition_is_a_sequence_error(schema: Schema, state: State, req_type: str) -> None:
    original = SNAPSHOTS[(schema, state)]
    session = copy.deepcopy(original, {id(original.config): original.config})
    dc = session.context.is_dc
    now = session.deadline - 0.001 if session.deadline else 1.0
    actions = session.handle(
        RequestReceived(message(schema, req_type, session.session_id, dc), schema), now
    )
    sends = [a for a in actions if isinstance(a, SendResponse)]
    assert len(sends) == 1
    body = sends[0].message.body.body_element
    assert type(body).__name__ == response_name(req_type)
    assert body.response_code.value == "FAILED_SequenceError"
    codec.encode(sends[0].message)  # the minimal FAILED response is valid for the encoder
    kinds = [type(a) for a in actions]
    assert kinds.index(OpenContactors) < kinds.index(CloseConnection) < kinds.index(SessionEnded)
    assert actions[-1] == SessionEnded(EndReason.SEQUENCE_ERROR, actions[-1].detail)
    assert session.state is State.ENDED and session.deadline is None
    assert (
        session.handle(
            RequestReceived(message(schema, req_type, session.session_id, dc), schema), now
        )
        == []
    )


@pytest.mark.parametrize(
    "state", [s for s in TABLES[Schema.ISO2] if s not in (State.ENDED, State.WAIT_HANDSHAKE)]
)
def test_a_second_handshake_fails_negotiation(state: State) -> None:
    original = SNAPSHOTS[(Schema.ISO2, state)]
    session = copy.deepcopy(original, {id(original.config): original.config})
    apphand = codec.schema_module("apphand")
    req = apphand.supportedAppProtocolReq(
        app_protocol=(
            apphand.AppProtocol(
                protocol_namespace="urn:iso:15118:2:2013:MsgDef",
                version_number_major=2,
                version_number_minor=0,
                schema_id=1,
                priority=1,
            ),
        )
    )
    now = session.deadline - 0.001 if session.deadline else 1.0
    actions = session.handle(RequestReceived(req, Schema.APPHAND), now)
    sent = next(a for a in actions if isinstance(a, SendResponse))
    assert sent.message.response_code.value == "Failed_NoNegotiation"
    assert actions[-1].reason is EndReason.SEQUENCE_ERROR
