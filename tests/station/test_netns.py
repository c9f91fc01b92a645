"""A whole station session across a veth pair between two network namespaces: the
station serves on veth0 (fe80::1, SDP joined to ff02::1 on it), the EV multicasts its SDP
request on veth1, connects to fe80::1%veth1 over TLS and charges (DC, ISO 15118-2)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from hal.backends.simulated import build_board
from secc.aio.ev_client import run_ev_sdp
from secc.core.actions import EndReason
from secc.runtime import Station
from secc.sdp import Security
from tests.runtime.netns import call_in_netns, link_pair, netns_unavailable, run_in_netns
from tests.station.conftest import EVSE_ID, evse, script, station_config

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(netns_unavailable() is not None, reason=str(netns_unavailable())),
]


def test_session_over_veth_between_namespaces(pki_dir: Path, tmp_path: Path) -> None:
    ready, finished = threading.Event(), threading.Event()
    station_out: dict[str, Any] = {}
    board, plant = build_board()

    async def station_main() -> None:
        section = evse(interface="veth0", address="fe80::1", sdp_port=15118, tcp_port=-1)
        config = station_config(pki_dir, tmp_path, section)
        async with Station(config, boards={EVSE_ID: board}) as station:
            ready.set()
            while not finished.is_set():
                await asyncio.sleep(0.02)
            e = station.evse(EVSE_ID)
            for _ in range(100):
                if e.ended:
                    break
                await asyncio.sleep(0.02)
            station_out["ended"] = [s.end.reason for s in e.ended]
            station_out["peer"] = [s.peer for s in e.ended]

    with link_pair() as pair:
        thread = threading.Thread(target=run_in_netns, args=(pair.evse, station_main), daemon=True)
        thread.start()
        assert ready.wait(20), "station did not start"
        try:
            result = call_in_netns(
                pair.ev,
                lambda: asyncio.run(
                    asyncio.wait_for(
                        run_ev_sdp(
                            script("dc"),
                            security=Security.TLS,
                            interface=pair.ev_if,
                            cafile=pki_dir / "v2g" / "root.pem",
                        ),
                        30,
                    )
                ),
            )
        finally:
            finished.set()
            thread.join(30)
    assert result.sdp is not None and str(result.sdp.address) == "fe80::1"
    assert result.tls and result.ended == "done"
    assert [s.response for s in result.steps].count("CurrentDemandRes") == 3
    assert station_out["ended"] == [EndReason.EV_STOP]
    assert str(station_out["peer"][0]).startswith("fe80::2")
    assert not plant.contactor_command and not plant.dc_enabled
