"""Fixtures for the station tests: one test PKI written to disk (with a ready certificate
store), station configurations on loopback, and the EV simulator's scripts."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from certs import testpki
from secc.config import CertsSection, EvseSection, HalSection, StationConfig, StationSection
from secc.core.config import Timers
from secc.ev.iso2 import EvScript

T = TypeVar("T")
EVSE_ID = "DE*ABC*E1234567*1"


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    pki = testpki.build_test_pki(dt.datetime.now(dt.UTC))
    testpki.write_test_pki(pki, directory)
    return directory


def evse(evse_id: str = EVSE_ID, **changes: Any) -> EvseSection:
    base = EvseSection(
        evse_id=evse_id,
        address="::1",
        tls_port=0,
        tcp_port=0,
        sdp_port=0,
        energy_modes=("AC_three_phase_core", "DC_extended"),
        hal=HalSection(control="none"),
        timers=Timers(sequence_timeout=5.0),
    )
    return replace(base, **changes)


def station_config(
    pki_dir: Path | None, trace_dir: Path | None, *evses: EvseSection
) -> StationConfig:
    return StationConfig(
        station=StationSection(trace_dir=trace_dir),
        certs=CertsSection(store=pki_dir / "station" if pki_dir else None),
        evse=evses or (evse(),),
    )


def script(mode: str = "ac", **changes: Any) -> EvScript:
    base = EvScript(
        energy_mode="DC_extended" if mode == "dc" else "AC_three_phase_core",
        think_time=0.0,
        poll_interval=0.05,
        loop_interval=0.02,
        charge_loops=3,
    )
    return replace(base, **changes)


def run(main: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await main()

    return asyncio.run(bounded())


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)
