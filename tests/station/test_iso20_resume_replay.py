"""``secc replay`` of paused and resumed ISO 15118-20 sessions, recorded by a whole
station on loopback (mutual TLS 1.3): the EV pauses (SessionStopReq Pause), comes back
with the paused SessionID and is joined (OK_OldSessionJoined) straight at
ChargeParameterDiscovery ([V2G20-2097] AC, [V2G20-2098] DC), EIM and Plug & Charge.  The
resumed session's trace must carry what the join depends on (the paused session's
authorization, selected service and control mode, and the vehicle certificate that binds
it to the EV, [V2G20-2545]) so that the replay reproduces every response."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from hal.backends.simulated import build_board
from secc.aio.ev_client import EvResult, run_ev
from secc.cli.replay import main as replay
from secc.core.actions import EndReason
from secc.ev.iso20 import Ev20Script
from secc.ev.pnc2 import pki_dir_files
from secc.ev.pnc20 import Ev20Credentials, load_credentials20
from secc.runtime import Evse, Station
from tests.station.conftest import EVSE_ID, evse, run, station_config, wait_until

ISO20 = ("iso20-dc", "iso20-ac", "iso2")


def ev20(mode: str, **changes: object) -> Ev20Script:
    base = Ev20Script(
        mode=mode,
        charge_loops=2,
        think_time=0.0,
        poll_interval=0.05,
        loop_interval=0.02,
        precharge_interval=0.02,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def vehicle_tls(pki_dir: Path) -> tuple[Path, Path]:
    files = pki_dir_files(pki_dir, "iso20")
    return files["vehicle_chain"], files["vehicle_key"]


def credentials(pki_dir: Path) -> Ev20Credentials:
    files = pki_dir_files(pki_dir, "iso20")
    return load_credentials20(
        None,
        contract_chain=files["contract_chain"],
        contract_key=files["contract_key"],
        v2g_roots=[files["v2g_root"]],
    )


async def session(
    e: Evse, pki_dir: Path, script: Ev20Script, creds: Ev20Credentials | None
) -> EvResult:
    count = len(e.ended)
    result = await run_ev(
        script,
        host="::1",
        port=e.ports["tls"],
        tls=True,
        cafile=pki_dir_files(pki_dir, "iso20")["v2g_root"],
        client_cert=vehicle_tls(pki_dir),
        credentials=creds,
    )
    await wait_until(lambda: len(e.ended) > count and e.active is None, timeout=20)
    return result


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(("mode", "payment"), [("dc", "eim"), ("ac", "pnc"), ("dc", "pnc")])
def test_resumed_iso20_session_replays(
    pki_dir: Path, tmp_path: Path, mode: str, payment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    creds = credentials(pki_dir) if payment == "pnc" else None

    async def main() -> tuple[Evse, list[EvResult]]:
        config = station_config(pki_dir, tmp_path, evse(protocols=ISO20))
        async with Station(config, boards={EVSE_ID: build_board()[0]}) as st:
            e = st.evse(EVSE_ID)
            first = await session(e, pki_dir, ev20(mode, payment=payment, stop="Pause"), creds)
            assert e.paused is not None, first.ended
            paused = e.paused.session_id
            second = await session(
                e, pki_dir, ev20(mode, payment=payment, resume_session=paused), creds
            )
            return e, [first, second]

    e, results = run(main, timeout=90)
    first, second = results
    assert first.ended == "done" and second.ended == "done", (first.ended, second.ended)
    assert [s.end.reason for s in e.ended] == [EndReason.EV_PAUSE, EndReason.EV_STOP]
    names = [s.response for s in second.steps]
    assert second.steps[1].code == "OK_OldSessionJoined"
    # joined: no authorization, no service discovery [V2G20-2097] [V2G20-2098]
    assert names[2] == f"{mode.upper()}_ChargeParameterDiscoveryRes", names
    assert "AuthorizationRes" not in names and "ServiceDiscoveryRes" not in names
    assert f"{mode.upper()}_ChargeLoopRes" in names
    assert e.ended[0].session_id == e.ended[1].session_id
    paths = [s.trace for s in e.ended]
    assert all(p is not None for p in paths)
    header = records(paths[1])[0]  # type: ignore[arg-type]
    resume = header["resume"]
    assert isinstance(resume, dict)
    assert resume["authorized"] is True and resume["service_id"] == (2 if mode == "dc" else 1)
    assert resume["vehicle_certificate"]  # mutual TLS: the vehicle leaf binds the session
    for path in paths:
        assert replay([str(path)], prog="secc replay") == 0
    out = capsys.readouterr().out
    assert out.count("identical") == 2, out


def test_replay_of_a_resume_without_its_vehicle_binding_differs(
    pki_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same resumed trace with the paused session's vehicle certificate removed: the
    core now sets up a new session (another EV may not join, [V2G20-2545]) and draws a
    SessionID the trace never recorded: reported as a difference, and the replay ends
    (the core would draw again and again for a usable SessionID)."""

    async def main() -> Evse:
        config = station_config(pki_dir, tmp_path, evse(protocols=ISO20))
        async with Station(config, boards={EVSE_ID: build_board()[0]}) as st:
            e = st.evse(EVSE_ID)
            await session(e, pki_dir, ev20("dc", stop="Pause"), None)
            assert e.paused is not None
            await session(e, pki_dir, ev20("dc", resume_session=e.paused.session_id), None)
            return e

    e = run(main, timeout=90)
    path = e.ended[1].trace
    assert path is not None
    lines = records(path)
    resume = lines[0]["resume"]
    assert isinstance(resume, dict)
    resume["vehicle_certificate"] = None
    changed = tmp_path / "changed.jsonl"
    changed.write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert replay([str(changed)], prog="secc replay") == 1
    out = capsys.readouterr().out
    assert "DIFFERS" in out and "random bytes more than recorded" in out, out
