"""TLS ClientHello parser: cipher suites, versions and the ``trusted_ca_keys`` extension.

Python's :mod:`ssl` does not show the server a ClientHello's extensions, yet ISO 15118-2
lets the EV name the V2G roots it trusts in the ``trusted_ca_keys`` extension (RFC 6066
§6), and a station with several V2G roots must then send the SECC chain under the named
root.  The V2G server peeks at the first bytes of an accepted connection (without
consuming them), hands them to :func:`scan_client_hello` and picks the TLS context before
the handshake starts.

Wire format (RFC 5246 §6.2.1, §7.4.1.2; RFC 6066 §6)::

    record     type(1)=22 | version(2) | length(2) | fragment          (length <= 2^14)
    handshake  msg_type(1)=1 | length(3) | body     (may span several records)
    body       client_version(2) | random(32) | session_id<0..32> |
               cipher_suites<2..2^16-2> | compression_methods<1..2^8-1> |
               [extensions<0..2^16-1>]
    extension  type(2) | length(2) | data
    trusted_ca_keys (type 3)  TrustedAuthority trusted_authorities_list<0..2^16-1>
    TrustedAuthority          identifier_type(1) | identifier
        pre_agreed(0)      nothing
        key_sha1_hash(1)   20 bytes: SHA-1 of the CA's subjectPublicKey (EC: the point)
        x509_name(2)       DistinguishedName<1..2^16-1>: DER of the CA's subject
        cert_sha1_hash(3)  20 bytes: SHA-1 of the CA certificate's DER

Pure: bytes in, a :class:`ClientHello` (or how many bytes are still needed) out; every
malformed input raises :class:`ClientHelloError`.
"""

from __future__ import annotations

from enum import IntEnum

from hal.records import record
from secc.errors import SeccError

__all__ = [
    "EXT_SUPPORTED_VERSIONS",
    "EXT_TRUSTED_CA_KEYS",
    "ClientHello",
    "ClientHelloError",
    "IdentifierType",
    "NeedMore",
    "TrustedAuthority",
    "encode_trusted_ca_keys",
    "scan_client_hello",
]

RECORD_HANDSHAKE = 22
HANDSHAKE_CLIENT_HELLO = 1
RECORD_HEADER = 5
MAX_RECORD = 1 << 14
MAX_HELLO = 1 << 16  # a bound on what a peer can make the station read before the handshake
EXT_TRUSTED_CA_KEYS = 3
EXT_SUPPORTED_VERSIONS = 43
SHA1_LENGTH = 20


class ClientHelloError(SeccError):
    """The first bytes of the connection are not a well-formed TLS ClientHello."""


class IdentifierType(IntEnum):
    PRE_AGREED = 0
    KEY_SHA1_HASH = 1
    X509_NAME = 2
    CERT_SHA1_HASH = 3


@record
class TrustedAuthority:
    identifier_type: IdentifierType
    identifier: bytes = b""


@record
class ClientHello:
    client_version: int  # legacy_version: 0x0303 for TLS 1.2 (and 1.3)
    cipher_suites: tuple[int, ...]
    extensions: tuple[tuple[int, bytes], ...]  # (type, data) in wire order
    trusted_authorities: tuple[TrustedAuthority, ...] | None  # None: extension absent
    supported_versions: tuple[int, ...]  # from the supported_versions extension, if any
    length: int  # bytes of the records that carried the ClientHello

    def offers_version(self, version: int) -> bool:
        """Whether the client offers ``version`` (0x0303: TLS 1.2, 0x0304: TLS 1.3)."""
        if self.supported_versions:
            return version in self.supported_versions
        return version <= self.client_version


@record
class NeedMore:
    """The input is a valid prefix; ``total`` bytes are needed to go on."""

    total: int


class _Reader:
    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def take(self, n: int, field: str) -> bytes:
        if self.pos + n > len(self.data):
            raise ClientHelloError(
                f"{self.what}: {field} needs {n} bytes, {len(self.data) - self.pos} left"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int, field: str) -> int:
        return int.from_bytes(self.take(n, field), "big")

    def vector(self, length_bytes: int, field: str) -> bytes:
        return self.take(self.uint(length_bytes, f"{field} length"), field)

    def done(self) -> bool:
        return self.pos == len(self.data)

    def end(self) -> None:
        if not self.done():
            raise ClientHelloError(f"{self.what}: {len(self.data) - self.pos} trailing bytes")


def _handshake_bytes(data: bytes) -> tuple[bytes, int] | NeedMore:
    """Reassemble the first handshake message from the records at the start of ``data``:
    ``(message, bytes of records used)`` or how much is needed."""
    message = bytearray()
    pos = 0
    while True:
        if len(data) < pos + RECORD_HEADER:
            return NeedMore(pos + RECORD_HEADER)
        ctype, major, length = data[pos], data[pos + 1], int.from_bytes(data[pos + 3 : pos + 5])
        if ctype != RECORD_HANDSHAKE:
            raise ClientHelloError(f"record content type {ctype}, expected 22 (handshake)")
        if major != 3:
            raise ClientHelloError(f"record version {major}.{data[pos + 2]} is not TLS")
        if not 0 < length <= MAX_RECORD:
            raise ClientHelloError(f"record length {length} outside 1..{MAX_RECORD}")
        if len(data) < pos + RECORD_HEADER + length:
            return NeedMore(pos + RECORD_HEADER + length)
        message += data[pos + RECORD_HEADER : pos + RECORD_HEADER + length]
        pos += RECORD_HEADER + length
        if len(message) >= 4:
            if message[0] != HANDSHAKE_CLIENT_HELLO:
                raise ClientHelloError(f"handshake type {message[0]}, expected 1 (ClientHello)")
            total = 4 + int.from_bytes(message[1:4])
            if total > MAX_HELLO:
                raise ClientHelloError(f"ClientHello of {total} bytes is above {MAX_HELLO}")
            if len(message) >= total:
                if len(message) > total:
                    raise ClientHelloError("data after the ClientHello in its last record")
                return bytes(message), pos


def _trusted_authorities(data: bytes) -> tuple[TrustedAuthority, ...]:
    outer = _Reader(data, "trusted_ca_keys")
    r = _Reader(outer.vector(2, "trusted_authorities_list"), "trusted_ca_keys")
    outer.end()
    found = []
    while not r.done():
        kind = r.uint(1, "identifier_type")
        if kind == IdentifierType.PRE_AGREED:
            found.append(TrustedAuthority(IdentifierType.PRE_AGREED))
        elif kind in (IdentifierType.KEY_SHA1_HASH, IdentifierType.CERT_SHA1_HASH):
            found.append(TrustedAuthority(IdentifierType(kind), r.take(SHA1_LENGTH, "SHA1Hash")))
        elif kind == IdentifierType.X509_NAME:
            name = r.vector(2, "DistinguishedName")
            if not name:
                raise ClientHelloError("trusted_ca_keys: empty DistinguishedName")
            found.append(TrustedAuthority(IdentifierType.X509_NAME, name))
        else:
            raise ClientHelloError(f"trusted_ca_keys: unknown identifier_type {kind}")
    return tuple(found)


def _supported_versions(data: bytes) -> tuple[int, ...]:
    r = _Reader(data, "supported_versions")
    body = r.vector(1, "versions")
    r.end()
    if not body or len(body) % 2:
        raise ClientHelloError(f"supported_versions: list of {len(body)} bytes")
    return tuple(int.from_bytes(body[i : i + 2]) for i in range(0, len(body), 2))


def scan_client_hello(data: bytes) -> ClientHello | NeedMore:
    """Parse the ClientHello at the start of ``data`` (the first bytes a TLS client
    sends), or say how many bytes are needed; raise :class:`ClientHelloError` if the
    bytes cannot be the start of a ClientHello."""
    got = _handshake_bytes(bytes(data))
    if isinstance(got, NeedMore):
        return got
    message, used = got
    r = _Reader(message[4:], "ClientHello")
    client_version = r.uint(2, "client_version")
    r.take(32, "random")
    session_id = r.vector(1, "session_id")
    if len(session_id) > 32:
        raise ClientHelloError(f"session_id of {len(session_id)} bytes")
    suites = r.vector(2, "cipher_suites")
    if not suites or len(suites) % 2:
        raise ClientHelloError(f"cipher_suites list of {len(suites)} bytes")
    if not r.vector(1, "compression_methods"):
        raise ClientHelloError("empty compression_methods")
    extensions: list[tuple[int, bytes]] = []
    if not r.done():
        ext = _Reader(r.vector(2, "extensions"), "extensions")
        r.end()
        while not ext.done():
            etype = ext.uint(2, "extension type")
            extensions.append((etype, ext.vector(2, f"extension {etype}")))
    types = [t for t, _ in extensions]
    if len(set(types)) != len(types):
        raise ClientHelloError("an extension type appears twice")
    authorities = None
    versions: tuple[int, ...] = ()
    for etype, body in extensions:
        if etype == EXT_TRUSTED_CA_KEYS:
            authorities = _trusted_authorities(body)
        elif etype == EXT_SUPPORTED_VERSIONS:
            versions = _supported_versions(body)
    return ClientHello(
        client_version=client_version,
        cipher_suites=tuple(int.from_bytes(suites[i : i + 2]) for i in range(0, len(suites), 2)),
        extensions=tuple(extensions),
        trusted_authorities=authorities,
        supported_versions=versions,
        length=used,
    )


def encode_trusted_ca_keys(authorities: tuple[TrustedAuthority, ...]) -> bytes:
    """The extension_data of a ``trusted_ca_keys`` extension (for test clients and EV
    simulators; the station only parses it)."""
    body = bytearray()
    for a in authorities:
        body.append(a.identifier_type)
        if a.identifier_type == IdentifierType.X509_NAME:
            body += len(a.identifier).to_bytes(2, "big") + a.identifier
        elif a.identifier_type != IdentifierType.PRE_AGREED:
            if len(a.identifier) != SHA1_LENGTH:
                raise ValueError("a SHA1Hash identifier is 20 bytes")
            body += a.identifier
    return len(body).to_bytes(2, "big") + bytes(body)
