"""Plug & Charge through the real chain validation and xmldsig code (certs) and the codec:
AC/DC PnC sessions, certificate installation, and every PnC failure response code."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from certs import testpki
from secc.core.actions import EndReason, RequestAuthorization, RequestCertificate
from secc.core.config import PncTrust, SessionConfig
from secc.ev.iso2 import EvFaults, EvScript
from secc.testing.clock import FakeClock
from secc.testing.evse import FakeStation
from secc.testing.harness import Outcome, run_session
from secc.testing.pki import Credentials, certificate_backend, make_credentials

AC = "AC_three_phase_core"
DC = "DC_extended"
START = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def creds() -> Credentials:
    return make_credentials(START)


def pnc_config(creds: Credentials, **kw: object) -> SessionConfig:
    return dataclasses.replace(SessionConfig(tls=True, trust=creds.trust), **kw)  # type: ignore[arg-type]


def run(creds: Credentials, config: SessionConfig | None = None, **kw: object) -> Outcome:
    faults = kw.pop("faults", EvFaults())
    station = kw.pop("station", FakeStation())
    clock = kw.pop("clock", FakeClock(utc=START))
    script = EvScript(payment="Contract", credentials=creds, faults=faults, **kw)  # type: ignore[arg-type]
    return run_session(config or pnc_config(creds), script, station=station, clock=clock)  # type: ignore[arg-type]


def assert_failed(out: Outcome, response: str, code: str) -> None:
    assert out.responses[-1] == (response, code)
    assert "CloseContactors" not in out.kinds()
    assert out.end is not None and out.end.reason is EndReason.FAILED_RESPONSE
    kinds = out.kinds()
    assert (
        kinds.index("OpenContactors") < kinds.index("CloseConnection") < kinds.index("SessionEnded")
    )


def test_ac_pnc_session_with_metering_receipts(creds: Credentials) -> None:
    out = run(creds, pnc_config(creds, metering_receipts=True), energy_mode=AC)
    names = [n for n, _ in out.responses]
    assert all(c.startswith("OK") for _, c in out.responses), out.responses
    assert "PaymentDetailsRes" in names and "MeteringReceiptRes" in names
    auth = [a for a in out.station.requests if isinstance(a, RequestAuthorization)]
    assert auth[0].kind == "eMAID" and auth[0].id_token == creds.emaid
    assert auth[0].certificate_chain == creds.contract_chain
    assert out.kinds().count("CloseContactors") == 1
    assert out.end is not None and out.end.reason is EndReason.EV_STOP


def test_dc_pnc_session(creds: Credentials) -> None:
    out = run(creds, energy_mode=DC)
    assert all(c.startswith("OK") for _, c in out.responses), out.responses
    assert "CurrentDemandRes" in [n for n, _ in out.responses]
    assert out.end is not None and out.end.reason is EndReason.EV_STOP


def test_certificate_installation_then_charging(creds: Credentials) -> None:
    clock = FakeClock(utc=START)
    station = FakeStation(backend=certificate_backend(creds, clock.random_bytes))
    out = run(creds, energy_mode=AC, install_certificate=True, station=station, clock=clock)
    assert ("CertificateInstallationRes", "OK") in out.responses
    assert ("ServiceDetailRes", "OK") in out.responses
    forwarded = [a for a in station.requests if isinstance(a, RequestCertificate)]
    assert forwarded[0].action == "Install" and forwarded[0].exi_request[0] == 0x80
    # the EV opened the sealed key and signs AuthorizationReq with it: the chain checks out
    assert out.ev.contract_key is not None
    assert out.code_of("AuthorizationRes")[-1] == "OK"
    assert out.end is not None and out.end.reason is EndReason.EV_STOP


def test_certificate_backend_too_slow(creds: Credentials) -> None:
    clock = FakeClock(utc=START)
    station = FakeStation(backend=certificate_backend(creds, clock.random_bytes), backend_delay=6.0)
    out = run(creds, energy_mode=AC, install_certificate=True, station=station, clock=clock)
    assert out.responses[-1] == ("CertificateInstallationRes", "FAILED_NoCertificateAvailable")
    assert out.end is not None and out.end.reason is EndReason.TIMEOUT
    sent = [t for t, a in out.actions if a.__class__.__name__ == "SendResponse"]
    forwarded = [t for t, a in out.actions if isinstance(a, RequestCertificate)]
    assert sent[-1] - forwarded[0] == pytest.approx(4.5)


def test_certificate_backend_failure(creds: Credentials) -> None:
    out = run(
        creds, energy_mode=AC, install_certificate=True, station=FakeStation(backend=lambda _: None)
    )
    assert_failed(out, "CertificateInstallationRes", "FAILED_NoCertificateAvailable")


def test_certificate_installation_disabled(creds: Credentials) -> None:
    out = run(
        creds,
        pnc_config(creds, certificate_installation=False),
        energy_mode=AC,
        install_certificate=True,
    )
    # not offered: the EV's ServiceDetailReq names an unknown service
    assert_failed(out, "ServiceDetailRes", "FAILED_ServiceIDInvalid")


def test_tampered_authorization_is_a_signature_error(creds: Credentials) -> None:
    out = run(creds, energy_mode=AC, faults=EvFaults(tamper_authorization=True))
    assert_failed(out, "AuthorizationRes", "FAILED_SignatureError")


def test_wrong_gen_challenge(creds: Credentials) -> None:
    out = run(creds, energy_mode=AC, faults=EvFaults(wrong_challenge=True))
    assert_failed(out, "AuthorizationRes", "FAILED_ChallengeInvalid")


def test_expired_contract_chain(creds: Credentials) -> None:
    late = START + dt.timedelta(days=800)  # contract and MO Sub-CA 2 live 730 days
    out = run(creds, energy_mode=AC, clock=FakeClock(utc=late))
    assert_failed(out, "PaymentDetailsRes", "FAILED_CertificateExpired")


def test_foreign_root_contract_chain(creds: Credentials) -> None:
    other = make_credentials(START, testpki.TestPkiOptions(mo_name="Other MO"))
    config = pnc_config(creds, trust=other.trust)
    out = run(creds, config, energy_mode=AC)
    assert_failed(out, "PaymentDetailsRes", "FAILED_NoCertificateAvailable")


def test_foreign_root_with_the_same_name_is_a_signature_error(creds: Credentials) -> None:
    twin = make_credentials(START)  # same names, other keys
    out = run(creds, pnc_config(creds, trust=twin.trust), energy_mode=AC)
    assert_failed(out, "PaymentDetailsRes", "FAILED_SignatureError")


def test_revoked_contract(creds: Credentials) -> None:
    import hashlib

    revoked = frozenset({hashlib.sha256(creds.contract_chain[0]).hexdigest()})
    config = pnc_config(creds, trust=PncTrust(roots=creds.trust.roots, revoked=revoked))
    out = run(creds, config, energy_mode=AC)
    assert_failed(out, "PaymentDetailsRes", "FAILED_CertificateRevoked")


def test_csms_rejects_the_certificate(creds: Credentials) -> None:
    station = FakeStation(accept=False, certificate_status="CertificateRevoked")
    out = run(creds, energy_mode=AC, station=station)
    assert_failed(out, "AuthorizationRes", "FAILED_CertificateRevoked")


def test_bad_metering_receipt_signature(creds: Credentials) -> None:
    out = run(
        creds,
        pnc_config(creds, metering_receipts=True),
        energy_mode=DC,
        faults=EvFaults(bad_metering_signature=True),
    )
    assert out.responses[-1] == ("MeteringReceiptRes", "FAILED_MeteringSignatureNotValid")
    kinds = out.kinds()
    assert kinds.index("OpenContactors", kinds.index("CloseContactors")) < kinds.index(
        "CloseConnection"
    )
    assert out.end is not None and out.end.reason is EndReason.FAILED_RESPONSE


def test_unsigned_authorization_is_a_signature_error(creds: Credentials) -> None:
    out = run(creds, energy_mode=AC, faults=EvFaults(unsigned_authorization=True))
    assert_failed(out, "AuthorizationRes", "FAILED_SignatureError")


def test_certificate_update_then_charging(creds: Credentials) -> None:
    clock = FakeClock(utc=START)
    station = FakeStation(backend=certificate_backend(creds, clock.random_bytes))
    out = run(creds, energy_mode=DC, update_certificate=True, station=station, clock=clock)
    assert ("CertificateUpdateRes", "OK") in out.responses
    forwarded = [a for a in station.requests if isinstance(a, RequestCertificate)]
    assert forwarded[0].action == "Update"
    assert out.end is not None and out.end.reason is EndReason.EV_STOP


def test_back_end_answer_that_does_not_decode(creds: Credentials) -> None:
    for garbage in (b"", b"\x80", b"\x81\x02", b"\x80\x98\x02\x10" + bytes(40)):
        station = FakeStation(backend=lambda _, g=garbage: g)  # type: ignore[misc]
        out = run(creds, energy_mode=AC, install_certificate=True, station=station)
        assert_failed(out, "CertificateInstallationRes", "FAILED_NoCertificateAvailable")


def test_back_end_answering_the_wrong_message(creds: Credentials) -> None:
    from secc import codec

    iso2 = codec.schema_module("iso2")
    wrong = codec.encode(
        iso2.V2G_Message(
            header=iso2.MessageHeader(session_id=bytes(8)),
            body=iso2.Body(body_element=iso2.SessionStopRes(response_code=iso2.ResponseCode.OK)),
        )
    )
    out = run(
        creds,
        energy_mode=AC,
        install_certificate=True,
        station=FakeStation(backend=lambda _: wrong),
    )
    assert_failed(out, "CertificateInstallationRes", "FAILED_NoCertificateAvailable")


def test_malformed_contract_certificate_is_a_chain_error(creds: Credentials) -> None:
    bad = (b"\x30\x03\x02\x01\x01", *creds.contract_chain[1:])
    out = run(creds, energy_mode=AC, faults=EvFaults(contract_chain=bad))
    assert_failed(out, "PaymentDetailsRes", "FAILED_CertChainError")


def test_chain_with_three_sub_cas_is_a_chain_error(creds: Credentials) -> None:
    long_chain = (*creds.contract_chain, creds.contract_chain[-1])
    out = run(creds, energy_mode=AC, faults=EvFaults(contract_chain=long_chain))
    assert_failed(out, "PaymentDetailsRes", "FAILED_CertChainError")


def test_contract_signed_by_another_key_is_a_signature_error(creds: Credentials) -> None:
    other = make_credentials(START)
    # the chain is ours, the key signing AuthorizationReq is someone else's
    forged = dataclasses.replace(creds, contract_key=other.contract_key)
    out = run(forged, energy_mode=AC)
    assert_failed(out, "AuthorizationRes", "FAILED_SignatureError")


def test_repeated_authorization_may_come_unsigned(creds: Credentials) -> None:
    out = run(creds, energy_mode=AC, faults=EvFaults(unsigned_repeats=True))
    assert len(out.code_of("AuthorizationRes")) > 1  # Ongoing at least once, then Finished
    assert all(c.startswith("OK") for _, c in out.responses)
    assert out.end is not None and out.end.reason is EndReason.EV_STOP
