"""Access to the public EXI vectors in ../shared/vectors (read by path, never copied)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
VECTORS = SHARED / "vectors" / "public_vectors.jsonl"
ISO20_VECTORS = SHARED / "vectors" / "iso20_public_vectors.jsonl"
SCHEMAS = SHARED / "schemas"

# vector schema name -> codec schema name
CODEC_SCHEMA = {
    "iso2": "iso2",
    "din": "din",
    "appHandshake": "apphand",
    "iso2-fragment": "iso2",
    "xmldsig-fragment": "xmldsig",
    # the ISO 15118-20 file (its handshake vectors say "apphand")
    "apphand": "apphand",
    "iso20-common": "iso20-common",
    "iso20-ac": "iso20-ac",
    "iso20-dc": "iso20-dc",
    "iso20-wpt": "iso20-wpt",
    "iso20-acdp": "iso20-acdp",
}


@cache
def load_vectors(path: Path = VECTORS) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def vectors(
    *schemas: str,
    valid: bool | None = True,
    path: Path = VECTORS,
    exclude: frozenset[str] = frozenset(),
) -> list[Any]:
    """pytest params for the vectors of these schemas (one skip param if the file is absent)."""
    found = load_vectors(path)
    if not found:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{path} is absent"))]
    return [
        pytest.param(v, id=v["name"])
        for v in found
        if v["schema"] in schemas
        and (valid is None or v["valid"] == valid)
        and v["name"] not in exclude
    ]


def require_vectors(path: Path = VECTORS) -> list[dict[str, Any]]:
    found = load_vectors(path)
    if not found:
        pytest.skip(f"{path} is absent: the vector tests need ../shared beside the checkout")
    return found
