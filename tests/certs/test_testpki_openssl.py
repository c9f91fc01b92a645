"""The test PKI: every chain verifies with `openssl verify` (an independent implementation),
with the right partial chains, and the certificates carry the ISO 15118-2 profile fields."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs._util import domain_component, load_certificates
from certs.emaid import is_valid
from certs.testpki import TestPki
from tests.certs.conftest import openssl

# (chain file, trust anchor file, purpose)
CHAINS = [
    ("v2g/secc_chain.pem", "v2g/root.pem"),
    ("v2g/cps_chain.pem", "v2g/root.pem"),
    ("v2g2/secc_chain.pem", "v2g2/root.pem"),
    ("v2g20/secc_chain.pem", "v2g20/root.pem"),
    ("mo/contract_chain.pem", "mo/root.pem"),
    ("oem/prov_chain.pem", "oem/root.pem"),
    ("csms/server_chain.pem", "csms/root.pem"),
    ("csms/cs_chain.pem", "csms/root.pem"),
    ("v2g20/cps_chain.pem", "v2g20/root.pem"),
    ("mo20/contract_chain.pem", "mo20/root.pem"),
    ("oem20/prov_chain.pem", "oem20/root.pem"),
    ("oem20/vehicle_chain.pem", "oem20/root.pem"),
]


def _verify(pki_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [openssl(), "verify", *args],
        check=False,
        cwd=pki_dir,
        capture_output=True,
        text=True,
        timeout=30,
    )


def _split(pki_dir: Path, chain_file: str, tmp_path: Path) -> tuple[Path, Path | None]:
    certs = (pki_dir / chain_file).read_bytes().split(b"-----END CERTIFICATE-----\n")
    blocks = [c + b"-----END CERTIFICATE-----\n" for c in certs if c.strip()]
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(blocks[0])
    if len(blocks) == 1:
        return leaf, None
    untrusted = tmp_path / "untrusted.pem"
    untrusted.write_bytes(b"".join(blocks[1:]))
    return leaf, untrusted


@pytest.mark.parametrize(("chain_file", "root_file"), CHAINS)
def test_openssl_verifies_every_chain(
    pki_dir: Path, tmp_path: Path, chain_file: str, root_file: str
) -> None:
    leaf, untrusted = _split(pki_dir, chain_file, tmp_path)
    extra = ["-untrusted", str(untrusted)] if untrusted else []
    result = _verify(pki_dir, "-x509_strict", "-CAfile", root_file, *extra, str(leaf))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{leaf}: OK" in result.stdout


@pytest.mark.parametrize(("chain_file", "root_file"), CHAINS[:6])
def test_partial_chains(pki_dir: Path, tmp_path: Path, chain_file: str, root_file: str) -> None:
    """Sub-CA 2 alone as trust anchor verifies with -partial_chain, and only with it;
    the chain without the root's trust fails."""
    leaf, untrusted = _split(pki_dir, chain_file, tmp_path)
    assert untrusted is not None
    blocks = untrusted.read_bytes().split(b"-----END CERTIFICATE-----\n")
    sub2 = tmp_path / "sub2.pem"
    sub2.write_bytes(blocks[0] + b"-----END CERTIFICATE-----\n")
    ok = _verify(pki_dir, "-partial_chain", "-CAfile", str(sub2), str(leaf))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    no_partial = _verify(pki_dir, "-CAfile", str(sub2), str(leaf))
    assert no_partial.returncode != 0
    no_root = _verify(pki_dir, "-CAfile", str(untrusted), str(leaf))
    assert no_root.returncode != 0
    wrong_root = "mo/root.pem" if root_file != "mo/root.pem" else "v2g/root.pem"
    mixed = _verify(pki_dir, "-CAfile", wrong_root, "-untrusted", str(untrusted), str(leaf))
    assert mixed.returncode != 0


def test_second_v2g_root_does_not_verify_first_chain(pki_dir: Path, tmp_path: Path) -> None:
    leaf, untrusted = _split(pki_dir, "v2g/secc_chain.pem", tmp_path)
    result = _verify(pki_dir, "-CAfile", "v2g2/root.pem", "-untrusted", str(untrusted), str(leaf))
    assert result.returncode != 0


def _bc(cert: x509.Certificate) -> x509.BasicConstraints:
    ext = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert ext.critical
    return ext.value


def _ku(cert: x509.Certificate) -> x509.KeyUsage:
    ext = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ext.critical
    return ext.value


ISO20_ITEMS = (
    *("v2g20_root", "cpo20_sub1", "cpo20_sub2", "secc20", "cps20_sub1", "cps20_sub2", "cps20"),
    *("mo20_root", "mo20_sub1", "mo20_sub2", "contract20"),
    *("oem20_root", "oem20_sub1", "oem20_sub2", "oem20_prov", "vehicle20"),
)


def test_profiles(pki: TestPki) -> None:
    for name, issued in pki.items.items():
        cert = issued.certificate
        key = cert.public_key()
        # ISO 15118-2: P-256 with SHA-256; ISO 15118-20: P-521 with SHA-512 throughout
        curve, digest = ("secp521r1", "sha512") if name in ISO20_ITEMS else ("secp256r1", "sha256")
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == curve, name
        assert cert.signature_hash_algorithm is not None
        assert cert.signature_hash_algorithm.name == digest, name
        assert cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert set(ISO20_ITEMS) <= set(pki.items)
    for prefix in ("cpo", "mo", "oem", "cps", "cpo2", "cpo20", "cps20", "mo20", "oem20"):
        assert _bc(pki.cert(f"{prefix}_sub1")).path_length == 1
        assert _bc(pki.cert(f"{prefix}_sub2")).path_length == 0
        for level in ("sub1", "sub2"):
            ku = _ku(pki.cert(f"{prefix}_{level}"))
            assert ku.key_cert_sign and ku.crl_sign and not ku.digital_signature
    for root in (
        *("v2g_root", "mo_root", "oem_root", "v2g_root2"),
        *("v2g20_root", "mo20_root", "oem20_root"),
    ):
        assert _bc(pki.cert(root)).ca and _bc(pki.cert(root)).path_length == 2
    secc = pki.cert("secc")
    assert not _bc(secc).ca
    assert secc.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "DE*ABC*E1234567*1"
    assert domain_component(secc.subject) == "CPO"
    assert _ku(secc).digital_signature and _ku(secc).key_agreement
    secc20 = pki.cert("secc20")
    assert secc20.subject == secc.subject and not _bc(secc20).ca
    assert _ku(secc20).digital_signature
    contract = pki.cert("contract")
    cn = str(contract.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
    assert is_valid(cn, require_check_digit=True) and len(cn) == 15
    assert domain_component(contract.subject) == "MO"
    assert _ku(contract).digital_signature and _ku(contract).content_commitment
    assert domain_component(pki.cert("oem_prov").subject) == "OEM"
    assert domain_component(pki.cert("cps").subject) == "CPS"
    cs = pki.cert("cs_client")
    assert cs.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CS-SECC-0001"
    assert cs.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Test CPO"
    eku = cs.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    lifetime = secc.not_valid_after_utc - secc.not_valid_before_utc
    assert lifetime.days == 365


def test_files_and_modes(pki_dir: Path) -> None:
    keys = list(pki_dir.rglob("*.key")) + list(pki_dir.rglob("key.pem"))
    assert len(keys) > 20
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    for pem in pki_dir.glob("*/*.pem"):
        assert load_certificates(pem.read_bytes())
    assert not list(pki_dir.rglob(".*.tmp"))
    station = pki_dir / "station"
    for private in ("leaf", "pending"):
        assert stat.S_IMODE((station / private).stat().st_mode) == 0o700
