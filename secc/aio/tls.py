"""TLS for the SECC (ISO 15118-2 §7.7.4): contexts and the trusted_ca_keys chain choice.

The profile: TLS 1.2 only, cipher suite TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 (OpenSSL
name ``ECDHE-ECDSA-AES128-SHA256``), key exchange on secp256r1, no client authentication;
the server sends the SECC leaf and its sub-CAs, never the V2G root [V2G2-???].

A station may hold SECC chains under several V2G roots.  The EV may name the roots it
trusts in the ClientHello's ``trusted_ca_keys`` extension; :class:`TlsSelector` picks the
first chain (in the EV's order of authorities) whose root or sub-CA matches an
identifier, and the station's first chain when nothing matches or the extension is
absent.  ``keylog_file`` appends the session secrets in the NSS key log format that
Wireshark reads (the ``SSLKEYLOGFILE`` convention): lab use only, it breaks the
confidentiality of every session it records.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs._util import CertsError
from secc.aio.clienthello import ClientHello, IdentifierType, TrustedAuthority

__all__ = [
    "CIPHERS",
    "ECDH_CURVE",
    "SeccChain",
    "Selection",
    "TlsSelector",
    "authority_ids",
    "secc_context",
    "station_tls",
]

log = logging.getLogger(__name__)

CIPHERS = "ECDHE-ECDSA-AES128-SHA256"
CIPHER_SUITE_ID = 0xC023  # TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256
ECDH_CURVE = "prime256v1"


@dataclass(frozen=True, slots=True)
class SeccChain:
    """One SECC credential: ``certfile`` is PEM with the SECC leaf first, then its
    sub-CAs (what is sent to the EV); ``keyfile`` the leaf's private key (PEM);
    ``root`` the V2G root the chain ends under (not sent; used to match
    trusted_ca_keys).  ``cas`` are read from ``certfile`` to match sub-CA identifiers."""

    certfile: Path
    keyfile: Path
    root: x509.Certificate
    password: bytes | None = None
    name: str = ""  # for logs, e.g. the root's CN
    # where the chain's current files are (the certificate store's current generation),
    # asked at every new connection so that a renewed certificate is served at once
    locate: Callable[[], tuple[Path, Path]] | None = field(default=None, compare=False)

    def label(self) -> str:
        if self.name:
            return self.name
        cns = self.root.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return str(cns[0].value) if cns else self.root.subject.rfc4514_string()


def authority_ids(cert: x509.Certificate) -> set[TrustedAuthority]:
    """The trusted_ca_keys identifiers that name ``cert`` (RFC 6066 §6)."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # the subjectPublicKey BIT STRING's content: for EC keys the encoded point, which is
    # the tail of the SubjectPublicKeyInfo DER after its algorithm identifier
    point = cert.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert spki.endswith(point)
    return {
        TrustedAuthority(IdentifierType.KEY_SHA1_HASH, hashlib.sha1(point).digest()),  # noqa: S324
        TrustedAuthority(
            IdentifierType.CERT_SHA1_HASH,
            hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).digest(),  # noqa: S324
        ),
        TrustedAuthority(IdentifierType.X509_NAME, cert.subject.public_bytes()),
    }


def secc_context(chain: SeccChain, *, keylog_file: Path | None = None) -> ssl.SSLContext:
    """A server context with the ISO 15118-2 TLS profile serving ``chain``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(CIPHERS)
    ctx.set_ecdh_curve(ECDH_CURVE)
    ctx.verify_mode = ssl.CERT_NONE  # no client authentication in ISO 15118-2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_TICKET
    ctx.load_cert_chain(str(chain.certfile), str(chain.keyfile), password=chain.password)
    if keylog_file is not None:
        ctx.keylog_filename = str(keylog_file)
    return ctx


def _chain_cas(certfile: Path) -> list[x509.Certificate]:
    certs = x509.load_pem_x509_certificates(certfile.read_bytes())
    return certs[1:]  # the leaf is not a CA the EV could name


@dataclass(frozen=True, slots=True)
class Selection:
    context: ssl.SSLContext
    chain: SeccChain
    reason: str


@dataclass(slots=True)
class TlsSelector:
    """The station's TLS contexts, one per SECC chain, and the choice among them."""

    chains: Sequence[SeccChain]
    keylog_file: Path | None = None
    _contexts: list[ssl.SSLContext] = field(init=False)
    _ids: list[set[TrustedAuthority]] = field(init=False)

    def __post_init__(self) -> None:
        if not self.chains:
            raise ValueError("TLS needs at least one SECC chain")
        self._contexts = [secc_context(c, keylog_file=self.keylog_file) for c in self.chains]
        self._ids = []
        for c in self.chains:
            ids = authority_ids(c.root)
            for ca in _chain_cas(c.certfile):
                ids |= authority_ids(ca)
            self._ids.append(ids)

    @property
    def needs_client_hello(self) -> bool:
        """Only a station with several chains has to look at the ClientHello."""
        return len(self.chains) > 1

    def _fresh(self, index: int, reason: str) -> Selection:
        """A new context for each connection: OpenSSL's server session cache lives in the
        context and grew by one session per handshake (about 67 KB per TLS session in
        bench/footprint.py); ISO 15118-2 sessions are long and rare enough that loading
        the chain again (about a millisecond) costs nothing, and a renewed certificate in
        the store is served from the next session on.  Falls back to the context built at
        start if the files cannot be read now (e.g. mid-rename)."""
        chain = self.chains[index]
        try:
            if chain.locate is not None:
                certfile, keyfile = chain.locate()
                if (certfile, keyfile) != (chain.certfile, chain.keyfile):
                    log.info("SECC chain %s: serving the renewed %s", chain.label(), certfile)
                    chain = replace(chain, certfile=certfile, keyfile=keyfile)
            ctx = secc_context(chain, keylog_file=self.keylog_file)
        except (OSError, ssl.SSLError, ValueError, CertsError) as e:
            log.warning(
                "reloading SECC chain %s failed (%s): serving the one loaded at start",
                chain.label(),
                e,
            )
            ctx = self._contexts[index]
        return Selection(ctx, chain, reason)

    @property
    def default(self) -> Selection:
        return self._fresh(0, "default chain")

    def select(self, hello: ClientHello | None) -> Selection:
        if hello is None or hello.trusted_authorities is None:
            return self._fresh(0, "no trusted_ca_keys")
        for authority in hello.trusted_authorities:
            for index, ids in enumerate(self._ids):
                if authority in ids:
                    return self._fresh(index, f"trusted_ca_keys {authority.identifier_type.name}")
        log.info(
            "trusted_ca_keys names none of the %d installed V2G roots (%d identifiers); "
            "serving the default chain",
            len(self.chains),
            len(hello.trusted_authorities),
        )
        return self._fresh(0, "trusted_ca_keys matched nothing")


def station_tls(
    chains: Sequence[SeccChain], *, keylog_file: Path | None = None
) -> TlsSelector | None:
    """The station's TLS offer at start: a :class:`TlsSelector` over its SECC chains, or
    ``None`` (and a warning saying so) when it holds no SECC certificate: then it offers
    neither TLS nor Plug & Charge, and answers SDP with "no TLS"."""
    if not chains:
        log.warning(
            "no SECC certificate installed: offering no TLS and no Plug & Charge "
            "(SDP answers Security=none; EIM only)"
        )
        return None
    selector = TlsSelector(chains, keylog_file=keylog_file)
    log.info(
        "TLS 1.2 (%s, %s) with %d SECC chain(s) under: %s",
        CIPHERS,
        ECDH_CURVE,
        len(chains),
        ", ".join(c.label() for c in chains),
    )
    if keylog_file is not None:
        log.warning(
            "TLS key log enabled (%s): lab use only, sessions can be decrypted", keylog_file
        )
    return selector
