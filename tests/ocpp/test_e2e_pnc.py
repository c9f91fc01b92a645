"""End to end: the EV simulator charges with Plug & Charge over TLS against the real station
runtime (SDP → TLS → core → simulated board) whose backend is the OCPP bridge talking to the
test CSMS: the CSMS authorizes the contract (hash data, both statuses) and sees the whole
transaction.  With the CSMS answering Blocked, the EV is refused."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from certs.store import Store, load_private_key
from certs.testpki import Issued, TestPki
from hal.backends.simulated import build_board
from secc.aio.ev_client import run_ev_sdp
from secc.cli.ev import load_credentials
from secc.config import CertsSection, EvseSection, HalSection, StationConfig, StationSection
from secc.core.actions import RequestCertificate
from secc.core.config import Timers
from secc.ev.iso2 import EvScript
from secc.ocpp_bridge.bridge import Bridge
from secc.runtime import Station
from secc.sdp import Security
from secc.testing.pki import Credentials, certificate_backend
from tests.ocpp.csms import Behaviour, TestCsms, wait_for
from tests.ocpp.station import build

EVSE_ID = "DE*ABC*E1234567*1"


def _config(pki_dir: Path) -> StationConfig:
    section = EvseSection(
        evse_id=EVSE_ID,
        address="::1",
        tls_port=0,
        tcp_port=-1,
        sdp_port=0,
        energy_modes=("AC_three_phase_core",),
        hal=HalSection(control="none"),
        timers=Timers(sequence_timeout=10.0),
    )
    return StationConfig(
        station=StationSection(trace_dir=None),
        certs=CertsSection(store=pki_dir / "station"),
        evse=(section,),
    )


def _credentials(pki_dir: Path) -> Credentials:
    """The EV's material from the make-test-pki directory, with the CPS chain a lab
    back end needs to answer CertificateInstallationReq."""
    creds = load_credentials(pki_dir, dt.datetime.now(dt.UTC))
    items = dict(creds.pki.items)
    for stem in ("cps", "cps_sub1", "cps_sub2"):
        cert = x509.load_pem_x509_certificate((pki_dir / "v2g" / f"{stem}.pem").read_bytes())
        key = load_private_key((pki_dir / "v2g" / f"{stem}.key").read_bytes(), None)
        items[stem] = Issued(stem, cert, key)
    return dataclasses.replace(creds, pki=TestPki(creds.pki.options, items))


def _cps(creds: Credentials) -> Callable[[str, str, str], str]:
    backend = certificate_backend(creds, os.urandom)

    def answer(schema: str, action: str, exi_request: str) -> str:
        exi = backend(RequestCertificate(action, base64.b64decode(exi_request), schema))
        assert exi is not None
        return base64.b64encode(exi).decode()

    return answer


async def _session(
    pki_dir: Path,
    tmp_path: Path,
    store: Store,
    behaviour: Behaviour,
    *,
    install_certificate: bool = False,
    csms_down: bool = False,
    variables: dict[tuple[str, str], str] | None = None,
) -> tuple[Any, TestCsms, Bridge]:
    csms = TestCsms(behaviour=behaviour)
    await csms.start()
    port = csms.port
    if csms_down:
        await csms.stop()
    bridges: list[Bridge] = []
    tasks: list[asyncio.Task[None]] = []

    def factory(section: EvseSection, emit: Any) -> Bridge:
        bridge = build(tmp_path, csms.url, store=store, emit=emit, variables=variables).bridge
        bridges.append(bridge)
        tasks.append(asyncio.ensure_future(bridge.run()))
        return bridge

    board, _plant = build_board()
    creds = _credentials(pki_dir)
    if install_certificate:
        behaviour.ev_cert_answer = _cps(creds)
    script = EvScript(
        payment="Contract",
        install_certificate=install_certificate,
        credentials=creds,
        think_time=0.0,
        poll_interval=0.05,
        loop_interval=0.05,
        charge_loops=3,
    )
    try:
        async with Station(
            _config(pki_dir), boards={EVSE_ID: board}, backend_factory=factory
        ) as st:
            if not csms_down:
                await asyncio.wait_for(bridges[0].client.online.wait(), 10)
            e = st.evse(EVSE_ID)
            assert e.sdp is not None
            result = await run_ev_sdp(
                script,
                security=Security.TLS,
                address="::1",
                sdp_port=e.sdp.port,
                cafile=pki_dir / "v2g" / "root.pem",
            )
            if csms_down:  # the CSMS comes back after the session
                await wait_for(lambda: bridges[0].transaction is None)
                await csms.start(port)
            await wait_for(lambda: bridges[0].transaction is None and not len(bridges[0].queue))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await csms.stop()
    return result, csms, bridges[0]


def test_ev_charges_with_plug_and_charge_authorized_by_the_csms(
    pki_dir: Path, tmp_path: Path, store: Store
) -> None:
    async def main() -> None:
        result, csms, _bridge = await _session(pki_dir, tmp_path, store, Behaviour())
        names = [s.response for s in result.steps]
        assert result.ended == "done", result.ended
        assert "PaymentDetailsRes" in names and names.count("ChargingStatusRes") == 3
        assert all(not s.code.startswith("FAILED") for s in result.steps)
        auth = csms.authorizations[0]
        assert auth["id_token"]["type"] == "eMAID"
        assert len(auth["iso15118_certificate_hash_data"]) == 3
        stream = csms.transaction_stream()
        assert [e["seqNo"] for e in stream] == list(range(len(stream)))
        kinds = [(e["eventType"], e["triggerReason"]) for e in stream]
        assert kinds[0] == ("Started", "CablePluggedIn")
        assert ("Updated", "Authorized") in kinds
        assert ("Updated", "ChargingStateChanged") in kinds
        assert stream[-1]["eventType"] == "Ended"
        assert stream[-1]["transactionInfo"]["stoppedReason"] == "StoppedByEV"
        updated = next(e for e in stream if e["triggerReason"] == "Authorized")
        assert updated["idToken"]["idToken"] == auth["id_token"]["id_token"]

    asyncio.run(asyncio.wait_for(main(), 60))


def test_csms_blocks_the_contract(pki_dir: Path, tmp_path: Path, store: Store) -> None:
    async def main() -> None:
        result, csms, _bridge = await _session(
            pki_dir, tmp_path, store, Behaviour(authorize_status="Blocked")
        )
        codes = {s.response: s.code for s in result.steps}
        assert codes.get("AuthorizationRes", "").startswith("FAILED"), codes
        stream = csms.transaction_stream()
        assert stream[-1]["eventType"] == "Ended"
        assert stream[-1]["transactionInfo"]["stoppedReason"] == "DeAuthorized"
        assert not any(e["triggerReason"] == "Authorized" for e in stream)

    asyncio.run(asyncio.wait_for(main(), 60))


def test_contract_certificate_installed_through_the_csms_then_plug_and_charge(
    pki_dir: Path, tmp_path: Path, store: Store
) -> None:
    """M01: CertificateInstallationReq → Get15118EVCertificate → a lab CPS behind the test
    CSMS answers → CertificateInstallationRes to the EV, which then charges with PnC."""

    async def main() -> None:
        result, csms, _bridge = await _session(
            pki_dir, tmp_path, store, Behaviour(), install_certificate=True
        )
        names = [s.response for s in result.steps]
        assert result.ended == "done", result.ended
        assert "CertificateInstallationRes" in names
        assert all(not s.code.startswith("FAILED") for s in result.steps)
        schema, action, _exi = csms.ev_cert_requests[0]
        assert (schema, action) == ("urn:iso:15118:2:2013:MsgDef", "Install")
        assert csms.transaction_stream()[-1]["transactionInfo"]["stoppedReason"] == "StoppedByEV"

    asyncio.run(asyncio.wait_for(main(), 60))


def test_slow_csms_gives_the_ev_a_clean_failure_in_time(
    pki_dir: Path, tmp_path: Path, store: Store
) -> None:
    """Get15118EVCertificate answered after 6 s: the bridge gives up inside the EV's 5 s
    budget and the EV gets a FAILED CertificateInstallationRes, not a timeout."""

    async def main() -> None:
        result, csms, _bridge = await _session(
            pki_dir, tmp_path, store, Behaviour(ev_cert_delay=6.0), install_certificate=True
        )
        codes = {s.response: s.code for s in result.steps}
        assert codes["CertificateInstallationRes"].startswith("FAILED"), codes
        assert len(csms.ev_cert_requests) == 1

    asyncio.run(asyncio.wait_for(main(), 60))


@pytest.mark.parametrize("unknown_allowed", [True, False])
def test_csms_down_offline_policy_and_late_delivery(
    pki_dir: Path, tmp_path: Path, store: Store, unknown_allowed: bool
) -> None:
    """The CSMS is down for the whole session: the contract is validated locally (MO root
    in the store); an eMAID in neither list nor cache charges only with
    OfflineTxForUnknownIdEnabled.  When the CSMS is back it gets the whole transaction,
    every event once, in order, flagged offline."""

    async def main() -> None:
        flag = "true" if unknown_allowed else "false"
        result, csms, _bridge = await _session(
            pki_dir,
            tmp_path,
            store,
            Behaviour(),
            csms_down=True,
            variables={("AuthCtrlr", "OfflineTxForUnknownIdEnabled"): flag},
        )
        codes = {s.response: s.code for s in result.steps}
        if unknown_allowed:
            assert result.ended == "done", result.ended
            assert not any(c.startswith("FAILED") for c in codes.values())
        else:
            assert codes["AuthorizationRes"].startswith("FAILED"), codes
        assert csms.authorizations == []  # decided offline
        stream = csms.transaction_stream()
        assert len(csms.tx_raw) == len(stream)
        assert [e["seqNo"] for e in stream] == list(range(len(stream)))
        assert all(e.get("offline") is True for e in stream)
        assert (stream[0]["eventType"], stream[-1]["eventType"]) == ("Started", "Ended")
        authorized = [e for e in stream if e["triggerReason"] == "Authorized"]
        assert len(authorized) == (1 if unknown_allowed else 0)

    asyncio.run(asyncio.wait_for(main(), 60))
