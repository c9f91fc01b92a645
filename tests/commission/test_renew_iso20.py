"""The ISO 15118-20 SECC leaf (store slot ``v2g20``) in `secc renew` and `secc commission`:
its own renewal (a fresh P-521 key, a CSR signed with SHA-512, SignCertificate with the
OCPP type V2GCertificate; the CertificateSigned goes to ``v2g20`` by its leaf key and is
served over TLS 1.3 from the next handshake), a -2-profile answer to the -20 CSR refused
with the old chain kept, and the commissioning SECC check counting ``v2g20``."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448

from certs.csr import load_csr, sign_csr
from certs.testpki import TestPkiOptions, build_test_pki, read_issued, write_test_pki
from secc.aio.tls import SeccChain, secc_context13
from secc.commission.context import Context, Deps
from secc.commission.model import Answers, Status, UseCase
from secc.commission.pki_checks import check_secc_certificate
from secc.maintenance import ISO20_V2G, plan
from tests.commission.conftest import EVSE_ID, PASSWORD, StationDir, pem, v2g_chain_for
from tests.commission.test_commission import by_name, run_station
from tests.commission.test_renew import maintain, nearly_a_year_on, run


@pytest.fixture(scope="module")
def pki20_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("commission-pki20") / "pki"
    write_test_pki(build_test_pki(dt.datetime.now(dt.UTC), TestPkiOptions()), directory)
    return directory


@pytest.fixture
def station20(pki20_dir: Path, tmp_path: Path) -> StationDir:
    s = StationDir(tmp_path / "station", pki20_dir)
    s.root.mkdir()
    shutil.copytree(pki20_dir / "station", s.store_path, symlinks=True)
    s.state.mkdir()
    s.device_model().set_local("SecurityCtrlr", "BasicAuthPassword", PASSWORD)
    s.write_config()
    return s


def v2g20_chain_for(pki_dir: Path, csr: str) -> str:
    """What a CPO CA under the -20 V2G root answers: the leaf for the CSR signed with
    SHA-512 by the -20 CPO sub-CA 2, then the sub-CAs."""
    sub2, sub1 = read_issued(pki_dir, "v2g20/sub2"), read_issued(pki_dir, "v2g20/sub1")
    request = load_csr(csr.encode())
    key = request.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(request.subject)
        .issuer_name(sub2.certificate.subject)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=730))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(sub2.key.public_key()), False
        )
    )
    for ext in request.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    leaf = builder.sign(sub2.key, hashes.SHA512())
    return pem(leaf, sub2.certificate, sub1.certificate)


def cpo_ca(pki_dir: Path, csr: str, kind: str | None = "V2GCertificate") -> str:
    """A CPO CA serving both PKIs: a P-521 CSR gets a -20 certificate, P-256 a -2 one;
    the charging-station certificate comes from the CSMS root."""
    if kind == "ChargingStationCertificate":
        csms_root = read_issued(pki_dir, "csms/root")
        return pem(sign_csr(csr.encode(), csms_root, dt.datetime.now(dt.UTC)))
    key = load_csr(csr.encode()).public_key()
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp521r1":
        return v2g20_chain_for(pki_dir, csr)
    return v2g_chain_for(pki_dir, csr)


async def serve13(station: StationDir) -> x509.Certificate:
    """The -20 leaf a TLS 1.3 handshake with the store's v2g20 chain presents."""
    store = station.store()
    certfile, keyfile = store.leaf_paths("v2g20")
    root = store.roots_for("v2g", iso20=True)[0]
    ctx = secc_context13(SeccChain(certfile, keyfile, root))

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.load_verify_locations(cadata=pem(root))
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        ssl_object = writer.get_extra_info("ssl_object")
        assert ssl_object.version() == "TLSv1.3"
        peer = ssl_object.getpeercert(binary_form=True)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    return x509.load_der_x509_certificate(peer)


def test_plan_sees_the_iso20_leaf_due(station20: StationDir) -> None:
    due = plan(station20.store(), nearly_a_year_on())
    assert {"V2GCertificate", ISO20_V2G} <= set(due.renew)  # -2 and -20 SECC leaves
    assert plan(station20.store(), dt.datetime.now(dt.UTC)).renew == ()


def test_iso20_leaf_renewed_with_a_p521_key_and_served_over_tls13(station20: StationDir) -> None:
    async def main() -> tuple[Any, ...]:
        store = station20.store()
        old20, old2 = store.leaf_chain("v2g20")[0], store.leaf_chain("v2g")[0]
        assert await serve13(station20) == old20
        report, sent, csms = await maintain(
            station20, answer=lambda kind, csr: cpo_ca(station20.pki, csr, kind)
        )
        return report, sent, csms, old20, old2, await serve13(station20)

    report, sent, csms, old20, old2, served = run(main())
    outcomes = {o.certificate_type: o for o in report.renewals}
    assert set(outcomes) == {"V2GCertificate", ISO20_V2G, "ChargingStationCertificate"}
    assert all(o.accepted for o in outcomes.values()), outcomes
    # both travelled as OCPP SignCertificate(V2GCertificate); the -20 CSR: P-521, SHA-512
    v2g = [csr for kind, csr in csms.csrs if kind == "V2GCertificate"]
    assert len(v2g) == 2 and len(csms.csrs) == 3
    requests = [load_csr(csr.encode()) for csr in v2g]
    curves = sorted(r.public_key().curve.name for r in requests)  # type: ignore[union-attr]
    assert curves == ["secp256r1", "secp521r1"]
    (req20,) = [r for r in requests if r.public_key().curve.name == "secp521r1"]  # type: ignore[union-attr]
    assert isinstance(req20.signature_hash_algorithm, hashes.SHA512)
    assert [status.status for _, status in sent] == ["Accepted"] * 3
    store = station20.store()
    new20, new2 = store.leaf_chain("v2g20")[0], store.leaf_chain("v2g")[0]
    assert new20 != old20 and new2 != old2
    assert new20.public_key().curve.name == "secp521r1"  # type: ignore[union-attr]
    assert new2.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert served == new20  # the next TLS 1.3 handshake serves the renewed -20 chain
    assert store.pending_key("v2g20") is None and store.pending_key("v2g") is None


def test_iso2_profile_answer_to_the_iso20_csr_keeps_the_old_chain(station20: StationDir) -> None:
    """The CA signs the P-521 CSR with the -2 CPO sub-CA (P-256, SHA-256): it fits the
    pending key, but the -20 check (a -20 V2G root, -20 algorithms) refuses it."""

    def wrong(kind: str | None, csr: str) -> str:
        sub2, sub1 = (read_issued(station20.pki, f"v2g/{n}") for n in ("sub2", "sub1"))
        return pem(
            sign_csr(csr.encode(), sub2, dt.datetime.now(dt.UTC)),
            sub2.certificate,
            sub1.certificate,
        )

    async def main() -> tuple[Any, ...]:
        old20 = station20.store().leaf_chain("v2g20")[0]
        report, _sent, _ = await maintain(station20, answer=wrong)
        return report, old20, await serve13(station20)

    report, old20, served = run(main())
    outcome = next(o for o in report.renewals if o.certificate_type == ISO20_V2G)
    assert not outcome.accepted and "FAILED_" in outcome.reason, outcome
    assert station20.store().leaf_chain("v2g20")[0] == old20 == served
    assert not report.ok


def test_commission_secc_check_counts_v2g20(station20: StationDir) -> None:
    def check(now: dt.datetime) -> Any:
        ctx = Context(station20.config, Answers(), Deps(utc_now=lambda: now))
        ctx.load()
        return asyncio.run(check_secc_certificate(ctx))

    result = check(dt.datetime.now(dt.UTC))
    assert result.status is Status.PASS, result
    assert "v2g: " in result.reason and "v2g20: " in result.reason
    # a -20 chain under the -2 root only: refused by the -20 rules
    store = station20.store()
    chain20 = store.leaf_chain("v2g20")
    for root in store.roots_for("v2g", iso20=True):
        from certs._util import fingerprint

        (store.root / "trust" / "v2g" / f"{fingerprint(root)}.pem").unlink()
    result = check(dt.datetime.now(dt.UTC))
    assert result.status is Status.FAIL and "(v2g20)" in result.reason, result
    assert "ISO 15118-20 V2G root" in result.fix
    assert chain20  # unchanged


def test_commission_signs_the_iso20_leaf(station20: StationDir) -> None:
    """``secc commission --sign V2GCertificate20`` from a store without a -20 SECC chain."""
    station20.store().delete_leaf("v2g20")
    answers = Answers(
        use_case=UseCase.PUBLIC,
        apply_preset=True,
        sign=(ISO20_V2G,),
        seccid=EVSE_ID,
        organization="Test CPO",
        csms_timeout=10,
        sign_timeout=20,
    )
    report, csms = run(
        run_station(station20, answers=answers, ca=lambda k, csr: cpo_ca(station20.pki, csr))
    )
    results = by_name(report)
    assert results[f"provision.sign[{ISO20_V2G}]"].status is Status.PASS, results
    assert csms.csrs[0][0] == "V2GCertificate"
    leaf = station20.store().leaf_chain("v2g20")[0]
    assert leaf.public_key().curve.name == "secp521r1"  # type: ignore[union-attr]
    assert results["certs.secc"].status is Status.PASS
    assert "v2g20: " in results["certs.secc"].reason


def test_an_ed448_leaf_is_renewed_with_an_ed448_key(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """`secc renew` keeps the -20 leaf's algorithm: an Ed448 leaf gets an Ed448 CSR, and
    the Ed448 CPO sub-CA's answer is installed and served over TLS 1.3."""
    pki = tmp_path_factory.mktemp("commission-pki20-ed448") / "pki"
    write_test_pki(
        build_test_pki(dt.datetime.now(dt.UTC), TestPkiOptions(iso20_algorithm="ed448")), pki
    )
    station = StationDir(tmp_path / "station", pki)
    station.root.mkdir()
    shutil.copytree(pki / "station", station.store_path, symlinks=True)
    station.state.mkdir()
    station.device_model().set_local("SecurityCtrlr", "BasicAuthPassword", PASSWORD)
    station.write_config()

    def answer(kind: str | None, csr: str) -> str:
        key = load_csr(csr.encode()).public_key()
        if isinstance(key, ed448.Ed448PublicKey):
            sub2, sub1 = read_issued(pki, "v2g20/sub2"), read_issued(pki, "v2g20/sub1")
            leaf = sign_csr(csr.encode(), sub2, dt.datetime.now(dt.UTC))
            return pem(leaf, sub2.certificate, sub1.certificate)
        return cpo_ca(pki, csr, kind)

    async def main() -> tuple[Any, ...]:
        old20 = station.store().leaf_chain("v2g20")[0]
        report, _, csms = await maintain(station, answer=answer)
        return report, csms, old20, await serve13(station)

    report, csms, old20, served = run(main())
    outcomes = {o.certificate_type: o for o in report.renewals}
    assert outcomes[ISO20_V2G].accepted, outcomes
    keys = [load_csr(csr.encode()).public_key() for kind, csr in csms.csrs]
    assert sum(isinstance(k, ed448.Ed448PublicKey) for k in keys) == 1
    new20 = station.store().leaf_chain("v2g20")[0]
    assert new20 != old20 and isinstance(new20.public_key(), ed448.Ed448PublicKey)
    assert served == new20
