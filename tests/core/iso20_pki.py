"""A small ISO 15118-20 PKI for the core tests: MO root -> two sub-CAs -> contract leaf
(CN = eMAID), OEM root -> provisioning / vehicle leaves, on secp521r1 with
ecdsa-with-SHA512 or on Ed448 (P-256 for the chains -20 must refuse), the certificates
made by the project's test PKI code (:func:`certs.testpki.issue_certificate`, the key
makers beside it); plus the EV's signed -20 requests (PnC_AReqAuthorizationMode,
SignedMeteringData, OEMProvisioningCertificateChain) built here from the standard, not
from ``certs.xmldsig``: SHA-512 digest of the element's EXI fragment (CommonMessages set),
SignedInfo signed as an xmldsig fragment.  Test code.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

from certs._util import Issued
from certs.testpki import CA_USAGE, issue_certificate, make_name, new_iso20_key
from certs.testpki import new_key as new_p256_key
from secc import codec

C = codec.schema_module("iso20-common")
XD = codec.schema_module("xmldsig")
EMAID = "DEABC123456789"
CANON = "http://www.w3.org/TR/canonical-exi/"
SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
ECDSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
ED448 = "http://www.w3.org/2021/04/xmldsig-more#eddsa-ed448"

Key = Any  # ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey
# the leaf key usages: a signing leaf (contract, OEM provisioning), a TLS client leaf
LEAF_USAGE = {"sign": ("digital_signature",), "tls": ("digital_signature", "key_agreement")}


def new_key(kind: str) -> Key:
    """``p521`` / ``ed448`` (the -20 algorithms) or ``p256`` (the -2 one, which -20 refuses)."""
    if kind == "p256":
        return new_p256_key()
    assert kind in ("p521", "ed448"), kind
    return new_iso20_key(kind)  # type: ignore[arg-type]


def _hash_for(key: Key) -> hashes.SHA256 | hashes.SHA512:
    """The ECDSA signer's hash: SHA-256 on P-256, SHA-512 on P-521 (unused for Ed448)."""
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        return hashes.SHA256()
    return hashes.SHA512()


def issue(
    cn: str,
    key: Key,
    issuer: Issued | None,
    *,
    ca: bool,
    start: dt.datetime,
    days: int = 365,
    path_len: int | None = None,
    leaf_usage: str = "sign",
) -> Issued:
    """One certificate (CN only), valid from a day before ``start`` for ``days`` after it,
    signed by ``issuer`` (None: self-signed)."""
    return issue_certificate(
        name=cn,
        subject=make_name(cn),
        issuer=issuer,
        not_before=start - dt.timedelta(days=1),
        not_after=start + dt.timedelta(days=days),
        ca=ca,
        path_len=path_len,
        usage=CA_USAGE if ca else LEAF_USAGE[leaf_usage],
        key=key,
        hash_algorithm=_hash_for(issuer.key if issuer is not None else key),
    )


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


@dataclass
class Chain:
    """A leaf with its key and sub-CAs (leaf's issuer first), and the root it ends at."""

    leaf: x509.Certificate
    key: Key
    subs: tuple[x509.Certificate, ...]
    root: x509.Certificate

    @property
    def ders(self) -> tuple[bytes, ...]:
        return (der(self.leaf), *(der(c) for c in self.subs))


def make_chain(
    cn: str,
    start: dt.datetime,
    kind: str = "p521",
    *,
    leaf_kind: str | None = None,
    leaf_days: int = 365,
    leaf_start: dt.datetime | None = None,
    leaf_usage: str = "sign",
    root_cn: str = "MO Root",
) -> Chain:
    """root -> sub-CA 1 -> sub-CA 2 -> leaf."""
    root = issue(root_cn, new_key(kind), None, ca=True, start=start, days=3650, path_len=2)
    sub1 = issue(root_cn + " Sub 1", new_key(kind), root, ca=True, start=start, path_len=1)
    sub2 = issue(root_cn + " Sub 2", new_key(kind), sub1, ca=True, start=start, path_len=0)
    leaf = issue(
        cn,
        new_key(leaf_kind or kind),
        sub2,
        ca=False,
        start=leaf_start or start,
        days=leaf_days,
        leaf_usage=leaf_usage,
    )
    return Chain(leaf.certificate, leaf.key, (sub2.certificate, sub1.certificate), root.certificate)


# --- the EV's signatures -----------------------------------------------------------------


def signature_method(key: Key) -> str:
    if isinstance(key, ed448.Ed448PrivateKey):
        return ED448
    return ECDSA_SHA256 if key.curve.name == "secp256r1" else ECDSA_SHA512


def raw_sign(key: Key, data: bytes) -> bytes:
    if isinstance(key, ed448.Ed448PrivateKey):
        return key.sign(data)
    if key.curve.name == "secp256r1":
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA512())))
    return r.to_bytes(66, "big") + s.to_bytes(66, "big")


def signature(
    element: Any, key: Key, *, method: str | None = None, digest_method: str = SHA512
) -> Any:
    """The header Signature over ``element`` (its Id), as the EV makes it."""
    fragment = codec.encode_fragment(element, schema="iso20-common")
    digest = (
        hashlib.sha512(fragment).digest()
        if digest_method == SHA512
        else hashlib.sha256(fragment).digest()
    )
    info = XD.SignedInfo(
        canonicalization_method=XD.CanonicalizationMethod(algorithm=CANON),
        signature_method=XD.SignatureMethod(algorithm=method or signature_method(key)),
        reference=(
            XD.Reference(
                uri="#" + element.id,
                transforms=XD.Transforms(transform=(XD.Transform(algorithm=CANON),)),
                digest_method=XD.DigestMethod(algorithm=digest_method),
                digest_value=digest,
            ),
        ),
    )
    value = raw_sign(key, codec.encode_fragment(info, schema="xmldsig"))
    return XD.Signature(signed_info=info, signature_value=XD.SignatureValue(value=value))


def signed_header(header: Any, element: Any, key: Key, **kw: Any) -> Any:
    return dataclasses.replace(header, signature=signature(element, key, **kw))


def pnc_mode(challenge: bytes, chain: Chain, element_id: str = "PnC1") -> Any:
    ders = chain.ders
    return C.PnC_AReqAuthorizationMode(
        id=element_id,
        gen_challenge=challenge,
        contract_certificate_chain=C.ContractCertificateChain(
            certificate=ders[0], sub_certificates=C.SubCertificates(certificate=ders[1:])
        ),
    )
