"""ISO 15118-20 Plug & Charge at a whole station: the EV simulator (`secc ev --protocol
iso20 --payment pnc`'s engine, written from the standard) over TLS 1.3 with its vehicle
certificate (mutual TLS) against `secc run`'s Station (SDP → TLS → core → simulated
board), whose backend is the OCPP bridge talking to the test CSMS.  The CSMS sees
Authorize with the eMAID and SHA-512 hash data of the -20 contract chain, and the whole
transaction with the eMAID, ending StoppedByEV; with Blocked the EV is refused and the
contactors never close."""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certs.store import Store
from hal.backends.simulated import build_board
from secc import codec
from secc.aio.ev_client import run_ev_sdp
from secc.config import CertsSection, EvseSection, HalSection, StationConfig, StationSection
from secc.core.config import DcLimits, Timers
from secc.ev.install20 import pcid_of, seal_contract_key
from secc.ev.iso20 import Ev20Script
from secc.ev.pnc20 import load_credentials20
from secc.ocpp_bridge.bridge import Bridge, BridgeConfig
from secc.runtime import Station
from secc.sdp import Security
from tests.ocpp.csms import Behaviour, TestCsms, wait_for
from tests.ocpp.station import build

EVSE_ID = "DE*ABC*E1234567*1"


@pytest.fixture(scope="module")
def pki20(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ocpp-pki20-station") / "pki"
    make = [sys.executable, "-m", "secc.cli.main", "certs", "make-test-pki", str(directory)]
    subprocess.run(make, check=True, capture_output=True)
    return directory


def _config(pki_dir: Path, store: Path, *, bpt: bool = False) -> StationConfig:
    section = EvseSection(
        dc=DcLimits(
            max_voltage=500,
            max_current=125,
            max_power=50_000,
            max_discharge_current=30 if bpt else 0,
            max_discharge_power=12_000 if bpt else 0,
        ),
        bpt=bpt,
        metering_confirmation=bpt,
        evse_id=EVSE_ID,
        address="::1",
        tls_port=0,
        tcp_port=-1,
        sdp_port=0,
        energy_modes=("DC_extended",),
        protocols=("iso20-dc",),
        hal=HalSection(control="none"),
        timers=Timers(sequence_timeout=10.0),
    )
    return StationConfig(
        station=StationSection(trace_dir=None),
        certs=CertsSection(store=store),
        evse=(section,),
    )


def _lab_cps(pki_dir: Path) -> Any:
    """A lab CPS behind the test CSMS (ISO 15118-20 7.9.2.5, V2G20-2491..2502): seals the
    test contract's key for the EV's OEM provisioning key; (schema, action, exiRequest) ->
    exiResponse as Get15118EVCertificate carries them."""
    contract_key = serialization.load_pem_private_key(
        (pki_dir / "mo20" / "contract.key").read_bytes(), None
    )
    assert isinstance(contract_key, ec.EllipticCurvePrivateKey)

    def der(name: str) -> list[bytes]:
        certs = x509.load_pem_x509_certificates((pki_dir / name).read_bytes())
        return [c.public_bytes(serialization.Encoding.DER) for c in certs]

    chain = der("mo20/contract_chain.pem")
    cps = der("v2g20/cps_chain.pem")
    C = codec.schema_module("iso20-common")

    def answer(schema: str, action: str, exi_request: str) -> str:
        assert (schema, action) == ("urn:iso:std:iso:15118:-20:CommonMessages", "Install")
        req = codec.decode(base64.b64decode(exi_request), "iso20-common")
        oem = bytes(req.oem_provisioning_certificate_chain.certificate)
        public = x509.load_der_x509_certificate(oem).public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        leaf = x509.load_der_x509_certificate(chain[0])
        dh, sealed = seal_contract_key(contract_key, public, pcid_of(oem), leaf)
        res = C.CertificateInstallationRes(
            header=C.MessageHeader(session_id=bytes(req.header.session_id), time_stamp=1),
            response_code=C.ResponseCode.OK,
            evse_processing=C.Processing.Finished,
            cps_certificate_chain=C.CertificateChain(
                certificate=cps[0], sub_certificates=C.SubCertificates(certificate=tuple(cps[1:]))
            ),
            signed_installation_data=C.SignedInstallationData(
                id="id1",
                contract_certificate_chain=C.ContractCertificateChain(
                    certificate=chain[0],
                    sub_certificates=C.SubCertificates(certificate=tuple(chain[1:])),
                ),
                ecdh_curve=C.EcdhCurve.SECP521,
                dh_public_key=dh,
                secp521_encrypted_private_key=sealed,
            ),
            remaining_contract_certificate_chains=0,
        )
        return base64.b64encode(codec.encode(res)).decode()

    return answer


async def _session(
    pki_dir: Path,
    tmp_path: Path,
    behaviour: Behaviour,
    *,
    install: bool = False,
    bpt: bool = False,
) -> tuple[Any, TestCsms, Any]:
    shutil.copytree(pki_dir / "station", tmp_path / "store", symlinks=True)
    store = Store(tmp_path / "store")
    store.initialize()
    csms = TestCsms(behaviour=behaviour)
    await csms.start()
    bridges: list[Bridge] = []
    tasks: list[asyncio.Task[None]] = []

    def factory(section: EvseSection, emit: Any) -> Bridge:
        # as OcppBackends builds it: an EVSE with discharge limits is bidirectional
        config = BridgeConfig(
            link_retry=0.05, meter_interval=0.2 if bpt else 3600, bidirectional=bpt
        )
        bridge = build(tmp_path, csms.url, store=store, emit=emit, config=config).bridge
        bridges.append(bridge)
        tasks.append(asyncio.ensure_future(bridge.run()))
        return bridge

    board, plant = build_board()
    plant.clock = time.monotonic  # the meter integrates at every read, as under `secc run`
    script = Ev20Script(
        mode="dc",
        payment="pnc",
        install_certificate=install,
        bpt=bpt,
        discharge_loops=8 if bpt else 0,
        think_time=0.0,
        poll_interval=0.05,
        loop_interval=0.05,
        charge_loops=8 if bpt else 3,
    )
    try:
        async with Station(
            _config(pki_dir, tmp_path / "store", bpt=bpt),
            boards={EVSE_ID: board},
            backend_factory=factory,
        ) as st:
            await asyncio.wait_for(bridges[0].client.online.wait(), 10)
            e = st.evse(EVSE_ID)
            assert e.sdp is not None
            result = await run_ev_sdp(
                script,
                security=Security.TLS,
                address="::1",
                sdp_port=e.sdp.port,
                cafile=pki_dir / "v2g20" / "root.pem",
                client_cert=(
                    pki_dir / "oem20" / "vehicle_chain.pem",
                    pki_dir / "oem20" / "vehicle.key",
                ),
                credentials=load_credentials20(pki_dir, with_contract=not install),
            )
            await wait_for(lambda: bridges[0].transaction is None and not len(bridges[0].queue))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await csms.stop()
    return result, csms, plant


def test_iso20_pnc_at_the_station_authorized_by_the_csms(pki20: Path, tmp_path: Path) -> None:
    async def main() -> None:
        result, csms, plant = await _session(pki20, tmp_path, Behaviour())
        names = [s.response for s in result.steps]
        assert result.ended == "done", (result.ended, names)
        assert all(not s.code.startswith(("FAILED", "WARNING")) for s in result.steps), [
            (s.response, s.code) for s in result.steps
        ]
        emaid = (pki20 / "mo20" / "emaid.txt").read_text().strip()
        (auth,) = [p for name, p in csms.calls if name == "Authorize"]
        assert auth["idToken"] == {"idToken": emaid, "type": "eMAID"}
        hash_data = auth["iso15118CertificateHashData"]
        assert len(hash_data) == 3 and {h["hashAlgorithm"] for h in hash_data} == {"SHA512"}
        stream = csms.transaction_stream()
        assert [e["seqNo"] for e in stream] == list(range(len(stream)))
        kinds = [(e["eventType"], e["triggerReason"]) for e in stream]
        assert kinds[0] == ("Started", "CablePluggedIn")
        assert ("Updated", "Authorized") in kinds
        assert ("Updated", "ChargingStateChanged") in kinds
        assert stream[-1]["eventType"] == "Ended"
        assert stream[-1]["transactionInfo"]["stoppedReason"] == "StoppedByEV"
        authorized = next(e for e in stream if e["triggerReason"] == "Authorized")
        assert authorized["idToken"] == {"idToken": emaid, "type": "eMAID"}
        assert names.count("DC_ChargeLoopRes") == 3 and "AuthorizationRes" in names
        assert not plant.contactor_command  # opened at the end

    asyncio.run(asyncio.wait_for(main(), 90))


def test_iso20_pnc_blocked_by_the_csms(pki20: Path, tmp_path: Path) -> None:
    async def main() -> None:
        result, csms, plant = await _session(pki20, tmp_path, Behaviour(authorize_status="Blocked"))
        codes = {s.response: s.code for s in result.steps}
        assert codes.get("AuthorizationRes", "").startswith("WARNING"), codes
        assert "PowerDeliveryRes" not in codes
        assert not plant.contactor_command
        stream = csms.transaction_stream()
        assert stream[-1]["eventType"] == "Ended"
        assert stream[-1]["transactionInfo"]["stoppedReason"] == "DeAuthorized"
        assert not any(e["triggerReason"] == "Authorized" for e in stream)

    asyncio.run(asyncio.wait_for(main(), 90))


def test_iso20_contract_installed_through_the_csms_then_pnc(pki20: Path, tmp_path: Path) -> None:
    """M01 with -20: an EV without a contract sends CertificateInstallationReq; the station
    asks Get15118EVCertificate with the -20 schema version; a lab CPS behind the test CSMS
    seals the contract for the EV; the EV opens it and charges with Plug & Charge."""

    async def main() -> None:
        behaviour = Behaviour(ev_cert_answer=_lab_cps(pki20))
        result, csms, _plant = await _session(pki20, tmp_path, behaviour, install=True)
        names = [s.response for s in result.steps]
        assert result.ended == "done", (result.ended, names)
        codes = [(s.response, s.code) for s in result.steps]
        assert ("CertificateInstallationRes", "OK") in codes
        assert all(not c.startswith(("FAILED", "WARNING")) for _, c in codes), codes
        ((schema, action, _exi),) = csms.ev_cert_requests
        assert (schema, action) == ("urn:iso:std:iso:15118:-20:CommonMessages", "Install")
        emaid = (pki20 / "mo20" / "emaid.txt").read_text().strip()
        (auth,) = [p for name, p in csms.calls if name == "Authorize"]
        assert auth["idToken"] == {"idToken": emaid, "type": "eMAID"}
        assert csms.transaction_stream()[-1]["transactionInfo"]["stoppedReason"] == "StoppedByEV"

    asyncio.run(asyncio.wait_for(main(), 90))


def _sampled(event: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["measurand"]: v for mv in event.get("meterValue", []) for v in mv["sampledValue"]}


def test_iso20_dc_bpt_pnc_meter_values_both_ways_and_signed_receipt(
    pki20: Path, tmp_path: Path
) -> None:
    """DC_BPT with Plug & Charge and metering confirmation: the EV charges, then
    discharges; the simulated plant sinks the energy; the CSMS sees meter values in both
    directions and the EV's signed receipt as a signedMeterValue."""

    async def main() -> None:
        result, csms, plant = await _session(pki20, tmp_path, Behaviour(), bpt=True)
        codes = [(s.response, s.code) for s in result.steps]
        assert result.ended == "done", (result.ended, codes)
        assert all(not c.startswith(("FAILED", "WARNING")) for _, c in codes), codes
        assert plant.energy_wh > 0 and plant.energy_export_wh > 0
        stream = csms.transaction_stream()
        assert [e["seqNo"] for e in stream] == list(range(len(stream)))
        samples = [_sampled(e) for e in stream]
        # from the Started event on, every meter value has both registers
        assert all("Energy.Active.Export.Register" in s for s in samples if s)
        assert samples[0]["Energy.Active.Export.Register"]["context"] == "Transaction.Begin"
        assert any(s.get("Power.Active.Import", {}).get("value", 0) > 0 for s in samples)
        assert any(s.get("Power.Active.Export", {}).get("value", 0) > 0 for s in samples)
        ended = samples[-1]
        assert ended["Energy.Active.Export.Register"]["value"] > 0
        assert ended["Energy.Active.Import.Register"]["value"] > 0
        receipts = [e for e in stream if e["triggerReason"] == "SignedDataReceived"]
        assert receipts, [e["triggerReason"] for e in stream]
        signed = _sampled(receipts[0])["Energy.Active.Import.Register"]["signedMeterValue"]
        assert signed["signingMethod"] == "ECDSAP521SHA512"
        assert stream[-1]["transactionInfo"]["stoppedReason"] == "StoppedByEV"
        print(
            f"DC_BPT PnC: {plant.energy_wh:.1f} Wh to the EV, "
            f"{plant.energy_export_wh:.1f} Wh back, {len(stream)} TransactionEvents"
        )

    asyncio.run(asyncio.wait_for(main(), 90))
