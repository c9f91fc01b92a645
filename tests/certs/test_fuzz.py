"""Untrusted bytes into every parser: it decodes, or it raises this package's own error."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certs._util import CertificateFormatError, der, load_certificates, pem
from certs.csr import CsrError, build_csr, load_csr
from certs.install_crypto import InstallCryptoError, open_contract_key
from certs.ocsp import judge_response
from certs.testpki import TestPki
from certs.validate import validate_contract_chain
from certs.xmldsig import SignatureError, public_key_from_point

# Mutated certificates make cryptography warn (negative serials, odd attribute lengths).
pytestmark = [
    pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _mutations(base: bytes) -> st.SearchStrategy[bytes]:
    """Truncations, bit flips and random bytes around a valid encoding."""
    return st.one_of(
        st.binary(max_size=1200),
        st.integers(0, len(base)).map(lambda n: base[:n]),
        st.tuples(st.integers(0, len(base) - 1), st.integers(1, 255)).map(
            lambda t: base[: t[0]] + bytes([base[t[0]] ^ t[1]]) + base[t[0] + 1 :]
        ),
    )


@FUZZ
@given(data=st.data())
def test_load_certificates(pki: TestPki, data: st.DataObject) -> None:
    blob = data.draw(_mutations(der(pki.cert("contract"))))
    try:
        certs = load_certificates(blob)
    except CertificateFormatError:
        return
    assert certs


@FUZZ
@given(data=st.data())
def test_validate_contract_chain(pki: TestPki, now: dt.datetime, data: st.DataObject) -> None:
    leaf = data.draw(_mutations(der(pki.cert("contract"))))
    sub = data.draw(_mutations(der(pki.cert("mo_sub2"))))
    verdict = validate_contract_chain(
        leaf, [sub, der(pki.cert("mo_sub1"))], [pki.cert("mo_root")], now
    )
    assert verdict.response_code.startswith(("OK", "FAILED_"))
    if verdict.ok:
        assert leaf == der(pki.cert("contract")) and sub == der(pki.cert("mo_sub2"))


@FUZZ
@given(blob=st.binary(max_size=3000))
def test_judge_response(pki: TestPki, now: dt.datetime, blob: bytes) -> None:
    verdict = judge_response(blob, pki.cert("secc"), pki.cert("cpo_sub2"), now)
    assert verdict.status == "invalid" and verdict.reason


@FUZZ
@given(enc=st.binary(min_size=48, max_size=48), point=st.binary(min_size=65, max_size=65))
def test_open_contract_key(pki: TestPki, enc: bytes, point: bytes) -> None:
    try:
        open_contract_key(
            enc,
            b"\x04" + point[1:],
            pki["oem_prov"].key,
            expected_public_key=pki.cert("contract").public_key(),
        )  # type: ignore[arg-type]
    except InstallCryptoError:
        return
    raise AssertionError("random bytes opened into the contract key")


@FUZZ
@given(point=st.binary(max_size=70))
def test_public_key_from_point(point: bytes) -> None:
    try:
        public_key_from_point(point)
    except SignatureError:
        return


@FUZZ
@given(data=st.data())
def test_load_certificates_pem(pki: TestPki, data: st.DataObject) -> None:
    """PEM as CertificateSigned / InstallCertificate bring it (chains from a CSMS)."""
    blob = data.draw(_mutations(pem([pki.cert("secc"), pki.cert("cpo_sub2")])))
    try:
        certs = load_certificates(blob)
    except CertificateFormatError:
        return
    assert certs


# One fixed CSR: an ECDSA signature's length varies per signing, the strategy must not.
_CSR = build_csr(
    ec.generate_private_key(ec.SECP256R1()), "V2GCertificate", common_name="a", organization="b"
)


@FUZZ
@given(data=st.data())
def test_load_csr(data: st.DataObject) -> None:
    blob = data.draw(_mutations(_CSR))
    try:
        load_csr(blob)
    except CsrError:
        return
