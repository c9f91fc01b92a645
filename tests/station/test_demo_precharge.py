"""``secc demo``'s DC sessions pre-charge from a discharged output: the first PreCharge
answer (ISO 15118-20 DC_PreChargeRes, ISO 15118-2 PreChargeRes) reports the output as the
station measured it after the cable check (discharged: 0 V on the simulated module), never
the cable-check voltage; the answers rise to the EV's target and end within its
tolerance.  Read from the demo's session traces (what went on the wire and the EVSE
status the station had measured before each answer)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EV_TOLERANCE = 10.0  # V: both EV simulators end PreCharge within this of their target
SAFE_VOLTAGE = 60.0  # V: a discharged DC output


def _volts(value: Any) -> float:
    """A summary's voltage: -20 RationalNumber {exponent, value} or a -2 number."""
    if isinstance(value, dict):
        return float(value["value"]) * 10.0 ** int(value["exponent"])
    return float(value)


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [sys.executable, "-m", "secc.cli.main", "demo", "--dir", str(directory)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return directory / "traces"


@pytest.mark.parametrize(
    ("evse", "prefix"),
    [
        ("DE-ABC-E1234567-3", "DC_"),  # ISO 15118-20 DC, EIM
        ("DE-ABC-E1234567-4", "DC_"),  # ISO 15118-20 DC_BPT, Plug & Charge
        ("DE-ABC-E1234567-2", ""),  # ISO 15118-2 DC, EIM
    ],
)
def test_precharge_starts_from_the_discharged_output(traces: Path, evse: str, prefix: str) -> None:
    (path,) = traces.glob(f"*_{evse}_*.jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    measured: float | None = None  # the last EVSE status the station had read
    cable_check_voltage: float | None = None
    answers: list[tuple[float, float | None]] = []  # (PreChargeRes voltage, measured before)
    targets: list[float] = []
    for r in records:
        if r["kind"] == "fact" and r["event"] == "EvseStatus":
            measured = r["fields"]["present_voltage"]
        elif r["kind"] == "action" and r["action"] == "StartIsolationTest":
            cable_check_voltage = r["fields"]["voltage"]
        elif r["kind"] == "rx" and r["name"] == f"{prefix}PreChargeReq":
            targets.append(_volts(r["summary"]["ev_target_voltage"]))
        elif r["kind"] == "tx" and r["name"] == f"{prefix}PreChargeRes":
            answers.append((_volts(r["summary"]["evse_present_voltage"]), measured))
    assert cable_check_voltage is not None and len(answers) >= 2, answers
    target = targets[-1]
    assert cable_check_voltage > target + EV_TOLERANCE  # else the old fault would not show
    voltages = [v for v, _ in answers]
    # the first answer: the discharged output, not the cable-check voltage
    assert voltages[0] < SAFE_VOLTAGE, voltages
    # every answer is what the station measured, rising to the EV's target
    assert all(v == m for v, m in answers), answers
    assert voltages == sorted(voltages), voltages
    assert abs(voltages[-1] - target) <= EV_TOLERANCE, (voltages, target)
    assert max(voltages) <= target + EV_TOLERANCE, voltages
