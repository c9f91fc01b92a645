"""``secc run`` builds the OCPP bridge after SDP-ready (issue 17: importing ocpp,
jsonschema and websockets costs more than the start-up budget): until then each EVSE's
backend is a :class:`~secc.runtime.PendingBackend`, and a session that starts in that
window is authorized by the CSMS and reported as a transaction once the bridge is there
and online, nothing lost and in order."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from hal.backends.simulated import build_board
from secc.aio.ev_client import run_ev_sdp
from secc.cli.ev import load_credentials
from secc.config import parse
from secc.core.actions import EndReason, RequestAuthorization
from secc.ocpp_bridge.bridge import Bridge
from secc.runtime import PendingBackend, Station
from secc.sdp import Security
from tests.ocpp.csms import TestCsms
from tests.station.conftest import EVSE_ID, run, script, wait_until
from tests.station.test_ocpp_section import _config


def test_a_session_before_the_bridge_is_authorized_and_reported(
    pki_dir: Path, tmp_path: Path
) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        try:
            config = parse(_config(pki_dir, tmp_path, csms.url), "secc.toml")
            station = Station(config, boards={EVSE_ID: build_board()[0]})
            await station.start(defer_ocpp=True)
            try:
                e = station.evse(EVSE_ID)
                pending = e.backend
                assert isinstance(pending, PendingBackend)
                assert e.sdp is not None
                creds = load_credentials(pki_dir, dt.datetime.now(dt.UTC))
                ev = asyncio.create_task(
                    run_ev_sdp(
                        script("ac", payment="Contract", credentials=creds),
                        security=Security.TLS,
                        address="::1",
                        sdp_port=e.sdp.port,
                        cafile=pki_dir / "v2g" / "root.pem",
                    )
                )
                # the EV asks for authorization while there is no bridge: kept, unanswered
                await wait_until(
                    lambda: any(
                        name == "perform" and isinstance(args[0], RequestAuthorization)
                        for name, args in pending.calls
                    ),
                    timeout=20,
                )
                assert not csms.authorizations and not ev.done()
                station.start_ocpp()  # handed over once the bridge is online
                await wait_until(lambda: isinstance(e.backend, Bridge), timeout=20)
                assert not pending.calls
                result = await asyncio.wait_for(ev, 40)
                assert result.ended == "done", result.ended
                await wait_until(lambda: bool(e.ended))
                assert e.ended[-1].end.reason is EndReason.EV_STOP
                await wait_until(
                    lambda: any(t["eventType"] == "Ended" for t in csms.transaction_stream()),
                    timeout=10,
                )
            finally:
                await station.aclose()
        finally:
            await csms.stop()
        assert csms.authorizations[0]["id_token"]["type"] == "eMAID"
        stream = csms.transaction_stream()
        assert stream[0]["eventType"] == "Started" and stream[-1]["eventType"] == "Ended"

    run(main, timeout=90)
