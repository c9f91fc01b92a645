"""Contract chain validation: one test chain per failure mode, with its ISO response code.

| case                          | response code                  |
|-------------------------------|--------------------------------|
| valid (2, 1 and 0 sub-CAs)    | OK                             |
| no leaf presented             | FAILED_NoCertificateAvailable  |
| issuer's root not installed   | FAILED_NoCertificateAvailable  |
| leaf expired                  | FAILED_CertificateExpired      |
| leaf not yet valid            | FAILED_CertificateExpired      |
| sub-CA expired                | FAILED_CertificateExpired      |
| root expired                  | FAILED_CertificateExpired      |
| leaf revoked (OCSP cache)     | FAILED_CertificateRevoked      |
| sub-CA revoked                | FAILED_CertificateRevoked      |
| leaf signed by a wrong key    | FAILED_SignatureError          |
| sub-CA signed by a fake root  | FAILED_SignatureError          |
| 3 sub-CAs                     | FAILED_CertChainError          |
| sub-CAs in the wrong order    | FAILED_CertChainError          |
| malformed / truncated DER     | FAILED_CertChainError          |
| leaf is a CA                  | FAILED_CertChainError          |
| sub-CA without basicConstr.   | FAILED_CertChainError          |
| pathLen exceeded              | FAILED_CertChainError          |
| leaf key usage wrong          | FAILED_CertChainError          |
| sub-CA without keyCertSign    | FAILED_CertChainError          |
| leaf key on P-384             | FAILED_CertChainError          |
| leaf signed with SHA-384      | FAILED_CertChainError          |
| eMAID differs from the claim  | FAILED_CertChainError          |
| leaf CN is not an eMAID       | FAILED_CertChainError          |
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from certs._util import der, fingerprint
from certs.testpki import (
    CA_USAGE,
    CONTRACT_USAGE,
    Issued,
    TestPki,
    issue_certificate,
    make_name,
)
from certs.validate import (
    FAILED_CERT_CHAIN_ERROR as CHAIN,
)
from certs.validate import (
    FAILED_CERTIFICATE_EXPIRED as EXPIRED,
)
from certs.validate import (
    FAILED_CERTIFICATE_REVOKED as REVOKED,
)
from certs.validate import (
    FAILED_NO_CERTIFICATE_AVAILABLE as NOCERT,
)
from certs.validate import (
    FAILED_SIGNATURE_ERROR as SIG,
)
from certs.validate import (
    OK,
    validate_chain,
    validate_contract_chain,
)


@dataclass(frozen=True)
class Case:
    """What to present: leaf DER, sub-CA DERs, roots, when, claimed eMAID, revoked set."""

    leaf: bytes | None
    subs: list[bytes]
    roots: list[x509.Certificate]
    at: dt.datetime
    emaid: str | None = None
    revoked: frozenset[str] = frozenset()


DAY = dt.timedelta(days=1)


def _leaf(pki: TestPki, now: dt.datetime, **kw: object) -> Issued:
    args: dict[str, object] = {
        "name": "leaf",
        "subject": make_name(pki.options.emaid, "Test MO", "DE", "MO"),
        "issuer": pki["mo_sub2"],
        "not_before": now - DAY,
        "not_after": now + 30 * DAY,
        "ca": False,
        "usage": CONTRACT_USAGE,
    }
    args.update(kw)
    return issue_certificate(**args)  # type: ignore[arg-type]


def _subs(pki: TestPki) -> list[bytes]:
    return [der(pki.cert("mo_sub2")), der(pki.cert("mo_sub1"))]


def _ca(pki: TestPki, now: dt.datetime, name: str, issuer: Issued | None, **kw: object) -> Issued:
    args: dict[str, object] = {
        "name": name,
        "subject": make_name(name, "Test MO", "DE", "V2G"),
        "issuer": issuer,
        "not_before": now - DAY,
        "not_after": now + 300 * DAY,
        "ca": True,
        "path_len": 0,
        "usage": CA_USAGE,
    }
    args.update(kw)
    return issue_certificate(**args)  # type: ignore[arg-type]


def _roots(pki: TestPki) -> list[x509.Certificate]:
    return [pki.cert("mo_root"), pki.cert("v2g_root")]


Builder = Callable[[TestPki, dt.datetime], Case]


def _valid(p: TestPki, n: dt.datetime) -> Case:
    return Case(der(p.cert("contract")), _subs(p), _roots(p), n, emaid=p.options.emaid)


def _one_sub(p: TestPki, n: dt.datetime) -> Case:
    leaf = _leaf(p, n, issuer=p["mo_sub1"])
    return Case(der(leaf.certificate), [der(p.cert("mo_sub1"))], _roots(p), n)


def _no_sub(p: TestPki, n: dt.datetime) -> Case:
    leaf = _leaf(p, n, issuer=p["mo_root"])
    return Case(der(leaf.certificate), [], _roots(p), n)


def _no_leaf(p: TestPki, n: dt.datetime) -> Case:
    return Case(None, [], _roots(p), n)


def _unknown_root(p: TestPki, n: dt.datetime) -> Case:
    return Case(der(p.cert("contract")), _subs(p), [p.cert("v2g_root"), p.cert("oem_root")], n)


def _leaf_expired(p: TestPki, n: dt.datetime) -> Case:
    leaf = _leaf(p, n, not_before=n - 10 * DAY, not_after=n - DAY)
    return Case(der(leaf.certificate), _subs(p), _roots(p), n)


def _leaf_not_yet(p: TestPki, n: dt.datetime) -> Case:
    leaf = _leaf(p, n, not_before=n + DAY, not_after=n + 10 * DAY)
    return Case(der(leaf.certificate), _subs(p), _roots(p), n)


def _sub_expired(p: TestPki, n: dt.datetime) -> Case:
    sub = _ca(p, n, "Old Sub", p["mo_sub1"], not_before=n - 10 * DAY, not_after=n - DAY)
    leaf = _leaf(p, n, issuer=sub, not_before=n - 5 * DAY, not_after=n + DAY)
    return Case(der(leaf.certificate), [der(sub.certificate), der(p.cert("mo_sub1"))], _roots(p), n)


def _root_expired(p: TestPki, n: dt.datetime) -> Case:
    root = _ca(p, n, "Short Root", None, path_len=None, not_before=n - 10 * DAY, not_after=n - DAY)
    leaf = _leaf(p, n, issuer=root, not_before=n - 5 * DAY)
    return Case(der(leaf.certificate), [], [root.certificate], n)


def _leaf_revoked(p: TestPki, n: dt.datetime) -> Case:
    return Case(
        der(p.cert("contract")),
        _subs(p),
        _roots(p),
        n,
        revoked=frozenset({fingerprint(p.cert("contract"))}),
    )


def _sub_revoked(p: TestPki, n: dt.datetime) -> Case:
    return Case(
        der(p.cert("contract")),
        _subs(p),
        _roots(p),
        n,
        revoked=frozenset({fingerprint(p.cert("mo_sub1"))}),
    )


def _wrong_key(p: TestPki, n: dt.datetime) -> Case:
    impostor = Issued("mo_sub2", p.cert("mo_sub2"), ec.generate_private_key(ec.SECP256R1()))
    leaf = _leaf(p, n, issuer=impostor)
    return Case(der(leaf.certificate), _subs(p), _roots(p), n)


def _fake_root(p: TestPki, n: dt.datetime) -> Case:
    fake = Issued("mo_root", p.cert("mo_root"), ec.generate_private_key(ec.SECP256R1()))
    sub1 = _ca(p, n, "MO Sub-CA 1", fake, path_len=1, subject=p.cert("mo_sub1").subject)
    sub2 = _ca(p, n, "MO Sub-CA 2", sub1, subject=p.cert("mo_sub2").subject)
    leaf = _leaf(p, n, issuer=sub2)
    subs = [der(sub2.certificate), der(sub1.certificate)]
    return Case(der(leaf.certificate), subs, _roots(p), n)


def _three_subs(p: TestPki, n: dt.datetime) -> Case:
    return Case(der(p.cert("contract")), [*_subs(p), der(p.cert("mo_sub1"))], _roots(p), n)


def _wrong_order(p: TestPki, n: dt.datetime) -> Case:
    return Case(der(p.cert("contract")), _subs(p)[::-1], _roots(p), n)


def _malformed(p: TestPki, n: dt.datetime) -> Case:
    return Case(b"\x30\x82\x01\x00garbage", _subs(p), _roots(p), n)


def _truncated_sub(p: TestPki, n: dt.datetime) -> Case:
    return Case(der(p.cert("contract")), [_subs(p)[0][:100], _subs(p)[1]], _roots(p), n)


def _leaf_is_ca(p: TestPki, n: dt.datetime) -> Case:
    leaf = _leaf(p, n, ca=True, path_len=0, usage=("digital_signature", "key_cert_sign"))
    return Case(der(leaf.certificate), _subs(p), _roots(p), n)


def _sub_not_ca(p: TestPki, n: dt.datetime) -> Case:
    sub = _ca(p, n, "No BC Sub", p["mo_sub1"], include_basic_constraints=False)
    leaf = _leaf(p, n, issuer=sub)
    return Case(der(leaf.certificate), [der(sub.certificate), der(p.cert("mo_sub1"))], _roots(p), n)


def _path_len(p: TestPki, n: dt.datetime) -> Case:
    sub1 = _ca(p, n, "Tight Sub 1", p["mo_root"], path_len=0)
    sub2 = _ca(p, n, "Tight Sub 2", sub1, path_len=0)
    leaf = _leaf(p, n, issuer=sub2)
    return Case(der(leaf.certificate), [der(sub2.certificate), der(sub1.certificate)], _roots(p), n)


def _leaf_usage(p: TestPki, n: dt.datetime) -> Case:
    leaf = _leaf(p, n, usage=("key_agreement",))
    return Case(der(leaf.certificate), _subs(p), _roots(p), n)


def _sub_usage(p: TestPki, n: dt.datetime) -> Case:
    sub = _ca(p, n, "No CertSign Sub", p["mo_sub1"], usage=("digital_signature",))
    leaf = _leaf(p, n, issuer=sub)
    return Case(der(leaf.certificate), [der(sub.certificate), der(p.cert("mo_sub1"))], _roots(p), n)


def _p384(p: TestPki, n: dt.datetime) -> Case:
    leaf = _leaf(p, n, key=ec.generate_private_key(ec.SECP384R1()))
    return Case(der(leaf.certificate), _subs(p), _roots(p), n)


def _sha384(p: TestPki, n: dt.datetime) -> Case:
    leaf = _leaf(p, n, hash_algorithm=hashes.SHA384())
    return Case(der(leaf.certificate), _subs(p), _roots(p), n)


def _emaid_mismatch(p: TestPki, n: dt.datetime) -> Case:
    return Case(der(p.cert("contract")), _subs(p), _roots(p), n, emaid="DE-8AA-001234567-0")


def _cn_not_emaid(p: TestPki, n: dt.datetime) -> Case:
    leaf = _leaf(p, n, subject=make_name("not an emaid", "Test MO", "DE", "MO"))
    return Case(der(leaf.certificate), _subs(p), _roots(p), n)


TABLE: list[tuple[str, Builder, str]] = [
    ("valid", _valid, OK),
    ("valid, one sub-CA", _one_sub, OK),
    ("valid, no sub-CA", _no_sub, OK),
    ("no leaf presented", _no_leaf, NOCERT),
    ("issuer's root not installed", _unknown_root, NOCERT),
    ("leaf expired", _leaf_expired, EXPIRED),
    ("leaf not yet valid", _leaf_not_yet, EXPIRED),
    ("sub-CA expired", _sub_expired, EXPIRED),
    ("root expired", _root_expired, EXPIRED),
    ("leaf revoked", _leaf_revoked, REVOKED),
    ("sub-CA revoked", _sub_revoked, REVOKED),
    ("leaf signed by a wrong key", _wrong_key, SIG),
    ("sub-CA signed by a fake root", _fake_root, SIG),
    ("3 sub-CAs", _three_subs, CHAIN),
    ("sub-CAs in the wrong order", _wrong_order, CHAIN),
    ("malformed leaf DER", _malformed, CHAIN),
    ("truncated sub-CA DER", _truncated_sub, CHAIN),
    ("leaf is a CA", _leaf_is_ca, CHAIN),
    ("sub-CA without basicConstraints", _sub_not_ca, CHAIN),
    ("pathLen exceeded", _path_len, CHAIN),
    ("leaf key usage wrong", _leaf_usage, CHAIN),
    ("sub-CA without keyCertSign", _sub_usage, CHAIN),
    ("leaf key on P-384", _p384, CHAIN),
    ("leaf signed with SHA-384", _sha384, CHAIN),
    ("eMAID differs from the claim", _emaid_mismatch, CHAIN),
    ("leaf CN is not an eMAID", _cn_not_emaid, CHAIN),
]


@pytest.mark.parametrize(("case", "build", "code"), TABLE, ids=[row[0] for row in TABLE])
def test_failure_table(
    pki: TestPki, now: dt.datetime, case: str, build: Builder, code: str
) -> None:
    c = build(pki, now)
    verdict = validate_contract_chain(
        c.leaf, c.subs, c.roots, c.at, claimed_emaid=c.emaid, revoked=c.revoked
    )
    assert verdict.response_code == code, (case, verdict.reason)
    assert verdict.reason
    if code == OK:
        assert verdict.ok and verdict.root is not None and verdict.emaid
    else:
        assert not verdict.ok and verdict.chain == ()


def test_emaid_claim_without_check_digit_matches(pki: TestPki, now: dt.datetime) -> None:
    verdict = validate_contract_chain(
        der(pki.cert("contract")),
        _subs(pki),
        _roots(pki),
        now,
        claimed_emaid=pki.options.emaid[:14],
    )
    assert verdict.ok, verdict.reason
    assert verdict.emaid == pki.options.emaid


def test_other_profiles(pki: TestPki, now: dt.datetime) -> None:
    secc = validate_chain(
        der(pki.cert("secc")),
        [der(pki.cert("cpo_sub2")), der(pki.cert("cpo_sub1"))],
        [pki.cert("v2g_root")],
        now,
        profile="secc",
    )
    assert secc.ok, secc.reason
    # A contract leaf lacks keyAgreement: not a SECC certificate.
    wrong = validate_chain(der(pki.cert("contract")), _subs(pki), _roots(pki), now, profile="secc")
    assert wrong.response_code == CHAIN


def test_wrong_input_types(pki: TestPki, now: dt.datetime) -> None:
    bad = validate_contract_chain(der(pki.cert("contract")), ["x"], _roots(pki), now)  # type: ignore[list-item]
    assert bad.response_code == CHAIN
    huge = validate_contract_chain(b"\x30" * 100_000, [], _roots(pki), now)
    assert huge.response_code == CHAIN
    with pytest.raises(ValueError, match="aware"):
        validate_contract_chain(
            der(pki.cert("contract")), [], _roots(pki), now.replace(tzinfo=None)
        )


def test_duplicate_extension_is_a_chain_error(pki: TestPki, now: dt.datetime) -> None:
    from asn1crypto import x509 as asn1_x509

    from certs._util import CertificateFormatError, load_certificates

    parsed = asn1_x509.Certificate.load(der(pki.cert("contract")))
    extensions = parsed["tbs_certificate"]["extensions"]
    extensions.append(extensions[0])
    doubled = parsed.dump(force=True)
    verdict = validate_contract_chain(doubled, _subs(pki), _roots(pki), now)
    assert verdict.response_code == CHAIN and "malformed" in verdict.reason
    with pytest.raises(CertificateFormatError):
        load_certificates(doubled)
