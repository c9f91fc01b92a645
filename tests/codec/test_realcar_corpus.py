"""The regression corpus of real charging sessions: every stream decodes and re-encodes
byte for byte.

``realcar_corpus.jsonl.gz`` (beside this file, rebuilt by ``build_realcar_corpus.py``)
holds the V2GTP payloads of public captures: production cars (Hyundai Ioniq, Tesla
Model 3 / Model Y / Model X, Porsche Taycan, Audi, VW, Polestar 2, Audi Q4) against
commercial DC chargers (Alpitronic, ABB, Compleo, Tesla Supercharger, Ionity) and
pyPLC, and test-system sessions (dSPACE DS5366 with RISE-V2G and Josev), from the
repositories, commits and paths each line names.  Identical streams of one capture are
stored once with their ``count``.

The decoder is liberal (values outside their facets are reported, not refused), so the
test decodes each stream, re-encodes it with the lenient encoder and compares; a stream
without violations must also re-encode with the strict encoder.  The violations seen
are reported.
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
DISTINCT = 4481
TOTAL = 45909


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
        assert set(r) == {"hex", "schema", "count", "repo", "commit", "path"}
        assert len(r["commit"]) == 40 and "/" in r["repo"] and r["path"]
        assert r["schema"] in codec.SCHEMAS
    # each (capture, stream) once
    assert len({(r["repo"], r["path"], r["hex"]) for r in rows}) == len(rows)


def test_every_real_stream_decodes_and_reencodes(capsys: pytest.CaptureFixture[str]) -> None:
    counts: Counter[str] = Counter()
    violations: Counter[str] = Counter()
    failures: list[str] = []
    for r in _rows():
        data = bytes.fromhex(r["hex"])
        where = f"{r['repo']}@{r['commit'][:10]}:{r['path']} {r['hex'][:40]}"
        try:
            got = codec.decode_checked(data, r["schema"])
        except codec.DecodeError as exc:
            failures.append(f"{where}: {exc}")
            continue
        encoded = codec.encode(got.message, r["schema"], lenient=True)
        if not _same_stream(data, encoded):
            failures.append(f"{where}: re-encodes as {encoded.hex()}")
            continue
        if got.violations:
            for v in got.violations:
                violations[f"{r['schema']} {v.path} {v.facet} {v.limit}: {v.value!r}"] += r["count"]
        else:
            assert codec.encode(got.message, r["schema"]) == encoded
        counts[r["schema"]] += r["count"]
        counts[f"{r['repo']}"] += r["count"]
    with capsys.disabled():
        print("\nreal-car corpus:", ", ".join(f"{k}: {n}" for k, n in sorted(counts.items())))
        print("facet violations seen:", dict(violations) or "none")
    assert not failures, "\n".join(failures[:20])
    assert counts["din"] + counts["iso2"] > 40000
