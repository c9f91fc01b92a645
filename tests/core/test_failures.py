"""Minimal FAILED responses for every request type, timer budgets, and PeerError codes."""

from __future__ import annotations

import pytest

from secc import codec
from secc.core.config import Timers
from secc.core.failures import PeerError, failed_response, response_name

SCHEMAS = ("iso2", "din")


def request_types(schema: str) -> list[str]:
    mod = codec.schema_module(schema)
    body = next(f for f in mod.FIELDS[mod.Body] if f.name == "body_element")
    names = [m[2][1].__name__ for m in body.tinfo[1]]
    return [n for n in names if n.endswith("Req") or n == "SessionStop"]


@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize("dc", [True, False])
def test_every_failed_code_for_every_request_type_encodes(schema: str, dc: bool) -> None:
    mod = codec.schema_module(schema)
    codes = [c.value for c in mod.ResponseCode if c.value.startswith("FAILED")]
    for request in request_types(schema):
        for code in codes:
            body = failed_response(schema, request, code, dc=dc, evse_id="DE*ABC*E1234567*1")
            assert type(body).__name__ == response_name(request)
            msg = mod.V2G_Message(
                header=mod.MessageHeader(session_id=bytes(8)), body=mod.Body(body_element=body)
            )
            back = codec.decode(codec.encode(msg), schema)
            assert back.body.body_element.response_code.value == code
            processing = getattr(back.body.body_element, "evse_processing", None)
            assert processing is None or processing.value == "Finished"


def test_response_name() -> None:
    assert response_name("SessionSetupReq") == "SessionSetupRes"
    assert response_name("SessionStop") == "SessionStopRes"
    with pytest.raises(ValueError, match="not a request"):
        response_name("SessionSetupRes")


def test_peer_error_carries_its_code() -> None:
    err = PeerError("chain broken", code="FAILED_CertChainError")
    assert err.code == "FAILED_CertChainError" and str(err) == "chain broken"
    assert PeerError().code == "FAILED"


def test_budgets_follow_table_109() -> None:
    t = Timers()
    assert t.budget("CurrentDemandReq") == 0.025
    assert t.budget("PowerDeliveryReq") == 4.5
    assert t.budget("CertificateInstallationReq") == 4.5
    assert t.budget("ChargingStatusReq") == 1.5
    # ISO 15118-20 Tables 216/217: 0.25 s for a charge loop, 1.5 s for the DC sub-steps
    assert t.budget("DC_ChargeLoopReq") == t.budget("AC_ChargeLoopReq") == 0.25
    assert t.budget("DC_CableCheckReq") == t.budget("DC_PreChargeReq") == 1.5
    assert Timers(msg_performance=1.0).budget("SessionSetupReq") == 1.0


def test_session_config_rejects_what_iso_cannot_carry() -> None:
    from secc.core.config import SessionConfig
    from secc.errors import ConfigError

    with pytest.raises(ConfigError, match="7 to 37"):
        SessionConfig(evse_id="DE*1")
    with pytest.raises(ConfigError, match="energy_modes"):
        SessionConfig(energy_modes=("AC_four_phase",))
    with pytest.raises(ConfigError, match="protocols"):
        SessionConfig(protocols=("urn:iso:15118:20:2022:MsgDef",))
    assert SessionConfig(tls=True).payment_options == ("Contract", "ExternalPayment")
    assert SessionConfig(tls=True, pnc_enabled=False).payment_options == ("ExternalPayment",)
