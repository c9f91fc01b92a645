"""``secc ev --protocol iso20`` against the whole station on loopback over plain TCP (the
lab switch ``iso20_allow_tcp``), AC and DC, scheduled and dynamic; without the switch a
-20-only EV on TCP is refused in the handshake and says so.  (TLS 1.3 against the
station: tests/station/test_iso20_station.py.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hal.backends.simulated import build_board
from secc.cli.ev import main as ev_main
from secc.core.actions import EndReason
from secc.runtime import Station
from tests.station.conftest import EVSE_ID, evse, run, station_config, wait_until


def _secc_ev(port: int, *args: str) -> int:
    argv = ["--address", "::1", "--sdp-port", str(port), "--tcp", "--loops", "2", *args]
    argv += ["--msg-timeout", "10"]  # generous on a loaded test machine
    return ev_main(argv, "secc ev")


@pytest.mark.parametrize(("mode", "control"), [("dc", "dynamic"), ("ac", "scheduled")])
def test_secc_ev_iso20_over_tcp(
    pki_dir: Path, tmp_path: Path, mode: str, control: str, capsys: pytest.CaptureFixture[str]
) -> None:
    section = evse(protocols=("iso20-dc", "iso20-ac", "iso2"), iso20_allow_tcp=True)

    async def main() -> tuple[int, EndReason]:
        config = station_config(pki_dir, tmp_path, section)
        async with Station(config, boards={EVSE_ID: build_board()[0]}) as st:
            e = st.evse(EVSE_ID)
            assert e.sdp is not None
            args = ("--protocol", "iso20", "--mode", mode, "--control", control)
            code = await asyncio.to_thread(_secc_ev, e.sdp.port, *args)
            await wait_until(lambda: bool(e.ended) and e.active is None, timeout=20)
            return code, e.ended[-1].end.reason

    code, reason = run(main, timeout=60)
    out = capsys.readouterr().out
    assert code == 0, out
    assert reason is EndReason.EV_STOP
    assert out.count(f"{mode.upper()}_ChargeLoopRes") == 2
    assert "ServiceDetailRes" in out and "ScheduleExchangeRes" in out
    assert "EV: done (TCP)" in out


def test_iso20_only_ev_on_tcp_without_the_lab_switch(
    pki_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    section = evse(protocols=("iso20-dc", "iso2"))  # -20 over TLS 1.3 only

    async def main() -> int:
        config = station_config(pki_dir, tmp_path, section)
        async with Station(config, boards={EVSE_ID: build_board()[0]}) as st:
            e = st.evse(EVSE_ID)
            assert e.sdp is not None
            return await asyncio.to_thread(
                _secc_ev, e.sdp.port, "--protocol", "iso20", "--mode", "dc"
            )

    assert run(main, timeout=60) == 1
    out = capsys.readouterr().out
    assert "Failed_NoNegotiation" in out
    assert (
        "EV gave up: the station does not speak urn:iso:std:iso:15118:-20:DC "
        "(Failed_NoNegotiation)" in out
    )


@pytest.mark.parametrize("mode", ["dc", "ac"])
def test_secc_ev_iso20_pnc_over_mutual_tls(
    pki_dir: Path, tmp_path: Path, mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``secc ev --protocol iso20 --payment pnc --pki DIR`` against the whole station: SDP,
    mutual TLS 1.3 (the vehicle chain reaches the session), the contract signature verified
    by the core, a charge to the end."""
    section = evse(protocols=("iso20-dc", "iso20-ac"))
    chains: list[object] = []

    async def main() -> tuple[int, EndReason]:
        config = station_config(pki_dir, tmp_path, section)
        async with Station(config, boards={EVSE_ID: build_board()[0]}) as st:
            e = st.evse(EVSE_ID)
            assert e.sdp is not None
            args = ("--protocol", "iso20", "--mode", mode, "--payment", "pnc", "--tls")
            task = asyncio.create_task(asyncio.to_thread(_secc_ev_tls, e.sdp.port, pki_dir, *args))
            await wait_until(lambda: e.active is not None or task.done(), timeout=20)
            if e.active is not None:
                chains.append(e.active.config.vehicle_chain)
            code = await task
            await wait_until(lambda: bool(e.ended) and e.active is None, timeout=20)
            return code, e.ended[-1].end.reason

    code, reason = run(main, timeout=90)
    out = capsys.readouterr().out
    assert code == 0, out
    assert reason is EndReason.EV_STOP
    assert chains and len(chains[0]) >= 1  # type: ignore[arg-type]
    assert "AuthorizationRes" in out and "FAILED" not in out and "WARNING" not in out
    assert f"{mode.upper()}_ChargeLoopRes" in out
    assert "EV: done (TLSv1.3 " in out


def _secc_ev_tls(port: int, pki_dir: Path, *args: str) -> int:
    argv = ["--address", "::1", "--sdp-port", str(port), "--loops", "2", "--pki", str(pki_dir)]
    argv += ["--msg-timeout", "10"]  # generous on a loaded test machine
    return ev_main([*argv, *args], "secc ev")
