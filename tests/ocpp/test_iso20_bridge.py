"""ISO 15118-20 through the OCPP bridge, driven with the core's actions against the test
CSMS (which validates every CALL against the OCPP 2.0.1 JSON schemas):

* a -20 Plug & Charge transaction: Authorize with the eMAID and the P-521 contract chain's
  iso15118CertificateHashData in SHA-512 (checked against an independent CertID
  computation), Started / Updated / Ended with the eMAID token, meter values in both
  directions for a bidirectional session, the EV's signed metering receipt as a
  signedMeterValue (SignedDataReceived) whose signature a CSMS can verify;
* Authorize with the PEM chain when CentralContractValidationAllowed;
* Get15118EVCertificate with the -20 schema version and the EV's EXI, the CSMS's
  exiResponse back unchanged; a slow CSMS gives a clean failure inside the EV's budget.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)

from certs.store import Store
from secc.core.actions import (
    ChargingStateChanged,
    EndReason,
    MeteringReceipt,
    RequestAuthorization,
    RequestCertificate,
    SessionEnded,
    SessionStarted,
)
from secc.core.events import AuthorizationResult, CertificateResult, EvseStatus
from secc.ocpp_bridge import mapping
from secc.ocpp_bridge.bridge import BridgeConfig
from tests.ocpp.csms import Behaviour, TestCsms, wait_for
from tests.ocpp.iso20_pki import EMAID, Chain20, cert_id, make_chain
from tests.ocpp.station import build, running

ISO20_NS = "urn:iso:std:iso:15118:-20:DC"
ISO20_SCHEMA = "urn:iso:std:iso:15118:-20:CommonMessages"
ECDSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


@pytest.fixture(scope="module")
def chain20() -> Chain20:
    return make_chain()


def _store_with_root(store: Store, chain: Chain20) -> Store:
    store.install_root("mo", chain.root.public_bytes(Encoding.PEM), utc_now=None)
    return store


def _calls(csms: TestCsms, action: str) -> list[dict[str, Any]]:
    return [payload for name, payload in csms.calls if name == action]


def _receipt(chain: Chain20, energy_wh: float, exported_wh: float) -> MeteringReceipt:
    """A receipt as the core hands it: SignedInfo carrying the SHA-512 digest of the
    SignedMeteringData fragment, signed by the contract key (raw r||s, 66 bytes each)."""
    data = b"\x80\x9a\x02SignedMeteringData" + os.urandom(32)
    signed_info = b"\x80\x81SignedInfo" + hashlib.sha512(data).digest()
    der = chain.leaf_key.sign(signed_info, ec.ECDSA(hashes.SHA512()))
    r, s = decode_dss_signature(der)
    spki = chain.chain[0].public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return MeteringReceipt(
        meter_id="METER-1",
        energy_wh=energy_wh,
        timestamp=int(time.time()),
        signed_meter_data=data,
        signed_info=signed_info,
        signature_value=r.to_bytes(66, "big") + s.to_bytes(66, "big"),
        signing_method=ECDSA_SHA512,
        public_key=spki,
        emaid=EMAID,
        discharged_energy_wh=exported_wh,
    )


def _verify_signed(value: dict[str, str]) -> bytes:
    """What a CSMS does with the signedMeterValue: split the documented layout, check the
    digest in SignedInfo and the signature with publicKey; returns the metering data."""
    blob = base64.b64decode(value["signedMeterData"], validate=True)
    parts = []
    while blob:
        n = int.from_bytes(blob[:2], "big")
        parts.append(blob[2 : 2 + n])
        blob = blob[2 + n :]
    data, signed_info, signature = parts
    assert signed_info.endswith(hashlib.sha512(data).digest())
    key = load_der_public_key(base64.b64decode(value["publicKey"]))
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp521r1"
    r, s = int.from_bytes(signature[:66], "big"), int.from_bytes(signature[66:], "big")
    key.verify(encode_dss_signature(r, s), signed_info, ec.ECDSA(hashes.SHA512()))
    return data


def _sampled(event: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["measurand"]: v for mv in event.get("meterValue", []) for v in mv["sampledValue"]}


def test_iso20_pnc_bidirectional_transaction(
    tmp_path: Path, store: Store, chain20: Chain20
) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        config = BridgeConfig(link_retry=0.05, meter_interval=0.2, bidirectional=True)
        station = build(tmp_path, csms.url, store=_store_with_root(store, chain20), config=config)
        bridge = station.bridge
        async with running(station):
            bridge.evse_status(EvseStatus(0.0, 0.0, energy_wh=1000.0, energy_export_wh=200.0))
            bridge.perform(SessionStarted(b"\x01" * 8, b"\x02" * 6, ISO20_NS))
            request = RequestAuthorization(
                "eMAID", EMAID, chain20.der, hash_algorithm="SHA512", protocol=ISO20_NS
            )
            bridge.perform(request)
            assert (await station.next_event(AuthorizationResult)).accepted
            bridge.perform(ChargingStateChanged(True, soc=40))
            bridge.evse_status(EvseStatus(400.0, 50.0, energy_wh=1500.0, power_w=20000.0))
            await wait_for(
                lambda: any(e["triggerReason"] == "MeterValuePeriodic" for _, e in csms.tx_raw)
            )
            # the EV discharges (DC_BPT): negative power and current, the export register grows
            bridge.evse_status(
                EvseStatus(400.0, -25.0, energy_wh=1500.0, power_w=-10000.0, energy_export_wh=450.0)
            )
            await asyncio.sleep(0.5)  # periodic samples while discharging
            bridge.perform(_receipt(chain20, 1500.0, 250.0))
            await wait_for(
                lambda: any(e["triggerReason"] == "SignedDataReceived" for _, e in csms.tx_raw)
            )
            bridge.perform(ChargingStateChanged(False, soc=35))
            bridge.perform(SessionEnded(EndReason.EV_STOP))
            await wait_for(lambda: any(e["eventType"] == "Ended" for _, e in csms.tx_raw))
            await wait_for(lambda: len(bridge.queue) == 0)
        await csms.stop()

        # Authorize: eMAID + SHA-512 CertIDs of leaf, sub2, sub1 (sub1's issuer: the root)
        (auth,) = _calls(csms, "Authorize")
        assert auth["idToken"] == {"idToken": EMAID, "type": "eMAID"}
        issuers = (*chain20.chain[1:], chain20.root)
        expected = [
            {**cert_id(c, i, "SHA512"), "responderURL": "http://ocsp.mo.example/"}
            for c, i in zip(chain20.chain, issuers, strict=True)
        ]
        assert auth["iso15118CertificateHashData"] == expected
        assert "certificate" not in auth

        stream = csms.transaction_stream()
        assert [e["seqNo"] for e in stream] == list(range(len(stream)))
        assert (stream[0]["eventType"], stream[-1]["eventType"]) == ("Started", "Ended")
        started = _sampled(stream[0])
        assert started["Energy.Active.Import.Register"]["value"] == 1000.0
        assert started["Energy.Active.Export.Register"]["value"] == 200.0
        authorized = next(e for e in stream if e["triggerReason"] == "Authorized")
        assert authorized["idToken"] == {"idToken": EMAID, "type": "eMAID"}
        periodic = [_sampled(e) for e in stream if e["triggerReason"] == "MeterValuePeriodic"]
        charging = [p for p in periodic if p["Power.Active.Import"]["value"] > 0]
        discharging = [p for p in periodic if p["Power.Active.Export"]["value"] > 0]
        assert charging and discharging
        assert charging[0]["Power.Active.Export"]["value"] == 0.0
        assert charging[0]["Current.Import"]["value"] == 50.0
        d = discharging[-1]
        assert d["Power.Active.Export"]["value"] == 10000.0
        assert d["Power.Active.Import"]["value"] == 0.0
        assert d["Current.Export"]["value"] == 25.0
        assert d["Energy.Active.Export.Register"]["value"] == 450.0
        assert d["Energy.Active.Import.Register"]["value"] == 1500.0

        (receipt,) = [e for e in stream if e["triggerReason"] == "SignedDataReceived"]
        values = _sampled(receipt)
        assert set(values) == {"Energy.Active.Import.Register", "Energy.Active.Export.Register"}
        assert values["Energy.Active.Import.Register"]["value"] == 1500.0
        assert values["Energy.Active.Export.Register"]["value"] == 250.0
        signed = values["Energy.Active.Import.Register"]["signedMeterValue"]
        assert signed["signingMethod"] == "ECDSAP521SHA512"
        assert signed["encodingMethod"] == mapping.SIGNED_ENCODING
        assert _verify_signed(signed).startswith(b"\x80\x9a\x02SignedMeteringData")

        ended = stream[-1]
        assert ended["transactionInfo"]["stoppedReason"] == "StoppedByEV"
        end_values = _sampled(ended)
        assert end_values["Energy.Active.Export.Register"]["context"] == "Transaction.End"
        assert end_values["Energy.Active.Export.Register"]["value"] == 450.0

    run(main())


def test_iso20_unidirectional_evse_reports_as_before(tmp_path: Path) -> None:
    """A -20 session on an EVSE without discharge reports the import measurands only,
    exactly as an ISO 15118-2 session does."""

    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        station = build(tmp_path, csms.url, config=BridgeConfig(link_retry=0.05))
        bridge = station.bridge
        async with running(station):
            bridge.evse_status(EvseStatus(0.0, 0.0, energy_wh=10.0))
            bridge.perform(SessionStarted(b"\x01" * 8, b"\x02" * 6, ISO20_NS))
            bridge.evse_status(EvseStatus(400.0, 20.0, energy_wh=20.0, power_w=8000.0))
            bridge.perform(SessionEnded(EndReason.SEQUENCE_TIMEOUT))
            await wait_for(lambda: any(e["eventType"] == "Ended" for _, e in csms.tx_raw))
        await csms.stop()
        stream = csms.transaction_stream()
        assert set(_sampled(stream[0])) == {
            "Energy.Active.Import.Register",
            "Power.Active.Import",
            "Current.Import",
            "Voltage",
        }
        assert not any("Export" in m for e in stream for m in _sampled(e))
        assert stream[-1]["transactionInfo"]["stoppedReason"] == "Timeout"
        assert stream[-1]["triggerReason"] == "EVCommunicationLost"

    run(main())


def test_iso20_authorize_with_the_pem_chain(tmp_path: Path, store: Store, chain20: Chain20) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        station = build(
            tmp_path,
            csms.url,
            store=store,
            config=BridgeConfig(link_retry=0.05, authorize_with="pem"),
            variables={("ISO15118Ctrlr", "CentralContractValidationAllowed"): "true"},
        )
        async with running(station):
            request = RequestAuthorization("eMAID", EMAID, chain20.der, hash_algorithm="SHA512")
            station.bridge.perform(request)
            assert (await station.next_event(AuthorizationResult)).accepted
        await csms.stop()
        (auth,) = _calls(csms, "Authorize")
        assert "iso15118CertificateHashData" not in auth
        pem = x509.load_pem_x509_certificates(auth["certificate"].encode())
        assert pem == list(chain20.chain)

    run(main())


def test_iso20_certificate_installation_passes_the_exi_through(tmp_path: Path) -> None:
    exi_request = b"\x80\x8c\x04CertificateInstallationReq" + os.urandom(600)
    exi_response = b"\x80\x8c\x04CertificateInstallationRes" + os.urandom(1200)

    def answer(schema: str, action: str, exi: str) -> str:
        assert schema == ISO20_SCHEMA and action == "Install"
        assert base64.b64decode(exi) == exi_request
        return base64.b64encode(exi_response).decode()

    async def main() -> None:
        csms = TestCsms(behaviour=Behaviour(ev_cert_answer=answer))
        await csms.start()
        station = build(tmp_path, csms.url)
        async with running(station):
            station.bridge.perform(RequestCertificate("Install", exi_request, ISO20_SCHEMA))
            result = await station.next_event(CertificateResult)
        await csms.stop()
        assert result.exi_response == exi_response  # unchanged, byte for byte
        ((schema, action, exi),) = csms.ev_cert_requests
        assert (schema, action) == (ISO20_SCHEMA, "Install")
        assert base64.b64decode(exi) == exi_request

    run(main())


def test_iso20_certificate_installation_slow_csms_fails_in_time(tmp_path: Path) -> None:
    async def main() -> None:
        csms = TestCsms(behaviour=Behaviour(ev_cert_delay=6.0))
        await csms.start()
        station = build(tmp_path, csms.url, config=BridgeConfig(ev_certificate_budget=1.0))
        async with running(station):
            station.bridge.perform(RequestCertificate("Install", b"\x80exi", ISO20_SCHEMA))
            result = await station.next_event(CertificateResult, timeout=5.0)
        await csms.stop()
        assert result.exi_response is None and "1 s" in result.reason

    run(main())


def test_hash_algorithms_and_receipt_mapping(chain20: Chain20) -> None:
    roots = [chain20.root]
    for algorithm in ("SHA256", "SHA384", "SHA512"):
        entries = mapping.contract_hash_data(chain20.chain, roots, algorithm)
        assert [e["hashAlgorithm"] for e in entries] == [algorithm] * 3
        assert (
            entries[0]["issuerNameHash"]
            == cert_id(chain20.chain[0], chain20.chain[1], algorithm)["issuerNameHash"]
        )
    with pytest.raises(mapping.MappingError):
        mapping.contract_hash_data(chain20.chain, roots, "MD5")
    receipt = _receipt(chain20, 10.0, 0.0)
    big = MeteringReceipt(**{**_fields(receipt), "signed_meter_data": os.urandom(2000)})
    with pytest.raises(mapping.MappingError):
        mapping.signed_meter_value(big)
    value = mapping.signed_meter_value(receipt)
    assert all(len(value[k]) <= 50 for k in ("signingMethod", "encodingMethod"))
    assert _verify_signed(value) == receipt.signed_meter_data


def _fields(receipt: MeteringReceipt) -> dict[str, Any]:
    return {name: getattr(receipt, name) for name in MeteringReceipt.__dataclass_fields__}


def test_runtime_hands_both_registers_to_the_bridge(
    tmp_path: Path, pki_dir: Path, store: Store
) -> None:
    """`secc run`'s Evse reads the simulated board (a DC module sinking energy from the EV)
    into an EvseStatus with the export register and negative power; the bridge of a
    unidirectional EVSE then reports the export measurands for that transaction."""
    from hal.backends.simulated import build_board
    from hal.types import CpState
    from secc.runtime import Station as Runtime
    from tests.ocpp.test_e2e_pnc import EVSE_ID, _config

    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        station = build(tmp_path, csms.url, config=BridgeConfig(link_retry=0.05))
        board, plant = build_board()
        async with running(station), Runtime(_config(pki_dir), boards={EVSE_ID: board}) as rt:
            evse = rt.evse(EVSE_ID)
            station.bridge.perform(SessionStarted(b"\x01" * 8, b"\x02" * 6, ISO20_NS))
            plant.ev_state = CpState.C
            await board.contactors.close()
            assert board.dc_supply is not None
            await board.dc_supply.set_target(400.0, -20.0)
            await board.dc_supply.enable(True)
            plant.advance(360.0)  # 8 kW from the EV for 0.1 h
            status = await evse.read_status()
            assert status.energy_export_wh == pytest.approx(800.0) and status.power_w < 0
            assert status.present_current == -20.0
            station.bridge.evse_status(status)
            station.bridge.perform(SessionEnded(EndReason.EV_STOP))
            await wait_for(lambda: any(e["eventType"] == "Ended" for _, e in csms.tx_raw))
            await board.contactors.open()
        await csms.stop()
        ended = _sampled(csms.transaction_stream()[-1])
        assert ended["Energy.Active.Export.Register"]["value"] == 800.0
        assert ended["Power.Active.Export"]["value"] == 8000.0
        assert ended["Power.Active.Import"]["value"] == 0.0

    run(main())
