"""The set-up of the smart-charging end-to-end tests (``tests/ocpp/test_smart_*.py``): the
real station runtime (one EVSE on the simulated board, TCP on loopback) whose backend is
the OCPP bridge, connected to a fresh test CSMS, and the EV simulator's scripts for it.

Use it through the ``smart_link`` fixture (``tests/ocpp/conftest.py``)::

    async with smart_link(config) as link:
        answer = await link.cp.call(...)
        result = await link.charge(smart_script("AC_three_phase_core", loops=3))
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hal.backends.simulated import build_board
from secc.aio.ev_client import EvResult, run_ev_sdp
from secc.config import EvseSection, StationConfig
from secc.ev.iso2 import EvScript
from secc.ev.iso20 import Ev20Script
from secc.ocpp_bridge.bridge import Bridge
from secc.runtime import Station as Runtime
from secc.sdp import Security
from tests.ocpp.csms import CsmsStation, TestCsms
from tests.ocpp.station import STATION, build

TOKEN = "04A1B2C3D4E5F6"  # the RFID card of the EIM sessions


def smart_script(
    mode: str, *, iso20: bool = False, loops: int = 3, renegotiate: bool = False
) -> EvScript | Ev20Script:
    """The EV: ``mode`` an ISO 15118-2 energy mode (``AC_three_phase_core``,
    ``DC_extended``); ``iso20``: an ISO 15118-20 EV in scheduled mode of that kind instead;
    ``loops`` charge loops 50 ms apart; ``renegotiate``: it renegotiates half way."""
    if iso20:
        return Ev20Script(
            mode="dc" if mode.startswith("DC") else "ac",
            control="scheduled",
            think_time=0.0,
            poll_interval=0.05,
            loop_interval=0.05,
            charge_loops=loops,
            renegotiate=renegotiate,
        )
    return EvScript(
        energy_mode=mode,
        think_time=0.0,
        poll_interval=0.05,
        loop_interval=0.05,
        charge_loops=loops,
        renegotiate=renegotiate,
    )


@dataclass
class SmartLink:
    """The running station (``runtime``), its bridge, the test CSMS and the CSMS's side of
    the connection (``cp``)."""

    csms: TestCsms
    runtime: Runtime
    bridge: Bridge
    cp: CsmsStation
    evse_id: str

    @property
    def sdp_port(self) -> int:
        sdp = self.runtime.evse(self.evse_id).sdp
        assert sdp is not None
        return sdp.port

    def ev(self, script: EvScript | Ev20Script) -> asyncio.Task[EvResult]:
        """Start an EV session (SDP, then TCP) against the station."""
        return asyncio.ensure_future(
            run_ev_sdp(script, security=Security.NONE, address="::1", sdp_port=self.sdp_port)
        )

    async def charge(self, script: EvScript | Ev20Script, timeout: float = 60) -> EvResult:
        """One whole EV session, bounded."""
        return await asyncio.wait_for(self.ev(script), timeout)


SmartLinkFactory = Callable[..., AbstractAsyncContextManager[SmartLink]]  # the fixture


@asynccontextmanager
async def smart_link(
    directory: Path, config: StationConfig, *, token: bool = True
) -> AsyncIterator[SmartLink]:
    """The station of ``config`` (its first EVSE on the simulated board) with the bridge
    (state in ``directory``, fast retries) online at a fresh test CSMS; ``token``: an RFID
    card is presented (an EIM session is authorized by it).  The CSMS is stopped at the
    end; what it recorded stays readable."""
    csms = TestCsms()
    await csms.start()
    bridges: list[Bridge] = []
    tasks: list[asyncio.Task[None]] = []

    def factory(section: EvseSection, emit: Any) -> Bridge:
        bridge = build(directory, csms.url, emit=emit).bridge
        if token:
            bridge.present_token(TOKEN)
        bridges.append(bridge)
        tasks.append(asyncio.ensure_future(bridge.run()))
        return bridge

    board, _plant = build_board()
    evse_id = config.evse[0].evse_id
    try:
        async with Runtime(config, boards={evse_id: board}, backend_factory=factory) as runtime:
            bridge = bridges[0]
            await asyncio.wait_for(bridge.client.online.wait(), 10)
            cp = await csms.station(STATION)
            yield SmartLink(csms, runtime, bridge, cp, evse_id)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await csms.stop()
