"""ISO 15118-20 SECC chains in the store: slot ``v2g20`` beside the -2 ``v2g``, P-521
(the test PKI) or Ed448 keys, refused in the -2 slots and vice versa; ``secc certs
install --leaf v2g20`` through the CLI."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed448

from certs._util import key_pem, pem
from certs.cli import main
from certs.store import Store, StoreError, is_iso20_use
from certs.testpki import CA_USAGE, CHAINS, SECC_USAGE, TestPki, make_name


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "store")
    s.initialize()
    return s


def _ed448_chain(now: dt.datetime) -> tuple[x509.Certificate, list[x509.Certificate], bytes]:
    """An Ed448 V2G root and SECC leaf (Ed448 signatures take no separate hash)."""
    root_key, leaf_key = ed448.Ed448PrivateKey.generate(), ed448.Ed448PrivateKey.generate()
    root_name = make_name("V2G Root CA Ed448", "Test V2G", "DE", "V2G")
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(days=30)

    def build(subject: x509.Name, key: ed448.Ed448PublicKey, ca: bool) -> x509.Certificate:
        from certs._util import key_usage

        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(root_name)
            .public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(key_usage(*(CA_USAGE if ca else SECC_USAGE)), critical=True)
            .sign(root_key, None)
        )

    root = build(root_name, root_key.public_key(), True)
    leaf = build(
        make_name("DE*ABC*E1234567*1", "Test CPO", "DE", "CPO"), leaf_key.public_key(), False
    )
    return root, [leaf], key_pem(leaf_key)


def test_iso20_chain_beside_the_iso2_one(store: Store, pki: TestPki, now: dt.datetime) -> None:
    store.install_root("v2g", pem([pki.cert("v2g_root")]), utc_now=now)
    store.install_root("v2g", pem([pki.cert("v2g20_root")]), utc_now=now)
    store.install_leaf(
        "v2g", pem(pki.chain(*CHAINS["secc"])), key_pem(pki["secc"].key), utc_now=now
    )
    store.install_leaf(
        "v2g20", pem(pki.chain(*CHAINS["secc20"])), key_pem(pki["secc20"].key), utc_now=now
    )
    assert store.leaf_uses() == ["v2g", "v2g20"]
    assert is_iso20_use("v2g20") and is_iso20_use("v2g20.b") and not is_iso20_use("v2g.2")
    assert store.leaf_chain("v2g20") == pki.chain(*CHAINS["secc20"])
    assert store.leaf_key_any("v2g20").public_key() == pki["secc20"].key.public_key()
    chains = store.list_installed(("V2GCertificateChain",))
    assert [c.certificate for c in chains] == [pki.cert("secc"), pki.cert("secc20")]
    store.install_leaf(
        "v2g20.second",
        pem(pki.chain(*CHAINS["secc20"])),
        key_pem(pki["secc20"].key),
        utc_now=now,
    )
    assert store.leaf_uses() == ["v2g", "v2g20", "v2g20.second"]


def test_keys_must_fit_the_slot(store: Store, pki: TestPki, now: dt.datetime) -> None:
    # a P-256 (-2) chain is refused as -20, a P-521 (-20) chain as -2
    with pytest.raises(StoreError, match="must be an ECDSA P-521 or Ed448 key"):
        store.install_leaf(
            "v2g20", pem(pki.chain(*CHAINS["secc"])), key_pem(pki["secc"].key), utc_now=now
        )
    with pytest.raises(StoreError, match="must be an ECDSA P-256 key"):
        store.install_leaf(
            "v2g", pem(pki.chain(*CHAINS["secc20"])), key_pem(pki["secc20"].key), utc_now=now
        )
    assert store.leaf_uses() == []


def test_ed448_leaf(store: Store, now: dt.datetime) -> None:
    root, chain, key = _ed448_chain(now)
    store.install_root("v2g", pem([root]), utc_now=now)
    store.install_leaf("v2g20", pem(chain), key, utc_now=now)
    assert isinstance(store.leaf_key_any("v2g20"), ed448.Ed448PrivateKey)
    with pytest.raises(StoreError, match="P-256"):
        store.install_leaf("v2g", pem(chain), key, utc_now=now)


def test_encrypted_iso20_key(tmp_path: Path, pki: TestPki, now: dt.datetime) -> None:
    secret = tmp_path / "password"
    secret.write_bytes(b"correct horse\n")
    store = Store(tmp_path / "store", key_password_file=secret)
    store.initialize()
    store.install_leaf(
        "v2g20", pem(pki.chain(*CHAINS["secc20"])), key_pem(pki["secc20"].key), utc_now=now
    )
    assert b"ENCRYPTED PRIVATE KEY" in store.leaf_paths("v2g20")[1].read_bytes()
    assert store.leaf_key_any("v2g20").public_key() == pki["secc20"].key.public_key()


def test_cli_make_test_pki_and_install(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pki = tmp_path / "pki"
    assert main(["make-test-pki", str(pki)], "secc certs") == 0
    out = capsys.readouterr().out
    assert "ISO 15118-20" in out
    station = Store(pki / "station")
    assert station.leaf_uses() == ["csms", "v2g", "v2g20"]
    leaf = station.leaf_chain("v2g20")[0]
    key = leaf.public_key()
    assert getattr(getattr(key, "curve", None), "name", None) == "secp521r1"
    # a fresh store: install the -20 root and chain from the files make-test-pki wrote
    target = tmp_path / "store"
    args = ["--store", str(target)]
    assert main(["install", *args, "--root", "v2g", str(pki / "v2g20/root.pem")], "secc certs") == 0
    code = main(
        [
            "install",
            *args,
            "--leaf",
            "v2g20",
            str(pki / "v2g20/secc_chain.pem"),
            "--key",
            str(pki / "v2g20/secc.key"),
        ],
        "secc certs",
    )
    assert code == 0
    assert Store(target).leaf_chain("v2g20")[0] == leaf
    # the -2 key is refused for the -20 slot with the reason, nothing installed
    code = main(
        [
            "install",
            *args,
            "--leaf",
            "v2g20.x",
            str(pki / "v2g/secc_chain.pem"),
            "--key",
            str(pki / "v2g/secc.key"),
        ],
        "secc certs",
    )
    assert code == 1
    assert "must be an ECDSA P-521 or Ed448 key" in capsys.readouterr().err
    assert Store(target).leaf_uses() == ["v2g20"]
    # --no-iso20 leaves the -20 hierarchy out
    bare = tmp_path / "bare"
    assert main(["make-test-pki", str(bare), "--no-iso20"], "secc certs") == 0
    assert not (bare / "v2g20").exists()
    assert Store(bare / "station").leaf_uses() == ["csms", "v2g"]


def test_pem_key_round_trip_of_ed448() -> None:
    key = ed448.Ed448PrivateKey.generate()
    loaded = serialization.load_pem_private_key(key_pem(key), None)
    assert isinstance(loaded, ed448.Ed448PrivateKey)
