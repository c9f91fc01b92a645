"""A complete, standards-shaped test PKI for Plug & Charge labs and tests.

Hierarchies (all ECDSA P-256 with SHA-256, profiles after the ISO 15118-2 certificate
profiles; lifetimes are options, the defaults stay inside the profiles' limits [V2G2-???]):

    V2G root ─► CPO Sub-CA 1 (pathLen 1) ─► CPO Sub-CA 2 (pathLen 0) ─► SECC leaf
                                                                         CN = EVSE ID, DC=CPO
             └► CPS Sub-CA 1 ─► CPS Sub-CA 2 ─► CPS leaf (signs CertificateInstallationRes)
    MO root  ─► MO Sub-CA 1 ─► MO Sub-CA 2 ─► contract leaf (CN = eMAID, DC=MO)
    OEM root ─► OEM Sub-CA 1 ─► OEM Sub-CA 2 ─► OEM provisioning leaf (CN = PCID, DC=OEM)
    CSMS root ─► CSMS server (localhost) and the charging-station client certificate
                 (CN = station serial number, O = CPO; OCPP security profile 3)
    manufacturer root (firmware signing trust anchor)

ISO 15118-20 has its own V2G hierarchy: the -20 certificate profiles use ECDSA P-521 with
SHA-512 (or Ed448) from the root down [V2G20-2674], so a P-256 -2 root cannot anchor it:

    V2G root (-20) ─► CPO Sub-CA 1 ─► CPO Sub-CA 2 ─► SECC leaf (P-521, SHA-512; served over
                                                       TLS 1.3 to -20 EVs)

             └► CPS Sub-CA 1 ─► CPS Sub-CA 2 ─► CPS leaf (signs -20 CertificateInstallationRes)
    MO root (-20) ─► MO Sub-CA 1 ─► MO Sub-CA 2 ─► contract leaf (CN = eMAID, DC=MO)
    OEM root (-20) ─► OEM Sub-CA 1 ─► OEM Sub-CA 2 ─► OEM provisioning leaf (CN = PCID)
                                                   └► vehicle leaf (CN = VIN; the EV's TLS 1.3
                                                      client certificate, mutual TLS)

All -20 certificates are P-521 keys signed ECDSA-with-SHA-512, or with
``iso20_algorithm="ed448"`` (``secc certs make-test-pki --iso20-algorithm ed448``) Ed448 keys
signed Ed448 from every -20 root down; the Ed448 leaves carry no keyAgreement (RFC 9295
forbids it for Ed448 keys: they sign only).  The -20 contract leaf carries the same eMAID as the -2
one (one contract, two protocols).  Optionally a second V2G root with its own CPO sub-CAs
and SECC leaf (multi-root stations).
:func:`build_test_pki` is pure (time injected); :func:`write_test_pki` writes the files and
a ready station store.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from certs._util import Issued, PrivateKey, key_pem, key_usage, load_certificate
from certs.emaid import make_emaid, normalize

CA_USAGE = ("key_cert_sign", "crl_sign")
SECC_USAGE = ("digital_signature", "key_agreement")
CONTRACT_USAGE = ("digital_signature", "content_commitment")  # content_commitment = nonRepudiation
OEM_PROV_USAGE = ("digital_signature", "key_agreement")
CPS_USAGE = ("digital_signature",)
VEHICLE_USAGE = ("digital_signature", "key_agreement")  # -20 vehicle (TLS client) leaf
# the -20 algorithms: ECDSA P-521 with SHA-512, or Ed448 [V2G20-2674]
ISO20_ALGORITHMS = ("p521", "ed448")
Iso20Algorithm = Literal["p521", "ed448"]


@dataclass(frozen=True, slots=True)
class TestPkiOptions:
    """What the test PKI is made of; the defaults make a German test station."""

    __test__ = False  # not a pytest class

    evse_id: str = "DE*ABC*E1234567*1"
    emaid: str = make_emaid("DE", "8AA", "CA2B3C4D5")
    pcid: str = "WMIV1234567890ABC"
    vin: str = "WVWZZZ1JZXW000001"  # CN of the -20 vehicle (TLS client) certificate
    station_serial: str = "CS-SECC-0001"
    country: str = "DE"
    cpo_name: str = "Test CPO"
    mo_name: str = "Test MO"
    oem_name: str = "Test OEM"
    v2g_name: str = "Test V2G"
    csms_host: str = "localhost"
    root_days: int = 3650
    sub_ca1_days: int = 1460
    sub_ca2_days: int = 730
    leaf_days: int = 365
    contract_days: int = 730
    second_v2g_root: bool = False
    iso20: bool = True  # the ISO 15118-20 hierarchies (V2G/SECC/CPS, MO, OEM/vehicle)
    iso20_algorithm: Iso20Algorithm = "p521"  # their keys and signatures: P-521 or Ed448

    def __post_init__(self) -> None:
        if self.iso20_algorithm not in ISO20_ALGORITHMS:
            raise ValueError(
                f"iso20_algorithm {self.iso20_algorithm!r}: one of {', '.join(ISO20_ALGORITHMS)}"
            )

    ocsp_base_url: str = "http://127.0.0.1:8888"


@dataclass(frozen=True, slots=True)
class TestPki:
    """Everything :func:`build_test_pki` made, by name (see :data:`CHAINS`)."""

    __test__ = False  # not a pytest class

    options: TestPkiOptions
    items: dict[str, Issued] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Issued:
        return self.items[name]

    def cert(self, name: str) -> x509.Certificate:
        return self.items[name].certificate

    def chain(self, *names: str) -> list[x509.Certificate]:
        return [self.items[n].certificate for n in names]

    def ecdsa_key(self, name: str) -> ec.EllipticCurvePrivateKey:
        """The key of ``name`` where an ECDSA key is needed (every -2 item; a -20 item of
        a P-521 PKI); TypeError for an Ed448 key."""
        key = self.items[name].key
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"{name}: an Ed448 key, not ECDSA")
        return key


# The chains, leaf first, without the root (what travels on the wire).
CHAINS: dict[str, tuple[str, ...]] = {
    "secc": ("secc", "cpo_sub2", "cpo_sub1"),
    "contract": ("contract", "mo_sub2", "mo_sub1"),
    "oem_prov": ("oem_prov", "oem_sub2", "oem_sub1"),
    "cps": ("cps", "cps_sub2", "cps_sub1"),
    "csms_server": ("csms_server",),
    "cs_client": ("cs_client",),
    "secc2": ("secc2", "cpo2_sub2", "cpo2_sub1"),
    "secc20": ("secc20", "cpo20_sub2", "cpo20_sub1"),
    "cps20": ("cps20", "cps20_sub2", "cps20_sub1"),
    "contract20": ("contract20", "mo20_sub2", "mo20_sub1"),
    "oem20_prov": ("oem20_prov", "oem20_sub2", "oem20_sub1"),
    "vehicle20": ("vehicle20", "oem20_sub2", "oem20_sub1"),
}
ROOT_OF: dict[str, str] = {
    "secc": "v2g_root",
    "contract": "mo_root",
    "oem_prov": "oem_root",
    "cps": "v2g_root",
    "csms_server": "csms_root",
    "cs_client": "csms_root",
    "secc2": "v2g_root2",
    "secc20": "v2g20_root",
    "cps20": "v2g20_root",
    "contract20": "mo20_root",
    "oem20_prov": "oem20_root",
    "vehicle20": "oem20_root",
}


def new_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    """P-256 (ISO 15118-2) unless ``curve`` says otherwise (P-521 for ISO 15118-20)."""
    return ec.generate_private_key(curve or ec.SECP256R1())


def new_iso20_key(algorithm: Iso20Algorithm = "p521") -> PrivateKey:
    """An ISO 15118-20 key: ECDSA P-521 or Ed448."""
    return ed448.Ed448PrivateKey.generate() if algorithm == "ed448" else new_key(ec.SECP521R1())


def iso20_usage(usage: Sequence[str], algorithm: Iso20Algorithm) -> tuple[str, ...]:
    """A -20 leaf's key usage: as given for P-521; for Ed448 without keyAgreement (and the
    other encipherment bits), which RFC 9295 forbids for an Ed448 key."""
    if algorithm != "ed448":
        return tuple(usage)
    return tuple(u for u in usage if u not in ("key_agreement", "key_encipherment",
                                               "data_encipherment"))  # fmt: skip


def make_name(
    cn: str, org: str | None = None, country: str | None = None, dc: str | None = None
) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    if country:
        attrs.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country))
    if dc:
        attrs.append(x509.NameAttribute(NameOID.DOMAIN_COMPONENT, dc))
    return x509.Name(attrs)


def issue_certificate(
    *,
    name: str,
    subject: x509.Name,
    issuer: Issued | None,
    not_before: dt.datetime,
    not_after: dt.datetime,
    ca: bool,
    path_len: int | None = None,
    usage: Sequence[str] = (),
    key: PrivateKey | None = None,
    ocsp_url: str | None = None,
    extended_usage: Sequence[x509.ObjectIdentifier] = (),
    san: Sequence[x509.GeneralName] = (),
    serial: int | None = None,
    include_basic_constraints: bool = True,
    hash_algorithm: hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None = None,
) -> Issued:
    """One certificate; ``issuer=None`` makes it self-signed. Tests use this for bad ones.

    The signer's key chooses the signature: ECDSA with ``hash_algorithm`` (SHA-256 by
    default), or Ed448 (no separate hash) when the signer's key is Ed448."""
    key = key or new_key()
    signer_key = issuer.key if issuer else key
    issuer_name = issuer.certificate.subject if issuer else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if include_basic_constraints:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_len if ca else None), critical=True
        )
    if usage:
        builder = builder.add_extension(key_usage(*usage), critical=True)
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False
        )
    if ocsp_url:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier(ocsp_url),
                    )
                ]
            ),
            critical=False,
        )
    if extended_usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(extended_usage)), False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), False)
    if isinstance(signer_key, ed448.Ed448PrivateKey):
        cert = builder.sign(signer_key, None)
    else:
        cert = builder.sign(signer_key, hash_algorithm or hashes.SHA256())
    return Issued(name=name, certificate=cert, key=key)


def build_test_pki(utc_now: dt.datetime, options: TestPkiOptions | None = None) -> TestPki:
    """Build the whole hierarchy, valid from one hour before ``utc_now``."""
    opt = options or TestPkiOptions()
    emaid = normalize(opt.emaid)
    start = utc_now - dt.timedelta(hours=1)
    days = dt.timedelta(days=1)
    items: dict[str, Issued] = {}

    def add(issued: Issued) -> Issued:
        items[issued.name] = issued
        return issued

    def root(
        name: str, cn: str, org: str, dc: str | None, path_len: int | None, **kw: object
    ) -> Issued:
        return add(
            issue_certificate(
                name=name,
                subject=make_name(cn, org, opt.country, dc),
                issuer=None,
                not_before=start,
                not_after=start + opt.root_days * days,
                ca=True,
                path_len=path_len,
                usage=CA_USAGE,
                **kw,  # type: ignore[arg-type]
            )
        )

    def sub_ca(
        name: str, cn: str, org: str, dc: str | None, issuer: Issued, level: int, **kw: object
    ) -> Issued:
        return add(
            issue_certificate(
                name=name,
                subject=make_name(cn, org, opt.country, dc),
                issuer=issuer,
                not_before=start,
                not_after=start + (opt.sub_ca1_days if level == 1 else opt.sub_ca2_days) * days,
                ca=True,
                path_len=1 if level == 1 else 0,
                usage=CA_USAGE,
                ocsp_url=f"{opt.ocsp_base_url}/{issuer.name}",
                **kw,  # type: ignore[arg-type]
            )
        )

    def leaf(
        name: str,
        subject: x509.Name,
        issuer: Issued,
        usage: Sequence[str],
        lifetime: int,
        **kw: object,
    ) -> Issued:
        return add(
            issue_certificate(
                name=name,
                subject=subject,
                issuer=issuer,
                not_before=start,
                not_after=start + lifetime * days,
                ca=False,
                usage=usage,
                ocsp_url=f"{opt.ocsp_base_url}/{issuer.name}",
                **kw,  # type: ignore[arg-type]
            )
        )

    def cpo_branch(suffix: str, v2g_root: Issued) -> None:
        s1 = sub_ca(f"cpo{suffix}_sub1", f"CPO Sub-CA 1{suffix}", opt.cpo_name, "V2G", v2g_root, 1)
        s2 = sub_ca(f"cpo{suffix}_sub2", f"CPO Sub-CA 2{suffix}", opt.cpo_name, "V2G", s1, 2)
        leaf(
            f"secc{suffix}",
            make_name(opt.evse_id, opt.cpo_name, opt.country, "CPO"),
            s2,
            SECC_USAGE,
            opt.leaf_days,
        )

    v2g = root("v2g_root", "V2G Root CA", opt.v2g_name, "V2G", 2)
    cpo_branch("", v2g)
    if opt.second_v2g_root:
        v2g2 = root("v2g_root2", "V2G Root CA 2", f"{opt.v2g_name} 2", "V2G", 2)
        cpo_branch("2", v2g2)

    if opt.iso20:
        # ISO 15118-20: P-521 keys with ECDSA-SHA-512, or Ed448 keys, at every level
        alg = opt.iso20_algorithm

        def iso20() -> dict[str, object]:
            return {"key": new_iso20_key(alg), "hash_algorithm": hashes.SHA512()}

        r20 = root("v2g20_root", "V2G Root CA 20", f"{opt.v2g_name} 20", "V2G", 2, **iso20())
        s1 = sub_ca("cpo20_sub1", "CPO Sub-CA 1 20", opt.cpo_name, "V2G", r20, 1, **iso20())
        s2 = sub_ca("cpo20_sub2", "CPO Sub-CA 2 20", opt.cpo_name, "V2G", s1, 2, **iso20())
        leaf(
            "secc20",
            make_name(opt.evse_id, opt.cpo_name, opt.country, "CPO"),
            s2,
            iso20_usage(SECC_USAGE, alg),
            opt.leaf_days,
            **iso20(),
        )
        c1 = sub_ca("cps20_sub1", "CPS Sub-CA 1 20", opt.v2g_name, "V2G", r20, 1, **iso20())
        c2 = sub_ca("cps20_sub2", "CPS Sub-CA 2 20", opt.v2g_name, "V2G", c1, 2, **iso20())
        leaf(
            "cps20",
            make_name("CPS Leaf 20", opt.v2g_name, opt.country, "CPS"),
            c2,
            CPS_USAGE,
            opt.leaf_days,
            **iso20(),
        )
        m20 = root("mo20_root", "MO Root CA 20", opt.mo_name, "V2G", 2, **iso20())
        m1 = sub_ca("mo20_sub1", "MO Sub-CA 1 20", opt.mo_name, "V2G", m20, 1, **iso20())
        m2 = sub_ca("mo20_sub2", "MO Sub-CA 2 20", opt.mo_name, "V2G", m1, 2, **iso20())
        leaf(
            "contract20",
            make_name(emaid, opt.mo_name, opt.country, "MO"),
            m2,
            CONTRACT_USAGE,
            opt.contract_days,
            **iso20(),
        )
        o20 = root("oem20_root", "OEM Root CA 20", opt.oem_name, "V2G", 2, **iso20())
        o1 = sub_ca("oem20_sub1", "OEM Sub-CA 1 20", opt.oem_name, "V2G", o20, 1, **iso20())
        o2 = sub_ca("oem20_sub2", "OEM Sub-CA 2 20", opt.oem_name, "V2G", o1, 2, **iso20())
        leaf(
            "oem20_prov",
            make_name(opt.pcid, opt.oem_name, opt.country, "OEM"),
            o2,
            iso20_usage(OEM_PROV_USAGE, alg),
            opt.contract_days,
            **iso20(),
        )
        leaf(
            "vehicle20",
            make_name(opt.vin, opt.oem_name, opt.country, "OEM"),
            o2,
            iso20_usage(VEHICLE_USAGE, alg),
            opt.leaf_days,
            **iso20(),
        )

    cps1 = sub_ca("cps_sub1", "CPS Sub-CA 1", opt.v2g_name, "V2G", v2g, 1)
    cps2 = sub_ca("cps_sub2", "CPS Sub-CA 2", opt.v2g_name, "V2G", cps1, 2)
    leaf(
        "cps",
        make_name("CPS Leaf", opt.v2g_name, opt.country, "CPS"),
        cps2,
        CPS_USAGE,
        opt.leaf_days,
    )

    mo = root("mo_root", "MO Root CA", opt.mo_name, "V2G", 2)
    mo1 = sub_ca("mo_sub1", "MO Sub-CA 1", opt.mo_name, "V2G", mo, 1)
    mo2 = sub_ca("mo_sub2", "MO Sub-CA 2", opt.mo_name, "V2G", mo1, 2)
    leaf(
        "contract",
        make_name(emaid, opt.mo_name, opt.country, "MO"),
        mo2,
        CONTRACT_USAGE,
        opt.contract_days,
    )

    oem = root("oem_root", "OEM Root CA", opt.oem_name, "V2G", 2)
    oem1 = sub_ca("oem_sub1", "OEM Sub-CA 1", opt.oem_name, "V2G", oem, 1)
    oem2 = sub_ca("oem_sub2", "OEM Sub-CA 2", opt.oem_name, "V2G", oem1, 2)
    leaf(
        "oem_prov",
        make_name(opt.pcid, opt.oem_name, opt.country, "OEM"),
        oem2,
        OEM_PROV_USAGE,
        opt.contract_days,
    )

    csms = root("csms_root", "CSMS Root CA", opt.cpo_name, None, 0)
    leaf(
        "csms_server",
        make_name(opt.csms_host, opt.cpo_name, opt.country),
        csms,
        ("digital_signature", "key_agreement"),
        opt.leaf_days,
        extended_usage=(ExtendedKeyUsageOID.SERVER_AUTH,),
        san=(x509.DNSName(opt.csms_host), x509.IPAddress(IPv4Address("127.0.0.1"))),
    )
    leaf(
        "cs_client",
        make_name(opt.station_serial, opt.cpo_name, opt.country),
        csms,
        ("digital_signature", "key_agreement"),
        opt.leaf_days,
        extended_usage=(ExtendedKeyUsageOID.CLIENT_AUTH,),
    )
    root("manufacturer_root", "Manufacturer Root CA", opt.cpo_name, None, 0)
    return TestPki(options=dataclasses.replace(opt, emaid=emaid), items=items)


# --- files -----------------------------------------------------------------------------------

# file stem -> item name, per directory
LAYOUT: dict[str, dict[str, str]] = {
    "v2g": {
        "root": "v2g_root",
        "sub1": "cpo_sub1",
        "sub2": "cpo_sub2",
        "secc": "secc",
        "cps_sub1": "cps_sub1",
        "cps_sub2": "cps_sub2",
        "cps": "cps",
    },
    "v2g2": {"root": "v2g_root2", "sub1": "cpo2_sub1", "sub2": "cpo2_sub2", "secc": "secc2"},
    "v2g20": {
        "root": "v2g20_root",
        "sub1": "cpo20_sub1",
        "sub2": "cpo20_sub2",
        "secc": "secc20",
        "cps_sub1": "cps20_sub1",
        "cps_sub2": "cps20_sub2",
        "cps": "cps20",
    },
    "mo20": {
        "root": "mo20_root",
        "sub1": "mo20_sub1",
        "sub2": "mo20_sub2",
        "contract": "contract20",
    },
    "oem20": {
        "root": "oem20_root",
        "sub1": "oem20_sub1",
        "sub2": "oem20_sub2",
        "prov": "oem20_prov",
        "vehicle": "vehicle20",
    },
    "mo": {"root": "mo_root", "sub1": "mo_sub1", "sub2": "mo_sub2", "contract": "contract"},
    "oem": {"root": "oem_root", "sub1": "oem_sub1", "sub2": "oem_sub2", "prov": "oem_prov"},
    "csms": {"root": "csms_root", "server": "csms_server", "cs": "cs_client"},
    "manufacturer": {"root": "manufacturer_root"},
}
CHAIN_FILES: dict[str, tuple[str, str]] = {
    "v2g/secc_chain.pem": ("v2g", "secc"),
    "v2g/cps_chain.pem": ("v2g", "cps"),
    "v2g2/secc_chain.pem": ("v2g2", "secc2"),
    "v2g20/secc_chain.pem": ("v2g20", "secc20"),
    "v2g20/cps_chain.pem": ("v2g20", "cps20"),
    "mo20/contract_chain.pem": ("mo20", "contract20"),
    "oem20/prov_chain.pem": ("oem20", "oem20_prov"),
    "oem20/vehicle_chain.pem": ("oem20", "vehicle20"),
    "mo/contract_chain.pem": ("mo", "contract"),
    "oem/prov_chain.pem": ("oem", "oem_prov"),
    "csms/server_chain.pem": ("csms", "csms_server"),
    "csms/cs_chain.pem": ("csms", "cs_client"),
}


def read_issued(directory: Path, stem: str) -> Issued:
    """A certificate and its key as :func:`write_test_pki` wrote them (``v2g/sub2``:
    ``v2g/sub2.pem`` and ``v2g/sub2.key``), e.g. to issue more certificates from a CA."""
    from certs.store import ISO2_KEYS, ISO20_KEYS, load_leaf_key

    cert = load_certificate((directory / f"{stem}.pem").read_bytes())
    key = load_leaf_key((directory / f"{stem}.key").read_bytes(), None, (*ISO2_KEYS, *ISO20_KEYS))
    return Issued(stem, cert, key)


def write_test_pki(pki: TestPki, directory: Path, *, station_store: bool = True) -> list[Path]:
    """Write every certificate (.pem), key (.key, mode 0600) and chain; returns the paths.

    With ``station_store`` a ready store for the station is created in ``directory/station``
    (all trust anchors, the SECC chains and keys (-2 and -20), the CSMS client chain and key).
    """
    from certs import store as store_mod  # the one module that does file I/O
    from certs._util import pem

    written: list[Path] = []
    for sub, files in LAYOUT.items():
        for stem, item in files.items():
            if item not in pki.items:
                continue
            issued = pki.items[item]
            cert_path = directory / sub / f"{stem}.pem"
            key_path = directory / sub / f"{stem}.key"
            store_mod.atomic_write(cert_path, pem([issued.certificate]), mode=0o644)
            store_mod.atomic_write(key_path, key_pem(issued.key), mode=0o600)
            written += [cert_path, key_path]
    for rel, (_sub, chain_name) in CHAIN_FILES.items():
        if CHAINS[chain_name][0] not in pki.items:
            continue
        path = directory / rel
        store_mod.atomic_write(path, pem(pki.chain(*CHAINS[chain_name])), mode=0o644)
        written.append(path)
    if "contract20" in pki.items:  # the -20 contract's eMAID, for EV simulators and tests
        path = directory / "mo20" / "emaid.txt"
        store_mod.atomic_write(path, f"{pki.options.emaid}\n".encode(), mode=0o644)
        written.append(path)
    if station_store:
        station = store_mod.Store(directory / "station")
        station.initialize()
        for kind, item in (
            ("v2g", "v2g_root"),
            ("v2g", "v2g_root2"),
            ("v2g", "v2g20_root"),
            ("mo", "mo_root"),
            ("mo", "mo20_root"),
            ("oem", "oem_root"),
            ("oem", "oem20_root"),
            ("csms", "csms_root"),
            ("manufacturer", "manufacturer_root"),
        ):
            if item in pki.items:
                station.install_root(kind, pem([pki.cert(item)]), utc_now=None)
        station.install_leaf(
            "v2g", pem(pki.chain(*CHAINS["secc"])), key_pem(pki["secc"].key), utc_now=None
        )
        if "secc2" in pki.items:
            station.install_leaf(
                "v2g.2", pem(pki.chain(*CHAINS["secc2"])), key_pem(pki["secc2"].key), utc_now=None
            )
        if "secc20" in pki.items:
            station.install_leaf(
                "v2g20",
                pem(pki.chain(*CHAINS["secc20"])),
                key_pem(pki["secc20"].key),
                utc_now=None,
            )
        station.install_leaf(
            "csms",
            pem(pki.chain(*CHAINS["cs_client"])),
            key_pem(pki["cs_client"].key),
            utc_now=None,
        )
        written.append(station.root)
    return written
