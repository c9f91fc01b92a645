"""A request of a -20 service the station never offered, at a whole station over a real
socket: ACDP_DisconnectReq (payload type 0x8005) and a WPT request (0x8006) in a DC
session.  ISO 15118-20 answers a request not expected in the state with its own response
and FAILED_SequenceError; -20 sends each response in the payload type of its own message
set.  The station answers so, then closes the session with the contactors open; its
trace replays identically (the response element is chosen by name, ACDP Connect and
Disconnect share one type)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from hal.backends.simulated import build_board
from secc import codec
from secc.cli.replay import main as replay
from secc.codec._generated import iso20_common
from secc.core.actions import EndReason
from secc.core.failures import minimal_element
from secc.runtime import Station
from secc.v2gtp import encode_frame
from tests.station.conftest import EVSE_ID, evse, run, station_config, wait_until
from tests.station.test_iso20_station import _exchange, _sap_iso20_only


@pytest.mark.parametrize(
    ("schema", "element", "ptype"),
    [("iso20-acdp", "ACDP_DisconnectReq", 0x8005), ("iso20-wpt", "WPT_PairingReq", 0x8006)],
)
def test_unoffered_service_request_is_answered_failed_sequence_error(
    pki_dir: Path, tmp_path: Path, schema: str, element: str, ptype: int
) -> None:
    section = evse(protocols=("iso20-dc", "iso2"), iso20_allow_tcp=True)

    async def main() -> tuple[int, bytes, bytes, bool, EndReason]:
        async with Station(
            station_config(pki_dir, tmp_path, section), boards={EVSE_ID: build_board()[0]}
        ) as st:
            e = st.evse(EVSE_ID)
            reader, writer = await asyncio.open_connection("::1", e.ports["tcp"])
            await _exchange(reader, writer, _sap_iso20_only())
            setup = iso20_common.SessionSetupReq(
                header=iso20_common.MessageHeader(session_id=b"\x00", time_stamp=1),
                evccid="WMIV1234567890ABC",
            )
            _, payload = await _exchange(reader, writer, encode_frame(codec.encode(setup), 0x8002))
            sid = bytes(codec.decode(payload, "iso20-common").header.session_id)
            mod = codec.schema_module(schema)
            cls = next(r[2] for r in mod.DOCUMENT if r[1] == element)
            req = dataclasses.replace(
                minimal_element(schema, cls.__name__),
                header=mod.MessageHeader(session_id=sid, time_stamp=2),
            )
            got, answer = await _exchange(
                reader, writer, encode_frame(codec.encode(req, name=element), ptype)
            )
            closed = await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()
            await wait_until(lambda: bool(e.ended) and e.active is None, timeout=20)
            return got, answer, sid, closed, e.ended[-1].end.reason

    got, answer, sid, closed, reason = run(main, timeout=40)
    assert got == ptype  # the response in its own message set's payload type
    root, res, _ = codec.decode_checked(answer, schema)
    assert root.local == element[:-3] + "Res"
    assert res.response_code.value == "FAILED_SequenceError"
    assert bytes(res.header.session_id) == sid
    assert closed and reason is EndReason.SEQUENCE_ERROR
    (path,) = tmp_path.glob("*.jsonl")
    assert replay([str(path)], prog="secc replay") == 0
