"""The simulated power module around the cable check: the insulation test is over at the
first reading after it started (the IMD has its result and keeps monitoring); the module
stays on at the test voltage, as a real one does, until it is commanded off and its output
discharged (``discharge_output``, which the runtime sends at the end of the test); the next
target charges the output again.  The board is driven as the runtime drives it
(set_target, enable, isolation start for StartIsolationTest)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hal.api import DcOutputDischarge, DcSupply
from hal.backends.simulated import SimDcSupply, build_board
from hal.testing import HARNESSES, Harness, run_check
from hal.types import DcPresent, IsolationStatus


def test_the_output_is_discharged_when_commanded_after_the_insulation_test() -> None:
    async def main() -> None:
        board, plant = build_board()
        dc, imd = board.dc_supply, board.isolation
        assert dc is not None and imd is not None
        assert isinstance(dc, DcSupply) and isinstance(dc, DcOutputDischarge)
        # StartIsolationTest(450 V), as the runtime performs it
        await dc.set_target(450.0, 0.0)
        await dc.enable(True)
        await imd.start()
        reading = await imd.read()
        assert reading.status is IsolationStatus.VALID
        assert not plant.isolation_test  # the test is over
        # the module holds the test voltage until it is commanded off
        present = await dc.present()
        assert present.enabled and present.voltage_v == 450.0
        await dc.enable(False)
        await dc.discharge_output()
        present = await dc.present()
        assert not present.enabled and present.voltage_v == 0.0 and present.current_a == 0.0
        assert plant.output_discharges == 1
        # the IMD keeps monitoring after the test (PowerDelivery asks for a valid reading)
        assert (await imd.read()).status is IsolationStatus.VALID
        # pre-charge: the target brings the output up from the discharged state
        await dc.set_target(400.0, 2.0)
        await dc.enable(True)
        present = await dc.present()
        assert present.enabled and present.voltage_v == 400.0 and present.current_a == 2.0
        assert (await dc.present()).voltage_v == 400.0  # later readings keep the target
        assert (await imd.read()).status is IsolationStatus.VALID
        await imd.stop()
        assert (await imd.read()).status is IsolationStatus.INVALID
        assert (await dc.present()).voltage_v == 400.0  # stopping the IMD leaves the output

    asyncio.run(main())


def test_a_failed_insulation_test_reads_fault_and_discharges_on_command() -> None:
    async def main() -> None:
        board, plant = build_board()
        assert board.dc_supply is not None and board.isolation is not None
        plant.isolation_ohm = 10e3  # 20 ohm/V at 500 V: a fault
        await board.dc_supply.set_target(500.0, 0.0)
        await board.dc_supply.enable(True)
        await board.isolation.start()
        assert (await board.isolation.read()).status is IsolationStatus.FAULT
        await board.dc_supply.discharge_output()  # type: ignore[attr-defined]
        present = await board.dc_supply.present()
        assert not present.enabled and present.voltage_v == 0.0

    asyncio.run(main())


def test_without_an_insulation_test_the_module_holds_its_output() -> None:
    async def main() -> None:
        board, _ = build_board()
        assert board.dc_supply is not None
        await board.dc_supply.set_target(400.0, 10.0)
        await board.dc_supply.enable(True)
        for _ in range(3):
            present = await board.dc_supply.present()
            assert present.enabled and present.voltage_v == 400.0

    asyncio.run(main())


class _HeldCharge(SimDcSupply):
    """A module whose output keeps its voltage after it is switched off (capacitance),
    until ``discharge_output`` (which ``works`` or, broken, does nothing)."""

    def __init__(self, plant: Any, works: bool) -> None:
        super().__init__(plant)
        self.works = works
        self.held = 0.0

    async def enable(self, on: bool) -> None:
        if not on:
            self.held = (await self.present()).voltage_v or self.held
        await super().enable(on)

    async def present(self) -> DcPresent:
        present = await super().present()
        return present if present.enabled else DcPresent(self.held, 0.0, False)

    async def discharge_output(self, timeout: float = 5.0) -> None:
        if self.works:
            await super().discharge_output(timeout)
            self.held = 0.0


@pytest.mark.parametrize("works", [True, False])
def test_the_conformance_suite_checks_the_output_discharge(works: bool) -> None:
    """dc_supply passes on a module whose ``discharge_output`` brings a charged output
    down, and fails on one whose ``discharge_output`` leaves the charge on it."""

    async def factory() -> Harness:
        h = await HARNESSES["simulated"]()
        assert isinstance(h.board.dc_supply, SimDcSupply)
        h.board.dc_supply = _HeldCharge(h.board.dc_supply._plant, works)
        return h

    result = asyncio.run(run_check("dc_supply", factory))
    if works:
        assert result.outcome == "passed", result
    else:
        assert result.outcome == "failed" and "discharge_output" in result.detail, result
