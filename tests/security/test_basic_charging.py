"""Issue 15: basic charging never bypasses authorization; pause and resume (and a retry
after a failed session) get power again under the IEC 61851 control.  In-process station
with the simulated board and ``control = "iec61851"`` on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from hal.backends.simulated import Plant, build_board
from hal.control import Phase
from hal.types import CpState, Duty
from secc.aio.ev_client import run_ev
from secc.cli.ev import load_credentials
from secc.config import AuthorizationSection, HalSection
from secc.core.actions import EndReason
from secc.ev.iso2 import EvFaults
from secc.runtime import Evse, Station
from tests.station.conftest import EVSE_ID, evse, run, script, station_config, wait_until


async def _ev_ready(e: Evse, plant: Plant) -> None:
    """Plug in (B), 5 % duty, then the EV asks for power (C)."""
    plant.ev_state = CpState.B
    await wait_until(lambda: plant.duty == Duty.hlc())
    plant.ev_state = CpState.C
    await wait_until(lambda: e.runner is not None and e.runner.control.cp is CpState.C)


@pytest.mark.parametrize("refusal", ["pnc_signature", "eim_policy"])
def test_refused_session_does_not_fall_back_to_basic_charging(pki_dir: Path, refusal: str) -> None:
    """``basic_fallback = true``: a session refused for authorization (a tampered PnC
    signature; EIM refused by the local policy) leaves the EVSE blocked, contactors
    open, no nominal duty."""
    board, plant = build_board()
    hal = HalSection(control="iec61851", basic_fallback=True)
    section = evse(hal=hal, energy_modes=("AC_three_phase_core",))

    async def main() -> None:
        config = station_config(pki_dir, None, section)
        if refusal == "eim_policy":
            config = replace(config, authorization=AuthorizationSection(eim="reject"))
        async with Station(config, boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            await _ev_ready(e, plant)
            if refusal == "pnc_signature":
                creds = load_credentials(pki_dir, dt.datetime.now(dt.UTC))
                ev = script("ac", payment="Contract", credentials=creds,
                            faults=EvFaults(tamper_authorization=True))  # fmt: skip
                port, tls = e.ports["tls"], True
            else:
                ev, port, tls = script("ac"), e.ports["tcp"], False
            result = await run_ev(
                ev, host="::1", port=port, tls=tls, cafile=pki_dir / "v2g" / "root.pem"
            )
            assert result.steps[-1].code.startswith("FAILED"), result.steps[-1]
            await wait_until(lambda: bool(e.ended) and e.active is None)
            assert e.runner is not None
            await asyncio.sleep(0.3)  # the control has reacted to the end by now
            assert e.runner.control.phase is Phase.BLOCKED, e.runner.control.phase
            assert not plant.contactor_command
            assert plant.duty != Duty.for_current(16.0)

    run(main)


def test_technical_failure_still_falls_back(pki_dir: Path) -> None:
    """Fallback stays for technical failures: the EV vanishes mid-session."""
    board, plant = build_board()
    hal = HalSection(control="iec61851", basic_fallback=True)
    section = evse(hal=hal, energy_modes=("AC_three_phase_core",))

    async def main() -> None:
        async with Station(station_config(pki_dir, None, section), boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            await _ev_ready(e, plant)
            ev = script("ac", faults=EvFaults(vanish_before="ChargeParameterDiscoveryReq"))
            await run_ev(ev, host="::1", port=e.ports["tcp"], tls=False)
            await wait_until(lambda: e.runner is not None and e.runner.control.phase is Phase.BASIC)
            await wait_until(lambda: plant.contactor_command)

    run(main)


@pytest.mark.parametrize("first", ["pause", "failed"])
def test_resume_after_pause_or_retry_after_failure_gets_power(pki_dir: Path, first: str) -> None:
    """``control = "iec61851"``: SessionStopReq(Pause) then a session resuming it
    (OK_OldSessionJoined), or a failed session then a retry: the second session charges
    (contactors closed while ChargingStatus runs), no FAILED_ContactorError."""
    board, plant = build_board()
    section = evse(hal=HalSection(control="iec61851"), energy_modes=("AC_three_phase_core",))

    async def main() -> None:
        async with Station(station_config(pki_dir, None, section), boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            await _ev_ready(e, plant)
            port = e.ports["tcp"]
            if first == "pause":
                one = await run_ev(script("ac", stop="Pause"), host="::1", port=port, tls=False)
                assert one.ended == "done", one.ended
                await wait_until(lambda: e.paused is not None)
                sid = bytes.fromhex(e.ended[-1].session_id)
                two_script = script("ac", resume_session_id=sid)
            else:
                bad = script("ac", faults=EvFaults(requested_mode="DC_extended"))
                one = await run_ev(bad, host="::1", port=port, tls=False)
                assert one.steps[-1].code.startswith("FAILED"), one.steps[-1]
                await wait_until(lambda: bool(e.ended) and e.active is None)
                two_script = script("ac")
            closed: list[bool] = []
            two = await run_ev(two_script, host="::1", port=port, tls=False,
                               on_step=lambda s: closed.append(plant.contactor_command)
                               if s.response == "ChargingStatusRes" else None)  # fmt: skip
            assert two.ended == "done", [(s.response, s.code) for s in two.steps]
            if first == "pause":
                assert two.steps[1].code == "OK_OldSessionJoined"
            assert closed and all(closed)
            await wait_until(lambda: e.ended[-1].end.reason is EndReason.EV_STOP)

    run(main)
