"""``secc demo`` runs an ISO 15118-20 DC session (TLS 1.3, EIM, dynamic control) beside
the ISO 15118-2 ones, end to end as a subprocess; its trace replays identically."""

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
    assert "all 3 sessions charged and ended normally" in out
    (trace,) = sorted((tmp_path / "traces").glob("*_DE-ABC-E1234567-3_*.jsonl"))
    assert str(trace) in out
    assert replay([str(trace)], prog="secc replay") == 0
