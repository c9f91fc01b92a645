"""Whole sessions over real sockets on loopback: SDP → TCP/TLS → driver → core → simulated
HAL board, with the EV simulator on the other end; end reasons, contactors, traces."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from hal.backends.simulated import Plant, build_board
from hal.types import ContactorState, CpState, Duty
from secc import codec
from secc.aio.ev_client import EvResult, Step, run_ev, run_ev_sdp
from secc.cli.ev import load_credentials
from secc.cli.replay import main as replay_main
from secc.config import AuthorizationSection, HalSection
from secc.core.actions import EndReason
from secc.core.config import Timers
from secc.ev.iso2 import EvFaults, EvSimulator
from secc.limits import Limits
from secc.runtime import Evse, Station
from secc.sdp import Security
from secc.v2gtp import Framer, encode_frame
from tests.station.conftest import EVSE_ID, evse, run, script, station_config, wait_until

LOOP_NAMES = {"ChargingStatusRes", "CurrentDemandRes"}


async def _ended(e: Evse) -> EndReason:
    await wait_until(lambda: bool(e.ended) and e.active is None)
    return e.ended[-1].end.reason


def _assert_full(result: EvResult, loop: str) -> None:
    names = [s.response for s in result.steps]
    assert result.ended == "done", result.ended
    assert names[0] == "supportedAppProtocolRes" and names[-1] == "SessionStopRes"
    assert names.count(loop) == 3
    assert all(not s.code.startswith("FAILED") for s in result.steps)


@pytest.mark.parametrize(
    ("mode", "security", "protocol"),
    [
        ("ac", Security.NONE, "iso2"),
        ("ac", Security.TLS, "iso2"),
        ("dc", Security.TLS, "iso2"),
        ("dc", Security.NONE, "din"),
    ],
)
def test_full_session_eim(
    pki_dir: Path, tmp_path: Path, mode: str, security: Security, protocol: str
) -> None:
    board, plant = build_board()

    async def main() -> None:
        config = station_config(pki_dir, tmp_path, evse())
        async with Station(config, boards={EVSE_ID: board}) as station:
            e = station.evse(EVSE_ID)
            assert e.sdp is not None
            result = await run_ev_sdp(
                script(mode, protocol=protocol),
                security=security,
                address="::1",
                sdp_port=e.sdp.port,
                cafile=pki_dir / "v2g" / "root.pem",
            )
            assert result.sdp is not None and result.sdp.security is security
            assert result.tls == (security is Security.TLS)
            if result.tls:
                assert result.cipher == "ECDHE-ECDSA-AES128-SHA256"
            loop = "CurrentDemandRes" if mode == "dc" else "ChargingStatusRes"
            if protocol == "din":
                assert [s.response for s in result.steps].count(loop) == 3
            else:
                _assert_full(result, loop)
            assert await _ended(e) is EndReason.EV_STOP
            assert plant.contactor_feedback is ContactorState.OPEN
            assert not plant.dc_enabled
            if mode == "dc":
                demands = [s for s in result.steps if s.response == "CurrentDemandRes"]
                assert demands[-1].summary["evse_present_voltage"] == 400.0
            traces = e.trace_files
        assert len(traces) == 1
        records = [json.loads(line) for line in traces[0].read_text().splitlines()]
        assert records[0]["kind"] == "session" and records[0]["tls"] == result.tls
        rx = [r["name"] for r in records if r["kind"] == "rx"]
        assert rx[0] == "supportedAppProtocolReq"
        assert records[-1] == {**records[-1], "kind": "end", "reason": "ev_stop"}

    run(main)
    assert replay_main([str(next(tmp_path.glob("*.jsonl")))], prog="secc replay") == 0


def _plug_in(plant: Plant) -> None:
    plant.ev_state = CpState.B


def test_ac_plug_and_charge_over_tls_with_iec61851_control(pki_dir: Path, tmp_path: Path) -> None:
    """CP B → 5 % → SDP → TLS → PnC (contract chain checked against the store's MO root)
    → contactors closed by the charging control only in CP C → open at the end."""
    board, plant = build_board()
    section = evse(hal=HalSection(control="iec61851"), tcp_port=-1)
    closed_while_charging: list[bool] = []

    async def main() -> None:
        config = station_config(pki_dir, tmp_path, section)
        async with Station(config, boards={EVSE_ID: board}) as station:
            e = station.evse(EVSE_ID)
            _plug_in(plant)
            await wait_until(lambda: plant.duty == Duty.hlc())
            plant.ev_state = CpState.C
            await wait_until(lambda: e.runner is not None and e.runner.control.cp is CpState.C)
            creds = load_credentials(pki_dir, dt.datetime.now(dt.UTC))
            assert e.sdp is not None

            def on_step(step: Step) -> None:
                if step.response == "ChargingStatusRes":
                    closed_while_charging.append(plant.contactor_command)

            result = await run_ev_sdp(
                script("ac", payment="Contract", credentials=creds),
                security=Security.TLS,
                address="::1",
                sdp_port=e.sdp.port,
                cafile=pki_dir / "v2g" / "root.pem",
                on_step=on_step,
            )
            _assert_full(result, "ChargingStatusRes")
            assert "PaymentDetailsRes" in [s.response for s in result.steps]
            assert await _ended(e) is EndReason.EV_STOP
            assert e.runner is not None
            await wait_until(
                lambda: e.runner is not None and e.runner.control.phase.value == "done"
            )
        assert plant.contactor_feedback is ContactorState.OPEN

    run(main)
    assert closed_while_charging and all(closed_while_charging)


def test_ev_vanishes_mid_current_demand(pki_dir: Path) -> None:
    """A TCP reset during CurrentDemand: DC output off, contactors open, session ended
    with connection_lost, well within the sequence timeout."""
    board, plant = build_board()

    async def main() -> None:
        config = station_config(pki_dir, None, evse())
        async with Station(config, boards={EVSE_ID: board}) as station:
            e = station.evse(EVSE_ID)
            assert e.sdp is not None

            # the EV vanishes where its next CurrentDemandReq was due (contactors closed)
            faults = EvFaults(vanish_before="CurrentDemandReq")
            loop = asyncio.get_running_loop()
            result = await run_ev(
                script("dc", faults=faults), host="::1", port=e.ports["tcp"], tls=False
            )
            assert result.steps[-1].response == "PowerDeliveryRes"  # contactors closed
            gone = loop.time()
            assert result.ended.startswith("vanished")
            reason = await _ended(e)
            took = loop.time() - gone
            assert reason is EndReason.CONNECTION_LOST
            # well before V2G_SECC_Sequence_Timeout (5 s here) could have ended it
            assert took < 5.0, took
            assert plant.contactor_feedback is ContactorState.OPEN
            assert not plant.dc_enabled

    run(main)


def test_ev_vanishes_while_charging_current_demand(pki_dir: Path) -> None:
    """The EV closes its connection (FIN) after several CurrentDemand cycles."""
    board, plant = build_board()

    async def main() -> None:
        config = station_config(pki_dir, None, evse())
        async with Station(config, boards={EVSE_ID: board}) as station:
            e = station.evse(EVSE_ID)
            result = EvResult(ev=None)  # type: ignore[arg-type]
            ev = asyncio.create_task(
                run_ev(
                    script("dc", charge_loops=10_000, loop_interval=0.01),
                    host="::1",
                    port=e.ports["tcp"],
                    tls=False,
                    result=result,
                )
            )
            await wait_until(
                lambda: sum(s.response == "CurrentDemandRes" for s in result.steps) > 3
            )
            assert plant.contactor_command and plant.dc_enabled
            ev.cancel()  # the EV task dies; its socket is reset below
            with pytest.raises(asyncio.CancelledError):
                await ev
            driver = next(iter(e.drivers))
            driver.conn._transport.abort()
            assert await _ended(e) is EndReason.CONNECTION_LOST
            assert plant.contactor_feedback is ContactorState.OPEN
            assert not plant.dc_enabled

    run(main)


def test_silent_ev_hits_the_sequence_timeout(pki_dir: Path) -> None:
    board, _ = build_board()
    section = evse(timers=Timers(sequence_timeout=0.5))

    async def main() -> None:
        async with Station(station_config(pki_dir, None, section), boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            task = asyncio.create_task(
                run_ev(
                    script("ac", faults=EvFaults(stall_before="PowerDeliveryReq")),
                    host="::1",
                    port=e.ports["tcp"],
                    tls=False,
                    response_timeout=3.0,
                )
            )
            assert await _ended(e) is EndReason.SEQUENCE_TIMEOUT
            result = await task
            assert "station closed" in result.ended

    run(main)


def test_local_policy_rejects_eim(pki_dir: Path) -> None:
    board, _ = build_board()

    async def main() -> None:
        config = station_config(pki_dir, None, evse())
        config = type(config)(
            evse=config.evse,
            station=config.station,
            certs=config.certs,
            authorization=AuthorizationSection(eim="reject"),
        )
        async with Station(config, boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            result = await run_ev(script("ac"), host="::1", port=e.ports["tcp"], tls=False)
            assert result.steps[-1].response == "AuthorizationRes"
            assert result.steps[-1].code.startswith("FAILED")
            assert await _ended(e) is EndReason.FAILED_RESPONSE

    run(main)


def test_two_evses_charge_at_once(pki_dir: Path) -> None:
    boards = {"DE*ABC*E1234567*1": build_board(), "DE*ABC*E1234567*2": build_board()}

    async def main() -> None:
        sections = [evse(i) for i in boards]
        config = station_config(pki_dir, None, *sections)
        async with Station(config, boards={k: b for k, (b, _) in boards.items()}) as st:
            results = await asyncio.gather(
                *(
                    run_ev_sdp(
                        script(mode),
                        security=Security.TLS,
                        address="::1",
                        sdp_port=st.evse(i).sdp.port,  # type: ignore[union-attr]
                        cafile=pki_dir / "v2g" / "root.pem",
                    )
                    for i, mode in zip(boards, ("ac", "dc"), strict=True)
                )
            )
            for result, loop in zip(
                results, ("ChargingStatusRes", "CurrentDemandRes"), strict=True
            ):
                _assert_full(result, loop)
            for i in boards:
                assert await _ended(st.evse(i)) is EndReason.EV_STOP
                header = st.evse(i).ended[0].evse_id
                assert header == i

    run(main)


def test_shutdown_mid_charge_opens_contactors_and_flushes_trace(
    pki_dir: Path, tmp_path: Path
) -> None:
    board, plant = build_board()

    async def main() -> None:
        station = Station(station_config(pki_dir, tmp_path, evse()), boards={EVSE_ID: board})
        await station.start()
        e = station.evse(EVSE_ID)
        result = EvResult(ev=None)  # type: ignore[arg-type]
        ev = asyncio.create_task(
            run_ev(
                script("dc", charge_loops=10_000),
                host="::1",
                port=e.ports["tcp"],
                tls=False,
                result=result,
            )
        )
        await wait_until(lambda: any(s.response == "CurrentDemandRes" for s in result.steps))
        assert plant.contactor_command
        await station.aclose()
        assert plant.contactor_feedback is ContactorState.OPEN and not plant.dc_enabled
        assert e.ended and e.ended[-1].end.reason in (
            EndReason.CONNECTION_LOST,
            EndReason.STATION_STOP,
        )
        await asyncio.wait_for(ev, 5)

    run(main)
    lines = next(tmp_path.glob("*.jsonl")).read_text().splitlines()
    assert json.loads(lines[-1])["kind"] == "end"


def test_rcd_trip_while_charging_ends_with_evse_fault(pki_dir: Path) -> None:
    board, plant = build_board()
    section = evse(hal=HalSection(control="iec61851"))

    async def main() -> None:
        async with Station(station_config(pki_dir, None, section), boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            plant.ev_state = CpState.B
            await wait_until(lambda: plant.duty == Duty.hlc())
            plant.ev_state = CpState.C
            await wait_until(lambda: e.runner is not None and e.runner.control.cp is CpState.C)
            result = EvResult(ev=None)  # type: ignore[arg-type]
            ev = asyncio.create_task(
                run_ev(
                    script("ac", charge_loops=10_000),
                    host="::1",
                    port=e.ports["tcp"],
                    tls=False,
                    result=result,
                )
            )
            await wait_until(lambda: any(s.response == "ChargingStatusRes" for s in result.steps))
            assert plant.contactor_command
            plant.trip_rcd()
            assert await _ended(e) is EndReason.EVSE_FAULT
            assert "rcd_tripped" in e.ended[-1].end.detail
            assert plant.contactor_feedback is ContactorState.OPEN
            await asyncio.wait_for(ev, 5)

    run(main)


def test_undecodable_request_ends_the_session(pki_dir: Path, tmp_path: Path) -> None:
    """Garbage EXI after the handshake: the connection closes, the session ends (contactors
    open) and the trace keeps the bytes."""
    board, plant = build_board()

    async def main() -> None:
        async with Station(
            station_config(pki_dir, tmp_path, evse()), boards={EVSE_ID: board}
        ) as st:
            e = st.evse(EVSE_ID)
            reader, writer = await asyncio.open_connection("::1", e.ports["tcp"])
            sap = EvSimulator(script("ac")).start()
            writer.write(encode_frame(codec.encode(sap.message)))
            framer = Framer()
            while not framer.feed(await reader.read(1000)):
                pass
            writer.write(encode_frame(b"\x80\x98\xff\xff\xff"))
            assert await asyncio.wait_for(reader.read(1000), 5) == b""  # closed by the station
            assert await _ended(e) is EndReason.CONNECTION_LOST
            assert "undecodable" in e.ended[-1].end.detail
            assert plant.contactor_feedback is ContactorState.OPEN
            writer.close()

    run(main)
    records = [json.loads(line) for line in next(tmp_path.glob("*.jsonl")).read_text().splitlines()]
    bad = [r for r in records if r["kind"] == "undecodable"]
    assert bad and bad[0]["exi"] == "8098ffffff"


def test_secc_ev_cli_against_a_station(pki_dir: Path) -> None:
    """`secc ev` (a subprocess) charges DC with Plug & Charge over TLS at a station here."""
    board, _ = build_board()

    async def main() -> tuple[int, str]:
        async with Station(station_config(pki_dir, None, evse()), boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            assert e.sdp is not None
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "secc.cli.main", "ev", "--address", "::1",
                "--sdp-port", str(e.sdp.port), "--tls", "--mode", "dc", "--payment", "pnc",
                "--pki", str(pki_dir), "--loops", "2",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            out, _ = await asyncio.wait_for(proc.communicate(), 30)
            assert await _ended(e) is EndReason.EV_STOP
            return proc.returncode or 0, out.decode()

    code, out = run(main, timeout=40)
    assert code == 0, out
    assert "PaymentDetailsRes" in out and out.count("CurrentDemandRes") == 2
    assert "EV: done (TLSv1.2 ECDHE-ECDSA-AES128-SHA256)" in out


def test_a_reconnecting_ev_replaces_its_silent_session(pki_dir: Path) -> None:
    """One session per EVSE: an EV that reconnects while its old connection still looks
    open (silent) gets a new session by its SessionSetupReq (same EVCCID); the old one
    ends and the contactors open in between.  A connection alone ends nothing
    (tests/security/test_sessions_guard.py)."""
    board, plant = build_board()

    async def main() -> None:
        limits = Limits(replace_after_silence=0.5)
        config = station_config(pki_dir, None, evse(limits=limits))
        async with Station(config, boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            first = EvResult(ev=None)  # type: ignore[arg-type]
            silent = script("ac", faults=EvFaults(stall_before="ChargingStatusReq"))
            old = asyncio.create_task(
                run_ev(silent, host="::1", port=e.ports["tcp"], tls=False, result=first)
            )
            await wait_until(lambda: any(s.response == "PowerDeliveryRes" for s in first.steps))
            assert plant.contactor_command
            await asyncio.sleep(0.6)  # the old connection has been silent long enough
            second = await run_ev(script("dc"), host="::1", port=e.ports["tcp"], tls=False)
            _assert_full(second, "CurrentDemandRes")
            await asyncio.wait_for(old, 5)
            assert "closed" in first.ended
            reasons = [s.end.reason for s in e.ended]
            assert reasons == [EndReason.CONNECTION_LOST, EndReason.EV_STOP]
            assert "replaced" in e.ended[0].end.detail
            assert plant.contactor_feedback is ContactorState.OPEN

    run(main)


class _BuggyContactors:
    """A backend bug: closing raises something that is not a HalError."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def close(self, timeout: float = 1.0) -> None:
        raise RuntimeError("driver bug")

    async def open(self, timeout: float = 1.0) -> None:
        await self.inner.open(timeout)

    async def feedback(self) -> ContactorState:
        result: ContactorState = await self.inner.feedback()
        return result


def test_an_internal_error_ends_the_session_with_open_contactors(pki_dir: Path) -> None:
    board, plant = build_board()
    board.contactors = _BuggyContactors(board.contactors)

    async def main() -> None:
        async with Station(station_config(pki_dir, None, evse()), boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            result = await run_ev(script("dc"), host="::1", port=e.ports["tcp"], tls=False)
            assert "closed" in result.ended
            assert await _ended(e) is EndReason.CONNECTION_LOST
            assert "internal error: RuntimeError: driver bug" in e.ended[-1].end.detail
            assert plant.contactor_feedback is ContactorState.OPEN and not plant.dc_enabled

    run(main)
