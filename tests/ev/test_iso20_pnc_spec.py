"""The -20 EV's Plug & Charge, certificate installation, metering confirmation and BPT
against the scripted SECC written from ISO 15118-20 (tests/ev/spec_secc.py): every message
through the real codec, signatures checked by the peer as the standard defines them, with
the test PKI's P-521 contract and OEM provisioning chains (and an Ed448 contract)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448

from secc.ev.install20 import InstallError, open_contract_key, pcid_of, seal_contract_key
from secc.ev.iso20 import Ev20Script
from secc.ev.pnc20 import Ev20Credentials, Ev20Faults, load_credentials20
from tests.ev.spec_secc import SpecSecc
from tests.ev.test_iso20_spec import run

PNC = Ev20Script(mode="dc", payment="pnc", think_time=0.01)


@pytest.fixture(scope="module")
def creds(pki_dir: Path) -> Ev20Credentials:
    return load_credentials20(pki_dir)


@pytest.mark.parametrize("mode", ["ac", "dc"])
def test_pnc_session_signs_the_authorization(mode: str, creds: Ev20Credentials) -> None:
    secc = SpecSecc(pnc=True)
    ev = run(replace(PNC, mode=mode), secc, credentials=creds)
    assert ev.error is None, ev.error
    assert secc.verdicts == ["OK", "OK"]  # AuthorizationReq, again while Ongoing
    req = next(r for n, r in secc.history if n == "AuthorizationReq")
    assert req.selected_authorization_service.value == "PnC"
    mode_ = req.pn_c_a_req_authorization_mode
    assert bytes(mode_.gen_challenge) == secc.challenge
    assert mode_.contract_certificate_chain.certificate == creds.contract_chain[0]
    assert mode_.contract_certificate_chain.sub_certificates.certificate == creds.contract_chain[1:]
    sig = req.header.signature
    assert sig.signed_info.signature_method.algorithm.endswith("ecdsa-sha512")
    assert len(sig.signature_value.value) == 132
    assert ev.responses[-1] == ("SessionStopRes", "OK")


def test_pnc_with_an_ed448_contract(pki_dir: Path, creds: Ev20Credentials) -> None:
    """An Ed448 contract key (the other -20 suite): the EV signs with eddsa-ed448."""
    key = ed448.Ed448PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, creds.emaid or "X")])
    ca_key = serialization.load_pem_private_key((pki_dir / "mo20" / "sub2.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca = x509.load_pem_x509_certificate((pki_dir / "mo20" / "sub2.pem").read_bytes())
    now = dt.datetime.now(dt.UTC)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(ca_key, hashes.SHA512())
    )
    chain = (leaf.public_bytes(serialization.Encoding.DER), *creds.contract_chain[1:])
    secc = SpecSecc(pnc=True, authorization_ongoing=0)
    ev = run(PNC, secc, credentials=replace(creds, contract_chain=chain, contract_key=key))
    assert ev.error is None, ev.error
    assert secc.verdicts == ["OK"]
    req = next(r for n, r in secc.history if n == "AuthorizationReq")
    assert req.header.signature.signed_info.signature_method.algorithm.endswith("eddsa-ed448")
    assert len(req.header.signature.signature_value.value) == 114


@pytest.mark.parametrize(
    ("faults", "code"),
    [
        (Ev20Faults(tamper_signature=True), "FAILED_SignatureError"),
        (Ev20Faults(wrong_curve=True), "FAILED_SignatureError"),
        (Ev20Faults(no_signature=True), "FAILED_SignatureError"),
        (Ev20Faults(wrong_challenge=True), "WARNING_ChallengeInvalid"),
    ],
)
def test_attack_faults_are_caught_by_a_standard_peer(
    faults: Ev20Faults, code: str, creds: Ev20Credentials
) -> None:
    """Each EV fault makes a request the standard's checks refuse (with that code), and
    the EV then ends the session with the refusal as its error."""
    secc = SpecSecc(pnc=True)
    ev = run(PNC, secc, credentials=creds, faults=faults)
    assert secc.verdicts == [code]
    expected = f"AuthorizationRes: {code}" if code.startswith("FAILED") else code
    assert ev.error is not None and ev.error.endswith(expected)
    assert "ServiceDiscoveryReq" not in secc.seen


def test_pnc_needs_the_offer(creds: Ev20Credentials) -> None:
    ev = run(PNC, SpecSecc(), credentials=creds)
    assert ev.error == "the station offers ['EIM'] but not PnC authorization"


def test_pnc_without_credentials_is_refused() -> None:
    with pytest.raises(ValueError, match="credentials"):
        run(PNC, SpecSecc(pnc=True))


def test_certificate_installation_then_authorization_with_the_new_contract(
    pki_dir: Path, creds: Ev20Credentials
) -> None:
    """An EV without a contract: CertificateInstallationReq signed with the OEM
    provisioning key (polled while Ongoing), opens the sealed contract key, then
    authorizes with the installed contract."""
    contract_key = serialization.load_pem_private_key(
        (pki_dir / "mo20" / "contract.key").read_bytes(), None
    )
    secc = SpecSecc(pnc=True, eim=False, install=(creds.contract_chain, contract_key))
    no_contract = load_credentials20(pki_dir, with_contract=False)
    assert not no_contract.has_contract
    ev = run(PNC, secc, credentials=no_contract)
    assert ev.error is None, ev.error
    assert secc.seen[2:6] == [
        "AuthorizationSetupReq",
        "CertificateInstallationReq",
        "CertificateInstallationReq",
        "AuthorizationReq",
    ]
    assert secc.verdicts[:2] == ["OK", "OK"]  # the OEM signature, twice
    assert secc.verdicts[2:] == ["OK", "OK"]  # the authorization with the new contract
    assert ev.installed is not None and ev.installed.emaid == creds.emaid
    assert ev.credentials.contract_chain == creds.contract_chain
    req = secc.history[3][1]
    roots = req.list_of_root_certificate_i_ds.root_certificate_id
    assert [r.x509_serial_number for r in roots] == [c.serial_number for c in creds.v2g_roots]


def _install_secc(pki_dir: Path, creds: Ev20Credentials, **kw: Any) -> SpecSecc:
    contract_key = serialization.load_pem_private_key(
        (pki_dir / "mo20" / "contract.key").read_bytes(), None
    )
    cps_key = serialization.load_pem_private_key((pki_dir / "v2g20" / "cps.key").read_bytes(), None)
    cps = tuple(
        c.public_bytes(serialization.Encoding.DER)
        for c in x509.load_pem_x509_certificates((pki_dir / "v2g20" / "cps_chain.pem").read_bytes())
    )
    return SpecSecc(
        pnc=True,
        eim=False,
        install=(creds.contract_chain, contract_key),
        cps=(cps, cps_key),
        authorization_ongoing=0,
        **kw,
    )


def test_signed_installation_is_checked(pki_dir: Path, creds: Ev20Credentials) -> None:
    """A CPS-signed CertificateInstallationRes (the chain to the -20 V2G root) is
    verified by the EV before it takes the contract."""
    no_contract = load_credentials20(pki_dir, with_contract=False)
    ev = run(PNC, _install_secc(pki_dir, creds), credentials=no_contract)
    assert ev.error is None, ev.error
    assert ev.installed is not None and ev.installed.signed


def test_tampered_installation_is_refused(pki_dir: Path, creds: Ev20Credentials) -> None:
    no_contract = load_credentials20(pki_dir, with_contract=False)
    secc = _install_secc(pki_dir, creds, cps_tamper=True)
    ev = run(PNC, secc, credentials=no_contract)
    assert (
        ev.error == "CertificateInstallationRes: SignedInstallationData does not match its digest"
    )
    assert "AuthorizationReq" not in secc.seen


def test_installation_from_an_untrusted_cps_is_refused(
    pki_dir: Path, creds: Ev20Credentials
) -> None:
    other_root = x509.load_pem_x509_certificates((pki_dir / "v2g" / "root.pem").read_bytes())
    no_contract = replace(
        load_credentials20(pki_dir, with_contract=False), v2g_roots=tuple(other_root)
    )
    ev = run(PNC, _install_secc(pki_dir, creds), credentials=no_contract)
    assert ev.error is not None
    assert ev.error.startswith("CertificateInstallationRes: the CPS chain does not lead to")


def test_installation_can_be_forced_and_needs_the_offer(creds: Ev20Credentials) -> None:
    ev = run(replace(PNC, install_certificate=True), SpecSecc(pnc=True), credentials=creds)
    assert ev.error == "the EV needs a contract; the station offers no installation"


def test_sealed_contract_key_round_trip_and_tampering(
    pki_dir: Path, creds: Ev20Credentials
) -> None:
    key = serialization.load_pem_private_key((pki_dir / "mo20" / "contract.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    oem = x509.load_der_x509_certificate(creds.oem_chain[0])
    leaf = x509.load_der_x509_certificate(creds.contract_chain[0])
    public = oem.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    pcid = pcid_of(creds.oem_chain[0])
    dh, sealed = seal_contract_key(key, public, pcid, leaf)
    assert len(dh) == 133 and len(sealed) == 94
    opened = open_contract_key(creds.oem_key, dh, sealed, pcid, leaf)
    assert opened.private_numbers() == key.private_numbers()
    with pytest.raises(InstallError, match="tag"):
        open_contract_key(creds.oem_key, dh, sealed[:-1] + bytes([sealed[-1] ^ 1]), pcid, leaf)
    with pytest.raises(InstallError, match="tag"):  # another PCID: another AAD
        open_contract_key(creds.oem_key, dh, sealed, "X" * 18, leaf)


@pytest.mark.parametrize("control", ["scheduled", "dynamic"])
def test_metering_confirmation_is_signed_with_the_contract_key(
    control: str, creds: Ev20Credentials
) -> None:
    secc = SpecSecc(pnc=True, metering_at_loop=2, authorization_ongoing=0)
    ev = run(replace(PNC, control=control, charge_loops=4), secc, credentials=creds)
    assert ev.error is None, ev.error
    assert secc.verdicts == ["OK", "OK"]  # authorization, metering confirmation
    i = secc.seen.index("MeteringConfirmationReq")
    assert secc.seen[i - 1] == secc.seen[i + 1] == "DC_ChargeLoopReq"
    data = secc.metering_seen[0]
    assert bytes(data.session_id) == bytes.fromhex("0102030405060708")
    assert data.meter_info.charged_energy_reading_wh == 2 * secc.energy_per_loop
    assert (data.scheduled_smdt_control_mode is not None) is (control == "scheduled")
    assert ev.metering_confirmations == 1 and ev.loops == 4


def test_metering_confirmation_after_the_stop(creds: Ev20Credentials) -> None:
    secc = SpecSecc(pnc=True, metering_at_stop=True, authorization_ongoing=0)
    ev = run(PNC, secc, credentials=creds)
    assert ev.error is None, ev.error
    assert (
        secc.seen[-4:]
        == [
            "MeteringConfirmationReq",
            "DC_WeldingDetectionReq",
            "DC_WeldingDetectionReq",
            "SessionStopReq",
        ][-4:]
        or secc.seen.count("MeteringConfirmationReq") == 1
    )
    assert secc.verdicts == ["OK", "OK"]


def test_tampered_metering_signature_is_refused(creds: Ev20Credentials) -> None:
    secc = SpecSecc(pnc=True, metering_at_loop=1, authorization_ongoing=0)
    ev = run(PNC, secc, credentials=creds, faults=Ev20Faults(tamper_signature=True))
    # the authorization itself fails first: a tampered EV is refused at once
    assert ev.error == "AuthorizationRes: FAILED_SignatureError"
    secc = SpecSecc(pnc=True, metering_at_loop=1, authorization_ongoing=0)
    ev = run(PNC, secc, credentials=creds, faults=Ev20Faults(tamper_metering=True))
    assert secc.verdicts == ["OK", "FAILED_MeteringSignatureNotValid"]
    assert ev.error == "MeteringConfirmationRes: FAILED_MeteringSignatureNotValid"


@pytest.mark.parametrize("control", ["scheduled", "dynamic"])
@pytest.mark.parametrize("mode", ["ac", "dc"])
def test_bpt_session_charges_then_discharges(mode: str, control: str) -> None:
    script = Ev20Script(
        mode=mode, control=control, bpt=True, charge_loops=3, discharge_loops=2, think_time=0.01
    )
    secc = SpecSecc()
    ev = run(script, secc)
    assert ev.error is None, ev.error
    service = 6 if mode == "dc" else 5
    sel = next(r for n, r in secc.history if n == "ServiceSelectionReq")
    assert sel.selected_energy_transfer_service.service_id == service
    cpd = next(r for n, r in secc.history if n.endswith("ChargeParameterDiscoveryReq"))
    mode_ = getattr(cpd, f"{mode}_cpd_req_energy_transfer_mode")
    assert type(mode_).__name__.startswith("BPT_")
    assert ev.evse_max_discharge_power == 11_000
    loops = [r for n, r in secc.history if n.endswith("ChargeLoopReq")]
    assert len(loops) == 5
    assert all(type(r.cl_req_control_mode).__name__.startswith("BPT_") for r in loops)
    if control == "scheduled":
        flows = [SpecSecc._discharging(r) for r in loops]
        assert flows == [False, False, False, True, True]
        assert secc.discharged_wh == 2 * secc.energy_per_loop
        assert ev.discharged_wh == secc.discharged_wh
        if mode == "dc":
            currents = [r.cl_req_control_mode.ev_target_current for r in loops]
            assert [c.value * 10**c.exponent for c in currents][-1] == -20
    assert ev.responses[-1] == ("SessionStopRes", "OK")


def test_bpt_prefers_a_unified_channel_and_names_charge_on_a_separated_one() -> None:
    script = Ev20Script(mode="dc", bpt=True, discharge_loops=2, think_time=0.01)
    secc = SpecSecc()  # offers Separated first, then Unified
    ev = run(script, secc)
    assert ev.error is None and ev.bpt_channel == 1
    sel = next(r for n, r in secc.history if n == "ServiceSelectionReq")
    assert sel.selected_energy_transfer_service.parameter_set_id == 2  # (scheduled, Unified)
    start = next(r for n, r in secc.history if n == "PowerDeliveryReq")
    assert start.bpt_channel_selection is None
    secc = SpecSecc(bpt_channels=(2,))
    ev = run(script, secc)
    assert ev.error is None and ev.bpt_channel == 2
    start = next(r for n, r in secc.history if n == "PowerDeliveryReq")
    assert start.bpt_channel_selection.value == "Charge"
    assert secc.discharged_wh == 0  # Separated: this EV does not switch direction


def test_bpt_needs_the_service() -> None:
    script = Ev20Script(mode="dc", bpt=True, think_time=0.01)
    ev = run(script, SpecSecc(services=(1, 2)))
    assert ev.error == "the station offers services [1, 2], not DC_BPT (6)"


def test_discharge_loops_need_bpt() -> None:
    with pytest.raises(ValueError, match="bpt"):
        Ev20Script(discharge_loops=2)
