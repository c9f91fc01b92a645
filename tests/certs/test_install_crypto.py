"""CertificateInstallationRes crypto: the back end seals, the EV opens, the station checks."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash

from certs._util import der
from certs.install_crypto import (
    InstallCryptoError,
    chain_der,
    check_response,
    open_contract_key,
    seal_contract_key,
    session_key,
    sign_response,
)
from certs.testpki import CHAINS, TestPki
from certs.xmldsig import SignedInfo, digest


def test_seal_open_round_trip(pki: TestPki) -> None:
    contract_key = pki["contract"].key
    ev_key = pki["oem_prov"].key
    sealed = seal_contract_key(
        contract_key, ev_key.public_key(), random_bytes=lambda n: b"\x11" * n
    )
    assert len(sealed.dh_public_key) == 65 and sealed.dh_public_key[0] == 4
    assert len(sealed.encrypted_private_key) == 48
    assert sealed.encrypted_private_key[:16] == b"\x11" * 16
    opened = open_contract_key(
        sealed.encrypted_private_key,
        sealed.dh_public_key,
        ev_key,
        expected_public_key=pki.cert("contract").public_key(),  # type: ignore[arg-type]
    )
    assert opened.private_numbers() == contract_key.private_numbers()


def test_kdf_is_concatenation_kdf_with_iso_other_info() -> None:
    """Recompute by hand: Z, then SHA-256(counter || Z || 0x01 0x55 0x56), first 16 bytes."""
    a = ec.generate_private_key(ec.SECP256R1())
    b = ec.generate_private_key(ec.SECP256R1())
    z = a.exchange(ec.ECDH(), b.public_key())
    h = hashes.Hash(hashes.SHA256())
    h.update(b"\x00\x00\x00\x01" + z + b"\x01\x55\x56")
    assert session_key(a, b.public_key()) == h.finalize()[:16]
    assert session_key(b, a.public_key()) == session_key(a, b.public_key())
    ref = ConcatKDFHash(hashes.SHA256(), 16, b"\x01UV").derive(z)
    assert ref == session_key(a, b.public_key())


def test_ciphertext_is_aes_128_cbc_of_the_scalar(pki: TestPki) -> None:
    ev_key = pki["oem_prov"].key
    eph = ec.generate_private_key(ec.SECP256R1())
    sealed = seal_contract_key(pki["contract"].key, ev_key.public_key(), ephemeral_key=eph)
    key = session_key(eph, ev_key.public_key())
    iv, ct = sealed.encrypted_private_key[:16], sealed.encrypted_private_key[16:]
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    scalar = dec.update(ct) + dec.finalize()
    assert int.from_bytes(scalar, "big") == pki["contract"].key.private_numbers().private_value


def test_open_refuses_bad_input(pki: TestPki) -> None:
    ev_key = pki["oem_prov"].key
    sealed = seal_contract_key(pki["contract"].key, ev_key.public_key())
    with pytest.raises(InstallCryptoError, match="48"):
        open_contract_key(sealed.encrypted_private_key[:47], sealed.dh_public_key, ev_key)
    with pytest.raises(InstallCryptoError, match="DHpublickey"):
        open_contract_key(sealed.encrypted_private_key, sealed.dh_public_key[:64], ev_key)
    with pytest.raises(InstallCryptoError, match="DHpublickey"):
        open_contract_key(sealed.encrypted_private_key, b"\x04" + bytes(64), ev_key)
    wrong_ev = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(InstallCryptoError):
        open_contract_key(
            sealed.encrypted_private_key,
            sealed.dh_public_key,
            wrong_ev,
            expected_public_key=pki.cert("contract").public_key(),  # type: ignore[arg-type]
        )


def _fake_encode(signed_info: SignedInfo) -> bytes:
    """Stand-in for the codec's SignedInfo fragment encoder: deterministic bytes."""
    return b"".join(r.uri.encode() + r.digest_value for r in signed_info.references)


def _response(pki: TestPki) -> dict[str, object]:
    sealed = seal_contract_key(pki["contract"].key, pki["oem_prov"].key.public_key())
    fragments = {
        "ID1": b"chain" + b"".join(chain_der(pki.chain(*CHAINS["contract"]))),
        "ID2": sealed.encrypted_private_key,
        "ID3": sealed.dh_public_key,
        "ID4": pki.options.emaid.encode(),
    }
    signed_info, signature = sign_response(fragments, pki["cps"].key, _fake_encode)
    return {
        "cps_chain": chain_der(pki.chain(*CHAINS["cps"])),
        "contract_chain": chain_der(pki.chain(*CHAINS["contract"])),
        "emaid": pki.options.emaid,
        "signed_info": signed_info,
        "signed_info_fragment": _fake_encode(signed_info),
        "signature": signature,
        "fragments_by_id": fragments,
        "v2g_roots": [pki.cert("v2g_root")],
        "mo_roots": [pki.cert("mo_root")],
    }


def test_check_response(pki: TestPki, now: dt.datetime) -> None:
    good = _response(pki)
    result = check_response(**good, utc_now=now)  # type: ignore[arg-type]
    assert result.ok, result.reason
    tampered = dict(good)
    tampered["fragments_by_id"] = {**good["fragments_by_id"], "ID4": b"DE8AA001234567"}  # type: ignore[dict-item]
    assert check_response(**tampered, utc_now=now).response_code == "FAILED_SignatureError"  # type: ignore[arg-type]
    forged = dict(good, signature=bytes(63) + b"\x01")
    assert check_response(**forged, utc_now=now).response_code == "FAILED_SignatureError"  # type: ignore[arg-type]
    no_cps_root = dict(good, v2g_roots=[pki.cert("mo_root")])
    assert (
        check_response(**no_cps_root, utc_now=now).response_code  # type: ignore[arg-type]
        == "FAILED_NoCertificateAvailable"
    )
    wrong_emaid = dict(good, emaid="DE8AA0012345670")
    assert check_response(**wrong_emaid, utc_now=now).response_code == "FAILED_CertChainError"  # type: ignore[arg-type]
    late = now + dt.timedelta(days=4000)
    assert check_response(**good, utc_now=late).response_code == "FAILED_CertificateExpired"  # type: ignore[arg-type]
    assert digest(good["fragments_by_id"]["ID1"]) == good["signed_info"].references[0].digest_value  # type: ignore[index,union-attr]
    assert der(pki.cert("cps")) == good["cps_chain"][0]  # type: ignore[index]
