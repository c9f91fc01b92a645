"""The -20 EV's Plug & Charge material and signatures (sans-I/O).

ISO 15118-20 signs EV messages with a detached xmldsig Signature in the MessageHeader: each
Reference names a signed element by ``#Id`` and carries the SHA-512 digest of that element
encoded as an EXI fragment of the CommonMessages schema set; the SignatureValue is over the
SignedInfo encoded as an EXI fragment of xmldsig alone, with the contract (or OEM
provisioning) key: ECDSA secp521r1 / SHA-512 written raw as r || s (132 bytes), or Ed448
(114 bytes).  The EV signs PnC_AReqAuthorizationMode (AuthorizationReq, contract key),
SignedMeteringData (MeteringConfirmationReq, contract key) and the
OEMProvisioningCertificateChain (CertificateInstallationReq, OEM provisioning key).

:class:`Ev20Faults` makes the EV misbehave the ways an attacker would (for the station's
attack tests): a tampered signature, a signature over a stale GenChallenge, a signature
with a key on the wrong curve.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from secc import codec

CANONICAL_EXI = "http://www.w3.org/TR/canonical-exi/"
DIGEST_SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
SIGNATURE_ECDSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"
SIGNATURE_ED448 = "http://www.w3.org/2021/04/xmldsig-more#eddsa-ed448"

Iso20Key = ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey


@dataclass(frozen=True, slots=True)
class Ev20Faults:
    """Attacks the EV can make on purpose (all off by default).

    - ``tamper_signature``: flip a bit of the SignatureValue after signing;
    - ``wrong_challenge``: sign and send a GenChallenge other than the station's;
    - ``wrong_curve``: sign with a fresh P-256 key (the SignatureMethod still says
      ecdsa-sha512, the contract certificate's key is P-521);
    - ``no_signature``: send PnC_AReqAuthorizationMode without a header Signature;
    - ``tamper_metering``: sign MeteringConfirmationReq's SignedMeteringData, then change
      its meter reading (the authorization itself stays valid).
    """

    tamper_signature: bool = False
    wrong_challenge: bool = False
    wrong_curve: bool = False
    no_signature: bool = False
    tamper_metering: bool = False


@dataclass(frozen=True, slots=True)
class Ev20Credentials:
    """What a -20 Plug & Charge EV holds: its contract chain and key (leaf first, DER),
    the eMAID, its OEM provisioning chain and key (certificate installation) and the -20
    V2G roots it trusts (their issuer/serial go into CertificateInstallationReq)."""

    contract_chain: tuple[bytes, ...] = ()
    contract_key: Iso20Key | None = None
    emaid: str | None = None
    oem_chain: tuple[bytes, ...] = ()
    oem_key: Iso20Key | None = None
    v2g_roots: tuple[x509.Certificate, ...] = ()

    @property
    def has_contract(self) -> bool:
        return bool(self.contract_chain) and self.contract_key is not None


def _der_chain(path: Path) -> tuple[bytes, ...]:
    certs = x509.load_pem_x509_certificates(path.read_bytes())
    return tuple(c.public_bytes(serialization.Encoding.DER) for c in certs)


def _key(path: Path) -> Iso20Key:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey):
        raise ValueError(f"{path}: not an ECDSA or Ed448 private key")
    return key


def load_credentials20(
    pki_dir: Path,
    *,
    contract_chain: Path | None = None,
    contract_key: Path | None = None,
    oem_chain: Path | None = None,
    oem_key: Path | None = None,
    with_contract: bool = True,
) -> Ev20Credentials:
    """The -20 EV's material, by default from a ``secc certs make-test-pki`` directory
    (``mo20/contract_chain.pem`` + ``mo20/contract.key``, ``oem20/prov_chain.pem`` +
    ``oem20/prov.key``, ``v2g20/root.pem``); each file can be given instead.  No root's
    private key is read.  ``with_contract=False``: an EV without a contract yet."""
    contract: tuple[bytes, ...] = ()
    ckey: Iso20Key | None = None
    emaid = None
    if with_contract:
        contract = _der_chain(contract_chain or pki_dir / "mo20" / "contract_chain.pem")
        ckey = _key(contract_key or pki_dir / "mo20" / "contract.key")
        emaid = emaid_of(contract[0])
    oem_path = oem_chain or pki_dir / "oem20" / "prov_chain.pem"
    oem: tuple[bytes, ...] = ()
    okey: Iso20Key | None = None
    if oem_path.exists():
        oem = _der_chain(oem_path)
        okey = _key(oem_key or pki_dir / "oem20" / "prov.key")
    root_path = pki_dir / "v2g20" / "root.pem"
    roots = (
        tuple(x509.load_pem_x509_certificates(root_path.read_bytes())) if root_path.exists() else ()
    )
    return Ev20Credentials(contract, ckey, emaid, oem, okey, roots)


def emaid_of(leaf_der: bytes) -> str:
    """The eMAID a contract certificate carries (its subject CN)."""
    leaf = x509.load_der_x509_certificate(leaf_der)
    return str(leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def signature_method(key: Iso20Key) -> str:
    return SIGNATURE_ED448 if isinstance(key, ed448.Ed448PrivateKey) else SIGNATURE_ECDSA_SHA512


def raw_sign(key: Iso20Key, data: bytes) -> bytes:
    """Ed448, or ECDSA with SHA-512 as raw r || s (each the curve's byte length)."""
    if isinstance(key, ed448.Ed448PrivateKey):
        return key.sign(data)
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA512())))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def sign(fragments: Mapping[str, bytes], key: Iso20Key, faults: Ev20Faults | None = None) -> Any:
    """An xmldsig Signature (codec value) over the EXI ``fragments`` by Id, signed by ``key``."""
    xd = codec.schema_module("xmldsig")
    faults = faults or Ev20Faults()
    signer: Iso20Key = ec.generate_private_key(ec.SECP256R1()) if faults.wrong_curve else key
    method = signature_method(key)
    signed_info = xd.SignedInfo(
        canonicalization_method=xd.CanonicalizationMethod(algorithm=CANONICAL_EXI),
        signature_method=xd.SignatureMethod(algorithm=method),
        reference=tuple(
            xd.Reference(
                uri="#" + element_id,
                transforms=xd.Transforms(transform=(xd.Transform(algorithm=CANONICAL_EXI),)),
                digest_method=xd.DigestMethod(algorithm=DIGEST_SHA512),
                digest_value=hashlib.sha512(fragment).digest(),
            )
            for element_id, fragment in fragments.items()
        ),
    )
    value = raw_sign(signer, codec.encode_fragment(signed_info))
    if faults.tamper_signature:
        value = bytes([value[0] ^ 0x01]) + value[1:]
    return xd.Signature(signed_info=signed_info, signature_value=xd.SignatureValue(value=value))
