"""Local list (Full / Differential / VersionMismatch), cache expiry and the offline decision
table, with real contract chains from the test PKI."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509

from certs.testpki import TestPkiOptions, build_test_pki
from secc.core.actions import RequestAuthorization
from secc.ocpp_bridge.authorization import AuthStore, OfflinePolicy, offline_decision
from tests.ocpp.station import contract_request

NOW = dt.datetime.now(dt.UTC)


def entry(token: str, kind: str, status: str | None) -> dict[str, object]:
    out: dict[str, object] = {"idToken": {"idToken": token, "type": kind}}
    if status is not None:
        out["idTokenInfo"] = {"status": status}
    return out


def test_local_list_versions(tmp_path: Path) -> None:
    auth = AuthStore(tmp_path / "a.sqlite")
    full = {
        "versionNumber": 2,
        "updateType": "Full",
        "localAuthorizationList": [
            entry("A", "ISO14443", "Accepted"),
            entry("B", "eMAID", "Blocked"),
        ],
    }
    assert auth.send_local_list(full) == {"status": "Accepted"}
    assert (auth.list_version, auth.list_entries()) == (2, 2)
    stale = {"versionNumber": 2, "updateType": "Differential", "localAuthorizationList": []}
    assert auth.send_local_list(stale) == {"status": "VersionMismatch"}
    diff = {
        "versionNumber": 3,
        "updateType": "Differential",
        "localAuthorizationList": [entry("A", "ISO14443", None), entry("C", "Central", "Accepted")],
    }
    assert auth.send_local_list(diff) == {"status": "Accepted"}
    assert auth.list_status("A", "ISO14443") is None
    assert auth.list_status("B", "eMAID") == "Blocked"
    assert auth.list_status("C", "Central") == "Accepted"
    assert auth.list_status("C", "ISO14443") is None  # the type is part of the key
    assert auth.send_local_list({"versionNumber": "x", "updateType": "Full"}) == {
        "status": "Failed"
    }
    assert auth.send_local_list({"versionNumber": 9, "updateType": "Full"}) == {
        "status": "Accepted"
    }
    assert auth.list_entries() == 0
    auth.close()
    assert AuthStore(tmp_path / "a.sqlite").list_version == 9  # persisted


def test_cache_expires(tmp_path: Path) -> None:
    auth = AuthStore(tmp_path / "a.sqlite")
    auth.remember("T", "ISO14443", "Accepted", NOW + dt.timedelta(seconds=10))
    assert auth.cached_status("T", "ISO14443", NOW) == "Accepted"
    assert auth.cached_status("T", "ISO14443", NOW + dt.timedelta(seconds=11)) is None
    auth.clear_cache()
    assert auth.cached_status("T", "ISO14443", NOW) is None


@pytest.fixture(scope="module")
def expired_pki() -> tuple[RequestAuthorization, list[x509.Certificate]]:
    from cryptography.hazmat.primitives.serialization import Encoding

    from certs.testpki import CHAINS

    pki = build_test_pki(NOW - dt.timedelta(days=800), TestPkiOptions(contract_days=30))
    chain = tuple(c.public_bytes(Encoding.DER) for c in pki.chain(*CHAINS["contract"]))
    return RequestAuthorization("eMAID", pki.options.emaid, chain), [pki.cert("mo_root")]


def test_offline_decision_table(
    tmp_path: Path, pki_dir: Path, expired_pki: tuple[RequestAuthorization, list[x509.Certificate]]
) -> None:
    auth = AuthStore(tmp_path / "a.sqlite")
    good = contract_request(pki_dir)
    roots = [x509.load_pem_x509_certificate((pki_dir / "mo" / "root.pem").read_bytes())]
    policy = OfflinePolicy()

    def decide(request: RequestAuthorization, kind: str = "eMAID", **kw: object):  # type: ignore[no-untyped-def]
        p = dataclasses.replace(policy, **kw)  # type: ignore[arg-type]
        return offline_decision(request, kind, p, auth, roots, NOW)

    # unknown contract with a valid chain: refused unless unknown ids are allowed
    result = decide(good)
    assert (result.accepted, result.certificate_status) == (False, "Accepted")
    assert decide(good, offline_unknown_allowed=True).accepted
    # the local list decides, then the cache
    auth.send_local_list(
        {
            "versionNumber": 1,
            "updateType": "Full",
            "localAuthorizationList": [entry(good.id_token, "eMAID", "Accepted")],
        }
    )
    assert decide(good).accepted
    assert not decide(good, local_authorize_offline=False).accepted
    auth.remember(good.id_token, "eMAID", "Blocked", NOW + dt.timedelta(hours=1))
    assert not decide(good, local_list_enabled=False).accepted  # cache says Blocked
    assert decide(
        good, local_list_enabled=False, cache_enabled=False, offline_unknown_allowed=True
    ).accepted
    # a bad certificate is never rescued by the list
    expired, expired_roots = expired_pki
    result = offline_decision(expired, "eMAID", policy, auth, expired_roots, NOW)
    assert (result.accepted, result.certificate_status) == (False, "CertificateExpired")
    no_chain = RequestAuthorization("eMAID", good.id_token, ())
    assert decide(no_chain).certificate_status == "NoCertificateAvailable"
    garbage = RequestAuthorization("eMAID", good.id_token, (b"\x30\x82garbage",))
    assert decide(garbage).certificate_status == "CertChainError"
    assert not decide(good, contract_validation_offline=False).accepted
    # EIM
    assert not decide(RequestAuthorization("ISO14443", "CARD"), "ISO14443").accepted
    auth.remember("CARD", "ISO14443", "Accepted", NOW + dt.timedelta(hours=1))
    assert decide(RequestAuthorization("ISO14443", "CARD"), "ISO14443").accepted
