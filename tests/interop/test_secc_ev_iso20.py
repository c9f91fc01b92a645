"""ISO 15118-20 across the veth pair with the second peer: this project's own EV simulator
(`secc ev --protocol iso20`, written from the standard in secc/ev) in the EV namespace
against `secc run` in the station namespace, over TLS 1.3, EIM, in all four modes the
independent EVCC cannot finish (see test_josev_iso20.py) and the one it can: SDP by
multicast on veth1, TLS 1.3 with the -20 chain, the whole session to SessionStop.  Prints
the same figures as the Josev modes (EV-seen time per exchange, session time, station
RSS before and after)."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import time
from pathlib import Path

import pytest

from tests.interop.conftest import SUMMARY, station_kind, workdir
from tests.interop.josev import REPO, SharedPki
from tests.interop.station import SeccRunStation
from tests.interop.test_josev_evcc import READY_BOUND
from tests.runtime.netns import LinkPair

pytestmark = [pytest.mark.interop, pytest.mark.netns]

STATION_PROTOCOLS = ("iso20-dc", "iso20-ac", "iso2", "din")
EV_BOUND = 60.0
LOOPS = 10
# one timeline line of `secc ev`: time, response, code, the EV-seen time of the exchange
_STEP = re.compile(r"^\s*([\d.]+) s\s+(\S+)\s+(\S+)\s+([\d.]+) ms")


def _secc_ev(pair: LinkPair, pki: SharedPki, where: Path, *args: str) -> tuple[int, str, float]:
    secc = os.environ.get("SECC_BIN", str(REPO / ".venv/bin/secc"))
    command = [
        "ip", "netns", "exec", pair.ev, secc, "ev", "--interface", pair.ev_if, "--tls",
        "--protocol", "iso20", "--pki", str(pki.source), "--loops", str(LOOPS), *args,
    ]  # fmt: skip
    start = time.monotonic()
    done = subprocess.run(
        command, cwd=where, capture_output=True, text=True, timeout=EV_BOUND, check=False
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


@pytest.mark.parametrize("control", ["scheduled", "dynamic"])
@pytest.mark.parametrize("energy", ["ac", "dc"])
def test_secc_ev_iso20_over_tls13(
    energy: str, control: str, link: LinkPair, shared_pki: SharedPki, tmp_path: Path
) -> None:
    if station_kind() == "josev":
        pytest.skip("the reference SECC is not configured for -20 here")
    station = SeccRunStation(
        link,
        shared_pki,
        workdir(tmp_path, "station"),
        protocols=STATION_PROTOCOLS,
        control_modes=(control,),
    )
    try:
        ready = station.wait_ready(READY_BOUND)
        idle = station.rss_mib()
        code, out, elapsed = _secc_ev(
            link, shared_pki, workdir(tmp_path, "ev"), "--mode", energy, "--control", control
        )
        after = station.rss_mib()
    finally:
        station.stop()
    steps = [m for m in map(_STEP.match, out.splitlines()) if m is not None]
    took = [float(m[4]) for m in steps]
    span = float(steps[-1][1]) - float(steps[0][1]) if len(steps) > 1 else 0.0
    problems = []
    if code != 0:
        problems.append(f"secc ev exited with {code}")
    if "TLSv1.3" not in out:
        problems.append("the EV did not report TLS 1.3")
    names = [m[2] for m in steps]
    loop = f"{energy.upper()}_ChargeLoopRes"
    if not names or names[-1] != "SessionStopRes" or names.count(loop) != LOOPS:
        problems.append(f"responses {names}")
    failed = [(m[2], m[3]) for m in steps if m[3].startswith("FAILED")]
    if failed:
        problems.append(f"failed answers {failed}")
    trace = station.traces()
    ends = [r for t in trace for r in t if r.get("kind") == "end"]
    if [e.get("reason") for e in ends] != ["ev_stop"]:
        problems.append(f"station ends {ends}")
    median = statistics.median(took) if took else 0.0
    SUMMARY.append(
        f"iso20-{energy}-{control}-eim-tls13 (secc ev) vs secc run: "
        f"{'ok' if not problems else 'FAILED'}; {len(steps)} req/res in {span:.1f} s "
        f"(EV run {elapsed:.1f} s); EV-seen exchange median {median:.1f} ms, "
        f"max {max(took, default=0.0):.1f} ms; station ready {ready:.2f} s, "
        f"RSS idle {idle:.0f} MiB, after {after:.0f} MiB"
    )
    assert not problems, "; ".join(problems) + "\n" + out[-3000:] + station.log()[-3000:]


# --- Plug & Charge over mutual TLS 1.3 ------------------------------------------------------

_VEHICLE_OK = re.compile(r"vehicle certificate (.+?) verified \((\d) certificate")


def _pnc_run(
    link: LinkPair,
    pki: SharedPki,
    tmp_path: Path,
    ev_args: tuple[str, ...],
    *,
    ocpp: bool = False,
    control: str = "dynamic",
) -> tuple[int, str, float, SeccRunStation, float, float, float]:
    station = SeccRunStation(
        link,
        pki,
        workdir(tmp_path, "station"),
        protocols=STATION_PROTOCOLS,
        control_modes=(control,),
        ocpp=ocpp,
    )
    try:
        ready = station.wait_ready(READY_BOUND)
        idle = station.rss_mib()
        code, out, elapsed = _secc_ev(
            link, pki, workdir(tmp_path, "ev"), "--payment", "pnc", "--control", control, *ev_args
        )
        after = station.rss_mib()
    finally:
        station.stop()
    return code, out, elapsed, station, ready, idle, after


def _pnc_problems(code: int, out: str, station: SeccRunStation, loop: str) -> list[str]:
    steps = [m for m in map(_STEP.match, out.splitlines()) if m is not None]
    names = [m[2] for m in steps]
    problems = []
    if code != 0:
        problems.append(f"secc ev exited with {code}")
    if "TLSv1.3" not in out:
        problems.append("the EV did not report TLS 1.3")
    vehicle = _VEHICLE_OK.search(station.log())
    if vehicle is None or vehicle[2] != "3":
        problems.append(f"the station did not verify the 3-certificate vehicle chain: {vehicle}")
    if not names or names[-1] != "SessionStopRes" or names.count(loop) != LOOPS:
        problems.append(f"responses {names}")
    failed = [(m[2], m[3]) for m in steps if not m[3].startswith("OK")]
    if failed:
        problems.append(f"answers other than OK {failed}")
    auth = [m[3] for m in steps if m[2] == "AuthorizationRes"]
    if not auth or auth[-1] != "OK":
        problems.append(f"AuthorizationRes {auth}")
    traces = [t for t in station.traces() if any(r.get("kind") == "rx" for r in t)]
    rx = [r for t in traces for r in t if r.get("kind") == "rx"]
    # the station received the signed PnC AuthorizationReq (its core verified the signature
    # over the PnC_AReqAuthorizationMode fragment before answering OK)
    pnc_req = [r for r in rx if r.get("name") == "AuthorizationReq"]
    if not pnc_req or "PnC" not in json.dumps(pnc_req[-1].get("summary")):
        problems.append(f"no PnC AuthorizationReq in the station's trace: {pnc_req[-1:]}")
    if not any(r.get("action") == "CloseContactors" for t in traces for r in t):
        problems.append("no CloseContactors in the station's trace")  # (the attacks' check)
    ends = [r.get("reason") for t in traces for r in t if r.get("kind") == "end"]
    if ends != ["ev_stop"]:
        problems.append(f"station ends {ends}")
    return problems


def _pnc_summary(
    name: str,
    out: str,
    problems: list[str],
    elapsed: float,
    ready: float,
    idle: float,
    after: float,
) -> None:
    steps = [m for m in map(_STEP.match, out.splitlines()) if m is not None]
    took = [float(m[4]) for m in steps]
    span = float(steps[-1][1]) - float(steps[0][1]) if len(steps) > 1 else 0.0
    median = statistics.median(took) if took else 0.0
    SUMMARY.append(
        f"{name} (secc ev) vs secc run: {'ok' if not problems else 'FAILED'}; "
        f"{len(steps)} req/res in {span:.1f} s (EV run {elapsed:.1f} s); EV-seen exchange "
        f"median {median:.1f} ms, max {max(took, default=0.0):.1f} ms; station ready "
        f"{ready:.2f} s, RSS idle {idle:.0f} MiB, after {after:.0f} MiB"
    )


@pytest.mark.parametrize("energy", ["ac", "dc"])
def test_secc_ev_iso20_pnc_over_mutual_tls13(
    energy: str, link: LinkPair, shared_pki: SharedPki, tmp_path: Path
) -> None:
    """`secc ev --protocol iso20 --payment pnc`: the vehicle chain in the TLS 1.3
    handshake, verified by the station against the -20 OEM root; the signed PnC
    AuthorizationReq with the -20 contract chain (P-521, SHA-512) accepted; charge to
    SessionStop."""
    if station_kind() == "josev":
        pytest.skip("the reference SECC is not configured for -20 here")
    code, out, elapsed, station, ready, idle, after = _pnc_run(
        link, shared_pki, tmp_path, ("--mode", energy)
    )
    problems = _pnc_problems(code, out, station, f"{energy.upper()}_ChargeLoopRes")
    _pnc_summary(f"iso20-{energy}-dynamic-pnc-mtls13", out, problems, elapsed, ready, idle, after)
    assert not problems, "; ".join(problems) + "\n" + out[-3000:] + station.log()[-3000:]


def test_secc_ev_iso20_certificate_installation_through_the_test_csms(
    link: LinkPair, shared_pki: SharedPki, tmp_path: Path
) -> None:
    """An EV without a contract asks CertificateInstallation; `secc run` forwards it to
    the test CSMS as Get15118EVCertificate (-20 schema version), the CSMS's lab CPS answers
    with the -20 contract chain and the key sealed for the EV's OEM provisioning key, the
    station passes the answer through, the EV opens it and charges with PnC."""
    if station_kind() == "josev":
        pytest.skip("the reference SECC is not configured for -20 here")
    code, out, elapsed, station, ready, idle, after = _pnc_run(
        link, shared_pki, tmp_path, ("--mode", "ac", "--no-contract"), ocpp=True
    )
    problems = _pnc_problems(code, out, station, "AC_ChargeLoopRes")
    if "CertificateInstallationRes" not in out:
        problems.append("no CertificateInstallationRes in the EV's timeline")
    csms = (station.workdir / "csms.log").read_text(errors="replace")
    if "urn:iso:std:iso:15118:-20:CommonMessages" not in csms:
        problems.append("the test CSMS saw no Get15118EVCertificate with the -20 schema")
    _pnc_summary("iso20-ac-pnc-cert-install-mtls13", out, problems, elapsed, ready, idle, after)
    assert not problems, "; ".join(problems) + "\n" + out[-3000:] + station.log()[-3000:]


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("tamper-signature", "FAILED_SignatureError"),
        ("wrong-curve", "FAILED_SignatureError"),
        ("wrong-challenge", "WARNING_ChallengeInvalid"),
    ],
)
def test_secc_ev_iso20_pnc_attack_is_refused(
    fault: str, code: str, link: LinkPair, shared_pki: SharedPki, tmp_path: Path
) -> None:
    """The signature really is verified across the wire: the same EV with a tampered
    signature, one made with a P-256 key, or a stale GenChallenge gets its -20 response
    code in AuthorizationRes, the station's contactors never close, and the session ends."""
    if station_kind() == "josev":
        pytest.skip("the reference SECC is not configured for -20 here")
    out_code, out, _elapsed, station, _ready, _idle, _after = _pnc_run(
        link, shared_pki, tmp_path, ("--mode", "dc", "--fault", fault)
    )
    steps = [m for m in map(_STEP.match, out.splitlines()) if m is not None]
    auth = [m[3] for m in steps if m[2] == "AuthorizationRes"]
    records = [r for t in station.traces() for r in t]
    closed = [r for r in records if r.get("action") == "CloseContactors"]
    problems = []
    if auth[-1:] != [code]:
        problems.append(f"AuthorizationRes {auth}, wanted {code}")
    if closed:
        problems.append(f"the contactors were closed: {closed}")
    if any(m[2] in ("DC_PreChargeRes", "DC_ChargeLoopRes") for m in steps):
        problems.append("the session went on to power transfer")
    if not _VEHICLE_OK.search(station.log()):
        problems.append("no mutual TLS (the refusal must be the signature's, not the TLS's)")
    SUMMARY.append(f"iso20-dc-pnc-{fault} (secc ev) vs secc run: {auth[-1:]}, exit {out_code}")
    assert not problems, "; ".join(problems) + "\n" + out[-3000:] + station.log()[-3000:]
