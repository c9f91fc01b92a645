"""ISO 15118-20 signatures: the signed elements are EXI fragments of their message's schema set.

In -20 the elements a Reference points at carry an ``Id`` and live in CommonMessages:
PnC_AReqAuthorizationMode (AuthorizationReq, signed by the EV), SignedMeteringData
(MeteringConfirmationReq, EV), OEMProvisioningCertificateChain (CertificateInstallationReq,
EV), SignedInstallationData (CertificateInstallationRes, backend), AbsolutePriceSchedule and
PriceLevelSchedule (ScheduleExchangeRes, backend).  Each is encoded as a fragment of the whole
CommonMessages set (FragmentContent over its unique element qnames), the SignedInfo as a
fragment of xmldsig alone, as for ISO-2 (EXI-NOTES §9).  No signed -20 stream is public, so
these are round trips of random instances plus one end-to-end signature built here.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secc import codec

from . import strategies as S  # noqa: N812

SIGNED = [
    "PnC_AReqAuthorizationMode",
    "SignedMeteringData",
    "OEMProvisioningCertificateChain",
    "SignedInstallationData",
    "AbsolutePriceSchedule",
    "PriceLevelSchedule",
]
COMMON = "urn:iso:std:iso:15118:-20:CommonMessages"
RELAXED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]


def _root(schema: str, local: str, ns: str = COMMON) -> Any:
    mod = codec.schema_module(schema)
    return next(r for r in mod.FRAGMENT if r.local == local and r.ns == ns)


def test_the_signed_elements_are_the_id_carrying_fragment_elements() -> None:
    """Every CommonMessages fragment element whose type has an Id is in SIGNED (and the
    other -20 sets have none: their messages are not signed)."""
    for schema in S.ISO20_SCHEMAS:
        mod = codec.schema_module(schema)
        with_id = sorted(
            r.local
            for r in mod.FRAGMENT
            if r.cls is not None
            and r.ns != "http://www.w3.org/2000/09/xmldsig#"
            and any(f.name == "id" for f in mod.FIELDS[r.cls])
        )
        assert with_id == (sorted(SIGNED) if schema == "iso20-common" else [])


def test_fragment_framing() -> None:
    """Header 0x80, SE(F) over the 281 unique element qnames of the CommonMessages set
    (+ SE(*) + ED: 9 bits), the element, ED = 282 in 9 bits, zero padding."""
    mod = codec.schema_module("iso20-common")
    n = len(mod.FRAGMENT)
    assert n == 281
    value = S.minimal("iso20-common", mod.PnC_AReqAuthorizationMode)
    data = codec.encode_fragment(value)
    bits = "".join(f"{b:08b}" for b in data)
    index = [(r.ns, r.local) for r in mod.FRAGMENT].index((COMMON, "PnC_AReqAuthorizationMode"))
    assert bits[:8] == "10000000" and int(bits[8:17], 2) == index
    root, back = codec.decode_fragment(data, "iso20-common")  # checks ED = 282 too
    assert root.local == "PnC_AReqAuthorizationMode" and back == value
    # the element list is sorted by (local-name, uri), as EXI-NOTES §4 requires
    keys = [(r.local, r.ns) for r in mod.FRAGMENT]
    assert keys == sorted(keys)


@pytest.mark.parametrize("local", SIGNED)
@settings(max_examples=25, deadline=None, suppress_health_check=RELAXED)
@given(data=st.data())
def test_signed_element_fragment_roundtrips(local: str, data: st.DataObject) -> None:
    mod = codec.schema_module("iso20-common")
    root = _root("iso20-common", local)
    value = data.draw(S.instances("iso20-common", root.cls, frozenset({mod.KeyInfo})))
    encoded = codec.encode_fragment(value, "iso20-common", name=local)
    back_root, back = codec.decode_fragment(encoded, "iso20-common")
    assert (back_root.ns, back_root.local) == (COMMON, local)
    assert back == value
    assert codec.encode_fragment(back, name=local) == encoded


@settings(max_examples=25, deadline=None, suppress_health_check=RELAXED)
@given(data=st.data())
def test_signed_info_is_a_fragment_of_xmldsig_alone(data: st.DataObject) -> None:
    xd = codec.schema_module("xmldsig")
    value = data.draw(S.instances("xmldsig", xd.SignedInfo, frozenset({xd.KeyInfo})))
    encoded = codec.encode_fragment(value)  # xmldsig classes default to xmldsig alone
    assert encoded[0] == 0x80
    root, back = codec.decode_fragment(encoded, "xmldsig")
    assert root.local == "SignedInfo" and back == value
    assert codec.encode_fragment(back) == encoded


def _signed_info(xd: Any, uri: str, digest: bytes) -> Any:
    return xd.SignedInfo(
        canonicalization_method=xd.CanonicalizationMethod(
            algorithm="http://www.w3.org/TR/canonical-exi/"
        ),
        signature_method=xd.SignatureMethod(
            algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"
        ),
        reference=(
            xd.Reference(
                uri=uri,
                transforms=xd.Transforms(
                    transform=(xd.Transform(algorithm="http://www.w3.org/TR/canonical-exi/"),)
                ),
                digest_method=xd.DigestMethod(algorithm="http://www.w3.org/2001/04/xmlenc#sha512"),
                digest_value=digest,
            ),
        ),
    )


@settings(max_examples=15, deadline=None, suppress_health_check=RELAXED)
@given(data=st.data())
def test_signed_authorization_req_verifies_after_decoding(data: st.DataObject) -> None:
    """The EV's side and the SECC's side of a -20 PnC AuthorizationReq: digest the
    fragment (SHA-512), sign the SignedInfo fragment (ECDSA P-521, raw r||s), put both in
    the header, encode the message; after decoding, re-encoding the two fragments gives
    what was signed."""
    mod = codec.schema_module("iso20-common")
    xd = codec.schema_module("xmldsig")
    pnc = data.draw(S.instances("iso20-common", mod.PnC_AReqAuthorizationMode))
    digest = hashlib.sha512(codec.encode_fragment(pnc)).digest()
    signed_info = _signed_info(xd, "#" + pnc.id, digest)
    key = ec.generate_private_key(ec.SECP521R1())
    r, s = decode_dss_signature(
        key.sign(codec.encode_fragment(signed_info), ec.ECDSA(hashes.SHA512()))
    )
    header = S.minimal("iso20-common", mod.MessageHeader)
    header = dataclasses.replace(
        header,
        signature=xd.Signature(
            signed_info=signed_info,
            signature_value=xd.SignatureValue(value=r.to_bytes(66, "big") + s.to_bytes(66, "big")),
        ),
    )
    req = mod.AuthorizationReq(
        header=header,
        selected_authorization_service=mod.Authorization.PnC,
        pn_c_a_req_authorization_mode=pnc,
    )
    stream = codec.encode(req)
    got = codec.decode(stream, "iso20-common")
    assert got == req
    sig = got.header.signature
    ref = sig.signed_info.reference[0]
    element = got.pn_c_a_req_authorization_mode
    assert ref.uri == "#" + element.id
    assert hashlib.sha512(codec.encode_fragment(element)).digest() == ref.digest_value
    rs = sig.signature_value.value
    der = encode_dss_signature(int.from_bytes(rs[:66], "big"), int.from_bytes(rs[66:], "big"))
    key.public_key().verify(der, codec.encode_fragment(sig.signed_info), ec.ECDSA(hashes.SHA512()))
