"""secc.aio.clienthello on ClientHellos from real TLS clients (Python's ssl, libssl with a
trusted_ca_keys extension, openssl s_client) and on hand-made malformed bytes."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secc.aio.clienthello import (
    EXT_TRUSTED_CA_KEYS,
    ClientHello,
    ClientHelloError,
    IdentifierType,
    NeedMore,
    TrustedAuthority,
    encode_trusted_ca_keys,
    scan_client_hello,
)
from tests.runtime.tlsclient import OpenSslClient, python_client

TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 = 0xC023
AUTHORITIES = (
    TrustedAuthority(IdentifierType.KEY_SHA1_HASH, bytes(range(20))),
    TrustedAuthority(IdentifierType.PRE_AGREED),
    TrustedAuthority(IdentifierType.X509_NAME, b"\x30\x03\x31\x01\x00"),
    TrustedAuthority(IdentifierType.CERT_SHA1_HASH, b"\xaa" * 20),
)


def python_hello(**overrides: object) -> bytes:
    tls = python_client(None, **overrides).wrap_bio(ssl.MemoryBIO(), out := ssl.MemoryBIO())
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return out.read()


def captured_hello(connect: object) -> bytes:
    """Accept one connection on ::1 and return its first bytes up to a whole ClientHello;
    ``connect(port)`` runs the client (which then fails, the test server never answers)."""
    server = socket.socket(socket.AF_INET6)
    server.bind(("::1", 0))
    server.listen(1)
    server.settimeout(10)
    port = server.getsockname()[1]
    client = threading.Thread(target=connect, args=(port,), daemon=True)
    client.start()
    conn, _ = server.accept()
    data = b""
    with conn:
        conn.settimeout(10)
        while not isinstance(scan_client_hello(data), ClientHello):
            chunk = conn.recv(65536)
            assert chunk
            data += chunk
    server.close()
    client.join(10)
    return data


def test_python_default_hello() -> None:
    data = python_hello()
    hello = scan_client_hello(data)
    assert isinstance(hello, ClientHello)
    assert hello.length == len(data)
    assert hello.client_version == 0x0303
    assert hello.offers_version(0x0304) and hello.offers_version(0x0303)
    assert hello.trusted_authorities is None
    assert 43 in dict(hello.extensions)


def test_python_tls12_iso_suite_hello() -> None:
    hello = scan_client_hello(
        python_hello(maximum_version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-AES128-SHA256")
    )
    assert isinstance(hello, ClientHello)
    assert TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 in hello.cipher_suites
    assert not hello.offers_version(0x0304)


def test_libssl_hello_with_trusted_ca_keys() -> None:
    def connect(port: int) -> None:
        client = OpenSslClient({EXT_TRUSTED_CA_KEYS: encode_trusted_ca_keys(AUTHORITIES)})
        try:
            client.connect(("::1", port))
        except ConnectionError:
            pass
        finally:
            client.close()

    hello = scan_client_hello(captured_hello(connect))
    assert isinstance(hello, ClientHello)
    assert hello.trusted_authorities == AUTHORITIES
    assert hello.cipher_suites[0] == TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command line tool")
def test_openssl_s_client_hello() -> None:
    def connect(port: int) -> None:
        subprocess.run(
            [
                "openssl",
                "s_client",
                "-connect",
                f"[::1]:{port}",
                "-tls1_2",
                "-cipher",
                "ECDHE-ECDSA-AES128-SHA256",
            ],
            input="",
            capture_output=True,
            timeout=10,
            check=False,
        )

    hello = scan_client_hello(captured_hello(connect))
    assert isinstance(hello, ClientHello)
    assert TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 in hello.cipher_suites
    assert hello.trusted_authorities is None


def test_every_prefix_needs_more_and_says_how_much() -> None:
    data = python_hello()
    for cut in range(len(data)):
        got = scan_client_hello(data[:cut])
        assert isinstance(got, NeedMore)
        assert cut < got.total <= len(data)


def _fragment(data: bytes, size: int) -> bytes:
    """Re-cut a one-record ClientHello into records of ``size`` handshake bytes."""
    body = data[5:]
    return b"".join(
        data[:3] + len(body[i : i + size]).to_bytes(2, "big") + body[i : i + size]
        for i in range(0, len(body), size)
    )


@pytest.mark.parametrize("size", [1, 3, 4, 100])
def test_hello_fragmented_over_records(size: int) -> None:
    data = python_hello()
    whole = scan_client_hello(data)
    split = scan_client_hello(_fragment(data, size))
    assert isinstance(whole, ClientHello) and isinstance(split, ClientHello)
    assert split.cipher_suites == whole.cipher_suites and split.extensions == whole.extensions
    assert split.length == len(_fragment(data, size))


def _hello(
    extensions: bytes | None = None,
    *,
    suites: bytes = b"\x00\x02\xc0\x23",
    session: bytes = b"\x00",
) -> bytes:
    body = b"\x03\x03" + bytes(32) + session + suites + b"\x01\x00"
    if extensions is not None:
        body += len(extensions).to_bytes(2, "big") + extensions
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(handshake).to_bytes(2, "big") + handshake


def _ext(etype: int, data: bytes) -> bytes:
    return etype.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data


def test_minimal_hand_made_hello() -> None:
    hello = scan_client_hello(_hello())
    assert isinstance(hello, ClientHello)
    assert hello.extensions == () and hello.cipher_suites == (0xC023,)
    assert hello.offers_version(0x0303) and not hello.offers_version(0x0304)
    hello = scan_client_hello(_hello(_ext(3, encode_trusted_ca_keys(()))))
    assert isinstance(hello, ClientHello) and hello.trusted_authorities == ()


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\x17\x03\x03\x00\x01\x00", "content type"),
        (b"\x16\x02\x00\x00\x01\x00", "not TLS"),
        (b"\x16\x03\x01\x00\x00", "record length"),
        (b"\x16\x03\x01\x40\x01", "record length"),
        (b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", "handshake type"),
        (b"\x16\x03\x01\x00\x04\x01\xff\xff\xff", "above"),
        (_hello(suites=b"\x00\x00"), "cipher_suites"),
        (_hello(suites=b"\x00\x03\xc0\x23\x00"), "cipher_suites"),
        (_hello(session=b"\x21" + bytes(33)), "session_id"),
        (_hello(_ext(3, b"\x00")), "trusted_ca_keys"),
        (_hello(_ext(3, b"\x00\x02\x01\x00")), "SHA1Hash"),
        (_hello(_ext(3, b"\x00\x01\x07")), "identifier_type"),
        (_hello(_ext(3, b"\x00\x03\x02\x00\x00")), "empty DistinguishedName"),
        (_hello(_ext(3, b"\x00\x01\x00\x00")), "trailing"),
        (_hello(_ext(43, b"\x03\x03\x04\x03")), "supported_versions"),
        (_hello(_ext(43, b"\x00")), "supported_versions"),
        (_hello(_ext(5, b"") + _ext(5, b"")), "twice"),
        (_hello(b"\x00\x05\x00\x02\x00"), "extension"),
    ],
)
def test_malformed_hellos_are_rejected(data: bytes, fragment: str) -> None:
    with pytest.raises(ClientHelloError) as info:
        scan_client_hello(data)
    assert fragment in str(info.value)


def test_bytes_after_the_hello_in_its_record_are_rejected() -> None:
    data = _hello()
    padded = (
        data[:3] + (int.from_bytes(data[3:5], "big") + 1).to_bytes(2, "big") + data[5:] + b"\x00"
    )
    with pytest.raises(ClientHelloError, match="after the ClientHello"):
        scan_client_hello(padded)


def test_encode_trusted_ca_keys_checks_hash_length() -> None:
    with pytest.raises(ValueError):
        encode_trusted_ca_keys((TrustedAuthority(IdentifierType.KEY_SHA1_HASH, b"short"),))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_parse_need_more_or_fail_cleanly(data: bytes) -> None:
    try:
        got = scan_client_hello(data)
    except ClientHelloError:
        return
    assert isinstance(got, (ClientHello, NeedMore))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_real_hello_parses_or_fails_cleanly(data: st.DataObject) -> None:
    hello = bytearray(
        _hello(_ext(3, encode_trusted_ca_keys(AUTHORITIES)) + _ext(43, b"\x02\x03\x03"))
    )
    for _ in range(data.draw(st.integers(1, 4))):
        hello[data.draw(st.integers(0, len(hello) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(ClientHelloError):
        scan_client_hello(bytes(hello))
