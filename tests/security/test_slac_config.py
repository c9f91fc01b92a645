"""Issue 15: the modem MAC, the SLAC session cap, the SLAC retries, the retry pause and the
SLAC wait are configurable: from a station file to the running EVSE's IEC 61851 control,
and from ``plc_options`` to the SLAC adapter on a real interface (a veth pair in a
namespace of the test's own); bad values are refused with a clear error."""

from __future__ import annotations

import tomllib

import pytest

from hal.backends.simulated import build_board
from hal.backends.slac import link as slac
from hal.types import UnavailableError
from secc.config import parse
from secc.errors import ConfigError
from secc.runtime import Station
from tests.hal.netns import netns_unavailable, run_in_netns, veth_namespace
from tests.station.conftest import EVSE_ID, run

TOML = f"""
[[evse]]
evse_id = "{EVSE_ID}"
address = "::1"
tcp_port = 0
sdp_port = 0
energy_modes = ["AC_three_phase_core"]
[evse.hal]
backend = "simulated"
control = "iec61851"
slac_retries = 1
slac_retry_pause = 0.5
slac_wait = 25.0
"""


def test_slac_retries_pause_and_wait_reach_the_control() -> None:
    async def main() -> None:
        config = parse(tomllib.loads(TOML), "secc.toml")
        async with Station(config, boards={EVSE_ID: build_board()[0]}) as st:
            runner = st.evse(EVSE_ID).runner
            assert runner is not None
            control = runner.control.config
            assert (control.slac_retries, control.slac_retry_pause_s) == (1, 0.5)
            assert runner.slac_timeout_s == 25.0

    run(main)


@pytest.mark.netns
@pytest.mark.skipif(netns_unavailable() is not None, reason=str(netns_unavailable()))
def test_modem_mac_and_session_cap_reach_the_slac_adapter() -> None:
    async def main() -> None:
        link = await slac.open_plc(
            {"interface": "evse0", "modem_mac": "00:b0:52:11:22:33", "max_sessions": 3}
        )
        try:
            assert link.matcher.modem_mac == bytes.fromhex("00b052112233")
            assert link.matcher.timers.max_sessions == 3
        finally:
            await link.aclose()
        for bad, why in (
            ({"modem_mac": "00:b0:52"}, "modem_mac"),
            ({"max_sessions": 0}, "max_sessions"),
            ({"slac_init_s": 5}, "slac_init_s"),
        ):
            with pytest.raises(UnavailableError, match=why):
                await slac.open_plc({"interface": "evse0", **bad})

    with veth_namespace() as ns:
        run_in_netns(ns, main)


def test_slac_wait_and_retries_are_checked() -> None:
    for key, value in (("slac_retries", -1), ("slac_retry_pause", 0.0), ("slac_wait", 0.0)):
        text = TOML.replace(f"{key} = ", f"{key} = {value} #")
        with pytest.raises(ConfigError, match=key):
            parse(tomllib.loads(text), "secc.toml")
