"""The ISO 15118-20 test PKI made with Ed448 (``make-test-pki --iso20-algorithm ed448``):
every -20 certificate an Ed448 key signed Ed448 from its root down, leaves without
keyAgreement (RFC 9295), the chains accepted by the project's -20 chain checks, the files
and the station store; ``secc certs list`` / ``inspect`` name the key type.  P-521 stays the
default."""

from __future__ import annotations

import datetime as dt
import itertools
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import SignatureAlgorithmOID

from certs._util import der, load_certificates, pem, signed_by
from certs.store import Store, is_iso20_certificate
from certs.testpki import (
    CHAINS,
    ROOT_OF,
    TestPki,
    TestPkiOptions,
    build_test_pki,
    issue_certificate,
    new_iso20_key,
    read_issued,
)
from certs.validate import OK, validate_chain, validate_contract_chain
from tests.certs.conftest import openssl

ISO20_CHAINS = ("secc20", "cps20", "contract20", "oem20_prov", "vehicle20")
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def ed_pki() -> TestPki:
    return build_test_pki(NOW, TestPkiOptions(iso20_algorithm="ed448"))


@pytest.fixture(scope="module")
def ed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Made by the real command line, as a lab engineer makes it."""
    directory = tmp_path_factory.mktemp("ed448") / "pki"
    done = secc_certs("make-test-pki", str(directory), "--iso20-algorithm", "ed448")
    assert done.returncode == 0, done.stderr
    assert "ISO 15118-20 (Ed448)" in done.stdout
    return directory


def secc_certs(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "secc.cli.main", "certs", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("chain_name", ISO20_CHAINS)
def test_iso20_chains_are_ed448_to_their_root(ed_pki: TestPki, chain_name: str) -> None:
    names = (*CHAINS[chain_name], ROOT_OF[chain_name])
    certs = ed_pki.chain(*names)
    for cert in certs:
        assert isinstance(cert.public_key(), ed448.Ed448PublicKey)
        assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ED448
        assert is_iso20_certificate(cert)
    for cert, issuer in itertools.pairwise(certs):
        assert cert.issuer == issuer.subject and signed_by(cert, issuer)
    assert certs[-1].issuer == certs[-1].subject and signed_by(certs[-1], certs[-1])
    for name in names:
        assert ed_pki[name].key.public_key() == ed_pki.cert(name).public_key()
    usage = certs[0].extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_agreement  # RFC 9295: Ed448 signs only


def test_the_minus2_hierarchies_stay_p256(ed_pki: TestPki) -> None:
    for name in ("secc", "contract", "oem_prov", "cps", "v2g_root", "mo_root"):
        key = ed_pki.cert(name).public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    assert ed_pki.ecdsa_key("contract") is ed_pki["contract"].key
    with pytest.raises(TypeError, match="Ed448"):
        ed_pki.ecdsa_key("contract20")


def test_p521_stays_the_default() -> None:
    pki = build_test_pki(NOW)
    assert pki.options.iso20_algorithm == "p521"
    key = pki.cert("secc20").public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp521r1"
    with pytest.raises(ValueError, match="iso20_algorithm 'rsa'"):
        TestPkiOptions(iso20_algorithm="rsa")  # type: ignore[arg-type]


def test_the_projects_iso20_checks_accept_the_ed448_chains(ed_pki: TestPki) -> None:
    def check(chain_name: str, **kw: object) -> str:
        leaf, *subs = (der(c) for c in ed_pki.chain(*CHAINS[chain_name]))
        root = ed_pki.cert(ROOT_OF[chain_name])
        if chain_name == "contract20":
            verdict = validate_contract_chain(leaf, subs, [root], NOW, suite="iso20")
        else:
            verdict = validate_chain(leaf, subs, [root], NOW, suite="iso20", **kw)  # type: ignore[arg-type]
        return f"{verdict.response_code}: {verdict.reason}"

    assert check("contract20").startswith(OK)
    assert check("oem20_prov", profile="oem").startswith(OK)
    assert check("cps20", profile="cps").startswith(OK)
    # the same chain under the -2 rules is refused: Ed448 is -20 only
    leaf, *subs = (der(c) for c in ed_pki.chain(*CHAINS["contract20"]))
    assert validate_contract_chain(leaf, subs, [ed_pki.cert("mo20_root")], NOW).response_code != OK


def test_files_and_station_store(ed_dir: Path) -> None:
    for sub, stems in {
        "mo20": ("root", "sub1", "sub2", "contract"),
        "oem20": ("root", "sub1", "sub2", "prov", "vehicle"),
        "v2g20": ("root", "sub1", "sub2", "secc", "cps_sub1", "cps_sub2", "cps"),
    }.items():
        for stem in stems:
            issued = read_issued(ed_dir / sub, stem)  # the key matches its certificate
            assert isinstance(issued.key, ed448.Ed448PrivateKey)
            assert issued.key.public_key() == issued.certificate.public_key()
    store = Store(ed_dir / "station")
    chain20, key20 = store.leaf_chain("v2g20"), store.leaf_key_any("v2g20")
    assert isinstance(key20, ed448.Ed448PrivateKey)
    assert [c.subject for c in chain20] == [
        c.subject for c in load_certificates((ed_dir / "v2g20" / "secc_chain.pem").read_bytes())
    ]
    v2g_roots = store.roots("v2g")
    assert sum(isinstance(r.public_key(), ed448.Ed448PublicKey) for r in v2g_roots) == 1


def test_certs_list_and_inspect_show_ed448(ed_dir: Path) -> None:
    listed = secc_certs("list", "--store", str(ed_dir / "station"))
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if not line.startswith(" ")]
    ed_rows = [line for line in rows if line.endswith("  Ed448")]
    # the -20 V2G, MO and OEM roots and the -20 SECC chain (slot v2g20)
    assert len(ed_rows) == 4, listed.stdout
    assert sum(r.startswith("V2GCertificateChain") for r in ed_rows) == 1
    assert sum("Root CA 20" in r for r in ed_rows) == 3
    assert all(r.endswith("EC secp256r1 (256 bit)") for r in rows if r not in ed_rows)

    shown = secc_certs("inspect", str(ed_dir / "v2g20" / "secc_chain.pem"))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("  key         Ed448\n") == 3, shown.stdout
    assert "certificate 1 of 3" in shown.stdout and "CN=DE*ABC*E1234567*1" in shown.stdout
    key = secc_certs("inspect", str(ed_dir / "v2g20" / "secc.key"))
    assert key.returncode == 0 and "  type        Ed448\n" in key.stdout, key.stdout


@pytest.mark.parametrize(
    "chain_file",
    [
        "v2g20/secc_chain.pem",
        "v2g20/cps_chain.pem",
        "mo20/contract_chain.pem",
        "oem20/prov_chain.pem",
        "oem20/vehicle_chain.pem",
    ],
)
def test_openssl_verifies_the_ed448_chains(ed_dir: Path, tmp_path: Path, chain_file: str) -> None:
    """An independent implementation: ``openssl verify -x509_strict`` to the -20 root."""
    blocks = load_certificates((ed_dir / chain_file).read_bytes())
    leaf, untrusted = tmp_path / "leaf.pem", tmp_path / "untrusted.pem"
    leaf.write_bytes(pem(blocks[:1]))
    untrusted.write_bytes(pem(blocks[1:]))
    root = ed_dir / chain_file.split("/")[0] / "root.pem"
    done = subprocess.run(
        [openssl(), "verify", "-x509_strict", "-CAfile", str(root), "-untrusted",
         str(untrusted), str(leaf)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and f"{leaf}: OK" in done.stdout, done.stdout + done.stderr


def test_the_ed448_secc_chain_fits_the_secc_profile(ed_pki: TestPki) -> None:
    """The SECC profile asks keyAgreement of an ECDSA leaf, not of an Ed448 one (which
    RFC 9295 forbids it): ``secc commission`` and the renewal check accept the chain."""
    leaf, *subs = (der(c) for c in ed_pki.chain(*CHAINS["secc20"]))
    roots = [ed_pki.cert("v2g20_root")]
    verdict = validate_chain(leaf, subs, roots, NOW, profile="secc", suite="iso20")
    assert verdict.response_code == OK, verdict.reason
    # an ECDSA SECC leaf without keyAgreement is still refused
    p521 = build_test_pki(NOW)
    sub2 = p521["cpo20_sub2"]
    bare = issue_certificate(
        name="bare",
        subject=p521.cert("secc20").subject,
        issuer=sub2,
        not_before=NOW - dt.timedelta(hours=1),
        not_after=NOW + dt.timedelta(days=30),
        ca=False,
        usage=("digital_signature",),
        key=new_iso20_key("p521"),
        hash_algorithm=hashes.SHA512(),
    )
    subs20 = [der(c) for c in p521.chain("cpo20_sub2", "cpo20_sub1")]
    refused = validate_chain(
        der(bare.certificate), subs20, [p521.cert("v2g20_root")], NOW, profile="secc",
        suite="iso20",
    )  # fmt: skip
    assert refused.response_code != OK and "missing key_agreement" in refused.reason
