"""Bridge flows for the car: Plug & Charge authorization online and offline (local
validation, local list, cache), EIM tokens and Get15118EVCertificate within the EV's budget."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable
from pathlib import Path

import pytest
from ocpp.v201 import call

from certs.store import Store
from secc.core.actions import RequestAuthorization, RequestCertificate
from secc.core.events import AuthorizationResult, CertificateResult
from secc.ocpp_bridge.bridge import BridgeConfig
from tests.ocpp.csms import Behaviour, TestCsms
from tests.ocpp.station import STATION, build, contract_request, running

ISO = "ISO15118Ctrlr"


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


def test_pnc_online_with_hash_data_and_both_statuses(
    tmp_path: Path, pki_dir: Path, store: Store
) -> None:
    async def main() -> None:
        b = Behaviour()
        csms = TestCsms(behaviour=b)
        await csms.start()
        station = build(tmp_path, csms.url, store=store)
        request = contract_request(pki_dir)
        async with running(station):
            station.bridge.perform(request)
            result: AuthorizationResult = await station.next_event(AuthorizationResult)
            assert result.accepted and result.certificate_status == "Accepted"
            sent = csms.authorizations[-1]
            assert sent["id_token"] == {"id_token": request.id_token, "type": "eMAID"}
            assert len(sent["iso15118_certificate_hash_data"]) == 3  # leaf, sub-CA 2, sub-CA 1
            b.certificate_status = "CertificateRevoked"
            station.bridge.perform(request)
            result = await station.next_event(AuthorizationResult)
            assert not result.accepted
            assert result.certificate_status == "CertificateRevoked"
            b.certificate_status = None  # a CSMS that ignores the certificate: refused
            station.bridge.perform(request)
            assert not (await station.next_event(AuthorizationResult)).accepted
            b.authorize_error = True  # a CallError is a refusal, not an offline decision
            station.bridge.perform(request)
            result = await station.next_event(AuthorizationResult)
            assert not result.accepted and "CallError" in result.reason
            b.authorize_error, b.authorize_malformed = False, True
            station.bridge.perform(request)
            result = await station.next_event(AuthorizationResult)
            assert not result.accepted and "CSMS error" in result.reason
        await csms.stop()

    run(main())


def test_pnc_with_pem_chain_when_central_validation_allowed(
    tmp_path: Path, pki_dir: Path, store: Store
) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        station = build(
            tmp_path,
            csms.url,
            store=store,
            config=BridgeConfig(authorize_with="pem"),
            variables={(ISO, "CentralContractValidationAllowed"): "true"},
        )
        async with running(station):
            station.bridge.perform(contract_request(pki_dir))
            assert (await station.next_event(AuthorizationResult)).accepted
            sent = csms.authorizations[-1]
            assert sent["certificate"].count("BEGIN CERTIFICATE") == 3
            assert "iso15118_certificate_hash_data" not in sent
            # PnC switched off through the device model: refused without asking
            cp = await csms.station(STATION)
            answer = await cp.call(
                call.SetVariables(
                    set_variable_data=[
                        {
                            "component": {"name": ISO},
                            "variable": {"name": "PnCEnabled"},
                            "attribute_value": "false",
                        }
                    ]
                ),
                suppress=False,
            )
            assert answer.set_variable_result[0]["attribute_status"] == "Accepted"
            station.bridge.perform(contract_request(pki_dir))
            result = await station.next_event(AuthorizationResult)
            assert not result.accepted and "PnCEnabled" in result.reason
            assert len(csms.authorizations) == 1
        await csms.stop()

    run(main())


def test_offline_policy(tmp_path: Path, pki_dir: Path, store: Store) -> None:
    async def main() -> None:
        b = Behaviour()
        csms = TestCsms(behaviour=b)
        await csms.start()
        station = build(tmp_path, csms.url, store=store, config=BridgeConfig(authorize_timeout=0.5))
        good = contract_request(pki_dir)
        async with running(station):
            cp = await csms.station(STATION)
            # the site registers the contract in the local list while online
            await cp.call(
                call.SendLocalList(
                    version_number=3,
                    update_type="Full",
                    local_authorization_list=[
                        {
                            "id_token": {"id_token": good.id_token, "type": "eMAID"},
                            "id_token_info": {"status": "Accepted"},
                        },
                        {
                            "id_token": {"id_token": "BLOCKEDCARD", "type": "ISO14443"},
                            "id_token_info": {"status": "Blocked"},
                        },
                    ],
                ),
                suppress=False,
            )
            version = await cp.call(call.GetLocalListVersion(), suppress=False)
            assert version.version_number == 3
            # the CSMS answers too slowly: the offline policy decides within the deadline
            b.authorize_delay = 2.0
            station.bridge.perform(good)
            result = await station.next_event(AuthorizationResult)
            assert result.accepted and "local list" in result.reason
            b.authorize_delay = 0
            await csms.stop()
            await asyncio.sleep(0.1)
            assert not station.client.online.is_set()
            # a chain for another eMAID fails the local validation
            station.bridge.perform(contract_request(pki_dir, emaid="DE8AAX00000001"))
            result = await station.next_event(AuthorizationResult)
            assert not result.accepted and result.certificate_status == "CertChainError"
            # a chain whose MO root is missing: NoCertificateAvailable
            for root in (store.root / "trust" / "mo").glob("*.pem"):
                root.rename(root.with_suffix(".off"))
            station.bridge.perform(good)
            result = await station.next_event(AuthorizationResult)
            assert result.certificate_status == "NoCertificateAvailable"
            for root in (store.root / "trust" / "mo").glob("*.off"):
                root.rename(root.with_suffix(".pem"))
            # EIM: a blocked card in the local list, an unknown card
            station.bridge.present_token("BLOCKEDCARD")
            station.bridge.perform(RequestAuthorization("ExternalPayment", ""))
            assert not (await station.next_event(AuthorizationResult)).accepted
            station.bridge.present_token("UNKNOWNCARD")
            station.bridge.perform(RequestAuthorization("ExternalPayment", ""))
            result = await station.next_event(AuthorizationResult)
            assert not result.accepted and "not in list or cache" in result.reason
            station.bridge.dm.set_local("AuthCtrlr", "OfflineTxForUnknownIdEnabled", "true")
            station.bridge.perform(RequestAuthorization("ExternalPayment", ""))
            assert (await station.next_event(AuthorizationResult)).accepted
            station.bridge.dm.set_local(ISO, "ContractValidationOffline", "false")
            station.bridge.perform(good)
            result = await station.next_event(AuthorizationResult)
            assert not result.accepted and "ContractValidationOffline" in result.reason

    run(main())


def test_authorization_cache_serves_offline(tmp_path: Path, store: Store) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        station = build(tmp_path, csms.url, store=store)
        async with running(station):
            station.bridge.present_token("04A1B2C3D4")
            station.bridge.perform(RequestAuthorization("ExternalPayment", ""))
            assert (await station.next_event(AuthorizationResult)).accepted
            assert csms.authorizations[-1]["id_token"]["type"] == "ISO14443"
            await csms.stop()
            await asyncio.sleep(0.1)
            station.bridge.perform(RequestAuthorization("ExternalPayment", ""))
            result = await station.next_event(AuthorizationResult)
            assert result.accepted and "cache" in result.reason

    run(main())


def test_eim_waits_for_token_and_remote_start(tmp_path: Path) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        station = build(tmp_path, csms.url)
        async with running(station):
            station.bridge.perform(RequestAuthorization("ExternalPayment", ""))
            await asyncio.sleep(0.2)
            assert not station.events  # no token yet: the EV keeps polling (Ongoing)
            cp = await csms.station(STATION)
            answer = await cp.call(
                call.RequestStartTransaction(
                    id_token={"id_token": "APPUSER1", "type": "Central"}, remote_start_id=77
                ),
                suppress=False,
            )
            assert answer.status == "Accepted"
            result = await station.next_event(AuthorizationResult)
            assert result.accepted and result.id_token == "APPUSER1"
            assert csms.authorizations == []  # AuthorizeRemoteStart is false
        await csms.stop()

    run(main())


def test_get_15118_ev_certificate_within_the_budget(tmp_path: Path) -> None:
    async def main() -> None:
        b = Behaviour()
        csms = TestCsms(behaviour=b)
        await csms.start()
        station = build(tmp_path, csms.url, config=BridgeConfig(ev_certificate_budget=1.0))
        exi = b"\x80\x98\x02\x10certificate-installation-req"
        async with running(station):
            loop = asyncio.get_running_loop()
            station.bridge.perform(RequestCertificate("Install", exi))
            result: CertificateResult = await station.next_event(CertificateResult)
            assert result.exi_response == base64.b64decode(b.ev_cert_exi)
            schema, action, sent = csms.ev_cert_requests[-1]
            assert (schema, action, base64.b64decode(sent)) == (
                "urn:iso:15118:2:2013:MsgDef",
                "Install",
                exi,
            )
            b.ev_cert_delay = 3.0  # past the EV's budget: a clean failure in time
            start = loop.time()
            station.bridge.perform(RequestCertificate("Update", exi))
            result = await station.next_event(CertificateResult)
            assert result.exi_response is None and "within 1 s" in result.reason
            assert loop.time() - start < 2.0  # safety bound: the budget is 1 s
            b.ev_cert_delay = 0
            await asyncio.sleep(2.2)  # let the late answer arrive and be discarded
            b.ev_cert_error = True
            station.bridge.perform(RequestCertificate("Update", exi))
            result = await station.next_event(CertificateResult)
            assert result.exi_response is None and "CallError" in result.reason
            b.ev_cert_error = False
            b.ev_cert_exi = "%%% not base64"
            station.bridge.perform(RequestCertificate("Update", exi))
            result = await station.next_event(CertificateResult)
            assert result.exi_response is None and "base64" in result.reason
            b.ev_cert_status, b.ev_cert_exi = "Failed", ""
            station.bridge.perform(RequestCertificate("Update", exi))
            result = await station.next_event(CertificateResult)
            assert result.exi_response is None and "Failed" in result.reason
            station.bridge.dm.set_local(ISO, "ContractCertificateInstallationEnabled", "false")
            station.bridge.perform(RequestCertificate("Install", exi))
            result = await station.next_event(CertificateResult)
            assert "ContractCertificateInstallationEnabled" in result.reason
        await csms.stop()

    run(main())


@pytest.mark.parametrize("online", [False])
def test_ev_certificate_offline_fails_at_once(tmp_path: Path, online: bool) -> None:
    async def main() -> None:
        station = build(tmp_path, "ws://127.0.0.1:9/ocpp")
        async with running(station, online=online):
            station.bridge.perform(RequestCertificate("Install", b"\x80exi"))
            result = await station.next_event(CertificateResult, timeout=2)
            assert result.exi_response is None and "not connected" in result.reason

    run(main())
