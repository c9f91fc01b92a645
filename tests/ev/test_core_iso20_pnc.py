"""The -20 EV's Plug & Charge, certificate installation, metering confirmation and BPT
against the real core (``SeccSession`` through the real codec on a fake clock, the fake
station answering RequestAuthorization / RequestCertificate), with the test PKI's -20
chains (``make-test-pki``: mo20/, oem20/).  The EV is written from the standard
(secc/ev/); these check the two sides agree, and that each EV attack is refused with the
contactors never closed."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from secc import codec
from secc.core.actions import (
    CloseContactors,
    MeteringReceipt,
    RequestAuthorization,
    RequestCertificate,
    SetDcTarget,
)
from secc.core.config import (
    ISO20_AC_NAMESPACE,
    ISO20_DC_NAMESPACE,
    PncTrust,
    SessionConfig,
)
from secc.ev.install20 import pcid_of, seal_contract_key
from secc.ev.iso20 import Ev20Script, Ev20Simulator
from secc.ev.pnc20 import Ev20Credentials, Ev20Faults, load_credentials20
from secc.testing.clock import FakeClock
from secc.testing.evse import FakeStation
from secc.testing.harness import Outcome, run_session

C = codec.schema_module("iso20-common")


def pem(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


@pytest.fixture(scope="module")
def creds(pki_dir: Path) -> Ev20Credentials:
    return load_credentials20(pki_dir)


@pytest.fixture(scope="module")
def cfg(pki_dir: Path) -> SessionConfig:
    """A -20 station over TLS 1.3 whose transport verified the test vehicle chain."""
    return SessionConfig(
        protocols=(ISO20_DC_NAMESPACE, ISO20_AC_NAMESPACE),
        tls13=True,
        vehicle_chain=tuple(pem(pki_dir / "oem20" / "vehicle_chain.pem")),
        trust=PncTrust(
            roots=tuple(pem(pki_dir / "mo20" / "root.pem")),
            oem_roots=tuple(pem(pki_dir / "oem20" / "root.pem")),
        ),
    )


def script(mode: str = "dc", **changes: Any) -> Ev20Script:
    base: dict[str, Any] = {
        "mode": mode,
        "payment": "pnc",
        "think_time": 0.01,
        "poll_interval": 0.2,
        "loop_interval": 0.1,
        "charge_loops": 3,
    }
    return Ev20Script(**(base | changes))


def clock() -> FakeClock:
    return FakeClock(utc=dt.datetime.now(dt.UTC))  # the test PKI is valid from now


def run(cfg: SessionConfig, s: Ev20Script, **kw: Any) -> tuple[Outcome, Ev20Simulator]:
    ev20: dict[str, Any] = {k: kw.pop(k) for k in ("credentials", "faults") if k in kw}
    out = run_session(cfg, s, clock=clock(), ev20=ev20, **kw)
    assert isinstance(out.ev, Ev20Simulator)
    return out, out.ev


@pytest.mark.parametrize("mode", ["ac", "dc"])
def test_pnc_session_with_the_core(mode: str, cfg: SessionConfig, creds: Ev20Credentials) -> None:
    out, ev = run(cfg, script(mode), credentials=creds)
    assert ev.error is None, (ev.error, out.responses)
    assert all(not c.startswith(("FAILED", "WARNING")) for _, c in out.responses), out.responses
    asks = [a for _, a in out.actions if isinstance(a, RequestAuthorization)]
    assert asks and asks[0].id_token == creds.emaid
    assert out.requests.count(f"{mode.upper()}_ChargeLoopReq") == 3
    assert any(isinstance(a, CloseContactors) for _, a in out.actions)
    assert ev.responses[-1] == ("SessionStopRes", "OK")


@pytest.mark.parametrize(
    ("faults", "code"),
    [
        (Ev20Faults(tamper_signature=True), "FAILED_SignatureError"),
        (Ev20Faults(wrong_curve=True), "FAILED_SignatureError"),
        (Ev20Faults(no_signature=True), "FAILED_SignatureError"),
        (Ev20Faults(wrong_challenge=True), "WARNING_ChallengeInvalid"),
    ],
)
def test_attacks_are_refused_by_the_core(
    faults: Ev20Faults, code: str, cfg: SessionConfig, creds: Ev20Credentials
) -> None:
    out, ev = run(cfg, script(), credentials=creds, faults=faults)
    assert ("AuthorizationRes", code) in out.responses, out.responses
    assert "ServiceDiscoveryReq" not in out.requests
    assert ev.error is not None and code in ev.error
    assert not any(isinstance(a, CloseContactors) for _, a in out.actions)
    assert not any(isinstance(a, RequestAuthorization) for _, a in out.actions)


def test_foreign_contract_is_refused(
    cfg: SessionConfig, creds: Ev20Credentials, pki_dir: Path
) -> None:
    """The -2 (P-256) contract chain is no -20 contract: refused, never charged."""
    other = load_credentials20(
        pki_dir,
        contract_chain=pki_dir / "mo" / "contract_chain.pem",
        contract_key=pki_dir / "mo" / "contract.key",
    )
    out, ev = run(cfg, script(), credentials=other)
    assert ev.error is not None
    code = dict(out.responses).get("AuthorizationRes", "")
    assert code.startswith(("FAILED", "WARNING")), out.responses
    assert not any(isinstance(a, CloseContactors) for _, a in out.actions)


def test_metering_confirmation_with_the_core(creds: Ev20Credentials, cfg: SessionConfig) -> None:
    out, ev = run(
        replace(cfg, metering_confirmation=True), script(charge_loops=4), credentials=creds
    )
    assert ev.error is None, (ev.error, out.responses)
    assert ev.metering_confirmations >= 1
    assert ("MeteringConfirmationRes", "OK") in out.responses
    receipts = [a for _, a in out.actions if isinstance(a, MeteringReceipt)]
    assert receipts, [type(a).__name__ for _, a in out.actions]


def test_tampered_metering_confirmation_is_refused_by_the_core(
    creds: Ev20Credentials, cfg: SessionConfig
) -> None:
    out, ev = run(
        replace(cfg, metering_confirmation=True),
        script(charge_loops=4),
        credentials=creds,
        faults=Ev20Faults(tamper_metering=True),
    )
    codes = [c for n, c in out.responses if n == "MeteringConfirmationRes"]
    assert codes and codes[0].startswith("FAILED"), out.responses
    assert ev.error is not None and "MeteringConfirmationRes" in ev.error
    assert not any(isinstance(a, MeteringReceipt) for _, a in out.actions)


def test_certificate_installation_through_the_core(
    cfg: SessionConfig, creds: Ev20Credentials, pki_dir: Path
) -> None:
    """An EV without a contract: the core forwards CertificateInstallationReq (the -20
    namespace, the EV's EXI); a back end seals the test contract for the EV's OEM
    provisioning key; the core passes its answer through; the EV opens it and authorizes
    with the installed contract."""
    contract_key = serialization.load_pem_private_key(
        (pki_dir / "mo20" / "contract.key").read_bytes(), None
    )
    assert isinstance(contract_key, ec.EllipticCurvePrivateKey)
    seen: list[RequestCertificate] = []

    def backend(action: RequestCertificate) -> bytes:
        seen.append(action)
        req = codec.decode(action.exi_request, "iso20-common")
        oem = bytes(req.oem_provisioning_certificate_chain.certificate)
        public = x509.load_der_x509_certificate(oem).public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        chain = creds.contract_chain
        leaf = x509.load_der_x509_certificate(chain[0])
        dh, sealed = seal_contract_key(contract_key, public, pcid_of(oem), leaf)
        cps = pem(pki_dir / "v2g20" / "cps_chain.pem")
        der = [c.public_bytes(serialization.Encoding.DER) for c in cps]
        res = C.CertificateInstallationRes(
            header=C.MessageHeader(session_id=bytes(req.header.session_id), time_stamp=1),
            response_code=C.ResponseCode.OK,
            evse_processing=C.Processing.Finished,
            cps_certificate_chain=C.CertificateChain(
                certificate=der[0], sub_certificates=C.SubCertificates(certificate=tuple(der[1:]))
            ),
            signed_installation_data=C.SignedInstallationData(
                id="id1",
                contract_certificate_chain=C.ContractCertificateChain(
                    certificate=chain[0], sub_certificates=C.SubCertificates(certificate=chain[1:])
                ),
                ecdh_curve=C.EcdhCurve.SECP521,
                dh_public_key=dh,
                secp521_encrypted_private_key=sealed,
            ),
            remaining_contract_certificate_chains=0,
        )
        return codec.encode(res)

    no_contract = load_credentials20(pki_dir, with_contract=False)
    out, ev = run(
        cfg,
        script(),
        credentials=no_contract,
        station=FakeStation(backend=backend),
    )
    assert ev.error is None, (ev.error, out.responses)
    assert seen and seen[0].schema_version == "urn:iso:std:iso:15118:-20:CommonMessages"
    assert ev.installed is not None and ev.installed.emaid == creds.emaid
    assert ("CertificateInstallationRes", "OK") in out.responses
    assert ev.responses[-1] == ("SessionStopRes", "OK")


@pytest.mark.parametrize("control", ["scheduled", "dynamic"])
def test_dc_bpt_with_the_core_discharges(control: str, cfg: SessionConfig) -> None:
    bpt_cfg = replace(
        cfg,
        bpt=True,
        dc=replace(cfg.dc, max_discharge_current=30.0, max_discharge_power=12_000.0),
    )
    s = script("dc", payment="eim", control=control, bpt=True, discharge_loops=2)
    out, ev = run(bpt_cfg, s)
    assert ev.error is None, (ev.error, out.responses)
    assert ev.evse_max_discharge_power == 12_000
    targets = [a for _, a in out.actions if isinstance(a, SetDcTarget)]
    if control == "scheduled":
        assert any(t.current < 0 for t in targets), targets
    assert ev.responses[-1] == ("SessionStopRes", "OK")


def test_ac_bpt_with_the_core(cfg: SessionConfig) -> None:
    bpt_cfg = replace(cfg, bpt=True, ac=replace(cfg.ac, max_discharge_current=16.0))
    s = script("ac", payment="eim", bpt=True, discharge_loops=2)
    out, ev = run(bpt_cfg, s)
    assert ev.error is None, (ev.error, out.responses)
    assert ev.evse_max_discharge_power is not None and ev.evse_max_discharge_power > 0
    assert ev.responses[-1] == ("SessionStopRes", "OK")
