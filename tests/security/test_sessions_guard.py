"""Issue 15: a connection cannot end a running session; Contract payment and the
certificate service are decided per connection; a stream whose root is not a message
ends cleanly.  In-process station on loopback (real sockets, TLS, codec, core)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import ssl
from pathlib import Path
from typing import Any

import pytest

from hal.backends.simulated import build_board
from secc import codec
from secc.aio.ev_client import EvResult, run_ev
from secc.cli.ev import load_credentials
from secc.core.actions import EndReason
from secc.ev.iso2 import EvFaults
from secc.limits import Limits
from secc.runtime import Station
from secc.v2gtp import encode_frame
from tests.security.peers import (
    SAP_FRAME,
    close_all,
    exchange,
    idle_connects,
    setup_frame,
    tls_connects,
)
from tests.station.conftest import EVSE_ID, evse, run, script, station_config, wait_until

EV_EVCCID = bytes.fromhex("0a0b0c0d0e0f")  # the EV simulator's


def test_connections_do_not_end_a_charging_session(pki_dir: Path) -> None:
    """While an EV charges: bare TCP connects on both ports, TLS handshakes with no
    data, a SessionSetupReq of another EV and one of the same EVCCID while it still
    talks.  None of them ends the session or opens the contactors."""
    board, plant = build_board()

    async def main() -> None:
        config = station_config(pki_dir, None, evse())
        async with Station(config, boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            result = EvResult(ev=None)  # type: ignore[arg-type]
            ev = asyncio.create_task(
                run_ev(script("ac", charge_loops=60, loop_interval=0.05), host="::1",
                       port=e.ports["tls"], tls=True, cafile=pki_dir / "v2g" / "root.pem",
                       result=result)
            )  # fmt: skip
            await wait_until(lambda: any(s.response == "ChargingStatusRes" for s in result.steps))
            assert plant.contactor_command
            held = await idle_connects(e.ports["tcp"], 20)
            held += await idle_connects(e.ports["tls"], 20)
            held += await tls_connects(e.ports["tls"], 10, pki_dir / "v2g" / "root.pem")
            answers = []
            for evcc_id in (bytes.fromhex("020000000099"), EV_EVCCID):
                reader, writer = await asyncio.open_connection("::1", e.ports["tcp"])
                assert await exchange(reader, writer, SAP_FRAME) is not None
                answers.append(await exchange(reader, writer, setup_frame(evcc_id)))
                writer.close()
            assert answers == [None, None]  # refused: the connection closed, no session
            assert plant.contactor_command and not ev.done()
            await close_all(held)
            await asyncio.wait_for(ev, 30)
            assert result.ended == "done", result.ended
            names = [s.response for s in result.steps]
            assert names.count("ChargingStatusRes") == 60
            charged = [s for s in e.ended if s.end.reason is EndReason.EV_STOP]
            assert len(charged) == 1
            assert not any("superseded" in s.end.detail or "replaced" in s.end.detail
                           for s in e.ended)  # fmt: skip

    run(main, timeout=60)


def _records(kind: str, name: str, records: list[dict[str, Any]]) -> list[Any]:
    out = []
    for r in records:
        if r.get("kind") == kind and r.get("name") == name:
            out.append(codec.decode(bytes.fromhex(r["exi"]), r["schema"]).body.body_element)
    return out


@pytest.mark.parametrize("tls", [False, True])
def test_contract_payment_only_over_tls(pki_dir: Path, tls: bool) -> None:
    """The plain TCP port is EIM only: no Contract in the PaymentOptionList, and an EV
    choosing Contract anyway is refused with the contactors open.  Over TLS Contract is
    offered.  The certificate service is not advertised (no back end can serve it)."""
    board, plant = build_board()
    records: list[dict[str, Any]] = []

    async def main() -> None:
        config = station_config(pki_dir, None, evse())
        observer = lambda _evse, record: records.append(record)  # noqa: E731
        async with Station(config, boards={EVSE_ID: board}, observer=observer) as st:
            e = st.evse(EVSE_ID)
            creds = load_credentials(pki_dir, dt.datetime.now(dt.UTC))
            ev = script("ac", payment="Contract", credentials=creds,
                        faults=EvFaults(payment="Contract"))  # fmt: skip
            result = await run_ev(
                ev, host="::1", port=e.ports["tls" if tls else "tcp"], tls=tls,
                cafile=pki_dir / "v2g" / "root.pem",
            )  # fmt: skip
            (discovery,) = _records("tx", "ServiceDiscoveryRes", records)
            options = [p.value for p in discovery.payment_option_list.payment_option]
            services = discovery.service_list.service if discovery.service_list else ()
            assert all(s.service_category.value != "ContractCertificate" for s in services)
            if tls:
                assert options == ["Contract", "ExternalPayment"]
                assert result.ended == "done", result.ended
            else:
                assert options == ["ExternalPayment"]
                codes = [s.code for s in result.steps]
                assert codes[-1] == "FAILED_PaymentSelectionInvalid", result.steps
                assert not any(s.response == "PaymentDetailsRes" for s in result.steps)
                assert not plant.contactor_command

    run(main)


def test_a_stream_whose_root_is_not_a_message_ends_cleanly(
    pki_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``8044037800`` is a complete ISO 15118-2 EXI stream whose root is another global
    element: the connection closes with one warning, no traceback, and the next EV
    charges."""
    board, _plant = build_board()

    async def main() -> None:
        config = station_config(pki_dir, None, evse())
        async with Station(config, boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            reader, writer = await asyncio.open_connection("::1", e.ports["tcp"])
            assert await exchange(reader, writer, SAP_FRAME) is not None
            frame = encode_frame(bytes.fromhex("8044037800"))
            assert await exchange(reader, writer, frame) is None
            writer.close()
            await wait_until(lambda: bool(e.ended))
            assert e.ended[-1].end.reason is EndReason.CONNECTION_LOST
            result = await run_ev(script("ac"), host="::1", port=e.ports["tcp"], tls=False)
            assert result.ended == "done"

    with caplog.at_level(logging.INFO):
        run(main)
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "root is" in warnings[0], warnings


def test_limits_validate() -> None:
    with pytest.raises(ValueError, match="max_handshakes"):
        Limits(max_connections=2, max_handshakes=3)


@pytest.mark.parametrize("offer", ["tls13_only", "other_suite"])
def test_refused_handshake_ends_with_a_tls_alert(pki_dir: Path, offer: str) -> None:
    """An EV offering only TLS 1.3, or only a suite outside ISO 15118-2, gets a fatal
    TLS alert (protocol_version / handshake_failure), not a bare reset."""
    board, _plant = build_board()
    errors: list[str] = []

    async def main() -> None:
        async with Station(station_config(pki_dir, None, evse()), boards={EVSE_ID: board}) as st:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            if offer == "tls13_only":
                ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            else:
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2
                ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
            try:
                async with asyncio.timeout(10):
                    await asyncio.open_connection("::1", st.evse(EVSE_ID).ports["tls"], ssl=ctx)
            except (ssl.SSLError, OSError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    run(main)
    expected = "ALERT_PROTOCOL_VERSION" if offer == "tls13_only" else "ALERT_HANDSHAKE_FAILURE"
    assert len(errors) == 1 and expected in errors[0], errors


def test_the_session_trace_records_the_plc_link(pki_dir: Path, tmp_path: Path) -> None:
    """The PLC link's state when the session starts (SLAC match, link confirmation)
    is written to the session trace."""
    board, _plant = build_board()

    async def main() -> None:
        config = station_config(pki_dir, tmp_path, evse())
        async with Station(config, boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            result = await run_ev(script("ac"), host="::1", port=e.ports["tcp"], tls=False)
            assert result.ended == "done"
            await wait_until(lambda: bool(e.ended))

    run(main)
    (trace,) = tmp_path.glob("*.jsonl")
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    links = [r for r in records if r["kind"] == "link"]
    assert len(links) == 1 and "state" in links[0], links
