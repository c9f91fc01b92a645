"""`secc commission --sign` makes the checks `secc run` makes on CertificateSigned (OCPP
2.0.1 A02.FR.06 / A03.FR.06, one :class:`secc.maintenance.SignedInstaller`): a chain the
running station would refuse (another hierarchy, another subject) is reported with the
check's reason and the file that keeps it, and nothing is installed.

The test CSMS's CA answers the CSRs the station sends; the refusing cases are CAs that
do what OCPP forbids (sign under the manufacturer root, rewrite the subject)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from certs._util import Issued, fingerprint
from certs.csr import load_csr, sign_csr
from certs.testpki import read_issued
from secc.commission.model import Answers, Status, UseCase
from tests.commission.conftest import STATION, StationDir, pem, v2g_chain_for
from tests.commission.test_commission import by_name, run, run_station

CSC = "ChargingStationCertificate"
OPERATOR = "Operator GmbH"  # SecurityCtrlr.OrganizationName


def answers(*sign: str) -> Answers:
    return Answers(
        use_case=UseCase.PUBLIC,
        apply_preset=True,
        sign=sign,
        organization="Test CPO",
        csms_timeout=10,
        sign_timeout=20,
    )


def issue(csr: str, issuer: Issued, subject: x509.Name | None = None) -> x509.Certificate:
    """A CA's leaf for ``csr``; with ``subject`` one that ignores the CSR's subject."""
    now = dt.datetime.now(dt.UTC)
    if subject is None:
        return sign_csr(csr.encode(), issuer, now)
    request = load_csr(csr.encode())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject)
        .public_key(request.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
    )
    for ext in request.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    return builder.sign(issuer.key, hashes.SHA256())


def name(cn: str, o: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, o),
        ]
    )


def csms_leaf_print(station: StationDir) -> str:
    return fingerprint(station.store().leaf_chain("csms")[0])


def attribute(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    return str(cert.subject.get_attributes_for_oid(oid)[0].value)


def test_a_station_certificate_of_the_operator_hierarchy_is_installed(station: StationDir) -> None:
    """The CSR names the station and SecurityCtrlr.OrganizationName; the CA signs it under
    the CSMS root: the checks pass, the new client certificate is in the store."""
    station.device_model().set_local("SecurityCtrlr", "OrganizationName", OPERATOR)
    before = csms_leaf_print(station)
    root = read_issued(station.pki, "csms/root")
    report, csms = run(
        run_station(station, answers=answers(CSC), ca=lambda k, csr: pem(issue(csr, root)))
    )
    result = by_name(report)[f"provision.sign[{CSC}]"]
    assert result.status is Status.PASS, result
    assert csms.csrs[0][0] == CSC
    leaf = station.store().leaf_chain("csms")[0]
    assert fingerprint(leaf) != before
    assert attribute(leaf, NameOID.COMMON_NAME) == STATION
    assert attribute(leaf, NameOID.ORGANIZATION_NAME) == OPERATOR  # not the answer's O
    assert not list(station.state.glob("refused-*.pem"))


def test_a_station_certificate_under_the_manufacturer_root_is_refused(
    station: StationDir,
) -> None:
    before = csms_leaf_print(station)
    maker = read_issued(station.pki, "manufacturer/root")
    report, csms = run(
        run_station(station, answers=answers(CSC), ca=lambda k, csr: pem(issue(csr, maker)))
    )
    assert csms.csrs and csms.csrs[0][0] == CSC  # the CSMS did answer with a chain
    result = by_name(report)[f"provision.sign[{CSC}]"]
    assert result.status is Status.FAIL
    assert "A02.FR.06" in result.reason and "CSMSRootCertificate" in result.reason
    assert "nothing was installed" in result.reason
    kept = station.state / f"refused-{CSC}.pem"
    assert str(kept) in result.reason and dict(result.details)["file"] == str(kept)
    assert (
        "Manufacturer Root CA"
        in x509.load_pem_x509_certificate(kept.read_bytes()).issuer.rfc4514_string()
    )
    assert csms_leaf_print(station) == before  # the client certificate in service stays
    assert not report.ready
    assert "CSMSRootCertificate" in report.markdown()


def test_a_station_certificate_of_another_organization_is_refused(station: StationDir) -> None:
    station.device_model().set_local("SecurityCtrlr", "OrganizationName", OPERATOR)
    before = csms_leaf_print(station)
    root = read_issued(station.pki, "csms/root")
    report, _ = run(
        run_station(
            station,
            answers=answers(CSC),
            ca=lambda k, csr: pem(issue(csr, root, name(STATION, "Someone Else"))),
        )
    )
    result = by_name(report)[f"provision.sign[{CSC}]"]
    assert result.status is Status.FAIL
    assert "organizationName is 'Someone Else'" in result.reason and OPERATOR in result.reason
    assert csms_leaf_print(station) == before


def test_a_v2g_certificate_for_another_secc_is_refused(station: StationDir) -> None:
    """A V2G leaf must carry the CN its CSR asked for (the SECC ID)."""
    store = station.store()
    before = fingerprint(store.leaf_chain("v2g")[0])
    sub2, sub1 = read_issued(station.pki, "v2g/sub2"), read_issued(station.pki, "v2g/sub1")

    def ca(kind: str | None, csr: str) -> str:
        subject = load_csr(csr.encode()).subject
        other = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, "DE*XYZ*E0000000*9")
                if a.oid == NameOID.COMMON_NAME
                else a
                for a in subject
            ]
        )
        return pem(issue(csr, sub2, other), sub2.certificate, sub1.certificate)

    report, _ = run(run_station(station, answers=answers("V2GCertificate"), ca=ca))
    result = by_name(report)["provision.sign[V2GCertificate]"]
    assert result.status is Status.FAIL
    assert "commonName is 'DE*XYZ*E0000000*9'" in result.reason
    assert (station.state / "refused-V2GCertificate.pem").is_file()
    assert fingerprint(station.store().leaf_chain("v2g")[0]) == before


def test_the_same_ca_signing_as_asked_passes(station: StationDir, tmp_path: Path) -> None:
    """The V2G counterpart of the refused case: the CSR's subject as is is installed."""
    report, _ = run(
        run_station(
            station,
            answers=answers("V2GCertificate"),
            ca=lambda k, csr: v2g_chain_for(station.pki, csr),
        )
    )
    assert by_name(report)["provision.sign[V2GCertificate]"].status is Status.PASS
