"""The ISO 15118-2 EV's Plug & Charge material and header signatures (sans-I/O).

What an EV holds, and nothing more: the V2G root certificate(s) it trusts (to verify the
station's TLS chain and to name in ListOfRootCertificateIDs), its contract chain and key
(PaymentDetails, AuthorizationReq and MeteringReceiptReq signatures, CertificateUpdateReq)
and its OEM provisioning chain and key (CertificateInstallationReq).  No root's private
key is ever read: the files come one by one (``secc ev --v2g-root/--contract-*/--oem-*``)
or from a ``secc certs make-test-pki`` directory, of which only these files are read.

ISO 15118-2 signs with a detached xmldsig Signature in the MessageHeader: each Reference
names a signed element by ``#Id`` with the SHA-256 digest of its EXI fragment (ISO-2
schema), the SignatureValue is ECDSA P-256 over the SignedInfo as an xmldsig fragment.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from certs import xmldsig
from certs.store import ISO2_KEYS, StoreError, load_leaf_key
from certs.validate import validate_chain
from secc import codec
from secc.core.pnc_crypto import to_certs_signed_info


class EvFileError(ValueError):
    """One of the EV's files is missing or unusable; the message names the file."""


class InstallationError(ValueError):
    """A CertificateInstallationRes / CertificateUpdateRes the EV must not trust."""


class EvCredentials(Protocol):
    """What the -2 EV reads from its credentials (a test PKI's Credentials fits too)."""

    @property
    def emaid(self) -> str | None: ...
    @property
    def contract_chain(self) -> tuple[bytes, ...]: ...
    @property
    def contract_key(self) -> ec.EllipticCurvePrivateKey | None: ...
    @property
    def oem_chain(self) -> tuple[bytes, ...]: ...
    @property
    def oem_key(self) -> ec.EllipticCurvePrivateKey | None: ...
    @property
    def v2g_roots(self) -> tuple[x509.Certificate, ...]: ...


@dataclass(frozen=True, slots=True)
class Ev2Credentials:
    """A -2 Plug & Charge EV's own material: contract chain and key (leaf first, DER) with
    its eMAID, OEM provisioning chain and key, and the V2G roots it trusts."""

    contract_chain: tuple[bytes, ...] = ()
    contract_key: ec.EllipticCurvePrivateKey | None = None
    emaid: str | None = None
    oem_chain: tuple[bytes, ...] = ()
    oem_key: ec.EllipticCurvePrivateKey | None = None
    v2g_roots: tuple[x509.Certificate, ...] = ()


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise EvFileError(f"{what} {path}: no such file") from None
    except OSError as exc:
        raise EvFileError(f"{what} {path}: cannot read ({exc.strerror or exc})") from None


def read_certificates(path: Path, what: str) -> list[x509.Certificate]:
    """The PEM certificates in ``path`` (at least one), or an error naming the file."""
    data = _bytes(path, what)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise EvFileError(f"{what} {path}: not PEM certificates") from None
    if not certs:
        raise EvFileError(f"{what} {path}: no certificate in it")
    return certs


def read_chain(path: Path, what: str) -> tuple[bytes, ...]:
    """A PEM chain (leaf first) as DER certificates."""
    return tuple(der(c) for c in read_certificates(path, what))


def read_key(path: Path, what: str, kinds: Sequence[str] = ISO2_KEYS) -> Any:
    """A private key of one of ``kinds`` from ``path`` (PEM or DER, unencrypted)."""
    data = _bytes(path, what)
    try:
        return load_leaf_key(data, None, kinds, what=f"{what} {path}")
    except StoreError as exc:
        raise EvFileError(str(exc)) from None


def emaid_of(leaf_der: bytes) -> str:
    """The eMAID a contract certificate carries (its subject CN)."""
    leaf = x509.load_der_x509_certificate(leaf_der)
    names = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if not names:
        raise EvFileError("the contract certificate has no subject CN (the eMAID)")
    return str(names[0].value)


def load_credentials2(
    *,
    v2g_roots: Sequence[Path] = (),
    contract_chain: Path | None = None,
    contract_key: Path | None = None,
    oem_chain: Path | None = None,
    oem_key: Path | None = None,
) -> Ev2Credentials:
    """The -2 EV's material from its files; each pair (chain and key) comes together."""
    for chain, key, name in (
        (contract_chain, contract_key, "contract"),
        (oem_chain, oem_key, "OEM provisioning"),
    ):
        if (chain is None) != (key is None):
            raise EvFileError(f"the {name} chain and key go together: give both")
    roots = tuple(c for p in v2g_roots for c in read_certificates(p, "V2G root certificate"))
    contract: tuple[bytes, ...] = ()
    ckey = None
    emaid = None
    if contract_chain is not None and contract_key is not None:
        contract = read_chain(contract_chain, "contract chain")
        ckey = read_key(contract_key, "contract key")
        emaid = emaid_of(contract[0])
        check_pair(contract[0], ckey, contract_chain, contract_key)
    oem: tuple[bytes, ...] = ()
    okey = None
    if oem_chain is not None and oem_key is not None:
        oem = read_chain(oem_chain, "OEM provisioning chain")
        okey = read_key(oem_key, "OEM provisioning key")
        check_pair(oem[0], okey, oem_chain, oem_key)
    return Ev2Credentials(contract, ckey, emaid, oem, okey, roots)


def check_pair(leaf_der: bytes, key: Any, chain: Path, key_path: Path) -> None:
    leaf = x509.load_der_x509_certificate(leaf_der)
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if leaf.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise EvFileError(f"{key_path} is not the key of the leaf certificate in {chain}")


def pki_dir_files(pki_dir: Path, family: str = "iso2") -> dict[str, Path]:
    """The EV's files in a ``secc certs make-test-pki`` directory (only those an EV has:
    V2G root certificate, contract chain and key, OEM provisioning chain and key; for
    ``iso20`` also the vehicle TLS chain and key)."""
    v2g, mo, oem = ("v2g20", "mo20", "oem20") if family == "iso20" else ("v2g", "mo", "oem")
    files = {
        "v2g_root": pki_dir / v2g / "root.pem",
        "contract_chain": pki_dir / mo / "contract_chain.pem",
        "contract_key": pki_dir / mo / "contract.key",
        "oem_chain": pki_dir / oem / "prov_chain.pem",
        "oem_key": pki_dir / oem / "prov.key",
    }
    if family == "iso20":
        files["vehicle_chain"] = pki_dir / oem / "vehicle_chain.pem"
        files["vehicle_key"] = pki_dir / oem / "vehicle.key"
    return files


def sign_elements(
    elements: Sequence[tuple[Any, str | None]], key: ec.EllipticCurvePrivateKey
) -> Any:
    """A header Signature over ``(element, element name or None)`` pairs (each element with
    an ``id``), as an EV or back end makes it: SHA-256 digests of the elements as ISO-2 EXI
    fragments, ECDSA P-256 over the SignedInfo as an xmldsig fragment."""
    iso2 = codec.schema_module("iso2")
    refs = []
    for el, name in elements:
        # lenient: a peer signs what it sends, values outside their facets included
        fragment = codec.encode_fragment(el, schema="iso2", name=name, lenient=True)
        digest = xmldsig.digest(fragment)
        refs.append(
            iso2.Reference(
                uri=f"#{el.id}",
                transforms=iso2.Transforms(
                    transform=(iso2.Transform(algorithm=xmldsig.CANONICALIZATION_EXI),)
                ),
                digest_method=iso2.DigestMethod(algorithm=xmldsig.DIGEST_SHA256),
                digest_value=digest,
            )
        )
    info = iso2.SignedInfo(
        canonicalization_method=iso2.CanonicalizationMethod(algorithm=xmldsig.CANONICALIZATION_EXI),
        signature_method=iso2.SignatureMethod(algorithm=xmldsig.SIGNATURE_ECDSA_SHA256),
        reference=tuple(refs),
    )
    value = xmldsig.sign_signed_info(codec.encode_fragment(info, schema="xmldsig"), key)
    return iso2.Signature(signed_info=info, signature_value=iso2.SignatureValue(value=value))


def check_installation(
    res: Any, signature: Any, v2g_roots: Sequence[x509.Certificate], utc_now: dt.datetime
) -> None:
    """What the EV checks in a CertificateInstallationRes / CertificateUpdateRes before it
    takes the contract [V2G2-???]: the SA provisioning (CPS) chain leads to a V2G root it
    trusts, and the CPS leaf signed the ContractSignatureCertChain, the encrypted private
    key, the DHpublickey and the eMAID (the header Signature's References)."""
    if signature is None:
        raise InstallationError("the response carries no signature")
    if not v2g_roots:
        raise InstallationError("no V2G root certificate to check the CPS chain against")
    sa = res.sa_provisioning_certificate_chain
    subs = [bytes(c) for c in sa.sub_certificates.certificate] if sa.sub_certificates else []
    verdict = validate_chain(bytes(sa.certificate), subs, v2g_roots, utc_now, profile="cps")
    if not verdict.ok:
        raise InstallationError(f"SA provisioning chain: {verdict.reason}")
    fragments = {
        # lenient: the digests cover what was received, values outside their facets included
        el.id: codec.encode_fragment(el, schema="iso2", name=name, lenient=True)
        for el, name in (
            (res.contract_signature_cert_chain, "ContractSignatureCertChain"),
            (res.contract_signature_encrypted_private_key, None),
            (res.dh_public_key, "DHpublickey"),
            (res.emaid, "eMAID"),
        )
    }
    leaf_key = verdict.chain[0].public_key()
    try:
        info = to_certs_signed_info(signature.signed_info)
        xmldsig.check_references(info, fragments, required_ids=tuple(fragments))
        if not isinstance(leaf_key, ec.EllipticCurvePublicKey):
            raise xmldsig.SignatureError("the CPS key is not an ECDSA key")
        xmldsig.verify_signed_info(
            codec.encode_fragment(signature.signed_info, schema="xmldsig"),
            bytes(signature.signature_value.value),
            leaf_key,
        )
    except xmldsig.SignatureError as exc:
        raise InstallationError(f"the CPS signature: {exc}") from None
