"""``[[evse]] din_evse_id``: a station file sets the EVSEID DIN SPEC 70121 cars receive.

The file is parsed by the real loader, the station serves DIN over TCP on loopback and the
EV simulator runs a DIN session; the EVSEID is read twice: as the EV decoded it, and from
the SessionSetupRes EXI in the station's trace, decoded again with the codec.  A bad value
stops ``secc run`` with one line naming the file and the key."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from secc import codec
from secc.aio.ev_client import run_ev_sdp
from secc.config import load_file, parse
from secc.errors import ConfigError
from secc.runtime import Station
from secc.sdp import Security
from tests.station.conftest import run, script
from tests.station.test_run_cli import secc_run

EVSE = """
[[evse]]
evse_id = "{evse_id}"
{din}
address = "::1"
tls_port = -1
tcp_port = 0
sdp_port = 0
energy_modes = ["DC_extended"]
protocols = ["din"]
[evse.hal]
backend = "simulated"
control = "none"
"""
LONGEST = "+" + "49*" + "1" * 61  # 64 characters without the '+': 32 octets


def _file(directory: Path, *evses: tuple[str, str | None]) -> Path:
    text = f'[station]\ntrace_dir = "{directory / "traces"}"\n'
    for evse_id, din in evses:
        key = f'din_evse_id = "{din}"' if din is not None else ""
        text += EVSE.format(evse_id=evse_id, din=key)
    path = directory / "secc.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("evse_id", "din", "expected"),
    [
        ("DE*ABC*E1234567*1", "+49*89*6360", "49a89a6360"),  # the key, '+' dropped
        ("DE*ABC*E1234567*1", "49*810*000*438", "49a810a000a438"),
        ("DE*ABC*E1234567*1", LONGEST, "49a" + "1" * 61),  # 32 octets: the XSD's bound
        ("DE*ABC*E1234567*1", None, "00"),  # absent, ISO-style evse_id: DIN's "no ID"
        ("+49*89*6360", None, "49a89a6360"),  # absent, evse_id of the DIN form
    ],
)
def test_a_din_car_receives_the_files_evse_id(
    tmp_path: Path, evse_id: str, din: str | None, expected: str
) -> None:
    config = load_file(_file(tmp_path, (evse_id, din)))
    assert config.evse[0].din_evse_id == din

    async def main() -> tuple[str, bytes]:
        async with Station(config) as station:
            e = station.evse(evse_id)
            assert e.sdp is not None
            result = await run_ev_sdp(
                script("dc", protocol="din"),
                security=Security.NONE,
                address="::1",
                sdp_port=e.sdp.port,
            )
        assert result.ended == "done", result.ended
        setup = next(s for s in result.steps if s.response == "SessionSetupRes")
        assert setup.code == "OK_NewSessionEstablished"
        names = [s.response for s in result.steps]
        assert names.count("CurrentDemandRes") == 3 and names[-1] == "SessionStopRes"
        trace = next((tmp_path / "traces").glob("*.jsonl"))
        records = [json.loads(line) for line in trace.read_text().splitlines()]
        tx = next(r for r in records if r["kind"] == "tx" and r["name"] == "SessionSetupRes")
        assert tx["schema"] == "din"
        message = codec.decode(bytes.fromhex(tx["exi"]), "din")
        return str(setup.summary["evseid"]), bytes(message.body.body_element.evseid)

    summary, sent = run(main)
    assert sent.hex() == expected
    # the EV's summary shows up to 16 octets as hex, longer ones by their size
    assert summary == (expected if len(sent) <= 16 else f"<{len(sent)} bytes>")


def test_two_evses_of_one_file_each_send_their_own(tmp_path: Path) -> None:
    path = _file(tmp_path, ("DE*ABC*E1234567*1", "+49*89*6360*1"), ("DE*ABC*E1234567*2", None))
    config = load_file(path)

    async def main() -> list[str]:
        seen = []
        async with Station(config) as station:
            for evse_id in ("DE*ABC*E1234567*1", "DE*ABC*E1234567*2"):
                e = station.evse(evse_id)
                assert e.sdp is not None
                result = await run_ev_sdp(
                    script("dc", protocol="din"),
                    security=Security.NONE,
                    address="::1",
                    sdp_port=e.sdp.port,
                )
                setup = next(s for s in result.steps if s.response == "SessionSetupRes")
                seen.append(str(setup.summary["evseid"]))
        return seen

    assert run(main) == ["49a89a6360a1", "00"]


@pytest.mark.parametrize(
    "bad",
    [
        "DE*ABC*E1234567*1",  # the ISO form: letters
        "",
        "49**89",  # an empty group
        "*49*89",
        "49*89*",
        "49-89-6360",
        "++49*89",
        "1" * 65,  # 33 octets: over the XSD's maxLength 32
    ],
)
def test_a_bad_din_evse_id_names_the_file_and_key(bad: str) -> None:
    text = EVSE.format(evse_id="DE*ABC*E1234567*1", din=f'din_evse_id = "{bad}"')
    with pytest.raises(ConfigError) as info:
        parse(tomllib.loads(text), "secc.toml")
    message = str(info.value)
    assert message.startswith(f"secc.toml: evse[0]: din_evse_id {bad!r}: a DIN SPEC 91286")
    assert "\n" not in message


def test_a_din_evse_id_of_another_type_is_refused() -> None:
    text = EVSE.format(evse_id="DE*ABC*E1234567*1", din="din_evse_id = 4989")
    with pytest.raises(ConfigError, match=r"^secc.toml: evse\[0\].din_evse_id must be a string"):
        parse(tomllib.loads(text), "secc.toml")


def test_secc_run_refuses_a_bad_din_evse_id_in_one_line(tmp_path: Path) -> None:
    config = _file(tmp_path, ("DE*ABC*E1234567*1", "DE*ABC*E1234567*1"))
    for argv in ((), ("--check",)):
        done = secc_run(config, *argv)
        assert done.returncode == 1, done.stderr
        assert done.stderr.splitlines() == [
            f"secc run: error: {config}: evse[0]: din_evse_id 'DE*ABC*E1234567*1': a DIN SPEC "
            "91286 EVSE ID, digit groups joined by '*' (e.g. \"+49*89*6360\"), at most 64 "
            "characters without the '+' (DIN SPEC 70121 packs one per half octet into at most "
            "32 octets)"
        ], done.stderr
