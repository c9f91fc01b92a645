"""Interop, smart charging: the independent EVCC (the ``iso15118`` package) charges at
``secc run`` with ``[ocpp]`` whose test CSMS (:mod:`tests.interop.csms_proc`) remote
starts the session (F02), sets a TxDefaultProfile before the EV comes and a TxProfile
once it charges (K01, K16).  ISO 15118-2 AC and DC over TCP across the veth pair.

Passes when the EV ran the whole session (its own verdict) and the station's trace shows
the CSMS's limit as the first SAScheduleList and EVSENotification ReNegotiation once the
TxProfile is set.  AC: the EV's PowerDelivery Renegotiate and a second
ChargeParameterDiscoveryRes with the new limit (the independent EV took both
schedules).  DC: this peer (0.31.2) acts on ReNegotiation in ChargingStatusRes and
MeteringReceiptRes but not in CurrentDemandRes (it charges on), so the DC check is that
the station bounds the delivery to the new limit (EVSEMaximumPowerLimit) and the EV
finishes cleanly.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from secc import codec
from secc.core.context import value_of
from tests.interop.conftest import SUMMARY, station_kind, workdir
from tests.interop.josev import MODES, Mode, SharedPki, evcc_verdict, run_evcc
from tests.interop.station import SeccRunStation
from tests.runtime.netns import LinkPair

pytestmark = [pytest.mark.interop, pytest.mark.netns]

FIRST_W = 6000.0
SECOND_W = 4000.0
LOOPS = 150  # EV charge loops: long enough for the CSMS to react while it charges


@dataclasses.dataclass(frozen=True, slots=True)
class LongMode(Mode):
    """A mode whose EV charges for ``LOOPS`` loops."""

    def evcc_config(self, loop_cycles: int = LOOPS) -> dict[str, object]:
        return Mode.evcc_config(self, LOOPS)


def _decoded(record: dict[str, Any]) -> Any:
    message = codec.decode(bytes.fromhex(str(record["exi"])), str(record["schema"]))
    return message.body.body_element


def _wait_for(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in (path.read_text(errors="replace") if path.exists() else ""):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} not in {path}")
        time.sleep(0.1)


@pytest.mark.parametrize("name", ["iso2-ac-eim", "iso2-dc-eim"])
def test_josev_takes_the_csms_schedule_and_renegotiates(
    name: str, link: LinkPair, shared_pki: SharedPki, tmp_path: Path
) -> None:
    if station_kind() == "josev":
        pytest.skip("about secc run with [ocpp]; the reference SECC has no CSMS here")
    base = next(m for m in MODES if m.name == name)
    mode = LongMode(**{f.name: getattr(base, f.name) for f in dataclasses.fields(Mode)})
    where = workdir(tmp_path, "station")
    station = SeccRunStation(
        link,
        shared_pki,
        where,
        evse_id=mode.evse_id,
        ocpp=True,
        csms_args=("--profile-watts", str(FIRST_W), "--renegotiate-watts", str(SECOND_W)),
    )
    try:
        station.wait_ready(15.0)
        _wait_for(where / "csms.log", "SetChargingProfile TxDefaultProfile", 30.0)
        run = run_evcc(link.ev, link.ev_if, mode, shared_pki, workdir(tmp_path, "ev"), 90.0)
    finally:
        station.stop()
    verdict = evcc_verdict(run)
    problems = list(verdict.problems)
    traces = [t for t in station.traces() if any(r.get("kind") == "rx" for r in t)]
    assert len(traces) == 1, (problems, station.log()[-3000:])
    trace = traces[0]
    offers = []
    for record in trace:
        if record.get("kind") == "tx" and record.get("name") == "ChargeParameterDiscoveryRes":
            body = _decoded(record)
            if body.sa_schedules is not None:
                entries = body.sa_schedules.sa_schedule_tuple[0].p_max_schedule
                offers.append([value_of(e.p_max) for e in entries.p_max_schedule_entry])
    notes = []
    progress = []
    dc_limits = []
    for record in trace:
        name_ = record.get("name")
        if record.get("kind") == "tx" and name_ in ("ChargingStatusRes", "CurrentDemandRes"):
            body = _decoded(record)
            status = getattr(body, "ac_evse_status", None) or body.dc_evse_status
            notes.append(status.evse_notification.value)
            if name_ == "CurrentDemandRes":
                dc_limits.append(value_of(body.evse_maximum_power_limit))
        if record.get("kind") == "rx" and name_ == "PowerDeliveryReq":
            progress.append(_decoded(record).charge_progress.value)
    SUMMARY.append(
        f"{mode.name} + CSMS profiles: offers {offers}, PowerDelivery {progress}; "
        f"{'ok' if not problems else 'FAILED: ' + '; '.join(problems)}"
    )
    assert not problems, "; ".join(problems) + "\n" + run.log[-3000:]
    assert offers[0] == [FIRST_W], offers
    assert "ReNegotiation" in notes
    if mode.energy == "DC":
        # the TxProfile may arrive before the first CurrentDemand: FIRST_W, then SECOND_W
        assert set(dc_limits) <= {FIRST_W, SECOND_W} and dc_limits[-1] == SECOND_W, dc_limits
        assert progress[0] == "Start" and progress[-1] == "Stop", progress
        return
    assert progress[:2] == ["Start", "Renegotiate"] and progress[-1] == "Stop", progress
    assert offers[-1] == [SECOND_W], offers


ALTERNATIVE_W = 3000.0


def test_josev_takes_alternatives_with_sales_tariffs(
    link: LinkPair, shared_pki: SharedPki, tmp_path: Path
) -> None:
    """The CSMS's TxDefaultProfile has two chargingSchedules (ids 1 and 2), each with a
    salesTariff: the station offers two SAScheduleTuples with those IDs and SalesTariffs
    (price levels; consumption costs); the independent EV decodes them, chooses one in
    PowerDelivery and charges to the end under that tuple's limit."""
    if station_kind() == "josev":
        pytest.skip("about secc run with [ocpp]; the reference SECC has no CSMS here")
    mode = next(m for m in MODES if m.name == "iso2-ac-eim")
    where = workdir(tmp_path, "station")
    station = SeccRunStation(
        link,
        shared_pki,
        where,
        evse_id=mode.evse_id,
        ocpp=True,
        csms_args=("--profile-watts", str(FIRST_W), "--alternative-watts", str(ALTERNATIVE_W)),
    )
    try:
        station.wait_ready(15.0)
        _wait_for(where / "csms.log", "SetChargingProfile TxDefaultProfile", 30.0)
        run = run_evcc(link.ev, link.ev_if, mode, shared_pki, workdir(tmp_path, "ev"), 90.0)
    finally:
        station.stop()
    verdict = evcc_verdict(run)
    problems = list(verdict.problems)
    traces = [t for t in station.traces() if any(r.get("kind") == "rx" for r in t)]
    assert len(traces) == 1, (problems, station.log()[-3000:])
    tuples: list[Any] = []
    chosen = []
    limits = []
    for record in traces[0]:
        name_ = record.get("name")
        if record.get("kind") == "tx" and name_ == "ChargeParameterDiscoveryRes":
            body = _decoded(record)
            if body.sa_schedules is not None and not tuples:
                tuples = list(body.sa_schedules.sa_schedule_tuple)
        if record.get("kind") == "rx" and name_ == "PowerDeliveryReq":
            chosen.append(_decoded(record).sa_schedule_tuple_id)
        if record.get("kind") == "tx" and name_ == "ChargingStatusRes":
            body = _decoded(record)
            if body.evse_max_current is not None:
                limits.append(value_of(body.evse_max_current))
    SUMMARY.append(
        f"{mode.name} + CSMS alternatives with SalesTariffs: tuples "
        f"{[t.sa_schedule_tuple_id for t in tuples]}, EV chose {sorted(set(chosen))}; "
        f"{'ok' if not problems else 'FAILED: ' + '; '.join(problems)}"
    )
    assert not problems, "; ".join(problems) + "\n" + run.log[-3000:]
    assert [t.sa_schedule_tuple_id for t in tuples] == [1, 2]
    first, second = tuples
    assert [value_of(e.p_max) for e in first.p_max_schedule.p_max_schedule_entry] == [FIRST_W]
    assert [value_of(e.p_max) for e in second.p_max_schedule.p_max_schedule_entry] == [
        ALTERNATIVE_W
    ]
    assert first.sales_tariff.sales_tariff_id == 5
    assert [e.e_price_level for e in first.sales_tariff.sales_tariff_entry] == [1, 2]
    assert second.sales_tariff.sales_tariff_id == 6
    costs = second.sales_tariff.sales_tariff_entry[0].consumption_cost[0].cost
    assert [(c.cost_kind.value, c.amount) for c in costs] == [
        ("relativePricePercentage", 90),
        ("CarbonDioxideEmission", 150),
    ]
    assert chosen and set(chosen) <= {1, 2}, chosen
    watts = FIRST_W if chosen[0] == 1 else ALTERNATIVE_W
    # AC: the chosen tuple's limit bounds EVSEMaxCurrent (W / (230 V x 3 phases))
    assert limits and max(limits) <= watts / (230.0 * 3) + 0.5, (limits, chosen)
