"""The regression corpus of real charging sessions: every stream decodes and re-encodes
byte for byte, except the 30 corrupted ones the corpus marks, which stay refused.

``realcar_corpus.jsonl.gz`` (beside this file, rebuilt by ``build_realcar_corpus.py``)
holds the V2GTP payloads of public captures and logs, each line naming the repository,
commit and path it came from:

- ``uhi22/pyPLC`` pcaps (and one converter log whose pcap is not in the repository):
  production cars (Hyundai Ioniq, Tesla Model Y and Model X, Polestar 2, Audi Q4) and
  pyPLC against commercial DC chargers (Alpitronic, ABB, Compleo, Tesla Supercharger,
  Ionity);
- ``uhi22/clara-logs``: the ccs32clara EV's serial logs (every V2GTP frame in hex)
  against Alpitronic HYC300, ABB HPC and Triple, ChargePoint Express 250, Tesla
  Supercharger V3, Efacec QC45, Ionity/Tritium, Kempower, Numbat and other chargers;
- ``tux-evse/iso15118-simulator-rs`` trace pcaps: Audi (DC, ISO-2), Porsche Taycan
  (AC, ISO-2), Tesla Model 3 (DIN), VW (AC, ISO-2);
- ``dspace-group/dsV2Gshark`` examples: dSPACE DS5366 test-system sessions with
  RISE-V2G and Josev, incl. Plug & Charge over TLS 1.2 and ISO 15118-20 over TLS 1.3
  (decrypted with the secrets the captures disclose).

Identical streams of one file are stored once with their ``count``.  The decoder is
liberal (values outside their facets are reported, not refused), so each stream is
decoded, re-encoded with the lenient encoder and compared; a stream without violations
must also re-encode with the strict encoder.  The violations seen are reported.  Lines
with ``refused`` (the codec's error when the corpus was built) are frames of serial logs
with corrupted lines (bit errors in the logs of a faulty Qingdao charger session and
three others): they must still be refused, with the same error.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from secc import codec

CORPUS = Path(__file__).resolve().parent / "realcar_corpus.jsonl.gz"

# figures of the stored corpus (change them with the corpus, on purpose)
DISTINCT = 6040
TOTAL = 123670
REFUSED = 30
CORRUPTED_LOGS = {
    "2024-05-12_clara_QingdaoPenodato_serh270_fault_cableCheck.claralog",
    "2024-05-09_clara_QingdaoPenodato_serh270_precharge.claralog",
    "2024-02-18_clara_numbat_lightbulb_ok.claralog",
    "2024-01-24_clara_ABBHPC_no_load_voltage_ramps_down.claralog",
}


def _rows() -> list[dict[str, Any]]:
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _same_stream(original: bytes, encoded: bytes) -> bool:
    # zero octets after the padded end are tolerated by the decoder (a Tesla appends one)
    return original[: len(encoded)] == encoded and not original[len(encoded) :].strip(b"\0")


def test_corpus_rows_name_their_source() -> None:
    rows = _rows()
    assert len(rows) == DISTINCT
    assert sum(r["count"] for r in rows) == TOTAL
    for r in rows:
        assert set(r) - {"refused"} == {"hex", "schema", "count", "repo", "commit", "path"}
        assert len(r["commit"]) == 40 and "/" in r["repo"] and r["path"]
        assert r["schema"] in codec.SCHEMAS
    # each (capture, stream, schema) once
    assert len({(r["repo"], r["path"], r["hex"], r["schema"]) for r in rows}) == len(rows)


def test_every_real_stream_decodes_and_reencodes(capsys: pytest.CaptureFixture[str]) -> None:
    counts: Counter[str] = Counter()
    violations: Counter[str] = Counter()
    failures: list[str] = []
    refused = 0
    for r in _rows():
        data = bytes.fromhex(r["hex"])
        where = f"{r['repo']}@{r['commit'][:10]}:{r['path']} {r['hex'][:40]}"
        if "refused" in r:  # a corrupted frame: refused as when the corpus was built
            assert r["path"] in CORRUPTED_LOGS, where
            try:
                again = codec.encode(codec.decode(data, r["schema"]), r["schema"], lenient=True)
            except codec.CodecError as exc:
                assert str(exc) == r["refused"], where
            else:
                assert r["refused"] == f"re-encodes as {again.hex()}", where
            refused += 1
            continue
        try:
            got = codec.decode_checked(data, r["schema"])
        except codec.DecodeError as exc:
            failures.append(f"{where}: {exc}")
            continue
        encoded = codec.encode(got.message, r["schema"], lenient=True)
        if not _same_stream(data, encoded):
            failures.append(f"{where}: re-encodes as {encoded.hex()}")
            continue
        for v in got.violations:
            violations[f"{r['schema']} {v}"] += r["count"]
        if not got.violations:
            assert codec.encode(got.message, r["schema"]) == encoded
        counts[r["schema"]] += r["count"]
        counts[f"{r['repo']}"] += r["count"]
    with capsys.disabled():
        print("\nreal-car corpus:", ", ".join(f"{k}: {n}" for k, n in sorted(counts.items())))
        print(f"refused as recorded (corrupted log lines): {refused}")
        print("facet violations seen:", dict(violations) or "none")
    assert not failures, "\n".join(failures[:20])
    assert refused == REFUSED
    assert sum(counts[s] for s in codec.SCHEMAS) == TOTAL - REFUSED
