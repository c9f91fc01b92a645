"""``secc certs ...``: test PKI, store listing, inspection, verification, CSR, expiry.

Exit codes: 0 ok, 1 a check or operation failed (message on stderr), 2 usage error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certs import emaid as emaid_mod
from certs._util import (
    CertsError,
    common_name,
    der,
    fingerprint,
    is_ca,
    key_description,
    load_certificates,
    public_key_fingerprint,
    signed_by,
)
from certs.ocsp import CertificateHashData, OcspError, hash_data, responder_url
from certs.store import Store, atomic_write

DEFAULT_STORE = Path("/var/lib/secc/certs")
_VERIFY_ROOTS = {"contract": ("mo", "v2g"), "secc": ("v2g",), "oem": ("oem",), "cps": ("v2g",)}


def _utc(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(dt.UTC)
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="ISO 15118-2 / OCPP certificate toolkit")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", required=True)

    def with_store(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--store", type=Path, default=DEFAULT_STORE, help="store directory")
        sp.add_argument("--key-password-file", type=Path, help="encrypt/decrypt keys with this")
        return sp

    mk = sub.add_parser("make-test-pki", help="write a complete test PKI and a station store")
    mk.add_argument("dir", type=Path)
    mk.add_argument("--evse-id", default="DE*ABC*E1234567*1", help="SECC leaf CN")
    mk.add_argument("--emaid", help="contract leaf CN (default: a valid German test eMAID)")
    mk.add_argument("--cpo-name", default="Test CPO")
    mk.add_argument("--station-serial", default="CS-SECC-0001")
    mk.add_argument("--leaf-days", type=int, default=365)
    mk.add_argument("--root-days", type=int, default=3650)
    mk.add_argument("--second-v2g-root", action="store_true", help="add a second V2G hierarchy")
    mk.add_argument(
        "--no-iso20",
        action="store_true",
        help="leave out the ISO 15118-20 hierarchies (P-521: V2G/SECC/CPS, MO, OEM/vehicle)",
    )
    mk.add_argument(
        "--iso20-algorithm",
        choices=("p521", "ed448"),
        default="p521",
        help="the keys and signatures of the ISO 15118-20 hierarchies: ECDSA P-521 with "
        "SHA-512 (default) or Ed448; the station serves the -20 SECC chain over TLS 1.3",
    )
    mk.add_argument("--ocsp-url", default="http://127.0.0.1:8888", help="AIA OCSP base URL")
    mk.add_argument("--no-station-store", action="store_true")
    mk.add_argument(
        "--force", action="store_true", help="overwrite the files of a PKI already in DIR"
    )

    ls = with_store(
        sub.add_parser("list", help="installed certificates (GetInstalledCertificateIds)")
    )
    ls.add_argument("--type", action="append", help="OCPP certificate type filter")
    ls.add_argument("--json", action="store_true")

    ins = sub.add_parser(
        "inspect", help="human summary of a certificate or private key file (PEM or DER)"
    )
    ins.add_argument("file", type=Path)

    ver = with_store(sub.add_parser("verify", help="verify a chain (leaf first) against the store"))
    ver.add_argument("file", type=Path, help="PEM chain, leaf first (or DER leaf)")
    ver.add_argument("--profile", choices=sorted(_VERIFY_ROOTS), default="contract")
    ver.add_argument("--emaid", help="the eMAID the chain must carry")
    ver.add_argument("--at", help="check at this UTC time (ISO 8601) instead of now")

    csr = with_store(
        sub.add_parser("csr", help="make a CSR for SignCertificate (key kept pending)")
    )
    csr.add_argument(
        "--type", choices=("V2GCertificate", "ChargingStationCertificate"), required=True
    )
    csr.add_argument("--cn", required=True, help="SECC ID or the station's serial number")
    csr.add_argument("--org", required=True, help="organization (CPO name)")
    csr.add_argument("--country")
    csr.add_argument("-o", "--output", type=Path, help="write the PEM CSR here (default stdout)")

    inst = with_store(sub.add_parser("install", help="install a root, a signed chain or a leaf"))
    what = inst.add_mutually_exclusive_group(required=True)
    what.add_argument("--root", choices=("v2g", "mo", "oem", "csms", "manufacturer"))
    what.add_argument("--signed", choices=("V2GCertificate", "ChargingStationCertificate"))
    what.add_argument(
        "--leaf",
        metavar="USE",
        help="v2g, csms, v2g.<label>, or v2g20 (ISO 15118-20 SECC chain: P-521 or Ed448 key); "
        "needs --key",
    )
    inst.add_argument("file", type=Path)
    inst.add_argument("--key", type=Path, help="private key of --leaf")

    dele = with_store(sub.add_parser("delete", help="delete by OCPP hash data or fingerprint"))
    dele.add_argument("--hash-data", help='JSON: {"hashAlgorithm": ..., "issuerNameHash": ...}')
    dele.add_argument("--sha256", help="SHA-256 fingerprint of the certificate (hex)")

    exp = with_store(sub.add_parser("expiry", help="days to expiry; exit 1 when renewal is due"))
    exp.add_argument("--days", type=int, default=30, help="renew this many days before expiry")
    exp.add_argument("--at", help="evaluate at this UTC time (ISO 8601)")
    exp.add_argument("--json", action="store_true")

    init = with_store(sub.add_parser("init", help="create an empty store"))
    del init
    return p


def main(argv: list[str], prog: str) -> int:
    parser = _parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if exc.code in (0, None) else 2
    handler = _HANDLERS[args.cmd]
    try:
        return handler(args)
    except BrokenPipeError:  # `secc certs list | head`: the reader went away, not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keep Python quiet at exit
        return 0
    except (CertsError, OSError, ValueError) as exc:
        print(f"{prog} {args.cmd}: error: {exc}", file=sys.stderr)
        return 1


def _store(args: argparse.Namespace) -> Store:
    return Store(args.store, key_password_file=args.key_password_file)


def _existing_store(args: argparse.Namespace) -> Store:
    """The store ``--store`` names, which must exist: reading a mistyped path must not
    look like an empty store ("no certificates")."""
    root: Path = args.store
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise CertsError(
            f"the store {root} {what} (give --store DIR; `secc certs init --store DIR` "
            "creates an empty one)"
        )
    if not (root / "trust").is_dir() and not (root / "leaf").is_dir():
        raise CertsError(
            f"{root} is not a certificate store (no trust/ or leaf/ in it; "
            "`secc certs init --store DIR` creates one)"
        )
    return _store(args)


def _cmd_make_test_pki(args: argparse.Namespace) -> int:
    from certs.testpki import TestPkiOptions, build_test_pki, write_test_pki

    opts = TestPkiOptions(
        evse_id=args.evse_id,
        cpo_name=args.cpo_name,
        station_serial=args.station_serial,
        leaf_days=args.leaf_days,
        root_days=args.root_days,
        second_v2g_root=args.second_v2g_root,
        iso20=not args.no_iso20,
        iso20_algorithm=args.iso20_algorithm,
        ocsp_base_url=args.ocsp_url.rstrip("/"),
        **({"emaid": args.emaid} if args.emaid else {}),
    )
    if args.emaid and not emaid_mod.is_valid(args.emaid):
        print(f"warning: {args.emaid!r} has a wrong check digit", file=sys.stderr)
    directory: Path = args.dir
    if directory.exists() and not directory.is_dir():
        raise CertsError(f"{directory} exists and is not a directory")
    if not args.force and directory.is_dir() and any(directory.iterdir()):
        raise CertsError(
            f"{directory} is not empty (a PKI is there?): its keys would be replaced; "
            "give --force to overwrite, or choose an empty directory"
        )
    pki = build_test_pki(dt.datetime.now(dt.UTC), opts)
    station = directory / "station"
    if args.force and not args.no_station_store and (station / "trust").is_dir():
        # the old hierarchy's roots and chains must not stay trusted beside the new ones
        shutil.rmtree(station)
    written = write_test_pki(pki, args.dir, station_store=not args.no_station_store)
    print(f"test PKI in {args.dir}: {len(pki.items)} certificates, {len(written)} files")
    print(f"  SECC leaf CN {opts.evse_id}, contract eMAID {pki.options.emaid}")
    if opts.iso20:
        algorithm = "Ed448" if opts.iso20_algorithm == "ed448" else "P-521, SHA-512"
        print(
            f"  ISO 15118-20 ({algorithm}): V2G root, SECC and CPS chains in v2g20/, "
            "MO root and contract chain in mo20/, OEM root, provisioning and vehicle "
            "(TLS client) chains in oem20/"
        )
    if not args.no_station_store:
        print(f"  station store: {args.dir / 'station'}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    items = _existing_store(args).list_installed(tuple(args.type) if args.type else None)
    if args.json:
        print(json.dumps([i.to_ocpp() for i in items], indent=2))
        return 0
    for item in items:
        h = item.hash_data
        print(
            f"{item.certificate_type:28} {common_name(item.certificate.subject) or '-':30} "
            f"serial {h.serial_number}  until {item.certificate.not_valid_after_utc:%Y-%m-%d}"
            f"  {key_description(item.certificate)}"
        )
        for child in item.child_hash_data:
            print(f"{'':28}   sub-CA serial {child.serial_number}")
    if not items:
        print("no certificates installed")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    data = args.file.read_bytes()
    described = _describe_key(data)
    if described is not None:
        print("\n".join(described))
        return 0
    certs = load_certificates(data)
    for index, cert in enumerate(certs):
        issuer = certs[index + 1] if index + 1 < len(certs) else cert
        cn = common_name(cert.subject) or ""
        lines = [
            f"certificate {index + 1} of {len(certs)}",
            f"  subject     {cert.subject.rfc4514_string()}",
            f"  issuer      {cert.issuer.rfc4514_string()}",
            f"  serial      {cert.serial_number:x}",
            f"  valid       {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} .. "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC",
            f"  key         {key_description(cert)}",
            f"  CA          {'yes' if is_ca(cert) else 'no'}",
            f"  sha256      {fingerprint(cert)}",
            f"  key sha256  {public_key_fingerprint(cert)}",
            f"  DER bytes   {len(der(cert))}",
        ]
        if emaid_mod.is_valid(cn):
            lines.append(f"  eMAID       {emaid_mod.normalize(cn)} ({emaid_mod.format_emaid(cn)})")
        url = responder_url(cert)
        if url:
            lines.append(f"  OCSP        {url}")
        if signed_by(cert, issuer):  # the next one in the file, or itself for a root
            hd = hash_data(cert, issuer)
            lines.append(f"  hash data   {json.dumps(hd.to_ocpp())}")
        print("\n".join(lines))
    return 0


_KEY_PEM = re.compile(rb"-----BEGIN ((?:ENCRYPTED |EC |RSA |DSA )?PRIVATE KEY|PUBLIC KEY)-----")


def _describe_key(data: bytes) -> list[str] | None:
    """The lines ``inspect`` prints for a key file (its type and curve, the public key's
    fingerprint; never the secret), or None when ``data`` is not a key."""
    marker = _KEY_PEM.search(data)
    key: Any
    if marker is not None:
        label = marker.group(1).decode()
        if label == "ENCRYPTED PRIVATE KEY":
            return [
                "private key (encrypted PKCS#8), not a certificate",
                "  type        unknown without the password",
            ]
        try:
            if label == "PUBLIC KEY":
                key = serialization.load_pem_public_key(data)
            else:
                key = serialization.load_pem_private_key(data, password=None)
        except TypeError:  # a legacy PEM with Proc-Type: 4,ENCRYPTED
            return [f"private key ({label}, encrypted), not a certificate"]
        except ValueError as exc:
            raise CertsError(f"a {label} block that does not parse: {exc}") from exc
    elif data.startswith(b"-----"):
        return None
    else:
        try:
            key = serialization.load_der_private_key(data, password=None)
        except TypeError:
            return ["private key (DER, encrypted), not a certificate"]
        except ValueError:
            return None  # not a DER key: let the certificate reader say what it is
    private = hasattr(key, "private_bytes")
    public = key.public_key() if private else key
    spki = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if isinstance(public, ec.EllipticCurvePublicKey):
        kind = f"EC {public.curve.name} ({public.curve.key_size} bit)"
    else:
        size = getattr(public, "key_size", None)
        kind = f"{type(public).__name__.removesuffix('PublicKey').lstrip('_')} {size or ''}"
    return [
        f"{'private' if private else 'public'} key, not a certificate",
        f"  type        {kind.strip()}",
        f"  key sha256  {hashlib.sha256(spki).hexdigest()} (of the public key)",
    ]


def _cmd_verify(args: argparse.Namespace) -> int:
    from certs.validate import validate_chain

    store = _existing_store(args)
    chain = load_certificates(args.file.read_bytes())
    roots = [r for kind in _VERIFY_ROOTS[args.profile] for r in store.roots(kind)]
    now = _utc(args.at)
    revoked = store.cached_revocations(chain, roots, now)
    verdict = validate_chain(
        der(chain[0]),
        [der(c) for c in chain[1:]],
        roots,
        now,
        profile=args.profile,
        claimed_emaid=args.emaid,
        revoked=revoked,
    )
    stream = sys.stdout if verdict.ok else sys.stderr
    print(f"{verdict.response_code}: {verdict.reason}", file=stream)
    return 0 if verdict.ok else 1


def _cmd_csr(args: argparse.Namespace) -> int:
    from certs.csr import request_certificate

    store = _store(args)
    store.initialize()
    pem = request_certificate(
        store, args.type, common_name=args.cn, organization=args.org, country=args.country
    )
    if args.output:
        atomic_write(args.output, pem)  # a reader sees the old or the new CSR, never half
        print(f"CSR written to {args.output}; the key waits in {store.root / 'pending'}")
    else:
        sys.stdout.write(pem.decode())
    return 0


def _cmd_install(args: argparse.Namespace) -> int:
    from certs.csr import accept_certificate_signed

    store = _store(args)
    store.initialize()
    data = args.file.read_bytes()
    if args.root:
        path = store.install_root(args.root, data, utc_now=None)
        print(f"installed {args.root} trust anchor: {path}")
    elif args.signed:
        result = accept_certificate_signed(store, args.signed, data, utc_now=None)
        if result.status != "Accepted":
            print(f"Rejected: {result.reason}", file=sys.stderr)
            return 1
        print(f"Accepted: {result.reason}")
    else:
        if args.key is None:
            print("--leaf needs --key", file=sys.stderr)
            return 2
        gen = store.install_leaf(args.leaf, data, args.key.read_bytes(), utc_now=None)
        print(f"installed {args.leaf} leaf chain: {gen}")
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    store = _existing_store(args)
    if bool(args.hash_data) == bool(args.sha256):
        print("give exactly one of --hash-data and --sha256", file=sys.stderr)
        return 2
    if args.hash_data:
        try:
            wanted = CertificateHashData.from_ocpp(json.loads(args.hash_data))
        except (json.JSONDecodeError, AttributeError, OcspError) as exc:
            print(f"bad --hash-data: {exc}", file=sys.stderr)
            return 2
    else:
        match = [
            i for i in store.list_installed() if fingerprint(i.certificate) == args.sha256.lower()
        ]
        if not match:
            print("NotFound", file=sys.stderr)
            return 1
        wanted = match[0].hash_data
    status = store.delete(wanted)
    print(status, file=sys.stdout if status == "Accepted" else sys.stderr)
    return 0 if status == "Accepted" else 1


def _cmd_expiry(args: argparse.Namespace) -> int:
    from certs.expiry import expiry_report

    entries = expiry_report(
        _existing_store(args).all_certificates(), _utc(args.at), renew_before_days=args.days
    )
    if args.json:
        print(json.dumps([e.to_json() for e in entries], indent=2))
    else:
        for e in entries:
            flag = "EXPIRED" if e.expired else "RENEW" if e.renewal_due else "ok"
            print(f"{flag:8} {e.days_left:6d} d  {e.not_after:%Y-%m-%d}  {e.label:16} {e.subject}")
    return 1 if any(e.renewal_due for e in entries) else 0


def _cmd_init(args: argparse.Namespace) -> int:
    store = _store(args)
    store.initialize()
    print(f"store ready in {store.root}")
    return 0


_HANDLERS = {
    "make-test-pki": _cmd_make_test_pki,
    "list": _cmd_list,
    "inspect": _cmd_inspect,
    "verify": _cmd_verify,
    "csr": _cmd_csr,
    "install": _cmd_install,
    "delete": _cmd_delete,
    "expiry": _cmd_expiry,
    "init": _cmd_init,
}
