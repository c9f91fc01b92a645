"""Random schema-valid -20 request contents in every state where the request is legal:
the core answers (OK, a WARNING that keeps the session, or a FAILED code that ends it)
and never raises; every response it sends encodes in its own schema; every end opens the
contactors first.  Values come from the codec's FIELDS-driven strategies
(tests/codec/strategies.py): extreme RationalNumbers, odd strings, optional fields present
or not, choices of every branch (BPT, the other control mode)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from secc import codec
from secc.core.actions import CloseConnection, OpenContactors, SendResponse, SessionEnded
from secc.core.context import State
from secc.core.events import RequestReceived
from tests.codec.strategies import instances
from tests.core.test_iso20_legality import SNAPSHOTS, TABLES

LEGAL = sorted(
    (dc, state.value, schema.value, name)
    for dc, table in TABLES.items()
    for state, row in table.items()
    if (dc, state) in SNAPSHOTS
    for name, (schema, _handler) in row.items()
)
STATES = {s.value: s for (_dc, s) in SNAPSHOTS}


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), case=st.sampled_from(LEGAL), keep_session=st.booleans())
def test_random_contents_of_legal_requests(
    data: st.DataObject, case: tuple[bool, str, str, str], keep_session: bool
) -> None:
    dc, state_name, schema_name, name = case
    original = SNAPSHOTS[(dc, STATES[state_name])]
    session = copy.deepcopy(original, {id(original.config): original.config})
    mod = codec.schema_module(schema_name)
    msg: Any = data.draw(instances(schema_name, getattr(mod, name), frozenset({mod.Signature})))
    if keep_session:  # mostly the right SessionID, so that handlers see the content
        header = dataclasses.replace(msg.header, session_id=session.session_id)
        msg = dataclasses.replace(msg, header=header)
    msg = codec.decode(codec.encode(msg), schema_name)
    now = session.deadline - 0.001 if session.deadline else 1.0
    schema = TABLES[dc][STATES[state_name]][name][0]
    actions = session.handle(RequestReceived(msg, schema), now)
    sends = [a for a in actions if isinstance(a, SendResponse)]
    for send in sends:
        back = codec.decode(codec.encode(send.message), send.schema.value)
        event(f"{type(back).__name__} {back.response_code.value}")
    kinds = [type(a) for a in actions]
    if SessionEnded in kinds:
        assert (
            kinds.index(OpenContactors) < kinds.index(CloseConnection) < kinds.index(SessionEnded)
        )
        assert session.state is State.ENDED
        if sends and type(sends[0].message).__name__ != "SessionStopRes":
            assert not sends[0].message.response_code.value.startswith(("OK", "WARNING"))
    else:
        assert len(sends) == 1, kinds
        assert sends[0].message.response_code.value.startswith(("OK", "WARNING"))
