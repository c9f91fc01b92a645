"""Certificate chain validation with ISO 15118-2 response codes. Pure: no files, no network.

The station receives a contract chain in PaymentDetailsReq (the leaf and up to two sub-CAs,
DER) and checks it against the MO and V2G roots it has; every failure maps to the
ResponseCode a station answers with:

=============================  ================================================================
FAILED_NoCertificateAvailable  no leaf certificate, or no trust anchor for the chain's issuer
FAILED_CertChainError          malformed DER, more than 2 sub-CAs, broken issuer/subject link,
                               basicConstraints / pathLen / key usage violated, not P-256 or not
                               ecdsa-with-SHA256, eMAID in the leaf differs from the claimed one
FAILED_CertificateExpired      any certificate of the path (root included) outside its validity
FAILED_CertificateRevoked      a certificate of the path is revoked (OCSP status from the cache)
FAILED_SignatureError          a certificate's signature does not verify with its issuer's key
=============================  ================================================================

The same checks serve the SECC chain, the OEM provisioning chain and the CPS chain of
CertificateInstallationRes (:data:`PROFILES`). Checks run in a fixed order and the first
failure is reported: shape, algorithms, validity, links and signatures, trust anchor,
constraints, key usage, eMAID, revocation.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from certs import codes
from certs._util import PARSE_ERRORS, basic_constraints, fingerprint, key_usage_of, require_aware
from certs.emaid import EmaidError, normalize

# the response codes (defined without cryptography in certs.codes)
OK = codes.OK
FAILED_NO_CERTIFICATE_AVAILABLE = codes.FAILED_NO_CERTIFICATE_AVAILABLE
FAILED_CERT_CHAIN_ERROR = codes.FAILED_CERT_CHAIN_ERROR
FAILED_CERTIFICATE_EXPIRED = codes.FAILED_CERTIFICATE_EXPIRED
FAILED_CERTIFICATE_REVOKED = codes.FAILED_CERTIFICATE_REVOKED
FAILED_SIGNATURE_ERROR = codes.FAILED_SIGNATURE_ERROR
# ISO 15118-20 only: a certificate of the path not yet valid (-2 reports it as expired)
FAILED_CERTIFICATE_NOT_YET_VALID = codes.FAILED_CERTIFICATE_NOT_YET_VALID
MAX_SUB_CAS = 2
# ISO 15118-20's SubCertificatesType allows three
MAX_SUB_CAS_ISO20 = 3
# the security suites: ISO 15118-2 (ECDSA P-256, ecdsa-with-SHA256) and ISO 15118-20
# (ECDSA secp521r1 with ecdsa-with-SHA512, or Ed448)
SUITES = ("iso2", "iso20")
MAX_DER = 2048 * 4  # far above the 800 bytes the schema allows a certificate; bounds parsing


@dataclass(frozen=True, slots=True)
class LeafProfile:
    """What the leaf of a chain must carry."""

    name: str
    key_usage: tuple[str, ...]
    emaid_in_cn: bool = False


PROFILES: dict[str, LeafProfile] = {
    "contract": LeafProfile("contract", ("digital_signature",), emaid_in_cn=True),
    "secc": LeafProfile("secc", ("digital_signature", "key_agreement")),
    "oem": LeafProfile("oem", ("digital_signature",)),
    "cps": LeafProfile("cps", ("digital_signature",)),
}


@dataclass(frozen=True, slots=True)
class ChainVerdict:
    """The outcome: ``response_code`` is "OK" or the ISO 15118-2 FAILED_* code."""

    response_code: str
    reason: str
    chain: tuple[x509.Certificate, ...] = ()
    root: x509.Certificate | None = None
    emaid: str | None = None

    @property
    def ok(self) -> bool:
        return self.response_code == OK


class _Failed(Exception):  # noqa: N818 - internal control flow
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _describe(cert: x509.Certificate) -> str:
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return repr(str(cn[0].value)) if cn else cert.subject.rfc4514_string()


def _parse(data: bytes, what: str) -> x509.Certificate:
    if not isinstance(data, bytes | bytearray) or not data:
        raise _Failed(FAILED_CERT_CHAIN_ERROR, f"{what}: empty or not bytes")
    if len(data) > MAX_DER:
        raise _Failed(FAILED_CERT_CHAIN_ERROR, f"{what}: {len(data)} bytes is too large")
    try:
        cert = x509.load_der_x509_certificate(bytes(data))
        _ = cert.subject, cert.issuer, cert.extensions
    except PARSE_ERRORS as exc:
        raise _Failed(FAILED_CERT_CHAIN_ERROR, f"{what}: malformed DER ({exc})") from exc
    return cert


def _check_algorithms(cert: x509.Certificate, suite: str = "iso2") -> None:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise _Failed(
            FAILED_CERT_CHAIN_ERROR, f"{_describe(cert)}: unreadable key ({exc})"
        ) from exc
    if suite == "iso20":
        p521 = isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp521r1"
        if p521 and cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA512:
            return
        if isinstance(key, ed448.Ed448PublicKey) and (
            cert.signature_algorithm_oid == SignatureAlgorithmOID.ED448
        ):
            return
        raise _Failed(
            FAILED_CERT_CHAIN_ERROR,
            f"{_describe(cert)}: neither secp521r1 with ecdsa-with-SHA512 nor Ed448 (ISO 15118-20)",
        )
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise _Failed(FAILED_CERT_CHAIN_ERROR, f"{_describe(cert)}: key is not ECDSA P-256")
    if cert.signature_algorithm_oid != SignatureAlgorithmOID.ECDSA_WITH_SHA256:
        raise _Failed(
            FAILED_CERT_CHAIN_ERROR,
            f"{_describe(cert)}: signature algorithm is not ecdsa-with-SHA256",
        )


def _check_validity(cert: x509.Certificate, utc_now: dt.datetime, suite: str = "iso2") -> None:
    if utc_now > cert.not_valid_after_utc:
        raise _Failed(
            FAILED_CERTIFICATE_EXPIRED,
            f"{_describe(cert)} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC",
        )
    if utc_now < cert.not_valid_before_utc:
        raise _Failed(
            FAILED_CERTIFICATE_NOT_YET_VALID if suite == "iso20" else FAILED_CERTIFICATE_EXPIRED,
            f"{_describe(cert)} is not valid before "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC",
        )


def _check_signature(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    if cert.issuer != issuer.subject:
        raise _Failed(
            FAILED_CERT_CHAIN_ERROR,
            f"{_describe(cert)} names issuer {cert.issuer.rfc4514_string()!r}, "
            f"but the next certificate is {issuer.subject.rfc4514_string()!r}",
        )
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise _Failed(
            FAILED_SIGNATURE_ERROR,
            f"the signature of {_describe(cert)} does not verify "
            f"with the key of {_describe(issuer)}",
        ) from exc


def _check_constraints(path: list[x509.Certificate], profile: LeafProfile) -> None:
    """``path`` is leaf, sub-CAs…, root."""
    leaf_bc = basic_constraints(path[0])
    if leaf_bc is not None and leaf_bc.ca:
        raise _Failed(FAILED_CERT_CHAIN_ERROR, f"leaf {_describe(path[0])} is a CA certificate")
    for depth, ca in enumerate(path[1:]):
        bc = basic_constraints(ca)
        if bc is None or not bc.ca:
            raise _Failed(
                FAILED_CERT_CHAIN_ERROR, f"{_describe(ca)} is not a CA (basicConstraints)"
            )
        if bc.path_length is not None and depth > bc.path_length:
            raise _Failed(
                FAILED_CERT_CHAIN_ERROR,
                f"{_describe(ca)} allows {bc.path_length} CA(s) below it, the path has {depth}",
            )
        ku = key_usage_of(ca)
        if ku is None or not ku.key_cert_sign:
            raise _Failed(FAILED_CERT_CHAIN_ERROR, f"{_describe(ca)} lacks keyCertSign key usage")
    ku = key_usage_of(path[0])
    if ku is None:
        raise _Failed(FAILED_CERT_CHAIN_ERROR, f"leaf {_describe(path[0])} has no key usage")
    wanted = profile.key_usage
    if isinstance(path[0].public_key(), ed448.Ed448PublicKey):
        # an Ed448 key only signs: RFC 9295 forbids keyAgreement on it, so a -20 Ed448
        # SECC (or vehicle) leaf carries digitalSignature without it
        wanted = tuple(u for u in wanted if u != "key_agreement")
    missing = [name for name in wanted if not getattr(ku, name)]
    if missing or ku.key_cert_sign:
        raise _Failed(
            FAILED_CERT_CHAIN_ERROR,
            f"leaf {_describe(path[0])} key usage does not fit a {profile.name} certificate"
            + (f" (missing {', '.join(missing)})" if missing else " (keyCertSign set)"),
        )


def _check_emaid(leaf: x509.Certificate, claimed: str | None) -> str:
    cn = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cn:
        raise _Failed(FAILED_CERT_CHAIN_ERROR, "contract certificate has no CN (eMAID)")
    try:
        in_cert = normalize(str(cn[0].value))
    except EmaidError as exc:
        raise _Failed(FAILED_CERT_CHAIN_ERROR, f"contract certificate CN: {exc}") from exc
    if claimed is not None:
        try:
            want = normalize(claimed)
        except EmaidError as exc:
            raise _Failed(FAILED_CERT_CHAIN_ERROR, f"claimed eMAID: {exc}") from exc
        if in_cert[:14] != want[:14] or (len(in_cert) == len(want) == 15 and in_cert != want):
            raise _Failed(
                FAILED_CERT_CHAIN_ERROR,
                f"eMAID {want} does not match the contract certificate's {in_cert}",
            )
    return in_cert


def _find_root(top: x509.Certificate, roots: Sequence[x509.Certificate]) -> x509.Certificate:
    named = [r for r in roots if r.subject == top.issuer]
    if not named:
        raise _Failed(
            FAILED_NO_CERTIFICATE_AVAILABLE,
            f"no trust anchor named {top.issuer.rfc4514_string()!r} is installed",
        )
    for root in named:
        try:
            top.verify_directly_issued_by(root)
        except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
            continue
        return root
    raise _Failed(
        FAILED_SIGNATURE_ERROR,
        f"the signature of {_describe(top)} does not verify with any installed "
        f"{top.issuer.rfc4514_string()!r}",
    )


def validate_chain(
    leaf_der: bytes | None,
    sub_ca_ders: Sequence[bytes],
    roots: Sequence[x509.Certificate],
    utc_now: dt.datetime,
    *,
    profile: LeafProfile | str = "contract",
    claimed_emaid: str | None = None,
    revoked: Collection[str] = frozenset(),
    suite: str = "iso2",
) -> ChainVerdict:
    """Validate leaf + sub-CAs (DER, leaf's issuer first) against ``roots``.

    ``revoked`` holds SHA-256 fingerprints (hex) of certificates known revoked, e.g. from
    the store's OCSP cache; ``claimed_emaid`` is PaymentDetailsReq.eMAID.  ``suite``
    ``iso20`` wants ISO 15118-20's algorithms (secp521r1/SHA-512 or Ed448), allows three
    sub-CAs and reports a certificate not yet valid as FAILED_CertificateNotYetValid.
    """
    require_aware(utc_now)
    if suite not in SUITES:
        raise ValueError(f"suite {suite!r}: one of {', '.join(SUITES)}")
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    max_subs = MAX_SUB_CAS_ISO20 if suite == "iso20" else MAX_SUB_CAS
    try:
        if not leaf_der:
            raise _Failed(FAILED_NO_CERTIFICATE_AVAILABLE, "no leaf certificate was presented")
        if len(sub_ca_ders) > max_subs:
            raise _Failed(
                FAILED_CERT_CHAIN_ERROR,
                f"{len(sub_ca_ders)} sub-CA certificates; at most {max_subs} are allowed",
            )
        chain = [_parse(leaf_der, "leaf")]
        chain += [_parse(d, f"sub-CA {i + 1}") for i, d in enumerate(sub_ca_ders)]
        for cert in chain:
            _check_algorithms(cert, suite)
        for cert in chain:
            _check_validity(cert, utc_now, suite)
        for cert, issuer in itertools.pairwise(chain):
            _check_signature(cert, issuer)
        root = _find_root(chain[-1], roots)
        _check_algorithms(root, suite)
        _check_validity(root, utc_now, suite)
        path = [*chain, root]
        _check_constraints(path, prof)
        emaid = _check_emaid(chain[0], claimed_emaid) if prof.emaid_in_cn else None
        for cert in path:
            if fingerprint(cert) in revoked:
                raise _Failed(FAILED_CERTIFICATE_REVOKED, f"{_describe(cert)} is revoked")
    except _Failed as failure:
        return ChainVerdict(failure.code, failure.reason)
    return ChainVerdict(
        OK, f"{prof.name} chain of {len(chain)} certificate(s) is valid", tuple(chain), root, emaid
    )


def validate_contract_chain(
    leaf_der: bytes | None,
    sub_ca_ders: Sequence[bytes],
    roots: Sequence[x509.Certificate],
    utc_now: dt.datetime,
    *,
    claimed_emaid: str | None = None,
    revoked: Collection[str] = frozenset(),
    suite: str = "iso2",
) -> ChainVerdict:
    """PaymentDetailsReq (-2) / PnC_AReqAuthorizationMode (-20): the contract chain
    against the MO (and V2G) roots."""
    return validate_chain(
        leaf_der,
        sub_ca_ders,
        roots,
        utc_now,
        profile="contract",
        claimed_emaid=claimed_emaid,
        revoked=revoked,
        suite=suite,
    )
