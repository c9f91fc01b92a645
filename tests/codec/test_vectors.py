"""Every public vector decodes and re-encodes byte for byte; fragments give the digests and
signatures their notes record; the invalid ones raise DecodeError."""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from secc import codec

from .vectors import CODEC_SCHEMA, require_vectors, vectors

DOCUMENT_SCHEMAS = ("iso2", "din", "appHandshake")
FRAGMENT_SCHEMAS = ("iso2-fragment", "xmldsig-fragment")


def _roundtrip_document(v: dict[str, Any]) -> bytes:
    data = bytes.fromhex(v["exi_hex"])
    message = codec.decode(data, CODEC_SCHEMA[v["schema"]])
    return codec.encode(message)


def _roundtrip_fragment(v: dict[str, Any]) -> bytes:
    data = bytes.fromhex(v["exi_hex"])
    schema = CODEC_SCHEMA[v["schema"]]
    root, value = codec.decode_fragment(data, schema)
    return codec.encode_fragment(value, schema, name=f"{{{root.ns}}}{root.local}")


def _same_stream(original: bytes, encoded: bytes) -> bool:
    # decoders accept trailing bytes after ED (a Tesla appends a 00): the re-encoded
    # stream must be the original up to its end, with only zero padding left over
    return original[: len(encoded)] == encoded and not original[len(encoded) :].strip(b"\0")


@pytest.mark.parametrize("v", vectors(*DOCUMENT_SCHEMAS))
def test_document_vector_roundtrips(v: dict[str, Any]) -> None:
    data = bytes.fromhex(v["exi_hex"])
    assert _same_stream(data, _roundtrip_document(v))


@pytest.mark.parametrize("v", vectors(*FRAGMENT_SCHEMAS))
def test_fragment_vector_roundtrips(v: dict[str, Any]) -> None:
    data = bytes.fromhex(v["exi_hex"])
    encoded = _roundtrip_fragment(v)
    assert encoded == data
    if v["schema"] == "iso2-fragment":
        digest = base64.b64encode(hashlib.sha256(encoded).digest()).decode()
        assert digest == v["digest_sha256_b64"]


@pytest.mark.parametrize("v", vectors("xmldsig-fragment"))
def test_signed_info_signature_verifies(v: dict[str, Any]) -> None:
    encoded = _roundtrip_fragment(v)
    key = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), bytes.fromhex(v["signer_pubkey_uncompressed_hex"])
    )
    rs = bytes.fromhex(v["signature_value_hex"])
    assert len(rs) == 64  # raw r||s, not DER
    der = encode_dss_signature(int.from_bytes(rs[:32], "big"), int.from_bytes(rs[32:], "big"))
    key.verify(der, encoded, ec.ECDSA(hashes.SHA256()))
    tampered = bytearray(encoded)
    tampered[-2] ^= 0x01
    with pytest.raises(InvalidSignature):
        key.verify(der, bytes(tampered), ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("v", vectors(*DOCUMENT_SCHEMAS, *FRAGMENT_SCHEMAS, valid=False))
def test_invalid_vector_raises_decode_error(v: dict[str, Any]) -> None:
    data = bytes.fromhex(v["exi_hex"])
    with pytest.raises(codec.DecodeError):
        if v["schema"] in FRAGMENT_SCHEMAS:
            codec.decode_fragment(data, CODEC_SCHEMA[v["schema"]])
        else:
            codec.decode(data, CODEC_SCHEMA[v["schema"]])


def test_vector_counts_reported(capsys: pytest.CaptureFixture[str]) -> None:
    """Runs the whole corpus once more and reports the counts (they must cover it all)."""
    found = require_vectors()
    counts: Counter[str] = Counter()
    for v in found:
        schema = v["schema"]
        if not v["valid"]:
            try:
                if schema in FRAGMENT_SCHEMAS:
                    codec.decode_fragment(bytes.fromhex(v["exi_hex"]), CODEC_SCHEMA[schema])
                else:
                    codec.decode(bytes.fromhex(v["exi_hex"]), CODEC_SCHEMA[schema])
            except codec.DecodeError:
                counts[f"{schema} invalid, refused"] += 1
            continue
        data = bytes.fromhex(v["exi_hex"])
        if schema in FRAGMENT_SCHEMAS:
            ok = _roundtrip_fragment(v) == data
        else:
            ok = _same_stream(data, _roundtrip_document(v))
        counts[f"{schema} {'byte-identical' if ok else 'MISMATCH'}"] += 1
    with capsys.disabled():
        print("\nvector corpus:", ", ".join(f"{k}: {n}" for k, n in sorted(counts.items())))
    assert not [k for k in counts if "MISMATCH" in k]
    assert sum(counts.values()) == len(found) == 278
    assert counts["iso2 byte-identical"] == 129
    assert counts["din byte-identical"] == 109


def test_emaid_fragment_uses_the_relaxed_grammar() -> None:
    """EXI-NOTES §9.3: AT({MsgDataTypes}Id) 9 bits = 4, CH 9 bits = 256, EE 8 bits = 244."""
    mod = codec.schema_module("iso2")
    emaid = mod.EMAID(id="ID4", value="DE1ABCD2EF345G")
    data = codec.encode_fragment(emaid, name="eMAID")
    bits = "".join(f"{b:08b}" for b in data)
    index = [r.local for r in mod.FRAGMENT].index("eMAID")
    assert bits[:8] == "10000000"
    assert int(bits[8:16], 2) == index
    assert int(bits[16:25], 2) == 4  # AT({MsgDataTypes}Id)
    # "ID4": length 3+2 = 5, then three ASCII octets
    after_id = 25 + 8 + 24
    assert int(bits[after_id : after_id + 9], 2) == 256  # CH[untyped]
    root, back = codec.decode_fragment(data, "iso2")
    assert root.local == "eMAID" and back == emaid
