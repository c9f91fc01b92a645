"""The test PKI and the store in real TLS on loopback: the ISO 15118-2 profile (TLS 1.2,
ECDHE-ECDSA-AES128-SHA256, server authentication only) with each SECC chain, and OCPP
security profile 3 (mutual TLS with the charging-station certificate)."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from certs.store import Store

ISO_CIPHER = "ECDHE-ECDSA-AES128-SHA256"


def _handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_hostname: str | None = None
) -> tuple[str, str, dict[str, object] | None]:
    """One TLS handshake over loopback; returns (cipher, version, client cert seen by server)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    seen: dict[str, object] = {}

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                seen["peer"] = tls.getpeercert()
                tls.sendall(tls.recv(1))
        except (OSError, ssl.SSLError) as exc:
            seen["error"] = exc

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls,
        ):
            tls.sendall(b"x")
            assert tls.recv(1) == b"x"
            cipher = tls.cipher()
            assert cipher is not None
            version = tls.version() or ""
    finally:
        thread.join(timeout=10)
        listener.close()
    assert "error" not in seen, seen
    peer = seen.get("peer")
    return cipher[0], version, peer if isinstance(peer, dict) else None


def _iso_server(store: Store, use: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(ISO_CIPHER)
    chain, key = store.leaf_paths(use)
    ctx.load_cert_chain(chain, key)
    return ctx


def _ev_client(root: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # an EV checks the chain to its V2G root, not a host name
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(ISO_CIPHER)
    ctx.load_verify_locations(cafile=str(root))
    return ctx


@pytest.mark.parametrize(("use", "root"), [("v2g", "v2g/root.pem"), ("v2g.2", "v2g2/root.pem")])
def test_iso15118_tls_with_each_secc_chain(pki_dir: Path, use: str, root: str) -> None:
    store = Store(pki_dir / "station")
    cipher, version, _ = _handshake(_iso_server(store, use), _ev_client(pki_dir / root))
    assert cipher == ISO_CIPHER and version == "TLSv1.2"


def test_ev_with_the_other_root_refuses(pki_dir: Path) -> None:
    store = Store(pki_dir / "station")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(_iso_server(store, "v2g"), _ev_client(pki_dir / "v2g2" / "root.pem"))


def test_ocpp_security_profile_3(pki_dir: Path) -> None:
    store = Store(pki_dir / "station")
    csms = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    csms.load_cert_chain(pki_dir / "csms" / "server_chain.pem", pki_dir / "csms" / "server.key")
    csms.verify_mode = ssl.CERT_REQUIRED
    csms.load_verify_locations(cafile=str(pki_dir / "csms" / "root.pem"))
    station = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    station.load_verify_locations(
        cafile=str(store.list_installed(("CSMSRootCertificate",))[0].path)
    )
    chain, key = store.leaf_paths("csms")
    station.load_cert_chain(chain, key)
    _cipher, _version, peer = _handshake(csms, station, server_hostname="localhost")
    assert peer is not None
    subject = dict(item for rdn in peer["subject"] for item in rdn)  # type: ignore[attr-defined]
    assert subject["commonName"] == "CS-SECC-0001"
    assert subject["organizationName"] == "Test CPO"


def test_encrypted_store_key_in_tls(pki_dir: Path, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_bytes(b"s3cret\n")
    store = Store(tmp_path / "store", key_password_file=secret)
    store.initialize()
    source = Store(pki_dir / "station")
    chain, key = source.leaf_paths("v2g")
    store.install_leaf("v2g", chain.read_bytes(), key.read_bytes(), utc_now=None)
    assert b"ENCRYPTED" in store.leaf_paths("v2g")[1].read_bytes()
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = server.maximum_version = ssl.TLSVersion.TLSv1_2
    server.set_ciphers(ISO_CIPHER)
    enc_chain, enc_key = store.leaf_paths("v2g")
    server.load_cert_chain(enc_chain, enc_key, password=store.key_password())
    cipher, _, _ = _handshake(server, _ev_client(pki_dir / "v2g" / "root.pem"))
    assert cipher == ISO_CIPHER
