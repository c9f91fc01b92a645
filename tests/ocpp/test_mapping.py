"""The pure mapping: core actions to OCPP payloads (validated against the OCPP 2.0.1 JSON
schemas of the ``ocpp`` package) and OCPP answers to core events, including malformed ones."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from ocpp.messages import Call, CallResult, _validate_payload

from certs.ocsp import hash_data
from certs.testpki import CHAINS, TestPki, build_test_pki
from secc.core.actions import EndReason, RequestAuthorization, RequestCertificate
from secc.ocpp_bridge import mapping
from secc.ocpp_bridge.mapping import MappingError, MeterSample, TxEvent

NOW = dt.datetime(2026, 11, 24, 5, 6, 7, 891234, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return build_test_pki(dt.datetime.now(dt.UTC))


def valid_request(action: str, payload: dict[str, Any]) -> None:
    _validate_payload(Call("1", action, payload), "2.0.1")


def valid_response(action: str, payload: dict[str, Any]) -> None:
    _validate_payload(CallResult("1", payload, action), "2.0.1")


def pnc(pki: TestPki) -> RequestAuthorization:
    chain = tuple(c.public_bytes(Encoding.DER) for c in pki.chain(*CHAINS["contract"]))
    return RequestAuthorization("eMAID", pki.options.emaid, chain)


def test_timestamps_are_utc_milliseconds_with_z() -> None:
    assert mapping.ocpp_timestamp(NOW) == "2026-11-24T05:06:07.891Z"
    cet = NOW.astimezone(dt.timezone(dt.timedelta(hours=1)))
    assert mapping.ocpp_timestamp(cet) == "2026-11-24T05:06:07.891Z"
    with pytest.raises(MappingError):
        mapping.ocpp_timestamp(NOW.replace(tzinfo=None))


def test_authorize_with_hash_data(pki: TestPki) -> None:
    request = pnc(pki)
    chain = mapping.load_chain(request.certificate_chain)
    entries = mapping.contract_hash_data(chain, [pki.cert("mo_root")])
    assert len(entries) == 3
    leaf = hash_data(pki.cert("contract"), pki.cert("mo_sub2")).to_ocpp()
    assert {k: entries[0][k] for k in leaf} == leaf
    assert entries[0]["responderURL"].startswith("http://")
    assert not entries[0]["serialNumber"].startswith("0")
    # without the MO root the top sub-CA cannot be hashed and is left out
    assert len(mapping.contract_hash_data(chain, [])) == 2
    payload = mapping.authorize_request(request, hash_data_entries=entries)
    assert payload["idToken"] == {"idToken": pki.options.emaid, "type": "eMAID"}
    valid_request("Authorize", payload)


def test_authorize_with_pem_chain(pki: TestPki) -> None:
    request = pnc(pki)
    text = mapping.pem_chain(mapping.load_chain(request.certificate_chain))
    payload = mapping.authorize_request(request, certificate_pem=text)
    assert payload["certificate"].count("BEGIN CERTIFICATE") == 3  # type: ignore[union-attr]
    assert "iso15118CertificateHashData" not in payload
    valid_request("Authorize", payload)


def test_authorize_eim_and_bad_tokens() -> None:
    payload = mapping.authorize_request(RequestAuthorization("ISO14443", "04A2B3C4D5"))
    assert payload == {"idToken": {"idToken": "04A2B3C4D5", "type": "ISO14443"}}
    valid_request("Authorize", payload)
    other = mapping.authorize_request(RequestAuthorization("ExternalPayment", "X1"))
    assert other["idToken"] == {"idToken": "X1", "type": "Local"}
    for bad in ("", "A" * 37):
        with pytest.raises(MappingError):
            mapping.authorize_request(RequestAuthorization("eMAID", bad))
    with pytest.raises(MappingError):
        mapping.load_chain((b"\x30\x03not",))


@pytest.mark.parametrize(
    ("kind", "token", "cert", "accepted"),
    [
        ("eMAID", "Accepted", "Accepted", True),
        ("eMAID", "Accepted", None, False),
        ("eMAID", "Accepted", "CertificateRevoked", False),
        ("eMAID", "Blocked", "Accepted", False),
        ("ISO14443", "Accepted", None, True),
        ("ISO14443", "Invalid", None, False),
    ],
)
def test_authorization_result(kind: str, token: str, cert: str | None, accepted: bool) -> None:
    response: dict[str, Any] = {"idTokenInfo": {"status": token}}
    if cert is not None:
        response["certificateStatus"] = cert
    valid_response("Authorize", response)
    result = mapping.authorization_result(RequestAuthorization(kind, "TOKEN1"), response)
    assert result.accepted is accepted
    assert result.id_token == "TOKEN1"
    assert result.certificate_status == cert
    assert result.reason


@pytest.mark.parametrize(
    "response",
    [
        None,
        [],
        "Accepted",
        {},
        {"idTokenInfo": None},
        {"idTokenInfo": {"status": 1}},
        {"idTokenInfo": {"status": "Accepted"}, "certificateStatus": 3},
    ],
)
def test_malformed_authorize_response(response: object) -> None:
    with pytest.raises(MappingError):
        mapping.authorization_result(RequestAuthorization("eMAID", "T"), response)


def test_get_15118_ev_certificate_round_trip() -> None:
    exi = bytes(range(256)) * 3
    payload = mapping.get_15118_ev_certificate_request(RequestCertificate("Install", exi))
    valid_request("Get15118EVCertificate", payload)
    assert base64.b64decode(payload["exiRequest"]) == exi  # type: ignore[arg-type]
    assert payload["iso15118SchemaVersion"] == "urn:iso:15118:2:2013:MsgDef"
    for bad in (
        RequestCertificate("Renew", exi),
        RequestCertificate("Update", b""),
        RequestCertificate("Update", b"x" * 4201),
    ):
        with pytest.raises(MappingError):
            mapping.get_15118_ev_certificate_request(bad)
    ok = {"status": "Accepted", "exiResponse": base64.b64encode(b"\x80res").decode()}
    valid_response("Get15118EVCertificate", ok)
    assert mapping.certificate_result(ok).exi_response == b"\x80res"
    failed = mapping.certificate_result(
        {"status": "Failed", "exiResponse": "", "statusInfo": {"reasonCode": "NoContract"}}
    )
    assert failed.exi_response is None
    assert "NoContract" in failed.reason
    for bad_answer in (
        {"status": "Accepted", "exiResponse": "!!not base64"},
        {"status": "Accepted", "exiResponse": ""},
        {"status": "Accepted"},
        {"exiResponse": "AAAA"},
        "Accepted",
    ):
        with pytest.raises(MappingError):
            mapping.certificate_result(bad_answer)


def test_transaction_events_are_schema_valid() -> None:
    sample = MeterSample(energy_wh=1234.5678, power_w=11000, current_a=16, voltage_v=400, soc=55)
    started = mapping.transaction_event(
        TxEvent(
            "Started",
            "tx-1",
            0,
            "CablePluggedIn",
            NOW,
            charging_state="EVConnected",
            meter=sample,
            meter_context="Transaction.Begin",
        )
    )
    assert started["evse"] == {"id": 1, "connectorId": 1}
    assert "offline" not in started
    values = started["meterValue"][0]["sampledValue"]  # type: ignore[index]
    assert [v["measurand"] for v in values] == [
        "Energy.Active.Import.Register",
        "Power.Active.Import",
        "Current.Import",
        "Voltage",
        "SoC",
    ]
    assert values[0]["value"] == 1234.568
    updated = mapping.transaction_event(
        TxEvent("Updated", "tx-1", 1, "Authorized", NOW, id_token="DE8AACA2B3C4D5", offline=True)
    )
    assert updated["offline"] is True
    assert updated["idToken"] == {"idToken": "DE8AACA2B3C4D5", "type": "eMAID"}
    for payload in (started, updated):
        valid_request("TransactionEvent", payload)
    for reason in EndReason:
        for remote in (False, True):
            ended = mapping.transaction_event(
                TxEvent(
                    "Ended",
                    "tx-1",
                    2,
                    mapping.end_trigger(reason, remote=remote),
                    NOW,
                    stopped_reason=mapping.stopped_reason(reason, remote=remote),
                    meter=MeterSample(energy_wh=10),
                    meter_context="Transaction.End",
                )
            )
            valid_request("TransactionEvent", ended)
    assert mapping.stopped_reason(EndReason.STATION_STOP, remote=True) == "Remote"
    # the EV's SessionStopReq in answer to the station's stop request after RequestStop
    assert mapping.stopped_reason(EndReason.EV_STOP, remote=True) == "Remote"
    assert mapping.end_trigger(EndReason.EV_STOP, remote=True) == "RemoteStop"
    assert mapping.end_trigger(EndReason.EV_STOP) != "RemoteStop"
    assert mapping.stopped_reason(EndReason.EVSE_FAULT, "ground_fault") == "GroundFault"
    assert mapping.stopped_reason(EndReason.EV_STOP) == "StoppedByEV"
    assert "meterValue" not in mapping.transaction_event(
        TxEvent("Updated", "t", 3, "MeterValuePeriodic", NOW, meter=MeterSample())
    )
    with pytest.raises(MappingError):
        mapping.transaction_event(TxEvent("Paused", "t", 0, "Trigger", NOW))
    with pytest.raises(MappingError):
        mapping.transaction_event(TxEvent("Updated", "t", -1, "Trigger", NOW))


def test_boot_answer() -> None:
    answer = mapping.boot_answer({"status": "Pending", "interval": 7, "currentTime": "x"})
    assert (answer.status, answer.interval) == ("Pending", 7)
    for bad in (
        {"status": "Maybe", "interval": 1, "currentTime": "x"},
        {"status": "Accepted", "interval": True, "currentTime": "x"},
        {"status": "Accepted", "interval": 1},
    ):
        with pytest.raises(MappingError):
            mapping.boot_answer(bad)
    assert mapping.transaction_event_response_status({}) is None
    assert mapping.transaction_event_response_status({"idTokenInfo": {"status": "Blocked"}}) == (
        "Blocked"
    )
