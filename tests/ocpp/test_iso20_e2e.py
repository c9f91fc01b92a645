"""End to end, ISO 15118-20 Plug & Charge through the real core and the real OCPP bridge:
an EV built from ISO 15118-20 and its XSDs (the core tests' peer, tests/core/iso20_peer.py
and iso20_pki.py: real codec, real xmldsig signatures over the EXI fragments) drives the
SECC session; every action of the core goes to the bridge, every answer of the bridge
back to the core, and the bridge talks to the test CSMS over a real websocket, which
validates each CALL against the OCPP 2.0.1 schemas.  The PKI is ``make-test-pki``'s -20
one (P-521 / SHA-512, OCSP responder URLs).

Shown: Get15118EVCertificate with the -20 schema version and the EV's complete EXI, the
CSMS's CertificateInstallationRes reaching the EV byte for byte; Authorize with the eMAID
and SHA-512 iso15118CertificateHashData of the -20 contract chain; Started / Updated
(Authorized, eMAID) / Ended (StoppedByEV) TransactionEvents; the EV's signed metering
confirmation in the transaction as a signedMeterValue that verifies with the contract key.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    load_der_public_key,
    load_pem_private_key,
)

from certs.store import Store
from secc import codec
from secc.core.actions import (
    CloseContactors,
    MeteringReceipt,
    RequestAuthorization,
    SendResponse,
)
from secc.core.config import PncTrust
from secc.core.events import AuthorizationResult, CertificateResult, EvseStatus
from secc.ocpp_bridge.bridge import BridgeConfig
from secc.testing.clock import FakeClock
from tests.core.iso20_peer import Ev, config, start, to_precharged, to_scheduled
from tests.core.iso20_pki import Chain, signed_header
from tests.ocpp.csms import Behaviour, TestCsms, wait_for
from tests.ocpp.station import Station, build, running

C = codec.schema_module("iso20-common")
COMMON_NS = "urn:iso:std:iso:15118:-20:CommonMessages"


@pytest.fixture(scope="module")
def pki20(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ocpp-pki20") / "pki"
    make = [sys.executable, "-m", "secc.cli.main", "certs", "make-test-pki", str(directory)]
    subprocess.run(make, check=True, capture_output=True)
    return directory


def _chain(directory: Path, leaf: str, chain_file: str) -> Chain:
    certs = x509.load_pem_x509_certificates((directory / chain_file).read_bytes())
    root = x509.load_pem_x509_certificate((directory / "root.pem").read_bytes())
    key = load_pem_private_key((directory / f"{leaf}.key").read_bytes(), None)
    return Chain(leaf=certs[0], key=key, subs=tuple(certs[1:]), root=root)


def _installation_res(session_id: bytes, contract: Chain, cps: x509.Certificate) -> bytes:
    """A -20 CertificateInstallationRes as a CPS behind the CSMS would send it."""

    def der(cert: x509.Certificate) -> bytes:
        return cert.public_bytes(Encoding.DER)

    data = C.SignedInstallationData(
        id="SID1",
        contract_certificate_chain=C.ContractCertificateChain(
            certificate=der(contract.leaf),
            sub_certificates=C.SubCertificates(certificate=tuple(der(c) for c in contract.subs)),
        ),
        ecdh_curve=C.EcdhCurve.SECP521,
        dh_public_key=bytes(133),
        secp521_encrypted_private_key=bytes(94),
    )
    res = C.CertificateInstallationRes(
        header=C.MessageHeader(session_id=session_id, time_stamp=1_780_000_000),
        response_code=C.ResponseCode("OK"),
        evse_processing=C.Processing.Finished,
        cps_certificate_chain=C.CertificateChain(certificate=der(cps)),
        signed_installation_data=data,
        remaining_contract_certificate_chains=0,
    )
    return codec.encode(res)


class Relay:
    """Core actions to the bridge; the bridge's answers back to the core."""

    def __init__(self, ev: Ev, station: Station) -> None:
        self.ev = ev
        self.station = station
        self.sent = 0

    def flush(self) -> None:
        for action in self.ev.actions[self.sent :]:
            self.station.bridge.perform(action)
        self.sent = len(self.ev.actions)

    def send(self, step: Callable[[], Any]) -> Any:
        res = step()
        self.flush()
        return res

    async def answer(self, kind: type) -> list[Any]:
        event = await self.station.next_event(kind)
        out = self.ev.feed(event)
        self.flush()
        return out

    def meter(self, **kw: Any) -> None:
        status = EvseStatus(**kw)
        self.ev.feed(status)
        self.station.bridge.evse_status(status)
        self.flush()


def test_iso20_pnc_session_through_core_bridge_and_csms(pki20: Path, tmp_path: Path) -> None:
    contract = _chain(pki20 / "mo20", "contract", "contract_chain.pem")
    oem = _chain(pki20 / "oem20", "prov", "prov_chain.pem")
    vehicle = x509.load_pem_x509_certificates((pki20 / "oem20" / "vehicle_chain.pem").read_bytes())
    cps = x509.load_pem_x509_certificate((pki20 / "v2g20" / "cps.pem").read_bytes())
    emaid = (pki20 / "mo20" / "emaid.txt").read_text().strip()
    shutil.copytree(pki20 / "station", tmp_path / "store", symlinks=True)
    store = Store(tmp_path / "store")
    store.initialize()
    answered: list[bytes] = []

    def cps_answer(schema: str, action: str, exi_request: str) -> str:
        request = codec.decode(base64.b64decode(exi_request), "iso20-common")
        assert type(request).__name__ == "CertificateInstallationReq"
        exi = _installation_res(bytes(request.header.session_id), contract, cps)
        answered.append(exi)
        return base64.b64encode(exi).decode()

    cfg = config(
        vehicle_chain=tuple(vehicle),
        trust=PncTrust(roots=(contract.root,), oem_roots=(oem.root,)),
        metering_confirmation=True,
    )
    ev = Ev(cfg=cfg, dc=True, clock=FakeClock(utc=dt.datetime.now(dt.UTC)))

    async def main() -> None:
        csms = TestCsms(behaviour=Behaviour(ev_cert_answer=cps_answer))
        await csms.start()
        station = build(
            tmp_path,
            csms.url,
            store=store,
            config=BridgeConfig(link_retry=0.05, meter_interval=3600),
        )
        relay = Relay(ev, station)
        async with running(station):
            relay.meter(energy_wh=5000.0)
            assert relay.send(ev.handshake).response_code.value == "OK_SuccessfulNegotiation"
            assert relay.send(ev.session_setup).response_code.value == "OK_NewSessionEstablished"
            setup = relay.send(ev.authorization_setup)
            assert C.Authorization.PnC in setup.authorization_services
            challenge = bytes(setup.pn_c_as_res_authorization_mode.gen_challenge)

            # M02-like with -20: CertificateInstallationReq -> Get15118EVCertificate
            prov = C.SignedCertificateChain(
                id="OEM1",
                certificate=oem.ders[0],
                sub_certificates=C.SubCertificates(certificate=oem.ders[1:]),
            )
            install = C.CertificateInstallationReq(
                header=signed_header(ev.hdr(C), prov, oem.key),
                oem_provisioning_certificate_chain=prov,
                list_of_root_certificate_i_ds=C.ListOfRootCertificateIDs(
                    root_certificate_id=(
                        C.X509IssuerSerial(
                            x509_issuer_name=contract.root.subject.rfc4514_string(),
                            x509_serial_number=contract.root.serial_number,
                        ),
                    )
                ),
                maximum_contract_certificate_chains=1,
            )
            assert relay.send(lambda: ev.send(install)) is None  # waits for the CSMS
            out = await relay.answer(CertificateResult)
            (res,) = [a for a in out if isinstance(a, SendResponse)]
            assert res.name == "CertificateInstallationRes"
            # what goes on the wire: the CSMS's bytes, unchanged
            wire = res.exi if res.exi is not None else codec.encode(res.message)
            assert wire == answered[0]
            ((schema, action, exi),) = csms.ev_cert_requests
            assert (schema, action) == (COMMON_NS, "Install")
            assert base64.b64decode(exi) == codec.encode(install)

            # PnC authorization: Ongoing while the CSMS decides, then Finished
            mode = C.PnC_AReqAuthorizationMode(
                id="PnC1",
                gen_challenge=challenge,
                contract_certificate_chain=C.ContractCertificateChain(
                    certificate=contract.ders[0],
                    sub_certificates=C.SubCertificates(certificate=contract.ders[1:]),
                ),
            )
            pnc = C.AuthorizationReq(
                header=signed_header(ev.hdr(C), mode, contract.key),
                selected_authorization_service=C.Authorization.PnC,
                pn_c_a_req_authorization_mode=mode,
            )
            res = relay.send(lambda: ev.send(pnc))
            assert (res.response_code.value, res.evse_processing.value) == ("OK", "Ongoing")
            result = await relay.answer(AuthorizationResult)
            assert result == [] or all(not isinstance(a, SendResponse) for a in result)
            res = relay.send(
                lambda: ev.send(
                    dataclasses.replace(pnc, header=signed_header(ev.hdr(C), mode, contract.key))
                )
            )
            assert (res.response_code.value, res.evse_processing.value) == ("OK", "Finished")

            relay.send(lambda: to_scheduled(ev, dynamic=False))
            relay.send(lambda: to_precharged(ev))
            assert relay.send(lambda: start(ev, dynamic=False)).response_code.value == "OK"
            assert any(isinstance(a, CloseContactors) for a in ev.actions)
            relay.meter(
                isolation="Valid",
                present_voltage=395.0,
                present_current=50.0,
                contactors_closed=True,
                energy_wh=5400.0,
                power_w=19750.0,
            )
            loop = relay.send(lambda: ev.dc_loop(False))
            assert loop.evse_status.evse_notification.value == "MeteringConfirmation"
            meter = C.MeterInfo(
                **{
                    f.name: getattr(loop.meter_info, f.name)
                    for f in dataclasses.fields(loop.meter_info)
                }
            )
            data = C.SignedMeteringData(
                id="SMD1",
                session_id=ev.session_id,
                meter_info=meter,
                scheduled_smdt_control_mode=C.Scheduled_SMDTControlMode(
                    selected_schedule_tuple_id=1
                ),
            )
            confirm = C.MeteringConfirmationReq(
                header=signed_header(ev.hdr(C), data, contract.key), signed_metering_data=data
            )
            assert relay.send(lambda: ev.send(confirm)).response_code.value == "OK"
            assert any(isinstance(a, MeteringReceipt) for a in ev.actions)
            relay.send(lambda: ev.power_delivery("Stop"))
            relay.meter(
                isolation="Valid", present_voltage=0.0, contactors_closed=False, energy_wh=5400.0
            )
            relay.send(ev.welding)
            assert relay.send(ev.session_stop).response_code.value == "OK"
            await wait_for(lambda: any(e["eventType"] == "Ended" for _, e in csms.tx_raw))
            await wait_for(lambda: len(station.bridge.queue) == 0)
        await csms.stop()

        asks = [a for a in ev.actions if isinstance(a, RequestAuthorization)]
        assert asks and asks[0].hash_algorithm == "SHA512"
        (auth,) = [p for name, p in csms.calls if name == "Authorize"]
        assert auth["idToken"] == {"idToken": emaid, "type": "eMAID"}
        hash_data = auth["iso15118CertificateHashData"]
        assert len(hash_data) == 3 and {h["hashAlgorithm"] for h in hash_data} == {"SHA512"}
        leaf_issuer = contract.subs[0]
        assert (
            hash_data[0]["issuerNameHash"]
            == hashlib.sha512(leaf_issuer.subject.public_bytes()).hexdigest()
        )
        assert hash_data[0]["serialNumber"] == format(contract.leaf.serial_number, "x")

        stream = csms.transaction_stream()
        assert [e["seqNo"] for e in stream] == list(range(len(stream)))
        kinds = [(e["eventType"], e["triggerReason"]) for e in stream]
        assert kinds[0] == ("Started", "CablePluggedIn")
        assert ("Updated", "Authorized") in kinds
        assert ("Updated", "ChargingStateChanged") in kinds
        assert ("Updated", "SignedDataReceived") in kinds
        assert stream[-1]["eventType"] == "Ended"
        assert stream[-1]["transactionInfo"]["stoppedReason"] == "StoppedByEV"
        authorized = next(e for e in stream if e["triggerReason"] == "Authorized")
        assert authorized["idToken"] == {"idToken": emaid, "type": "eMAID"}
        receipt = next(e for e in stream if e["triggerReason"] == "SignedDataReceived")
        (value,) = [
            v
            for mv in receipt["meterValue"]
            for v in mv["sampledValue"]
            if v["measurand"] == "Energy.Active.Import.Register"
        ]
        assert value["value"] == float(meter.charged_energy_reading_wh)
        _verify(value["signedMeterValue"], contract.leaf)

    asyncio.run(asyncio.wait_for(main(), 60))


def _verify(signed: dict[str, str], contract_leaf: x509.Certificate) -> None:
    """The CSMS's check: the layout of docs/ocpp.md, SHA-512 digest of the metering data in
    SignedInfo, the ECDSA P-521 signature with publicKey, which is the contract key."""
    assert signed["signingMethod"] == "ECDSAP521SHA512"
    blob = base64.b64decode(signed["signedMeterData"], validate=True)
    parts = []
    while blob:
        n = int.from_bytes(blob[:2], "big")
        parts.append(blob[2 : 2 + n])
        blob = blob[2 + n :]
    data, signed_info, signature = parts
    decoded = codec.decode_fragment(data, "iso20-common")[1]
    assert type(decoded).__name__ == "SignedMeteringData"
    info = codec.decode_fragment(signed_info, "xmldsig")[1]
    assert bytes(info.reference[0].digest_value) == hashlib.sha512(data).digest()
    key = load_der_public_key(base64.b64decode(signed["publicKey"]))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert key.public_numbers() == contract_leaf.public_key().public_numbers()  # type: ignore[union-attr]
    r, s = int.from_bytes(signature[:66], "big"), int.from_bytes(signature[66:], "big")
    key.verify(encode_dss_signature(r, s), signed_info, ec.ECDSA(hashes.SHA512()))


@pytest.mark.parametrize("foreign", [False, True])
def test_iso20_contract_validated_offline_when_the_csms_is_down(
    pki20: Path, tmp_path: Path, foreign: bool
) -> None:
    """The CSMS cannot be reached: a -20 contract chain is validated locally with -20's
    rules against the MO roots in the store (ContractValidationOffline), then the offline
    policy decides; a chain under a root the station does not have is refused."""
    from secc.core.actions import RequestAuthorization as Ask
    from tests.ocpp.iso20_pki import make_chain

    shutil.copytree(pki20 / "station", tmp_path / "store", symlinks=True)
    store = Store(tmp_path / "store")
    store.initialize()
    if foreign:
        other = make_chain()
        ask = Ask("eMAID", "DEABCC1234567X", other.der, "SHA512", "urn:iso:std:iso:15118:-20:DC")
    else:
        contract = _chain(pki20 / "mo20", "contract", "contract_chain.pem")
        emaid = (pki20 / "mo20" / "emaid.txt").read_text().strip()
        ask = Ask("eMAID", emaid, contract.ders, "SHA512", "urn:iso:std:iso:15118:-20:DC")

    async def main() -> None:
        station = build(
            tmp_path,
            "ws://127.0.0.1:9/ocpp",  # nothing listens: the CSMS is down
            store=store,
            variables={("AuthCtrlr", "OfflineTxForUnknownIdEnabled"): "true"},
        )
        async with running(station, online=False):
            station.bridge.perform(ask)
            result = await station.next_event(AuthorizationResult)
        if foreign:
            assert not result.accepted and result.certificate_status != "Accepted"
        else:
            assert result.accepted and result.certificate_status == "Accepted", result

    asyncio.run(asyncio.wait_for(main(), 30))
