"""The station's certificate store on disk: with its base :class:`certs.files.StoreFiles`
(the layout and the readers ``secc run`` uses before it is ready, without cryptography)
the only module of ``certs`` that does file I/O.

Layout (``root`` is e.g. ``/var/lib/secc/certs``)::

    trust/<kind>/<sha256>.pem          trust anchors; kind = v2g | mo | oem | csms | manufacturer
                                       (-2 and -20 roots side by side: Store.roots_for)
    trust/<kind>/<sha256>.ocsp.der     cached OCSP response for that certificate
    leaf/<use>/current -> g<n>         use = v2g (SECC chain) | csms (charging-station client)
                                       | v2g.<label> (further SECC chains, one per V2G root)
                                       | v2g20 (the ISO 15118-20 SECC chain: P-521 or
                                       Ed448, served over TLS 1.3) | v2g20.<label>
    leaf/<use>/g<n>/chain.pem          leaf first, then the sub-CAs
    leaf/<use>/g<n>/key.pem            PKCS#8, mode 0600, encrypted when a password file is set
    leaf/<use>/g<n>/<sha256>.ocsp.der  cached OCSP responses for the chain's certificates
    pending/<use>.key.pem              fresh key of an outstanding CSR (SignCertificate)

Every file is written atomically (temp file, fsync, rename, fsync of the directory); a leaf
chain and its key are swapped together by writing a new generation directory and renaming
the ``current`` symlink, so a crash leaves the old or the new pair, never a mix. Keys are
0600 in 0700 directories.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448

from certs._util import (
    CertificateFormatError,
    PrivateKey,
    fingerprint,
    is_ca,
    key_pem,
    load_certificate,
    load_certificates,
    pem,
    signed_by,
)
from certs.files import (
    ISO2_KEYS,
    ISO20_KEYS,
    LEAF_USES,
    ROOT_KINDS,
    InstallRefused,
    StoreError,
    StoreFiles,
    check_use,
    is_iso20_use,
    key_kinds,
)
from certs.ocsp import CertificateHashData, hash_data, judge_response

# the layout, the errors and the use names are defined in certs.files (no cryptography)
__all__ = [
    "ISO2_KEYS",
    "ISO20_KEYS",
    "KIND_OF_OCPP_TYPE",
    "LEAF_USES",
    "MAX_KEY_FILE",
    "MAX_SUB_CAS",
    "OCPP_LEAF_TYPES",
    "OCPP_ROOT_TYPES",
    "ROOT_KINDS",
    "InstallRefused",
    "InstalledCertificate",
    "Store",
    "StoreError",
    "atomic_write",
    "check_installable_root",
    "check_leaf_chain",
    "check_use",
    "is_iso20_certificate",
    "is_iso20_use",
    "key_kinds",
    "load_leaf_key",
    "load_private_key",
    "ocpp_leaf_type",
]

# OCPP 2.0.1 GetCertificateIdUseEnumType / InstallCertificateUseEnumType names.
OCPP_ROOT_TYPES = {
    "v2g": "V2GRootCertificate",
    "mo": "MORootCertificate",
    "oem": "OEMRootCertificate",
    "csms": "CSMSRootCertificate",
    "manufacturer": "ManufacturerRootCertificate",
}
OCPP_LEAF_TYPES = {"v2g": "V2GCertificateChain", "csms": "ChargingStationCertificate"}
KIND_OF_OCPP_TYPE = {v: k for k, v in OCPP_ROOT_TYPES.items()}
MAX_KEY_FILE = 64 * 1024
MAX_SUB_CAS = 2


def ocpp_leaf_type(use: str) -> str:
    return OCPP_LEAF_TYPES["csms" if use == "csms" else "v2g"]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` by ``data`` atomically: readers see the old or the new content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


@dataclass(frozen=True, slots=True)
class InstalledCertificate:
    """One entry of GetInstalledCertificateIds (plus where it lives)."""

    certificate_type: str
    hash_data: CertificateHashData
    child_hash_data: tuple[CertificateHashData, ...]
    certificate: x509.Certificate
    path: Path

    def to_ocpp(self) -> dict[str, object]:
        out: dict[str, object] = {
            "certificateType": self.certificate_type,
            "certificateHashData": self.hash_data.to_ocpp(),
        }
        if self.child_hash_data:
            out["childCertificateHashData"] = [c.to_ocpp() for c in self.child_hash_data]
        return out


def _now(utc_now: dt.datetime | None) -> dt.datetime:
    return utc_now if utc_now is not None else dt.datetime.now(dt.UTC)


def check_installable_root(data: bytes, utc_now: dt.datetime | None) -> x509.Certificate:
    """The root certificate in ``data`` or :class:`InstallRefused` saying why not."""
    try:
        cert = load_certificate(data)
    except CertificateFormatError as exc:
        raise InstallRefused(f"malformed: {exc}") from exc
    if not is_ca(cert):
        raise InstallRefused("not a CA certificate (basicConstraints cA is false or missing)")
    now = _now(utc_now)
    if cert.not_valid_after_utc < now:
        raise InstallRefused(f"expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC")
    if cert.not_valid_before_utc > now:
        raise InstallRefused(f"not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC")
    return cert


class Store(StoreFiles):
    """A station's certificates and keys under one directory (its layout and the
    cryptography-free readers: :class:`certs.files.StoreFiles`)."""

    # --- setup -------------------------------------------------------------------------------

    def initialize(self) -> None:
        """Create the directories (idempotent) and drop debris of interrupted writes.

        Call it at start-up, before anything reads the store.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        for kind in ROOT_KINDS:
            (self.root / "trust" / kind).mkdir(parents=True, exist_ok=True)
        for private in ("leaf", "pending"):
            (self.root / private).mkdir(mode=0o700, exist_ok=True)
            (self.root / private).chmod(0o700)
        for use in LEAF_USES:
            (self.root / "leaf" / use).mkdir(mode=0o700, exist_ok=True)
        for stale in self.root.rglob(".*.tmp"):
            stale.unlink(missing_ok=True)
        for use in self.leaf_uses(installed_only=False):
            # At start-up no reader holds an old generation: keep only the current one (an
            # install killed before its symlink swap leaves a generation nobody points to).
            current = self._current_generation(use)
            for gen in (self.root / "leaf" / use).glob("g*"):
                if gen.is_dir() and gen != current:
                    shutil.rmtree(gen)

    # --- keys --------------------------------------------------------------------------------

    def _key_bytes(self, key: PrivateKey) -> bytes:
        return key_pem(key, self.key_password())

    def _load_key(self, path: Path) -> ec.EllipticCurvePrivateKey:
        data = path.read_bytes()
        return load_private_key(data, self.key_password())

    def _load_any_key(self, path: Path, use: str) -> PrivateKey:
        return load_leaf_key(path.read_bytes(), self.key_password(), key_kinds(use))

    # --- trust anchors -----------------------------------------------------------------------

    def install_root(self, kind: str, data: bytes, *, utc_now: dt.datetime | None) -> Path:
        """Install a trust anchor; refuses non-CA, expired and malformed certificates."""
        if kind not in ROOT_KINDS:
            raise InstallRefused(
                f"unknown trust anchor kind {kind!r} (one of {', '.join(ROOT_KINDS)})"
            )
        cert = check_installable_root(data, utc_now)
        path = self.root / "trust" / kind / f"{fingerprint(cert)}.pem"
        if not path.exists():
            atomic_write(path, pem([cert]), mode=0o644)
        return path

    def roots(self, kind: str) -> list[x509.Certificate]:
        return [cert for _path, cert in self._root_files(kind)]

    def roots_for(self, kind: str, *, iso20: bool) -> list[x509.Certificate]:
        """The trust anchors of ``kind`` for one protocol family: ISO 15118-20 roots have
        a P-521 or Ed448 key [V2G20-2674], the -2 ones (and OCPP's) anything else. Both
        families share ``trust/<kind>/`` (an OEM or MO root is installed once, whatever
        the protocol), so callers pick by key type."""
        return [cert for cert in self.roots(kind) if is_iso20_certificate(cert) == iso20]

    def _root_files(self, kind: str) -> Iterator[tuple[Path, x509.Certificate]]:
        for path in self.root_paths(kind):
            try:
                yield path, load_certificate(path.read_bytes())
            except CertificateFormatError:
                continue  # a damaged file is skipped (and shown by `secc certs list`)

    # --- leaf chains -------------------------------------------------------------------------

    def leaf_chain(self, use: str) -> list[x509.Certificate]:
        chain_path, _ = self.leaf_paths(use)
        return load_certificates(chain_path.read_bytes())

    def leaf_key(self, use: str) -> ec.EllipticCurvePrivateKey:
        """The P-256 key of an ISO 15118-2 / OCPP leaf (see :meth:`leaf_key_any`)."""
        _, key_path = self.leaf_paths(use)
        return self._load_key(key_path)

    def leaf_key_any(self, use: str) -> PrivateKey:
        """The key of any leaf, of the kinds its use allows (P-521 / Ed448 for -20)."""
        _, key_path = self.leaf_paths(use)
        return self._load_any_key(key_path, use)

    def install_leaf(
        self, use: str, chain_data: bytes, key_data: bytes, *, utc_now: dt.datetime | None
    ) -> Path:
        """Install a leaf chain with its private key, atomically as a pair."""
        check_use(use)
        key = load_leaf_key(key_data, None, key_kinds(use), what="private key to install")
        chain = check_leaf_chain(chain_data, key, utc_now)
        return self._swap_in(use, chain, key)

    def _swap_in(self, use: str, chain: list[x509.Certificate], key: PrivateKey) -> Path:
        leaf_dir = self.root / "leaf" / use
        leaf_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
        previous = self._current_generation(use)
        gen = leaf_dir / f"g{time.time_ns()}"
        gen.mkdir(mode=0o700)
        atomic_write(gen / "key.pem", self._key_bytes(key), mode=0o600)
        atomic_write(gen / "chain.pem", pem(chain), mode=0o644)
        link_tmp = leaf_dir / f".current.{os.getpid()}.tmp"
        link_tmp.unlink(missing_ok=True)
        os.symlink(gen.name, link_tmp)
        os.replace(link_tmp, leaf_dir / "current")
        _fsync_dir(leaf_dir)
        for old in leaf_dir.glob("g*"):
            if old not in {gen, previous} and old.is_dir():
                shutil.rmtree(old)
        return gen

    def drop_previous_generations(self, use: str) -> None:
        """Remove every generation of ``use`` but the current one (the one :meth:`_swap_in`
        keeps for readers of the old pair): once a new client certificate has been proven,
        the one not in use is discarded (OCPP 2.0.1 A02.FR.10)."""
        current = self._current_generation(use)
        for gen in (self.root / "leaf" / check_use(use)).glob("g*"):
            if gen.is_dir() and gen != current:
                shutil.rmtree(gen, ignore_errors=True)

    def delete_leaf(self, use: str) -> None:
        link = self.root / "leaf" / use / "current"
        gen = self._current_generation(use)
        if gen is None:
            raise StoreError(f"no {use} leaf certificate installed")
        link.unlink()
        _fsync_dir(link.parent)
        shutil.rmtree(gen, ignore_errors=True)

    # --- CSR keys (SignCertificate → CertificateSigned) --------------------------------------

    def _pending_path(self, use: str) -> Path:
        return self.root / "pending" / f"{check_use(use)}.key.pem"

    def new_pending_key(self, use: str) -> ec.EllipticCurvePrivateKey:
        """A fresh key for a CSR, kept until the signed certificate arrives: P-256, or
        P-521 for an ISO 15118-20 use (``v2g20``) [V2G20-2674]."""
        curve: ec.EllipticCurve = ec.SECP521R1() if is_iso20_use(use) else ec.SECP256R1()
        key = ec.generate_private_key(curve)
        path = self._pending_path(use)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        atomic_write(path, self._key_bytes(key), mode=0o600)
        return key

    def new_pending_iso20_key(self, algorithm: str) -> PrivateKey:
        """A fresh ``v2g20`` CSR key of the -20 kind the renewed leaf keeps:
        ``"secp521r1"`` (ECDSA P-521) or ``"ed448"`` [V2G20-2674, V2G20-2319]."""
        if algorithm not in ISO20_KEYS:
            raise StoreError(f"an ISO 15118-20 key is one of {ISO20_KEYS}, not {algorithm!r}")
        key: PrivateKey = (
            ed448.Ed448PrivateKey.generate()
            if algorithm == "ed448"
            else ec.generate_private_key(ec.SECP521R1())
        )
        path = self._pending_path("v2g20")
        path.parent.mkdir(mode=0o700, exist_ok=True)
        atomic_write(path, self._key_bytes(key), mode=0o600)
        return key

    def pending_key(self, use: str) -> PrivateKey | None:
        """The key of the outstanding CSR of ``use`` (ECDSA; Ed448 for ``v2g20``)."""
        path = self._pending_path(use)
        if not path.exists():
            return None
        return self._load_any_key(path, use)

    def accept_signed_chain(
        self, use: str, chain_data: bytes, *, utc_now: dt.datetime | None
    ) -> Path:
        """CertificateSigned: the chain must fit the pending key; then install atomically."""
        key = self.pending_key(use)
        if key is None:
            raise InstallRefused(f"no pending {use} key: no CSR outstanding")
        chain = check_leaf_chain(chain_data, key, utc_now)
        gen = self._swap_in(use, chain, key)
        self._pending_path(use).unlink(missing_ok=True)
        _fsync_dir(self._pending_path(use).parent)
        return gen

    # --- OCSP cache --------------------------------------------------------------------------

    def _home_of(self, fp: str) -> Path | None:
        for kind in ROOT_KINDS:
            if (self.root / "trust" / kind / f"{fp}.pem").exists():
                return self.root / "trust" / kind
        for use in self.leaf_uses():
            gen = self._current_generation(use)
            if gen is not None and any(fingerprint(c) == fp for c in self.leaf_chain(use)):
                return gen
        return None

    def store_ocsp_response(self, cert: x509.Certificate, der: bytes) -> Path:
        fp = fingerprint(cert)
        home = self._home_of(fp)
        if home is None:
            raise StoreError(f"certificate {fp[:16]}… is not in the store")
        path = home / f"{fp}.ocsp.der"
        atomic_write(path, der, mode=0o644)
        return path

    def ocsp_response(self, cert: x509.Certificate) -> bytes | None:
        fp = fingerprint(cert)
        home = self._home_of(fp)
        path = home / f"{fp}.ocsp.der" if home else None
        return path.read_bytes() if path and path.exists() else None

    def cached_revocations(
        self,
        chain: Sequence[x509.Certificate],
        roots: Sequence[x509.Certificate],
        utc_now: dt.datetime,
    ) -> set[str]:
        """Fingerprints of ``chain`` members that a cached, verified OCSP answer calls revoked.

        The result feeds ``validate_chain(..., revoked=...)``. Revocation is final, so a stale
        "revoked" answer still counts; answers that do not verify are ignored.
        """
        path = [*chain, *roots]
        out: set[str] = set()
        for cert in chain:
            cached = self.ocsp_response(cert)
            if cached is None:
                continue
            issuer = next(
                (c for c in path if c.subject == cert.issuer and signed_by(cert, c)), None
            )
            if (
                issuer is not None
                and judge_response(cached, cert, issuer, utc_now).status == "revoked"
            ):
                out.add(fingerprint(cert))
        return out

    # --- OCPP GetInstalledCertificateIds / DeleteCertificate ---------------------------------

    def _issuer_among(
        self, cert: x509.Certificate, kinds: tuple[str, ...]
    ) -> x509.Certificate | None:
        for kind in kinds:
            for root in self.roots(kind):
                if root.subject == cert.issuer and signed_by(cert, root):
                    return root
        return None

    def list_installed(
        self, types: tuple[str, ...] | None = None, algorithm: str = "SHA256"
    ) -> list[InstalledCertificate]:
        out: list[InstalledCertificate] = []
        for kind in ROOT_KINDS:
            ctype = OCPP_ROOT_TYPES[kind]
            if types and ctype not in types:
                continue
            for path, cert in self._root_files(kind):
                out.append(
                    InstalledCertificate(ctype, hash_data(cert, cert, algorithm), (), cert, path)
                )
        for use in self.leaf_uses():
            ctype = ocpp_leaf_type(use)
            if types and ctype not in types:
                continue
            chain = self.leaf_chain(use)
            top = self._issuer_among(chain[-1], ("csms",) if use == "csms" else ("v2g",))
            issuers: list[x509.Certificate | None] = [*chain[1:], top]
            hashes_ = [
                hash_data(c, i, algorithm) if i is not None else None
                for c, i in zip(chain, issuers, strict=True)
            ]
            if hashes_[0] is None:
                continue  # a lone leaf whose issuer is not in the store: no CertID possible
            children = tuple(h for h in hashes_[1:] if h is not None)
            out.append(
                InstalledCertificate(ctype, hashes_[0], children, chain[0], self.leaf_paths(use)[0])
            )
        return out

    def delete(self, wanted: CertificateHashData) -> str:
        """OCPP DeleteCertificate: "Accepted", "NotFound" or "Failed" (the CSMS client leaf)."""
        for item in self.list_installed(algorithm=wanted.hash_algorithm):
            if not item.hash_data.matches(wanted):
                continue
            if item.certificate_type == OCPP_LEAF_TYPES["csms"]:
                return "Failed"  # OCPP: the charging-station certificate is never deleted
            if item.certificate_type == OCPP_LEAF_TYPES["v2g"]:
                self.delete_leaf(item.path.parent.parent.name)  # leaf/<use>/g<n>/chain.pem
            else:
                item.path.unlink()
                with contextlib.suppress(FileNotFoundError):
                    item.path.with_suffix(".ocsp.der").unlink()
                _fsync_dir(item.path.parent)
            return "Accepted"
        return "NotFound"

    def all_certificates(self) -> list[tuple[str, x509.Certificate]]:
        """Every certificate with a label (``trust/v2g``, ``leaf/v2g[0]`` …), for expiry."""
        out: list[tuple[str, x509.Certificate]] = []
        for kind in ROOT_KINDS:
            out += [(f"trust/{kind}", cert) for cert in self.roots(kind)]
        for use in self.leaf_uses():
            out += [(f"leaf/{use}[{i}]", c) for i, c in enumerate(self.leaf_chain(use))]
        return out


def load_private_key(
    data: bytes, password: bytes | None, *, what: str = "private key"
) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from PEM (PKCS#8 or SEC1, optionally encrypted) or DER."""
    key = load_leaf_key(data, password, ISO2_KEYS, what=what)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def is_iso20_certificate(cert: x509.Certificate) -> bool:
    """Whether ``cert``'s key is of an ISO 15118-20 kind (ECDSA P-521 or Ed448)."""
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.curve.name in ISO20_KEYS
    return isinstance(key, ed448.Ed448PublicKey)


def _kind(key: object) -> str | None:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.curve.name
    if isinstance(key, ed448.Ed448PrivateKey):
        return "ed448"
    return None


_KIND_NAMES = {"secp256r1": "ECDSA P-256", "secp521r1": "ECDSA P-521", "ed448": "Ed448"}


def load_leaf_key(
    data: bytes, password: bytes | None, kinds: Sequence[str], *, what: str = "private key"
) -> PrivateKey:
    """A private key of one of ``kinds`` (``secp256r1``, ``secp521r1``, ``ed448``) from
    PEM (PKCS#8 or SEC1, optionally encrypted) or DER."""
    if not data or len(data) > MAX_KEY_FILE:
        raise StoreError(f"{what}: {len(data)} bytes is not a key file")
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password)
        else:
            key = serialization.load_der_private_key(data, password)
    except (ValueError, TypeError) as exc:
        raise StoreError(f"{what}: cannot load ({exc})") from exc
    if _kind(key) not in kinds:
        wanted = " or ".join(_KIND_NAMES.get(k, k) for k in kinds)
        raise StoreError(f"{what}: must be an {wanted} key")
    assert isinstance(key, (ec.EllipticCurvePrivateKey, ed448.Ed448PrivateKey))
    return key


def check_leaf_chain(
    chain_data: bytes, key: PrivateKey, utc_now: dt.datetime | None
) -> list[x509.Certificate]:
    """A leaf chain fit to install: parses, leaf matches ``key``, links, is valid now."""
    try:
        chain = load_certificates(chain_data)
    except CertificateFormatError as exc:
        raise InstallRefused(f"malformed chain: {exc}") from exc
    if len(chain) > 1 + MAX_SUB_CAS:
        raise InstallRefused(f"{len(chain) - 1} sub-CAs; at most {MAX_SUB_CAS} are allowed")
    leaf = chain[0]
    if is_ca(leaf):
        raise InstallRefused("the first certificate is a CA, not a leaf")
    if leaf.public_key() != key.public_key():
        raise InstallRefused("the leaf certificate does not belong to the private key")
    for cert, issuer in itertools.pairwise(chain):
        if not signed_by(cert, issuer):
            raise InstallRefused(
                f"{cert.subject.rfc4514_string()} is not signed by the next certificate"
            )
        if not is_ca(issuer):
            raise InstallRefused(f"{issuer.subject.rfc4514_string()} is not a CA")
    now = _now(utc_now)
    for cert in chain:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise InstallRefused(f"{cert.subject.rfc4514_string()} is not valid now")
    return chain
