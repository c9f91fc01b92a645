"""Values outside their XSD facets, end to end through the codec and the session core.

A production car sends ChargingProfileEntryMaxNumberOfPhasesInUse = 4 (the 2-bit code the
XSD's 1..3 leaves free) and the deployed codecs accept it; a back end's
CertificateInstallationRes can carry an eMAID longer than the 15 characters the XSD
allows.  The codec decodes both and reports them (secc.codec.Violation); the core logs
them, uses what it can (4 phases are passed on as 3) and refuses only what it cannot use,
with the handler's own code.  The EV here encodes its requests with the lenient encoder
(what such a car puts on the wire); the station's responses stay strictly encoded.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

import pytest

from secc import codec
from secc.core.actions import EndReason, EvChargingSchedule, RequestCertificate
from secc.core.config import SessionConfig
from secc.ev.iso2 import EvFaults, EvScript, EvSimulator
from secc.testing.clock import FakeClock
from secc.testing.evse import FakeStation
from secc.testing.harness import run_session
from secc.testing.pki import Credentials, certificate_backend, make_credentials, sign_elements

AC = "AC_three_phase_core"
START = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
PHASES = "ChargingProfileEntryMaxNumberOfPhasesInUse"


def _with_phases(monkeypatch: pytest.MonkeyPatch, phases: int) -> None:
    """The EV's PowerDelivery Start ChargingProfile says ``phases`` in every entry."""
    original = EvSimulator._power_delivery

    def power_delivery(self: EvSimulator) -> Any:
        req = original(self)
        if req.charging_profile is None:
            return req
        entries = tuple(
            dataclasses.replace(e, charging_profile_entry_max_number_of_phases_in_use=phases)
            for e in req.charging_profile.profile_entry
        )
        profile = dataclasses.replace(req.charging_profile, profile_entry=entries)
        return dataclasses.replace(req, charging_profile=profile)

    monkeypatch.setattr(EvSimulator, "_power_delivery", power_delivery)


def test_power_delivery_with_four_phases_is_answered_ok(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _with_phases(monkeypatch, 4)
    with caplog.at_level(logging.WARNING):
        out = run_session(SessionConfig(), EvScript(energy_mode=AC))
    sent = [exi for _, d, name, exi in out.trace if d == "->" and name == "PowerDeliveryReq"]
    start = codec.decode_checked(sent[0], "iso2")
    (v,) = start.violations  # on the wire: the code for 4, reported by the decoder
    assert v.path.endswith(f"/ChargingProfile/ProfileEntry[0]/{PHASES}")
    assert (v.facet, v.limit, v.value) == ("maxInclusive", 3, 4)
    with pytest.raises(codec.DecodeError, match="is above 3"):
        codec.decode(sent[0], "iso2", strict=True)
    with pytest.raises(codec.EncodeError):
        codec.encode(start.message)  # the strict encoder refuses it
    assert codec.encode(start.message, lenient=True) == sent[0]
    # the station answers OK and charges; the CSMS hears of 3 phases, the most there are
    assert out.code_of("PowerDeliveryRes")[0] == "OK"
    assert "CloseContactors" in out.kinds() and out.code_of("ChargingStatusRes")
    assert out.end is not None and out.end.reason is EndReason.EV_STOP
    (schedule,) = [a for _, a in out.actions if isinstance(a, EvChargingSchedule)]
    assert all(phases == 3 for _, _, phases in schedule.entries)
    assert f"PowerDeliveryReq: accepted a value outside its XSD facet: {v}" in caplog.text


def test_in_range_phases_are_passed_on_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_phases(monkeypatch, 2)
    out = run_session(SessionConfig(), EvScript(energy_mode=AC))
    assert out.code_of("PowerDeliveryRes")[0] == "OK"
    (schedule,) = [a for _, a in out.actions if isinstance(a, EvChargingSchedule)]
    assert [p for _, _, p in schedule.entries] == [2]


def test_unusable_value_is_refused_with_the_handlers_code() -> None:
    """SAScheduleTupleID 256 fits the 8 bits of SAIDType (1..255, coded v-1) and decodes
    with a violation; no schedule 256 was offered: FAILED_TariffSelectionInvalid."""
    out = run_session(SessionConfig(), EvScript(energy_mode=AC, faults=EvFaults(schedule_id=256)))
    sent = [exi for _, d, name, exi in out.trace if d == "->" and name == "PowerDeliveryReq"]
    (v,) = codec.decode_checked(sent[0], "iso2").violations
    assert v.path.endswith("/PowerDeliveryReq/SAScheduleTupleID") and v.value == 256
    assert out.responses[-1] == ("PowerDeliveryRes", "FAILED_TariffSelectionInvalid")
    assert "CloseContactors" not in out.kinds()


@pytest.fixture(scope="module")
def creds() -> Credentials:
    return make_credentials(START)


LONG_EMAID = "DE-8AA-CA2B3C4D5-L"  # 18: the contract certificate's eMAID with its separators


def _long_emaid_backend(creds: Credentials, clock: FakeClock) -> Any:
    """The test CPS back end, with a longer eMAID in its answer (signed again)."""
    plain = certificate_backend(creds, clock.random_bytes)
    iso2 = codec.schema_module("iso2")

    def answer(request: RequestCertificate) -> bytes | None:
        data = plain(request)
        assert data is not None
        msg = codec.decode(data, "iso2")
        body = msg.body.body_element
        emaid = iso2.EMAID(id=body.emaid.id, value=LONG_EMAID)
        body = dataclasses.replace(body, emaid=emaid)
        signature = sign_elements(
            [
                (body.contract_signature_cert_chain, "ContractSignatureCertChain"),
                (body.contract_signature_encrypted_private_key, None),
                (body.dh_public_key, "DHpublickey"),
                (emaid, "eMAID"),
            ],
            creds.pki["cps"].key,
        )
        header = dataclasses.replace(msg.header, signature=signature)
        out = dataclasses.replace(msg, header=header, body=iso2.Body(body_element=body))
        with pytest.raises(codec.EncodeError):
            codec.encode(out)  # a strict encoder could not even have built it
        return codec.encode(out, lenient=True)

    return answer


def test_certificate_installation_res_with_a_long_emaid_reaches_the_ev(
    creds: Credentials, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(utc=START)
    station = FakeStation(backend=_long_emaid_backend(creds, clock))
    config = SessionConfig(tls=True, trust=creds.trust)
    script = EvScript(
        payment="Contract", credentials=creds, energy_mode=AC, install_certificate=True
    )
    with caplog.at_level(logging.WARNING):
        out = run_session(config, script, station=station, clock=clock)
    assert ("CertificateInstallationRes", "OK") in out.responses
    (res,) = [exi for _, d, n, exi in out.trace if n == "CertificateInstallationRes"]
    got = codec.decode_checked(res, "iso2")
    (v,) = got.violations
    path = "/V2G_Message/Body/CertificateInstallationRes/eMAID/value"
    assert (v.path, v.facet, v.limit, v.value) == (path, "maxLength", 15, LONG_EMAID)
    assert got.message.body.body_element.emaid.value == LONG_EMAID
    assert "CertificateInstallationRes: a back-end value outside its XSD facet" in caplog.text
    # the EV opened the key and charged with the installed contract
    assert out.ev.contract_key is not None
    assert out.end is not None and out.end.reason is EndReason.EV_STOP


def _big_oem_credentials(creds: Credentials) -> Credentials:
    """The OEM provisioning leaf issued again with a 400-octet private extension: the
    same key and issuer, 976 octets where certificateType allows 800."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding

    old = x509.load_der_x509_certificate(creds.oem_chain[0])
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(old.issuer)
        .public_key(old.public_key())
        .serial_number(old.serial_number + 1)
        .not_valid_before(old.not_valid_before_utc)
        .not_valid_after(old.not_valid_after_utc)
    )
    for ext in old.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    padding = x509.UnrecognizedExtension(
        x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x04\x82\x01\x90" + bytes(400)
    )
    builder = builder.add_extension(padding, critical=False)
    big = builder.sign(creds.pki["oem_sub2"].key, hashes.SHA256()).public_bytes(Encoding.DER)
    assert len(big) > 800
    return dataclasses.replace(creds, oem_chain=(big, *creds.oem_chain[1:]))


def test_certificate_installation_req_with_a_big_oem_certificate_is_forwarded_as_sent(
    creds: Credentials, caplog: pytest.LogCaptureFixture
) -> None:
    """The EV's CertificateInstallationReq carries an OEM provisioning certificate longer
    than certificateType's 800 octets: the station forwards the request to the back end
    byte for byte as the EV sent it (the EV's signature covers it) and the installation
    goes on."""
    big = _big_oem_credentials(creds)
    clock = FakeClock(utc=START)
    station = FakeStation(backend=certificate_backend(big, clock.random_bytes))
    config = SessionConfig(tls=True, trust=creds.trust)
    script = EvScript(payment="Contract", credentials=big, energy_mode=AC, install_certificate=True)
    with caplog.at_level(logging.WARNING):
        out = run_session(config, script, station=station, clock=clock)
    (sent,) = [exi for _, d, n, exi in out.trace if n == "CertificateInstallationReq"]
    (v,) = codec.decode_checked(sent, "iso2").violations
    assert v.path.endswith("/CertificateInstallationReq/OEMProvisioningCert")
    assert (v.facet, v.limit, v.value) == ("maxLength", 800, big.oem_chain[0])
    (forward,) = [a for a in station.requests if isinstance(a, RequestCertificate)]
    assert forward.exi_request == sent
    assert ("CertificateInstallationRes", "OK") in out.responses
    assert "CertificateInstallationReq: accepted a value outside its XSD facet" in caplog.text


def test_din_session_with_a_state_of_charge_above_100_charges(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """DIN: EVRESSSOC 120 (percentValueType 0..100 is coded in 7 bits) in every
    DC_EVStatus: reported, logged, and the DC session charges to its normal end."""
    with caplog.at_level(logging.WARNING):
        out = run_session(
            SessionConfig(), EvScript(protocol="din", energy_mode="DC_extended", soc=120)
        )
    assert out.end is not None and out.end.reason is EndReason.EV_STOP
    assert out.code_of("CurrentDemandRes") and all(
        not code.startswith("FAILED") for _, code in out.responses
    )
    sent = [exi for _, d, name, exi in out.trace if d == "->" and name == "CurrentDemandReq"]
    (v,) = codec.decode_checked(sent[0], "din").violations
    assert v.path.endswith("/CurrentDemandReq/DC_EVStatus/EVRESSSOC") and v.value == 120
    assert "CurrentDemandReq: accepted a value outside its XSD facet" in caplog.text


def test_iso20_session_setup_with_a_long_evcc_id_is_answered_ok() -> None:
    """ISO 15118-20: an EVCCID of 300 characters (maxLength 255) is reported, and the
    session is set up and charges."""
    from secc.core.config import ISO20_AC_NAMESPACE, ISO20_DC_NAMESPACE
    from secc.ev.iso20 import Ev20Script

    config = SessionConfig(protocols=(ISO20_DC_NAMESPACE, ISO20_AC_NAMESPACE), iso20_allow_tcp=True)
    script = Ev20Script(mode="ac", control="dynamic", evcc_id="W" * 300)
    out = run_session(config, script)
    (setup,) = [exi for _, d, n, exi in out.trace if d == "->" and n == "SessionSetupReq"]
    (v,) = codec.decode_checked(setup, "iso20-common").violations
    assert (v.path, v.facet, v.limit) == ("/SessionSetupReq/EVCCID", "maxLength", 255)
    assert out.code_of("SessionSetupRes")[0].startswith("OK")
    assert out.end is not None and out.end.reason is EndReason.EV_STOP
