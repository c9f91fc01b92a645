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
from secc import codec
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


def test_ac_standby_and_start_at_the_station(pki_dir: Path, tmp_path: Path) -> None:
    """AC: the same pause, no DC output to keep: the contactors stay closed, the EV is
    told EVSETargetActivePower 0 in dynamic mode [V2G20-2116], and the Start needs no
    new switching."""
    board, plant = build_board()
    closed: list[bool] = []

    async def main() -> tuple[EvResult, EndReason]:
        section = evse(protocols=ISO20, iso20_control_modes=("dynamic",))
        config = station_config(pki_dir, tmp_path, section)
        async with Station(config, boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            result = await run_ev(
                ev20("ac", control="dynamic", standby_after=1, standby_loops=2, charge_loops=3),
                host="::1",
                port=e.ports["tls"],
                tls=True,
                cafile=pki_dir_files(pki_dir, "iso20")["v2g_root"],
                client_cert=vehicle_tls(pki_dir),
                on_step=lambda s: closed.append(plant.contactor_command),
            )
            await wait_until(lambda: bool(e.ended) and e.active is None, timeout=20)
            return result, e.ended[-1].end.reason

    result, reason = run(main, timeout=60)
    steps = result.steps
    assert result.ended == "done", (result.ended, [(s.response, s.code) for s in steps])
    assert reason is EndReason.EV_STOP
    start, standby, restart, stop = [
        i for i, s in enumerate(steps) if s.response == "PowerDeliveryRes"
    ]
    assert all(steps[i].code == "OK" for i in (start, standby, restart, stop))
    assert all(closed[start:stop]), closed
    assert [s.response for s in steps[standby + 1 : restart]] == ["AC_ChargeLoopRes"] * 2
    # the station's own record of what it sent in standby: target power 0
    (path,) = tmp_path.glob("*.jsonl")
    tx = [json.loads(x) for x in path.read_text().splitlines()]
    tx = [r for r in tx if r["kind"] == "tx"]
    pds = [i for i, r in enumerate(tx) if r["name"] == "PowerDeliveryRes"]
    for r in tx[pds[1] + 1 : pds[2]]:
        res = codec.decode(bytes.fromhex(r["exi"]), "iso20-ac")
        target = res.cl_res_control_mode.evse_target_active_power
        assert target.value == 0, res
