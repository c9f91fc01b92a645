"""The station hooks come from the boards (``secc run``'s Station with an ``[ocpp]``
section, two EVSEs on simulated boards, the test CSMS on loopback).

* F05: each EVSE's connector is unlocked through its own board's lock: Unlocked where the
  lock releases, UnlockFailed where it is jammed (the cable stays locked).
* A04: the HAL's tamper source (the first board's simulated tamper switch) raises the
  security event TamperDetectionActivated with what was detected; every detection is
  reported, none lost, and the station serves on.
* A board without hooks leaves the production defaults: no tamper source, and the
  station-level hooks of a later board are taken.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ocpp.v201 import call

from hal.backends.simulated import build_board
from hal.hooks import ExitForRestart, HalConnectorLock, SimulatedTamper
from secc.config import parse
from secc.ocpp_bridge.bridge import Bridge
from secc.runtime import Station
from tests.ocpp.csms import TestCsms, wait_for
from tests.station.conftest import EVSE_ID, run
from tests.station.test_ocpp_section import _config

STATION = "CS-SECC-0001"
IDS = [EVSE_ID[:-1] + "1", EVSE_ID[:-1] + "2"]


def test_locks_and_tamper_come_from_the_boards(pki_dir: Path, tmp_path: Path) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        config = parse(_config(pki_dir, tmp_path, csms.url, evses=2), "secc.toml")
        (board1, _plant1), (board2, plant2) = build_board(), build_board()
        plant2.lock_command = True  # EVSE 2's cable is locked and its lock jammed
        plant2.lock_jammed = True
        try:
            async with Station(config, boards={IDS[0]: board1, IDS[1]: board2}) as station:
                bridge = station.evse(IDS[0]).backend
                assert isinstance(bridge, Bridge)
                hooks = bridge.ops.hooks
                assert isinstance(hooks.connector_lock, HalConnectorLock)
                assert board1.hooks is not None and board2.hooks is not None
                assert hooks.tamper is board1.hooks.tamper  # the first board's
                assert hooks.reset is board1.hooks.reset
                cp = await csms.station(STATION)
                await wait_for(lambda: csms.boots == ["Accepted"])
                one = await cp.call(call.UnlockConnector(evse_id=1, connector_id=1))
                two = await cp.call(call.UnlockConnector(evse_id=2, connector_id=1))
                assert (one.status, two.status) == ("Unlocked", "UnlockFailed")
                tamper = board1.hooks.tamper
                assert isinstance(tamper, SimulatedTamper)
                tamper.trigger("enclosure door opened")
                tamper.trigger("tilt sensor")
                await wait_for(
                    lambda: (
                        [(e["type"], e.get("tech_info")) for e in csms.raised_events()]
                        == [
                            ("TamperDetectionActivated", "enclosure door opened"),
                            ("TamperDetectionActivated", "tilt sensor"),
                        ]
                    )
                )
                answer = await cp.call(call.TriggerMessage(requested_message="Heartbeat"))
                assert answer.status == "Accepted"  # the station serves on
        finally:
            await csms.stop()
        log = (tmp_path / "ocpp" / "security.log").read_text()
        assert log.count("TamperDetectionActivated") == 2

    run(main, timeout=60)


def test_a_board_without_hooks_keeps_the_defaults(pki_dir: Path, tmp_path: Path) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        config = parse(_config(pki_dir, tmp_path, csms.url, evses=2), "secc.toml")
        plain = dataclasses.replace(build_board()[0], hooks=None)
        second = build_board()[0]
        try:
            async with Station(config, boards={IDS[0]: plain, IDS[1]: second}) as station:
                bridge = station.evse(IDS[0]).backend
                assert isinstance(bridge, Bridge)
                hooks = bridge.ops.hooks
                assert second.hooks is not None
                # the second board offers hooks: they are the station's
                assert hooks.tamper is second.hooks.tamper
                assert hooks.firmware is second.hooks.firmware
                assert not isinstance(hooks.reset, ExitForRestart)
                cp = await csms.station(STATION)
                tamper = second.hooks.tamper
                assert isinstance(tamper, SimulatedTamper)
                tamper.trigger("lid")
                await wait_for(
                    lambda: (
                        [e["type"] for e in csms.raised_events()] == ["TamperDetectionActivated"]
                    )
                )
                one = await cp.call(call.UnlockConnector(evse_id=1, connector_id=1))
                assert one.status == "Unlocked"  # board 1's lock, though it has no hooks
        finally:
            await csms.stop()

    run(main, timeout=60)


def test_no_board_hooks_at_all(pki_dir: Path, tmp_path: Path) -> None:
    """Boards without hooks and without a lock: the production defaults (exit for a
    reset, UnlockFailed, firmware Rejected, unknown vendor)."""

    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        config = parse(_config(pki_dir, tmp_path, csms.url), "secc.toml")
        bare = dataclasses.replace(build_board()[0], hooks=None, lock=None)
        try:
            async with Station(config, boards={IDS[0]: bare}) as station:
                bridge = station.evse(IDS[0]).backend
                assert isinstance(bridge, Bridge)
                hooks = bridge.ops.hooks
                assert isinstance(hooks.reset, ExitForRestart)
                assert hooks.firmware is None and hooks.tamper is None
                cp = await csms.station(STATION)
                unlock = await cp.call(call.UnlockConnector(evse_id=1, connector_id=1))
                assert unlock.status == "UnlockFailed"
                vendor = await cp.call(call.DataTransfer(vendor_id="org.secc.simulated"))
                assert vendor.status == "UnknownVendorId"
        finally:
            await csms.stop()

    run(main, timeout=60)
