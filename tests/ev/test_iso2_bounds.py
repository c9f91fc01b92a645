"""The -2/DIN EV bounds every wait as the standard bounds it, against a deliberately bad
station (tests/ev/spec_secc2.py, written from the standards): EVSEProcessing=Ongoing
forever in Authorization / ContractAuthentication, ChargeParameterDiscovery and CableCheck,
a PreCharge that reports 1 V, a station that never answers.  First sans-I/O with the
EV's clock (the standard's full timers, no waiting), then over real sockets with
``secc ev`` and the library runner."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from typing import Any

import pytest

from secc import codec
from secc.aio.ev_client import run_ev
from secc.cli.ev import main as ev_main
from secc.core.events import Schema
from secc.ev.iso2 import EvScript, EvSimulator, Outgoing, evse_id_text
from tests.ev.spec_secc2 import BadSecc

DC = EvScript(energy_mode="DC_extended", think_time=0.0, poll_interval=0.5, charge_loops=2)


def _roundtrip(message: Any, schema: str) -> Any:
    return codec.decode(codec.encode(message), schema)


def drive(script: EvScript, secc: BadSecc) -> tuple[EvSimulator, list[tuple[float, str]]]:
    """Run the EV against ``secc`` on the EV's clock: each answer 10 ms after its request."""
    ev = EvSimulator(script)
    step: Outgoing | None = ev.start()
    now, sent = 0.0, list[tuple[float, str]]()
    while step is not None and len(sent) < 10_000:
        now += step.delay
        sent.append((now, step.name))
        schema = "apphand" if step.schema is Schema.APPHAND else ev.schema.value
        answer = secc.answer(_roundtrip(step.message, schema))
        assert answer is not None
        now += 0.01
        step = ev.receive(_roundtrip(answer, schema), Schema(schema), now)
    return ev, sent


def test_the_timers_default_to_the_standards_values() -> None:
    s = EvScript()
    assert (s.ongoing_timeout, s.cable_check_timeout, s.precharge_timeout) == (60, 40, 7)
    iso2, din = EvSimulator(s), EvSimulator(replace(s, protocol="din"))
    # V2G_EVCC_Msg_Timeout: ISO 15118-2 Table 109, DIN SPEC 70121 Table 75
    assert iso2.message_timeout("SessionSetupReq") == 2.0
    assert iso2.message_timeout("PowerDeliveryReq") == 5.0
    assert iso2.message_timeout("CertificateInstallationReq") == 5.0
    assert iso2.message_timeout("CurrentDemandReq") == 0.25
    assert din.message_timeout("PowerDeliveryReq") == 2.0
    assert din.message_timeout("CurrentDemandReq") == 0.25


@pytest.mark.parametrize(
    ("protocol", "response", "phase", "limit"),
    [
        ("iso2", "AuthorizationRes", "Authorization", 60.0),
        ("iso2", "ChargeParameterDiscoveryRes", "ChargeParameterDiscovery", 60.0),
        ("iso2", "CableCheckRes", "CableCheck", 40.0),
        ("din", "ContractAuthenticationRes", "ContractAuthentication", 60.0),
        ("din", "ChargeParameterDiscoveryRes", "ChargeParameterDiscovery", 60.0),
        ("din", "CableCheckRes", "CableCheck", 40.0),
    ],
)
def test_ongoing_forever_ends_at_the_standards_timeout(
    protocol: str, response: str, phase: str, limit: float
) -> None:
    ev, sent = drive(replace(DC, protocol=protocol), BadSecc(protocol, ongoing={response: -1}))
    assert ev.done and ev.error == f"{phase} not finished within {limit:g} s: the EV gives up"
    request = response[:-3] + "Req"
    times = [t for t, name in sent if name == request]
    assert len(times) > 10  # it did poll
    assert times[-1] - times[0] <= limit  # never asked past the timer
    assert times[-1] - times[0] > limit - 1.0  # and used it
    assert sent[-1][1] == request  # nothing after: the session ends there


@pytest.mark.parametrize("protocol", ["iso2", "din"])
def test_ongoing_for_a_while_then_finished_charges(protocol: str) -> None:
    ongoing = {"ChargeParameterDiscoveryRes": 3, "CableCheckRes": 5}
    ongoing["AuthorizationRes" if protocol == "iso2" else "ContractAuthenticationRes"] = 2
    ev, sent = drive(replace(DC, protocol=protocol), BadSecc(protocol, ongoing=ongoing))
    assert ev.error is None and ev.responses[-1] == ("SessionStopRes", "OK")
    assert [n for _, n in sent].count("CurrentDemandReq") == 2


@pytest.mark.parametrize("protocol", ["iso2", "din"])
def test_precharge_at_1_volt_ends_at_the_precharge_timeout(protocol: str) -> None:
    ev, sent = drive(replace(DC, protocol=protocol), BadSecc(protocol, precharge_voltage=1.0))
    assert ev.done
    assert ev.error == (
        "PreCharge not finished within 7 s: the EV gives up "
        "(the EVSE reports 1 V, the EV asked 400 V)"
    )
    times = [t for t, name in sent if name == "PreChargeReq"]
    assert 7.0 - 0.5 < times[-1] - times[0] <= 7.0
    assert "PowerDeliveryReq" not in [n for _, n in sent]


def test_a_response_to_another_request_ends_the_session() -> None:
    ev = EvSimulator(DC)
    secc = BadSecc()
    step: Outgoing | None = ev.start()
    assert step is not None
    answer = secc.answer(step.message)
    step = ev.receive(answer, Schema.APPHAND, 0.0)
    assert step is not None and step.name == "SessionSetupReq"
    other = EvSimulator(DC).request("ServiceDiscoveryReq").message
    wrong = secc.answer(other)  # a ServiceDiscoveryRes, not the SessionSetupRes asked for
    assert ev.receive(wrong, Schema.ISO2, 0.1) is None
    assert ev.error == "expected SessionSetupRes, the station sent ServiceDiscoveryRes"


def test_a_refusal_ends_the_session_with_the_reason() -> None:
    ev = EvSimulator(replace(DC, protocol="din"))  # offers DIN only
    step = ev.start()
    answer = BadSecc("iso2").answer(_roundtrip(step.message, "apphand"))  # speaks -2 only
    assert ev.receive(_roundtrip(answer, "apphand"), Schema.APPHAND, 0.01) is None
    assert ev.done and ev.error == "supportedAppProtocolRes: Failed_NoNegotiation"


def test_the_din_evse_id_is_read_as_hexbinary() -> None:
    assert evse_id_text("DE*ABC*E1234567*1") == "DE*ABC*E1234567*1"  # -2: a string
    assert evse_id_text(b"\x00") == "0x00 (none)"  # DIN: "no EVSE ID"
    assert evse_id_text(bytes.fromhex("49A89A6360")) == "0x49A89A6360 (49*89*6360)"
    assert evse_id_text(bytes.fromhex("49AF")) == "0x49AF (49*)"  # odd count: F padding
    assert evse_id_text(b"DE*ABC*E1") == "0x44452A4142432A4531 (DE*ABC*E1)"
    assert evse_id_text(bytes([0xDE, 0xAD])) == "0xDEAD"


# --- over sockets ----------------------------------------------------------------------


def _serve(secc: BadSecc, body: Any) -> Any:
    """Run ``body(port)`` in a thread while ``secc`` serves on ::1; returns its result."""

    async def main() -> Any:
        server = await secc.start()
        async with server:
            async with asyncio.timeout(120):
                return await asyncio.to_thread(body, secc.port)

    return asyncio.run(main())


@pytest.mark.parametrize("protocol", ["iso2", "din"])
def test_secc_ev_stops_precharge_against_a_station_at_1_volt(
    protocol: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``secc ev --mode dc`` with the standard's timers against a station stuck at 1 V:
    the EV stops after V2G_EVCC_PreCharge_Timeout (7 s), says why, exits 1."""
    secc = BadSecc(protocol, precharge_voltage=1.0)
    argv = ["--address", "::1", "--port", "0", "--tcp", "--mode", "dc", "--protocol", protocol]

    def body(port: int) -> int:
        argv[3] = str(port)
        return ev_main(argv, "secc ev")

    code = _serve(secc, body)
    out = capsys.readouterr().out
    assert code == 1, out
    assert "EV: EV gave up: PreCharge not finished within 7 s: the EV gives up" in out
    assert "(the EVSE reports 1 V, the EV asked 400 V) (TCP)" in out
    assert "PowerDeliveryReq" not in secc.seen
    assert secc.seen.count("PreChargeReq") >= 10
    # the EVSE ID as the standard types it: DIN hexBinary (shown in hex), -2 a string
    din = "EVSE ID 0x49A89A6360 (49*89*6360)"
    shown = din if protocol == "din" else "EVSE ID DE*ABC*E1234567*1"
    assert shown in out


def test_secc_ev_target_voltage(capsys: pytest.CaptureFixture[str]) -> None:
    """``--target-voltage``: PreCharge waits for that voltage, the loop asks it."""
    secc = BadSecc("iso2", precharge_voltage=800.0)

    def body(port: int) -> int:
        argv = ["--address", "::1", "--port", str(port), "--tcp", "--mode", "dc", "--loops", "2"]
        argv += ["--msg-timeout", "10"]  # the test is about the voltage, not timing
        return ev_main([*argv, "--target-voltage", "800"], "secc ev")

    code = _serve(secc, body)
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("CurrentDemandRes") == 2 and "800 V" in out


def test_the_runner_ends_a_cable_check_that_never_finishes() -> None:
    secc = BadSecc("iso2", ongoing={"CableCheckRes": -1})
    script = replace(DC, cable_check_timeout=1.0, poll_interval=0.1)

    def body(port: int) -> Any:
        return asyncio.run(run_ev(script, host="::1", port=port, tls=False))

    result = _serve(secc, body)
    assert result.ended == "EV gave up: CableCheck not finished within 1 s: the EV gives up"
    assert result.steps[-1].response == "CableCheckRes"
    assert "PreChargeReq" not in secc.seen


def test_secc_ev_waits_the_message_timeout_for_an_answer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    secc = BadSecc("din", silent={"ServiceDiscoveryReq"})

    def body(port: int) -> int:
        return ev_main(["--address", "::1", "--port", str(port), "--tcp", "--din"], "secc ev")

    assert _serve(secc, body) == 1
    out = capsys.readouterr().out
    assert "EV: no answer to ServiceDiscoveryReq within 2 s (V2G_EVCC_Msg_Timeout)" in out


def test_msg_timeout_option_overrides_the_standard(capsys: pytest.CaptureFixture[str]) -> None:
    secc = BadSecc("iso2", silent={"SessionSetupReq"})
    done = threading.Event()

    def body(port: int) -> int:
        argv = ["--address", "::1", "--port", str(port), "--tcp", "--msg-timeout", "0.5"]
        code = ev_main(argv, "secc ev")
        done.set()
        return code

    assert _serve(secc, body) == 1 and done.is_set()
    assert "EV: no answer to SessionSetupReq within 0.5 s (TCP)" in capsys.readouterr().out
