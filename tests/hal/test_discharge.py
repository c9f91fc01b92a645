"""The HAL's discharge interface (bidirectional power) on the simulated plant: negative DC
target currents and a negative AC load sink energy into the export register; limits hold
both ways; a unidirectional module refuses a discharge; charging is as before."""

from __future__ import annotations

import asyncio

import pytest

from hal.backends.simulated import Plant, SimDcSupply, build_board
from hal.types import ContactorState, CpState, DcLimits, OperationFailedError


def test_dc_charge_then_discharge_fills_both_registers() -> None:
    async def main() -> None:
        board, plant = build_board()
        assert board.dc_supply is not None and board.meter is not None
        plant.ev_state = CpState.C
        await board.contactors.close()
        lim = await board.dc_supply.limits()
        assert lim.bidirectional
        await board.dc_supply.set_target(400.0, 50.0)
        await board.dc_supply.enable(True)
        plant.advance(360.0)  # 20 kW for 0.1 h
        m = await board.meter.read()
        assert m.energy_wh == pytest.approx(2000.0)
        assert m.energy_export_wh == 0.0 and m.power_w == pytest.approx(20000.0)
        await board.dc_supply.set_target(400.0, -25.0)
        plant.advance(360.0)  # -10 kW for 0.1 h
        m = await board.meter.read()
        assert m.energy_wh == pytest.approx(2000.0)  # the import register does not shrink
        assert m.energy_export_wh == pytest.approx(1000.0)
        assert m.power_w == pytest.approx(-10000.0) and m.current_a == (-25.0,)
        present = await board.dc_supply.present()
        assert present.enabled and present.current_a == -25.0

    asyncio.run(main())


def test_discharge_limits() -> None:
    async def main() -> None:
        plant = Plant()
        dc = SimDcSupply(plant)
        lim = await dc.limits()
        with pytest.raises(OperationFailedError):
            await dc.set_target(400.0, -(lim.max_discharge_current_a + 0.5))
        # the power limit of the discharge direction cuts the current: 50 kW at 800 V
        await dc.set_target(800.0, -100.0)
        assert plant.dc_target[1] == pytest.approx(-lim.max_discharge_power_w / 800.0)
        # charging keeps its own (larger) power limit
        await dc.set_target(800.0, 150.0)
        assert plant.dc_target == (800.0, 150.0)

    asyncio.run(main())


def test_unidirectional_module_refuses_discharge() -> None:
    async def main() -> None:
        plant = Plant()
        uni = DcLimits(
            max_voltage_v=500.0,
            min_voltage_v=150.0,
            max_current_a=100.0,
            min_current_a=0.0,
            max_power_w=50e3,
        )
        dc = SimDcSupply(plant, limits=uni)
        assert not (await dc.limits()).bidirectional
        with pytest.raises(OperationFailedError):
            await dc.set_target(400.0, -1.0)
        assert plant.dc_target == (0.0, 0.0)  # nothing changed

    asyncio.run(main())


def test_ac_discharge_counts_export() -> None:
    async def main() -> None:
        board, plant = build_board()
        assert board.meter is not None
        plant.ev_state = CpState.C
        await board.contactors.close()
        assert await board.contactors.feedback() is ContactorState.CLOSED
        plant.advance(3600.0)  # 7.4 kW charging for an hour
        plant.load_w = -3700.0  # the EV feeds back (AC_BPT)
        plant.advance(1800.0)
        m = await board.meter.read()
        assert m.energy_wh == pytest.approx(7400.0)
        assert m.energy_export_wh == pytest.approx(1850.0)
        assert m.power_w == pytest.approx(-3700.0) and m.current_a[0] < 0
        await board.contactors.open()
        plant.advance(3600.0)  # nothing flows with the contactors open
        assert (await board.meter.read()).energy_export_wh == pytest.approx(1850.0)

    asyncio.run(main())
