"""``python -m tests.interop.csms_proc --port P --pki DIR``: the test CSMS of
``tests/ocpp/csms.py`` as a process in the station namespace, for the
certificate-installation interop mode through ``secc run`` with ``[ocpp]``.

It accepts the boot, authorizes every contract, and answers Get15118EVCertificate as a
certificate provisioning service would: the contract chain and key of the make-test-pki
directory, the key sealed for the EV's OEM provisioning key, signed by the CPS leaf
(:func:`secc.testing.pki.certificate_backend`).  Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certs import testpki
from secc.core.actions import RequestCertificate
from secc.core.config import PncTrust
from secc.testing.pki import Credentials, certificate_backend, der
from tests.ocpp.csms import Behaviour, TestCsms

PASSWORD = "interop-basic-auth"


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


ISO20_SCHEMA = "urn:iso:std:iso:15118:-20:CommonMessages"


def iso20_installation(pki_dir: Path, exi_request: bytes) -> bytes:
    """A -20 CertificateInstallationRes as the lab CPS makes it (ISO 15118-20 §8.3.4.3.6):
    the -20 contract chain of ``mo20/``, its private key sealed for the OEM provisioning
    key of the request (ECDH on secp521r1, ConcatKDF SHA-512, AES-GCM-256, with PCID and
    the contract SKI as associated data), SignedInstallationData signed by the -20 CPS
    leaf (ECDSA P-521, SHA-512), the CPS chain.  The sealing and the signature use the EV
    simulator's implementations of those two algorithms (secc.ev.install20 / pnc20),
    which the station never uses: to the station the answer is opaque bytes it passes
    through."""
    from secc import codec
    from secc.ev.install20 import pcid_of, seal_contract_key
    from secc.ev.pnc20 import sign

    c = codec.schema_module("iso20-common")
    request = codec.decode(exi_request, "iso20-common")
    oem_der = bytes(request.oem_provisioning_certificate_chain.certificate)
    oem_public = x509.load_der_x509_certificate(oem_der).public_key()
    assert isinstance(oem_public, ec.EllipticCurvePublicKey)

    def pem_key(rel: str) -> ec.EllipticCurvePrivateKey:
        loaded = serialization.load_pem_private_key((pki_dir / rel).read_bytes(), None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        return loaded

    def ders(rel: str) -> tuple[bytes, ...]:
        return tuple(der(x) for x in x509.load_pem_x509_certificates((pki_dir / rel).read_bytes()))

    contract = ders("mo20/contract_chain.pem")
    dh, sealed = seal_contract_key(
        pem_key("mo20/contract.key"),
        oem_public,
        pcid_of(oem_der),
        x509.load_der_x509_certificate(contract[0]),
    )
    data = c.SignedInstallationData(
        id="id1",
        contract_certificate_chain=c.ContractCertificateChain(
            certificate=contract[0], sub_certificates=c.SubCertificates(certificate=contract[1:])
        ),
        ecdh_curve=c.EcdhCurve.SECP521,
        dh_public_key=dh,
        secp521_encrypted_private_key=sealed,
    )
    fragment = codec.encode_fragment(data, "iso20-common", name="SignedInstallationData")
    cps = ders("v2g20/cps_chain.pem")
    res = c.CertificateInstallationRes(
        header=c.MessageHeader(
            session_id=request.header.session_id,
            time_stamp=int(time.time()),
            signature=sign({"id1": fragment}, pem_key("v2g20/cps.key")),
        ),
        response_code=c.ResponseCode("OK"),
        evse_processing=c.Processing.Finished,
        cps_certificate_chain=c.CertificateChain(
            certificate=cps[0], sub_certificates=c.SubCertificates(certificate=cps[1:])
        ),
        signed_installation_data=data,
        remaining_contract_certificate_chains=0,
    )
    return codec.encode(res)


def sales_tariff(tariff_id: int, levels: bool) -> dict[str, object]:
    """An OCPP SalesTariffType: two price levels over the first hour and after it, or
    one entry with consumption costs (relative price, CO2)."""
    if levels:
        entries: list[dict[str, object]] = [
            {"relative_time_interval": {"start": 0, "duration": 3600}, "e_price_level": 1},
            {"relative_time_interval": {"start": 3600}, "e_price_level": 2},
        ]
        return {
            "id": tariff_id,
            "sales_tariff_description": "interop levels",
            "num_e_price_levels": 2,
            "sales_tariff_entry": entries,
        }
    cost = [
        {"cost_kind": "RelativePricePercentage", "amount": 90},
        {"cost_kind": "CarbonDioxideEmission", "amount": 150, "amount_multiplier": -1},
    ]
    return {
        "id": tariff_id,
        "sales_tariff_entry": [
            {
                "relative_time_interval": {"start": 0},
                "consumption_cost": [{"start_value": 0, "cost": cost}],
            }
        ],
    }


async def smart_charging(
    csms: TestCsms,
    profile_w: float,
    renegotiate_w: float | None,
    alternative_w: float | None = None,
) -> None:
    """The smart-charging interop: remote start (F02, so an EIM session is authorized),
    a TxDefaultProfile of ``profile_w`` for EVSE 1, and once the EV charges a TxProfile
    of ``renegotiate_w`` for its transaction (K01, K16).  With ``alternative_w`` the
    TxDefaultProfile has a second chargingSchedule (id 2) of that power, each with a
    salesTariff (ISO 15118 alternatives).  Each step is logged."""
    from ocpp.v201 import call

    log = logging.getLogger("csms")
    cp = await csms.station("interop-station", timeout=60)
    started = await cp.remote_start("INTEROP-REMOTE-1", "Central", 1)
    log.info("RequestStartTransaction: %s", started.status)
    default = {
        "id": 1,
        "stack_level": 0,
        "charging_profile_purpose": "TxDefaultProfile",
        "charging_profile_kind": "Relative",
        "charging_schedule": [
            {
                "id": 1,
                "charging_rate_unit": "W",
                "charging_schedule_period": [{"start_period": 0, "limit": profile_w}],
            }
        ],
    }
    if alternative_w is not None:
        schedules: Any = default["charging_schedule"]
        schedules[0]["sales_tariff"] = sales_tariff(5, levels=True)
        schedules.append(
            {
                "id": 2,
                "charging_rate_unit": "W",
                "charging_schedule_period": [{"start_period": 0, "limit": alternative_w}],
                "sales_tariff": sales_tariff(6, levels=False),
            }
        )
    answer = await cp.call(call.SetChargingProfile(evse_id=1, charging_profile=default))
    log.info("SetChargingProfile TxDefaultProfile %s W: %s", profile_w, answer.status)
    if renegotiate_w is None:
        return
    while True:
        charging = [
            p["transactionInfo"]["transactionId"]
            for _, p in csms.tx_raw
            if p.get("transactionInfo", {}).get("chargingState") == "Charging"
        ]
        if charging:
            break
        await asyncio.sleep(0.05)
    tx = {
        **default,
        "id": 2,
        "charging_profile_purpose": "TxProfile",
        "transaction_id": charging[0],
    }
    tx["charging_schedule"] = [
        {
            "id": 2,
            "charging_rate_unit": "W",
            "charging_schedule_period": [{"start_period": 0, "limit": renegotiate_w}],
        }
    ]
    answer = await cp.call(call.SetChargingProfile(evse_id=1, charging_profile=tx))
    log.info("SetChargingProfile TxProfile %s W: %s", renegotiate_w, answer.status)


async def serve(
    port: int,
    pki_dir: Path,
    profile_w: float | None = None,
    renegotiate_w: float | None = None,
    alternative_w: float | None = None,
) -> int:
    backend = certificate_backend(credentials(pki_dir), os.urandom)
    log = logging.getLogger("csms")

    def answer(schema: str, action: str, exi_request: str) -> str:
        if schema == ISO20_SCHEMA:
            exi = iso20_installation(pki_dir, base64.b64decode(exi_request))
            log.info(
                "Get15118EVCertificate %s answered for %s (%d bytes of EXI)",
                action,
                schema,
                len(exi),
            )
            return base64.b64encode(exi).decode()
        exi = backend(RequestCertificate(action, base64.b64decode(exi_request), schema))
        if exi is None:
            raise RuntimeError("the lab CPS made no answer")
        log.info("Get15118EVCertificate %s answered (%d bytes of EXI)", action, len(exi))
        return base64.b64encode(exi).decode()

    csms = TestCsms(password=PASSWORD, behaviour=Behaviour(ev_cert_answer=answer))
    await csms.start(port)
    log.info("CSMS listening on %s", csms.url)
    tasks = []
    if profile_w is not None:
        tasks.append(
            asyncio.ensure_future(smart_charging(csms, profile_w, renegotiate_w, alternative_w))
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("calls: %s", ", ".join(name for name, _payload in csms.calls) or "none")
        await csms.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.interop.csms_proc")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pki", type=Path, required=True, help="a make-test-pki directory")
    parser.add_argument("--profile-watts", type=float, help="remote start + TxDefaultProfile")
    parser.add_argument("--renegotiate-watts", type=float, help="TxProfile once charging")
    parser.add_argument(
        "--alternative-watts", type=float, help="a second chargingSchedule, with salesTariffs"
    )
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return asyncio.run(
        serve(
            args.port, args.pki, args.profile_watts, args.renegotiate_watts, args.alternative_watts
        )
    )


if __name__ == "__main__":
    sys.exit(main())
