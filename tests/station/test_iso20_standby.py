"""ISO 15118-20 DC standby at a whole station on the simulated board, the EV (the -20
test EV) through a real socket: PowerDelivery Standby in the charge loop, charge loops
without power, then PowerDelivery Start back into the loop.

What standby requires: no energy flows, but it is a pause of the energy transfer, not
its end: "during standby both EV and EVSE contactors are to stay closed", so the next
Start needs no new cable check or pre-charge.  With the contactors closed the DC circuit
stays connected to the EV's battery, so the insulation monitor keeps monitoring it (IEC
61851-23: insulation monitoring for as long as the EV's circuit is connected, not only
for the cable check); only the end of the session (contactors open) stops it.  A Start
from standby therefore finds the isolation still valid and is answered OK."""

from __future__ import annotations

import json
from pathlib import Path

from hal.backends.simulated import build_board
from secc.aio.ev_client import EvResult, run_ev
from secc.core.actions import EndReason
from secc.ev.pnc2 import pki_dir_files
from secc.runtime import Station
from tests.station.conftest import EVSE_ID, evse, run, station_config, wait_until
from tests.station.test_iso20_resume_replay import ISO20, ev20, vehicle_tls


def test_dc_start_from_standby_at_the_station(pki_dir: Path, tmp_path: Path) -> None:
    board, plant = build_board()
    seen: list[tuple[bool, tuple[float, float], bool]] = []

    async def main() -> tuple[EvResult, EndReason]:
        config = station_config(pki_dir, tmp_path, evse(protocols=ISO20))
        async with Station(config, boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)

            def step(s: object) -> None:  # the plant as each response arrives
                seen.append((plant.contactor_command, plant.dc_target, plant.dc_enabled))

            result = await run_ev(
                ev20("dc", standby_after=1, standby_loops=2, charge_loops=3),
                host="::1",
                port=e.ports["tls"],
                tls=True,
                cafile=pki_dir_files(pki_dir, "iso20")["v2g_root"],
                client_cert=vehicle_tls(pki_dir),
                on_step=step,
            )
            await wait_until(lambda: bool(e.ended) and e.active is None, timeout=20)
            return result, e.ended[-1].end.reason

    result, reason = run(main, timeout=60)
    steps = result.steps
    assert result.ended == "done", (result.ended, [(s.response, s.code) for s in steps])
    assert reason is EndReason.EV_STOP
    pds = [i for i, s in enumerate(steps) if s.response == "PowerDeliveryRes"]
    start, standby, restart, stop = pds
    assert all(steps[i].code == "OK" for i in pds), [(s.response, s.code) for s in steps]
    in_standby = steps[standby + 1 : restart]
    assert [s.response for s in in_standby] == ["DC_ChargeLoopRes"] * 2
    after = steps[restart + 1 : stop]
    assert [s.response for s in after] == ["DC_ChargeLoopRes"] * 2  # 3 loops in all
    # the contactors stayed closed from the first Start to the Stop, no current flowed in
    # standby, and it flowed again after the Start
    for i in range(start, stop):
        assert seen[i][0], f"contactors open at {steps[i].response}"
    for i in range(standby, restart):
        assert seen[i][1][1] == 0.0, seen[i]
    assert seen[restart + 1][1][1] > 0.0
    records = [json.loads(x) for x in next(tmp_path.glob("*.jsonl")).read_text().splitlines()]
    rx = [r for r in records if r["kind"] in ("rx", "action")]
    names = [r.get("name") or r.get("action") for r in rx]
    last_power_delivery = len(names) - 1 - names[::-1].index("PowerDeliveryReq")
    assert names.index("StopDcOutput") > last_power_delivery  # only with the Stop
    facts = [
        r["fields"]["isolation"]
        for r in records
        if r["kind"] == "fact" and r["event"] == "EvseStatus" and r["fields"]["contactors_closed"]
    ]
    assert facts and set(facts) <= {"Valid", "Warning"}, facts
