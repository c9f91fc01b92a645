"""A test PKI (once per session), a station directory per test (config, a copy of the
ready certificate store, the state directory with the device model), and a CA helper
that answers SignCertificate with CertificateSigned through the test CSMS."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from ocpp.v201 import call

from certs.csr import sign_csr
from certs.store import Store
from certs.testpki import TestPkiOptions, build_test_pki, read_issued, write_test_pki
from secc.config import OcppSection
from secc.ocpp_bridge.device_model import DeviceModel
from tests.ocpp.csms import TestCsms

STATION = "CS-SECC-0001"
EVSE_ID = "DE*ABC*E1234567*1"
PASSWORD = "s3cret-password-0001"


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("commission-pki") / "pki"
    # an ISO 15118-2 station (no -20 chain: the OCPP/renewal checks count its CPO chain)
    write_test_pki(build_test_pki(dt.datetime.now(dt.UTC), TestPkiOptions(iso20=False)), directory)
    return directory


@dataclass
class StationDir:
    root: Path
    pki: Path

    @property
    def config(self) -> Path:
        return self.root / "secc.toml"

    @property
    def store_path(self) -> Path:
        return self.root / "store"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def store(self) -> Store:
        return Store(self.store_path)

    def device_model(self) -> DeviceModel:
        return DeviceModel(self.state / "device_model.json")

    def write_config(
        self, csms_url: str | None = None, profile: int = 2, extra_evse: str = ""
    ) -> None:
        text = f'[certs]\nstore = "{self.store_path}"\n\n[[evse]]\nevse_id = "{EVSE_ID}"\n'
        text += extra_evse
        if "[evse.hal]" not in extra_evse:  # the backend has no default
            text += '[evse.hal]\nbackend = "simulated"\n'
        if csms_url is not None:
            # the [ocpp] schema names the state directory (earlier: the database file in it)
            names = {f.name for f in dataclasses.fields(OcppSection)}
            where = (
                f'state_dir = "{self.state}"'
                if "state_dir" in names
                else f'database = "{self.state / "ocpp.sqlite"}"'
            )
            text += (
                f'\n[ocpp]\nurl = "{csms_url}"\nstation_id = "{STATION}"\n'
                f"security_profile = {profile}\n{where}\n"
            )
        self.config.write_text(text)


@pytest.fixture
def station(pki_dir: Path, tmp_path: Path) -> StationDir:
    s = StationDir(tmp_path / "station", pki_dir)
    s.root.mkdir()
    shutil.copytree(pki_dir / "station", s.store_path, symlinks=True)
    s.state.mkdir()
    s.device_model().set_local("SecurityCtrlr", "BasicAuthPassword", PASSWORD)
    s.write_config()
    return s


def pem(*certs: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def v2g_chain_for(pki_dir: Path, csr: str, now: dt.datetime | None = None) -> str:
    """What a CPO CA answers: the leaf for the CSR, then the CPO sub-CAs."""
    sub2, sub1 = read_issued(pki_dir, "v2g/sub2"), read_issued(pki_dir, "v2g/sub1")
    leaf = sign_csr(csr.encode(), sub2, now or dt.datetime.now(dt.UTC))
    return pem(leaf, sub2.certificate, sub1.certificate)


async def ca_loop(
    csms: TestCsms, answer: Callable[[str | None, str], str | None], sent: list[Any]
) -> None:
    """Answer every CSR the test CSMS records with CertificateSigned(answer(type, csr))."""
    handled = 0
    while True:
        while handled < len(csms.csrs):
            kind, csr = csms.csrs[handled]
            handled += 1
            if csms.behaviour.sign_certificate_status != "Accepted":
                continue  # the CSMS refused the request: no certificate comes
            chain = answer(kind, csr)
            if chain is None:
                continue
            cp = next(iter(csms.stations.values()))
            result = await cp.call(
                call.CertificateSigned(certificate_chain=chain, certificate_type=kind)
            )
            sent.append((kind, result))
        await asyncio.sleep(0.02)


def ocsp_responder(pki_dir: Path, revoked: bool = False) -> Callable[[dict[str, Any]], str | None]:
    """The test CSMS's GetCertificateStatus: a signed OCSP answer for each CPO chain member."""
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.x509 import ocsp

    pairs = [("v2g/secc", "v2g/sub2"), ("v2g/sub2", "v2g/sub1"), ("v2g/sub1", "v2g/root")]
    by_serial = {}
    for leaf_stem, issuer_stem in pairs:
        leaf, issuer = read_issued(pki_dir, leaf_stem), read_issued(pki_dir, issuer_stem)
        by_serial[format(leaf.certificate.serial_number, "x")] = (leaf, issuer)

    def answer(data: dict[str, Any]) -> str | None:
        now = dt.datetime.now(dt.UTC)
        leaf, issuer = by_serial[data["serial_number"]]
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                cert=leaf.certificate,
                issuer=issuer.certificate,
                algorithm=hashes.SHA256(),
                cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
                this_update=now - dt.timedelta(minutes=1),
                next_update=now + dt.timedelta(days=1),
                revocation_time=now - dt.timedelta(hours=1) if revoked else None,
                revocation_reason=None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, issuer.certificate)
        )
        der = builder.sign(issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        return base64.b64encode(der).decode()

    return answer
