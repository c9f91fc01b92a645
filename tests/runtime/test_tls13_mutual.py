"""Mutual TLS 1.3 for ISO 15118-20 (Plug & Charge), on loopback with real handshakes.

The station requests the EV's certificate on TLS 1.3 (optional: EIM needs none),
verifies it against the -20 OEM/V2G roots the store holds at that moment, refuses a
chain that does not verify with a TLS alert, closes a connection whose verified chain is
outside the -20 certificate profile before any session, and hands the verified chain
(leaf first, without the root) to the connection.  TLS 1.2 (ISO 15118-2) asks for no
client certificate.  The EV side is Python's ssl client presenting the test PKI's
``oem20/vehicle_chain.pem`` (what an EV does per ISO 15118-20 §7.7.3)."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from certs._util import key_pem, pem
from certs.store import Store
from certs.testpki import (
    CHAINS,
    VEHICLE_USAGE,
    TestPkiOptions,
    build_test_pki,
    issue_certificate,
    make_name,
    write_test_pki,
)
from secc import codec
from secc.aio.tls import SeccChain, TlsSelector, vehicle_chain_refusal
from secc.aio.v2g_server import V2GServer
from secc.config import CertsSection, EvseSection, StationConfig
from secc.runtime import load_vehicle_roots
from tests.runtime.test_v2g_server import run
from tests.runtime.tlsclient import python_client
from tests.runtime.v2gpeer import SAP_FRAME, Handlers, read_frames

OPENSSL = shutil.which("openssl")
NOW = dt.datetime.now(dt.UTC)


class Lab:
    """Two independent test PKIs on disk: ``home`` (the station's store holds its roots)
    and ``foreign`` (nobody trusts it)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.home = build_test_pki(NOW, TestPkiOptions())
        self.foreign = build_test_pki(NOW, TestPkiOptions(oem_name="Foreign OEM"))
        write_test_pki(self.home, base / "home")
        write_test_pki(self.foreign, base / "foreign", station_store=False)
        self.store = Store(base / "home" / "station")
        root = x509.load_pem_x509_certificate((base / "home/v2g20/root.pem").read_bytes())
        self.secc20 = SeccChain(
            base / "home/v2g20/secc_chain.pem", base / "home/v2g20/secc.key", root, name="v2g20"
        )
        root2 = x509.load_pem_x509_certificate((base / "home/v2g/root.pem").read_bytes())
        self.secc2 = SeccChain(
            base / "home/v2g/secc_chain.pem", base / "home/v2g/secc.key", root2, name="v2g"
        )
        self.station_roots = base / "roots.pem"  # what the EV trusts for the SECC
        self.station_roots.write_bytes(
            (base / "home/v2g/root.pem").read_bytes() + (base / "home/v2g20/root.pem").read_bytes()
        )

    def vehicle_roots(self) -> list[x509.Certificate]:
        return [
            *self.store.roots_for("oem", iso20=True),
            *self.store.roots_for("v2g", iso20=True),
        ]

    def selector(self) -> TlsSelector:
        return TlsSelector(
            [self.secc2], iso20_chains=[self.secc20], vehicle_roots=self.vehicle_roots
        )

    def ev(self, chain_file: Path | None, key_file: Path | None, **kw: object) -> ssl.SSLContext:
        ctx = python_client(self.station_roots, **kw)
        if chain_file is not None:
            ctx.load_cert_chain(str(chain_file), str(key_file))
        return ctx


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return Lab(tmp_path_factory.mktemp("mtls"))


def _write_chain(
    directory: Path, name: str, chain: list[x509.Certificate], key: object
) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    certfile, keyfile = directory / f"{name}.pem", directory / f"{name}.key"
    certfile.write_bytes(pem(chain))
    keyfile.write_bytes(key_pem(key))  # type: ignore[arg-type]
    return certfile, keyfile


async def _sap(
    server: V2GServer, client: ssl.SSLContext, handlers: Handlers
) -> tuple[str, tuple[x509.Certificate, ...]]:
    """Handshake and one appHandshake exchange; (TLS version, the station's vehicle chain)."""
    reader, writer = await asyncio.open_connection(
        "::1", server.port, ssl=client, server_hostname=None
    )
    try:
        version = writer.get_extra_info("ssl_object").version()
        writer.write(SAP_FRAME)
        (res,) = await read_frames(reader, 1)
        assert codec.decode(res, "apphand").schema_id == 7
        return version, handlers.made[-1].conn.vehicle_chain
    finally:
        writer.close()


async def _refused(server: V2GServer, client: ssl.SSLContext) -> str:
    """The EV's view of a refused connection: the alert (or EOF) it reads, as text."""
    try:
        reader, writer = await asyncio.open_connection(
            "::1", server.port, ssl=client, server_hostname=None
        )
    except (ssl.SSLError, ConnectionError) as exc:  # the alert came during the handshake
        return str(exc)
    try:
        writer.write(SAP_FRAME)
        data = await asyncio.wait_for(reader.read(100), 5)
        assert data == b"", "the station answered on a refused connection"
        return "EOF"
    except (ssl.SSLError, ConnectionError) as exc:  # TLS 1.3: the alert after the client's Finished
        return str(exc)
    finally:
        writer.close()


def test_vehicle_chain_verified_and_handed_to_the_connection(lab: Lab) -> None:
    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(handlers, tls=lab.selector()) as server:
            ev = lab.ev(
                lab.base / "home/oem20/vehicle_chain.pem", lab.base / "home/oem20/vehicle.key"
            )
            version, chain = await _sap(server, ev, handlers)
            assert version == "TLSv1.3"
            assert list(chain) == lab.home.chain(*CHAINS["vehicle20"])  # leaf, sub-CA 2, sub-CA 1

    run(main)


def test_eim_ev_without_a_certificate_is_served(lab: Lab) -> None:
    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(handlers, tls=lab.selector()) as server:
            version, chain = await _sap(server, lab.ev(None, None), handlers)
            assert (version, chain) == ("TLSv1.3", ())

    run(main)


def test_vehicle_certificate_from_a_foreign_root_gets_an_alert(lab: Lab) -> None:
    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(handlers, tls=lab.selector()) as server:
            ev = lab.ev(
                lab.base / "foreign/oem20/vehicle_chain.pem", lab.base / "foreign/oem20/vehicle.key"
            )
            seen = await _refused(server, ev)
            assert "ALERT" in seen.upper() and "UNKNOWN_CA" in seen.upper(), seen
            await asyncio.sleep(0.2)
            assert handlers.made == []  # no session was started

    run(main)


def test_iso2_oem_chain_is_no_iso20_vehicle_certificate(lab: Lab) -> None:
    """The -2 OEM root (P-256) is in the store too, but is no -20 trust anchor."""

    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(handlers, tls=lab.selector()) as server:
            ev = lab.ev(lab.base / "home/oem/prov_chain.pem", lab.base / "home/oem/prov.key")
            seen = await _refused(server, ev)
            assert "UNKNOWN_CA" in seen.upper(), seen
            assert handlers.made == []

    run(main)


def test_expired_vehicle_certificate_gets_an_alert(lab: Lab, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP521R1())
    leaf = issue_certificate(
        name="old",
        subject=make_name(lab.home.options.vin, "Test OEM", "DE", "OEM"),
        issuer=lab.home["oem20_sub2"],
        not_before=NOW - dt.timedelta(days=30),
        not_after=NOW - dt.timedelta(days=1),
        ca=False,
        usage=VEHICLE_USAGE,
        key=key,
        hash_algorithm=hashes.SHA512(),
    )
    certfile, keyfile = _write_chain(
        tmp_path, "old", [leaf.certificate, *lab.home.chain("oem20_sub2", "oem20_sub1")], key
    )

    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(handlers, tls=lab.selector()) as server:
            seen = await _refused(server, lab.ev(certfile, keyfile))
            assert "CERTIFICATE_EXPIRED" in seen.upper(), seen
            assert handlers.made == []

    run(main)


def test_p256_leaf_under_a_20_root_is_closed_before_any_session(lab: Lab, tmp_path: Path) -> None:
    """OpenSSL accepts the chain (it links to a trusted -20 root), the -20 certificate
    profile does not (a P-256 key signed with SHA-256): closed before any session."""
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = issue_certificate(
        name="p256",
        subject=make_name(lab.home.options.vin, "Test OEM", "DE", "OEM"),
        issuer=lab.home["oem20_sub2"],
        not_before=NOW - dt.timedelta(hours=1),
        not_after=NOW + dt.timedelta(days=30),
        ca=False,
        usage=VEHICLE_USAGE,
        key=key,
    )
    chain = [leaf.certificate, *lab.home.chain("oem20_sub2", "oem20_sub1")]
    refusal = vehicle_chain_refusal([*chain, lab.home.cert("oem20_root")])
    assert refusal is not None and "FAILED_CertChainError" in refusal, refusal
    good = lab.home.chain(*CHAINS["vehicle20"], "oem20_root")
    assert vehicle_chain_refusal(good) is None
    certfile, keyfile = _write_chain(tmp_path, "p256", chain, key)

    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(handlers, tls=lab.selector()) as server:
            seen = await _refused(server, lab.ev(certfile, keyfile))
            assert "ALERT" not in seen.upper(), seen  # OpenSSL accepted the chain itself
            await asyncio.sleep(0.3)
            assert handlers.made == []  # no session handler was ever made

    run(main)


def test_roots_apply_to_the_next_handshake(lab: Lab, tmp_path: Path) -> None:
    """A -20 OEM root installed in the store (e.g. over OCPP InstallCertificate) is
    trusted from the next connection on, through the runtime's per-handshake reader."""
    store = Store(tmp_path / "store")
    store.initialize()
    store.install_root("v2g", pem([lab.home.cert("v2g20_root")]), utc_now=None)
    config = StationConfig(
        evse=(EvseSection(evse_id="DE*ABC*E1234567*1"),), certs=CertsSection(store=store.root)
    )
    selector = TlsSelector(
        [lab.secc2], iso20_chains=[lab.secc20], vehicle_roots=lambda: load_vehicle_roots(config)
    )
    ev = lab.ev(lab.base / "home/oem20/vehicle_chain.pem", lab.base / "home/oem20/vehicle.key")

    async def main() -> None:
        handlers = Handlers()
        async with V2GServer(handlers, tls=selector) as server:
            assert "UNKNOWN_CA" in (await _refused(server, ev)).upper()
            store.install_root("oem", pem([lab.home.cert("oem20_root")]), utc_now=None)
            version, chain = await _sap(server, ev, handlers)
            assert version == "TLSv1.3" and chain[0] == lab.home.cert("vehicle20")

    run(main)


@pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command (apt-get install openssl)")
def test_certificate_request_only_on_tls13(lab: Lab) -> None:
    """``openssl s_client`` shows a CertificateRequest on TLS 1.3, none on TLS 1.2."""
    assert OPENSSL is not None

    async def main() -> dict[str, str]:
        async with V2GServer(Handlers(), tls=lab.selector()) as server:
            out = {}
            for version in ("-tls1_3", "-tls1_2"):
                proc = await asyncio.create_subprocess_exec(
                    OPENSSL, "s_client", "-connect", f"[::1]:{server.port}", version, "-msg",
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                )  # fmt: skip
                stdout, _ = await asyncio.wait_for(proc.communicate(), 20)
                out[version] = stdout.decode(errors="replace")
            return out

    out = run(main)
    assert "CertificateRequest" in out["-tls1_3"], out["-tls1_3"][-2000:]
    assert "CertificateRequest" not in out["-tls1_2"], out["-tls1_2"][-2000:]


def test_ed448_vehicle_chain_is_verified(lab: Lab, tmp_path: Path) -> None:
    """ISO 15118-20 allows Ed448 beside P-521 [V2G20-2674]: an Ed448 OEM root, sub-CA and
    vehicle leaf pass the handshake (CertificateVerify signed with ed448) and the -20
    rules, and reach the connection."""
    from cryptography.hazmat.primitives.asymmetric import ed448

    from certs._util import key_usage

    keys = [ed448.Ed448PrivateKey.generate() for _ in range(3)]
    names = [
        make_name("OEM Root CA Ed448", "Test OEM", "DE", "V2G"),
        make_name("OEM Sub-CA Ed448", "Test OEM", "DE", "V2G"),
        make_name(lab.home.options.vin, "Test OEM", "DE", "OEM"),
    ]

    def build(i: int, issuer: int, ca: bool, path_len: int | None) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(names[i])
            .issuer_name(names[issuer])
            .public_key(keys[i].public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(hours=1))
            .not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=path_len), critical=True)
            .add_extension(
                key_usage(*(("key_cert_sign", "crl_sign") if ca else VEHICLE_USAGE)), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(keys[i].public_key()), False)
        )
        if i != issuer:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(keys[issuer].public_key()),
                False,
            )
        return builder.sign(keys[issuer], None)

    root, sub, leaf = build(0, 0, True, 1), build(1, 0, True, 0), build(2, 1, False, None)
    assert vehicle_chain_refusal([leaf, sub, root]) is None
    certfile, keyfile = _write_chain(tmp_path, "ed448", [leaf, sub], keys[2])
    selector = TlsSelector(
        [lab.secc2], iso20_chains=[lab.secc20], vehicle_roots=lambda: [*lab.vehicle_roots(), root]
    )

    async def main() -> tuple[str, tuple[x509.Certificate, ...]]:
        handlers = Handlers()
        async with V2GServer(handlers, tls=selector) as server:
            return await _sap(server, lab.ev(certfile, keyfile), handlers)

    version, chain = run(main)
    assert version == "TLSv1.3" and list(chain) == [leaf, sub]
