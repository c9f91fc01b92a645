"""A station process for the restart tests of L01 / N01:
``python -m tests.ocpp.firmware_proc DIR STORE URL MODE``.

The real bridge (tests.ocpp.station.build) on DIR with the certificate store STORE.
MODE ``reboot``: the firmware installer answers InstallRebooting and the reset hook is
the production one (the process exits with status 75 for systemd).  MODE
``dies-installing``: the installer ends the process while it installs (a power loss).
MODE ``serve``: the simulated installer (Installed).  Prints ``up`` once online.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from certs.store import Store
from hal.hooks import ExitForRestart, SimulatedFirmwareInstall, StationHooks
from tests.ocpp.station import build, running


class DiesInstalling:
    async def install(self, image: Path) -> str:
        os._exit(3)  # the power fails while the image is written


async def main(directory: Path, store: Path, url: str, mode: str) -> None:
    station = build(directory, url, store=Store(store))
    firmware = (
        DiesInstalling()
        if mode == "dies-installing"
        else SimulatedFirmwareInstall(
            outcome="InstallRebooting" if mode == "reboot" else "Installed"
        )
    )
    station.bridge.ops.hooks = StationHooks(reset=ExitForRestart(), firmware=firmware)
    async with running(station):
        print("up", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]))
