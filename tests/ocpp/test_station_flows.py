"""Issue 13 flows through `secc run`'s Station with an ``[ocpp]`` section (the real wiring,
``OcppBackends``), the EV simulator and the test CSMS: trust-store changes over OCPP take
effect for the next session (M04, M05); the SECC chain in use cannot be deleted remotely
(the station keeps serving and its OCPP link); identity from the TOML in BootNotification
and the V2G certificate request; the simulated plant's meter under `secc run`; an RFID card
at the board's reader authorizes an EIM session (C01)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from ocpp.v201 import call

from certs.store import Store
from secc.aio.ev_client import EvResult, run_ev_sdp
from secc.cli.ev import load_credentials
from secc.config import StationConfig, parse
from secc.ev.iso2 import EvScript
from secc.ocpp_bridge.bridge import Bridge
from secc.runtime import Evse, Station
from secc.sdp import Security
from tests.ocpp.csms import Behaviour, TestCsms, wait_for

STATION = "CS-SECC-0001"
EVSE_ID = "DE*ABC*E1234567*1"


def run(coro: Any, timeout: float = 120) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


def config(
    tmp_path: Path,
    store: Path,
    url: str,
    *,
    ocpp: dict[str, object] | None = None,
    hal: dict[str, object] | None = None,
    tcp_port: int = -1,
    extra: dict[str, object] | None = None,
) -> StationConfig:
    password = tmp_path / "password"
    password.write_text("s3cret-password\n")
    return parse(
        {
            "certs": {"store": str(store)},
            "ocpp": {
                "url": url,
                "station_id": STATION,
                "basic_auth_password_file": str(password),
                "state_dir": str(tmp_path / "ocpp"),
                **(ocpp or {}),
            },
            "evse": [
                {
                    "evse_id": EVSE_ID,
                    "address": "::1",
                    "sdp_port": 0,
                    "tcp_port": tcp_port,
                    "energy_modes": ["AC_three_phase_core"],
                    "hal": {"control": "none", "backend": "simulated", **(hal or {})},
                    **(extra or {}),
                }
            ],
        },
        "secc.toml",
    )


async def pnc_session(pki_dir: Path, evse: Evse, charge_loops: int = 3) -> EvResult:
    assert evse.sdp is not None
    script = EvScript(
        payment="Contract",
        credentials=load_credentials(pki_dir, dt.datetime.now(dt.UTC)),
        think_time=0.0,
        poll_interval=0.05,
        loop_interval=0.05,
        charge_loops=charge_loops,
    )
    return await run_ev_sdp(
        script,
        security=Security.TLS,
        address="::1",
        sdp_port=evse.sdp.port,
        cafile=pki_dir / "v2g" / "root.pem",
    )


async def installed(cp: Any, kind: str) -> list[dict[str, Any]]:
    answer = await cp.call(call.GetInstalledCertificateIds(certificate_type=[kind]))
    return list(answer.certificate_hash_data_chain or [])


def test_trust_store_changes_apply_to_the_next_session(
    pki_dir: Path, tmp_path: Path, store: Store
) -> None:
    """DeleteCertificate of the MO root: the next contract under it is refused;
    InstallCertificate of it again: the next one charges.  No restart in between."""

    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        try:
            async with Station(config(tmp_path, store.root, csms.url)) as station:
                evse = station.evse(EVSE_ID)
                bridge = evse.backend
                assert isinstance(bridge, Bridge)
                await asyncio.wait_for(bridge.client.online.wait(), 10)
                cp = await csms.station(STATION)
                (mo_root,) = await installed(cp, "MORootCertificate")
                deleted = await cp.call(
                    call.DeleteCertificate(certificate_hash_data=mo_root["certificate_hash_data"])
                )
                assert deleted.status == "Accepted"
                refused = await pnc_session(pki_dir, evse)
                codes = dict(refused.codes)
                assert codes["PaymentDetailsRes"].startswith("FAILED"), refused.codes
                assert "PowerDeliveryRes" not in codes, "a contract under a deleted root charged"
                await wait_for(lambda: bridge.transaction is None)

                root_pem = (pki_dir / "mo" / "root.pem").read_text()
                answer = await cp.call(
                    call.InstallCertificate(
                        certificate_type="MORootCertificate", certificate=root_pem
                    )
                )
                assert answer.status == "Accepted"
                charged = await pnc_session(pki_dir, evse)
                assert charged.ended == "done", charged.ended
                assert dict(charged.codes)["PaymentDetailsRes"] == "OK", charged.codes
                assert dict(charged.codes)["PowerDeliveryRes"] == "OK", charged.codes
                await wait_for(lambda: bridge.transaction is None and not len(bridge.queue))
        finally:
            await csms.stop()

    run(main())


def test_the_served_v2g_chain_cannot_be_deleted_remotely(
    pki_dir: Path, tmp_path: Path, store: Store
) -> None:
    """DeleteCertificate of the V2G chain the station serves, or of the V2G root that
    anchors it, is refused (Failed): after a restart the station still serves TLS and
    keeps its OCPP link."""

    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        cfg = config(tmp_path, store.root, csms.url)
        try:
            async with Station(cfg) as station:
                bridge = station.evse(EVSE_ID).backend
                assert isinstance(bridge, Bridge)
                await asyncio.wait_for(bridge.client.online.wait(), 10)
                cp = await csms.station(STATION)
                for kind in ("V2GCertificateChain", "V2GRootCertificate"):
                    for entry in await installed(cp, kind):
                        answer = await cp.call(
                            call.DeleteCertificate(
                                certificate_hash_data=entry["certificate_hash_data"]
                            )
                        )
                        assert answer.status == "Failed", (kind, answer)
                assert await installed(cp, "V2GCertificateChain")
            async with Station(cfg) as again:  # the next start still has something to serve
                evse = again.evse(EVSE_ID)
                bridge = evse.backend
                assert isinstance(bridge, Bridge)
                await asyncio.wait_for(bridge.client.online.wait(), 10)
                assert evse.ports.get("tls")
        finally:
            await csms.stop()

    run(main())


def test_identity_from_the_configuration(pki_dir: Path, tmp_path: Path, store: Store) -> None:
    """BootNotification names the vendor, model, serial number and firmware version of
    the TOML; the V2G certificate request uses its SeccId, organization and country
    while the CSMS has not set the ISO15118Ctrlr variables."""

    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        identity = {
            "vendor_name": "Example Chargers GmbH",
            "model": "Wallbox 22",
            "serial_number": "SN-000042",
            "firmware_version": "4.2.0",
            "secc_id": "DE*EXA*E000042",
            "organization_name": "Example CPO",
            "country_name": "NL",
        }
        try:
            async with Station(config(tmp_path, store.root, csms.url, ocpp=identity)) as st:
                bridge = st.evse(EVSE_ID).backend
                assert isinstance(bridge, Bridge)
                await asyncio.wait_for(bridge.client.online.wait(), 10)
                cp = await csms.station(STATION)
                answer = await cp.call(call.TriggerMessage(requested_message="SignV2GCertificate"))
                assert answer.status == "Accepted"
                await wait_for(lambda: bool(csms.csrs))
        finally:
            await csms.stop()
        boot = next(p for a, p in csms.calls if a == "BootNotification")
        assert boot["chargingStation"] == {
            "vendorName": "Example Chargers GmbH",
            "model": "Wallbox 22",
            "serialNumber": "SN-000042",
            "firmwareVersion": "4.2.0",
        }
        kind, csr_pem = csms.csrs[0]
        assert kind == "V2GCertificate"
        subject = x509.load_pem_x509_csr(csr_pem.encode()).subject
        names = {a.oid: a.value for a in subject}
        assert names[x509.NameOID.COMMON_NAME] == "DE*EXA*E000042"
        assert names[x509.NameOID.ORGANIZATION_NAME] == "Example CPO"
        assert names[x509.NameOID.COUNTRY_NAME] == "NL"

    run(main())


def test_meter_advances_under_secc_run_with_the_simulated_plant(
    pki_dir: Path, tmp_path: Path, store: Store
) -> None:
    """The board `secc run` opens from the registry (``backend = "simulated"``): the
    energy register reported to the CSMS grows while the car charges."""

    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        hal = {"backend": "simulated", "options": {"ev_state": "C"}}
        try:
            async with Station(config(tmp_path, store.root, csms.url, hal=hal)) as station:
                evse = station.evse(EVSE_ID)
                bridge = evse.backend
                assert isinstance(bridge, Bridge)
                await asyncio.wait_for(bridge.client.online.wait(), 10)
                result = await pnc_session(pki_dir, evse, charge_loops=30)
                assert result.ended == "done", result.ended
                await wait_for(lambda: bridge.transaction is None and not len(bridge.queue))
        finally:
            await csms.stop()
        stream = csms.transaction_stream()
        end = stream[-1]
        assert end["eventType"] == "Ended"
        energy = [
            v["value"]
            for v in end["meterValue"][0]["sampledValue"]
            if v["measurand"] == "Energy.Active.Import.Register"
        ]
        assert energy and energy[0] > 0, end["meterValue"]

    run(main())


def test_rfid_card_at_the_reader_authorizes_an_eim_session(
    pki_dir: Path, tmp_path: Path, store: Store
) -> None:
    """The board `secc run` opens has a token reader; a card presented while the EV waits
    in EIM authorization is sent in Authorize with its type (ISO14443), the EV charges and
    the transaction carries the same token."""

    async def main() -> None:
        card = "04A1B2C3D4E5F6"
        csms = TestCsms(behaviour=Behaviour(known_tokens={(card, "ISO14443"): "Accepted"}))
        await csms.start()
        hal = {"backend": "simulated", "options": {"ev_state": "C"}}
        try:
            cfg = config(tmp_path, store.root, csms.url, hal=hal, tcp_port=0)
            async with Station(cfg) as station:
                evse = station.evse(EVSE_ID)
                bridge = evse.backend
                assert isinstance(bridge, Bridge)
                reader = evse.board.token_reader
                assert reader is not None
                await asyncio.wait_for(bridge.client.online.wait(), 10)
                assert evse.sdp is not None
                script = EvScript(
                    payment="ExternalPayment",
                    think_time=0.0,
                    poll_interval=0.05,
                    loop_interval=0.05,
                    charge_loops=3,
                )
                ev = asyncio.ensure_future(
                    run_ev_sdp(
                        script, security=Security.NONE, address="::1", sdp_port=evse.sdp.port
                    )
                )
                await wait_for(lambda: bridge._waiting_eim is not None)  # the EV waits
                assert not csms.authorizations
                reader.present(card)  # type: ignore[attr-defined]
                result = await asyncio.wait_for(ev, 30)
                assert result.ended == "done", result.ended
                assert dict(result.codes)["PowerDeliveryRes"] == "OK", result.codes
                await wait_for(lambda: bridge.transaction is None and not len(bridge.queue))
        finally:
            await csms.stop()
        assert [a["id_token"] for a in csms.authorizations] == [
            {"id_token": card, "type": "ISO14443"}
        ]
        tokens = [e["idToken"] for e in csms.transaction_stream() if "idToken" in e]
        assert tokens == [{"idToken": card, "type": "ISO14443"}]

    run(main())


@pytest.mark.parametrize(("discharge", "bpt"), [(0, False), (30, False), (30, True)])
def test_an_evse_with_discharge_limits_reports_both_directions(
    tmp_path: Path, store: Store, discharge: int, bpt: bool
) -> None:
    """`secc run` builds the bridge of an EVSE that offers BPT and whose [evse.dc] can take
    energy back as bidirectional (export measurands from the Started event on); the
    others not."""

    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        dc = {"max_discharge_current": discharge, "max_discharge_power": 10 * discharge}
        try:
            cfg = config(tmp_path, store.root, csms.url, extra={"dc": dc, "bpt": bpt})
            async with Station(cfg) as station:
                bridge = station.evse(EVSE_ID).backend
                assert isinstance(bridge, Bridge)
                assert bridge.config.bidirectional is (discharge > 0 and bpt)
        finally:
            await csms.stop()

    run(main())
