"""Plug & Charge test material: credentials from :mod:`certs.testpki`, header signatures
as an EV or back end makes them, and a certificate back end for the fake station."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from certs import install_crypto, testpki
from secc import codec
from secc.core.actions import RequestCertificate
from secc.core.config import PncTrust
from secc.ev.pnc2 import sign_elements


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the EV holds (contract chain and key, OEM provisioning chain and key) and what
    the station trusts (MO and V2G roots)."""

    pki: testpki.TestPki
    emaid: str
    contract_chain: tuple[bytes, ...]  # leaf first, DER
    contract_key: ec.EllipticCurvePrivateKey
    oem_chain: tuple[bytes, ...]
    oem_key: ec.EllipticCurvePrivateKey
    trust: PncTrust

    @property
    def v2g_roots(self) -> tuple[x509.Certificate, ...]:
        """The V2G root the EV trusts (:class:`secc.ev.pnc2.EvCredentials`)."""
        return (self.pki.cert("v2g_root"),)


def make_credentials(
    utc_now: dt.datetime, options: testpki.TestPkiOptions | None = None
) -> Credentials:
    pki = testpki.build_test_pki(utc_now, options)
    chain = tuple(der(c) for c in pki.chain(*testpki.CHAINS["contract"]))
    oem = tuple(der(c) for c in pki.chain(*testpki.CHAINS["oem_prov"]))
    trust = PncTrust(roots=(pki.cert("mo_root"), pki.cert("v2g_root")))
    return Credentials(
        pki=pki,
        emaid=pki.options.emaid,
        contract_chain=chain,
        contract_key=pki.ecdsa_key("contract"),
        oem_chain=oem,
        oem_key=pki.ecdsa_key("oem_prov"),
        trust=trust,
    )


def certificate_backend(
    creds: Credentials, random_bytes: Callable[[int], bytes]
) -> Callable[[RequestCertificate], bytes | None]:
    """A CPS/MO back end: answers an installation request with the test contract chain,
    its key sealed for the EV's OEM provisioning key, signed by the CPS leaf."""
    iso2 = codec.schema_module("iso2")
    pki = creds.pki

    def answer(request: RequestCertificate) -> bytes | None:
        msg = codec.decode(request.exi_request, "iso2")
        req = msg.body.body_element
        if request.action == "Install":
            ev_cert = x509.load_der_x509_certificate(bytes(req.oem_provisioning_cert))
        else:
            ev_cert = x509.load_der_x509_certificate(
                bytes(req.contract_signature_cert_chain.certificate)
            )
        ev_key = ev_cert.public_key()
        assert isinstance(ev_key, ec.EllipticCurvePublicKey)
        sealed = install_crypto.seal_contract_key(
            creds.contract_key, ev_key, random_bytes=random_bytes
        )
        leaf, *subs = creds.contract_chain
        cps = [der(c) for c in pki.chain(*testpki.CHAINS["cps"])]
        chain = iso2.CertificateChain(
            id="id1",
            certificate=leaf,
            sub_certificates=iso2.SubCertificates(certificate=tuple(subs)),
        )
        key = iso2.ContractSignatureEncryptedPrivateKey(
            id="id2", value=sealed.encrypted_private_key
        )
        dh = iso2.DiffieHellmanPublickey(id="id3", value=sealed.dh_public_key)
        emaid = iso2.EMAID(id="id4", value=creds.emaid)
        fields: dict[str, Any] = {
            "response_code": iso2.ResponseCode.OK,
            "sa_provisioning_certificate_chain": iso2.CertificateChain(
                certificate=cps[0],
                sub_certificates=iso2.SubCertificates(certificate=tuple(cps[1:])),
            ),
            "contract_signature_cert_chain": chain,
            "contract_signature_encrypted_private_key": key,
            "dh_public_key": dh,
            "emaid": emaid,
        }
        cls = (
            iso2.CertificateInstallationRes
            if request.action == "Install"
            else iso2.CertificateUpdateRes
        )
        body = cls(**fields)
        signature = sign_elements(
            [
                (chain, "ContractSignatureCertChain"),
                (key, None),
                (dh, "DHpublickey"),
                (emaid, "eMAID"),
            ],
            pki.ecdsa_key("cps"),
        )
        out = iso2.V2G_Message(
            header=iso2.MessageHeader(session_id=bytes(msg.header.session_id), signature=signature),
            body=iso2.Body(body_element=body),
        )
        return codec.encode(out)

    return answer
