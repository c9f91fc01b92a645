"""A request with a value outside its XSD facet, through the real V2G server and driver:
the station answers it, and the session trace's rx record lists the violation."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hal.backends.simulated import build_board
from secc import codec
from secc.ev.iso2 import EvSimulator
from secc.runtime import Station
from secc.v2gtp import Framer, encode_frame
from tests.station.conftest import EVSE_ID, evse, run, script, station_config

EVCC_ID = bytes.fromhex("0a0b0c0d0e0f1011")  # 8 octets; evccIDType allows 6


def test_over_long_evcc_id_is_answered_and_traced(pki_dir: Path, tmp_path: Path) -> None:
    board, _ = build_board()
    iso2 = codec.schema_module("iso2")
    request = iso2.V2G_Message(
        header=iso2.MessageHeader(session_id=bytes(8)),
        body=iso2.Body(body_element=iso2.SessionSetupReq(evccid=EVCC_ID)),
    )
    exi = codec.encode(request, lenient=True)
    answers: list[object] = []

    async def exchange(reader: asyncio.StreamReader, framer: Framer) -> bytes:
        while True:
            frames = framer.feed(await asyncio.wait_for(reader.read(4096), 5))
            if frames:
                return bytes(frames[0].payload)

    async def main() -> None:
        config = station_config(pki_dir, tmp_path, evse())
        async with Station(config, boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            reader, writer = await asyncio.open_connection("::1", e.ports["tcp"])
            framer = Framer()
            sap = EvSimulator(script("ac")).start()
            writer.write(encode_frame(codec.encode(sap.message)))
            await exchange(reader, framer)
            writer.write(encode_frame(exi))
            answers.append(codec.decode(await exchange(reader, framer), "iso2"))
            writer.close()

    run(main)
    (res,) = answers
    body = res.body.body_element  # type: ignore[attr-defined]
    assert type(body).__name__ == "SessionSetupRes" and body.response_code.value.startswith("OK")
    records = [json.loads(line) for line in next(tmp_path.glob("*.jsonl")).read_text().splitlines()]
    (rx,) = [r for r in records if r["kind"] == "rx" and r["name"] == "SessionSetupReq"]
    assert rx["exi"] == exi.hex()
    assert rx["violations"] == [
        {
            "path": "/V2G_Message/Body/SessionSetupReq/EVCCID",
            "facet": "maxLength",
            "limit": 6,
            "value": EVCC_ID.hex(),
        }
    ]
    # the handshake's record has none
    assert all("violations" not in r for r in records if r is not rx)
