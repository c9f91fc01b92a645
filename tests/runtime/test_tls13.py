"""TLS 1.3 for ISO 15118-20 beside TLS 1.2 for ISO 15118-2 on one port, on loopback.

The station holds the -2 chain (P-256) and the -20 chain (P-521 under its own V2G root),
both from ``certs.testpki``.  A ClientHello offering TLS 1.3 gets TLS 1.3 with the -20
chain when the EVSE offers -20; anything else gets the TLS 1.2 ISO 15118-2 profile with
the -2 chain; a -20-only station never speaks TLS 1.2.  The cipher suites, groups and
signature algorithm of ISO 15118-20 are checked with ``openssl s_client``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from certs.testpki import TestPkiOptions, build_test_pki, write_test_pki
from secc import codec
from secc.aio.tls import SeccChain, TlsSelector, station_tls
from secc.aio.v2g_server import V2GServer
from tests.runtime.test_v2g_server import run
from tests.runtime.tlsclient import python_client
from tests.runtime.v2gpeer import SAP_FRAME, Handlers, read_frames

OPENSSL = shutil.which("openssl")


class Chains:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.iso2 = self._chain("v2g")
        self.iso20 = self._chain("v2g20")
        self.both_roots = base / "both-roots.pem"
        self.both_roots.write_bytes(
            (base / "v2g/root.pem").read_bytes() + (base / "v2g20/root.pem").read_bytes()
        )

    def _chain(self, sub: str) -> SeccChain:
        root = x509.load_pem_x509_certificate((self.base / sub / "root.pem").read_bytes())
        return SeccChain(
            self.base / sub / "secc_chain.pem", self.base / sub / "secc.key", root, name=sub
        )

    def leaf(self, sub: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate((self.base / sub / "secc.pem").read_bytes())


@pytest.fixture(scope="module")
def chains(tmp_path_factory: pytest.TempPathFactory) -> Chains:
    base = tmp_path_factory.mktemp("pki20")
    pki = build_test_pki(dt.datetime.now(dt.UTC), TestPkiOptions())
    write_test_pki(pki, base, station_store=False)
    return Chains(base)


def both(chains: Chains, **kw: bool) -> TlsSelector:
    return TlsSelector([chains.iso2], iso20_chains=[chains.iso20], **kw)


async def _session(
    server: V2GServer, client: ssl.SSLContext, handlers: Handlers
) -> tuple[str, str, x509.Certificate, str | None, bool]:
    """Handshake, one appHandshake exchange; (version, cipher, leaf, station's view of
    the version, station chose the TLS 1.3 context)."""
    reader, writer = await asyncio.open_connection(
        "::1", server.port, ssl=client, server_hostname=None
    )
    ssl_obj = writer.get_extra_info("ssl_object")
    leaf = x509.load_der_x509_certificate(ssl_obj.getpeercert(binary_form=True))
    writer.write(SAP_FRAME)
    (res,) = await read_frames(reader, 1)
    assert codec.decode(res, "apphand").schema_id == 7
    conn = handlers.made[-1].conn
    assert conn.selection is not None
    out = (ssl_obj.version(), ssl_obj.cipher()[0], leaf, conn.tls_version, conn.selection.tls13)
    writer.close()
    return out


def test_tls13_client_gets_tls13_with_the_iso20_chain(chains: Chains) -> None:
    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(handlers, tls=both(chains)) as server:
            client = python_client(chains.both_roots)  # offers TLS 1.2 and 1.3
            version, cipher, leaf, seen, tls13 = await _session(server, client, handlers)
            assert (version, seen, tls13) == ("TLSv1.3", "TLSv1.3", True)
            assert cipher == "TLS_AES_256_GCM_SHA384"  # the server's first choice
            assert leaf == chains.leaf("v2g20")  # P-521, verified against the -20 root

    run(main)


def test_tls12_client_gets_the_iso2_profile_and_chain(chains: Chains) -> None:
    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(handlers, tls=both(chains)) as server:
            client = python_client(chains.both_roots, maximum_version=ssl.TLSVersion.TLSv1_2)
            version, cipher, leaf, seen, tls13 = await _session(server, client, handlers)
            assert (version, seen, tls13) == ("TLSv1.2", "TLSv1.2", False)
            assert cipher == "ECDHE-ECDSA-AES128-SHA256"
            assert leaf == chains.leaf("v2g")

    run(main)


def test_evse_without_iso20_serves_tls12_to_a_tls13_client(chains: Chains) -> None:
    """An EVSE not offering -20 keeps the -2 profile even for a TLS 1.3-capable EV."""

    async def main() -> None:
        handlers = Handlers()
        selector = both(chains).for_evse(offer_tls13=False)
        assert not selector.tls13 and not selector.needs_client_hello
        async with V2GServer(handlers, tls=selector) as server:
            client = python_client(chains.both_roots)
            version, _cipher, leaf, _seen, tls13 = await _session(server, client, handlers)
            assert (version, tls13) == ("TLSv1.2", False)
            assert leaf == chains.leaf("v2g")

    run(main)


def test_iso20_only_station_never_speaks_tls12(chains: Chains) -> None:
    async def main() -> None:
        handlers = Handlers()
        selector = station_tls([], iso20_chains=[chains.iso20])
        assert selector is not None
        async with V2GServer(handlers, tls=selector) as server:
            tls12 = python_client(chains.both_roots, maximum_version=ssl.TLSVersion.TLSv1_2)
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await asyncio.open_connection("::1", server.port, ssl=tls12, server_hostname=None)
            version, _c, leaf, _s, tls13 = await _session(
                server, python_client(chains.both_roots), handlers
            )
            assert (version, tls13, leaf) == ("TLSv1.3", True, chains.leaf("v2g20"))

    run(main)


def _s_client(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run(
        [OPENSSL, "s_client", "-connect", f"[::1]:{port}", "-brief", *args],
        check=False,
        input="",
        capture_output=True,
        text=True,
        timeout=20,
    )


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command line tool")
def test_iso20_suites_groups_and_signature_with_openssl(chains: Chains) -> None:
    """[V2G20-2458] suites, [V2G20-2319]/[V2G20-2674] groups and signature scheme: each
    accepted alone, the leaf signs with ecdsa_secp521r1_sha512."""
    root = str(chains.base / "v2g20/root.pem")
    cases = {
        "aes256": ("-ciphersuites", "TLS_AES_256_GCM_SHA384", "-groups", "secp521r1"),
        "chacha": ("-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256", "-groups", "X448"),
        "sigalg": ("-sigalgs", "ecdsa_secp521r1_sha512", "-groups", "secp521r1"),
    }

    async def main() -> dict[str, subprocess.CompletedProcess[str]]:
        async with V2GServer(Handlers(), tls=both(chains)) as server:
            runs = [
                asyncio.to_thread(
                    _s_client, server.port, "-tls1_3", "-CAfile", root, "-verify_return_error", *a
                )
                for a in cases.values()
            ]
            return dict(zip(cases, await asyncio.gather(*runs), strict=True))

    done = run(main)
    for name, result in done.items():
        text = result.stdout + result.stderr
        assert "Protocol version: TLSv1.3" in text, (name, text)
        assert "Verification: OK" in text, (name, text)
        # the handshake signature (CertificateVerify) of the P-521 leaf
        assert "Signature type: ECDSA" in text and "Hash used: SHA512" in text, (name, text)
    assert "Ciphersuite: TLS_AES_256_GCM_SHA384" in done["aes256"].stderr
    assert "Server Temp Key: ECDH, secp521r1" in done["aes256"].stderr
    assert "Ciphersuite: TLS_CHACHA20_POLY1305_SHA256" in done["chacha"].stderr
    assert "Server Temp Key: X448" in done["chacha"].stderr


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command line tool")
def test_a_suite_outside_iso20_is_closed_after_the_handshake(chains: Chains) -> None:
    """OpenSSL also enables TLS_AES_128_GCM_SHA256 and Python's ssl cannot switch it off:
    an EV that offers only that suite completes the handshake, and the station closes
    the connection before any V2G message, without a session."""
    root = str(chains.base / "v2g20/root.pem")

    async def main() -> tuple[subprocess.CompletedProcess[str], int]:
        handlers = Handlers()
        async with V2GServer(handlers, tls=both(chains)) as server:
            done = await asyncio.to_thread(
                _s_client, server.port, "-tls1_3", "-CAfile", root,
                "-ciphersuites", "TLS_AES_128_GCM_SHA256",
            )  # fmt: skip
            return done, len(handlers.made)

    done, sessions = run(main)
    text = done.stdout + done.stderr
    assert "Ciphersuite: TLS_AES_128_GCM_SHA256" in text, text  # the handshake completed
    assert sessions == 0  # ... and no session handler was ever made


def _ed448_chain(directory: Path) -> SeccChain:
    """An Ed448 V2G root and SECC leaf (the -20 alternative to P-521)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed448

    from certs._util import key_pem, key_usage
    from certs.testpki import make_name

    root_key, leaf_key = ed448.Ed448PrivateKey.generate(), ed448.Ed448PrivateKey.generate()
    root_name = make_name("V2G Root CA Ed448", "Test V2G", "DE", "V2G")
    now = dt.datetime.now(dt.UTC)

    def build(subject: x509.Name, key: ed448.Ed448PublicKey, ca: bool) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(root_name)
            .public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(
                key_usage(*(("key_cert_sign", "crl_sign") if ca else ("digital_signature",))),
                critical=True,
            )
            .sign(root_key, None)
        )

    root = build(root_name, root_key.public_key(), True)
    leaf = build(
        make_name("DE*ABC*E1234567*1", "Test CPO", "DE", "CPO"), leaf_key.public_key(), False
    )
    (directory / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    (directory / "chain.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key_pem(leaf_key))
    return SeccChain(directory / "chain.pem", directory / "key.pem", root, name="ed448")


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command line tool")
def test_ed448_iso20_chain_signs_with_ed448(chains: Chains, tmp_path: Path) -> None:
    ed = _ed448_chain(tmp_path)

    async def main() -> subprocess.CompletedProcess[str]:
        selector = TlsSelector([chains.iso2], iso20_chains=[ed])
        async with V2GServer(Handlers(), tls=selector) as server:
            return await asyncio.to_thread(
                _s_client, server.port, "-tls1_3", "-CAfile", str(tmp_path / "root.pem"),
                "-verify_return_error",
            )  # fmt: skip

    text = (done := run(main)).stdout + done.stderr
    assert "Protocol version: TLSv1.3" in text and "Verification: OK" in text, text
    assert "Signature type: ed448" in text, text
