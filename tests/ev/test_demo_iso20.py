"""``secc demo`` runs ISO 15118-20 DC sessions (TLS 1.3, EIM, dynamic control; and
DC_BPT with Plug & Charge over mutual TLS 1.3, charging then discharging) beside the
ISO 15118-2 ones, end to end as a subprocess; their traces replay identically."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from secc.cli.replay import main as replay

STEP = re.compile(r"\s+\d+\.\d+ s  \w")  # a timeline line: time, response, ...


def test_demo_runs_an_iso20_dc_session(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "secc.cli.main", "demo", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    _, iso20 = out.split("== ISO 15118-20: DC, EIM, TLS 1.3: EVSE DE*ABC*E1234567*3 ==")
    iso20, summary = iso20.split("traces (JSON Lines")
    iso20 = iso20.split("\n== ISO 15118-20: DC_BPT")[0]  # EVSE 4 follows
    row = r"ISO 15118-20: DC, EIM, TLS 1\.3 +EVSE DE\*ABC\*E1234567\*3  ok: ev_stop, "
    assert re.search(row, summary), summary
    steps = [line.split()[2] for line in iso20.splitlines() if STEP.match(line)]
    for name in (
        "SessionSetupRes",
        "AuthorizationSetupRes",
        "ServiceDetailRes",
        "DC_ChargeParameterDiscoveryRes",
        "ScheduleExchangeRes",
        "DC_CableCheckRes",
        "DC_PreChargeRes",
        "DC_ChargeLoopRes",
        "DC_WeldingDetectionRes",
        "SessionStopRes",
    ):
        assert name in steps, (name, iso20)
    assert steps.count("DC_ChargeLoopRes") == 5
    assert "EV: done, over TLS 1.3 " in iso20
    assert "session ended: ev_stop; contactors open" in iso20
    assert "all 4 sessions charged and ended normally" in out
    (trace,) = sorted((tmp_path / "traces").glob("*_DE-ABC-E1234567-3_*.jsonl"))
    assert str(trace) in out
    assert replay([str(trace)], prog="secc replay") == 0


def test_demo_runs_a_bidirectional_iso20_pnc_session(tmp_path: Path) -> None:
    """EVSE 4: ISO 15118-20 DC_BPT with Plug & Charge over mutual TLS 1.3 and a metering
    confirmation; the EV charges, then discharges (negative current in the timeline), and
    the summary shows the simulated plant's energy both ways (import and export
    registers); its trace replays identically."""
    done = subprocess.run(
        [sys.executable, "-m", "secc.cli.main", "demo", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    title = "ISO 15118-20: DC_BPT, Plug & Charge, mTLS 1.3"
    _, bpt = out.split(f"== {title}: EVSE DE*ABC*E1234567*4 ==")
    bpt, summary = bpt.split("traces (JSON Lines")
    assert "EV: Plug & Charge, contract " in bpt and "oem20/vehicle_chain.pem" in bpt
    lines = [line for line in bpt.splitlines() if STEP.match(line)]
    steps = [line.split()[2] for line in lines]
    codes = [line.split()[3] for line in lines]
    assert all(not c.startswith(("FAILED", "WARNING")) for c in codes), bpt
    assert "MeteringConfirmationRes" in steps
    loops = [line for line in lines if "DC_ChargeLoopRes" in line]
    assert len(loops) == 10
    assert any(" 100 A " in line for line in loops[:5]), loops
    assert all(" -20 A " in line for line in loops[-3:]), loops
    assert "EV: done, over TLS 1.3 " in bpt
    m = re.search(r"energy (\d+\.\d) Wh to the EV, (\d+\.\d) Wh back", bpt)
    assert m and float(m[1]) > 0 and float(m[2]) > 0, bpt
    row = re.escape(title) + r" +EVSE DE\*ABC\*E1234567\*4  ok: ev_stop, \d+ exchanges, "
    row += r"\d+\.\d Wh to the EV, \d+\.\d Wh back"
    assert re.search(row, summary), summary
    assert "all 4 sessions charged and ended normally" in out
    (trace,) = sorted((tmp_path / "traces").glob("*_DE-ABC-E1234567-4_*.jsonl"))
    assert replay([str(trace)], prog="secc replay") == 0
