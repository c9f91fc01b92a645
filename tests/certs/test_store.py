"""The on-disk store: install / list / delete, refusals, modes, encrypted keys, OCSP cache,
and crash safety (a child process killed in the middle of an install)."""

from __future__ import annotations

import datetime as dt
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from certs._util import pem
from certs.ocsp import hash_data
from certs.store import InstallRefused, Store, StoreError, atomic_write
from certs.testpki import CA_USAGE, CHAINS, TestPki, issue_certificate, key_pem, make_name

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "store")
    s.initialize()
    return s


def _chain(pki: TestPki, name: str) -> bytes:
    return pem(pki.chain(*CHAINS[name]))


def test_install_list_delete_roots(store: Store, pki: TestPki, now: dt.datetime) -> None:
    path = store.install_root("mo", pem([pki.cert("mo_root")]), utc_now=now)
    assert path.parent == store.root / "trust" / "mo"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert store.install_root("mo", pem([pki.cert("mo_root")]), utc_now=now) == path  # idempotent
    store.install_root("v2g", pem([pki.cert("v2g_root")]), utc_now=now)
    items = store.list_installed()
    assert {i.certificate_type for i in items} == {"MORootCertificate", "V2GRootCertificate"}
    mo = next(i for i in items if i.certificate_type == "MORootCertificate")
    assert mo.hash_data == hash_data(pki.cert("mo_root"), pki.cert("mo_root"))
    assert mo.to_ocpp()["certificateHashData"] == mo.hash_data.to_ocpp()
    assert [i.certificate_type for i in store.list_installed(("V2GRootCertificate",))] == [
        "V2GRootCertificate"
    ]
    assert store.delete(mo.hash_data) == "Accepted"
    assert store.delete(mo.hash_data) == "NotFound"
    assert store.roots("mo") == []


def _expired_root(now: dt.datetime) -> bytes:
    issued = issue_certificate(
        name="old",
        subject=make_name("Old Root"),
        issuer=None,
        ca=True,
        usage=CA_USAGE,
        not_before=now - dt.timedelta(days=20),
        not_after=now - dt.timedelta(days=1),
    )
    return pem([issued.certificate])


@pytest.mark.parametrize(
    ("kind", "data", "reason"),
    [
        ("v2g", lambda p, n: pem([p.cert("secc")]), "not a CA"),
        ("v2g", lambda p, n: _expired_root(n), "expired"),
        ("v2g", lambda p, n: b"garbage", "malformed"),
        ("v2g", lambda p, n: b"", "malformed"),
        ("v2g", lambda p, n: pem([p.cert("v2g_root")])[:300], "malformed"),
        ("v2g", lambda p, n: pem([p.cert("v2g_root")]) * 2, "malformed"),
        ("v2g", lambda p, n: b"\x30" * (2 << 20), "malformed"),
        ("bogus", lambda p, n: pem([p.cert("v2g_root")]), "unknown trust anchor kind"),
    ],
)
def test_refusals(
    store: Store, pki: TestPki, now: dt.datetime, kind: str, data, reason: str
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InstallRefused, match=reason):
        store.install_root(kind, data(pki, now), utc_now=now)
    assert not list((store.root / "trust").rglob("*.pem"))


def test_leaf_chain_listing_and_delete(store: Store, pki: TestPki, now: dt.datetime) -> None:
    store.install_root("v2g", pem([pki.cert("v2g_root")]), utc_now=now)
    store.install_root("csms", pem([pki.cert("csms_root")]), utc_now=now)
    store.install_leaf("v2g", _chain(pki, "secc"), key_pem(pki["secc"].key), utc_now=now)
    store.install_leaf("csms", _chain(pki, "cs_client"), key_pem(pki["cs_client"].key), utc_now=now)
    _chain_path, key_path = store.leaf_paths("v2g")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((store.root / "leaf").stat().st_mode) == 0o700
    assert store.leaf_chain("v2g") == pki.chain(*CHAINS["secc"])
    assert store.leaf_key("v2g").public_key() == pki["secc"].key.public_key()
    (entry,) = store.list_installed(("V2GCertificateChain",))
    assert entry.hash_data == hash_data(pki.cert("secc"), pki.cert("cpo_sub2"))
    assert entry.child_hash_data == (
        hash_data(pki.cert("cpo_sub2"), pki.cert("cpo_sub1")),
        hash_data(pki.cert("cpo_sub1"), pki.cert("v2g_root")),
    )
    assert len(entry.to_ocpp()["childCertificateHashData"]) == 2  # type: ignore[arg-type]
    (cs,) = store.list_installed(("ChargingStationCertificate",))
    assert store.delete(cs.hash_data) == "Failed"  # never delete the station's own certificate
    assert store.delete(entry.hash_data) == "Accepted"
    with pytest.raises(StoreError, match="no v2g leaf"):
        store.leaf_paths("v2g")


def test_leaf_refusals(store: Store, pki: TestPki, now: dt.datetime) -> None:
    secc_key = key_pem(pki["secc"].key)
    cases = [
        (_chain(pki, "secc"), key_pem(pki["contract"].key), "does not belong"),
        (pem(pki.chain("secc", "cpo_sub1", "cpo_sub2")), secc_key, "not signed by"),
        (
            pem(pki.chain("secc", "cpo_sub2", "cpo_sub1", "v2g_root", "mo_root")),
            secc_key,
            "sub-CAs",
        ),
        (pem(pki.chain("cpo_sub2", "cpo_sub1")), key_pem(pki["cpo_sub2"].key), "is a CA"),
        (b"nonsense", secc_key, "malformed"),
    ]
    for chain, key, reason in cases:
        with pytest.raises(InstallRefused, match=reason):
            store.install_leaf("v2g", chain, key, utc_now=now)
    with pytest.raises(InstallRefused, match="not valid now"):
        store.install_leaf(
            "v2g", _chain(pki, "secc"), secc_key, utc_now=now + dt.timedelta(days=400)
        )
    with pytest.raises(StoreError, match="cannot load"):
        store.install_leaf(
            "v2g", _chain(pki, "secc"), b"-----BEGIN PRIVATE KEY-----\nxx", utc_now=now
        )


def test_encrypted_keys(tmp_path: Path, pki: TestPki, now: dt.datetime) -> None:
    secret = tmp_path / "password"
    secret.write_bytes(b"correct horse\n")
    secret.chmod(0o600)
    store = Store(tmp_path / "store", key_password_file=secret)
    store.initialize()
    store.install_leaf("v2g", _chain(pki, "secc"), key_pem(pki["secc"].key), utc_now=now)
    key_file = store.leaf_paths("v2g")[1].read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in key_file
    assert store.leaf_key("v2g").public_key() == pki["secc"].key.public_key()
    with pytest.raises(StoreError):
        Store(store.root).leaf_key("v2g")
    secret.write_bytes(b"wrong")
    with pytest.raises(StoreError):
        store.leaf_key("v2g")
    secret.write_bytes(b"")
    with pytest.raises(StoreError, match="empty"):
        store.new_pending_key("v2g")


def test_ocsp_cache_beside_the_certificate(store: Store, pki: TestPki, now: dt.datetime) -> None:
    root_path = store.install_root("v2g", pem([pki.cert("v2g_root")]), utc_now=now)
    store.install_leaf("v2g", _chain(pki, "secc"), key_pem(pki["secc"].key), utc_now=now)
    p1 = store.store_ocsp_response(pki.cert("v2g_root"), b"resp-root")
    assert p1.parent == root_path.parent and p1.name.endswith(".ocsp.der")
    p2 = store.store_ocsp_response(pki.cert("cpo_sub2"), b"resp-sub2")
    assert p2.parent == store.leaf_paths("v2g")[0].parent
    assert store.ocsp_response(pki.cert("cpo_sub2")) == b"resp-sub2"
    assert store.ocsp_response(pki.cert("secc")) is None
    with pytest.raises(StoreError, match="not in the store"):
        store.store_ocsp_response(pki.cert("mo_root"), b"x")


def test_initialize_cleans_debris(store: Store, pki: TestPki, now: dt.datetime) -> None:
    store.install_leaf("v2g", _chain(pki, "secc"), key_pem(pki["secc"].key), utc_now=now)
    (store.root / "trust" / "v2g" / ".abc.pem.x1.tmp").write_bytes(b"half")
    half = store.root / "leaf" / "v2g" / "g1"
    half.mkdir()
    (half / "key.pem").write_bytes(b"")
    orphan = store.root / "leaf" / "v2g" / "g2"  # complete, but the swap never happened
    orphan.mkdir()
    (orphan / "chain.pem").write_bytes(_chain(pki, "secc2"))
    (orphan / "key.pem").write_bytes(key_pem(pki["secc2"].key))
    store.initialize()
    assert not (store.root / "trust" / "v2g" / ".abc.pem.x1.tmp").exists()
    assert not half.exists() and not orphan.exists()
    assert store.leaf_chain("v2g")[0] == pki.cert("secc")


# --- crash safety -----------------------------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, sys.argv[1])
    from pathlib import Path
    from certs.store import atomic_write
    target, mode = Path(sys.argv[2]), sys.argv[3]
    real_fsync = os.fsync
    def stop_in_the_middle(fd):
        real_fsync(fd)
        if os.path.isfile(f"/proc/self/fd/{fd}") and mode == "stop":
            print("mid-write", flush=True)
            os.kill(os.getpid(), 19)  # SIGSTOP: the parent kills us right here
    os.fsync = stop_in_the_middle
    payload = b"N" * (4 << 20)
    print("ready", flush=True)
    while True:
        atomic_write(target, payload, mode=0o600)
    """
)


def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(ROOT), *args], stdout=subprocess.PIPE
    )


def test_killed_in_the_middle_of_a_write(tmp_path: Path) -> None:
    target = tmp_path / "cert.pem"
    atomic_write(target, b"OLD" * 100, mode=0o600)
    child = _spawn([str(target), "stop"])
    assert child.stdout is not None
    assert child.stdout.readline() == b"ready\n"
    assert child.stdout.readline() == b"mid-write\n"  # new bytes written and synced, not renamed
    child.kill()
    child.wait(timeout=10)
    child.stdout.close()
    temps = list(tmp_path.glob(".cert.pem.*.tmp"))
    assert len(temps) == 1 and temps[0].stat().st_size == 4 << 20  # the interrupted write
    assert target.read_bytes() == b"OLD" * 100  # readers still see the old file, whole
    assert stat.S_IMODE(temps[0].stat().st_mode) == 0o600


def test_killed_at_random_points_leaves_old_or_new(tmp_path: Path) -> None:
    target = tmp_path / "cert.pem"
    old = b"OLD" * 100
    rng = random.Random(1234)
    for _ in range(6):
        atomic_write(target, old, mode=0o600)
        child = _spawn([str(target), "run"])
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.0, 0.05))  # each 4 MiB write takes a few ms: lands anywhere
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        child.stdout.close()
        data = target.read_bytes()
        assert data in (old, b"N" * (4 << 20)), len(data)
        assert stat.S_IMODE(target.stat().st_mode) == 0o600


_INSTALLER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from pathlib import Path
    from certs.store import Store
    store = Store(Path(sys.argv[2]))
    pairs = [(Path(sys.argv[i]).read_bytes(), Path(sys.argv[i + 1]).read_bytes()) for i in (3, 5)]
    print("ready", flush=True)
    n = 0
    while True:
        chain, key = pairs[n % 2]
        store.install_leaf("v2g", chain, key, utc_now=None)
        n += 1
    """
)


def test_leaf_pair_swap_survives_kills(tmp_path: Path, pki: TestPki, now: dt.datetime) -> None:
    files = {
        "a_chain": _chain(pki, "secc"),
        "a_key": key_pem(pki["secc"].key),
        "b_chain": _chain(pki, "secc2"),
        "b_key": key_pem(pki["secc2"].key),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    store = Store(tmp_path / "store")
    store.initialize()
    store.install_leaf("v2g", files["a_chain"], files["a_key"], utc_now=now)
    rng = random.Random(99)
    for _ in range(5):
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _INSTALLER,
                str(ROOT),
                str(store.root),
                *(str(tmp_path / n) for n in ("a_chain", "a_key", "b_chain", "b_key")),
            ],
            stdout=subprocess.PIPE,
        )
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.005, 0.08))
        child.kill()
        child.wait(timeout=10)
        child.stdout.close()
        reopened = Store(store.root)
        reopened.initialize()
        chain = reopened.leaf_chain("v2g")
        key = reopened.leaf_key("v2g")
        assert chain in (pki.chain(*CHAINS["secc"]), pki.chain(*CHAINS["secc2"]))
        assert chain[0].public_key() == key.public_key()  # never a chain with the other key
        gens = list((store.root / "leaf" / "v2g").glob("g*"))
        assert gens == [store.leaf_paths("v2g")[0].parent]  # debris of the kill is gone


def test_one_secc_chain_per_v2g_root(store: Store, pki: TestPki, now: dt.datetime) -> None:
    store.install_root("v2g", pem([pki.cert("v2g_root")]), utc_now=now)
    store.install_root("v2g", pem([pki.cert("v2g_root2")]), utc_now=now)
    store.install_leaf("v2g", _chain(pki, "secc"), key_pem(pki["secc"].key), utc_now=now)
    store.install_leaf("v2g.2", _chain(pki, "secc2"), key_pem(pki["secc2"].key), utc_now=now)
    assert store.leaf_uses() == ["v2g", "v2g.2"]
    chains = store.list_installed(("V2GCertificateChain",))
    assert [c.certificate for c in chains] == [pki.cert("secc"), pki.cert("secc2")]
    assert chains[1].child_hash_data[-1] == hash_data(pki.cert("cpo2_sub1"), pki.cert("v2g_root2"))
    assert store.delete(chains[1].hash_data) == "Accepted"
    assert store.leaf_uses() == ["v2g"]
    for bad in ("v2g/../../etc", "v2g.", "tls", "v2g." + "x" * 40):
        with pytest.raises(InstallRefused, match="unknown leaf use"):
            store.install_leaf(bad, _chain(pki, "secc"), key_pem(pki["secc"].key), utc_now=now)


def test_store_copied_without_symlinks_is_refused_loudly(tmp_path: Path) -> None:
    """`cp -r` of a store turns leaf/<use>/current into a directory: say so instead of
    running without the chain (a station would silently offer no TLS)."""
    import shutil

    from certs import testpki

    pki = testpki.build_test_pki(dt.datetime.now(dt.UTC))
    testpki.write_test_pki(pki, tmp_path / "pki")
    shutil.copytree(tmp_path / "pki" / "station", tmp_path / "copy", symlinks=False)
    copy = Store(tmp_path / "copy")
    with pytest.raises(StoreError, match="copied without symlinks"):
        copy.leaf_paths("v2g")
    good = Store(tmp_path / "pki" / "station")
    assert good.leaf_paths("v2g")[0].exists()
