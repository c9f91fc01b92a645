"""A station without a trace consumer builds no trace record (issue 17): the hex dumps and
summaries of every message are skipped, and the session runs the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hal.backends.simulated import build_board
from secc.aio import driver
from secc.aio.ev_client import run_ev_sdp
from secc.runtime import Station
from secc.sdp import Security
from tests.station.conftest import EVSE_ID, evse, run, script, station_config


@pytest.mark.parametrize("traced", [False, True])
def test_no_trace_record_is_built_without_a_consumer(
    pki_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, traced: bool
) -> None:
    summaries: list[Any] = []
    real = driver.summarize

    def counting(body: Any) -> Any:
        summaries.append(type(body).__name__)
        return real(body)

    monkeypatch.setattr(driver, "summarize", counting)
    board, _plant = build_board()
    trace_dir = tmp_path / "traces" if traced else None

    async def main() -> None:
        config = station_config(pki_dir, trace_dir, evse())
        async with Station(config, boards={EVSE_ID: board}) as station:
            e = station.evse(EVSE_ID)
            assert e.sdp is not None
            result = await run_ev_sdp(
                script("dc"),
                security=Security.NONE,
                address="::1",
                sdp_port=e.sdp.port,
                cafile=pki_dir / "v2g" / "root.pem",
            )
            names = [s.response for s in result.steps]
            assert result.ended == "done", result.ended
            assert names.count("CurrentDemandRes") == 3

    run(main)
    if traced:
        # a request and a response record per message, each with its summary
        assert summaries.count("CurrentDemandReq") == 3
        assert summaries.count("CurrentDemandRes") == 3
        assert list((tmp_path / "traces").rglob("*.jsonl"))
    else:
        assert summaries == []
