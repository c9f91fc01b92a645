"""Certificate management and the device model through the bridge, against the test CSMS:
InstallCertificate / DeleteCertificate / GetInstalledCertificateIds on the real store,
SignCertificate → CertificateSigned (V2G and charging-station certificates; TLS switches
at the next reconnect), renewal started by the station, GetCertificateStatus with real OCSP
responses, Get/SetVariables with persistence, GetBaseReport → NotifyReport."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ssl
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from ocpp.v201 import call

from certs.csr import sign_csr
from certs.ocsp import hash_data
from certs.store import Store
from certs.testpki import read_issued
from secc.ocpp_bridge.bridge import BridgeConfig
from secc.ocpp_bridge.device_model import DeviceModel
from tests.ocpp.conftest import server_context
from tests.ocpp.csms import Behaviour, TestCsms, wait_for
from tests.ocpp.station import STATION, build, running

NOW = dt.datetime.now(dt.UTC)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


def pem(*certs: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def test_install_list_delete_on_the_store(tmp_path: Path, pki_dir: Path, store: Store) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        station = build(tmp_path, csms.url, store=store)
        for path in (store.root / "trust" / "mo").glob("*.pem"):
            path.unlink()  # start without an MO root
        async with running(station):
            cp = await csms.station(STATION)
            ids = await cp.call(
                call.GetInstalledCertificateIds(certificate_type=["MORootCertificate"]),
                suppress=False,
            )
            assert ids.status == "NotFound"
            mo_root = (pki_dir / "mo" / "root.pem").read_text()
            answer = await cp.call(
                call.InstallCertificate(certificate_type="MORootCertificate", certificate=mo_root),
                suppress=False,
            )
            assert answer.status == "Accepted"
            leaf = (pki_dir / "mo" / "contract.pem").read_text()
            answer = await cp.call(
                call.InstallCertificate(certificate_type="MORootCertificate", certificate=leaf),
                suppress=False,
            )
            assert answer.status == "Rejected"
            assert "CA" in answer.status_info["additional_info"]
            ids = await cp.call(call.GetInstalledCertificateIds(), suppress=False)
            types = sorted(c["certificate_type"] for c in ids.certificate_hash_data_chain)
            assert types == [
                "CSMSRootCertificate",
                "MORootCertificate",
                "ManufacturerRootCertificate",
                "V2GCertificateChain",
                "V2GRootCertificate",
            ]
            v2g_chain = next(
                c
                for c in ids.certificate_hash_data_chain
                if c["certificate_type"] == "V2GCertificateChain"
            )
            assert len(v2g_chain["child_certificate_hash_data"]) == 2
            root = x509.load_pem_x509_certificate(mo_root.encode())
            wanted = hash_data(root, root).to_ocpp()
            snake = {
                "hash_algorithm": wanted["hashAlgorithm"],
                "issuer_name_hash": wanted["issuerNameHash"],
                "issuer_key_hash": wanted["issuerKeyHash"],
                "serial_number": wanted["serialNumber"],
            }
            answer = await cp.call(call.DeleteCertificate(certificate_hash_data=snake))
            assert answer.status == "Accepted"
            assert store.roots("mo") == []
            answer = await cp.call(call.DeleteCertificate(certificate_hash_data=snake))
            assert answer.status == "NotFound"
        await csms.stop()

    run(main())


def test_sign_v2g_certificate_via_trigger(tmp_path: Path, pki_dir: Path, store: Store) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        station = build(
            tmp_path,
            csms.url,
            store=store,
            variables={
                ("ISO15118Ctrlr", "SeccId"): "DE*ABC*E1234567*1",
                ("ISO15118Ctrlr", "OrganizationName"): "Test CPO",
            },
        )
        old_leaf = store.leaf_chain("v2g")[0]
        async with running(station):
            cp = await csms.station(STATION)
            answer = await cp.call(call.TriggerMessage(requested_message="SignV2GCertificate"))
            assert answer.status == "Accepted"
            await wait_for(lambda: len(csms.csrs) == 1)
            kind, csr = csms.csrs[0]
            assert kind == "V2GCertificate"
            sub2, sub1 = read_issued(pki_dir, "v2g/sub2"), read_issued(pki_dir, "v2g/sub1")
            leaf = sign_csr(csr.encode(), sub2, NOW)
            assert leaf.subject.rfc4514_string().startswith("DC=CPO")
            # a chain for another key is refused, the store keeps the old leaf
            wrong = read_issued(pki_dir, "v2g/secc").certificate
            bad = await cp.call(
                call.CertificateSigned(
                    certificate_chain=pem(wrong, sub2.certificate, sub1.certificate),
                    certificate_type="V2GCertificate",
                )
            )
            assert bad.status == "Rejected"
            # the right key but issued under the MO hierarchy: no path to a V2G root
            mo2, mo1 = read_issued(pki_dir, "mo/sub2"), read_issued(pki_dir, "mo/sub1")
            foreign = sign_csr(csr.encode(), mo2, NOW)
            bad = await cp.call(
                call.CertificateSigned(
                    certificate_chain=pem(foreign, mo2.certificate, mo1.certificate),
                    certificate_type="V2GCertificate",
                )
            )
            assert bad.status == "Rejected"
            assert store.leaf_chain("v2g")[0] == old_leaf
            good = await cp.call(
                call.CertificateSigned(
                    certificate_chain=pem(leaf, sub2.certificate, sub1.certificate),
                    certificate_type="V2GCertificate",
                )
            )
            assert good.status == "Accepted"
            await wait_for(lambda: not station.bridge.signing)
            station.bridge.dm.set_local(
                "ISO15118Ctrlr", "V2GCertificateInstallationEnabled", "false"
            )
            answer = await cp.call(call.TriggerMessage(requested_message="SignV2GCertificate"))
            assert answer.status == "Rejected"
            assert not await station.bridge.sign_certificate("V2GCertificate")
        new_leaf = store.leaf_chain("v2g")[0]
        assert new_leaf == leaf != old_leaf
        await csms.stop()

    run(main())


def test_charging_station_certificate_renewal_switches_tls(
    tmp_path: Path, pki_dir: Path, store: Store
) -> None:
    """Renewal is due (renew_before_days beyond the leaf's life): the station asks by itself;
    once it answered Accepted it reconnects with the signed certificate (profile 3,
    A03.FR.08)."""

    async def main() -> None:
        b = Behaviour()
        csms = TestCsms(
            password=None, ssl_context=server_context(pki_dir, client_auth=True), behaviour=b
        )
        await csms.start()
        url = csms.url.replace("127.0.0.1", "localhost")
        station = build(
            tmp_path,
            url,
            store=store,
            config=BridgeConfig(renew_before_days=400, meter_interval=3600),
            client={"security_profile": 3},
            variables={("SecurityCtrlr", "OrganizationName"): "Test CPO"},
        )
        assert set(station.bridge.renewal_due()) == {"V2GCertificate", "ChargingStationCertificate"}
        async with running(station):
            await wait_for(lambda: len(csms.csrs) == 2)
            requests = dict(csms.csrs)
            root = read_issued(pki_dir, "csms/root")
            leaf = sign_csr(requests["ChargingStationCertificate"].encode(), root, NOW)
            cp = await csms.station(STATION)
            answer = await cp.call(
                call.CertificateSigned(
                    certificate_chain=pem(leaf), certificate_type="ChargingStationCertificate"
                )
            )
            assert answer.status == "Accepted"
            first_serial = csms.peer_certs[0]["serialNumber"]
            # A03.FR.08: the station reconnects by itself and presents the new certificate
            await wait_for(lambda: len(csms.peer_certs) == 2)
            await asyncio.wait_for(station.client.online.wait(), 10)
        assert csms.peer_certs[1]["serialNumber"] == format(leaf.serial_number, "X").zfill(
            len(csms.peer_certs[1]["serialNumber"])
        )
        assert csms.peer_certs[1]["serialNumber"] != first_serial
        await csms.stop()

    run(main())


def ocsp_answer(pki_dir: Path, status: ocsp.OCSPCertStatus) -> Any:
    pairs = [("v2g/secc", "v2g/sub2"), ("v2g/sub2", "v2g/sub1"), ("v2g/sub1", "v2g/root")]
    by_serial = {}
    for leaf_stem, issuer_stem in pairs:
        leaf, issuer = read_issued(pki_dir, leaf_stem), read_issued(pki_dir, issuer_stem)
        by_serial[format(leaf.certificate.serial_number, "x")] = (leaf, issuer)

    def answer(data: dict[str, Any]) -> str | None:
        leaf, issuer = by_serial[data["serial_number"]]
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                cert=leaf.certificate,
                issuer=issuer.certificate,
                algorithm=hashes.SHA256(),
                cert_status=status,
                this_update=NOW - dt.timedelta(minutes=1),
                next_update=NOW + dt.timedelta(days=1),
                revocation_time=None,
                revocation_reason=None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, issuer.certificate)
        )
        der = builder.sign(issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        return base64.b64encode(der).decode()

    return answer


def test_get_certificate_status_fills_the_ocsp_cache(
    tmp_path: Path, pki_dir: Path, store: Store
) -> None:
    async def main() -> None:
        b = Behaviour(ocsp_for=ocsp_answer(pki_dir, ocsp.OCSPCertStatus.GOOD))
        csms = TestCsms(behaviour=b)
        await csms.start()
        station = build(tmp_path, csms.url, store=store)
        async with running(station):
            await wait_for(lambda: len(csms.ocsp_requests) == 3)  # at boot: the SECC chain
            await wait_for(lambda: all(store.ocsp_response(c) for c in store.leaf_chain("v2g")))
            first = csms.ocsp_requests[0]
            assert first["responder_url"].startswith("http://")
            # an answer signed by the wrong key is not cached
            b.ocsp_for = lambda data: ocsp_answer(pki_dir, ocsp.OCSPCertStatus.GOOD)(
                {
                    **data,
                    "serial_number": format(
                        read_issued(pki_dir, "v2g/sub1").certificate.serial_number, "x"
                    ),
                }
            )
            assert await station.bridge.refresh_ocsp() == 1  # only sub1's own answer matches
        await csms.stop()

    run(main())


def test_device_model_over_ocpp_and_persisted(tmp_path: Path) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        station = build(tmp_path, csms.url)
        async with running(station):
            cp = await csms.station(STATION)
            csms.password = "0123456789abcdef"  # the CSMS rolls the password (A01)

            def entry(component: str, variable: str, **kw: Any) -> dict[str, Any]:
                return {"component": {"name": component}, "variable": {"name": variable}, **kw}

            answer = await cp.call(
                call.SetVariables(
                    set_variable_data=[
                        entry("ISO15118Ctrlr", "SeccId", attribute_value="DE*XYZ*E1"),
                        entry("ISO15118Ctrlr", "PnCEnabled", attribute_value="maybe"),
                        entry("SecurityCtrlr", "SecurityProfile", attribute_value="3"),
                        entry(
                            "SecurityCtrlr", "BasicAuthPassword", attribute_value="0123456789abcdef"
                        ),
                        entry("SecurityCtrlr", "BasicAuthPassword", attribute_value="short"),
                        entry("NoSuchCtrlr", "X", attribute_value="1"),
                        entry("ISO15118Ctrlr", "NoSuchVariable", attribute_value="1"),
                        entry(
                            "ISO15118Ctrlr", "SeccId", attribute_value="x", attribute_type="Target"
                        ),
                    ]
                ),
                suppress=False,
            )
            assert [r["attribute_status"] for r in answer.set_variable_result] == [
                "Accepted",
                "Rejected",
                "Rejected",
                "Accepted",
                "Rejected",
                "UnknownComponent",
                "UnknownVariable",
                "NotSupportedAttributeType",
            ]
            # the station reconnects with the new password at once
            await wait_for(lambda: len(csms.boots) == 2)
            assert csms.rejected_auth == 0
            assert station.client.config.basic_auth_password == "0123456789abcdef"
            await asyncio.wait_for(station.client.online.wait(), 10)
            cp = await csms.station(STATION)
            answer = await cp.call(
                call.GetVariables(
                    get_variable_data=[
                        entry("ISO15118Ctrlr", "SeccId"),
                        entry("SecurityCtrlr", "BasicAuthPassword"),
                        entry("ISO15118Ctrlr", "ContractValidationOffline"),
                    ]
                ),
                suppress=False,
            )
            results = answer.get_variable_result
            assert results[0]["attribute_value"] == "DE*XYZ*E1"
            assert results[1]["attribute_status"] == "Rejected"  # WriteOnly
            assert results[2]["attribute_value"] == "true"
            answer = await cp.call(call.GetBaseReport(request_id=9, report_base="FullInventory"))
            assert answer.status == "Accepted"
            await wait_for(lambda: len(csms.reports) == 1)
            names = {r["variable"]["name"] for r in csms.reports[0]["report_data"]}
            assert {"PnCEnabled", "SeccId", "CertificateEntries", "SecurityProfile"} <= names
        reopened = DeviceModel(tmp_path / "device_model.json")
        assert reopened.value("ISO15118Ctrlr", "SeccId") == "DE*XYZ*E1"
        assert reopened.value("SecurityCtrlr", "BasicAuthPassword") == "0123456789abcdef"
        await csms.stop()

    run(main())


def test_device_model_damaged_file_falls_back_to_defaults(tmp_path: Path) -> None:
    path = tmp_path / "dm.json"
    path.write_text("{not json")
    dm = DeviceModel(path)
    assert dm.flag("ISO15118Ctrlr", "PnCEnabled")
    path.write_text('["a list"]')
    assert DeviceModel(path).number("SecurityCtrlr", "CertSigningRepeatTimes") == 3
    path.write_text(
        '{"ISO15118Ctrlr/PnCEnabled": "false", "Bogus/X": "1", "ISO15118Ctrlr/SeccId": 5}'
    )
    dm = DeviceModel(path)
    assert not dm.flag("ISO15118Ctrlr", "PnCEnabled")
    assert dm.value("ISO15118Ctrlr", "SeccId") == ""


def _csms_ca(directory: Path) -> tuple[str, ssl.SSLContext]:
    """A second CSMS PKI (root + server certificate for localhost): the root's PEM and a
    server context presenting the new server certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "CSMS Root 2")])
    start = NOW - dt.timedelta(days=1)
    root = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (directory / "server2.pem").write_text(pem(server))
    (directory / "server2.key").write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(directory / "server2.pem", directory / "server2.key")
    return pem(root), ctx


def test_csms_roots_over_a_tls_link(tmp_path: Path, pki_dir: Path, store: Store) -> None:
    """Security profile 2: deleting the only CSMS root is refused (the link would be
    lost for good); a CSMS root installed over OCPP is used from the next connection,
    so the CSMS can move to a server certificate under it."""

    async def main() -> None:
        csms = TestCsms(ssl_context=server_context(pki_dir, client_auth=False))
        await csms.start()
        port = csms.port
        url = csms.url.replace("127.0.0.1", "localhost")
        station = build(tmp_path, url, store=store, client={"security_profile": 2})
        async with running(station):
            cp = await csms.station(STATION)
            listed = await cp.call(
                call.GetInstalledCertificateIds(certificate_type=["CSMSRootCertificate"])
            )
            (only,) = listed.certificate_hash_data_chain
            refused = await cp.call(
                call.DeleteCertificate(certificate_hash_data=only["certificate_hash_data"])
            )
            assert refused.status == "Failed"
            root2, ctx2 = _csms_ca(tmp_path)
            installed = await cp.call(
                call.InstallCertificate(certificate_type="CSMSRootCertificate", certificate=root2)
            )
            assert installed.status == "Accepted"
            # the CSMS moves to a server certificate under the new root
            await csms.stop()
            csms.ssl_context = ctx2
            await csms.start(port)
            await wait_for(lambda: station.client.connects >= 2 and station.client.online.is_set())
        await csms.stop()

    run(main())
