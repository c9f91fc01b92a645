"""After the DC insulation test (cable check) the runtime switches the power module off
and discharges its output (IEC 61851-23: pre-charge starts from a discharged output),
before the EVSE status carrying the test's result reaches the session, hence before the
CableCheck answer that reports Finished and before PreCharge: ISO 15118-2, DIN SPEC 70121
and ISO 15118-20, through the real station (loopback sockets, the EV simulators, the
simulated board behind a recording power module).  A failed test also switches off; a
module without ``discharge_output`` is switched off only; a failing discharge ends the
session before the cable check is reported finished."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hal.api import Board
from hal.backends.simulated import Plant, SimDcSupply, build_board
from hal.types import DcLimits, DcPresent, HalTimeoutError, IsolationReading, IsolationStatus
from secc.aio.ev_client import EvResult, run_ev
from secc.core.actions import EndReason
from secc.core.config import Timers
from secc.ev.iso20 import Ev20Script
from secc.runtime import Evse, Station
from tests.station.conftest import EVSE_ID, evse, run, script, station_config, wait_until

SAFE_VOLTAGE = 60.0  # V: a discharged DC output
PROTOCOLS = ("iso2-dc", "iso20-dc", "din")
Log = list[tuple[Any, ...]]


class RecordingSupply:
    """The simulated power module, every command recorded (in order with the station's
    trace records, all on one event loop)."""

    def __init__(self, inner: SimDcSupply, log: Log) -> None:
        self.inner, self.log = inner, log

    async def set_target(self, voltage_v: float, current_a: float) -> None:
        self.log.append(("hal", "set_target", voltage_v, current_a))
        await self.inner.set_target(voltage_v, current_a)

    async def enable(self, on: bool) -> None:
        self.log.append(("hal", "enable", on))
        await self.inner.enable(on)

    async def present(self) -> DcPresent:
        return await self.inner.present()

    async def limits(self) -> DcLimits:
        return await self.inner.limits()


class DischargingSupply(RecordingSupply):
    """A module with an output discharge (``hal.api.DcOutputDischarge``)."""

    def __init__(self, inner: SimDcSupply, log: Log, *, fails: bool = False) -> None:
        super().__init__(inner, log)
        self.fails = fails

    async def discharge_output(self, timeout: float = 5.0) -> None:
        self.log.append(("hal", "discharge_output"))
        if self.fails:
            raise HalTimeoutError("output still above 60 V")
        await self.inner.discharge_output(timeout)


class RecordingImd:
    def __init__(self, inner: Any, log: Log) -> None:
        self.inner, self.log = inner, log

    async def start(self) -> None:
        self.log.append(("hal", "imd_start"))
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def read(self) -> IsolationReading:
        return await self.inner.read()  # type: ignore[no-any-return]


class SilentImd(RecordingImd):
    """An IMD whose test never gives a result (the station's CableCheck limit runs out)."""

    async def read(self) -> IsolationReading:
        return IsolationReading(IsolationStatus.INVALID)


class ContinuousImd(RecordingImd):
    """An IMD that monitors all the time: it reads Valid before any test was started
    too, and each reading takes a little while (so readings may straddle a start)."""

    async def read(self) -> IsolationReading:
        await asyncio.sleep(0.003)
        return IsolationReading(IsolationStatus.VALID, 10e6)


def _board(
    log: Log, supply: type[RecordingSupply], imd: type[RecordingImd] = RecordingImd, **kw: Any
) -> tuple[Board, Plant]:
    board, plant = build_board()
    assert isinstance(board.dc_supply, SimDcSupply)
    board.dc_supply = supply(board.dc_supply, log, **kw)
    board.isolation = imd(board.isolation, log)
    return board, plant


def _observer(log: Log) -> Any:
    def observe(evse_id: str, record: dict[str, Any]) -> None:
        kind = record.get("kind")
        if kind == "fact" and record["event"] == "EvseStatus":
            fields = record["fields"]
            log.append(("status", fields["isolation"], fields["present_voltage"]))
        elif kind in ("rx", "tx"):
            log.append((kind, record["name"], record.get("summary") or {}))
        elif kind == "action":
            log.append(("action", record["action"]))

    return observe


def _ev_script(protocol: str) -> Any:
    if protocol == "iso20-dc":
        return Ev20Script(
            mode="dc", think_time=0.0, poll_interval=0.05, loop_interval=0.02,
            precharge_interval=0.02, charge_loops=3,
        )  # fmt: skip
    return script("dc", protocol="din" if protocol == "din" else "iso2")


def _session(
    board: Board, tmp_path: Path, protocol: str, log: Log, **changes: Any
) -> tuple[EvResult, Evse]:
    section = evse(protocols=("iso20-dc", "iso2", "din"), iso20_allow_tcp=True, **changes)

    async def main() -> tuple[EvResult, Evse]:
        config = station_config(tmp_path / "no-pki", None, section)
        config = replace(config, certs=replace(config.certs, store=None))
        async with Station(config, boards={EVSE_ID: board}, observer=_observer(log)) as st:
            e = st.evse(EVSE_ID)
            result = await run_ev(_ev_script(protocol), host="::1", port=e.ports["tcp"], tls=False)
            await wait_until(lambda: bool(e.ended) and e.active is None, timeout=20)
            return result, e

    return run(main, timeout=60)


def _first(log: Log, predicate: Any, after: int = -1) -> int:
    for i, entry in enumerate(log):
        if i > after and predicate(entry):
            return i
    raise AssertionError(f"not in the log: {predicate}; log: {log}")


def _cable_check_res(entry: tuple[Any, ...]) -> bool:
    return entry[0] == "tx" and str(entry[1]).endswith("CableCheckRes")


def _finished(entry: tuple[Any, ...]) -> bool:
    """A CableCheck answer reporting the test passed (OK and Finished)."""
    return (
        _cable_check_res(entry)
        and str(entry[2].get("response_code")).startswith("OK")
        and "Finished" in str(entry[2].get("evse_processing"))
    )


def _volts(value: Any) -> float:
    if isinstance(value, dict):  # -20 RationalNumber
        return float(value["value"]) * 10.0 ** int(value["exponent"])
    return float(value)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_module_off_and_discharged_after_the_test_before_precharge(
    tmp_path: Path, protocol: str
) -> None:
    log: Log = []
    board, plant = _board(log, DischargingSupply)
    result, e = _session(board, tmp_path, protocol, log)
    assert e.ended[-1].end.reason is EndReason.EV_STOP, (e.ended[-1], result.ended)
    start = _first(log, lambda x: x == ("hal", "imd_start"))
    off = _first(log, lambda x: x == ("hal", "enable", False), start)
    discharge = _first(log, lambda x: x == ("hal", "discharge_output"), start)
    result_seen = _first(log, lambda x: x[0] == "status" and x[1] in ("Valid", "Warning"), start)
    finished = _first(log, _finished)
    precharge_req = _first(log, lambda x: x[0] == "rx" and x[1].endswith("PreChargeReq"))
    precharge_target = _first(log, lambda x: x == ("action", "SetDcTarget"))
    assert start < off < discharge < result_seen < finished < precharge_req < precharge_target
    # once, and nothing switched the module on again between the test and the pre-charge
    assert [x for x in log if x == ("hal", "discharge_output")] == [("hal", "discharge_output")]
    assert not [x for x in log[discharge:precharge_target] if x == ("hal", "enable", True)]
    assert plant.output_discharges == 1
    # the first PreCharge answer reports the discharged output the station measured
    first = log[_first(log, lambda x: x[0] == "tx" and x[1].endswith("PreChargeRes"))]
    assert _volts(first[2]["evse_present_voltage"]) < SAFE_VOLTAGE, first
    assert not plant.dc_enabled  # and off at the end of the session


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_failed_insulation_test_also_switches_off(tmp_path: Path, protocol: str) -> None:
    log: Log = []
    board, plant = _board(log, DischargingSupply)
    plant.isolation_ohm = 10e3  # 20 ohm/V at 500 V: a fault
    _, e = _session(board, tmp_path, protocol, log)
    assert e.ended[-1].end.reason is not EndReason.EV_STOP
    start = _first(log, lambda x: x == ("hal", "imd_start"))
    off = _first(log, lambda x: x == ("hal", "enable", False), start)
    discharge = _first(log, lambda x: x == ("hal", "discharge_output"), start)
    fault_seen = _first(log, lambda x: x[0] == "status" and x[1] == "Fault", start)
    refused = _first(
        log, lambda x: _cable_check_res(x) and x[2].get("response_code") == "FAILED", start
    )
    assert start < off < discharge < fault_seen < refused
    assert not [x for x in log if _finished(x) or x == ("action", "SetDcTarget")]
    assert not plant.dc_enabled and plant.output_discharges == 1


def test_a_module_without_output_discharge_is_switched_off(tmp_path: Path) -> None:
    log: Log = []
    board, plant = _board(log, RecordingSupply)
    _, e = _session(board, tmp_path, "iso2-dc", log)
    assert e.ended[-1].end.reason is EndReason.EV_STOP
    start = _first(log, lambda x: x == ("hal", "imd_start"))
    off = _first(log, lambda x: x == ("hal", "enable", False), start)
    result_seen = _first(log, lambda x: x[0] == "status" and x[1] == "Valid", start)
    assert start < off < result_seen < _first(log, _finished)
    assert plant.output_discharges == 0


def test_a_failing_discharge_ends_the_session_before_precharge(tmp_path: Path) -> None:
    log: Log = []
    board, plant = _board(log, DischargingSupply, fails=True)
    _, e = _session(board, tmp_path, "iso2-dc", log)
    end = e.ended[-1].end
    assert end.reason is EndReason.EVSE_FAULT and "60 V" in end.detail, end
    _first(log, lambda x: x == ("hal", "discharge_output"))
    assert not [x for x in log if _finished(x) or x == ("action", "SetDcTarget")]
    assert not plant.dc_enabled


def test_a_session_ending_during_the_test_switches_off_and_discharges(tmp_path: Path) -> None:
    """The IMD never gives a result: the station's CableCheck limit ends the session, and
    the end of the aborted test switches the module off and discharges the output."""
    log: Log = []
    board, plant = _board(log, DischargingSupply, SilentImd)
    timers = Timers(sequence_timeout=5.0, cable_check=0.5)
    _, e = _session(board, tmp_path, "iso2-dc", log, timers=timers)
    assert e.ended[-1].end.reason is EndReason.TIMEOUT, e.ended[-1]
    start = _first(log, lambda x: x == ("hal", "imd_start"))
    off = _first(log, lambda x: x == ("hal", "enable", False), start)
    assert start < off < _first(log, lambda x: x == ("hal", "discharge_output"), start)
    assert not [x for x in log if _finished(x) or x == ("action", "SetDcTarget")]
    assert not plant.dc_enabled and plant.output_discharges == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_monitor_valid_before_the_test_is_not_its_result(tmp_path: Path, protocol: str) -> None:
    """An IMD reading Valid before the cable check (and while it is being started) is
    reported Invalid: only a reading after the start is the test's result, so the cable
    check is not reported finished before the module was switched off and discharged."""
    log: Log = []
    board, plant = _board(log, DischargingSupply, ContinuousImd)
    _, e = _session(board, tmp_path, protocol, log)
    assert e.ended[-1].end.reason is EndReason.EV_STOP, e.ended[-1]
    discharge = _first(log, lambda x: x == ("hal", "discharge_output"))
    valid = _first(log, lambda x: x[0] == "status" and x[1] == "Valid")
    assert _first(log, lambda x: x == ("hal", "imd_start")) < discharge < valid
    assert (
        discharge < _first(log, _finished) < _first(log, lambda x: x == ("action", "SetDcTarget"))
    )
    assert plant.output_discharges == 1
