"""The cryptography of CertificateInstallationRes / CertificateUpdateRes, both directions.

The back end (CPS / MO) sends the EV a new contract certificate and its private key. The
key travels encrypted for the EV [V2G2-???]:

1. the back end makes an ephemeral P-256 key pair; its public point is ``DHpublickey``;
2. ECDH between the ephemeral private key and the EV's static public key (the OEM
   provisioning certificate for an installation, the old contract certificate for an update)
   gives a shared secret Z;
3. the ISO 15118-2 KDF derives the session key: NIST SP 800-56A concatenation KDF with
   SHA-256, OtherInfo = AlgorithmID 0x01 || PartyUInfo 0x55 ("U") || PartyVInfo 0x56 ("V"),
   128 bits;
4. the 32-byte private scalar is encrypted with AES-128-CBC (no padding), a random IV in
   front: ``ContractSignatureEncryptedPrivateKey`` = IV (16) || ciphertext (32).

The whole response is signed by the CPS leaf: a SignedInfo with References to the
ContractSignatureCertChain, ContractSignatureEncryptedPrivateKey, DHpublickey and eMAID
fragments (see :mod:`certs.xmldsig`). :func:`seal_contract_key` is the back-end side,
:func:`open_contract_key` the EV side, :func:`sign_response` / :func:`check_response` the
signature and chain checks a station or EV makes. Pure: randomness is injected.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from certs._util import CertsError, der
from certs.validate import ChainVerdict, validate_chain
from certs.xmldsig import (
    SignatureError,
    SignedInfo,
    check_references,
    make_signed_info,
    public_key_from_point,
    sign_signed_info,
    verify_signed_info,
)

KDF_OTHER_INFO = b"\x01\x55\x56"  # AlgorithmID 0x01, PartyUInfo "U", PartyVInfo "V"
SESSION_KEY_LENGTH = 16
IV_LENGTH = 16
ENCRYPTED_KEY_LENGTH = IV_LENGTH + 32
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
# The Ids the signature of CertificateInstallationRes covers, by element.
SIGNED_ELEMENTS = (
    "ContractSignatureCertChain",
    "ContractSignatureEncryptedPrivateKey",
    "DHpublickey",
    "eMAID",
)


class InstallCryptoError(CertsError):
    """Encrypted key material that cannot be opened or does not fit."""


@dataclass(frozen=True, slots=True)
class SealedContractKey:
    """What CertificateInstallationRes carries for the private key."""

    dh_public_key: bytes  # 65 bytes, uncompressed point
    encrypted_private_key: bytes  # 48 bytes, IV || AES-128-CBC ciphertext


def session_key(private_key: ec.EllipticCurvePrivateKey, peer: ec.EllipticCurvePublicKey) -> bytes:
    """ECDH P-256 then the ISO 15118-2 concatenation KDF: the 128-bit AES key."""
    shared = private_key.exchange(ec.ECDH(), peer)
    kdf = ConcatKDFHash(
        algorithm=hashes.SHA256(), length=SESSION_KEY_LENGTH, otherinfo=KDF_OTHER_INFO
    )
    return kdf.derive(shared)


def seal_contract_key(
    contract_key: ec.EllipticCurvePrivateKey,
    ev_public_key: ec.EllipticCurvePublicKey,
    *,
    random_bytes: Callable[[int], bytes] = os.urandom,
    ephemeral_key: ec.EllipticCurvePrivateKey | None = None,
) -> SealedContractKey:
    """Back end: encrypt the contract private key for the EV."""
    eph = ephemeral_key or ec.generate_private_key(ec.SECP256R1())
    key = session_key(eph, ev_public_key)
    iv = random_bytes(IV_LENGTH)
    if len(iv) != IV_LENGTH:
        raise ValueError("random_bytes returned the wrong length")
    scalar = contract_key.private_numbers().private_value.to_bytes(32, "big")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(scalar) + encryptor.finalize()
    point = eph.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return SealedContractKey(dh_public_key=point, encrypted_private_key=iv + ciphertext)


def open_contract_key(
    encrypted_private_key: bytes,
    dh_public_key: bytes,
    ev_private_key: ec.EllipticCurvePrivateKey,
    *,
    expected_public_key: ec.EllipticCurvePublicKey | None = None,
) -> ec.EllipticCurvePrivateKey:
    """EV: decrypt the contract private key; check it fits the contract certificate."""
    if len(encrypted_private_key) != ENCRYPTED_KEY_LENGTH:
        raise InstallCryptoError(
            f"ContractSignatureEncryptedPrivateKey is {len(encrypted_private_key)} bytes, "
            f"not {ENCRYPTED_KEY_LENGTH}"
        )
    try:
        peer = public_key_from_point(dh_public_key)
    except SignatureError as exc:
        raise InstallCryptoError(f"DHpublickey: {exc}") from exc
    key = session_key(ev_private_key, peer)
    iv, ciphertext = encrypted_private_key[:IV_LENGTH], encrypted_private_key[IV_LENGTH:]
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    scalar = int.from_bytes(decryptor.update(ciphertext) + decryptor.finalize(), "big")
    if not 0 < scalar < _P256_ORDER:
        raise InstallCryptoError("decrypted value is not a P-256 private key (wrong EV key?)")
    private = ec.derive_private_key(scalar, ec.SECP256R1())
    if expected_public_key is not None and private.public_key() != expected_public_key:
        raise InstallCryptoError("decrypted key does not belong to the contract certificate")
    return private


def sign_response(
    fragments_by_id: Mapping[str, bytes],
    cps_key: ec.EllipticCurvePrivateKey,
    encode_signed_info: Callable[[SignedInfo], bytes],
) -> tuple[SignedInfo, bytes]:
    """Back end: SignedInfo over the fragments and its raw signature by the CPS leaf key.

    ``encode_signed_info`` is the codec's SignedInfo fragment encoder (the caller's).
    """
    signed_info = make_signed_info(fragments_by_id)
    return signed_info, sign_signed_info(encode_signed_info(signed_info), cps_key)


@dataclass(frozen=True, slots=True)
class ResponseCheck:
    """The station's / EV's view of a CertificateInstallationRes."""

    response_code: str
    reason: str
    cps: ChainVerdict | None = None
    contract: ChainVerdict | None = None

    @property
    def ok(self) -> bool:
        return self.response_code == "OK"


def check_response(
    *,
    cps_chain: Sequence[bytes],
    contract_chain: Sequence[bytes],
    emaid: str,
    signed_info: SignedInfo,
    signed_info_fragment: bytes,
    signature: bytes,
    fragments_by_id: Mapping[str, bytes],
    v2g_roots: Sequence[x509.Certificate],
    mo_roots: Sequence[x509.Certificate],
    utc_now: dt.datetime,
) -> ResponseCheck:
    """CPS chain to a V2G root, signature by the CPS leaf, digests, contract chain, eMAID.

    The chains are DER, leaf first. ``mo_roots`` may be empty when the station does not hold
    MO roots: then the contract chain is only checked for shape against the V2G roots too.
    """
    if not cps_chain or not contract_chain:
        return ResponseCheck("FAILED_NoCertificateAvailable", "a chain is missing")
    cps = validate_chain(cps_chain[0], cps_chain[1:], v2g_roots, utc_now, profile="cps")
    if not cps.ok:
        return ResponseCheck(cps.response_code, f"SA provisioning chain: {cps.reason}", cps)
    try:
        check_references(signed_info, fragments_by_id, required_ids=tuple(fragments_by_id))
        leaf_key = cps.chain[0].public_key()
        if not isinstance(
            leaf_key, ec.EllipticCurvePublicKey
        ):  # pragma: no cover - profile checked
            raise SignatureError("CPS key is not EC")
        verify_signed_info(signed_info_fragment, signature, leaf_key)
    except SignatureError as exc:
        return ResponseCheck(exc.response_code, str(exc), cps)
    contract = validate_chain(
        contract_chain[0],
        contract_chain[1:],
        [*mo_roots, *v2g_roots],
        utc_now,
        profile="contract",
        claimed_emaid=emaid,
    )
    if not contract.ok:
        return ResponseCheck(
            contract.response_code, f"contract chain: {contract.reason}", cps, contract
        )
    return ResponseCheck("OK", "signature, chains and eMAID check", cps, contract)


def chain_der(chain: Sequence[x509.Certificate]) -> list[bytes]:
    return [der(c) for c in chain]
