"""The ``[ocpp]`` section wires the OCPP 2.0.1 bridge in as the EVSE's backend: a Plug &
Charge session is authorized by a CSMS on loopback and reported as a transaction."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from hal.backends.simulated import build_board
from secc.aio.ev_client import run_ev_sdp
from secc.cli.ev import load_credentials
from secc.config import parse
from secc.core.actions import EndReason
from secc.errors import ConfigError
from secc.ocpp_bridge.bridge import Bridge
from secc.runtime import Station
from secc.sdp import Security
from tests.ocpp.csms import TestCsms
from tests.station.conftest import EVSE_ID, run, script, wait_until


def _config(pki_dir: Path, tmp_path: Path, url: str, evses: int = 1) -> dict[str, object]:
    password = tmp_path / "password"
    password.write_text("s3cret-password\n")
    return {
        "certs": {"store": str(pki_dir / "station")},
        "ocpp": {
            "url": url,
            "station_id": "CS-SECC-0001",
            "basic_auth_password_file": str(password),
            "state_dir": str(tmp_path / "ocpp"),
        },
        "evse": [
            {
                "evse_id": EVSE_ID[:-1] + str(i + 1),
                "address": "::1",
                "sdp_port": 0,
                "hal": {"backend": "simulated", "control": "none"},
            }
            for i in range(evses)
        ],
    }


def test_pnc_session_authorized_and_reported_by_the_csms(pki_dir: Path, tmp_path: Path) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        try:
            config = parse(_config(pki_dir, tmp_path, csms.url), "secc.toml")
            async with Station(config, boards={EVSE_ID: build_board()[0]}) as station:
                e = station.evse(EVSE_ID)
                bridge = e.backend
                assert isinstance(bridge, Bridge)  # the [ocpp] section made it
                await asyncio.wait_for(bridge.client.online.wait(), 10)
                assert e.sdp is not None
                creds = load_credentials(pki_dir, dt.datetime.now(dt.UTC))
                result = await run_ev_sdp(
                    script("ac", payment="Contract", credentials=creds),
                    security=Security.TLS,
                    address="::1",
                    sdp_port=e.sdp.port,
                    cafile=pki_dir / "v2g" / "root.pem",
                )
                assert result.ended == "done", result.ended
                await wait_until(lambda: bool(e.ended))
                assert e.ended[-1].end.reason is EndReason.EV_STOP
                await wait_until(
                    lambda: any(t["eventType"] == "Ended" for t in csms.transaction_stream()),
                    timeout=10,
                )
        finally:
            await csms.stop()
        assert csms.boots and csms.rejected_auth == 0
        assert csms.authorizations[0]["id_token"]["type"] == "eMAID"
        stream = csms.transaction_stream()
        assert stream[0]["eventType"] == "Started" and stream[-1]["eventType"] == "Ended"

    run(main, timeout=60)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"url": "http://csms"}, "must start with ws:// or wss://"),
        ({"security_profile": 4}, "security_profile must be 1, 2 or 3"),
    ],
)
def test_ocpp_section_values(
    pki_dir: Path, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    data = _config(pki_dir, tmp_path, "ws://127.0.0.1:9/ocpp")
    data["ocpp"] = {**data["ocpp"], **change}  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match=message):
        parse(data, "secc.toml")
