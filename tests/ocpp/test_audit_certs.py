"""Certificate messages from the CSMS (A02, M03-M05), each answer checked against the
store, written from OCPP 2.0.1 part 2:

* CertificateSigned with a chain whose leaf is not for the key of the station's CSR, or
  that is no PEM at all: Rejected, the store unchanged, and the security event
  InvalidChargingStationCertificate (appendix "Security events": "the certificate sent to
  the Charging Station using CertificateSigned is not a valid certificate"; critical);
  the right chain afterwards: Accepted and installed;
* InstallCertificate with bad PEM, a non-CA certificate, an expired root: Rejected,
  nothing installed; a good root Accepted and listed by GetInstalledCertificateIds;
* DeleteCertificate of a certificate the station does not hold: NotFound;
  GetInstalledCertificateIds of a type none is installed of: NotFound.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ocpp.v201 import call

from certs.csr import sign_csr
from certs.store import Store
from certs.testpki import read_issued
from secc.ocpp_bridge import security_events as sec
from tests.ocpp.conftest import OpsLink
from tests.ocpp.csms import wait_for

NOW = dt.datetime.now(dt.UTC)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))  # type: ignore[arg-type]


def pem(*certs: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def self_signed(*, ca: bool, days: tuple[int, int]) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "audit root")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + dt.timedelta(days=days[0]))
        .not_valid_after(NOW + dt.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def invalid_certificate_events(csms: object) -> list[str]:
    return [
        str(e.get("tech_info"))
        for e in csms.raised_events()  # type: ignore[attr-defined]
        if e["type"] == sec.INVALID_STATION_CERTIFICATE
    ]


def test_certificate_signed_refusals(ops_link: OpsLink, pki_dir: Path, store: Store) -> None:
    async def main() -> None:
        async with ops_link(store=store) as link:
            cp, csms = link.cp, link.csms
            link.bridge.dm.set_local("SecurityCtrlr", "OrganizationName", "Test CPO")
            before = store.leaf_chain("csms")[0]
            answer = await cp.call(
                call.TriggerMessage(requested_message="SignChargingStationCertificate")
            )
            assert answer.status == "Accepted"
            await wait_for(lambda: len(csms.csrs) == 1)
            _, csr = csms.csrs[0]
            root = read_issued(pki_dir, "csms/root")
            # a leaf for another key (the CSR of another station)
            other_key = ec.generate_private_key(ec.SECP256R1())
            other_csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "other")]))
                .sign(other_key, hashes.SHA256())
                .public_bytes(serialization.Encoding.PEM)
            )
            foreign = sign_csr(other_csr, root, NOW)
            refused = await cp.call(
                call.CertificateSigned(
                    certificate_chain=pem(foreign), certificate_type="ChargingStationCertificate"
                )
            )
            assert refused.status == "Rejected"
            assert refused.status_info["reason_code"] == "InvalidCertificate"
            garbage = await cp.call(
                call.CertificateSigned(
                    certificate_chain="-----BEGIN CERTIFICATE-----\nnot base64\n",
                    certificate_type="ChargingStationCertificate",
                )
            )
            assert garbage.status == "Rejected"
            assert store.leaf_chain("csms")[0] == before
            await wait_for(lambda: len(invalid_certificate_events(csms)) == 2)
            assert all(
                info.startswith("ChargingStationCertificate")
                for info in invalid_certificate_events(csms)
            )
            good = await cp.call(
                call.CertificateSigned(
                    certificate_chain=pem(sign_csr(csr.encode(), root, NOW)),
                    certificate_type="ChargingStationCertificate",
                )
            )
            assert good.status == "Accepted"
            assert store.leaf_chain("csms")[0] != before
            assert len(invalid_certificate_events(csms)) == 2

    run(main())


def test_install_delete_list_answers(ops_link: OpsLink, store: Store) -> None:
    async def main() -> None:
        async with ops_link(store=store) as link:
            cp = link.cp
            mo_before = store.roots("mo")
            for certificate in (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "no PEM at all",
                pem(self_signed(ca=False, days=(-1, 300))),  # not a CA
                pem(self_signed(ca=True, days=(-300, -1))),  # expired
                pem(self_signed(ca=True, days=(10, 300))),  # not valid yet
            ):
                answer = await cp.call(
                    call.InstallCertificate(
                        certificate_type="MORootCertificate", certificate=certificate
                    )
                )
                assert answer.status == "Rejected", certificate[:60]
                assert answer.status_info["reason_code"] == "InvalidCertificate"
            assert store.roots("mo") == mo_before
            root = self_signed(ca=True, days=(-1, 300))
            ok = await cp.call(
                call.InstallCertificate(certificate_type="MORootCertificate", certificate=pem(root))
            )
            assert ok.status == "Accepted"
            assert root in store.roots("mo")
            listed = await cp.call(
                call.GetInstalledCertificateIds(certificate_type=["MORootCertificate"])
            )
            assert listed.status == "Accepted"
            serials = {
                int(c["certificate_hash_data"]["serial_number"], 16)
                for c in listed.certificate_hash_data_chain
            }
            assert root.serial_number in serials
            absent = {
                "hash_algorithm": "SHA256",
                "issuer_name_hash": "00" * 32,
                "issuer_key_hash": "00" * 32,
                "serial_number": "1f",
            }
            gone = await cp.call(call.DeleteCertificate(certificate_hash_data=absent))
            assert gone.status == "NotFound"

    run(main())


def test_no_certificate_of_a_type_is_not_found(ops_link: OpsLink, store: Store) -> None:
    async def main() -> None:
        async with ops_link(store=store) as link:
            for path in (store.root / "trust" / "manufacturer").glob("*.pem"):
                path.unlink()
            answer = await link.cp.call(
                call.GetInstalledCertificateIds(certificate_type=["ManufacturerRootCertificate"])
            )
            assert answer.status == "NotFound"

    run(main())


def test_certificate_signed_without_type_goes_where_its_key_belongs(
    ops_link: OpsLink, pki_dir: Path, store: Store
) -> None:
    """CertificateSignedRequest.certificateType is optional: a V2G leaf sent without it
    (for the key of the station's V2G CSR) is installed as the SECC certificate, not
    refused as a charging-station certificate for a key it does not have."""

    async def main() -> None:
        async with ops_link(store=store) as link:
            cp, csms, dm = link.cp, link.csms, link.bridge.dm
            dm.set_local("ISO15118Ctrlr", "SeccId", "DE*ABC*E1234567*1")
            dm.set_local("ISO15118Ctrlr", "OrganizationName", "Test CPO")
            old_leaf = store.leaf_chain("v2g")[0]
            answer = await cp.call(call.TriggerMessage(requested_message="SignV2GCertificate"))
            assert answer.status == "Accepted"
            await wait_for(lambda: len(csms.csrs) == 1)
            kind, csr = csms.csrs[0]
            assert kind == "V2GCertificate"
            sub2, sub1 = read_issued(pki_dir, "v2g/sub2"), read_issued(pki_dir, "v2g/sub1")
            leaf = sign_csr(csr.encode(), sub2, NOW)
            signed = await cp.call(
                call.CertificateSigned(
                    certificate_chain=pem(leaf, sub2.certificate, sub1.certificate)
                )
            )
            assert signed.status == "Accepted", signed
            assert store.leaf_chain("v2g")[0] == leaf != old_leaf
            assert not invalid_certificate_events(csms)

    run(main())
