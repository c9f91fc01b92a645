"""Certificate maintenance: renew the SECC and charging-station certificates when due,
refresh the SECC chain's OCSP answers, warn ahead of trust-anchor expiry.

Used by ``secc renew`` (the systemd timer's job) and ``secc commission`` (provisioning).
The rule it keeps: the store never goes without a working chain.  The chain in service
stays until a new one has been

1. checked before it is installed: for a V2G certificate the whole path to an installed
   V2G root with the SECC profile (:func:`certs.validate.validate_chain`) and DC=CPO, then
   the store's own checks (the pending CSR key, links, validity);
2. installed atomically (:meth:`certs.store.Store.accept_signed_chain`);
3. checked after it is installed: the files load into a TLS context (the ISO 15118-2
   server profile for V2G, a client context for the charging-station certificate).  If
   that fails, the previous chain and key are put back.

A refused or malformed CertificateSigned is answered ``Rejected`` and changes nothing.

The ISO 15118-20 SECC leaf (store slot ``v2g20``) has its own renewal path, named
``V2GCertificate20`` here: a fresh key of the algorithm in service (P-521 with a CSR
signed with SHA-512, or Ed448), sent as
OCPP SignCertificate with certificateType ``V2GCertificate`` (OCPP 2.0.1 has no separate
type; the key type in the CSR tells the CA).  The CertificateSigned(V2GCertificate) that
answers it is told apart from a -2 one by its leaf key: the chain whose leaf carries the
pending ``v2g20`` key goes to ``v2g20``, checked with the -20 rules (a path to a -20 V2G
root, P-521/SHA-512 or Ed448 throughout, DC=CPO) and loaded into a TLS 1.3 server context
after installation.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509

from certs import csr as csr_mod
from certs._util import (
    CertsError,
    der,
    domain_component,
    key_pem,
    load_certificates,
    pem,
)
from certs.expiry import ExpiryEntry, expiry_report
from certs.ocsp import OcspRequestData, hash_data, judge_response, responder_url
from certs.store import Store, StoreError
from certs.validate import validate_chain
from secc.ocpp_bridge.client import CallFailed, NotConnected, OcppClient, Reply

log = logging.getLogger(__name__)
ISO20_V2G = "V2GCertificate20"  # the -20 SECC leaf's renewal (OCPP type V2GCertificate)
USE_OF_TYPE = {"V2GCertificate": "v2g", "ChargingStationCertificate": "csms", ISO20_V2G: "v2g20"}
TYPE_OF_LABEL = {
    "leaf/v2g[0]": "V2GCertificate",
    "leaf/csms[0]": "ChargingStationCertificate",
    "leaf/v2g20[0]": ISO20_V2G,
}


def ocpp_type(name: str) -> str:
    """The OCPP CertificateSigningUseEnumType of a renewal name."""
    return "V2GCertificate" if name == ISO20_V2G else name


@dataclass(frozen=True, slots=True)
class SignedOutcome:
    certificate_type: str
    accepted: bool
    reason: str


class SignedInstaller:
    """Answers CertificateSigned: verify, install, verify again (see module docstring)."""

    def __init__(self, store: Store, utc_now: Callable[[], dt.datetime]) -> None:
        self.store = store
        self.utc_now = utc_now
        self.outcomes: list[SignedOutcome] = []
        self._waiters: dict[str, asyncio.Future[SignedOutcome]] = {}

    def expect(self, certificate_type: str) -> asyncio.Future[SignedOutcome]:
        """A future resolved by the next CertificateSigned of ``certificate_type``."""
        future: asyncio.Future[SignedOutcome] = asyncio.get_running_loop().create_future()
        self._waiters[certificate_type] = future
        return future

    def renewal_of(self, certificate_type: str, chain_pem: str) -> str:
        """The renewal a CertificateSigned answers: a V2GCertificate whose leaf carries
        the pending ``v2g20`` key is the ISO 15118-20 one (:data:`ISO20_V2G`)."""
        if certificate_type != "V2GCertificate":
            return certificate_type
        try:
            pending = self.store.pending_key("v2g20")
            leaf = load_certificates(chain_pem.encode())[0]
        except (CertsError, StoreError, IndexError):
            return certificate_type
        if pending is not None and leaf.public_key() == pending.public_key():
            return ISO20_V2G
        return certificate_type

    def __call__(self, payload: dict[str, object]) -> Reply:
        chain_pem = str(payload.get("certificateChain", ""))
        outcome = self.install(
            str(payload.get("certificateType") or "ChargingStationCertificate"), chain_pem
        )
        kind = outcome.certificate_type
        self.outcomes.append(outcome)
        waiter = self._waiters.pop(kind, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)
        if outcome.accepted:
            return Reply({"status": "Accepted"})
        log.warning("CertificateSigned(%s) refused: %s", kind, outcome.reason)
        info = {"reasonCode": "InvalidCertificate", "additionalInfo": outcome.reason[:512]}
        return Reply({"status": "Rejected", "statusInfo": info})

    def install(self, certificate_type: str, chain_pem: str) -> SignedOutcome:
        """Install a CertificateSigned chain of ``certificate_type`` (the OCPP type; a
        V2GCertificate for the pending -20 key goes to ``v2g20``, see :meth:`renewal_of`);
        the outcome names the renewal it answered."""
        certificate_type = self.renewal_of(certificate_type, chain_pem)
        use = USE_OF_TYPE.get(certificate_type)
        if use is None:
            return SignedOutcome(certificate_type, False, f"unknown type {certificate_type!r}")
        problem = self._precheck(use, chain_pem.encode())
        if problem:
            return SignedOutcome(certificate_type, False, problem)
        previous = self._current(use)
        if use == "v2g20":
            try:
                self.store.accept_signed_chain(use, chain_pem.encode(), utc_now=self.utc_now())
            except (CertsError, StoreError) as exc:
                return SignedOutcome(certificate_type, False, str(exc))
        else:
            result = csr_mod.accept_certificate_signed(
                self.store, certificate_type, chain_pem.encode(), utc_now=self.utc_now()
            )
            if result.status != "Accepted":
                return SignedOutcome(certificate_type, False, result.reason)
        problem = self._postcheck(use)
        if problem:
            if previous is not None:
                self.store.install_leaf(use, *previous, utc_now=None)
            return SignedOutcome(
                certificate_type, False, f"{problem}; the previous chain is back in service"
            )
        leaf = self.store.leaf_chain(use)[0]
        log.info("%s installed: %s", certificate_type, leaf.subject.rfc4514_string())
        return SignedOutcome(certificate_type, True, f"installed {leaf.subject.rfc4514_string()}")

    def _precheck(self, use: str, data: bytes) -> str | None:
        try:
            chain = load_certificates(data)
        except CertsError as exc:
            return f"malformed chain: {exc}"
        if not chain:
            return "malformed chain: no certificate"
        if use not in ("v2g", "v2g20"):
            return None
        if domain_component(chain[0].subject) != "CPO":
            return "the SECC certificate lacks DC=CPO"
        iso20 = use == "v2g20"
        verdict = validate_chain(
            der(chain[0]),
            [der(c) for c in chain[1:]],
            self.store.roots_for("v2g", iso20=iso20),
            self.utc_now(),
            profile="secc",
            suite="iso20" if iso20 else "iso2",
        )
        return None if verdict.ok else f"{verdict.response_code}: {verdict.reason}"

    def _current(self, use: str) -> tuple[bytes, bytes] | None:
        try:
            chain = self.store.leaf_chain(use)
            key = self.store.leaf_key_any(use)
        except StoreError:
            return None
        return pem(chain), key_pem(key)

    def _postcheck(self, use: str) -> str | None:
        try:
            certfile, keyfile = self.store.leaf_paths(use)
            if use == "v2g":
                from secc.aio.tls import CIPHERS

                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.set_ciphers(CIPHERS)
            elif use == "v2g20":  # the ISO 15118-20 server profile: TLS 1.3 only
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            else:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_cert_chain(str(certfile), str(keyfile), password=self.store.key_password())
        except (ssl.SSLError, OSError, StoreError) as exc:
            return f"the installed chain does not load for TLS: {exc}"
        return None


async def request_certificate(
    client: OcppClient,
    store: Store,
    installer: SignedInstaller,
    certificate_type: str,
    *,
    common_name: str,
    organization: str,
    country: str | None = None,
    timeout: float = 120.0,
) -> SignedOutcome:
    """SignCertificate with a fresh key, then wait for CertificateSigned (A02/A03);
    ``certificate_type`` may be :data:`ISO20_V2G` (the -20 SECC leaf: a key of the
    algorithm in service, P-521 or Ed448)."""
    try:
        if certificate_type == ISO20_V2G:
            # the renewed leaf keeps the algorithm of the one in service (P-521 or Ed448)
            try:
                algorithm = csr_mod.iso20_algorithm(store.leaf_chain("v2g20")[0].public_key())
            except (StoreError, OSError, IndexError, ValueError):  # none in service yet: P-521
                algorithm = "secp521r1"
            request = csr_mod.request_iso20_certificate(
                store,
                algorithm,
                common_name=common_name,
                organization=organization,
                country=country,
            )
        else:
            request = csr_mod.request_certificate(
                store,
                certificate_type,
                common_name=common_name,
                organization=organization,
                country=country,
            )
    except csr_mod.CsrError as exc:
        return SignedOutcome(certificate_type, False, f"CSR not made: {exc}")
    waiter = installer.expect(certificate_type)
    try:
        answer = await client.call(
            "SignCertificate",
            {"csr": request.decode("ascii"), "certificateType": ocpp_type(certificate_type)},
        )
    except (CallFailed, NotConnected, TimeoutError) as exc:
        return SignedOutcome(certificate_type, False, f"SignCertificate failed: {exc}")
    if answer.get("status") != "Accepted":
        return SignedOutcome(
            certificate_type, False, f"the CSMS answered SignCertificate {answer.get('status')}"
        )
    try:
        return await asyncio.wait_for(waiter, timeout)
    except TimeoutError:
        return SignedOutcome(certificate_type, False, f"no CertificateSigned within {timeout:g} s")


@dataclass(frozen=True, slots=True)
class OcspState:
    label: str
    subject: str
    state: str  # "fresh" | "stale" | "missing" | "revoked" | "no responder"
    detail: str = ""


def ocsp_states(store: Store, utc_now: dt.datetime) -> list[OcspState]:
    """The cached OCSP answer of every certificate of the SECC chain(s)."""
    out: list[OcspState] = []
    for use in store.leaf_uses():
        if not use.startswith("v2g"):
            continue
        chain = store.leaf_chain(use)
        roots = store.roots("v2g")
        for i, cert in enumerate(chain):
            label = f"leaf/{use}[{i}]"
            subject = cert.subject.rfc4514_string()
            issuer = chain[i + 1] if i + 1 < len(chain) else _issuer(cert, roots)
            if issuer is None or not responder_url(cert):
                out.append(OcspState(label, subject, "no responder"))
                continue
            cached = store.ocsp_response(cert)
            if cached is None:
                out.append(OcspState(label, subject, "missing"))
                continue
            judgement = judge_response(cached, cert, issuer, utc_now)
            if judgement.status == "revoked":
                out.append(OcspState(label, subject, "revoked", judgement.reason))
            elif judgement.usable:
                out.append(OcspState(label, subject, "fresh", judgement.reason))
            else:
                out.append(OcspState(label, subject, "stale", judgement.reason))
    return out


def _issuer(cert: x509.Certificate, roots: list[x509.Certificate]) -> x509.Certificate | None:
    return next((r for r in roots if r.subject == cert.issuer), None)


async def refresh_ocsp(client: OcppClient, store: Store, utc_now: dt.datetime) -> int:
    """GetCertificateStatus for each SECC chain member; verified answers are cached (M06)."""
    stored = 0
    for use in store.leaf_uses():
        if not use.startswith("v2g"):
            continue
        chain = store.leaf_chain(use)
        roots = store.roots("v2g")
        for i, cert in enumerate(chain):
            issuer = chain[i + 1] if i + 1 < len(chain) else _issuer(cert, roots)
            url = responder_url(cert)
            if issuer is None or not url:
                continue
            data = OcspRequestData(hash_data(cert, issuer), url).to_ocpp()
            answer = await client.call("GetCertificateStatus", {"ocspRequestData": data})
            result = answer.get("ocspResult")
            if answer.get("status") != "Accepted" or not isinstance(result, str):
                continue
            try:
                der_bytes = base64.b64decode(result, validate=True)
            except ValueError:
                log.warning("GetCertificateStatus: ocspResult is not base64")
                continue
            judgement = judge_response(der_bytes, cert, issuer, utc_now)
            if judgement.status in {"good", "revoked"}:
                store.store_ocsp_response(cert, der_bytes)
                stored += 1
            else:
                log.warning("GetCertificateStatus for %s: %s", cert.subject, judgement.reason)
    return stored


@dataclass(frozen=True, slots=True)
class Plan:
    """What is due, from the store and the clock alone."""

    renew: tuple[str, ...]  # certificate types due for renewal
    expired: tuple[ExpiryEntry, ...]
    anchors_expiring: tuple[ExpiryEntry, ...]  # trust anchors within the warning window
    ocsp: tuple[OcspState, ...]

    @property
    def ocsp_due(self) -> bool:
        return any(s.state in {"missing", "stale"} for s in self.ocsp)


def plan(
    store: Store, utc_now: dt.datetime, *, renew_before_days: int = 30, anchor_warn_days: int = 90
) -> Plan:
    certificates = store.all_certificates()
    leaves = expiry_report(certificates, utc_now, renew_before_days=renew_before_days)
    anchors = expiry_report(
        [(label, c) for label, c in certificates if label.startswith("trust/")],
        utc_now,
        renew_before_days=anchor_warn_days,
    )
    return Plan(
        renew=tuple(
            TYPE_OF_LABEL[e.label] for e in leaves if e.label in TYPE_OF_LABEL and e.renewal_due
        ),
        expired=tuple(e for e in leaves if e.expired),
        anchors_expiring=tuple(e for e in anchors if e.renewal_due),
        ocsp=tuple(ocsp_states(store, utc_now)),
    )


@dataclass(frozen=True, slots=True)
class CsrSubject:
    """Names for the CSRs: CN of the SECC certificate (the SECC ID / EVSE ID), the station's
    serial for the charging-station certificate, organization and country."""

    secc_id: str
    station_id: str
    organization: str
    country: str | None = None

    def common_name(self, certificate_type: str) -> str:
        return (
            self.secc_id if certificate_type in ("V2GCertificate", ISO20_V2G) else self.station_id
        )


@dataclass(slots=True)
class MaintenanceReport:
    plan: Plan
    renewals: list[SignedOutcome] = field(default_factory=list)
    ocsp_stored: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing left due that this run should have done, nothing expired."""
        return (
            not self.errors
            and not self.plan.expired
            and all(o.accepted for o in self.renewals)
            and len(self.renewals) == len(self.plan.renew)
        )

    def lines(self) -> list[str]:
        out = []
        for entry in self.plan.expired:
            out.append(f"EXPIRED {entry.label} {entry.subject} on {entry.not_after:%Y-%m-%d}")
        for entry in self.plan.anchors_expiring:
            out.append(
                f"WARN trust anchor {entry.label} {entry.subject} expires in "
                f"{entry.days_left} days ({entry.not_after:%Y-%m-%d}): install its successor"
            )
        for outcome in self.renewals:
            word = "renewed" if outcome.accepted else "NOT renewed"
            out.append(f"{outcome.certificate_type} {word}: {outcome.reason}")
        out += [f"ERROR {e}" for e in self.errors]
        if self.ocsp_stored:
            out.append(f"OCSP: {self.ocsp_stored} answer(s) refreshed")
        return out


async def run_maintenance(
    client: OcppClient,
    store: Store,
    installer: SignedInstaller,
    subject: CsrSubject,
    utc_now: Callable[[], dt.datetime],
    *,
    renew_before_days: int = 30,
    anchor_warn_days: int = 90,
    sign_timeout: float = 120.0,
) -> MaintenanceReport:
    """One maintenance pass over an online client (BootNotification accepted)."""
    due = plan(
        store, utc_now(), renew_before_days=renew_before_days, anchor_warn_days=anchor_warn_days
    )
    report = MaintenanceReport(due)
    for certificate_type in due.renew:
        outcome = await request_certificate(
            client,
            store,
            installer,
            certificate_type,
            common_name=subject.common_name(certificate_type),
            organization=subject.organization,
            country=subject.country,
            timeout=sign_timeout,
        )
        report.renewals.append(outcome)
    if any(s.state != "no responder" for s in due.ocsp) or report.renewals:
        try:
            report.ocsp_stored = await refresh_ocsp(client, store, utc_now())
        except (CallFailed, NotConnected, TimeoutError) as exc:
            report.errors.append(f"OCSP refresh: {exc}")
    return report
