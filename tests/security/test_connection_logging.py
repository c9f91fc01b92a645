"""Issue 15: per-connection log lines of the V2G servers are rate-limited.  1,000
connects on loopback (bare TCP connects closed at once, junk bytes on the TCP port, junk
instead of a ClientHello on the TLS port, handshakes refused for their suite) write at
most ``connection_log_lines`` lines about them plus the summaries; an EV's session that
claims the EVSE afterwards is logged in full.  In-process station (real sockets, TLS)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from pathlib import Path

import pytest

from hal.backends.simulated import build_board
from secc.aio.ev_client import run_ev
from secc.limits import Limits
from secc.runtime import Station
from tests.station.conftest import EVSE_ID, evse, run, script, station_config

LINES = 20


async def _connect(port: int, data: bytes = b"", ctx: ssl.SSLContext | None = None) -> None:
    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection("::1", port, ssl=ctx)
            if data:
                writer.write(data)
                await writer.drain()
                await reader.read(100)  # until the station closes
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()


def _foreign_suite() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")  # not the ISO 15118-2 suite
    return ctx


@pytest.mark.usefixtures("started_heap")  # as in secc run: a collection scans the station's
def test_a_connect_flood_writes_few_log_lines(
    pki_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    board, _plant = build_board()
    flood_records: list[logging.LogRecord] = []

    async def main() -> None:
        limits = Limits(connection_log_lines=LINES, connection_log_window=3600.0)
        config = station_config(pki_dir, None, evse(limits=limits))
        async with Station(config, boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            tcp, tls = e.ports["tcp"], e.ports["tls"]
            caplog.clear()
            kinds = [
                (tcp, b"", None),  # connect, close
                (tcp, b"\x01\xfe\x80\x01\x00\x00\x00\x05junk!", None),  # bad payload type
                (tls, b"GET / HTTP/1.0\r\n\r\n", None),  # not a ClientHello
                (tls, b"", _foreign_suite()),  # a handshake refused for its suite
            ]
            for i in range(0, 1000, 4):  # four at once: within the handshake limit
                await asyncio.gather(
                    *(
                        _connect(port, data, ctx)
                        for port, data, ctx in kinds[i % 4 :] + kinds[: i % 4]
                    )
                )
            flood_records.extend(r for r in caplog.records if r.name.startswith("secc"))
            budget = e.admission.log_budget
            assert budget.suppressed_total >= 900, budget.suppressed_total
            # a real EV afterwards: charges, and its session is logged in full
            caplog.clear()
            result = await run_ev(script("ac"), host="::1", port=tcp, tls=False)
            assert result.ended == "done", result.ended
            async with asyncio.timeout(10):
                while not any("session ended" in r.getMessage() for r in caplog.records):
                    await asyncio.sleep(0.02)

    with caplog.at_level(logging.INFO):
        run(main, timeout=120)
    # the admission's own lines (limits reached) are limited to one per 10 s apart
    about_connections = [
        r
        for r in flood_records
        if "not logged" not in r.getMessage() and r.name != "secc.aio.admission"
    ]
    assert len(about_connections) <= LINES, [r.getMessage() for r in about_connections]
