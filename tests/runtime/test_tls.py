"""TLS on the V2G server, on loopback: the ISO 15118-2 profile against Python's ssl,
``openssl s_client`` and libssl through ctypes (the only client here able to send
trusted_ca_keys); refusals; the chain choice among two V2G roots; the key log."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from secc import codec
from secc.aio.clienthello import (
    EXT_TRUSTED_CA_KEYS,
    IdentifierType,
    TrustedAuthority,
    encode_trusted_ca_keys,
)
from secc.aio.tls import SeccChain, TlsSelector, authority_ids, station_tls
from secc.aio.v2g_server import V2GServer
from tests.runtime.conftest import Pki, PkiChain
from tests.runtime.test_v2g_server import run
from tests.runtime.tlsclient import OpenSslClient, python_client
from tests.runtime.v2gpeer import SAP_FRAME, Handlers, read_frames

OPENSSL = shutil.which("openssl")


async def tls_connect(
    server: V2GServer, ctx: ssl.SSLContext
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("::1", server.port, ssl=ctx, server_hostname=None)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def test_tls12_with_the_iso_suite_carries_a_v2g_exchange(pki: Pki) -> None:
    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(handlers, tls=TlsSelector([pki.a.chain])) as server:
            reader, writer = await tls_connect(server, python_client(pki.a.root_file))
            ssl_obj = writer.get_extra_info("ssl_object")
            assert ssl_obj.version() == "TLSv1.2"
            assert ssl_obj.cipher()[0] == "ECDHE-ECDSA-AES128-SHA256"
            # the client verified the chain against root A; the leaf is the SECC's
            assert (
                x509.load_der_x509_certificate(ssl_obj.getpeercert(binary_form=True)) == pki.a.leaf
            )
            writer.write(SAP_FRAME)
            (res,) = await read_frames(reader, 1)
            assert codec.decode(res, "apphand").schema_id == 7
            handler = await handlers.first()
            assert handler.conn.tls and handler.conn.selection is not None
            assert (
                handler.conn.cipher is not None
                and handler.conn.cipher[0] == "ECDHE-ECDSA-AES128-SHA256"
            )
            writer.close()

    run(main)


def test_client_verifying_against_the_other_root_fails(pki: Pki) -> None:
    async def main() -> None:
        async with V2GServer(Handlers(), tls=TlsSelector([pki.a.chain])) as server:
            with pytest.raises(ssl.SSLCertVerificationError):
                await tls_connect(server, python_client(pki.b.root_file))

    run(main)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"minimum_version": ssl.TLSVersion.TLSv1_3}, id="tls13-only"),
        pytest.param(
            {
                "maximum_version": ssl.TLSVersion.TLSv1_2,
                "ciphers": "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256",
            },
            id="other-suites",
        ),
    ],
)
@pytest.mark.parametrize("chains", [1, 2], ids=["one-root", "two-roots"])
def test_clients_outside_the_profile_are_refused(
    pki: Pki, overrides: dict[str, Any], chains: int
) -> None:
    async def main() -> None:
        handlers = Handlers()
        selector = TlsSelector([pki.a.chain, pki.b.chain][:chains])
        async with V2GServer(handlers, tls=selector) as server:
            ctx = python_client(None, **overrides)
            with pytest.raises((ssl.SSLError, ConnectionResetError)):
                await tls_connect(server, ctx)
            await asyncio.sleep(0.05)
            assert handlers.made == []  # no session handler for a refused handshake
            # the server still serves a good client afterwards
            reader, writer = await tls_connect(server, python_client(pki.a.root_file))
            writer.write(SAP_FRAME)
            assert len(await read_frames(reader, 1)) == 1
            writer.close()

    run(main)


def _s_client(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run(
        [OPENSSL, "s_client", "-connect", f"[::1]:{port}", *args],
        check=False,
        input="",
        capture_output=True,
        text=True,
        timeout=20,
    )


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command line tool")
def test_openssl_s_client_handshake_and_refusals(pki: Pki, tmp_path: Path) -> None:
    keylog = tmp_path / "client-keys.log"

    async def main() -> list[subprocess.CompletedProcess[str]]:
        async with V2GServer(Handlers(), tls=TlsSelector([pki.a.chain])) as server:
            args = [
                "-CAfile",
                str(pki.a.root_file),
                "-verify_return_error",
                "-keylogfile",
                str(keylog),
            ]
            good = asyncio.to_thread(
                _s_client, server.port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256", *args
            )
            tls13 = asyncio.to_thread(_s_client, server.port, "-tls1_3")
            other = asyncio.to_thread(
                _s_client, server.port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA384"
            )
            return list(await asyncio.gather(good, tls13, other))

    good, tls13, other = run(main)
    assert "Cipher is ECDHE-ECDSA-AES128-SHA256" in good.stdout, good.stdout + good.stderr
    assert "Protocol  : TLSv1.2" in good.stdout
    assert "Verify return code: 0 (ok)" in good.stdout
    assert "CN = DE*ABC*EA" in good.stdout  # the SECC leaf under root A
    for refused in (tls13, other):
        assert refused.returncode != 0
        assert "Cipher is (NONE)" in refused.stdout or "alert" in refused.stderr, refused.stderr
    assert any(line.startswith("CLIENT_RANDOM ") for line in keylog.read_text().splitlines())


def _expect_chain(pki_chain: PkiChain, received: list[x509.Certificate]) -> None:
    assert received == [pki_chain.leaf, pki_chain.sub_ca]
    received[0].verify_directly_issued_by(received[1])
    received[1].verify_directly_issued_by(pki_chain.root)


def _one(cert: x509.Certificate, kind: IdentifierType) -> TrustedAuthority:
    (found,) = [a for a in authority_ids(cert) if a.identifier_type == kind]
    return found


def _connect_with(
    server: V2GServer, authorities: tuple[TrustedAuthority, ...] | None
) -> tuple[list[x509.Certificate], bytes]:
    extensions = (
        {} if authorities is None else {EXT_TRUSTED_CA_KEYS: encode_trusted_ca_keys(authorities)}
    )
    client = OpenSslClient(extensions)
    try:
        client.connect(("::1", server.port))
        assert client.cipher == "ECDHE-ECDSA-AES128-SHA256"
        client.write(SAP_FRAME)
        return client.peer_chain, client.read(7000)
    finally:
        client.close()


@pytest.mark.parametrize("kind", list(IdentifierType)[1:], ids=lambda k: k.name)
def test_trusted_ca_keys_selects_the_chain_under_the_named_root(
    pki: Pki, kind: IdentifierType
) -> None:
    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(handlers, tls=TlsSelector([pki.a.chain, pki.b.chain])) as server:
            for want in (pki.b, pki.a):
                chain, response = await asyncio.to_thread(
                    _connect_with, server, (_one(want.root, kind),)
                )
                _expect_chain(want, chain)
                assert response[:4] == bytes.fromhex("01fe8001")  # the session went on over TLS
            conns = [h.conn for h in handlers.made]
            assert [c.selection.chain.root for c in conns if c.selection] == [
                pki.b.root,
                pki.a.root,
            ]
            hello = conns[0].client_hello
            assert hello is not None and hello.trusted_authorities == (_one(pki.b.root, kind),)

    run(main)


def test_trusted_ca_keys_order_unknown_entries_and_sub_ca_names(pki: Pki) -> None:
    unknown = TrustedAuthority(IdentifierType.KEY_SHA1_HASH, b"\x11" * 20)
    pre = TrustedAuthority(IdentifierType.PRE_AGREED)

    async def main() -> None:
        async with V2GServer(Handlers(), tls=TlsSelector([pki.a.chain, pki.b.chain])) as server:
            # the EV's first matching authority wins; unknown and pre_agreed are skipped
            chain, _ = await asyncio.to_thread(
                _connect_with,
                server,
                (
                    unknown,
                    pre,
                    _one(pki.b.root, IdentifierType.X509_NAME),
                    _one(pki.a.root, IdentifierType.X509_NAME),
                ),
            )
            _expect_chain(pki.b, chain)
            # a sub-CA of the chain names it too
            chain, _ = await asyncio.to_thread(
                _connect_with, server, (_one(pki.b.sub_ca, IdentifierType.CERT_SHA1_HASH),)
            )
            _expect_chain(pki.b, chain)
            # nothing matches, an empty list, no extension: the first chain
            for authorities in ((unknown,), (), None):
                chain, _ = await asyncio.to_thread(_connect_with, server, authorities)
                _expect_chain(pki.a, chain)

    run(main)


def test_key_log_file_is_written(pki: Pki, tmp_path: Path) -> None:
    keylog = tmp_path / "keys.log"

    async def main() -> bytes:
        async with V2GServer(
            Handlers(), tls=TlsSelector([pki.a.chain], keylog_file=keylog)
        ) as server:
            reader, writer = await tls_connect(server, python_client(pki.a.root_file))
            writer.write(SAP_FRAME)
            await read_frames(reader, 1)
            writer.close()
            return bytes(writer.get_extra_info("ssl_object").session.id)

    run(main)
    lines = keylog.read_text().splitlines()
    entries = [line.split() for line in lines if not line.startswith("#")]
    assert entries and all(
        e[0] == "CLIENT_RANDOM" and len(e[1]) == 64 and len(e[2]) == 96 for e in entries
    )


def test_peeked_client_hello_sent_byte_by_byte(pki: Pki) -> None:
    """A ClientHello trickling in (the server peeks with SO_RCVLOWAT until it is whole),
    then the handshake completes over the same bytes."""

    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(handlers, tls=TlsSelector([pki.a.chain, pki.b.chain])) as server:
            await asyncio.to_thread(_trickle_handshake, server.port, pki.a.root_file)
            handler = await handlers.first()
            assert handler.conn.client_hello is not None
            await asyncio.wait_for(handler.ended.wait(), 5)

    run(main)


def _trickle_handshake(port: int, root_file: Path) -> None:
    ctx = python_client(root_file)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing)
    with socket.create_connection(("::1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with pytest.raises(ssl.SSLWantReadError):
            tls.do_handshake()
        for byte in outgoing.read():
            sock.sendall(bytes([byte]))
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                data = sock.recv(65536)
                assert data, "server closed during the handshake"
                incoming.write(data)
        sock.sendall(outgoing.read())
        assert tls.cipher()[0] == "ECDHE-ECDSA-AES128-SHA256"


@pytest.mark.parametrize("first_bytes", [b"", b"\x16\x03", SAP_FRAME, b"\x16\x03\x01\xff\xff"])
def test_bad_or_missing_client_hello_does_not_stall_the_server(
    pki: Pki, first_bytes: bytes
) -> None:
    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(
            handlers, tls=TlsSelector([pki.a.chain, pki.b.chain]), handshake_timeout=2
        ) as server:
            reader, writer = await asyncio.open_connection("::1", server.port)
            writer.write(first_bytes)
            writer.write_eof()
            try:  # the server ends the connection: FIN after an alert, or RST
                while await asyncio.wait_for(reader.read(1000), 5):
                    pass
            except ConnectionResetError:
                pass
            writer.close()
            reader, writer = await tls_connect(server, python_client(pki.a.root_file))
            writer.write(SAP_FRAME)
            assert len(await read_frames(reader, 1)) == 1
            writer.close()
            assert len(handlers.made) == 1

    run(main)


def test_encrypted_key_and_chain_labels(pki: Pki, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(pki.a.chain.keyfile.read_bytes(), None)
    keyfile = tmp_path / "enc.key"
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    chain = SeccChain(pki.a.chain.certfile, keyfile, pki.a.root, password=b"secret")
    selector = TlsSelector([chain])
    assert selector.default.chain.label() == "V2G Root A"
    assert not selector.needs_client_hello
    with pytest.raises(ssl.SSLError):
        TlsSelector([SeccChain(pki.a.chain.certfile, keyfile, pki.a.root, password=b"wrong")])
    with pytest.raises(ValueError):
        TlsSelector([])


def test_silent_client_is_dropped_after_the_handshake_timeout(pki: Pki) -> None:
    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(
            handlers, tls=TlsSelector([pki.a.chain, pki.b.chain]), handshake_timeout=0.3
        ) as server:
            reader, writer = await asyncio.open_connection("::1", server.port)
            assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed, nothing sent
            writer.close()
            assert handlers.made == []

    run(main)


def test_tls_peer_reset_is_reported_as_connection_lost(pki: Pki) -> None:
    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(handlers, tls=TlsSelector([pki.a.chain])) as server:
            reader, writer = await tls_connect(server, python_client(pki.a.root_file))
            writer.write(SAP_FRAME)
            await read_frames(reader, 1)
            sock = writer.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            handler = await handlers.first()
            await asyncio.wait_for(handler.ended.wait(), 5)
            assert len(handler.lost) == 1 and handler.conn.closed
            assert "Connection reset by peer" in handler.lost[0].reason

    run(main)


def test_station_tls_says_what_it_offers(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="secc.aio.tls")
    assert station_tls([]) is None
    assert "no SECC certificate installed: offering no TLS and no Plug & Charge" in caplog.text
    caplog.clear()
    selector = station_tls([pki.a.chain, pki.b.chain], keylog_file=tmp_path / "k.log")
    assert selector is not None and selector.needs_client_hello
    assert "2 SECC chain(s) under: V2G Root A, V2G Root B" in caplog.text
    assert "key log enabled" in caplog.text
