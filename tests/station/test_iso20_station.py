"""ISO 15118-20 at a whole station on loopback: `secc ev --protocol iso20` (a subprocess,
the EV simulator written from the standard) charges AC and DC, scheduled and dynamic,
with external identification over TLS 1.3 to SessionStop; the station's trace shows the
TLS 1.3 connection, the -20 chain and the -20 schemas.  An EVSE not offering -20 serves
the same EV TLS 1.2 and so never -20; a -2 EV at a -20 EVSE still gets -2."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import sys
from pathlib import Path

import pytest

from hal.backends.simulated import build_board
from secc import codec
from secc.codec._generated import apphand, iso20_common, iso20_dc
from secc.core.actions import EndReason
from secc.runtime import Evse, Station
from secc.v2gtp import Framer, PayloadType, encode_frame
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


# --- the TLS 1.3 gate and the payload types, with a hand-made EV --------------------------

ISO20_DC_NS = "urn:iso:std:iso:15118:-20:DC"


def _sap_iso20_only() -> bytes:
    sap = apphand.supportedAppProtocolReq(
        app_protocol=(
            apphand.AppProtocol(
                protocol_namespace=ISO20_DC_NS,
                version_number_major=1,
                version_number_minor=0,
                schema_id=5,
                priority=1,
            ),
        )
    )
    return encode_frame(codec.encode(sap))


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, frame: bytes
) -> tuple[int, bytes]:
    writer.write(frame)
    framer = Framer(allowed_types=list(PayloadType))
    while True:
        data = await asyncio.wait_for(reader.read(65536), 10)
        assert data, "the station closed the connection"
        frames = framer.feed(data)
        if frames:
            return frames[0].payload_type, frames[0].payload


def _tls_client(pki_dir: Path, tls12: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(str(pki_dir / "v2g/root.pem"))
    ctx.load_verify_locations(str(pki_dir / "v2g20/root.pem"))
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


@pytest.mark.parametrize(
    ("transport", "allow_tcp", "negotiated"),
    [
        ("tls13", False, True),
        ("tls12", False, False),  # never -20 over TLS 1.2
        ("tcp", False, False),
        ("tcp", True, True),  # lab switch
    ],
)
def test_iso20_only_over_tls13_or_the_lab_switch(
    pki_dir: Path, transport: str, allow_tcp: bool, negotiated: bool
) -> None:
    board, _ = build_board()
    section = evse(protocols=ALL, iso20_allow_tcp=allow_tcp)

    async def main() -> list[tuple[int, object]]:
        async with Station(station_config(pki_dir, None, section), boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            if transport == "tcp":
                reader, writer = await asyncio.open_connection("::1", e.ports["tcp"])
            else:
                reader, writer = await asyncio.open_connection(
                    "::1",
                    e.ports["tls"],
                    ssl=_tls_client(pki_dir, transport == "tls12"),
                    server_hostname=None,
                )
                want = "TLSv1.3" if transport == "tls13" else "TLSv1.2"
                assert writer.get_extra_info("ssl_object").version() == want
            out: list[tuple[int, object]] = []
            ptype, payload = await _exchange(reader, writer, _sap_iso20_only())
            out.append((ptype, codec.decode(payload, "apphand")))
            if negotiated:
                setup = iso20_common.SessionSetupReq(
                    header=iso20_common.MessageHeader(session_id=b"\x00", time_stamp=1),
                    evccid="WMIV1234567890ABC",
                )
                ptype, payload = await _exchange(
                    reader, writer, encode_frame(codec.encode(setup), 0x8002)
                )
                res = codec.decode(payload, "iso20-common")
                out.append((ptype, res))
                # a DC message out of sequence: answered in the DC schema's payload type
                cable = iso20_dc.DC_CableCheckReq(
                    header=iso20_dc.MessageHeader(session_id=res.header.session_id, time_stamp=2)
                )
                ptype, payload = await _exchange(
                    reader, writer, encode_frame(codec.encode(cable), 0x8004)
                )
                out.append((ptype, codec.decode(payload, "iso20-dc")))
            writer.close()
            return out

    answers = run(main, timeout=40)
    ptype, sap_res = answers[0]
    assert ptype == 0x8001 and isinstance(sap_res, apphand.supportedAppProtocolRes)
    if not negotiated:
        assert sap_res.response_code is apphand.ResponseCode.Failed_NoNegotiation
        return
    assert sap_res.response_code is apphand.ResponseCode.OK_SuccessfulNegotiation
    assert sap_res.schema_id == 5
    ptype, setup_res = answers[1]
    assert ptype == 0x8002 and isinstance(setup_res, iso20_common.SessionSetupRes)
    assert setup_res.response_code is iso20_common.ResponseCode.OK_NewSessionEstablished
    ptype, cable_res = answers[2]
    assert ptype == 0x8004 and isinstance(cable_res, iso20_dc.DC_CableCheckRes)
    assert cable_res.response_code is iso20_dc.ResponseCode.FAILED_SequenceError


def test_iso20_trace_replays(pki_dir: Path, tmp_path: Path) -> None:
    """The trace records the session's own config (TLS 1.3 negotiated), so `secc replay`
    feeds the -20 session back through the core with the same decisions."""
    from secc.cli.replay import main as replay

    board, _ = build_board()
    section = evse(protocols=ALL, iso20_control_modes=("dynamic",))

    async def main() -> int:
        async with Station(
            station_config(pki_dir, tmp_path, section), boards={EVSE_ID: board}
        ) as st:
            e = st.evse(EVSE_ID)
            code, out = await _secc_ev(
                e, pki_dir, "--tls", "--protocol", "iso20", "--mode", "dc", "--control", "dynamic"
            )
            assert code == 0, out
            await _ended(e)
            return code

    run(main, timeout=60)
    (path,) = tmp_path.glob("*.jsonl")
    assert _trace(tmp_path)[0]["config"]["tls13"] is True
    assert replay([str(path)], prog="secc replay") == 0


def _sap(*entries: tuple[str, int, int, int]) -> bytes:
    """(namespace, major, schema id, priority) entries."""
    sap = apphand.supportedAppProtocolReq(
        app_protocol=tuple(
            apphand.AppProtocol(
                protocol_namespace=ns,
                version_number_major=major,
                version_number_minor=0,
                schema_id=schema_id,
                priority=priority,
            )
            for ns, major, schema_id, priority in entries
        )
    )
    return encode_frame(codec.encode(sap))


ISO2_NS = "urn:iso:15118:2:2013:MsgDef"
DIN_NS = "urn:din:70121:2012:MsgDef"


@pytest.mark.parametrize(
    ("transport", "priorities", "chosen"),
    [
        ("tls13", (1, 2, 3), 10),  # -20 first: -20
        ("tls13", (2, 1, 3), 20),  # the EV prefers -2: -2, though -20 is offered
        ("tls12", (1, 2, 3), 20),  # -20 is never chosen over TLS 1.2: the EV's next, -2
        ("tcp", (1, 3, 2), 30),  # plain TCP: no -20 (no lab switch); DIN before -2
    ],
)
def test_the_ev_priorities_choose_among_what_the_evse_offers(
    pki_dir: Path, transport: str, priorities: tuple[int, int, int], chosen: int
) -> None:
    """An EV offering -20 DC, -2 and DIN: the station picks by the EV's priorities among
    the protocols its EVSE offers and the connection allows."""
    board, _ = build_board()
    section = evse(protocols=ALL)
    p20, p2, pdin = priorities
    frame = _sap((ISO20_DC_NS, 1, 10, p20), (ISO2_NS, 2, 20, p2), (DIN_NS, 2, 30, pdin))

    async def main() -> object:
        async with Station(station_config(pki_dir, None, section), boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            if transport == "tcp":
                reader, writer = await asyncio.open_connection("::1", e.ports["tcp"])
            else:
                reader, writer = await asyncio.open_connection(
                    "::1",
                    e.ports["tls"],
                    ssl=_tls_client(pki_dir, transport == "tls12"),
                    server_hostname=None,
                )
            ptype, payload = await _exchange(reader, writer, frame)
            writer.close()
            assert ptype == 0x8001
            return codec.decode(payload, "apphand")

    res = run(main, timeout=40)
    assert isinstance(res, apphand.supportedAppProtocolRes)
    assert res.response_code is apphand.ResponseCode.OK_SuccessfulNegotiation
    assert res.schema_id == chosen


def test_after_session_stop_the_station_waits_for_the_ev_to_close(pki_dir: Path) -> None:
    """[V2G20-1633]: after SessionStopRes the SECC waits at least 5 s before it closes
    the TCP connection (the EV closes first); requests meanwhile get no answer.  An EV
    that keeps the connection open sees it still open 3 s later (a loaded machine can
    only make the station later), and closed by the station afterwards."""
    board, _ = build_board()
    section = evse(protocols=ALL, iso20_allow_tcp=True)

    async def main() -> tuple[object, bytes, bytes]:
        async with Station(station_config(pki_dir, None, section), boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            reader, writer = await asyncio.open_connection("::1", e.ports["tcp"])
            await _exchange(reader, writer, _sap_iso20_only())
            setup = iso20_common.SessionSetupReq(
                header=iso20_common.MessageHeader(session_id=b"\x00", time_stamp=1),
                evccid="WMIV1234567890ABC",
            )
            _, payload = await _exchange(reader, writer, encode_frame(codec.encode(setup), 0x8002))
            sid = codec.decode(payload, "iso20-common").header.session_id
            stop = iso20_common.SessionStopReq(
                header=iso20_common.MessageHeader(session_id=sid, time_stamp=2),
                charging_session=iso20_common.ChargingSession.Terminate,
            )
            _, payload = await _exchange(reader, writer, encode_frame(codec.encode(stop), 0x8002))
            res = codec.decode(payload, "iso20-common")
            await wait_until(lambda: bool(e.ended), timeout=20)
            # still open: a read times out instead of returning EOF
            early = b""
            with contextlib.suppress(TimeoutError):
                early = await asyncio.wait_for(reader.read(65536), 3.0) or b"EOF"
            writer.write(encode_frame(codec.encode(stop), 0x8002))  # not answered
            late = await asyncio.wait_for(reader.read(65536), 30.0)
            writer.close()
            return res, early, late

    res, early, late = run(main, timeout=60)
    assert isinstance(res, iso20_common.SessionStopRes)
    assert res.response_code is iso20_common.ResponseCode.OK
    assert early == b""  # neither closed nor answered within 3 s of SessionStopRes
    assert late == b""  # then the station closed it, without answering the late request
