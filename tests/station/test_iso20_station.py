"""ISO 15118-20 at a whole station on loopback: `secc ev --protocol iso20` (a subprocess,
the EV simulator written from the standard) charges AC and DC, scheduled and dynamic,
with external identification over TLS 1.3 to SessionStop; the station's trace shows the
TLS 1.3 connection, the -20 chain and the -20 schemas.  An EVSE not offering -20 serves
the same EV TLS 1.2 and so never -20; a -2 EV at a -20 EVSE still gets -2."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from hal.backends.simulated import build_board
from secc.core.actions import EndReason
from secc.runtime import Evse, Station
from tests.station.conftest import EVSE_ID, evse, run, station_config, wait_until

ALL = ("iso20-dc", "iso20-ac", "iso2", "din")


async def _ended(e: Evse) -> EndReason:
    await wait_until(lambda: bool(e.ended) and e.active is None, timeout=20)
    return e.ended[-1].end.reason


async def _secc_ev(e: Evse, pki_dir: Path, *args: str) -> tuple[int, str]:
    assert e.sdp is not None
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "secc.cli.main", "ev", "--address", "::1",
        "--sdp-port", str(e.sdp.port), "--pki", str(pki_dir), "--loops", "3", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 40)
    return proc.returncode or 0, out.decode()


def _trace(directory: Path) -> list[dict[str, object]]:
    (path,) = directory.glob("*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("control", ["scheduled", "dynamic"])
@pytest.mark.parametrize("mode", ["ac", "dc"])
def test_iso20_session_over_tls13(pki_dir: Path, tmp_path: Path, mode: str, control: str) -> None:
    board, _ = build_board()
    section = evse(protocols=ALL, iso20_control_modes=(control,))

    async def main() -> tuple[int, str, EndReason]:
        config = station_config(pki_dir, tmp_path, section)
        async with Station(config, boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            code, out = await _secc_ev(
                e, pki_dir, "--tls", "--protocol", "iso20", "--mode", mode, "--control", control
            )
            return code, out, await _ended(e)

    code, out, ended = run(main, timeout=60)
    assert code == 0, out
    assert ended is EndReason.EV_STOP, out
    assert "SessionStopRes" in out and "TLSv1.3" in out, out
    loop = "DC_ChargeLoopRes" if mode == "dc" else "AC_ChargeLoopRes"
    assert out.count(loop) == 3, out
    records = _trace(tmp_path)
    header = records[0]
    assert header["tls"] is True
    rx = [r for r in records if r.get("kind") == "rx"]
    tx = [r for r in records if r.get("kind") == "tx"]
    assert rx[0]["schema"] == "apphand"
    assert {r["schema"] for r in rx[1:]} == {"iso20-common", f"iso20-{mode}"}
    assert {r["schema"] for r in tx[1:]} == {"iso20-common", f"iso20-{mode}"}
    assert rx[-1]["name"] == "SessionStopReq" and tx[-1]["name"] == "SessionStopRes"


def test_evse_without_iso20_never_selects_it(pki_dir: Path, tmp_path: Path) -> None:
    """Same store (with the -20 chain), EVSE offering only -2 and DIN: the -20 EV gets
    TLS 1.2 with the -2 chain and a Failed_NoNegotiation, never -20."""
    board, _ = build_board()
    section = evse(protocols=("iso2", "din"))

    async def main() -> tuple[int, str]:
        async with Station(
            station_config(pki_dir, tmp_path, section), boards={EVSE_ID: board}
        ) as st:
            e = st.evse(EVSE_ID)
            assert e.tls is not None and not e.tls.tls13
            return await _secc_ev(e, pki_dir, "--tls", "--protocol", "iso20", "--mode", "dc")

    code, out = run(main, timeout=60)
    assert code != 0, out
    assert "SessionSetupRes" not in out, out


def test_iso2_ev_at_an_iso20_evse_gets_iso2(pki_dir: Path, tmp_path: Path) -> None:
    board, _ = build_board()
    section = evse(protocols=ALL)

    async def main() -> tuple[int, str, EndReason]:
        async with Station(
            station_config(pki_dir, tmp_path, section), boards={EVSE_ID: board}
        ) as st:
            e = st.evse(EVSE_ID)
            code, out = await _secc_ev(e, pki_dir, "--tls", "--mode", "dc", "--payment", "eim")
            return code, out, await _ended(e)

    code, out, ended = run(main, timeout=60)
    assert code == 0 and ended is EndReason.EV_STOP, out
    assert "CurrentDemandRes" in out and "TLSv1.2" in out, out
    rx = [r for r in _trace(tmp_path) if r.get("kind") == "rx"]
    assert {r["schema"] for r in rx[1:]} == {"iso2"}
