"""Interop: the EVCC of the independent ``iso15118`` package (Josev 0.31.2, its own venv,
Java EXI codec) charges at the station across a veth pair between two network
namespaces: SDP by multicast on veth1, V2G over TCP or TLS to fe80::1%veth1.

One test per mode.  A mode passes when the EV ran the whole session (every request
answered with an OK code, the mode's messages all present, SessionStopRes, a clean exit)
and the station's own records agree (its trace holds the same requests and ends with
reason ``ev_stop``).  The station is ``secc run`` (generated TOML, simulated HAL, TLS
from the shared store); ``JOSEV_SECC=1`` puts the package's own SECC there instead to
prove the harness and give the reference latency.
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from tests.interop.conftest import SUMMARY, station_kind, workdir
from tests.interop.josev import MODES, Mode, SharedPki, evcc_verdict, run_evcc
from tests.interop.station import JosevStation, SeccRunStation, Station
from tests.runtime.netns import LinkPair

pytestmark = [pytest.mark.interop, pytest.mark.netns]

READY_BOUND = 15.0  # spawn -> first SDP answer
EVCC_BOUND = 35.0  # one whole session, the EVCC's exit included


def _station(mode: Mode, pair: LinkPair, pki: SharedPki, tmp_path: Path) -> Station:
    where = workdir(tmp_path, "station")
    if station_kind() == "josev":
        return JosevStation(pair, pki, where)
    # certificate installation needs a back end: secc run with [ocpp] and the test CSMS
    # playing the certificate provisioning service
    return SeccRunStation(pair, pki, where, evse_id=mode.evse_id, ocpp=mode.cert_install)


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    median, mean = statistics.median(values) * 1e3, statistics.fmean(values) * 1e3
    return f"median {median:.0f} ms, mean {mean:.0f} ms"


def _charge(mode: Mode, link: LinkPair, pki: SharedPki, tmp_path: Path) -> None:
    """One session of ``mode``; records the summary line, asserts both sides' verdicts."""
    station = _station(mode, link, pki, tmp_path)
    try:
        ready = station.wait_ready(READY_BOUND)
        idle = station.rss_mib()
        run = run_evcc(link.ev, link.ev_if, mode, pki, workdir(tmp_path, "ev"), EVCC_BOUND)
        after = station.rss_mib()
    finally:
        station.stop()
    verdict = evcc_verdict(run)
    log = verdict.log
    problems = list(verdict.problems)
    if verdict.ok:
        problems += station.problems(log)
    answered = sum(1 for e in log.exchanges if e.response is not None)
    SUMMARY.append(
        f"{mode.name:26} vs {station.name}: {'ok' if not problems else 'FAILED'}; "
        f"{answered} req/res in {log.span:.1f} s (EVCC run {run.elapsed:.1f} s); "
        f"EV round trip {_ms(log.round_trips())}, to decoded {_ms(log.round_trips(decoded=True))}; "
        f"station ready {ready:.2f} s, RSS idle {idle:.0f} MiB, after {after:.0f} MiB"
    )
    if (
        problems
        and station_kind() == "josev"
        and mode.protocol == "DIN_SPEC_70121"
        and "CURRENT_DEMAND_REQ" in (log.reason or "")
    ):
        pytest.xfail(
            "the iso15118 package's own SECC answers CurrentDemandReq slower than the "
            "EV's 0.25 s DIN timeout (harness validation only)"
        )
    assert not problems, (
        f"{mode.name}: "
        + "; ".join(problems)
        + f"\n--- EVCC log tail ({run.workdir}):\n"
        + run.log[-4000:]
        + f"\n--- station log tail ({station.workdir}):\n"
        + station.log()[-4000:]
    )


@pytest.mark.parametrize("mode", MODES, ids=[m.name for m in MODES])
def test_josev_evcc_charges(
    mode: Mode, link: LinkPair, shared_pki: SharedPki, tmp_path: Path
) -> None:
    _charge(mode, link, shared_pki, tmp_path)


def test_din_long_evse_id(link: LinkPair, shared_pki: SharedPki, tmp_path: Path) -> None:
    """A station configured with an ISO-style EVSE ID still serves DIN cars: DIN's EVSEID
    is the DIN SPEC 91286 form packed into nibbles, and an ID not of that form goes out as
    0x00 (it used to go out as 17 ASCII octets, which this peer refuses)."""
    if station_kind() == "josev":
        pytest.skip("about our station's DIN EVSEID; not applicable to the reference SECC")
    din = next(m for m in MODES if m.protocol == "DIN_SPEC_70121")
    iso_style = replace(din, name="din-dc-iso-evse-id", evse_id="DE*ABC*E1234567*1")
    _charge(iso_style, link, shared_pki, tmp_path)
