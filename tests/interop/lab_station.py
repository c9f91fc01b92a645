"""``python -m tests.interop.lab_station --config FILE --pki DIR``: the station runtime of
``secc run`` (same TOML, same :class:`secc.runtime.Station`) plus a lab certificate
provisioning service, for the certificate-installation interop mode.

``secc run`` without OCPP answers CertificateInstallationReq with
FAILED_NoCertificateAvailable (no back end); the OCPP bridge is not wired into it yet.
This runner gives the local authorizer the test CPS of the ``make-test-pki`` directory
(:func:`secc.testing.pki.certificate_backend`: the contract chain and key of ``mo/``,
sealed for the EV's OEM provisioning key, signed by the CPS leaf of ``v2g/``), which is
the part a CSMS would play.  Runs until SIGTERM, like ``secc run``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certs import testpki
from secc.aio.backends import Emit, LocalBackend
from secc.config import EvseSection, load_file
from secc.core.config import PncTrust
from secc.runtime import Station
from secc.testing.pki import Credentials, certificate_backend, der


def credentials(pki_dir: Path) -> Credentials:
    """The CPS / MO material of a ``make-test-pki`` directory."""

    def cert(rel: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate((pki_dir / rel).read_bytes())

    def key(rel: str) -> ec.EllipticCurvePrivateKey:
        loaded = serialization.load_pem_private_key((pki_dir / rel).read_bytes(), None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        return loaded

    def chain(rel: str) -> tuple[bytes, ...]:
        return tuple(der(c) for c in x509.load_pem_x509_certificates((pki_dir / rel).read_bytes()))

    contract = chain("mo/contract_chain.pem")
    leaf = x509.load_der_x509_certificate(contract[0])
    emaid = str(leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)
    items = {
        "v2g_root": testpki.Issued("v2g_root", cert("v2g/root.pem"), key("v2g/root.key")),
        "cps_sub1": testpki.Issued("cps_sub1", cert("v2g/cps_sub1.pem"), key("v2g/cps_sub1.key")),
        "cps_sub2": testpki.Issued("cps_sub2", cert("v2g/cps_sub2.pem"), key("v2g/cps_sub2.key")),
        "cps": testpki.Issued("cps", cert("v2g/cps.pem"), key("v2g/cps.key")),
    }
    return Credentials(
        pki=testpki.TestPki(testpki.TestPkiOptions(emaid=emaid), items),
        emaid=emaid,
        contract_chain=contract,
        contract_key=key("mo/contract.key"),
        oem_chain=chain("oem/prov_chain.pem"),
        oem_key=key("oem/prov.key"),
        trust=PncTrust(roots=(cert("mo/root.pem"), cert("v2g/root.pem"))),
    )


async def serve(config_file: Path, pki_dir: Path) -> int:
    config = load_file(config_file)
    cps = certificate_backend(credentials(pki_dir), os.urandom)

    def backend(section: EvseSection, emit: Emit) -> LocalBackend:
        return LocalBackend(config.authorization, emit, certificates=cps)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    station = Station(config, backend_factory=backend)
    await station.start()
    logging.getLogger("lab_station").info("ready, with the lab CPS of %s", pki_dir)
    try:
        await stop.wait()
    finally:
        await station.aclose()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.interop.lab_station")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--pki", type=Path, required=True, help="a make-test-pki directory")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.DEBUG,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return asyncio.run(serve(args.config, args.pki))


if __name__ == "__main__":
    sys.exit(main())
