"""``kill -9`` of the station during a transaction, with a message in flight at the CSMS,
then a restart while the CSMS is down, another kill, and a final restart: the CSMS ends up
with every TransactionEvent of the transaction exactly once and in order."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.ocpp.csms import Behaviour, TestCsms, wait_for

ROOT = Path(__file__).resolve().parents[2]


async def spawn(directory: Path, url: str, mode: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.ocpp.station_proc",
        str(directory),
        url,
        mode,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )


async def expect(proc: asyncio.subprocess.Process, line: str) -> None:
    assert proc.stdout is not None
    got = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert got.decode().strip() == line


async def kill9(proc: asyncio.subprocess.Process) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert await proc.wait() == -signal.SIGKILL


def test_kill_9_mid_transaction_then_restart(tmp_path: Path) -> None:
    async def main() -> None:
        b = Behaviour()
        csms = TestCsms(behaviour=b)
        await csms.start()
        port = csms.port
        # 1. charging; once 6 events are in, the CSMS stops answering and the station dies
        #    with the 7th received by the CSMS but not acknowledged
        station = await spawn(tmp_path, csms.url, "charge")
        try:
            await expect(station, "charging")
            await wait_for(lambda: len(csms.tx_raw) >= 6, 20)
            b.tx_delay = 30.0
            seen = len(csms.tx_raw)
            await wait_for(lambda: len(csms.tx_raw) == seen + 1, 20)
        finally:
            await kill9(station)
        in_flight = csms.tx_raw[-1]
        await csms.stop()
        b.tx_delay = 0.0
        # 2. restart while the CSMS is down: the open transaction is ended (PowerLoss) into
        #    the outbox; killed again before it could send anything
        station = await spawn(tmp_path, csms.url, "idle")
        try:
            await expect(station, "up")
        finally:
            await kill9(station)
        # 3. the CSMS is back; the station restarts and delivers everything
        await csms.start(port)
        station = await spawn(tmp_path, csms.url, "idle")
        try:
            await expect(station, "up")
            await expect(station, "drained")
        finally:
            await kill9(station)
        await csms.stop()

        stream = csms.transaction_stream()  # asserts every repeat is byte-identical
        assert [e["seqNo"] for e in stream] == list(range(len(stream)))
        assert stream[0]["eventType"] == "Started"
        assert stream[-1]["eventType"] == "Ended"
        assert stream[-1]["transactionInfo"]["stoppedReason"] == "PowerLoss"
        assert stream[-1]["offline"] is True  # it happened while the CSMS was down
        assert len({e["transactionInfo"]["transactionId"] for e in stream}) == 1
        # the message in flight at the kill was resent once, with the same id and payload
        repeats = [m for m in csms.tx_raw if m == in_flight]
        assert len(repeats) == 2
        assert len(csms.tx_raw) == len(stream) + 1

    asyncio.run(asyncio.wait_for(main(), 90))
