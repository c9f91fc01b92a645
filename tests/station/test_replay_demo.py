"""``secc replay`` over real session traces (identical, then with a changed input or
configuration, then broken files) and ``secc demo`` end to end as a subprocess."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hal.backends.simulated import build_board
from secc.aio.ev_client import run_ev
from secc.cli.ev import load_credentials
from secc.cli.replay import main as replay
from secc.runtime import Station
from tests.station.conftest import EVSE_ID, evse, run, script, station_config, wait_until


@pytest.fixture(scope="module")
def traces(pki_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One DC EIM session over TCP and one AC Plug & Charge session over TLS."""
    directory = tmp_path_factory.mktemp("traces")
    out: dict[str, Path] = {}

    async def main() -> None:
        config = station_config(pki_dir, directory, evse())
        async with Station(config, boards={EVSE_ID: build_board()[0]}) as station:
            e = station.evse(EVSE_ID)
            await run_ev(script("dc"), host="::1", port=e.ports["tcp"], tls=False)
            creds = load_credentials(pki_dir, dt.datetime.now(dt.UTC))
            await run_ev(
                script("ac", payment="Contract", credentials=creds),
                host="::1",
                port=e.ports["tls"],
                tls=True,
                cafile=pki_dir / "v2g" / "root.pem",
            )
            await wait_until(lambda: len(e.ended) == 2)
            out["dc"], out["pnc"] = e.trace_files

    run(main)
    return out


def _rewrite(src: Path, dst: Path, change: object) -> Path:
    records = [json.loads(line) for line in src.read_text().splitlines()]
    assert callable(change)
    change(records)
    dst.write_text("".join(json.dumps(r) + "\n" for r in records))
    return dst


def test_replay_is_identical(traces: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    for path in traces.values():
        assert replay([str(path)], prog="secc replay") == 0
    assert capsys.readouterr().out.count("identical") == 2


def test_replay_reports_a_changed_configuration(
    traces: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def lower_limit(records: list[dict[str, object]]) -> None:
        config = records[0]["config"]
        assert isinstance(config, dict)
        config["dc"]["max_current"] = 50.0

    changed = _rewrite(traces["dc"], tmp_path / "t.jsonl", lower_limit)
    assert replay([str(changed)], prog="secc replay") == 1
    out = capsys.readouterr().out
    assert "DIFFERS" in out and "ChargeParameterDiscoveryRes" in out


def test_replay_reports_a_changed_fact(
    traces: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def isolation_fault(records: list[dict[str, object]]) -> None:
        for r in records:
            fields = r.get("fields")
            valid = isinstance(fields, dict) and fields.get("isolation") == "Valid"
            if r.get("event") == "EvseStatus" and valid:
                assert isinstance(fields, dict)
                fields["isolation"] = "Fault"
                return

    changed = _rewrite(traces["dc"], tmp_path / "t.jsonl", isolation_fault)
    assert replay([str(changed)], prog="secc replay") == 1
    assert "CableCheckRes" in capsys.readouterr().out


def test_replay_reports_a_tampered_pnc_request(
    traces: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another recorded GenChallenge makes the signed AuthorizationReq fail now."""

    def other_challenge(records: list[dict[str, object]]) -> None:
        for r in records:
            if r["kind"] == "random" and r["n"] == 16:
                r["hex"] = "00" * 16
                return

    changed = _rewrite(traces["pnc"], tmp_path / "t.jsonl", other_challenge)
    assert replay([str(changed)], prog="secc replay") == 1
    assert "PaymentDetailsRes" in capsys.readouterr().out


@pytest.mark.parametrize(
    "content",
    [
        "",
        "not json\n",
        '{"no": "kind"}\n',
        '{"kind": "rx", "t": 0}\n',
        '{"kind": "session", "config": {}}\n',
    ],
)
def test_replay_refuses_broken_traces(
    tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text(content)
    assert replay([str(path)], prog="secc replay") == 2
    assert "cannot replay" in capsys.readouterr().err


def test_replay_refuses_truncated_exi(
    traces: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def truncate(records: list[dict[str, object]]) -> None:
        for r in records:
            if r["kind"] == "rx" and r["name"] == "SessionSetupReq":
                r["exi"] = str(r["exi"])[:6]

    changed = _rewrite(traces["dc"], tmp_path / "t.jsonl", truncate)
    assert replay([str(changed)], prog="secc replay") == 2
    assert "cannot replay" in capsys.readouterr().err


def test_secc_demo(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "secc.cli.main", "demo", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "AC, Plug & Charge, TLS" in out and "DC, EIM, TCP" in out
    assert "PaymentDetailsRes" in out and "CurrentDemandRes" in out
    # -2 AC, -2 DC, -20 DC, -20 DC_BPT PnC
    assert out.count("session ended: ev_stop; contactors open") == 4
    assert "all 4 sessions charged and ended normally" in out
    traces = sorted((tmp_path / "traces").glob("*.jsonl"))
    assert len(traces) == 4 and all(str(t) in out for t in traces)
    for t in traces:
        assert replay([str(t)], prog="secc replay") == 0


def test_pcap_beside_the_trace(pki_dir: Path, tmp_path: Path) -> None:
    """`station.pcap`: every V2GTP message of the trace is in the pcap as one IPv6/TCP
    segment in the right direction, with contiguous sequence numbers."""
    import struct

    from secc.config import StationSection
    from secc.v2gtp import Framer

    async def main() -> None:
        config = station_config(pki_dir, tmp_path, evse())
        config = type(config)(
            evse=config.evse,
            certs=config.certs,
            station=StationSection(trace_dir=tmp_path, pcap=True),
        )
        async with Station(config, boards={EVSE_ID: build_board()[0]}) as station:
            e = station.evse(EVSE_ID)
            await run_ev(script("dc"), host="::1", port=e.ports["tls"], tls=True,
                         cafile=pki_dir / "v2g" / "root.pem")  # fmt: skip
            await wait_until(lambda: bool(e.ended))

    run(main)
    trace = next(tmp_path.glob("*.jsonl"))
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    expected = [(r["kind"], r["exi"]) for r in records if r["kind"] in ("rx", "tx")]
    data = trace.with_suffix(".pcap").read_bytes()
    magic, _, _, _, _, _, linktype = struct.unpack("<IHHiIII", data[:24])
    assert magic == 0xA1B2C3D4 and linktype == 229
    offset, got, seq = 24, [], {}
    while offset < len(data):
        _, _, length, _ = struct.unpack("<IIII", data[offset : offset + 16])
        packet = data[offset + 16 : offset + 16 + length]
        offset += 16 + length
        assert packet[0] >> 4 == 6 and packet[6] == 6  # IPv6, next header TCP
        src, dst = packet[8:24], packet[24:40]
        assert src == dst == bytes(15) + b"\x01"  # ::1 both ends on loopback
        sport, dport, number = struct.unpack("!HHI", packet[40:48])
        payload = packet[60:]
        direction = "tx" if sport == records[0]["station"][1] else "rx"
        assert {sport, dport} == {records[0]["station"][1], records[0]["peer_port"]}
        assert seq.get(direction, 1) == number
        seq[direction] = number + len(payload)
        frames = Framer().feed(payload)
        assert len(frames) == 1
        got.append((direction, frames[0].payload.hex()))
    assert got == expected
