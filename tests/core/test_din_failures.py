"""Every refusal reaches the EV as a schema-valid FAILED response, in ISO 15118-2 and DIN.

Issue 16: DIN sessions refused with codes DIN SPEC 70121 does not have
(FAILED_WrongEnergyTransferMode, FAILED_NoChargeServiceSelected, FAILED_ContactorError);
building the response failed, nothing was sent, the connection closed, and the log said
"answered FAILED_...".  Here every code any handler can raise (the PeerError classes, every
``FAILED_*`` literal in the core and in the certificate checks it reports) goes through
the encoder for every request type of both schemas, and real DIN sessions are refused
end to end.
"""

from __future__ import annotations

import ast
import copy
import logging
from pathlib import Path
from typing import Any

import pytest

from secc import codec
from secc.core.actions import EndReason, SendResponse, SessionEnded
from secc.core.config import SessionConfig
from secc.core.context import State
from secc.core.events import RequestReceived, Schema
from secc.core.failures import (
    PeerError,
    failed_response,
    minimal_element,
    response_code,
    response_name,
)
from secc.core.iso2.states import TABLES
from secc.ev.iso2 import EvFaults, EvScript
from secc.testing.evse import FakeEvse
from secc.testing.harness import Outcome, run_session
from tests.core.test_legality import SNAPSHOTS, request_types

ROOT = Path(__file__).resolve().parents[2]
# where refusal codes come from: the core's handlers and the chain verdicts they pass on
SOURCES = [*sorted((ROOT / "secc" / "core").rglob("*.py")), ROOT / "certs" / "validate.py"]
SCHEMAS = (Schema.ISO2, Schema.DIN)


def _subclasses(cls: type[PeerError]) -> list[type[PeerError]]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def raised_codes() -> set[str]:
    """Every ResponseCode a refusal can carry: the PeerError classes' codes and every
    ``FAILED*`` string literal in the sources (``code=`` arguments, verdict constants,
    status maps)."""
    codes = {PeerError.code} | {c.code for c in _subclasses(PeerError)}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value.startswith("FAILED")
                and " " not in node.value
            ):
                codes.add(node.value)
    return codes


CODES = sorted(raised_codes())


def test_the_walk_sees_the_codes_of_the_report() -> None:
    for code in (
        "FAILED_WrongEnergyTransferMode",
        "FAILED_NoChargeServiceSelected",
        "FAILED_ContactorError",
        "FAILED_CertificateRevoked",
        "FAILED_WrongEnergyTransferType",
    ):
        assert code in CODES


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.value)
@pytest.mark.parametrize("dc", [True, False], ids=["dc", "ac"])
def test_every_raised_code_for_every_request_type_encodes(schema: Schema, dc: bool) -> None:
    mod = codec.schema_module(schema.value)
    known = {c.value for c in mod.ResponseCode}
    for request in request_types(schema):
        for code in CODES:
            body = failed_response(schema.value, request, code, dc=dc, evse_id="DE*ABC*E1234567*1")
            assert type(body).__name__ == response_name(request)
            msg = mod.V2G_Message(
                header=mod.MessageHeader(session_id=bytes(8)), body=mod.Body(body_element=body)
            )
            back = codec.decode(codec.encode(msg), schema.value).body.body_element
            answered = back.response_code.value
            assert answered.startswith("FAILED"), (request, code, answered)
            assert answered == (code if code in known else response_code(schema.value, code))


@pytest.mark.parametrize(
    ("schema", "code", "expected"),
    [
        ("din", "FAILED_WrongEnergyTransferMode", "FAILED_WrongEnergyTransferType"),
        ("din", "FAILED_NoChargeServiceSelected", "FAILED_ServiceSelectionInvalid"),
        ("din", "FAILED_ContactorError", "FAILED"),
        ("din", "FAILED_CertificateRevoked", "FAILED_CertChainError"),
        ("din", "FAILED_CertificateNotAllowedAtThisEVSE", "FAILED_CertChainError"),
        ("din", "FAILED_SequenceError", "FAILED_SequenceError"),
        ("iso2", "FAILED_WrongEnergyTransferType", "FAILED_WrongEnergyTransferMode"),
        ("iso2", "FAILED_EVSEPresentVoltageToLow", "FAILED"),
        ("iso2", "FAILED_ContactorError", "FAILED_ContactorError"),
        ("iso2", "FAILED_SomethingNew", "FAILED"),
    ],
)
def test_codes_a_schema_lacks_become_its_equivalent(schema: str, code: str, expected: str) -> None:
    assert response_code(schema, code) == expected


# --- real DIN sessions ---------------------------------------------------------------------

DIN_CONFIG = SessionConfig(energy_modes=("DC_extended",))


def _refused(out: Outcome, response: str, code: str) -> None:
    """The EV heard ``response`` with ``code`` last, before the connection closed."""
    assert out.responses[-1] == (response, code), out.responses[-3:]
    assert out.end is not None and out.end.reason is EndReason.FAILED_RESPONSE
    assert out.end.detail.startswith(code)
    kinds = out.kinds()
    assert kinds.index("OpenContactors") < len(kinds) - 1 - kinds[::-1].index("SendResponse")


def test_din_wrong_energy_transfer_type_reaches_the_car(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="secc.core.session")
    out = run_session(
        DIN_CONFIG,
        EvScript(
            protocol="din",
            energy_mode="DC_extended",
            faults=EvFaults(requested_mode="AC_three_phase_core"),
        ),
    )
    _refused(out, "ChargeParameterDiscoveryRes", "FAILED_WrongEnergyTransferType")
    assert "answered FAILED_WrongEnergyTransferType" in caplog.text
    assert "FAILED_WrongEnergyTransferMode" not in caplog.text


def test_din_without_the_charge_service_reaches_the_car() -> None:
    out = run_session(
        DIN_CONFIG,
        EvScript(protocol="din", energy_mode="DC_extended", faults=EvFaults(services=((2, None),))),
    )
    _refused(out, "ServicePaymentSelectionRes", "FAILED_ServiceSelectionInvalid")


def test_din_contactor_error_reaches_the_car() -> None:
    out = run_session(
        DIN_CONFIG,
        EvScript(protocol="din", energy_mode="DC_extended", loop_interval=2.0),
        evse=FakeEvse(contactors_stuck_open=True),
    )
    _refused(out, "CurrentDemandRes", "FAILED")
    assert "contactor" in out.end.detail  # type: ignore[union-attr]


def test_iso2_keeps_its_own_codes() -> None:
    out = run_session(
        DIN_CONFIG,
        EvScript(energy_mode="DC_extended", faults=EvFaults(requested_mode="AC_three_phase_core")),
    )
    _refused(out, "ChargeParameterDiscoveryRes", "FAILED_WrongEnergyTransferMode")


# --- every handler, from every state a real session reaches --------------------------------

LEGAL = sorted(
    (schema.value, state.value, request)
    for schema, table in TABLES.items()
    if schema in SCHEMAS
    for state, row in table.items()
    if state is not State.ENDED and (schema, state) in SNAPSHOTS
    for request in row
)


@pytest.mark.parametrize(("schema_name", "state_name", "request_name"), LEGAL)
def test_every_refusal_of_a_handler_is_sent(
    schema_name: str, state_name: str, request_name: str
) -> None:
    """The smallest valid request of each type legal in each state: whatever the handler
    answers, a session that ends with a FAILED response sends one that encodes."""
    schema = Schema(schema_name)
    original = SNAPSHOTS[(schema, State(state_name))]
    session = copy.deepcopy(original, {id(original.config): original.config})
    mod = codec.schema_module(schema_name)
    body = minimal_element(schema_name, request_name, dc=session.context.is_dc)
    msg: Any = mod.V2G_Message(
        header=mod.MessageHeader(session_id=session.session_id), body=mod.Body(body_element=body)
    )
    msg = codec.decode(codec.encode(msg), schema_name)
    now = session.deadline - 0.001 if session.deadline else 1.0
    actions = session.handle(RequestReceived(msg, schema), now)
    ends = [a for a in actions if isinstance(a, SessionEnded)]
    sends = [a for a in actions if isinstance(a, SendResponse)]
    for send in sends:
        codec.decode(codec.encode(send.message), schema_name)
    if ends and ends[0].reason is EndReason.FAILED_RESPONSE:
        assert sends, f"{request_name} in {state_name}: refused with nothing sent"
        code = sends[-1].message.body.body_element.response_code.value
        assert code.startswith("FAILED") and ends[0].detail.startswith(code)
