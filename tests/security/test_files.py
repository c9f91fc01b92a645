"""Issue 15: files the station writes: ``secc certs csr -o`` replaces its output
atomically (a reader of the old file never sees it truncated or half written); the
session traces are bounded in count and size, oldest removed."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from certs import testpki
from certs.cli import main as certs_main
from secc.limits import TraceLimits
from secc.trace import Trace


def test_csr_output_is_replaced_atomically(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    testpki.write_test_pki(testpki.build_test_pki(dt.datetime.now(dt.UTC)), tmp_path / "pki")
    store = tmp_path / "pki" / "station"
    out = tmp_path / "secc.csr"
    out.write_bytes(b"the previous CSR\n")
    with out.open("rb") as reader:  # a reader holding the old file
        code = certs_main(
            ["csr", "--store", str(store), "--type", "V2GCertificate", "--cn",
             "DE*ABC*E1234567*1", "--org", "Test CPO", "-o", str(out)],
            "secc certs",
        )  # fmt: skip
        assert code == 0, capsys.readouterr()
        assert reader.read() == b"the previous CSR\n"  # not truncated under it
    assert out.read_bytes().startswith(b"-----BEGIN CERTIFICATE REQUEST-----")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".secc.csr")]  # no temp


def _trace(directory: Path, name: str, limits: TraceLimits, records: int = 1) -> Trace:
    trace = Trace(directory / name, {"evse_id": "E"}, limits=limits)
    for i in range(records):
        trace.write({"kind": "rx", "n": i, "pad": "x" * 200})
    trace.close()
    return trace


def test_traces_are_bounded_oldest_removed(tmp_path: Path) -> None:
    limits = TraceLimits(max_files=5, max_bytes=40_000, max_file_bytes=8_000)
    for i in range(12):
        _trace(tmp_path, f"{i:03d}.jsonl", limits)
        os.utime(tmp_path / f"{i:03d}.jsonl", (1_000_000 + i, 1_000_000 + i))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"{i:03d}.jsonl" for i in range(7, 12)]
    # one long session: the file stops at max_file_bytes with a truncated record
    big = _trace(tmp_path, "big.jsonl", limits, records=200)
    assert big.path is not None
    size = (tmp_path / "big.jsonl").stat().st_size
    assert size <= 8_000 + 200
    assert (tmp_path / "big.jsonl").read_text().splitlines()[-1].startswith('{"kind": "truncated"')
    total = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert total <= 40_000


def test_a_connection_without_messages_leaves_no_trace(tmp_path: Path) -> None:
    trace = Trace(tmp_path / "idle.jsonl", {"evse_id": "E"})
    trace.write({"kind": "fact", "event": "ConnectionLost"})
    trace.write({"kind": "end", "reason": "connection_lost"})
    trace.close()
    assert trace.path is None and not list(tmp_path.iterdir())
