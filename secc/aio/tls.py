"""TLS for the SECC (ISO 15118-2 §7.7.4, ISO 15118-20 §7.7.3): contexts and the choice of
protocol version and chain per connection.

ISO 15118-2 profile: TLS 1.2 only, cipher suite TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256
(OpenSSL name ``ECDHE-ECDSA-AES128-SHA256``), key exchange on secp256r1, no client
authentication; the server sends the SECC leaf and its sub-CAs, never the V2G root.

ISO 15118-20 requires TLS 1.3 (never 1.2) with its own SECC chain (a P-521 or Ed448 leaf
under a -20 V2G root), cipher suites TLS_AES_256_GCM_SHA384 and
TLS_CHACHA20_POLY1305_SHA256 [V2G20-2458], key exchange on secp521r1 or x448 and
signatures ecdsa_secp521r1_sha512 or ed448 [V2G20-2319, V2G20-2674].  One TLS port serves
both: the station peeks at the ClientHello, and when it offers TLS 1.3 (supported_versions)
and the EVSE offers -20, the connection gets a TLS 1.3-only context with the -20 chain;
otherwise the TLS 1.2-only ISO 15118-2 context.  The session then negotiates -20 only if
TLS 1.3 was really negotiated (``SessionConfig.tls13``).  Limits of Python's ``ssl``
(3.11): it cannot restrict the TLS 1.3 suites, groups or signature algorithms, so
OpenSSL's defaults stay (suites AES-256-GCM, ChaCha20-Poly1305, AES-128-GCM with the
server's order preferred, i.e. AES-256-GCM first; groups x25519, secp256r1, x448,
secp521r1, secp384r1; the signature follows from the leaf key: a P-521 leaf signs with
ecdsa_secp521r1_sha512); a connection that ends up with TLS_AES_128_GCM_SHA256 (an EV
offering only that suite) is closed right after the handshake.

Mutual authentication (ISO 15118-20 §7.7.3, Plug & Charge): on TLS 1.3 connections the
station requests the EV's certificate (``CERT_OPTIONAL``: an EIM-only EV may send none)
and OpenSSL verifies the chain the EV sends against the -20 OEM and V2G roots the
certificate store holds *now* (``TlsSelector.vehicle_roots``, asked for every connection,
so roots installed or deleted over OCPP apply to the next handshake); a chain that does
not verify fails the handshake with a TLS alert (unknown_ca, bad_certificate,
certificate_expired, ...).  With no -20 OEM/V2G root installed no certificate is
requested.  After the handshake the verified chain is read back and checked against the
-20 certificate rules (:func:`vehicle_chain_refusal`: P-521 or Ed448 keys, ECDSA with
SHA-512 [V2G20-2674], at most three sub-CAs, the CA constraints); a chain outside them closes the
connection before any session (Python's ``ssl`` cannot send an alert of its own choice
after the handshake).  The verified chain, leaf first and without the trust anchor, goes
to the session as ``SessionConfig.vehicle_chain``.

Reading the chain on Python 3.11: ``getpeercert(binary_form=True)`` gives only the leaf,
and ``SSLObject.get_verified_chain()`` is public from 3.13 on; but the C object under an
``SSLObject`` (``_sslobj``) has had ``get_verified_chain()`` since 3.10 (CPython
bpo-18233, internal until 3.13), returning the chain OpenSSL built and verified
(``SSL_get0_verified_chain``), sub-CAs included.  :func:`verified_chain` uses the public
method where it exists and the internal one otherwise; only when neither is there does
it fall back to the leaf alone (and says so in the log).  Rebuilding the chain from the
store instead cannot work: the EV's OEM sub-CAs are in its Certificate message, not in
the store, and that message is encrypted in TLS 1.3.

A station may hold SECC chains under several V2G roots.  The EV may name the roots it
trusts in the ClientHello's ``trusted_ca_keys`` extension; :class:`TlsSelector` picks the
first chain (in the EV's order of authorities) whose root or sub-CA matches an
identifier, and the station's first chain when nothing matches or the extension is
absent.  ``keylog_file`` appends the session secrets in the NSS key log format that
Wireshark reads (the ``SSLKEYLOGFILE`` convention): lab use only, it breaks the
confidentiality of every session it records.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import InitVar, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certs.der import Cert, read_certificates
from certs.files import CertsError
from hal.records import record
from secc.aio.clienthello import ClientHello, IdentifierType, TrustedAuthority

if TYPE_CHECKING:  # cryptography loads with the first vehicle chain (mutual TLS 1.3)
    from cryptography import x509

    # a certificate as the station's start-up path reads it (certs.der, no
    # cryptography), or as cryptography reads it (tests, tools)
    AnyCert = Cert | x509.Certificate
    VehicleRoots = Callable[[], Sequence[AnyCert]]

__all__ = [
    "CIPHERS",
    "ECDH_CURVE",
    "TLS13",
    "TLS13_SUITES",
    "LoadedChains",
    "SeccChain",
    "Selection",
    "TlsSelector",
    "authority_ids",
    "secc_context",
    "secc_context13",
    "station_tls",
    "vehicle_chain_refusal",
    "verified_chain",
    "without_anchor",
]

log = logging.getLogger(__name__)

CIPHERS = "ECDHE-ECDSA-AES128-SHA256"
CIPHER_SUITE_ID = 0xC023  # TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256
ECDH_CURVE = "prime256v1"
TLS13 = 0x0304  # supported_versions value of TLS 1.3
# ISO 15118-20 TLS 1.3 cipher suites [V2G20-2458]; OpenSSL also enables
# TLS_AES_128_GCM_SHA256, which Python's ssl cannot switch off: a connection that
# negotiated it is closed right after the handshake (Selection.refusal)
TLS13_SUITES = ("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
_ENCODING_DER = 2  # _ssl.ENCODING_DER (not re-exported by ssl) for _ssl.Certificate


@record
class SeccChain:
    """One SECC credential: ``certfile`` is PEM with the SECC leaf first, then its
    sub-CAs (what is sent to the EV); ``keyfile`` the leaf's private key (PEM);
    ``root`` the V2G root the chain ends under (not sent; used to match
    trusted_ca_keys; a :class:`certs.der.Cert` or a cryptography certificate).
    ``cas`` are read from ``certfile`` to match sub-CA identifiers."""

    certfile: Path
    keyfile: Path
    root: AnyCert
    password: bytes | None = None
    name: str = ""  # for logs, e.g. the root's CN
    # where the chain's current files are (the certificate store's current generation),
    # asked at every new connection so that a renewed certificate is served at once
    locate: Callable[[], tuple[Path, Path]] | None = field(default=None, compare=False)

    def label(self) -> str:
        if self.name:
            return self.name
        root = light(self.root)
        return root.common_name or root.subject_der.hex()


def light(cert: AnyCert) -> Cert:
    """``cert`` as :class:`certs.der.Cert` (a cryptography certificate is re-read)."""
    if isinstance(cert, Cert):
        return cert
    return Cert(cert.public_bytes(_der_encoding()))


def cert_der(cert: AnyCert) -> bytes:
    return cert.der if isinstance(cert, Cert) else cert.public_bytes(_der_encoding())


def _der_encoding() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def authority_ids(cert: AnyCert) -> set[TrustedAuthority]:
    """The trusted_ca_keys identifiers that name ``cert`` (RFC 6066 §6): the SHA-1 of the
    subjectPublicKey BIT STRING's content (for EC keys the encoded point, for Ed448 the
    raw key), of the certificate's DER, and the subject Name's DER."""
    import hashlib  # (here: not on `secc run`'s start path)

    c = light(cert)
    return {
        TrustedAuthority(IdentifierType.KEY_SHA1_HASH, hashlib.sha1(c.public_key_bits).digest()),  # noqa: S324
        TrustedAuthority(IdentifierType.CERT_SHA1_HASH, hashlib.sha1(c.der).digest()),  # noqa: S324
        TrustedAuthority(IdentifierType.X509_NAME, c.subject_der),
    }


# loaded chains: (str(certfile), str(keyfile)) -> a fresh PROTOCOL_TLS_SERVER context with
# that chain and key loaded and nothing else set (secc.preflight's check of the SECC
# chains makes them: `secc run` has each chain's key decoded once, issue 17)
LoadedChains = dict[tuple[str, str], ssl.SSLContext]


def _context(chain: SeccChain, loaded: LoadedChains | None) -> tuple[ssl.SSLContext, bool]:
    """A server context for ``chain``: the one ``loaded`` holds for its files (taken out:
    a context serves one profile), or a new one; and whether the chain is in it."""
    if loaded:
        ctx = loaded.pop((str(chain.certfile), str(chain.keyfile)), None)
        if ctx is not None:
            return ctx, True
    return ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), False


def secc_context(
    chain: SeccChain, *, keylog_file: Path | None = None, loaded: LoadedChains | None = None
) -> ssl.SSLContext:
    """A server context with the ISO 15118-2 TLS profile serving ``chain`` (``loaded``:
    contexts with their chain already loaded, see :data:`LoadedChains`; the profile's
    settings are the same whether the chain was loaded before or after them)."""
    ctx, has_chain = _context(chain, loaded)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(CIPHERS)
    ctx.set_ecdh_curve(ECDH_CURVE)
    ctx.verify_mode = ssl.CERT_NONE  # no client authentication in ISO 15118-2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_TICKET
    if not has_chain:
        ctx.load_cert_chain(str(chain.certfile), str(chain.keyfile), password=chain.password)
    if keylog_file is not None:
        from secc.aio.keylog import enable_keylog  # (here: a lab setting, off by default)

        enable_keylog(ctx, keylog_file)  # 0600, appended per handshake
    return ctx


def secc_context13(
    chain: SeccChain,
    *,
    keylog_file: Path | None = None,
    vehicle_roots: Sequence[AnyCert] = (),
    loaded: LoadedChains | None = None,
) -> ssl.SSLContext:
    """A server context for ISO 15118-20: TLS 1.3 only, serving the -20 ``chain``; with
    ``vehicle_roots`` it requests the EV's certificate (optional) and verifies it
    against them (strict X.509 checks, no partial chains); ``loaded`` as for
    :func:`secc_context`."""
    ctx, has_chain = _context(chain, loaded)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    if vehicle_roots:
        ctx.load_verify_locations(cadata=b"".join(cert_der(c) for c in vehicle_roots))
        ctx.verify_mode = ssl.CERT_OPTIONAL  # EIM works without a vehicle certificate
        ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    else:
        ctx.verify_mode = ssl.CERT_NONE  # nothing to verify a vehicle certificate with
    ctx.options |= (
        ssl.OP_NO_COMPRESSION
        | ssl.OP_NO_RENEGOTIATION
        | ssl.OP_NO_TICKET
        | ssl.OP_CIPHER_SERVER_PREFERENCE
    )
    if not has_chain:
        ctx.load_cert_chain(str(chain.certfile), str(chain.keyfile), password=chain.password)
    if keylog_file is not None:
        from secc.aio.keylog import enable_keylog  # (here: a lab setting, off by default)

        enable_keylog(ctx, keylog_file)  # 0600, appended per handshake
    return ctx


def verified_chain(ssl_object: Any) -> tuple[x509.Certificate, ...]:
    """The EV's certificate chain as OpenSSL verified it in the handshake, leaf first,
    ending with the station's trust anchor; empty when the EV sent no certificate (see
    the module docstring for how this works on Python 3.11)."""
    from cryptography import x509

    if ssl_object is None or ssl_object.getpeercert(binary_form=True) is None:
        return ()
    getter = getattr(ssl_object, "get_verified_chain", None)  # Python >= 3.13
    if getter is None:  # 3.10-3.12: the same method, internal
        getter = getattr(getattr(ssl_object, "_sslobj", None), "get_verified_chain", None)
    if getter is None:
        log.warning("this Python cannot read the verified TLS chain: keeping the leaf only")
        leaf = x509.load_der_x509_certificate(ssl_object.getpeercert(binary_form=True))
        return (leaf,)
    ders = [
        item if isinstance(item, bytes) else item.public_bytes(_ENCODING_DER) for item in getter()
    ]
    return tuple(x509.load_der_x509_certificate(d) for d in ders)


def without_anchor(chain: Sequence[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    """``chain`` without its last certificate when that is self-signed (the trust anchor:
    the station's own, not what the EV sent)."""
    if len(chain) > 1 and chain[-1].subject == chain[-1].issuer:
        return tuple(chain[:-1])
    return tuple(chain)


def vehicle_chain_refusal(
    chain: Sequence[x509.Certificate], utc_now: dt.datetime | None = None
) -> str | None:
    """Why a vehicle certificate chain OpenSSL verified (leaf first, ending with the trust
    anchor) is outside ISO 15118-20's certificate rules (None: it is inside), judged by the
    same check as the contract and provisioning chains (:func:`certs.validate.validate_chain`
    with ``suite="iso20"``): P-521 keys signed with ECDSA-SHA-512, or Ed448, from the root
    down [V2G20-2674], at most three sub-CAs, CA constraints, a leaf fit for signing."""
    if not chain:
        return None
    if len(chain) < 2 or chain[-1].subject != chain[-1].issuer:
        return "the verified vehicle chain does not end at a root"
    from certs._util import der
    from certs.validate import validate_chain  # (here: only -20 mutual TLS needs it)

    verdict = validate_chain(
        der(chain[0]),
        [der(c) for c in chain[1:-1]],
        [chain[-1]],
        utc_now or dt.datetime.now(dt.UTC),
        profile="oem",
        suite="iso20",
    )
    return None if verdict.ok else f"vehicle chain: {verdict.response_code}: {verdict.reason}"


def _chain_cas(certfile: Path) -> list[Cert]:
    certs = read_certificates(certfile.read_bytes())
    return certs[1:]  # the leaf is not a CA the EV could name


@record
class Selection:
    context: ssl.SSLContext
    chain: SeccChain
    reason: str
    tls13: bool = False  # the ISO 15118-20 context (TLS 1.3 only, -20 chain)

    def refusal(
        self,
        cipher: tuple[str, str, int] | None,
        vehicle_chain: Sequence[x509.Certificate] = (),
    ) -> str | None:
        """Why a completed handshake is outside the profile (None: it is not): a suite
        outside ISO 15118-20's, or a vehicle chain (as verified, ending with the trust
        anchor) outside its certificate rules."""
        if self.tls13 and (cipher is None or cipher[0] not in TLS13_SUITES):
            name = cipher[0] if cipher else None
            return f"TLS 1.3 cipher suite {name} is not one of ISO 15118-20's {TLS13_SUITES}"
        if self.tls13 and vehicle_chain:
            return vehicle_chain_refusal(vehicle_chain)
        return None


def _authorities_of(chains: Sequence[SeccChain]) -> list[list[AnyCert]]:
    """Per chain, the certificates an EV's trusted_ca_keys may name: its V2G root and the
    sub-CAs in its file (read now: the chain as served from the start)."""
    return [[c.root, *_chain_cas(c.certfile)] for c in chains]


def _ids_of(authorities: list[list[AnyCert]]) -> list[set[TrustedAuthority]]:
    out = []
    for certs in authorities:
        ids: set[TrustedAuthority] = set()
        for cert in certs:
            ids |= authority_ids(cert)
        out.append(ids)
    return out


@dataclass(slots=True)
class TlsSelector:
    """The station's TLS contexts, one per SECC chain, and the choice among them:
    ``chains`` are the ISO 15118-2 chains (TLS 1.2), ``iso20_chains`` the ISO 15118-20
    ones (TLS 1.3), offered only while ``offer_tls13`` (the EVSE offers -20)."""

    chains: Sequence[SeccChain]
    keylog_file: Path | None = None
    iso20_chains: Sequence[SeccChain] = ()
    offer_tls13: bool = True
    # the -20 OEM and V2G roots a vehicle certificate is verified against, asked for
    # every TLS 1.3 connection (None or empty: no client certificate is requested)
    vehicle_roots: VehicleRoots | None = None
    # the chains as secc.preflight loaded them (LoadedChains): the start contexts take
    # them instead of loading each chain again
    loaded: InitVar[LoadedChains | None] = None
    # the vehicle roots as the caller read them at start (None: asked from vehicle_roots)
    vehicle_roots_now: InitVar[Sequence[AnyCert] | None] = None
    _contexts: list[ssl.SSLContext] = field(init=False)
    _contexts13: list[ssl.SSLContext] = field(init=False)
    # the certificates trusted_ca_keys may name, per chain, read at start; their
    # identifiers (SHA-1 hashes) are computed for the first ClientHello naming any
    # (hashlib and the hashing are not on `secc run`'s start path, issue 17)
    _authorities: list[list[AnyCert]] = field(init=False)
    _authorities13: list[list[AnyCert]] = field(init=False)
    _ids_made: list[set[TrustedAuthority]] | None = field(init=False, default=None)
    _ids13_made: list[set[TrustedAuthority]] | None = field(init=False, default=None)

    def __post_init__(
        self, loaded: LoadedChains | None, vehicle_roots_now: Sequence[AnyCert] | None
    ) -> None:
        if not self.chains and not self.iso20_chains:
            raise ValueError("TLS needs at least one SECC chain")
        keylog = self.keylog_file
        self._contexts = [secc_context(c, keylog_file=keylog, loaded=loaded) for c in self.chains]
        self._authorities = _authorities_of(self.chains)
        if vehicle_roots_now is None or self.vehicle_roots is None:
            roots = self._vehicle_roots_now()
        else:
            roots = tuple(vehicle_roots_now)
        self._contexts13 = [
            secc_context13(c, keylog_file=keylog, vehicle_roots=roots, loaded=loaded)
            for c in self.iso20_chains
        ]
        self._authorities13 = _authorities_of(self.iso20_chains)

    @property
    def _ids(self) -> list[set[TrustedAuthority]]:
        """The trusted_ca_keys identifiers of each ISO 15118-2 chain."""
        if self._ids_made is None:
            self._ids_made = _ids_of(self._authorities)
        return self._ids_made

    @property
    def _ids13(self) -> list[set[TrustedAuthority]]:
        """The trusted_ca_keys identifiers of each ISO 15118-20 chain."""
        if self._ids13_made is None:
            self._ids13_made = _ids_of(self._authorities13)
        return self._ids13_made

    def for_evse(self, *, offer_tls13: bool) -> TlsSelector:
        """The same chains for an EVSE that does (not) offer ISO 15118-20."""
        if offer_tls13 == self.offer_tls13:
            return self
        # the same chains and start-up contexts, not loaded again (each load decodes the
        # key: ~10M instructions of `secc run`'s start, issue 17)
        twin = copy.copy(self)
        twin.offer_tls13 = offer_tls13
        return twin

    @property
    def tls13(self) -> bool:
        """TLS 1.3 (ISO 15118-20) is offered: a -20 chain and an EVSE offering -20."""
        return self.offer_tls13 and bool(self.iso20_chains)

    @property
    def usable(self) -> bool:
        """Some connection can be served (a -2 chain, or -20 offered with its chain)."""
        return bool(self.chains) or self.tls13

    @property
    def needs_client_hello(self) -> bool:
        """A station with several chains, or offering TLS 1.3 beside 1.2, has to look at
        the ClientHello."""
        return len(self.chains) > 1 or self.tls13

    def labels(self) -> list[str]:
        out = [c.label() for c in self.chains]
        if self.tls13:
            out += [f"{c.label()} (TLS 1.3)" for c in self.iso20_chains]
        return out

    def _vehicle_roots_now(self) -> tuple[AnyCert, ...]:
        if self.vehicle_roots is None:
            return ()
        try:
            return tuple(self.vehicle_roots())
        except (OSError, ValueError, CertsError) as e:
            log.error("reading the vehicle trust anchors failed (%s): none this time", e)
            return ()

    def _fresh13(self, index: int, reason: str) -> Selection:
        """As :meth:`_fresh`, for the ISO 15118-20 chains (TLS 1.3), with the vehicle
        trust anchors of this moment."""
        chain = self.iso20_chains[index]
        try:
            if chain.locate is not None:
                certfile, keyfile = chain.locate()
                if (certfile, keyfile) != (chain.certfile, chain.keyfile):
                    log.info("SECC chain %s: serving the renewed %s", chain.label(), certfile)
                    chain = replace(chain, certfile=certfile, keyfile=keyfile)
            ctx = secc_context13(
                chain, keylog_file=self.keylog_file, vehicle_roots=self._vehicle_roots_now()
            )
        except (OSError, ssl.SSLError, ValueError, CertsError) as e:
            log.warning(
                "reloading SECC chain %s failed (%s): serving the one loaded at start",
                chain.label(),
                e,
            )
            ctx = self._contexts13[index]
        return Selection(ctx, chain, reason, tls13=True)

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
        if not self.chains:  # a -20-only station: TLS 1.3 or nothing
            return self._fresh13(0, "default chain (TLS 1.3 only)")
        return self._fresh(0, "default chain")

    def select(self, hello: ClientHello | None) -> Selection:
        if self.tls13 and hello is not None and hello.offers_version(TLS13):
            return self._select13(hello)
        if not self.chains:
            return self._fresh13(0, "TLS 1.3 not offered by the EV; only -20 chains installed")
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

    def _select13(self, hello: ClientHello) -> Selection:
        for authority in hello.trusted_authorities or ():
            for index, ids in enumerate(self._ids13):
                if authority in ids:
                    return self._fresh13(
                        index, f"TLS 1.3, trusted_ca_keys {authority.identifier_type.name}"
                    )
        return self._fresh13(0, "TLS 1.3 offered")


def station_tls(
    chains: Sequence[SeccChain],
    *,
    keylog_file: Path | None = None,
    iso20_chains: Sequence[SeccChain] = (),
    vehicle_roots: VehicleRoots | None = None,
    loaded: LoadedChains | None = None,
    vehicle_roots_now: Sequence[AnyCert] | None = None,
) -> TlsSelector | None:
    """The station's TLS offer at start: a :class:`TlsSelector` over its SECC chains, or
    ``None`` (and a warning saying so) when it holds no SECC certificate: then it offers
    neither TLS nor Plug & Charge, and answers SDP with "no TLS".  ``loaded``: the chains
    as the start-up checks loaded them (:data:`LoadedChains`); ``vehicle_roots_now``: what
    ``vehicle_roots()`` gives now, when the caller has just read it."""
    if not chains and not iso20_chains:
        log.warning(
            "no SECC certificate installed: offering no TLS and no Plug & Charge "
            "(SDP answers Security=none; EIM only)"
        )
        return None
    selector = TlsSelector(
        chains,
        keylog_file=keylog_file,
        iso20_chains=iso20_chains,
        vehicle_roots=vehicle_roots,
        loaded=loaded,
        vehicle_roots_now=vehicle_roots_now,
    )
    if chains:
        log.info(
            "TLS 1.2 (%s, %s) with %d SECC chain(s) under: %s",
            CIPHERS,
            ECDH_CURVE,
            len(chains),
            ", ".join(c.label() for c in chains),
        )
    if iso20_chains and log.isEnabledFor(logging.INFO):  # (it reads the store's roots)
        log.info(
            "TLS 1.3 for ISO 15118-20 with %d SECC chain(s): %s",
            len(iso20_chains),
            ", ".join(c.label() for c in iso20_chains),
        )
        n = len(selector._vehicle_roots_now())
        log.info(
            "TLS 1.3: %s",
            f"vehicle certificates requested (optional) and verified against {n} -20 "
            "OEM/V2G root(s)"
            if n
            else "no -20 OEM/V2G root installed: no vehicle certificate requested",
        )
    if keylog_file is not None:
        log.warning(
            "TLS key log enabled (%s): lab use only, sessions can be decrypted", keylog_file
        )
    return selector
