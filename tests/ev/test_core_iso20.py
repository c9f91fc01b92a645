"""The ISO 15118-20 EV against the real core (``SeccSession``) through the real codec on
a fake clock (``secc.testing.harness.run_session``): AC and DC, scheduled and dynamic,
to a normal end; the station's stop reaches the EV as EVSENotification Terminate; a
power module that never reaches the PreCharge target ends the session on a timer."""

from __future__ import annotations

import pytest

from secc.core.actions import CloseContactors, EndReason, OpenContactors, SetDcTarget
from secc.core.config import (
    ISO20_AC_NAMESPACE,
    ISO20_DC_NAMESPACE,
    SessionConfig,
)
from secc.core.events import StopRequested
from secc.ev.iso20 import Ev20Script, Ev20Simulator
from secc.testing.evse import FakeEvse
from secc.testing.harness import run_session

CONFIG = SessionConfig(protocols=(ISO20_DC_NAMESPACE, ISO20_AC_NAMESPACE), iso20_allow_tcp=True)


def script(mode: str, control: str, **changes: object) -> Ev20Script:
    base = {"think_time": 0.01, "poll_interval": 0.2, "loop_interval": 0.1}
    return Ev20Script(mode=mode, control=control, **(base | changes))  # type: ignore[arg-type]


@pytest.mark.parametrize("control", ["scheduled", "dynamic"])
def test_dc_session_with_the_core(control: str) -> None:
    out = run_session(CONFIG, script("dc", control, charge_loops=4))
    ev = out.ev
    assert isinstance(ev, Ev20Simulator)
    assert ev.error is None, (ev.error, out.responses)
    assert out.end is not None and out.end.reason is EndReason.EV_STOP
    assert all(not code.startswith(("FAILED", "WARNING")) for _, code in out.responses)
    names = [n for n in out.requests if n != "AuthorizationReq"]  # polled: any number
    assert names[:8] == [
        "supportedAppProtocolReq",
        "SessionSetupReq",
        "AuthorizationSetupReq",
        "ServiceDiscoveryReq",
        "ServiceDetailReq",
        "ServiceSelectionReq",
        "DC_ChargeParameterDiscoveryReq",
        "ScheduleExchangeReq",
    ]
    assert "AuthorizationReq" in out.requests
    assert names.count("DC_ChargeLoopReq") == 4
    assert names[-1] == "SessionStopReq" and "DC_WeldingDetectionReq" in names
    assert ev.precharge_finished and ev.welding_finished
    kinds = out.kinds()
    assert kinds.index("CloseContactors") < kinds.index("OpenContactors")
    assert any(isinstance(a, SetDcTarget) for _, a in out.actions)
    if control == "scheduled":
        assert ev.schedule_tuple_id is not None
    # the EV asked for 100 A at 400 V; the fake power module delivered it
    assert ev.evse_voltage is not None and ev.evse_voltage < ev.script.safe_voltage


@pytest.mark.parametrize("control", ["scheduled", "dynamic"])
def test_ac_session_with_the_core(control: str) -> None:
    out = run_session(CONFIG, script("ac", control, charge_loops=3))
    ev = out.ev
    assert isinstance(ev, Ev20Simulator)
    assert ev.error is None, (ev.error, out.responses)
    assert out.end is not None and out.end.reason is EndReason.EV_STOP
    assert out.requests.count("AC_ChargeLoopReq") == 3
    assert "DC_CableCheckReq" not in out.requests
    closes = [a for _, a in out.actions if isinstance(a, CloseContactors)]
    opens = [a for _, a in out.actions if isinstance(a, OpenContactors)]
    assert closes and opens


def test_station_stop_reaches_the_ev_as_terminate() -> None:
    out = run_session(
        CONFIG,
        script("dc", "dynamic", charge_loops=10_000),
        events=[(20.0, StopRequested("remote stop"))],
    )
    ev = out.ev
    assert isinstance(ev, Ev20Simulator)
    assert ev.error is None, ev.error
    assert "Terminate" in ev.notifications
    assert 0 < ev.loops < 10_000
    assert out.requests[-1] == "SessionStopReq" and ev.responses[-1] == ("SessionStopRes", "OK")


def test_power_module_that_never_precharges_ends_the_session() -> None:
    """The fake power module ramps at 0 V/s: the EV gives up after its PreCharge timeout
    and neither side waits forever."""
    ev_script = script("dc", "scheduled", precharge_timeout=5.0)  # inside the station's 7 s
    out = run_session(CONFIG, ev_script, evse=FakeEvse(ramp=0.0), max_time=120)
    ev = out.ev
    assert isinstance(ev, Ev20Simulator)
    assert ev.done
    assert out.end is not None
    assert "PowerDeliveryReq" not in out.requests
    assert ev.error is not None
    assert ev.error.startswith("PreCharge not finished within 5 s: the EV gives up (the EVSE")
    # the EV went silent: the station ends the session on its own timer
    assert out.end.reason in (EndReason.SEQUENCE_TIMEOUT, EndReason.TIMEOUT)
