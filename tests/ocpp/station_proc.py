"""A station process for the kill -9 tests: ``python -m tests.ocpp.station_proc DIR URL MODE``.

MODE ``charge``: start a session, authorize an RFID card, charge with meter samples every
0.1 s, forever (prints ``charging``).  MODE ``idle``: only run the bridge (a transaction
left open by a killed predecessor is ended with PowerLoss); prints ``up`` once that Ended
event is in the outbox and ``drained`` when the outbox is empty.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from secc.core.actions import ChargingStateChanged, RequestAuthorization, SessionStarted
from secc.core.events import EvseStatus
from secc.ocpp_bridge.bridge import BridgeConfig
from tests.ocpp.station import build


async def main(directory: Path, url: str, mode: str) -> None:
    config = BridgeConfig(link_retry=0.05, meter_interval=0.1)
    station = build(directory, url, config=config)
    bridge = station.bridge
    task = asyncio.ensure_future(bridge.run())
    if mode == "charge":
        bridge.perform(SessionStarted(b"\x01" * 8, b"\x02" * 6, "urn:iso:15118:2:2013:MsgDef"))
        bridge.present_token("04AABBCCDD")
        bridge.perform(RequestAuthorization("ExternalPayment", ""))
        bridge.perform(ChargingStateChanged(True, soc=30))
        print("charging", flush=True)
        energy = 0.0
        while True:
            energy += 10.0
            bridge.evse_status(EvseStatus(400.0, 20.0, "Valid", True, energy, 8000.0))
            await asyncio.sleep(0.05)
    else:
        while bridge.transaction is not None or not len(bridge.queue):
            await asyncio.sleep(0.02)
        print("up", flush=True)
        while len(bridge.queue):
            await asyncio.sleep(0.02)
        print("drained", flush=True)
        await task


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3]))
