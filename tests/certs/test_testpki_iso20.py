"""The ISO 15118-20 test PKI (``make-test-pki``): MO/contract and OEM/provisioning/vehicle
chains beside the -20 V2G/SECC/CPS ones, every certificate P-521 signed with SHA-512
[V2G20-2674], laid out in ``mo20/``, ``oem20/``, ``v2g20/`` with keys, and the -20 OEM and
MO roots in the station store (told apart from the -2 ones by key type)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certs._util import load_certificates, signed_by
from certs.store import Store, is_iso20_certificate
from certs.testpki import CHAINS, ROOT_OF, TestPki

ISO20_CHAINS = ("secc20", "cps20", "contract20", "oem20_prov", "vehicle20")


@pytest.mark.parametrize("chain_name", ISO20_CHAINS)
def test_iso20_chains_are_p521_sha512_to_their_root(pki: TestPki, chain_name: str) -> None:
    names = (*CHAINS[chain_name], ROOT_OF[chain_name])
    certs = pki.chain(*names)
    for cert in certs:
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp521r1"
        assert isinstance(cert.signature_hash_algorithm, hashes.SHA512)
    for cert, issuer in itertools.pairwise(certs):
        assert cert.issuer == issuer.subject and signed_by(cert, issuer)
    assert certs[-1].issuer == certs[-1].subject
    # every private key belongs to its certificate
    for name in names:
        assert pki[name].key.public_key() == pki.cert(name).public_key()


def test_contract20_carries_the_emaid_and_the_vehicle_leaf_the_vin(pki: TestPki) -> None:
    cn = x509.NameOID.COMMON_NAME
    contract = pki.cert("contract20").subject.get_attributes_for_oid(cn)[0].value
    assert contract == pki.options.emaid
    vehicle = pki.cert("vehicle20").subject.get_attributes_for_oid(cn)[0].value
    assert vehicle == pki.options.vin
    assert (
        not pki.cert("vehicle20").extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    )


def test_files_and_station_store(pki: TestPki, pki_dir: Path) -> None:
    for sub, stems in {
        "mo20": ("root", "sub1", "sub2", "contract"),
        "oem20": ("root", "sub1", "sub2", "prov", "vehicle"),
        "v2g20": ("root", "sub1", "sub2", "secc", "cps_sub1", "cps_sub2", "cps"),
    }.items():
        for stem in stems:
            cert = x509.load_pem_x509_certificate((pki_dir / sub / f"{stem}.pem").read_bytes())
            key = serialization.load_pem_private_key(
                (pki_dir / sub / f"{stem}.key").read_bytes(), None
            )
            assert key.public_key() == cert.public_key(), f"{sub}/{stem}"
            assert (pki_dir / sub / f"{stem}.key").stat().st_mode & 0o077 == 0
    for rel, name in {
        "mo20/contract_chain.pem": "contract20",
        "oem20/prov_chain.pem": "oem20_prov",
        "oem20/vehicle_chain.pem": "vehicle20",
        "v2g20/cps_chain.pem": "cps20",
    }.items():
        assert load_certificates((pki_dir / rel).read_bytes()) == pki.chain(*CHAINS[name])
    assert (pki_dir / "mo20/emaid.txt").read_text().strip() == pki.options.emaid

    store = Store(pki_dir / "station")
    for kind, iso2_root, iso20_root in (
        ("mo", "mo_root", "mo20_root"),
        ("oem", "oem_root", "oem20_root"),
        ("v2g", "v2g_root", "v2g20_root"),
    ):
        assert pki.cert(iso20_root) in store.roots_for(kind, iso20=True)
        assert pki.cert(iso2_root) not in store.roots_for(kind, iso20=True)
        assert pki.cert(iso2_root) in store.roots_for(kind, iso20=False)
        assert pki.cert(iso20_root) not in store.roots_for(kind, iso20=False)
    assert is_iso20_certificate(pki.cert("vehicle20"))
    assert not is_iso20_certificate(pki.cert("oem_prov"))
