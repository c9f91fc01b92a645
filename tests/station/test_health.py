"""Station.healthy feeds the systemd watchdog: true while every EVSE serves, false when
a server or a HAL loop has died (then `secc run` withholds WATCHDOG=1)."""

from __future__ import annotations

from pathlib import Path

from hal.backends.simulated import build_board
from secc.runtime import Station

from .conftest import EVSE_ID, evse, run, station_config


def test_health_follows_the_servers(pki_dir: Path) -> None:
    board, _plant = build_board()

    async def main() -> None:
        async with Station(station_config(pki_dir, None, evse()), boards={EVSE_ID: board}) as st:
            assert st.healthy
            e = st.evse(EVSE_ID)
            await e.servers[0].aclose()  # as if its accept loop had died
            assert not e.healthy
            assert not st.healthy

    run(main)
