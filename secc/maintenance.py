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

With the names the station's CSRs carry (``subject``), the checks of OCPP 2.0.1
A02.FR.06 / A03.FR.06 come first (:mod:`certs.station_cert`: a ChargingStationCertificate
of the operator's hierarchy with the certificate properties, a V2G leaf with the subject
its CSR named); a refusal is the security event InvalidChargingStationCertificate
(A02.FR.07).  With a :class:`~secc.ocpp_bridge.cert_trial.ClientCertTrial`, a new client
certificate on a security-profile-3 link is used by reconnecting at once (A02.FR.08) and
stays on trial, the previous one kept, until one of them connects (A02.FR.10/28/29).
``secc run``'s bridge and ``secc renew`` answer CertificateSigned with this one class.

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
from pathlib import Path

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
from certs.station_cert import check_charging_station_chain, check_subject
from certs.store import Store, StoreError
from certs.validate import validate_chain
from secc.ocpp_bridge.cert_trial import ClientCertTrial
from secc.ocpp_bridge.client import CallFailed, NotConnected, OcppClient, Reply
from secc.ocpp_bridge.device_model import COMM, ISO, SEC, DeviceModel
from secc.ocpp_bridge.queue import DurableQueue
from secc.ocpp_bridge.security_events import (
    INVALID_STATION_CERTIFICATE,
    SECURITY_LOG,
    SecurityEvents,
    SecurityLog,
)

log = logging.getLogger(__name__)
OUTBOX = "outbox.sqlite"  # secc run's outbox in the OCPP state directory (secc.aio.backends)
RECONNECT_GRACE = 0.5  # seconds between answering CertificateSigned and reconnecting
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
    """Answers CertificateSigned: verify, install, verify again (see module docstring).

    ``subject``: the names the station's CSRs carry (read at every use: the CSMS may
    change them); without it the A02.FR.06 subject and hierarchy checks are not made
    (provisioning by ``secc commission``).  ``trial`` and ``security``: the renewed client
    certificate's trial and the security events (A02.FR.07/10/28/29); ``client``: the
    link whose CertificateSigned this answers (the reconnect of A02.FR.08)."""

    def __init__(
        self,
        store: Store,
        utc_now: Callable[[], dt.datetime],
        *,
        subject: Callable[[], CsrSubject] | None = None,
        client: OcppClient | None = None,
        trial: ClientCertTrial | None = None,
        security: SecurityEvents | None = None,
    ) -> None:
        self.store = store
        self.utc_now = utc_now
        self.subject = subject
        self.client = client
        self.trial = trial
        self.security = security
        self.outcomes: list[SignedOutcome] = []
        self.on_accepted: list[Callable[[SignedOutcome], None]] = []
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

    def type_of(self, chain_pem: str) -> str:
        """The type of a CertificateSigned without certificateType ("to be used for both"
        connections in OCPP 2.0.1, which this station keeps apart), told by the key: a
        leaf for a pending V2G key is a V2GCertificate, any other is taken as the
        ChargingStationCertificate."""
        try:
            leaf = load_certificates(chain_pem.encode())[0]
            pending = [self.store.pending_key(use) for use in ("v2g", "v2g20")]
        except (CertsError, StoreError, IndexError):
            return "ChargingStationCertificate"
        key = leaf.public_key()
        if any(k is not None and k.public_key() == key for k in pending):
            return "V2GCertificate"
        return "ChargingStationCertificate"

    def __call__(self, payload: dict[str, object]) -> Reply:
        """The CertificateSigned handler: install (see :meth:`install`); a refusal is
        the security event InvalidChargingStationCertificate (A02.FR.07); an accepted
        client certificate on a profile-3 link is put in use by reconnecting once the
        answer is out (A02.FR.08 / A03.FR.08)."""
        chain_pem = str(payload.get("certificateChain", ""))
        given = payload.get("certificateType")
        requested = str(given) if given else self.type_of(chain_pem)
        outcome = self.install(requested, chain_pem)
        kind = outcome.certificate_type
        if not outcome.accepted:
            log.warning("CertificateSigned(%s) refused: %s", kind, outcome.reason)
            if self.security is not None and self.client is not None:
                self.client.spawn(
                    self.security.record(
                        INVALID_STATION_CERTIFICATE, f"{requested}: {outcome.reason}"[:255]
                    ),
                    "SecurityEventNotification",
                )
            info = {"reasonCode": "InvalidCertificate", "additionalInfo": outcome.reason[:512]}
            return Reply({"status": "Rejected", "statusInfo": info})
        client = self.client
        if kind != "ChargingStationCertificate" or client is None:
            return Reply({"status": "Accepted"})
        if client.config.security_profile != 3:
            return Reply({"status": "Accepted"})

        async def switch() -> None:
            # A02.FR.08 / A03.FR.08: the new client certificate is used by reconnecting
            # the websocket and TLS connection now (after the answer is out)
            await asyncio.sleep(RECONNECT_GRACE)
            await client.close()

        return Reply({"status": "Accepted"}, after=switch)

    def _resolve(self, outcome: SignedOutcome) -> SignedOutcome:
        self.outcomes.append(outcome)
        waiter = self._waiters.pop(outcome.certificate_type, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)
        if outcome.accepted:
            for callback in list(self.on_accepted):
                callback(outcome)
        return outcome

    def install(self, certificate_type: str, chain_pem: str) -> SignedOutcome:
        """Install a CertificateSigned chain of ``certificate_type`` (the OCPP type; a
        V2GCertificate for the pending -20 key goes to ``v2g20``, see :meth:`renewal_of`);
        the outcome names the renewal it answered."""
        return self._resolve(self._install(certificate_type, chain_pem))

    def _install(self, certificate_type: str, chain_pem: str) -> SignedOutcome:
        certificate_type = self.renewal_of(certificate_type, chain_pem)
        use = USE_OF_TYPE.get(certificate_type)
        if use is None:
            return SignedOutcome(certificate_type, False, f"unknown type {certificate_type!r}")
        # A02.FR.06 / A03.FR.06 first, then the path and the store's own checks
        problem = self._a02_problem(certificate_type, chain_pem) or self._precheck(
            use, chain_pem.encode()
        )
        if problem:
            return SignedOutcome(certificate_type, False, problem)
        previous = self._current(use)
        # the client certificate in use on a profile-3 link is kept until the new one
        # connects (A02.FR.10/28, secc.ocpp_bridge.cert_trial)
        trial = self.trial
        on_trial = (
            trial.snapshot()
            if trial is not None and use == "csms" and trial.client.config.security_profile == 3
            else None
        )
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
        if trial is not None and on_trial is not None:
            trial.begin(on_trial)
        return SignedOutcome(certificate_type, True, f"installed {leaf.subject.rfc4514_string()}")

    def _a02_problem(self, certificate_type: str, chain_pem: str) -> str | None:
        """A02.FR.06 / A03.FR.06: why the chain is not valid for the station (None: it
        is, as far as these checks go): a ChargingStationCertificate of the operator's
        hierarchy (an installed CSMS root) with the certificate properties (CN the
        station's identity, O the SecurityCtrlr organization when set), a V2G leaf the
        subject its CSR named (CN the SECC ID, O ISO15118Ctrlr's when set)."""
        if self.subject is None:
            return None
        names = self.subject()
        try:
            chain = load_certificates(chain_pem.encode())
        except CertsError as exc:
            return f"malformed chain: {exc}"
        if not chain:
            return "malformed chain: no certificate"
        if certificate_type == "ChargingStationCertificate":
            return check_charging_station_chain(
                chain,
                self.store.roots("csms"),
                self.utc_now(),
                common_name=names.station_id,
                organization=names.required_organization(certificate_type),
            )
        return check_subject(
            chain[0],
            common_name=names.common_name(certificate_type),
            organization=names.required_organization(certificate_type),
        )

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
    serial for the charging-station certificate, organization and country.
    ``iso_organization`` (ISO15118Ctrlr.OrganizationName) and ``security_organization``
    (SecurityCtrlr.OrganizationName), when set, are the O of the V2G and of the
    charging-station certificate, which the signed leaf must then carry (A00.FR.509);
    ``organization`` otherwise."""

    secc_id: str
    station_id: str
    organization: str
    country: str | None = None
    iso_organization: str | None = None
    security_organization: str | None = None

    @classmethod
    def of_device_model(cls, dm: DeviceModel, station_id: str, secc_id: str) -> CsrSubject:
        """The names from the device model (``secc_id``: when ISO15118Ctrlr.SeccId is not
        set)."""
        iso = dm.value(ISO, "OrganizationName") or None
        security = dm.value(SEC, "OrganizationName") or None
        return cls(
            secc_id=dm.value(ISO, "SeccId") or secc_id,
            station_id=station_id,
            organization=iso or security or "unknown",
            country=dm.value(ISO, "CountryName") or None,
            iso_organization=iso,
            security_organization=security,
        )

    def common_name(self, certificate_type: str) -> str:
        return (
            self.secc_id if certificate_type in ("V2GCertificate", ISO20_V2G) else self.station_id
        )

    def required_organization(self, certificate_type: str) -> str | None:
        """The O the signed leaf must carry (None: any, but one)."""
        if certificate_type in ("V2GCertificate", ISO20_V2G):
            return self.iso_organization
        return self.security_organization

    def organization_of(self, certificate_type: str) -> str:
        """The O of the CSR."""
        return self.required_organization(certificate_type) or self.organization


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
    trial_timeout: float = 60.0,
) -> MaintenanceReport:
    """One maintenance pass over an online client (BootNotification accepted).  With the
    installer's trial (:func:`attach_trial`), a renewed client certificate is followed
    until it connects or the previous one is back (at most ``trial_timeout``), and the
    security events raised meanwhile are delivered."""
    due = plan(
        store, utc_now(), renew_before_days=renew_before_days, anchor_warn_days=anchor_warn_days
    )
    report = MaintenanceReport(due)
    # the client certificate last: its renewal may reconnect the link (A02.FR.08)
    for certificate_type in sorted(due.renew, key=lambda t: t == "ChargingStationCertificate"):
        outcome = await request_certificate(
            client,
            store,
            installer,
            certificate_type,
            common_name=subject.common_name(certificate_type),
            organization=subject.organization_of(certificate_type),
            country=subject.country,
            timeout=sign_timeout,
        )
        if outcome.accepted and installer.trial is not None:
            outcome = await settle_trial(installer.trial, outcome, trial_timeout)
        report.renewals.append(outcome)
    if any(s.state != "no responder" for s in due.ocsp) or report.renewals:
        try:
            if not client.online.is_set():  # a reconnect with a new client certificate
                await asyncio.wait_for(client.online.wait(), trial_timeout)
            report.ocsp_stored = await refresh_ocsp(client, store, utc_now())
        except (CallFailed, NotConnected, TimeoutError) as exc:
            report.errors.append(f"OCSP refresh: {exc}")
    if installer.trial is not None:  # e.g. DiscardedRenewedClientCertificate
        await client.follow_ups_done(trial_timeout)
        try:
            await deliver_security_events(client, installer.trial.queue, trial_timeout)
        except (CallFailed, NotConnected, TimeoutError) as exc:
            report.errors.append(f"security events not delivered (kept for secc run): {exc}")
    return report


async def settle_trial(
    trial: ClientCertTrial, outcome: SignedOutcome, timeout: float
) -> SignedOutcome:
    """After an accepted client certificate: wait (at most ``timeout``) for its trial to
    end (A02.FR.10/28/29) and say how it ended; the outcome of any other renewal as is."""
    if outcome.certificate_type != "ChargingStationCertificate" or trial.state() is None:
        return outcome
    renewed = trial.snapshot()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while trial.state() is not None and loop.time() < deadline:
        await asyncio.sleep(0.05)
    if trial.state() is not None:
        return SignedOutcome(
            outcome.certificate_type,
            False,
            f"{outcome.reason}; on trial: no connection with it within {timeout:g} s "
            "(the previous one is kept; the next start of the link goes on with the trial)",
        )
    current = trial.snapshot()
    if renewed is not None and current is not None and current[0] == renewed[0]:
        return SignedOutcome(outcome.certificate_type, True, f"{outcome.reason}; connected with it")
    return SignedOutcome(
        outcome.certificate_type,
        False,
        f"{outcome.reason}; no connection with it, the previous one connected and is in use "
        "again (DiscardedRenewedClientCertificate)",
    )


async def deliver_security_events(client: OcppClient, queue: DurableQueue, timeout: float) -> int:
    """Send the outbox's security events from its head, in order, until a message of
    another kind (a transaction's: ``secc run`` delivers those) or the end; what is not
    delivered stays queued.  Returns how many were sent."""
    sent = 0
    async with asyncio.timeout(timeout):
        while True:
            head = await queue.off_loop(queue.head)
            if head is None or head.action != "SecurityEventNotification":
                return sent
            await client.online.wait()  # BootNotification accepted (after a reconnect)
            await client.call(head.action, head.payload, message_id=head.message_id)
            await queue.off_loop(queue.ack, head.seq)
            sent += 1


def attach_trial(
    installer: SignedInstaller, client: OcppClient, dm: DeviceModel, state_dir: Path
) -> DurableQueue:
    """Give ``installer`` the station's trial of a renewed client certificate and its
    security events, over the OCPP state of ``secc run`` in ``state_dir`` (the outbox,
    where the trial's state lives, and the security log), so both continue each other's
    trial.  One round (A02.FR.28): NetworkProfileConnectionAttempts failed connections
    (this link has one profile).  Call before the link connects; close the returned
    outbox when done."""
    queue = DurableQueue(state_dir / OUTBOX)
    security = SecurityEvents(
        queue, SecurityLog(state_dir / SECURITY_LOG), lambda: None, installer.utc_now
    )
    trial = ClientCertTrial(
        installer.store,
        queue,
        client,
        security,
        lambda: max(1, dm.number(COMM, "NetworkProfileConnectionAttempts")),
    )
    client.on_connected.append(trial.connected)
    client.on_connect_failed.append(trial.connect_failed)
    installer.client, installer.trial, installer.security = client, trial, security
    return queue
