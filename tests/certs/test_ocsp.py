"""OCSP: hash data and requests checked by `openssl ocsp -reqin`; a real `openssl ocsp`
responder on loopback answers good / revoked / unknown and the answers are judged right."""

from __future__ import annotations

import datetime as dt
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from certs._util import pem
from certs.ocsp import (
    CertificateHashData,
    OcspError,
    build_request,
    chain_request_data,
    hash_data,
    judge_response,
    responder_url,
)
from certs.testpki import SECC_USAGE, Issued, TestPki, issue_certificate, key_pem, make_name
from tests.certs.conftest import openssl


def _req_text(path: Path) -> str:
    out = subprocess.run(
        [openssl(), "ocsp", "-reqin", str(path), "-req_text", "-noverify"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return out.stdout


def _field(text: str, name: str) -> str:
    """The hex value after ``name:``; openssl wraps long values over several lines."""
    text = text.replace("\\\n", "")  # a backslash at the end of a line continues the value
    start = text.index(f"{name}:") + len(name) + 1
    out = []
    for token in text[start:].split():
        if not re.fullmatch(r"[0-9A-Fa-f]+", token):
            break
        out.append(token)
    assert out, text
    return "".join(out).lower()


def test_hash_data_matches_openssl(pki: TestPki, tmp_path: Path) -> None:
    (tmp_path / "leaf.pem").write_bytes(pem([pki.cert("secc")]))
    (tmp_path / "issuer.pem").write_bytes(pem([pki.cert("cpo_sub2")]))
    subprocess.run(
        [
            openssl(),
            "ocsp",
            "-issuer",
            "issuer.pem",
            "-sha256",
            "-cert",
            "leaf.pem",
            "-no_nonce",
            "-reqout",
            "req.der",
        ],  # the digest option must precede -cert
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=30,
    )
    text = _req_text(tmp_path / "req.der")
    ours = hash_data(pki.cert("secc"), pki.cert("cpo_sub2"))
    assert "sha256" in text.lower()
    assert _field(text, "Issuer Name Hash") == ours.issuer_name_hash
    assert _field(text, "Issuer Key Hash") == ours.issuer_key_hash
    assert _field(text, "Serial Number").lstrip("0") == ours.serial_number
    assert not ours.serial_number.startswith("0")


def test_openssl_parses_our_requests(pki: TestPki, tmp_path: Path) -> None:
    for algorithm in ("SHA256", "SHA384", "SHA512"):
        path = tmp_path / f"req-{algorithm}.der"
        path.write_bytes(
            build_request(pki.cert("contract"), pki.cert("mo_sub2"), algorithm, nonce=b"n" * 16)
        )
        text = _req_text(path)
        ours = hash_data(pki.cert("contract"), pki.cert("mo_sub2"), algorithm)
        assert algorithm.lower() in text.lower()
        assert _field(text, "Issuer Name Hash") == ours.issuer_name_hash
        assert _field(text, "Issuer Key Hash") == ours.issuer_key_hash
        assert "OCSP Nonce" in text


def test_chain_request_data_for_authorize(pki: TestPki) -> None:
    chain = pki.chain("contract", "mo_sub2", "mo_sub1")
    entries = chain_request_data(chain, pki.cert("mo_root"))
    assert len(entries) == 3
    assert (
        entries[0].responder_url
        == responder_url(pki.cert("contract"))
        == "http://127.0.0.1:8888/mo_sub2"
    )
    ocpp = entries[0].to_ocpp()
    assert set(ocpp) == {
        "hashAlgorithm",
        "issuerNameHash",
        "issuerKeyHash",
        "serialNumber",
        "responderURL",
    }
    assert ocpp["serialNumber"] == format(pki.cert("contract").serial_number, "x")
    assert entries[2].hash_data == hash_data(pki.cert("mo_sub1"), pki.cert("mo_root"))
    assert chain_request_data([pki.cert("mo_root")], pki.cert("mo_root")) == []  # root: no AIA


def test_hash_data_from_ocpp() -> None:
    data = {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": "AB" * 32,
        "issuerKeyHash": "cd" * 32,
        "serialNumber": "00fF",
    }
    parsed = CertificateHashData.from_ocpp(data)
    assert parsed.serial_number == "ff" and parsed.issuer_name_hash == "ab" * 32
    snake = {
        "hash_algorithm": "SHA256",
        "issuer_name_hash": "ab" * 32,
        "issuer_key_hash": "cd" * 32,
        "serial_number": "ff",
    }
    assert CertificateHashData.from_ocpp(snake).matches(parsed)
    for bad in (
        {**data, "hashAlgorithm": "MD5"},
        {**data, "issuerNameHash": "xyz"},
        {**data, "issuerKeyHash": 5},
        {**data, "serialNumber": "f" * 41},
        {**data, "serialNumber": ""},
        {k: v for k, v in data.items() if k != "issuerKeyHash"},
    ):
        with pytest.raises(OcspError):
            CertificateHashData.from_ocpp(bad)


# --- a real responder -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _index_line(cert: x509.Certificate, revoked_at: dt.datetime | None) -> str:
    exp = cert.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
    serial = format(cert.serial_number, "X")
    if len(serial) % 2:
        serial = "0" + serial
    dn = "/" + "/".join(a.rfc4514_string() for a in cert.subject)
    if revoked_at is None:
        return f"V\t{exp}\t\t{serial}\tunknown\t{dn}\n"
    return f"R\t{exp}\t{revoked_at.strftime('%y%m%d%H%M%SZ')}\t{serial}\tunknown\t{dn}\n"


class Responder:
    def __init__(
        self, directory: Path, ca: Issued, signer: Issued, entries: str, *extra: str
    ) -> None:
        self.dir = directory
        directory.mkdir()
        (directory / "index.txt").write_text(entries)
        (directory / "ca.pem").write_bytes(pem([ca.certificate]))
        (directory / "signer.pem").write_bytes(pem([signer.certificate]))
        (directory / "signer.key").write_bytes(key_pem(signer.key))
        self.port = _free_port()
        self.log = directory / "responder.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    openssl(),
                    "ocsp",
                    "-index",
                    "index.txt",
                    "-CA",
                    "ca.pem",
                    "-rsigner",
                    "signer.pem",
                    "-rkey",
                    "signer.key",
                    "-port",
                    str(self.port),
                    "-nmin",
                    "5",
                    "-ignore_err",
                    *extra,
                ],
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        # Ready once it says so (a probing connection would wedge the one-request-at-a-time
        # responder of OpenSSL 3.0).
        deadline = time.monotonic() + 10
        while b"waiting for OCSP client connections" not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"openssl ocsp did not start: {self.log.read_text()}")
            time.sleep(0.02)

    def ask(self, request: bytes) -> bytes:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/",
            data=request,
            headers={"Content-Type": "application/ocsp-request"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return bytes(resp.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def _leaf(pki: TestPki, now: dt.datetime, cn: str) -> Issued:
    return issue_certificate(
        name=cn,
        subject=make_name(cn, "Test CPO", "DE", "CPO"),
        issuer=pki["cpo_sub2"],
        not_before=now - dt.timedelta(hours=1),
        not_after=now + dt.timedelta(days=30),
        ca=False,
        usage=SECC_USAGE,
    )


@pytest.fixture(scope="module")
def leaves(pki: TestPki, now: dt.datetime) -> dict[str, Issued]:
    return {
        "good": pki["secc"],
        "revoked": _leaf(pki, now, "revoked-secc"),
        "unknown": _leaf(pki, now, "unlisted-secc"),
    }


@pytest.fixture(scope="module")
def responders(
    tmp_path_factory: pytest.TempPathFactory,
    pki: TestPki,
    now: dt.datetime,
    leaves: dict[str, Issued],
) -> Iterator[dict[str, Responder]]:
    entries = _index_line(leaves["good"].certificate, None) + _index_line(
        leaves["revoked"].certificate, now - dt.timedelta(hours=2)
    )
    delegate = issue_certificate(
        name="ocsp",
        subject=make_name("CPO OCSP Responder", "Test CPO", "DE"),
        issuer=pki["cpo_sub2"],
        not_before=now - dt.timedelta(hours=1),
        not_after=now + dt.timedelta(days=30),
        ca=False,
        usage=("digital_signature",),
        extended_usage=(ExtendedKeyUsageOID.OCSP_SIGNING,),
    )
    base = tmp_path_factory.mktemp("ocsp")
    started: dict[str, Responder] = {}
    try:
        started["issuer"] = Responder(base / "issuer", pki["cpo_sub2"], pki["cpo_sub2"], entries)
        started["delegate"] = Responder(base / "delegate", pki["cpo_sub2"], delegate, entries)
        started["bykey"] = Responder(
            base / "bykey", pki["cpo_sub2"], pki["cpo_sub2"], entries, "-resp_key_id"
        )
        started["stranger"] = Responder(base / "stranger", pki["cpo_sub2"], pki["mo_sub2"], entries)
        yield started
    finally:
        for responder in started.values():
            responder.stop()
    assert all(r.proc.poll() is not None for r in started.values())


@pytest.mark.parametrize("signer", ["issuer", "delegate", "bykey"])
@pytest.mark.parametrize("which", ["good", "revoked", "unknown"])
def test_responder_answers_are_judged(
    pki: TestPki,
    now: dt.datetime,
    leaves: dict[str, Issued],
    responders: dict[str, Responder],
    signer: str,
    which: str,
) -> None:
    cert = leaves[which].certificate
    der_response = responders[signer].ask(build_request(cert, pki.cert("cpo_sub2")))
    asked_at = dt.datetime.now(dt.UTC)  # the responder stamps its answers with the real time
    if signer == "bykey":  # ResponderID byKey rather than byName
        assert ocsp.load_der_ocsp_response(der_response).responder_key_hash is not None
    verdict = judge_response(der_response, cert, pki.cert("cpo_sub2"), asked_at)
    assert verdict.status == which, verdict.reason
    assert verdict.fresh, verdict.reason
    assert verdict.usable == (which != "unknown")
    if which == "revoked":
        assert verdict.revocation_time is not None
        assert abs(verdict.revocation_time - (now - dt.timedelta(hours=2))) < dt.timedelta(
            seconds=2
        )
    # Stale once nextUpdate (5 minutes, -nmin 5) and the clock skew allowance have passed.
    later = judge_response(
        der_response, cert, pki.cert("cpo_sub2"), asked_at + dt.timedelta(hours=1)
    )
    assert later.status == which and not later.fresh and not later.usable
    # The answer is about this certificate only.
    other = judge_response(der_response, pki.cert("contract"), pki.cert("mo_sub2"), asked_at)
    assert other.status == "invalid"


def test_response_from_a_stranger_is_invalid(
    pki: TestPki, now: dt.datetime, leaves: dict[str, Issued], responders: dict[str, Responder]
) -> None:
    cert = leaves["good"].certificate
    der_response = responders["stranger"].ask(build_request(cert, pki.cert("cpo_sub2")))
    verdict = judge_response(der_response, cert, pki.cert("cpo_sub2"), now)
    assert verdict.status == "invalid" and "delegated" in verdict.reason


def test_tampered_and_malformed_responses(
    pki: TestPki, now: dt.datetime, leaves: dict[str, Issued], responders: dict[str, Responder]
) -> None:
    cert = leaves["good"].certificate
    issuer = pki.cert("cpo_sub2")
    good = responders["issuer"].ask(build_request(cert, issuer))
    now = dt.datetime.now(dt.UTC)
    # Flip a bit inside the signed thisUpdate time (GeneralizedTime digits): signature must fail.
    stamp = now.strftime("%Y%m%d").encode()
    pos = good.find(stamp)
    assert pos > 0
    tampered = good[: pos + 7] + bytes([good[pos + 7] ^ 1]) + good[pos + 8 :]
    assert judge_response(tampered, cert, issuer, now).status == "invalid"
    for bad in (
        b"",
        good[:10],
        good[:-5],
        b"\x30\x03\x0a\x01\x01",
        b"\xff" * 100,
        b"\x30" * 70_000,
        build_request(cert, issuer),
    ):
        verdict = judge_response(bad, cert, issuer, now)
        assert verdict.status == "invalid", bad[:8]
        assert verdict.reason


def test_judge_needs_aware_time(pki: TestPki) -> None:
    with pytest.raises(ValueError, match="aware"):
        judge_response(b"x", pki.cert("secc"), pki.cert("cpo_sub2"), dt.datetime(2030, 1, 1))


def test_delegate_key_is_p256(pki: TestPki) -> None:
    assert isinstance(pki["cpo_sub2"].key, ec.EllipticCurvePrivateKey)
