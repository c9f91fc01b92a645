"""Random schema-valid request contents in every state where the request is legal: the
core answers (or refuses with a FAILED code) and never raises; every response it sends
encodes; every end opens the contactors first.  Values come from the codec's FIELDS-driven
strategies (tests/codec/strategies.py): extreme PhysicalValues, odd strings, optional
fields present or not, signatures that mean nothing."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from secc import codec
from secc.core.actions import CloseConnection, OpenContactors, SendResponse, SessionEnded
from secc.core.context import State
from secc.core.events import RequestReceived, Schema
from secc.core.iso2.states import TABLES
from tests.codec.strategies import messages
from tests.core.test_legality import SNAPSHOTS

LEGAL = sorted(
    (schema.value, state.value, request)
    for schema, table in TABLES.items()
    for state, row in table.items()
    if state is not State.ENDED and (schema, state) in SNAPSHOTS
    for request in row
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), case=st.sampled_from(LEGAL), keep_session=st.booleans())
def test_random_contents_of_legal_requests(
    data: st.DataObject, case: tuple[str, str, str], keep_session: bool
) -> None:
    schema_name, state_name, request = case
    schema, state = Schema(schema_name), State(state_name)
    original = SNAPSHOTS[(schema, state)]
    session = copy.deepcopy(original, {id(original.config): original.config})
    mod = codec.schema_module(schema_name)
    msg: Any = data.draw(messages(schema_name, getattr(mod, request)))
    if keep_session:  # mostly the right SessionID, so that handlers see the content
        msg = dataclasses.replace(
            msg, header=dataclasses.replace(msg.header, session_id=session.session_id)
        )
    msg = codec.decode(codec.encode(msg), schema_name)
    now = session.deadline - 0.001 if session.deadline else 1.0
    actions = session.handle(RequestReceived(msg, schema), now)
    sends = [a for a in actions if isinstance(a, SendResponse)]
    for send in sends:
        codec.encode(send.message)
        body = send.message.body.body_element
        event(f"{type(body).__name__} {body.response_code.value}")
    kinds = [type(a) for a in actions]
    if SessionEnded in kinds:
        assert (
            kinds.index(OpenContactors) < kinds.index(CloseConnection) < kinds.index(SessionEnded)
        )
        assert session.state is State.ENDED
    elif session.state is not State.CERTIFICATE_WAIT:
        assert len(sends) == 1, kinds
        body = sends[0].message.body.body_element
        assert body.response_code.value.startswith("OK")
