"""Walk the -20 legal-transition tables (AC and DC): every -20 request type absent from a
state's entry, or present but in another schema, is answered FAILED_SequenceError with
that request's own response type (encoded by the codec) and the session closes with the
contactors open first.  Sessions in every state come from real runs through the codec."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from secc import codec
from secc.core.actions import CloseConnection, EndReason, OpenContactors, SendResponse, SessionEnded
from secc.core.context import State
from secc.core.events import AuthorizationResult, RequestReceived, Schema
from secc.core.failures import minimal_element, response_name
from secc.core.iso20.states import AC_TABLE, DC_TABLE
from secc.core.session import SeccSession
from tests.core.iso20_peer import Ev, config, start, to_precharged

SCHEMAS = (Schema.ISO20_COMMON, Schema.ISO20_AC, Schema.ISO20_DC)


def request_types() -> list[tuple[Schema, str]]:
    out = []
    for schema in SCHEMAS:
        mod = codec.schema_module(schema.value)
        out += [(schema, r[1]) for r in mod.DOCUMENT if r[1].endswith("Req")]
    return out


def snapshots() -> dict[tuple[bool, Any], SeccSession]:
    seen: dict[tuple[bool, Any], SeccSession] = {}
    for dc in (False, True):
        ev = Ev(cfg=config(schedule_wait=2.0), dc=dc, snapshots=seen)
        ev.handshake()
        ev.session_setup()
        ev.authorization_setup()
        ev.authorization()  # Ongoing
        ev.feed(AuthorizationResult(accepted=True, id_token="TAG1"))
        ev.authorization()
        ev.service_discovery()
        ev.service_selection(2 if dc else 1, 1)
        ev.charge_parameters()
        ev.schedule_exchange(False)  # Ongoing: no CSMS schedule yet
        ev.clock.advance(3)
        ev.schedule_exchange(False)
        if dc:
            to_precharged(ev)
        start(ev, False)
        ev.dc_loop(False) if dc else ev.ac_loop(False)
        ev.power_delivery("Standby")
        start(ev, False)
        ev.power_delivery("ScheduleRenegotiation")
        ev.schedule_exchange(False)  # Ongoing again: still no CSMS schedule
        ev.clock.advance(3)
        ev.schedule_exchange(False)
        start(ev, False)
        ev.power_delivery("Stop")
        if dc:
            ev.welding()
        ev.session_stop()
        refused = Ev(dc=dc, snapshots=seen)
        refused.handshake()
        refused.session_setup()
        refused.authorization_setup()
        refused.authorization(pnc=True)  # not offered: one more AuthorizationReq may come
        refused.feed(AuthorizationResult(accepted=False, id_token="TAG9"))
        refused.authorization()
    return seen


SNAPSHOTS = snapshots()
TABLES = {False: AC_TABLE, True: DC_TABLE}
CASES = [
    (dc, state, schema, name)
    for dc, table in TABLES.items()
    for state, entries in table.items()
    for schema, name in request_types()
    if name not in entries or entries[name][0] is not schema
]


def test_every_state_of_both_tables_was_reached() -> None:
    missing = [
        (dc, state.value)
        for dc, table in TABLES.items()
        for state in table
        if (dc, state) not in SNAPSHOTS
    ]
    assert missing == []


def request(schema: Schema, name: str, session_id: bytes, dc: bool) -> Any:
    """A schema-valid minimal request (choices the generic filler leaves empty get their
    first branch), encoded and decoded as it would arrive."""
    mod = codec.schema_module(schema.value)
    msg = minimal_element(schema.value, name, dc=dc)
    if name == "AuthorizationReq":
        msg = dataclasses.replace(msg, eim_a_req_authorization_mode=mod.EIM_AReqAuthorizationMode())
    elif name == "ScheduleExchangeReq":
        msg = dataclasses.replace(
            msg, scheduled_se_req_control_mode=mod.Scheduled_SEReqControlMode()
        )
    elif name == "MeteringConfirmationReq":
        data = dataclasses.replace(
            msg.signed_metering_data, dynamic_smdt_control_mode=mod.Dynamic_SMDTControlMode()
        )
        msg = dataclasses.replace(msg, signed_metering_data=data)
    msg = dataclasses.replace(msg, header=mod.MessageHeader(session_id=session_id, time_stamp=1))
    return codec.decode(codec.encode(msg), schema.value)


@pytest.mark.parametrize(("dc", "state", "schema", "name"), CASES, ids=str)
def test_absent_transition_is_a_sequence_error(
    dc: bool, state: Any, schema: Schema, name: str
) -> None:
    original = SNAPSHOTS[(dc, state)]
    session = copy.deepcopy(original, {id(original.config): original.config})
    now = session.deadline - 0.001 if session.deadline else 1.0
    msg = request(schema, name, session.session_id, dc)
    actions = session.handle(RequestReceived(msg, schema), now)
    sends = [a for a in actions if isinstance(a, SendResponse)]
    assert len(sends) == 1
    res = sends[0]
    assert res.name == response_name(name) and res.schema is schema
    back = codec.decode(codec.encode(res.message), schema.value)
    assert back.response_code.value == "FAILED_SequenceError"
    if session.session_id != b"\x00":
        assert bytes(back.header.session_id) == session.session_id
    kinds = [type(a) for a in actions]
    assert kinds.index(OpenContactors) < kinds.index(SendResponse) < kinds.index(CloseConnection)
    assert kinds.index(CloseConnection) < kinds.index(SessionEnded)
    assert actions[-1] == SessionEnded(EndReason.SEQUENCE_ERROR, actions[-1].detail)
    assert session.state is State.ENDED and session.deadline is None
    assert session.handle(RequestReceived(msg, schema), now) == []


UNRUN = [
    (schema, r[1])
    for schema in (Schema.ISO20_ACDP, Schema.ISO20_WPT)
    for r in codec.schema_module(schema.value).DOCUMENT
    if r[1].endswith("Req") and r[2] is not None
]


@pytest.mark.parametrize("dc", [False, True], ids=["AC", "DC"])
@pytest.mark.parametrize(("schema", "element"), UNRUN, ids=str)
@pytest.mark.parametrize("where", ["loop", "service discovery"])
def test_requests_of_services_not_offered_get_failed_sequence_error(
    schema: Schema, element: str, dc: bool, where: str
) -> None:
    """WPT and ACDP are never offered (ServiceDiscovery lists the namespace's AC or DC
    service only): any of their requests is not expected in any state, so it gets its
    own response element (in its own schema, by element name: ACDP_ConnectReq and
    ACDP_DisconnectReq share one type) with FAILED_SequenceError and the session's ID,
    and the session ends with the contactors open first."""
    state = next(
        s
        for (d, s) in SNAPSHOTS
        if d == dc and ("Loop" if where == "loop" else "ServiceDisc") in s.value
    )
    original = SNAPSHOTS[(dc, state)]
    session = copy.deepcopy(original, {id(original.config): original.config})
    mod = codec.schema_module(schema.value)
    cls = next(r[2] for r in mod.DOCUMENT if r[1] == element)
    msg = dataclasses.replace(
        minimal_element(schema.value, cls.__name__),
        header=mod.MessageHeader(session_id=session.session_id, time_stamp=1),
    )
    root, decoded, _ = codec.decode_checked(codec.encode(msg, name=element), schema.value)
    assert root.local == element
    actions = session.handle(RequestReceived(decoded, schema, (), root.local), 1.0)
    sends = [a for a in actions if isinstance(a, SendResponse)]
    assert len(sends) == 1
    res = sends[0]
    wanted = element[:-3] + "Res"
    assert res.schema is schema and res.name == wanted
    payload = res.exi if res.exi is not None else codec.encode(res.message)
    back_root, back, _ = codec.decode_checked(payload, schema.value)
    assert back_root.local == wanted
    assert back.response_code.value == "FAILED_SequenceError"
    assert bytes(back.header.session_id) == session.session_id
    kinds = [type(a) for a in actions]
    assert kinds.index(OpenContactors) < kinds.index(SendResponse) < kinds.index(CloseConnection)
    assert actions[-1] == SessionEnded(EndReason.SEQUENCE_ERROR, actions[-1].detail)
    assert session.state is State.ENDED
