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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from certs.store import ISO2_KEYS, ISO20_KEYS
from secc import codec
from secc.ev.pnc2 import (
    EvFileError,
    check_pair,
    emaid_of,
    pki_dir_files,
    read_certificates,
    read_chain,
    read_key,
)

CANONICAL_EXI = "http://www.w3.org/TR/canonical-exi/"
DIGEST_SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
SIGNATURE_ECDSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"
SIGNATURE_ED448 = "http://www.w3.org/2021/04/xmldsig-more#eddsa-ed448"

Iso20Key = ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey
# -20's keys, and P-256 too: a lab EV may present a -2 contract to see it refused
KEY_KINDS = (*ISO20_KEYS, *ISO2_KEYS)


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


def load_credentials20(
    pki_dir: Path | None,
    *,
    contract_chain: Path | None = None,
    contract_key: Path | None = None,
    oem_chain: Path | None = None,
    oem_key: Path | None = None,
    v2g_roots: Sequence[Path] | None = None,
    with_contract: bool = True,
) -> Ev20Credentials:
    """The -20 EV's material from its files; with ``pki_dir`` (a ``secc certs
    make-test-pki`` directory) each file not given is taken from there
    (``mo20/contract_chain.pem`` + ``mo20/contract.key``, ``oem20/prov_chain.pem`` +
    ``oem20/prov.key`` when present, ``v2g20/root.pem``).  No root's private key is read.
    ``with_contract=False``: an EV without a contract yet.  A missing or unusable file is
    an :class:`~secc.ev.pnc2.EvFileError` naming it."""
    d = pki_dir_files(pki_dir, "iso20") if pki_dir is not None else {}
    contract: tuple[bytes, ...] = ()
    ckey: Iso20Key | None = None
    emaid = None
    if with_contract:
        chain_path, key_path = (
            contract_chain or d.get("contract_chain"),
            contract_key or d.get("contract_key"),
        )
        if chain_path is None or key_path is None:
            raise EvFileError("Plug & Charge needs the contract chain and key")
        contract = read_chain(chain_path, "contract chain")
        ckey = read_key(key_path, "contract key", KEY_KINDS)
        check_pair(contract[0], ckey, chain_path, key_path)
        emaid = emaid_of(contract[0])
    oem_path = oem_chain or d.get("oem_chain")
    okey_path = oem_key or d.get("oem_key")
    oem: tuple[bytes, ...] = ()
    okey: Iso20Key | None = None
    if oem_path is not None and (oem_chain is not None or oem_path.exists()):
        if okey_path is None:
            raise EvFileError(f"the OEM provisioning chain {oem_path} needs its key")
        oem = read_chain(oem_path, "OEM provisioning chain")
        okey = read_key(okey_path, "OEM provisioning key", KEY_KINDS)
        check_pair(oem[0], okey, oem_path, okey_path)
    if v2g_roots is None:
        root = d.get("v2g_root")
        v2g_roots = [root] if root is not None and root.exists() else []
    roots = tuple(c for p in v2g_roots for c in read_certificates(p, "V2G root certificate"))
    return Ev20Credentials(contract, ckey, emaid, oem, okey, roots)


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
