"""A small X.509 reader without ``cryptography``: what ``secc run`` needs before it is
ready (issue 17: importing cryptography costs ~40 ms and ~10 MiB, more than the whole
start-up budget allows).  Pure.

It reads the PEM blocks and the DER of a certificate far enough for the start-up path:
issuer and subject (compared as cryptography compares names: attribute type and value,
whatever the string type), the subject public key (algorithm, curve, the BIT STRING's
content for RFC 6066 trusted_ca_keys), the validity dates and the common name.  It checks
the structure it walks (lengths inside their parent, the tags it expects) and raises
:class:`~certs.files.CertificateFormatError` otherwise; it verifies no signature
(``ssl`` and :mod:`certs.validate` do that).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re

from certs.files import MAX_CERT_FILE, CertificateFormatError

__all__ = ["Cert", "parse", "pem_blocks", "read_certificates"]

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s*(.*?)-----END CERTIFICATE-----", re.DOTALL)
PEM_MARKER = b"-----BEGIN CERTIFICATE-----"

# DER of the OIDs the start-up path looks at (content octets only)
OID_CN = bytes.fromhex("550403")
OID_EC_PUBLIC_KEY = bytes.fromhex("2a8648ce3d0201")
OID_ED448 = bytes.fromhex("2b6571")
OID_ED25519 = bytes.fromhex("2b6570")
CURVES = {
    bytes.fromhex("2a8648ce3d030107"): "secp256r1",
    bytes.fromhex("2b81040022"): "secp384r1",
    bytes.fromhex("2b81040023"): "secp521r1",
}
# string types of a name's attribute values -> codec (cryptography compares the decoded
# value, not the tag: a PrintableString and a UTF8String with the same text are equal)
_STRINGS = {0x0C: "utf-8", 0x13: "latin-1", 0x14: "latin-1", 0x16: "latin-1", 0x1E: "utf-16-be",
            0x1C: "utf-32-be"}  # fmt: skip


def _tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the element at ``pos``."""
    if pos + 2 > end:
        raise CertificateFormatError("truncated DER")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise CertificateFormatError("DER tag number too large")
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > end:
            raise CertificateFormatError("bad DER length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > end:
        raise CertificateFormatError("DER element runs past its parent")
    return tag, pos, pos + length


def _expect(data: bytes, pos: int, end: int, tag: int, what: str) -> tuple[int, int]:
    got, start, stop = _tlv(data, pos, end)
    if got != tag:
        raise CertificateFormatError(f"{what}: tag 0x{got:02x}, expected 0x{tag:02x}")
    return start, stop


def _name(data: bytes, start: int, end: int) -> tuple[frozenset[tuple[bytes, object]], ...]:
    """A Name (SEQUENCE OF SET OF {type, value}) as comparable RDNs."""
    rdns = []
    pos = start
    while pos < end:
        s, e = _expect(data, pos, end, 0x31, "RDN")
        attrs = set()
        p = s
        while p < e:
            a, b = _expect(data, p, e, 0x30, "attribute")
            o1, o2 = _expect(data, a, b, 0x06, "attribute type")
            tag, v1, v2 = _tlv(data, o2, b)
            raw = data[v1:v2]
            codec = _STRINGS.get(tag)
            value: object = raw
            if codec is not None:
                try:
                    value = raw.decode(codec)
                except UnicodeDecodeError:
                    value = raw
            attrs.add((data[o1:o2], value))
            p = b
        rdns.append(frozenset(attrs))
        pos = e
    return tuple(rdns)


def _time(data: bytes, tag: int, start: int, end: int) -> dt.datetime:
    text = data[start:end].decode("ascii", "replace")
    try:
        if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ (RFC 5280: 50-99 -> 19xx)
            when = dt.datetime.strptime(text, "%y%m%d%H%M%SZ")
            if when.year >= 2050:
                when = when.replace(year=when.year - 100)
        elif tag == 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
            when = dt.datetime.strptime(text, "%Y%m%d%H%M%SZ")
        else:
            raise ValueError(f"tag 0x{tag:02x}")
    except ValueError as exc:
        raise CertificateFormatError(f"bad validity time {text!r}") from exc
    return when.replace(tzinfo=dt.UTC)


class Cert:
    """The parts of one certificate the start-up path reads (see the module docstring)."""

    __slots__ = (
        "_issuer",
        "_subject",
        "_validity",
        "curve",
        "der",
        "key_algorithm",
        "public_key_bits",
        "spki",
        "subject_der",
    )  # fmt: skip

    def __init__(self, der: bytes) -> None:
        if not der or len(der) > MAX_CERT_FILE:
            raise CertificateFormatError(f"{len(der)} bytes is not a certificate")
        self.der = der
        end = len(der)
        c1, c2 = _expect(der, 0, end, 0x30, "Certificate")
        if c2 != end:
            raise CertificateFormatError("trailing bytes after the certificate")
        t1, t2 = _expect(der, c1, c2, 0x30, "TBSCertificate")
        tag, _, e = _tlv(der, t1, t2)
        pos = e if tag == 0xA0 else t1  # version [0] EXPLICIT, optional
        _, pos = _expect(der, pos, t2, 0x02, "serialNumber")
        _, pos = _expect(der, pos, t2, 0x30, "signature")
        i1, i2 = _expect(der, pos, t2, 0x30, "issuer")
        self._issuer = (i1, i2)
        v1, v2 = _expect(der, i2, t2, 0x30, "validity")
        self._validity = (v1, v2)
        s1, s2 = _expect(der, v2, t2, 0x30, "subject")
        self._subject = (s1, s2)
        self.subject_der = der[v2:s2]  # the whole TLV
        k1, k2 = _expect(der, s2, t2, 0x30, "subjectPublicKeyInfo")
        self.spki = der[s2:k2]
        a1, a2 = _expect(der, k1, k2, 0x30, "algorithm")
        o1, o2 = _expect(der, a1, a2, 0x06, "algorithm OID")
        self.key_algorithm = der[o1:o2]
        self.curve: str | None = None
        if self.key_algorithm == OID_EC_PUBLIC_KEY and o2 < a2:
            tag, p1, p2 = _tlv(der, o2, a2)
            if tag == 0x06:
                self.curve = CURVES.get(der[p1:p2])
        elif self.key_algorithm == OID_ED448:
            self.curve = "ed448"
        elif self.key_algorithm == OID_ED25519:
            self.curve = "ed25519"
        b1, b2 = _expect(der, a2, k2, 0x03, "subjectPublicKey")
        if b1 == b2:
            raise CertificateFormatError("empty subjectPublicKey")
        self.public_key_bits = der[b1 + 1 : b2]  # the BIT STRING's content (0 unused bits)

    @property
    def issuer(self) -> tuple[frozenset[tuple[bytes, object]], ...]:
        return _name(self.der, *self._issuer)

    @property
    def subject(self) -> tuple[frozenset[tuple[bytes, object]], ...]:
        return _name(self.der, *self._subject)

    @property
    def self_issued(self) -> bool:
        return self.issuer == self.subject

    @property
    def common_name(self) -> str | None:
        for rdn in self.subject:
            for oid, value in rdn:
                if oid == OID_CN and isinstance(value, str):
                    return value
        return None

    @property
    def not_valid_before(self) -> dt.datetime:
        tag, s, e = _tlv(self.der, self._validity[0], self._validity[1])
        return _time(self.der, tag, s, e)

    @property
    def not_valid_after(self) -> dt.datetime:
        _, _, e = _tlv(self.der, self._validity[0], self._validity[1])
        tag, s2, e2 = _tlv(self.der, e, self._validity[1])
        return _time(self.der, tag, s2, e2)

    @property
    def is_iso20(self) -> bool:
        """An ISO 15118-20 key: ECDSA P-521 or Ed448 [V2G20-2674]."""
        return self.curve in ("secp521r1", "ed448")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cert) and other.der == self.der

    def __hash__(self) -> int:
        return hash(self.der)

    def __repr__(self) -> str:
        return f"<der.Cert CN={self.common_name!r}>"


def pem_blocks(data: bytes) -> list[bytes]:
    """The DER of every ``CERTIFICATE`` PEM block in ``data`` (none: empty)."""
    out = []
    for m in _PEM.finditer(data):
        try:
            out.append(base64.b64decode(b"".join(m.group(1).split()), validate=True))
        except (binascii.Error, ValueError) as exc:
            raise CertificateFormatError(f"bad base64 in a PEM block: {exc}") from exc
    return out


def read_certificates(data: bytes) -> list[Cert]:
    """All certificates in ``data``: one or more PEM blocks, or one DER certificate
    (as :func:`certs._util.load_certificates`, without cryptography)."""
    if not data:
        raise CertificateFormatError("empty input: no certificate")
    if len(data) > MAX_CERT_FILE:
        raise CertificateFormatError(f"{len(data)} bytes is too large for a certificate file")
    if PEM_MARKER in data:
        blocks = pem_blocks(data)
        if not blocks:
            raise CertificateFormatError("no complete PEM certificate block")
        return [Cert(b) for b in blocks]
    return [Cert(data)]


def parse(der: bytes) -> Cert:
    """One DER certificate."""
    return Cert(der)
