"""The certificate store's layout and the errors of ``certs``, without ``cryptography``.

:class:`StoreFiles` knows where a store keeps its trust anchors and leaf chains (the
layout is described in :mod:`certs.store`, whose :class:`~certs.store.Store` extends it)
and reads them with the small DER reader (:mod:`certs.der`).  ``secc run`` uses it before
it is ready (the start-up checks, the SECC chains to serve), so that cryptography is not
imported until a Plug & Charge session or a certificate operation needs it (issue 17).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from certs.der import Cert

MAX_CERT_FILE = 1 << 20  # a certificate file (PEM chain) larger than 1 MiB is refused
ROOT_KINDS = ("v2g", "mo", "oem", "csms", "manufacturer")
LEAF_USES = ("v2g", "csms", "v2g20")
_EXTRA_V2G = re.compile(r"v2g(20)?\.[A-Za-z0-9_-]{1,32}")
# the keys a leaf of each use may have: ISO 15118-2 (and OCPP) P-256; ISO 15118-20 P-521
# or Ed448 [V2G20-2674, V2G20-2319]
ISO2_KEYS = ("secp256r1",)
ISO20_KEYS = ("secp521r1", "ed448")


class CertsError(Exception):
    """Base of the errors this package raises on bad input."""


class CertificateFormatError(CertsError):
    """Bytes that are not a certificate (or chain) in PEM or DER form."""


class StoreError(CertsError):
    """A store operation that cannot be done (missing item, bad key, wrong password)."""


class InstallRefused(StoreError):  # noqa: N818 - reads as the event it is
    """A certificate the store will not install; ``str()`` says why."""


def check_use(use: str) -> str:
    """``v2g``, ``csms``, ``v2g.<label>`` (a further SECC chain for another V2G root),
    ``v2g20`` or ``v2g20.<label>`` (ISO 15118-20 SECC chains)."""
    if use in LEAF_USES or _EXTRA_V2G.fullmatch(use):
        return use
    raise InstallRefused(
        f"unknown leaf use {use!r} (v2g, csms, v2g.<label>, v2g20 or v2g20.<label>)"
    )


def is_iso20_use(use: str) -> bool:
    """An ISO 15118-20 SECC chain (``v2g20``, ``v2g20.<label>``)."""
    return use == "v2g20" or use.startswith("v2g20.")


def is_secc_use(use: str) -> bool:
    """A SECC chain served to EVs (``v2g``, ``v2g.<label>``, ``v2g20``, ``v2g20.<label>``)."""
    return use == "v2g" or use.startswith("v2g.") or is_iso20_use(use)


def key_kinds(use: str) -> tuple[str, ...]:
    """The key kinds a leaf of ``use`` may have (curve names, ``ed448``)."""
    return ISO20_KEYS if is_iso20_use(use) else ISO2_KEYS


class StoreFiles:
    """A store's files: where its anchors, chains and keys are, and their certificates
    as :class:`certs.der.Cert` (no cryptography)."""

    def __init__(self, root: Path, *, key_password_file: Path | None = None) -> None:
        self.root = Path(root)
        self._password_file = key_password_file

    def key_password(self) -> bytes | None:
        """The key password (from the password file), or None; e.g. for ssl.load_cert_chain."""
        if self._password_file is None:
            return None
        secret = self._password_file.read_bytes().rstrip(b"\r\n")
        if not secret:
            raise StoreError(f"key password file {self._password_file} is empty")
        return secret

    def root_paths(self, kind: str) -> Iterator[Path]:
        """The trust anchor files of ``kind``, sorted."""
        directory = self.root / "trust" / kind
        if not directory.is_dir():
            return
        yield from sorted(directory.glob("[!.]*.pem"))

    def root_certs(self, kind: str) -> list[Cert]:
        """The trust anchors of ``kind`` (a damaged file is skipped, as by ``roots``)."""
        from certs.der import read_certificates

        out = []
        for path in self.root_paths(kind):
            try:
                certs = read_certificates(path.read_bytes())
            except CertificateFormatError:
                continue
            if len(certs) == 1:
                out.append(certs[0])
        return out

    def leaf_uses(self, *, installed_only: bool = True) -> list[str]:
        """The leaf slots present (``v2g``, ``csms``, ``v2g.<label>`` …), sorted."""
        base = self.root / "leaf"
        if not base.is_dir():
            return []
        out = []
        for entry in sorted(base.iterdir()):
            try:
                use = check_use(entry.name)
            except InstallRefused:
                continue
            if not installed_only or self._current_generation(use) is not None:
                out.append(use)
        return out

    def _current_generation(self, use: str) -> Path | None:
        link = self.root / "leaf" / use / "current"
        if not link.is_symlink():
            if link.exists():
                # a store copied without its symlinks (cp -r, copytree): refuse loudly
                # rather than run without the chain (a station would offer no TLS)
                raise StoreError(
                    f"{link} is not a symlink: the store was copied without symlinks; "
                    "copy it with `cp -a` or `rsync -a`, or re-install the leaf"
                )
            return None
        return link.parent / os.readlink(link)

    def leaf_paths(self, use: str) -> tuple[Path, Path]:
        """(chain.pem, key.pem) of the current leaf, e.g. for ``ssl.load_cert_chain``."""
        gen = self._current_generation(use)
        if gen is None:
            raise StoreError(f"no {use} leaf certificate installed")
        return gen / "chain.pem", gen / "key.pem"

    def leaf_certs(self, use: str) -> list[Cert]:
        """The current chain of ``use``, leaf first (as ``leaf_chain``, without cryptography)."""
        from certs.der import read_certificates

        chain_path, _ = self.leaf_paths(use)
        return read_certificates(chain_path.read_bytes())
