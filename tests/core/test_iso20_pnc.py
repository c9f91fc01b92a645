"""ISO 15118-20 Plug & Charge in the core, through the real codec and the real chain and
signature code (certs): the PnC offer, AC/DC PnC sessions on secp521r1 and Ed448,
certificate installation forwarding, metering confirmation, and the attacks (tampered
signature, wrong challenge, foreign / expired / revoked contract chain, a vehicle
certificate from a foreign root, a signature on the wrong curve).  Every refusal gets its
-20 response code and the contactors never close.

The EV side is built here from ISO 15118-20 and its XSDs (tests/core/iso20_pki.py), not
from the station's code.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from certs._util import fingerprint
from secc import codec
from secc.core.actions import (
    CloseContactors,
    EndReason,
    MeteringReceipt,
    OpenContactors,
    RequestAuthorization,
    RequestCertificate,
    SendResponse,
)
from secc.core.config import PncTrust, Timers
from secc.core.context import State
from secc.core.events import AuthorizationResult, CertificateResult, TimerExpired

from .iso20_peer import START, Ev, config, service_id, start, to_precharged, to_scheduled
from .iso20_pki import (
    ECDSA_SHA256,
    ECDSA_SHA512,
    EMAID,
    SHA256,
    Chain,
    der,
    make_chain,
    new_key,
    pnc_mode,
    signed_header,
)

C = codec.schema_module("iso20-common")
COMMON_NS = "urn:iso:std:iso:15118:-20:CommonMessages"


@dataclasses.dataclass
class Pki:
    mo: Chain
    mo_ed448: Chain
    vehicle: Chain
    oem: Chain  # provisioning certificate
    foreign_mo: Chain
    foreign_vehicle: Chain

    def trust(self, **kw: Any) -> PncTrust:
        base: dict[str, Any] = {
            "roots": (self.mo.root, self.mo_ed448.root),
            "oem_roots": (self.vehicle.root, self.oem.root),
        }
        base.update(kw)
        return PncTrust(**base)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki(
        mo=make_chain(EMAID, START),
        mo_ed448=make_chain(EMAID, START, "ed448", root_cn="MO Root 448"),
        vehicle=make_chain("WMIV1234567890ABCDEF", START, root_cn="OEM Root", leaf_usage="tls"),
        oem=make_chain("WMIV1234567890ABCDEF", START, root_cn="OEM Prov Root"),
        foreign_mo=make_chain(EMAID, START, root_cn="Foreign MO Root"),
        foreign_vehicle=make_chain("WMIV0", START, root_cn="Foreign OEM Root", leaf_usage="tls"),
    )


def pnc_config(pki: Pki, **kw: Any) -> Any:
    base: dict[str, Any] = {
        "vehicle_chain": (pki.vehicle.leaf, *pki.vehicle.subs),
        "trust": pki.trust(),
    }
    base.update(kw)
    return config(**base)


def to_setup(ev: Ev) -> Any:
    assert ev.handshake().response_code.value == "OK_SuccessfulNegotiation"
    assert ev.session_setup().response_code.value == "OK_NewSessionEstablished"
    res = ev.authorization_setup()
    assert res.response_code.value == "OK"
    return res


def pnc_req(ev: Ev, chain: Chain, challenge: bytes, key: Any = None, **sig: Any) -> Any:
    mode = pnc_mode(challenge, chain)
    hdr = signed_header(ev.hdr(C), mode, key if key is not None else chain.key, **sig)
    return C.AuthorizationReq(
        header=hdr,
        selected_authorization_service=C.Authorization.PnC,
        pn_c_a_req_authorization_mode=mode,
    )


def challenge_of(setup_res: Any) -> bytes:
    return bytes(setup_res.pn_c_as_res_authorization_mode.gen_challenge)


def contactors_never_closed(ev: Ev) -> None:
    assert not any(isinstance(a, CloseContactors) for a in ev.actions)


def ended_safely(ev: Ev) -> None:
    """The session is over: contactors opened before the connection closes, never closed."""
    assert ev.session.state is State.ENDED
    contactors_never_closed(ev)
    kinds = [type(a).__name__ for a in ev.actions]
    assert kinds.index("OpenContactors") < kinds.index("CloseConnection")


def authorize_ok(ev: Ev, chain: Chain) -> RequestAuthorization:
    """PnC authorization through the back end: Ongoing, the result, then Finished."""
    setup = to_setup(ev)
    res = ev.send(pnc_req(ev, chain, challenge_of(setup)))
    assert (res.response_code.value, res.evse_processing.value) == ("OK", "Ongoing")
    asks = [a for a in ev.last if isinstance(a, RequestAuthorization)]
    assert len(asks) == 1
    ev.feed(AuthorizationResult(accepted=True, id_token=EMAID, certificate_status="Accepted"))
    res = ev.send(pnc_req(ev, chain, challenge_of(setup)))
    assert (res.response_code.value, res.evse_processing.value) == ("OK", "Finished")
    return asks[0]


# --- the offer ---------------------------------------------------------------------------


def test_pnc_is_offered_with_a_fresh_challenge_and_certificate_installation(pki: Pki) -> None:
    first = to_setup(Ev(cfg=pnc_config(pki)))
    assert list(first.authorization_services) == [C.Authorization.PnC, C.Authorization.EIM]
    assert first.certificate_installation_service is True
    assert first.eim_as_res_authorization_mode is None
    assert len(challenge_of(first)) == 16
    from secc.testing.clock import FakeClock

    other = to_setup(Ev(cfg=pnc_config(pki), clock=FakeClock(utc=START, seed=7)))
    assert challenge_of(other) != challenge_of(first)
    no_install = to_setup(Ev(cfg=pnc_config(pki, certificate_installation=False)))
    assert no_install.certificate_installation_service is False


@pytest.mark.parametrize(
    "change",
    [
        {"vehicle_chain": ()},  # no vehicle certificate in the TLS handshake
        {"tls13": False, "iso20_allow_tcp": True},  # no TLS at all
        {"pnc_enabled": False},
    ],
    ids=["no-vehicle-certificate", "plain-tcp", "pnc-disabled"],
)
def test_pnc_is_not_offered_without_its_preconditions(pki: Pki, change: dict[str, Any]) -> None:
    ev = Ev(cfg=pnc_config(pki, **change))
    res = to_setup(ev)
    assert list(res.authorization_services) == [C.Authorization.EIM]
    assert res.pn_c_as_res_authorization_mode is None
    assert res.certificate_installation_service is False
    # a PnC request anyway: not offered, then a sequence error; nothing closes
    bogus = pnc_req(ev, pki.mo, bytes(16))
    assert ev.send(bogus).response_code.value == "WARNING_AuthorizationSelectionInvalid"
    assert ev.send(pnc_req(ev, pki.mo, bytes(16))).response_code.value == "FAILED_SequenceError"
    ended_safely(ev)


def test_vehicle_certificate_from_a_foreign_root_gets_no_pnc(pki: Pki) -> None:
    """The transport checks the vehicle chain in TLS; the core checks it again against the
    OEM roots it has, and a foreign one gets no PnC offer."""
    ev = Ev(
        cfg=pnc_config(pki, vehicle_chain=(pki.foreign_vehicle.leaf, *pki.foreign_vehicle.subs))
    )
    res = to_setup(ev)
    assert list(res.authorization_services) == [C.Authorization.EIM]
    assert ev.send(pnc_req(ev, pki.mo, bytes(16))).response_code.value == (
        "WARNING_AuthorizationSelectionInvalid"
    )
    assert ev.session_stop().response_code.value == "OK"
    ended_safely(ev)


# --- sessions ----------------------------------------------------------------------------


@pytest.mark.parametrize("dc", [True, False], ids=["DC", "AC"])
@pytest.mark.parametrize("curve", ["p521", "ed448"])
def test_pnc_session_charges_with_a_verified_signature(pki: Pki, dc: bool, curve: str) -> None:
    chain = pki.mo if curve == "p521" else pki.mo_ed448
    ev = Ev(cfg=pnc_config(pki), dc=dc)
    ask = authorize_ok(ev, chain)
    assert ask.kind == "eMAID" and ask.id_token == EMAID
    assert ask.certificate_chain == chain.ders
    assert ask.hash_algorithm == "SHA512"
    assert ask.protocol.startswith("urn:iso:std:iso:15118:-20:")
    to_scheduled(ev, dynamic=False)
    if dc:
        to_precharged(ev)
    assert start(ev, dynamic=False).response_code.value == "OK"
    assert any(isinstance(a, CloseContactors) for a in ev.actions)
    loop = ev.dc_loop(False) if dc else ev.ac_loop(False)
    assert loop.response_code.value == "OK"
    assert loop.evse_status is None  # no metering confirmation configured


def test_unsigned_repeat_while_ongoing_is_accepted_but_a_changed_one_is_not(pki: Pki) -> None:
    ev = Ev(cfg=pnc_config(pki))
    setup = to_setup(ev)
    challenge = challenge_of(setup)
    assert ev.send(pnc_req(ev, pki.mo, challenge)).evse_processing.value == "Ongoing"
    unsigned = dataclasses.replace(pnc_req(ev, pki.mo, challenge), header=ev.hdr(C))
    assert ev.send(unsigned).evse_processing.value == "Ongoing"
    other = pnc_req(ev, pki.mo_ed448, challenge)  # another contract in the repeat
    assert ev.send(other).response_code.value == "WARNING_ChallengeInvalid"
    assert ev.session_stop().response_code.value == "OK"
    ended_safely(ev)


# --- attacks -----------------------------------------------------------------------------


def _refused(ev: Ev, res: Any, code: str) -> None:
    """A WARNING refusal: Finished, only SessionStop follows; a FAILED one ends at once."""
    assert res.response_code.value == code
    if code.startswith("WARNING"):
        assert res.evse_processing.value == "Finished"
        # charging is refused: nothing but SessionStop is legal now
        assert ev.service_discovery().response_code.value == "FAILED_SequenceError"
    ended_safely(ev)
    assert not any(isinstance(a, RequestAuthorization) for a in ev.actions)


def test_tampered_signature_value(pki: Pki) -> None:
    ev = Ev(cfg=pnc_config(pki))
    req = pnc_req(ev, pki.mo, challenge_of(to_setup(ev)))
    sig = req.header.signature
    value = bytearray(sig.signature_value.value)
    value[10] ^= 1
    sig = dataclasses.replace(
        sig, signature_value=dataclasses.replace(sig.signature_value, value=bytes(value))
    )
    res = ev.send(dataclasses.replace(req, header=dataclasses.replace(req.header, signature=sig)))
    _refused(ev, res, "FAILED_SignatureError")
    assert ev.session.end_reason is EndReason.FAILED_RESPONSE


def test_element_changed_after_signing(pki: Pki) -> None:
    """The signed PnC_AReqAuthorizationMode swapped for another contract chain: the digest
    no longer matches."""
    ev = Ev(cfg=pnc_config(pki))
    challenge = challenge_of(to_setup(ev))
    req = pnc_req(ev, pki.mo, challenge)
    swapped = dataclasses.replace(
        req, pn_c_a_req_authorization_mode=pnc_mode(challenge, pki.foreign_mo)
    )
    _refused(ev, ev.send(swapped), "FAILED_SignatureError")


def test_signed_by_another_key(pki: Pki) -> None:
    ev = Ev(cfg=pnc_config(pki))
    res = ev.send(pnc_req(ev, pki.mo, challenge_of(to_setup(ev)), key=new_key("p521")))
    _refused(ev, res, "FAILED_SignatureError")


def test_unsigned_authorization(pki: Pki) -> None:
    ev = Ev(cfg=pnc_config(pki))
    req = pnc_req(ev, pki.mo, challenge_of(to_setup(ev)))
    _refused(ev, ev.send(dataclasses.replace(req, header=ev.hdr(C))), "FAILED_SignatureError")


def test_wrong_challenge(pki: Pki) -> None:
    ev = Ev(cfg=pnc_config(pki))
    challenge = challenge_of(to_setup(ev))
    wrong = bytes(b ^ 0xFF for b in challenge)
    res = ev.send(pnc_req(ev, pki.mo, wrong))  # signed correctly, over the wrong challenge
    _refused(ev, res, "WARNING_ChallengeInvalid")


def test_signature_on_the_wrong_curve(pki: Pki) -> None:
    """A -2 style contract (P-256, ecdsa-sha256 / sha256): -20 wants P-521 or Ed448."""
    p256 = make_chain(EMAID, START, "p256", root_cn="MO Root")
    ev = Ev(cfg=pnc_config(pki, trust=pki.trust(roots=(p256.root,))))
    res = ev.send(pnc_req(ev, p256, challenge_of(to_setup(ev)), digest_method=SHA256))
    _refused(ev, res, "FAILED_SignatureError")


def test_p521_key_with_a_p256_signature_method(pki: Pki) -> None:
    ev = Ev(cfg=pnc_config(pki))
    res = ev.send(pnc_req(ev, pki.mo, challenge_of(to_setup(ev)), method=ECDSA_SHA256))
    _refused(ev, res, "FAILED_SignatureError")


def test_p256_leaf_under_a_p521_chain(pki: Pki) -> None:
    """A P-256 leaf key (under P-521 CAs) claiming ecdsa-sha512: the wrong curve."""
    mixed = make_chain(EMAID, START, "p521", leaf_kind="p256", root_cn="MO Root")
    ev = Ev(cfg=pnc_config(pki, trust=pki.trust(roots=(mixed.root,))))
    res = ev.send(pnc_req(ev, mixed, challenge_of(to_setup(ev)), method=ECDSA_SHA512))
    _refused(ev, res, "FAILED_SignatureError")


@pytest.mark.parametrize(
    ("what", "code"),
    [
        ("foreign", "WARNING_eMSPUnknown"),
        ("foreign-same-name", "WARNING_CertificateValidationError"),
        ("expired", "WARNING_CertificateExpired"),
        ("not-yet-valid", "WARNING_CertificateNotYetValid"),
        ("revoked", "WARNING_CertificateRevoked"),
        ("broken-link", "WARNING_CertificateValidationError"),
    ],
)
def test_contract_chain_refused(pki: Pki, what: str, code: str) -> None:
    trust = pki.trust()
    chain = pki.mo
    if what == "foreign":
        chain = pki.foreign_mo
    elif what == "foreign-same-name":  # an impostor root with the trusted root's name
        chain = make_chain(EMAID, START, root_cn="MO Root")
    elif what == "expired":
        chain = make_chain(EMAID, START, leaf_days=0, leaf_start=START - dt.timedelta(days=30))
        trust = pki.trust(roots=(chain.root,))
    elif what == "not-yet-valid":
        chain = make_chain(EMAID, START, leaf_start=START + dt.timedelta(days=30))
        trust = pki.trust(roots=(chain.root,))
    elif what == "revoked":
        trust = pki.trust(revoked=frozenset({fingerprint(pki.mo.leaf)}))
    elif what == "broken-link":  # the sub-CAs of another chain
        chain = dataclasses.replace(pki.mo, subs=pki.foreign_mo.subs)
    ev = Ev(cfg=pnc_config(pki, trust=trust))
    res = ev.send(pnc_req(ev, chain, challenge_of(to_setup(ev))))
    _refused(ev, res, code)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("CertificateRevoked", "WARNING_CertificateRevoked"),
        ("CertificateExpired", "WARNING_CertificateExpired"),
        ("ContractCancelled", "WARNING_GeneralPnCAuthorizationError"),
        ("CertChainError", "WARNING_CertificateValidationError"),
        (None, "WARNING_GeneralPnCAuthorizationError"),
    ],
)
def test_back_end_refuses_the_contract(pki: Pki, status: str | None, code: str) -> None:
    ev = Ev(cfg=pnc_config(pki))
    challenge = challenge_of(to_setup(ev))
    assert ev.send(pnc_req(ev, pki.mo, challenge)).evse_processing.value == "Ongoing"
    ev.feed(AuthorizationResult(False, EMAID, certificate_status=status, reason="no"))
    res = ev.send(pnc_req(ev, pki.mo, challenge))
    assert res.response_code.value == code and res.evse_processing.value == "Finished"
    assert ev.session_stop().response_code.value == "OK"
    ended_safely(ev)


def test_no_back_end_answer_within_the_ongoing_limit(pki: Pki) -> None:
    ev = Ev(cfg=pnc_config(pki))
    challenge = challenge_of(to_setup(ev))
    assert ev.send(pnc_req(ev, pki.mo, challenge)).evse_processing.value == "Ongoing"
    codes = []
    for _ in range(int(Timers().ongoing // 10) + 2):  # the EV keeps asking, every 10 s
        ev.clock.advance(10)
        res = ev.send(pnc_req(ev, pki.mo, challenge))
        codes.append((res.response_code.value, res.evse_processing.value))
        if ev.session.state is State.ENDED:
            break
    assert codes[-1] == ("FAILED", "Finished") and set(codes[:-1]) == {("OK", "Ongoing")}
    ended_safely(ev)


# --- certificate installation --------------------------------------------------------------


def install_req(ev: Ev, oem: Chain, key: Any = None) -> Any:
    ders = oem.ders
    chain = C.SignedCertificateChain(
        id="OEM1", certificate=ders[0], sub_certificates=C.SubCertificates(certificate=ders[1:])
    )
    return C.CertificateInstallationReq(
        header=signed_header(ev.hdr(C), chain, key if key is not None else oem.key),
        oem_provisioning_certificate_chain=chain,
        list_of_root_certificate_i_ds=C.ListOfRootCertificateIDs(
            root_certificate_id=(
                C.X509IssuerSerial(
                    x509_issuer_name=pki_issuer(oem), x509_serial_number=oem.root.serial_number
                ),
            )
        ),
        maximum_contract_certificate_chains=1,
    )


def pki_issuer(chain: Chain) -> str:
    return chain.root.subject.rfc4514_string()


def installation_res(ev: Ev, pki: Pki, code: str = "OK") -> bytes:
    mo = pki.mo
    data = C.SignedInstallationData(
        id="SID1",
        contract_certificate_chain=C.ContractCertificateChain(
            certificate=der(mo.leaf), sub_certificates=C.SubCertificates(certificate=mo.ders[1:])
        ),
        ecdh_curve=C.EcdhCurve.SECP521,
        dh_public_key=bytes(133),
        secp521_encrypted_private_key=bytes(94),
    )
    res = C.CertificateInstallationRes(
        header=C.MessageHeader(session_id=ev.session_id, time_stamp=1_780_000_000),
        response_code=C.ResponseCode(code),
        evse_processing=C.Processing.Finished,
        cps_certificate_chain=C.CertificateChain(certificate=der(pki.oem.leaf)),
        signed_installation_data=data,
        remaining_contract_certificate_chains=0,
    )
    return codec.encode(res)


def test_certificate_installation_is_forwarded_and_passed_through(pki: Pki) -> None:
    ev = Ev(cfg=pnc_config(pki))
    setup = to_setup(ev)
    req = install_req(ev, pki.oem)
    assert ev.send(req) is None  # the answer waits for the back end
    forwards = [a for a in ev.last if isinstance(a, RequestCertificate)]
    assert len(forwards) == 1 and forwards[0].action == "Install"
    assert forwards[0].schema_version == COMMON_NS
    assert codec.decode(forwards[0].exi_request, "iso20-common") == req
    assert forwards[0].exi_request == codec.encode(req)  # the complete EXI, as received
    exi = installation_res(ev, pki)
    out = ev.feed(CertificateResult(exi_response=exi))
    sent = [a for a in out if isinstance(a, SendResponse)]
    assert len(sent) == 1 and sent[0].name == "CertificateInstallationRes"
    assert sent[0].exi == exi  # the CSMS's bytes, unchanged
    # then PnC with the (new) contract, against the same challenge
    res = ev.send(pnc_req(ev, pki.mo, challenge_of(setup)))
    assert res.evse_processing.value == "Ongoing"


def test_certificate_installation_back_end_too_slow(pki: Pki) -> None:
    ev = Ev(cfg=pnc_config(pki))
    to_setup(ev)
    assert ev.send(install_req(ev, pki.oem)) is None
    deadline = ev.session.deadline
    assert deadline is not None and deadline - ev.clock.now <= Timers().certificate_installation
    ev.clock.advance_to(deadline)
    out = ev.feed(TimerExpired("V2G_SECC_CertificateInstallation_Performance_Time"))
    sent = [a for a in out if isinstance(a, SendResponse)]
    msg: Any = sent[0].message if len(sent) == 1 else None
    assert msg is not None and msg.response_code.value == "WARNING_NoCertificateAvailable"
    assert ev.session.state is not State.ENDED  # [V2G20-2225]: AuthorizationReq may follow
    # a late answer is dropped
    assert ev.feed(CertificateResult(exi_response=installation_res(ev, pki))) == []


@pytest.mark.parametrize("exi", [None, b"\x80\x00garbage"], ids=["back-end-failed", "undecodable"])
def test_certificate_installation_back_end_failure(pki: Pki, exi: bytes | None) -> None:
    ev = Ev(cfg=pnc_config(pki))
    to_setup(ev)
    assert ev.send(install_req(ev, pki.oem)) is None
    out = ev.feed(CertificateResult(exi_response=exi, reason="CSMS said Failed"))
    sent = [a for a in out if isinstance(a, SendResponse)]
    msg: Any = sent[0].message if len(sent) == 1 else None
    assert msg is not None and msg.response_code.value == "WARNING_NoCertificateAvailable"
    assert ev.session.state is not State.ENDED  # [V2G20-2225]: AuthorizationReq may follow


def test_certificate_installation_failed_from_the_csms_is_passed_and_ends(pki: Pki) -> None:
    ev = Ev(cfg=pnc_config(pki))
    to_setup(ev)
    ev.send(install_req(ev, pki.oem))
    exi = installation_res(ev, pki, "FAILED")
    out = ev.feed(CertificateResult(exi_response=exi))
    sent = [a for a in out if isinstance(a, SendResponse)]
    assert sent[0].exi == exi
    ended_safely(ev)


def test_certificate_installation_answer_for_another_session_id_is_corrected(pki: Pki) -> None:
    """Only the SessionID is put right; SignedInstallationData (what the CPS signed) stays."""
    ev = Ev(cfg=pnc_config(pki))
    to_setup(ev)
    ev.send(install_req(ev, pki.oem))
    ours, ev.session_id = ev.session_id, bytes(8)
    exi = installation_res(ev, pki)
    ev.session_id = ours
    sent = [a for a in ev.feed(CertificateResult(exi_response=exi)) if isinstance(a, SendResponse)]
    msg: Any = sent[0].message
    assert sent[0].exi is None and bytes(msg.header.session_id) == ours
    assert (
        msg.signed_installation_data == codec.decode(exi, "iso20-common").signed_installation_data
    )


@pytest.mark.parametrize("what", ["another-key", "foreign-oem-root"])
def test_certificate_installation_bad_provisioning_chain(pki: Pki, what: str) -> None:
    ev = Ev(cfg=pnc_config(pki))
    to_setup(ev)
    if what == "another-key":
        res = ev.send(install_req(ev, pki.oem, key=new_key("p521")))
        assert res.response_code.value == "FAILED_SignatureError"
    else:
        res = ev.send(install_req(ev, pki.foreign_vehicle))
        assert res.response_code.value == "FAILED"
    assert not any(isinstance(a, RequestCertificate) for a in ev.actions)
    ended_safely(ev)


def test_certificate_installation_not_offered(pki: Pki) -> None:
    ev = Ev(cfg=pnc_config(pki, certificate_installation=False))
    to_setup(ev)
    assert ev.send(install_req(ev, pki.oem)).response_code.value == "FAILED"
    ended_safely(ev)


# --- metering confirmation -------------------------------------------------------------------


def metering_req(ev: Ev, meter: Any, key: Any) -> Any:
    data = C.SignedMeteringData(
        id="SMD1",
        session_id=ev.session_id,
        meter_info=meter,
        scheduled_smdt_control_mode=C.Scheduled_SMDTControlMode(selected_schedule_tuple_id=1),
    )
    return C.MeteringConfirmationReq(
        header=signed_header(ev.hdr(C), data, key), signed_metering_data=data
    )


def to_pnc_loop(ev: Ev, chain: Chain) -> Any:
    authorize_ok(ev, chain)
    to_scheduled(ev, dynamic=False)
    if ev.dc:
        to_precharged(ev)
    assert start(ev, dynamic=False).response_code.value == "OK"
    return ev.dc_loop(False) if ev.dc else ev.ac_loop(False)


@pytest.mark.parametrize("curve", ["p521", "ed448"])
def test_metering_confirmation_is_asked_verified_and_handed_on(pki: Pki, curve: str) -> None:
    chain = pki.mo if curve == "p521" else pki.mo_ed448
    ev = Ev(cfg=pnc_config(pki, metering_confirmation=True))
    ev.evse(isolation="Valid", present_voltage=395.0, contactors_closed=True, energy_wh=1234.0)
    loop = to_pnc_loop(ev, chain)
    assert loop.evse_status.evse_notification.value == "MeteringConfirmation"
    meter = C.MeterInfo(
        **{f.name: getattr(loop.meter_info, f.name) for f in dataclasses.fields(loop.meter_info)}
    )
    res = ev.send(metering_req(ev, meter, chain.key))
    assert res.response_code.value == "OK"
    receipts = [a for a in ev.last if isinstance(a, MeteringReceipt)]
    assert len(receipts) == 1
    r = receipts[0]
    assert r.meter_id == "METER-1" and r.emaid == EMAID
    assert r.public_key == chain.leaf.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )
    assert codec.decode_fragment(r.signed_meter_data, "iso20-common")[1].meter_info == meter
    # back in the loop, and asked once only
    again = ev.dc_loop(False)
    assert again.response_code.value == "OK" and again.evse_status is None


def test_metering_confirmation_with_a_bad_signature(pki: Pki) -> None:
    ev = Ev(cfg=pnc_config(pki, metering_confirmation=True))
    loop = to_pnc_loop(ev, pki.mo)
    meter = C.MeterInfo(
        **{f.name: getattr(loop.meter_info, f.name) for f in dataclasses.fields(loop.meter_info)}
    )
    res = ev.send(metering_req(ev, meter, new_key("p521")))
    assert res.response_code.value == "FAILED_MeteringSignatureNotValid"
    assert ev.session.state is State.ENDED
    assert not any(isinstance(a, MeteringReceipt) for a in ev.actions)
    kinds = [type(a).__name__ for a in ev.last]
    assert (
        kinds.index("StopDcOutput") < kinds.index("OpenContactors") < kinds.index("CloseConnection")
    )


def test_eim_session_is_not_asked_for_metering_confirmation(pki: Pki) -> None:
    from .iso20_peer import to_loop

    ev = Ev(cfg=pnc_config(pki, metering_confirmation=True))
    to_loop(ev, dynamic=False)
    assert ev.dc_loop(False).evse_status is None
    assert service_id(ev) == 2
    assert not any(isinstance(a, OpenContactors) for a in ev.last)


def test_unasked_metering_confirmation_is_a_sequence_error(pki: Pki) -> None:
    ev = Ev(cfg=pnc_config(pki))  # metering confirmation not configured
    loop = to_pnc_loop(ev, pki.mo)
    assert loop.evse_status is None
    meter = C.MeterInfo(meter_id="METER-1", charged_energy_reading_wh=0)
    res = ev.send(metering_req(ev, meter, pki.mo.key))
    assert res.response_code.value == "FAILED_SequenceError"
    assert not any(isinstance(a, MeteringReceipt) for a in ev.actions)
    assert ev.session.state is State.ENDED


def test_resumed_pnc_session_keeps_its_contract(pki: Pki) -> None:
    """A paused PnC session resumed: no new authorization, and the metering confirmation
    is checked with the contract of the first part."""
    cfg = pnc_config(pki, metering_confirmation=True)
    ev = Ev(cfg=cfg)
    authorize_ok(ev, pki.mo)
    to_scheduled(ev, dynamic=False)
    assert ev.session_stop("Pause").response_code.value == "OK"
    paused = ev.session.paused
    assert paused is not None and paused.payment_option == "Contract"
    again = Ev(cfg=cfg, resume=paused)
    again.session_id = paused.session_id
    assert again.handshake().response_code.value == "OK_SuccessfulNegotiation"
    assert again.session_setup().response_code.value == "OK_OldSessionJoined"
    assert again.charge_parameters().response_code.value == "OK"
    assert again.schedule_exchange(False).evse_processing.value == "Finished"
    to_precharged(again)
    assert start(again, dynamic=False).response_code.value == "OK"
    loop = again.dc_loop(False)
    assert loop.evse_status.evse_notification.value == "MeteringConfirmation"
    meter = C.MeterInfo(
        **{f.name: getattr(loop.meter_info, f.name) for f in dataclasses.fields(loop.meter_info)}
    )
    assert again.send(metering_req(again, meter, pki.mo.key)).response_code.value == "OK"
    assert any(isinstance(a, MeteringReceipt) for a in again.last)


def test_switching_between_pnc_and_eim_mid_authorization_is_a_sequence_error(pki: Pki) -> None:
    ev = Ev(cfg=pnc_config(pki))
    challenge = challenge_of(to_setup(ev))
    assert ev.send(pnc_req(ev, pki.mo, challenge)).evse_processing.value == "Ongoing"
    assert ev.authorization().response_code.value == "FAILED_SequenceError"  # now EIM
    ended_safely(ev)
    ev = Ev(cfg=pnc_config(pki))
    challenge = challenge_of(to_setup(ev))
    assert ev.authorization().evse_processing.value == "Ongoing_WaitingForCustomerInteraction"
    assert ev.send(pnc_req(ev, pki.mo, challenge)).response_code.value == "FAILED_SequenceError"
    ended_safely(ev)


def test_metering_confirmation_of_another_reading_is_refused(pki: Pki) -> None:
    """The EV signs correctly, but a reading the station never sent: no receipt."""
    ev = Ev(cfg=pnc_config(pki, metering_confirmation=True))
    loop = to_pnc_loop(ev, pki.mo)
    sent = loop.meter_info
    forged = C.MeterInfo(
        meter_id=sent.meter_id, charged_energy_reading_wh=sent.charged_energy_reading_wh + 1
    )
    assert ev.send(metering_req(ev, forged, pki.mo.key)).response_code.value == "FAILED"
    assert not any(isinstance(a, MeteringReceipt) for a in ev.actions)
    assert ev.session.state is State.ENDED


def test_metering_confirmation_naming_another_schedule_is_refused(pki: Pki) -> None:
    ev = Ev(cfg=pnc_config(pki, metering_confirmation=True))
    loop = to_pnc_loop(ev, pki.mo)
    meter = C.MeterInfo(
        **{f.name: getattr(loop.meter_info, f.name) for f in dataclasses.fields(loop.meter_info)}
    )
    data = C.SignedMeteringData(
        id="SMD1",
        session_id=ev.session_id,
        meter_info=meter,
        dynamic_smdt_control_mode=C.Dynamic_SMDTControlMode(),  # the session is scheduled
    )
    req = C.MeteringConfirmationReq(
        header=signed_header(ev.hdr(C), data, pki.mo.key), signed_metering_data=data
    )
    assert ev.send(req).response_code.value == "FAILED"
    assert not any(isinstance(a, MeteringReceipt) for a in ev.actions)
