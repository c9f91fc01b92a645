"""A small ISO 15118-20 PKI for the core tests, made here with ``cryptography``: MO root ->
two sub-CAs -> contract leaf (CN = eMAID), OEM root -> provisioning / vehicle leaves, on
secp521r1 with ecdsa-with-SHA512 or on Ed448; plus the EV's signed -20 requests
(PnC_AReqAuthorizationMode, SignedMeteringData, OEMProvisioningCertificateChain) built
from the standard: SHA-512 digest of the element's EXI fragment (CommonMessages set),
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
from cryptography.x509.oid import NameOID

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


def new_key(kind: str) -> Key:
    if kind == "ed448":
        return ed448.Ed448PrivateKey.generate()
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    return ec.generate_private_key(ec.SECP521R1())


def _hash_for(key: Key) -> hashes.SHA256 | hashes.SHA512 | None:
    if isinstance(key, ed448.Ed448PrivateKey):
        return None
    return hashes.SHA256() if key.curve.name == "secp256r1" else hashes.SHA512()


def issue(
    cn: str,
    key: Key,
    issuer: x509.Certificate | None,
    issuer_key: Key,
    *,
    ca: bool,
    start: dt.datetime,
    days: int = 365,
    path_len: int | None = None,
    leaf_usage: str = "sign",
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - dt.timedelta(days=1))
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_len if ca else None), True)
    )
    usage = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    if ca:
        usage.update(key_cert_sign=True, crl_sign=True)
    else:
        usage.update(digital_signature=True, key_agreement=leaf_usage == "tls")
    builder = builder.add_extension(x509.KeyUsage(**usage), True)
    return builder.sign(issuer_key, _hash_for(issuer_key))


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
    root_key = new_key(kind)
    root = issue(root_cn, root_key, None, root_key, ca=True, start=start, days=3650, path_len=2)
    k1 = new_key(kind)
    sub1 = issue(root_cn + " Sub 1", k1, root, root_key, ca=True, start=start, path_len=1)
    k2 = new_key(kind)
    sub2 = issue(root_cn + " Sub 2", k2, sub1, k1, ca=True, start=start, path_len=0)
    leaf_key = new_key(leaf_kind or kind)
    leaf = issue(
        cn,
        leaf_key,
        sub2,
        k2,
        ca=False,
        start=leaf_start or start,
        days=leaf_days,
        leaf_usage=leaf_usage,
    )
    return Chain(leaf, leaf_key, (sub2, sub1), root)


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
