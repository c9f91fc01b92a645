"""The hal.testing conformance suite against every backend that runs on a dev machine:
simulated; serial-mcu over a pty with the MCU simulator; gpiod over a fake chip (and over
a real gpio-sim chip where the kernel offers it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hal.testing import CHECKS, HARNESSES, Harness, run_check, run_conformance
from tests.hal.fake_gpiod import FakeGpioHarness

GPIO_SIM = Path("/sys/kernel/config/gpio-sim")

# what a backend legitimately lacks (reported as skipped by the suite)
EXPECTED_SKIPS = {
    (backend, check)
    for backend in ("serial-mcu", "gpiod-fake-chip")
    for check in ("meter", "dc_supply", "isolation")
}


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("backend", ["simulated", "serial-mcu", "gpiod-fake-chip"])
def test_conformance(backend: str, check: str, tmp_path: Path) -> None:
    async def factory() -> Harness:
        if backend == "gpiod-fake-chip":
            return FakeGpioHarness(tmp_path / check)
        return await HARNESSES[backend]()

    result = asyncio.run(run_check(check, factory))
    if (backend, check) in EXPECTED_SKIPS:
        assert result.outcome == "skipped", result
    else:
        assert result.outcome == "passed", result


@pytest.mark.skipif(
    not GPIO_SIM.is_dir(),
    reason="gpio-sim kernel module / configfs not available here: the gpiod backend is "
    "checked over a fake chip implementing the libgpiod v2 API subset it uses",
)
def test_conformance_gpiod_on_gpio_sim() -> None:  # pragma: no cover - needs gpio-sim
    pytest.skip("gpio-sim present, but no gpio-sim harness is written yet")


def test_a_broken_backend_fails_the_suite() -> None:
    """The suite can fail: a board whose contactors ignore close() is caught."""

    async def factory() -> Harness:
        h = await HARNESSES["simulated"]()
        await h.stick_contactors(True)  # unknown to the board: it must notice
        return h

    results = asyncio.run(run_conformance(factory))
    by_name = {r.name: r for r in results}
    assert by_name["contactors"].outcome == "failed"
    assert "ContactorStuckError" in by_name["contactors"].detail
