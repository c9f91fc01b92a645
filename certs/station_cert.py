"""The checks of OCPP 2.0.1 A02.FR.06 / A03.FR.06 on a CertificateSigned chain, before the
station answers Accepted (part 2, "Certificate Properties" A00.FR.5xx and "Certificate
Hierarchy" A00.FR.6xx; errata 2025-01: the current date must lie within the validity).

:func:`check_charging_station_chain` judges a ChargingStationCertificate chain (the
OCPP client certificate of security profile 3): it must be part of the Charging Station
Operator hierarchy, i.e. lead to an installed CSMSRootCertificate (never a V2G, MO or
Manufacturer root), every certificate of the path valid now, links signed and CAs marked
as CAs (basicConstraints, path length, keyCertSign), keys of at least 2048 bits RSA /
224 bits EC (A00.FR.502/503) and no MD5 or SHA-1 signature (A00.FR.504/506), and the
leaf's subject what the station asked for: CN the station's serial number, the identity
it connects with (A00.FR.511; neither a URL nor an IP address), O the organization
(A00.FR.509; SecurityCtrlr.OrganizationName when set). Its key usage, when present, must
allow a TLS client signature (A00.FR.512), an extended key usage must include
clientAuth: a certificate the CSMS's TLS server must refuse is no valid client
certificate.

:func:`check_subject` is the subject part alone (the V2G chains' path is judged by
:func:`certs.validate.validate_chain` with ISO 15118's rules).

Each returns None when the chain passes, else the reason (for statusInfo and the
security event InvalidChargingStationCertificate). Nothing here touches the store.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs._util import PARSE_ERRORS, basic_constraints, fingerprint, key_usage_of, signed_by

MIN_RSA_BITS = 2048  # A00.FR.502
MIN_EC_BITS = 224  # A00.FR.503
WEAK_HASHES = ("md5", "sha1")  # A00.FR.504/506: BSI-recommended algorithms, SHA-256


def _describe(cert: x509.Certificate) -> str:
    return repr(cert.subject.rfc4514_string())


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


def _looks_like_address(value: str) -> bool:
    """A URL or an IP address (A00.FR.511: a station CN must be neither, so that station
    certificates can be told from CSMS certificates)."""
    if "://" in value or value.startswith(("http:", "https:", "ws:", "wss:")):
        return True
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def check_subject(
    leaf: x509.Certificate, *, common_name: str, organization: str | None
) -> str | None:
    """CN exactly ``common_name`` (what the station's CSR asked for), an O RDN
    (A00.FR.509), equal to ``organization`` when the station has one configured."""
    cn = _attribute(leaf.subject, NameOID.COMMON_NAME)
    if cn is None:
        return f"the certificate {_describe(leaf)} has no commonName"
    if cn != common_name:
        return f"the certificate's commonName is {cn!r}, the station asked for {common_name!r}"
    org = _attribute(leaf.subject, NameOID.ORGANIZATION_NAME)
    if org is None:
        return f"the certificate {_describe(leaf)} has no organizationName (A00.FR.509)"
    if organization and org != organization:
        return f"the certificate's organizationName is {org!r}, the station's is {organization!r}"
    return None


def _check_strength(cert: x509.Certificate) -> str | None:
    try:
        key = cert.public_key()
        algorithm = cert.signature_hash_algorithm
    except PARSE_ERRORS as exc:
        return f"{_describe(cert)}: unreadable key or signature algorithm ({exc})"
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return f"{_describe(cert)}: a {key.key_size}-bit key; at least {MIN_RSA_BITS} (A00.FR.502)"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < MIN_EC_BITS:
        return (
            f"{_describe(cert)}: a {key.curve.key_size}-bit curve; at least {MIN_EC_BITS} "
            "(A00.FR.503)"
        )
    if isinstance(algorithm, hashes.HashAlgorithm) and algorithm.name in WEAK_HASHES:
        return f"{_describe(cert)} is signed with {algorithm.name.upper()} (A00.FR.504)"
    return None


def _check_client_usage(leaf: x509.Certificate) -> str | None:
    usage = key_usage_of(leaf)
    if usage is not None and (not usage.digital_signature or usage.key_cert_sign):
        return f"the key usage of {_describe(leaf)} does not allow a TLS client signature"
    try:
        extended = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    allowed = {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
    if not allowed & set(extended):
        return f"the extended key usage of {_describe(leaf)} lacks clientAuth"
    return None


def _path_to_root(
    chain: Sequence[x509.Certificate], roots: Sequence[x509.Certificate]
) -> tuple[list[x509.Certificate], str | None]:
    """The path leaf … root (the root from ``roots``), or the reason there is none."""
    anchors = {fingerprint(r): r for r in roots}
    path = list(chain)
    # a chain that carries its root: it must be an installed one
    if path[-1].subject == path[-1].issuer and signed_by(path[-1], path[-1]):
        if fingerprint(path[-1]) not in anchors:
            return path, f"{_describe(path[-1])} is not an installed CSMSRootCertificate"
        return path, None
    for root in roots:
        if root.subject == path[-1].issuer and signed_by(path[-1], root):
            return [*path, root], None
    return path, (
        f"{_describe(path[-1])} does not lead to an installed CSMSRootCertificate "
        f"(issuer {path[-1].issuer.rfc4514_string()!r}): not of the operator's hierarchy"
    )


def check_charging_station_chain(
    chain: Sequence[x509.Certificate],
    csms_roots: Sequence[x509.Certificate],
    utc_now: dt.datetime,
    *,
    common_name: str,
    organization: str | None,
) -> str | None:
    """A02.FR.06 for a ChargingStationCertificate chain (leaf first): None when it is
    valid (see the module docstring), else why not."""
    if not chain:
        return "no certificate in the chain"
    if not csms_roots:
        return "no CSMSRootCertificate is installed to check the chain against"
    for cert, issuer in itertools.pairwise(chain):
        if cert.issuer != issuer.subject or not signed_by(cert, issuer):
            return f"{_describe(cert)} is not signed by the next certificate of the chain"
    path, problem = _path_to_root(chain, csms_roots)
    if problem:
        return problem
    leaf = path[0]
    leaf_bc = basic_constraints(leaf)
    if leaf_bc is not None and leaf_bc.ca:
        return f"the leaf {_describe(leaf)} is a CA certificate"
    for depth, ca in enumerate(path[1:]):
        bc = basic_constraints(ca)
        if bc is None or not bc.ca:
            return f"{_describe(ca)} is not a CA (basicConstraints)"
        if bc.path_length is not None and depth > bc.path_length:
            return f"{_describe(ca)} allows {bc.path_length} CA(s) below it, the path has {depth}"
        usage = key_usage_of(ca)
        if usage is not None and not usage.key_cert_sign:
            return f"{_describe(ca)} lacks the keyCertSign key usage"
    for cert in path:
        if utc_now < cert.not_valid_before_utc:
            return (
                f"{_describe(cert)} is not valid before "
                f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC"
            )
        if utc_now > cert.not_valid_after_utc:
            return f"{_describe(cert)} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"
        problem = _check_strength(cert)
        if problem:
            return problem
    cn = _attribute(leaf.subject, NameOID.COMMON_NAME)
    if cn is not None and _looks_like_address(cn):
        return f"the commonName {cn!r} is a URL or an IP address, not a serial number (A00.FR.511)"
    return check_subject(leaf, common_name=common_name, organization=organization) or (
        _check_client_usage(leaf)
    )
