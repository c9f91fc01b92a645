"""`secc certs ...`: the commands, their output and exit codes (0 ok, 1 failed, 2 usage)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from certs._util import fingerprint, load_certificate, load_certificates, pem
from certs.cli import main
from certs.csr import sign_csr
from certs.emaid import is_valid
from certs.store import Store, load_private_key
from certs.testpki import Issued

PROG = "secc certs"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv), PROG)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def pki_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli") / "pki"
    assert (
        main(["make-test-pki", str(directory), "--second-v2g-root", "--leaf-days", "200"], PROG)
        == 0
    )
    return directory


def test_make_test_pki_and_list(capsys: pytest.CaptureFixture[str], pki_root: Path) -> None:
    store = str(pki_root / "station")
    code, out, _ = run(capsys, "list", "--store", store)
    assert code == 0
    # the -2 root, the second -2 root, the ISO 15118-20 root (P-521)
    assert out.count("V2GRootCertificate") == 3
    for kind in (
        "MORootCertificate",
        "OEMRootCertificate",
        "CSMSRootCertificate",
        "ManufacturerRootCertificate",
        "V2GCertificateChain",
        "ChargingStationCertificate",
    ):
        assert kind in out
    code, out, _ = run(capsys, "list", "--store", store, "--json", "--type", "V2GCertificateChain")
    entries = json.loads(out)  # one SECC chain per V2G root: slots "v2g", "v2g.2", "v2g20"
    assert [e["certificateType"] for e in entries] == ["V2GCertificateChain"] * 3
    assert all(len(e["childCertificateHashData"]) == 2 for e in entries)
    entry = entries[0]
    assert set(entry["certificateHashData"]) == {
        "hashAlgorithm",
        "issuerNameHash",
        "issuerKeyHash",
        "serialNumber",
    }


def test_inspect(capsys: pytest.CaptureFixture[str], pki_root: Path) -> None:
    code, out, _ = run(capsys, "inspect", str(pki_root / "mo" / "contract_chain.pem"))
    assert code == 0
    assert "certificate 1 of 3" in out and "eMAID       DE8AACA2B3C4D5L (DE-8AA-CA2B3C4D5-L)" in out
    for field in (
        "subject",
        "issuer",
        "valid",
        "key         EC secp256r1",
        "sha256",
        "hash data",
        "OCSP",
    ):
        assert field in out
    der_file = pki_root / "leaf.der"
    cert = load_certificate((pki_root / "v2g" / "secc.pem").read_bytes())
    der_file.write_bytes(cert.public_bytes(Encoding.DER))
    code, out, _ = run(capsys, "inspect", str(der_file))
    assert code == 0 and "DE*ABC*E1234567*1" in out
    (pki_root / "junk.pem").write_bytes(
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    )
    code, _, err = run(capsys, "inspect", str(pki_root / "junk.pem"))
    assert code == 1 and "not a certificate" in err
    code, _, err = run(capsys, "inspect", str(pki_root / "missing.pem"))
    assert code == 1 and "No such file" in err


def test_verify(capsys: pytest.CaptureFixture[str], pki_root: Path) -> None:
    store = str(pki_root / "station")
    chain = str(pki_root / "mo" / "contract_chain.pem")
    code, out, _ = run(capsys, "verify", "--store", store, chain, "--emaid", "DE-8AA-CA2B3C4D5-L")
    assert code == 0 and out.startswith("OK")
    code, _, err = run(capsys, "verify", "--store", store, chain, "--emaid", "DE8AA0012345670")
    assert code == 1 and err.startswith("FAILED_CertChainError")
    code, _, err = run(capsys, "verify", "--store", store, chain, "--at", "2045-01-01T00:00:00Z")
    assert code == 1 and err.startswith("FAILED_CertificateExpired")
    code, out, _ = run(
        capsys,
        "verify",
        "--store",
        store,
        "--profile",
        "secc",
        str(pki_root / "v2g2" / "secc_chain.pem"),
    )
    assert code == 0, out
    code, _, err = run(
        capsys,
        "verify",
        "--store",
        store,
        "--profile",
        "secc",
        str(pki_root / "csms" / "cs_chain.pem"),
    )
    assert code == 1 and err.startswith("FAILED_NoCertificateAvailable")


def test_csr_install_signed(
    capsys: pytest.CaptureFixture[str], pki_root: Path, tmp_path: Path
) -> None:
    store = str(pki_root / "station")
    csr_file = tmp_path / "secc.csr"
    code, out, _ = run(
        capsys,
        "csr",
        "--store",
        store,
        "--type",
        "V2GCertificate",
        "--cn",
        "DE*ABC*E1234567*1",
        "--org",
        "Test CPO",
        "--country",
        "DE",
        "-o",
        str(csr_file),
    )
    assert code == 0 and "pending" in out
    sub2 = Issued(
        "cpo_sub2",
        load_certificate((pki_root / "v2g" / "sub2.pem").read_bytes()),
        load_private_key((pki_root / "v2g" / "sub2.key").read_bytes(), None),
    )
    leaf = sign_csr(csr_file.read_bytes(), sub2, dt.datetime.now(dt.UTC))
    chain_file = tmp_path / "signed.pem"
    chain_file.write_bytes(
        pem([leaf])
        + (pki_root / "v2g" / "sub2.pem").read_bytes()
        + (pki_root / "v2g" / "sub1.pem").read_bytes()
    )
    code, out, _ = run(
        capsys, "install", "--store", store, "--signed", "V2GCertificate", str(chain_file)
    )
    assert code == 0 and out.startswith("Accepted")
    assert Store(Path(store)).leaf_chain("v2g")[0] == leaf
    code, _, err = run(
        capsys, "install", "--store", store, "--signed", "V2GCertificate", str(chain_file)
    )
    assert code == 1 and "no pending" in err


def test_install_root_and_delete(
    capsys: pytest.CaptureFixture[str], pki_root: Path, tmp_path: Path
) -> None:
    store = str(tmp_path / "store")
    assert run(capsys, "init", "--store", store)[0] == 0
    code, out, _ = run(
        capsys, "install", "--store", store, "--root", "mo", str(pki_root / "mo" / "root.pem")
    )
    assert code == 0 and "installed mo trust anchor" in out
    code, _, err = run(
        capsys, "install", "--store", store, "--root", "v2g", str(pki_root / "v2g" / "secc.pem")
    )
    assert code == 1 and "not a CA" in err
    code, _, _ = run(
        capsys,
        "install",
        "--store",
        store,
        "--leaf",
        "v2g",
        str(pki_root / "v2g" / "secc_chain.pem"),
    )
    assert code == 2  # --leaf needs --key
    code, out, _ = run(
        capsys,
        "install",
        "--store",
        store,
        "--leaf",
        "v2g",
        str(pki_root / "v2g" / "secc_chain.pem"),
        "--key",
        str(pki_root / "v2g" / "secc.key"),
    )
    assert code == 0
    code, out, _ = run(capsys, "list", "--store", store, "--json")
    items = json.loads(out)
    root_hash = next(i for i in items if i["certificateType"] == "MORootCertificate")[
        "certificateHashData"
    ]
    code, out, _ = run(capsys, "delete", "--store", store, "--hash-data", json.dumps(root_hash))
    assert code == 0 and out.strip() == "Accepted"
    code, _, err = run(capsys, "delete", "--store", store, "--hash-data", json.dumps(root_hash))
    assert code == 1 and err.strip() == "NotFound"
    code, _, _ = run(capsys, "delete", "--store", store, "--hash-data", "{not json")
    assert code == 2
    code, _, _ = run(capsys, "delete", "--store", store)
    assert code == 2
    leaf_fp = load_certificates((pki_root / "v2g" / "secc_chain.pem").read_bytes())[0]
    code, out, _ = run(capsys, "delete", "--store", store, "--sha256", fingerprint(leaf_fp))
    assert code == 0 and out.strip() == "Accepted"


def test_expiry_exit_codes(capsys: pytest.CaptureFixture[str], pki_root: Path) -> None:
    store = str(pki_root / "station")
    code, out, _ = run(capsys, "expiry", "--store", store)
    assert code == 0 and "RENEW" not in out
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=185)).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, out, _ = run(capsys, "expiry", "--store", store, "--at", later)
    assert code == 1 and "RENEW" in out
    code, out, _ = run(capsys, "expiry", "--store", store, "--at", later, "--days", "5", "--json")
    assert code == 0 and not any(e["renewalDue"] for e in json.loads(out))


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([], PROG) == 2
    assert main(["bogus"], PROG) == 2
    assert main(["verify"], PROG) == 2
    assert main(["--help"], PROG) == 0
    capsys.readouterr()


def test_console_script_dispatch(tmp_path: Path) -> None:
    secc = Path(sys.executable).parent / "secc"
    assert secc.exists()
    result = subprocess.run(
        [str(secc), "certs", "make-test-pki", str(tmp_path / "p")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    cn = load_certificate(
        (tmp_path / "p" / "mo" / "contract.pem").read_bytes()
    ).subject.rfc4514_string()
    assert is_valid(cn.split("CN=")[1])
    bad = subprocess.run(
        [str(secc), "certs", "list", "--store", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1, bad.stdout
    assert "does not exist" in bad.stderr and "no certificates" not in bad.stdout
    again = subprocess.run(
        [str(secc), "certs", "make-test-pki", str(tmp_path / "p")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 1 and "--force" in again.stderr, again.stderr


# --- a store that is not there, a key given to inspect, an existing PKI -------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["list"],
        ["list", "--json"],
        ["expiry"],
        ["delete", "--sha256", "00"],
        ["verify", "PLACEHOLDER"],
    ],
)
def test_a_store_that_does_not_exist_is_an_error(
    capsys: pytest.CaptureFixture[str], pki_root: Path, tmp_path: Path, argv: list[str]
) -> None:
    argv = [str(pki_root / "mo" / "contract_chain.pem") if a == "PLACEHOLDER" else a for a in argv]
    missing = tmp_path / "no-such-store"
    code, out, err = run(capsys, *argv, "--store", str(missing))
    assert code == 1 and out == "", out
    assert f"the store {missing} does not exist" in err and "secc certs init" in err
    # a directory that is no store (a typo pointing one level up) is refused the same way
    code, out, err = run(capsys, *argv, "--store", str(pki_root))
    assert code == 1 and "is not a certificate store" in err, err
    # an empty store that exists is a store without certificates, not an error
    empty = tmp_path / "empty"
    assert run(capsys, "init", "--store", str(empty))[0] == 0
    if argv[0] == "list":
        code, out, _ = run(capsys, *argv, "--store", str(empty))
        assert code == 0 and ("no certificates installed" in out or out.strip() == "[]")


def test_inspect_a_private_key_says_it_is_one(
    capsys: pytest.CaptureFixture[str], pki_root: Path, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448

    for key, kind in (
        (ec.generate_private_key(ec.SECP256R1()), "EC secp256r1 (256 bit)"),
        (ec.generate_private_key(ec.SECP521R1()), "EC secp521r1 (521 bit)"),
        (ed448.Ed448PrivateKey.generate(), "Ed448"),
    ):
        secret = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        for encoding, name in ((serialization.Encoding.PEM, "k.pem"), (None, "k.der")):
            path = tmp_path / name
            path.write_bytes(
                secret
                if encoding is None
                else key.private_bytes(
                    encoding, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
            code, out, err = run(capsys, "inspect", str(path))
            assert code == 0, err
            assert out.startswith("private key, not a certificate"), out
            assert f"type        {kind}" in out
            # no secret printed: neither the PEM body nor the DER's hex nor the scalar
            assert "PRIVATE KEY" not in out and secret.hex() not in out
            if isinstance(key, ec.EllipticCurvePrivateKey):
                scalar = key.private_numbers().private_value
                assert f"{scalar:x}" not in out and str(scalar) not in out
    # the PKI's own SECC key (SEC1 "EC PRIVATE KEY" or PKCS#8, as make-test-pki wrote it)
    code, out, _ = run(capsys, "inspect", str(pki_root / "v2g" / "secc.key"))
    assert code == 0 and "private key" in out and "secp256r1" in out
    # an encrypted key: said so, no type guessed, no password asked
    encrypted = tmp_path / "enc.pem"
    encrypted.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    code, out, _ = run(capsys, "inspect", str(encrypted))
    assert code == 0 and "private key (encrypted PKCS#8)" in out


def test_make_test_pki_refuses_to_overwrite_without_force(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pki = tmp_path / "pki"
    assert run(capsys, "make-test-pki", str(pki), "--no-iso20")[0] == 0
    root_key = (pki / "v2g" / "root.key").read_bytes()
    code, _, err = run(capsys, "make-test-pki", str(pki), "--no-iso20")
    assert code == 1 and "not empty" in err and "--force" in err
    assert (pki / "v2g" / "root.key").read_bytes() == root_key  # nothing touched
    code, _, err = run(capsys, "make-test-pki", str(pki), "--no-iso20", "--force")
    assert code == 0, err
    assert (pki / "v2g" / "root.key").read_bytes() != root_key
    assert Store(pki / "station").leaf_uses() == ["csms", "v2g"]
    # the station store holds the new hierarchy only (no root of the old one stays trusted)
    assert len(Store(pki / "station").roots("v2g")) == 1
    # an empty directory (e.g. made by mktemp) is fine without --force
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(capsys, "make-test-pki", str(empty), "--no-iso20")[0] == 0
    # a file in the way is an error, --force or not
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "make-test-pki", str(tmp_path / "file"), "--force")
    assert code == 1 and "not a directory" in err


def test_verify_uses_cached_ocsp(
    capsys: pytest.CaptureFixture[str], pki_root: Path, tmp_path: Path
) -> None:
    station = tmp_path / "station"
    shutil.copytree(pki_root / "station", station, symlinks=True)
    store = Store(station)
    chain = store.leaf_chain("v2g")
    chain_file = tmp_path / "secc_chain.pem"
    chain_file.write_bytes(pem(chain))
    sub2 = Issued(
        "cpo_sub2",
        chain[1],
        load_private_key((pki_root / "v2g" / "sub2.key").read_bytes(), None),
    )
    now = dt.datetime.now(dt.UTC)
    code, out, _ = run(
        capsys, "verify", "--store", str(station), "--profile", "secc", str(chain_file)
    )
    assert code == 0, out

    def answer(status: ocsp.OCSPCertStatus) -> bytes:
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=chain[0],
            issuer=sub2.certificate,
            algorithm=hashes.SHA256(),
            cert_status=status,
            this_update=now - dt.timedelta(minutes=1),
            next_update=now + dt.timedelta(hours=1),
            revocation_time=now - dt.timedelta(minutes=2)
            if status == ocsp.OCSPCertStatus.REVOKED
            else None,
            revocation_reason=None,
        )
        response = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, sub2.certificate).sign(
            sub2.key, hashes.SHA256()
        )
        return response.public_bytes(Encoding.DER)

    store.store_ocsp_response(chain[0], answer(ocsp.OCSPCertStatus.GOOD))
    assert (
        run(capsys, "verify", "--store", str(station), "--profile", "secc", str(chain_file))[0] == 0
    )
    store.store_ocsp_response(chain[0], answer(ocsp.OCSPCertStatus.REVOKED))
    code, _, err = run(
        capsys, "verify", "--store", str(station), "--profile", "secc", str(chain_file)
    )
    assert code == 1 and err.startswith("FAILED_CertificateRevoked")
    # An answer that does not verify (signed by a stranger) is ignored.
    stranger = Issued(
        "mo_sub2",
        load_certificate((pki_root / "mo" / "sub2.pem").read_bytes()),
        load_private_key((pki_root / "mo" / "sub2.key").read_bytes(), None),
    )
    forged = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=chain[0],
            issuer=sub2.certificate,
            algorithm=hashes.SHA256(),
            cert_status=ocsp.OCSPCertStatus.REVOKED,
            this_update=now,
            next_update=None,
            revocation_time=now,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, stranger.certificate)
        .sign(stranger.key, hashes.SHA256())
    )
    store.store_ocsp_response(chain[0], forged.public_bytes(Encoding.DER))
    assert (
        run(capsys, "verify", "--store", str(station), "--profile", "secc", str(chain_file))[0] == 0
    )
