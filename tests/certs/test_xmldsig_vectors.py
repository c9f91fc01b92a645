"""The public EXI fragment vectors: digests and signatures verify over the bytes themselves.

The vectors (``../shared/vectors/public_vectors.jsonl`` beside the repository) carry each
signed element as an EXI fragment (``iso2-fragment``) with its SHA-256 digest as the message's
Reference carries it, and each SignedInfo fragment (``xmldsig-fragment``) with the raw r||s
SignatureValue and the signer's public key. Re-encoding the fragments from decoded messages
is the codec's test; here the bytes are checked as they are.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from certs.xmldsig import (
    Reference,
    SignatureError,
    SignedInfo,
    check_references,
    digest,
    public_key_from_point,
    signature_valid,
    verify_signed_info,
)

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "public_vectors.jsonl"
DS = "{http://www.w3.org/2000/09/xmldsig#}"


def _load() -> list[dict[str, Any]]:
    if not VECTORS.is_file():
        return []
    with VECTORS.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


ALL = _load()
needs_vectors = pytest.mark.skipif(not ALL, reason=f"public vectors not found at {VECTORS}")
FRAGMENTS = [v for v in ALL if v["schema"] == "iso2-fragment"]
SIGNED_INFOS = [v for v in ALL if v["schema"] == "xmldsig-fragment"]


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["name"][:70] for v in vectors]


def _element_id(decoded_xml: str) -> str:
    root = etree.fromstring(decoded_xml.encode())
    for name, value in root.attrib.items():
        if etree.QName(name).localname == "Id":
            return str(value)
    raise AssertionError("fragment without Id")


def _signed_info(decoded_xml: str) -> SignedInfo:
    """Test-side reading of the decoded SignedInfo into the module's value objects."""
    root = etree.fromstring(decoded_xml.encode())
    refs = []
    for ref in root.iter(f"{DS}Reference"):
        refs.append(
            Reference(
                uri=str(ref.get("URI")),
                digest_value=base64.b64decode(ref.findtext(f"{DS}DigestValue") or ""),
                digest_method=str(ref.find(f"{DS}DigestMethod").get("Algorithm")),  # type: ignore[union-attr]
                transforms=tuple(str(t.get("Algorithm")) for t in ref.iter(f"{DS}Transform")),
            )
        )
    return SignedInfo(
        references=tuple(refs),
        canonicalization_method=str(root.find(f"{DS}CanonicalizationMethod").get("Algorithm")),  # type: ignore[union-attr]
        signature_method=str(root.find(f"{DS}SignatureMethod").get("Algorithm")),  # type: ignore[union-attr]
    )


@needs_vectors
def test_vector_counts() -> None:
    assert len(FRAGMENTS) == 15
    assert len(SIGNED_INFOS) == 10


@needs_vectors
@pytest.mark.parametrize("vector", FRAGMENTS, ids=_ids(FRAGMENTS))
def test_fragment_digest(vector: dict[str, Any]) -> None:
    got = base64.b64encode(digest(bytes.fromhex(vector["exi_hex"]))).decode()
    assert got == vector["digest_sha256_b64"]
    if vector["valid"]:
        assert got == vector["expected_digest_from_message"]
    else:
        # The counterexample: a wrong fragment encoding (libcbv2g's typed eMAID grammar)
        # whose digest must NOT equal the digest the signed message references.
        assert vector["digest_matches"] is False
        assert got != vector["expected_digest_from_message"]


@needs_vectors
@pytest.mark.parametrize("vector", SIGNED_INFOS, ids=_ids(SIGNED_INFOS))
def test_signed_info_signature(vector: dict[str, Any]) -> None:
    fragment = bytes.fromhex(vector["exi_hex"])
    signature = bytes.fromhex(vector["signature_value_hex"])
    key = public_key_from_point(bytes.fromhex(vector["signer_pubkey_uncompressed_hex"]))
    assert vector["ecdsa_p256_sha256_verifies"] is True
    verify_signed_info(fragment, signature, key)
    # Any change to the signed bytes or the signature breaks it.
    assert not signature_valid(fragment[:-1] + bytes([fragment[-1] ^ 1]), signature, key)
    assert not signature_valid(fragment, signature[:63] + bytes([signature[63] ^ 1]), key)


def _fragments_by_message() -> dict[str, dict[str, bytes]]:
    out: dict[str, dict[str, bytes]] = defaultdict(dict)
    for v in FRAGMENTS:
        if v["valid"]:
            out[v["message_exi_hex"]][_element_id(v["decoded"])] = bytes.fromhex(v["exi_hex"])
    return out


@needs_vectors
@pytest.mark.parametrize("vector", SIGNED_INFOS, ids=_ids(SIGNED_INFOS))
def test_signed_info_references_match_fragments(vector: dict[str, Any]) -> None:
    signed_info = _signed_info(vector["decoded"])
    fragments = _fragments_by_message()[vector["message_exi_hex"]]
    assert fragments, "no fragment vectors for this message"
    # The vectors hold some of a message's signed elements (CertificateUpdateRes: ID2 and
    # ID3 of four); check the References whose element is there, and that all of those are.
    present = tuple(r for r in signed_info.references if r.element_id in fragments)
    assert {r.element_id for r in present} == set(fragments)
    check_references(SignedInfo(present), fragments, required_ids=fragments.keys())


@needs_vectors
def test_counterexample_fails_reference_check() -> None:
    (bad,) = [v for v in FRAGMENTS if not v["valid"]]
    element_id = _element_id(bad["decoded"])
    # The SignedInfo whose Reference carries the digest the counterexample claims to produce.
    expected = base64.b64decode(bad["expected_digest_from_message"])
    owner = next(
        v
        for v in SIGNED_INFOS
        if any(r.digest_value == expected for r in _signed_info(v["decoded"]).references)
    )
    fragments = dict(_fragments_by_message()[owner["message_exi_hex"]])
    signed_info = _signed_info(owner["decoded"])
    check_references(signed_info, fragments)  # the right encoding passes
    fragments[element_id] = bytes.fromhex(bad["exi_hex"])
    with pytest.raises(SignatureError, match=f"#{element_id}"):
        check_references(signed_info, fragments)
