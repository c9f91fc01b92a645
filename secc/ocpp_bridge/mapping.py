"""Core actions to OCPP 2.0.1 request payloads, OCPP responses to core events.  Pure.

Every payload here is the wire form (camelCase JSON objects as the OCPP 2.0.1 JSON schemas
name them), so what the durable queue stores is exactly what goes on the wire, and the
``ocpp`` package's snake_case conversion (lossy for names like ``iso15118...`` or ``SoC``)
is never involved.  Responses arrive as the CSMS sent them (camelCase); every accessor
checks types and raises :class:`MappingError` on anything malformed, so a CSMS bug becomes
a clear, logged refusal and never a ``KeyError`` deep in a flow.

No I/O and no clock: time stamps are passed in as aware datetimes.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, load_der_public_key

from certs.ocsp import OcspRequestData, hash_data, responder_url
from secc.core.actions import (
    EndReason,
    MeteringReceipt,
    RequestAuthorization,
    RequestCertificate,
)
from secc.core.events import AuthorizationResult, CertificateResult

MAX_ID_TOKEN = 36  # IdTokenType.idToken maxLength
MAX_EXI_REQUEST = 5600  # Get15118EVCertificateRequest.exiRequest maxLength (base64 chars)
MAX_PEM_CHAIN = 5500  # AuthorizeRequest.certificate maxLength
MAX_HASH_ENTRIES = 4  # AuthorizeRequest.iso15118CertificateHashData maxItems
MAX_SIGNED_DATA = 2500  # SignedMeterValueType.signedMeterData / publicKey maxLength
MAX_SIGNED_LABEL = 50  # SignedMeterValueType.signingMethod / encodingMethod maxLength
ISO20_SCHEMA = "urn:iso:std:iso:15118:-20:CommonMessages"  # Get15118EVCertificate, -20
HASH_ALGORITHMS = ("SHA256", "SHA384", "SHA512")  # OCPP HashAlgorithmEnumType


class MappingError(ValueError):
    """A payload that cannot be mapped (malformed CSMS answer, oversized input)."""


def ocpp_timestamp(when: dt.datetime) -> str:
    """RFC 3339 UTC with milliseconds and ``Z``, the form CSMSs parse reliably."""
    if when.tzinfo is None:
        raise MappingError("time stamps must be timezone-aware")
    utc = when.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


# --- response accessors ----------------------------------------------------------------------


def _obj(payload: object, what: str) -> Mapping[str, object]:
    if not isinstance(payload, Mapping):
        raise MappingError(f"{what}: expected a JSON object, got {type(payload).__name__}")
    return payload


def _str(payload: Mapping[str, object], key: str, what: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str):
        raise MappingError(f"{what}.{key}: expected a string, got {value!r:.60}")
    return value


def _opt_str(payload: Mapping[str, object], key: str, what: str) -> str | None:
    return None if payload.get(key) is None else _str(payload, key, what)


def _int(payload: Mapping[str, object], key: str, what: str) -> int:
    value = payload.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MappingError(f"{what}.{key}: expected an integer, got {value!r:.60}")
    return value


def status_reason(payload: Mapping[str, object]) -> str:
    """``statusInfo.reasonCode`` (and additionalInfo) of a response, or ``""``."""
    info = payload.get("statusInfo")
    if not isinstance(info, Mapping):
        return ""
    code = info.get("reasonCode")
    extra = info.get("additionalInfo")
    text = str(code) if isinstance(code, str) else ""
    return f"{text}: {extra}" if isinstance(extra, str) and extra else text


# --- Authorize (C01, C07) --------------------------------------------------------------------


def id_token(value: str, kind: str) -> dict[str, str]:
    """IdTokenType; ``kind`` is OCPP IdTokenEnumType (``eMAID``, ``ISO14443``, ``Central``…)."""
    if not value or len(value) > MAX_ID_TOKEN:
        raise MappingError(f"idToken must be 1..{MAX_ID_TOKEN} characters: {value!r:.60}")
    return {"idToken": value, "type": kind}


def token_type(request: RequestAuthorization) -> str:
    """OCPP token type for a core authorization request."""
    if request.kind == "eMAID":
        return "eMAID"
    return request.kind if request.kind in _EIM_TYPES else "Local"


_EIM_TYPES = {"Central", "ISO14443", "ISO15693", "KeyCode", "Local", "MacAddress"}


def load_chain(chain_der: Sequence[bytes]) -> list[x509.Certificate]:
    """The contract chain from PaymentDetailsReq (DER, leaf first)."""
    try:
        return [x509.load_der_x509_certificate(der) for der in chain_der]
    except ValueError as exc:
        raise MappingError(f"contract chain does not parse: {exc}") from exc


def contract_hash_data(
    chain: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    algorithm: str = "SHA256",
) -> list[dict[str, str]]:
    """``iso15118CertificateHashData`` for a contract chain (leaf first).

    Each certificate is paired with its issuer: the next certificate of the chain, or for
    the topmost one a root from ``roots`` whose subject matches.  Certificates without an
    OCSP responder URL, or whose issuer is unknown, are left out (OCPP requires both).
    ``algorithm`` is OCPP's hashAlgorithm (SHA256, SHA384, SHA512; ISO 15118-20 chains on
    P-521 / Ed448 use SHA512).
    """
    if algorithm not in HASH_ALGORITHMS:
        raise MappingError(f"hashAlgorithm must be one of {HASH_ALGORITHMS}: {algorithm!r}")
    out: list[dict[str, str]] = []
    for i, cert in enumerate(chain):
        issuer = chain[i + 1] if i + 1 < len(chain) else _root_for(cert, roots)
        url = responder_url(cert)
        if issuer is None or not url:
            continue
        out.append(OcspRequestData(hash_data(cert, issuer, algorithm), url).to_ocpp())
    return out[:MAX_HASH_ENTRIES]


def _root_for(cert: x509.Certificate, roots: Sequence[x509.Certificate]) -> x509.Certificate | None:
    return next((r for r in roots if r.subject == cert.issuer), None)


def pem_chain(chain: Sequence[x509.Certificate]) -> str:
    """The contract chain as concatenated PEM (AuthorizeRequest.certificate)."""
    text = "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in chain)
    if len(text) > MAX_PEM_CHAIN:
        raise MappingError(f"PEM chain of {len(text)} characters exceeds {MAX_PEM_CHAIN}")
    return text


def authorize_request(
    request: RequestAuthorization,
    *,
    hash_data_entries: Sequence[Mapping[str, str]] = (),
    certificate_pem: str | None = None,
) -> dict[str, object]:
    """AuthorizeRequest: the idToken plus, for Plug & Charge, hash data or the PEM chain."""
    payload: dict[str, object] = {"idToken": id_token(request.id_token, token_type(request))}
    if certificate_pem is not None:
        payload["certificate"] = certificate_pem
    elif hash_data_entries:
        payload["iso15118CertificateHashData"] = [dict(e) for e in hash_data_entries]
    return payload


def authorization_result(request: RequestAuthorization, response: object) -> AuthorizationResult:
    """AuthorizeResponse → AuthorizationResult.

    For Plug & Charge (``eMAID``) both ``idTokenInfo.status`` and ``certificateStatus``
    must be ``Accepted`` (C07); a missing certificateStatus is a refusal, because the CSMS
    has then not vouched for the certificate.  For EIM the token status alone decides.
    """
    body = _obj(response, "AuthorizeResponse")
    info = _obj(body.get("idTokenInfo"), "AuthorizeResponse.idTokenInfo")
    status = _str(info, "status", "idTokenInfo")
    cert_status = _opt_str(body, "certificateStatus", "AuthorizeResponse")
    pnc = request.kind == "eMAID"
    if status != "Accepted":
        accepted, reason = False, f"idToken {status}"
    elif pnc and cert_status != "Accepted":
        accepted, reason = False, f"certificate {cert_status or 'status missing'}"
    else:
        accepted, reason = True, "accepted by CSMS"
    return AuthorizationResult(
        accepted=accepted,
        id_token=request.id_token,
        certificate_status=cert_status,
        reason=reason,
    )


# --- Get15118EVCertificate (M01, M02) --------------------------------------------------------


def get_15118_ev_certificate_request(request: RequestCertificate) -> dict[str, object]:
    """Get15118EVCertificateRequest with the EV's EXI stream base64-encoded."""
    if request.action not in {"Install", "Update"}:
        raise MappingError(f"action must be Install or Update, not {request.action!r}")
    exi = base64.b64encode(request.exi_request).decode("ascii")
    if not request.exi_request or len(exi) > MAX_EXI_REQUEST:
        raise MappingError(f"EXI request of {len(request.exi_request)} bytes does not fit")
    return {
        "iso15118SchemaVersion": request.schema_version,
        "action": request.action,
        "exiRequest": exi,
    }


def certificate_result(response: object) -> CertificateResult:
    """Get15118EVCertificateResponse → CertificateResult (``None`` unless Accepted)."""
    body = _obj(response, "Get15118EVCertificateResponse")
    status = _str(body, "status", "Get15118EVCertificateResponse")
    if status != "Accepted":
        return CertificateResult(None, f"CSMS answered {status} {status_reason(body)}".strip())
    text = _str(body, "exiResponse", "Get15118EVCertificateResponse")
    try:
        exi = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MappingError(f"exiResponse is not base64: {exc}") from exc
    if not exi:
        raise MappingError("exiResponse is empty")
    return CertificateResult(exi, "accepted by CSMS")


# --- TransactionEvent (E01-E07, E15) ---------------------------------------------------------

STOPPED_REASON: dict[EndReason, str] = {
    EndReason.EV_STOP: "StoppedByEV",
    EndReason.EV_PAUSE: "StoppedByEV",
    EndReason.SEQUENCE_TIMEOUT: "Timeout",
    EndReason.SEQUENCE_ERROR: "Other",
    EndReason.FAILED_RESPONSE: "Other",
    EndReason.CONNECTION_LOST: "EVDisconnected",
    EndReason.EVSE_FAULT: "Other",
    EndReason.STATION_STOP: "Local",
    EndReason.TIMEOUT: "Timeout",
    EndReason.SHUTDOWN: "Reboot",
}
END_TRIGGER: dict[EndReason, str] = {
    EndReason.EV_STOP: "ChargingStateChanged",
    EndReason.EV_PAUSE: "ChargingStateChanged",
    EndReason.SEQUENCE_TIMEOUT: "EVCommunicationLost",
    EndReason.SEQUENCE_ERROR: "AbnormalCondition",
    EndReason.FAILED_RESPONSE: "AbnormalCondition",
    EndReason.CONNECTION_LOST: "EVCommunicationLost",
    EndReason.EVSE_FAULT: "AbnormalCondition",
    EndReason.STATION_STOP: "StopAuthorized",
    EndReason.TIMEOUT: "AbnormalCondition",
    EndReason.SHUTDOWN: "AbnormalCondition",
}
_FAULT_REASON = {
    "ground_fault": "GroundFault",
    "rcd": "GroundFault",
    "overcurrent": "OvercurrentFault",
}


# Ends that answer the CSMS's RequestStopTransaction: the station stopped, or the EV sent
# SessionStopReq after the station told it to stop (EVSENotification StopCharging).
_REMOTE_ENDS = frozenset({EndReason.STATION_STOP, EndReason.EV_STOP})


def stopped_reason(reason: EndReason, detail: str = "", *, remote: bool = False) -> str:
    """ReasonEnumType for a session's end; ``remote`` when the CSMS asked for the stop."""
    if reason in _REMOTE_ENDS and remote:
        return "Remote"
    if reason is EndReason.EVSE_FAULT:
        return _FAULT_REASON.get(detail, "Other")
    return STOPPED_REASON[reason]


def end_trigger(reason: EndReason, *, remote: bool = False) -> str:
    if reason in _REMOTE_ENDS and remote:
        return "RemoteStop"
    return END_TRIGGER[reason]


@dataclass(frozen=True, slots=True)
class MeterSample:
    """What the meter and the EV said at one instant (None: not known).

    Import values are energy into the EV, export values energy from the EV (bidirectional
    power); every value is a magnitude.  The export ones are None for a station or
    transaction that does not discharge, so such transactions report as before."""

    energy_wh: float | None = None
    power_w: float | None = None
    current_a: float | None = None
    voltage_v: float | None = None
    soc: int | None = None
    energy_export_wh: float | None = None
    power_export_w: float | None = None
    current_export_a: float | None = None

    @classmethod
    def of(
        cls,
        energy_wh: float,
        power_w: float,
        current_a: float,
        voltage_v: float,
        soc: int | None = None,
        *,
        energy_export_wh: float | None = None,
    ) -> MeterSample:
        """From signed readings (negative power/current: the EV discharges).  With
        ``energy_export_wh`` (a bidirectional transaction) the export measurands are
        filled too; without it a negative reading counts as zero import."""
        bidirectional = energy_export_wh is not None
        return cls(
            energy_wh=energy_wh,
            power_w=max(power_w, 0.0),
            current_a=max(current_a, 0.0),
            voltage_v=voltage_v,
            soc=soc,
            energy_export_wh=energy_export_wh,
            power_export_w=max(-power_w, 0.0) if bidirectional else None,
            current_export_a=max(-current_a, 0.0) if bidirectional else None,
        )


_MEASURANDS = (
    ("energy_wh", "Energy.Active.Import.Register", "Wh"),
    ("power_w", "Power.Active.Import", "W"),
    ("current_a", "Current.Import", "A"),
    ("voltage_v", "Voltage", "V"),
    ("soc", "SoC", "Percent"),
    ("energy_export_wh", "Energy.Active.Export.Register", "Wh"),
    ("power_export_w", "Power.Active.Export", "W"),
    ("current_export_a", "Current.Export", "A"),
)
SIGNED_MEASURANDS = frozenset({"Energy.Active.Import.Register", "Energy.Active.Export.Register"})


def meter_value(
    sample: MeterSample,
    when: dt.datetime,
    context: str,
    measurands: frozenset[str] | None = None,
    signed: Mapping[str, str] | None = None,
) -> dict[str, object] | None:
    """MeterValueType for one sample (``None`` when nothing is known); ``measurands``
    selects (SampledDataCtrlr.Tx*Measurands), ``None`` sends all known.  ``signed`` (a
    SignedMeterValueType) goes with the energy registers it covers."""
    sampled: list[dict[str, object]] = []
    for attr, measurand, unit in _MEASURANDS:
        value = getattr(sample, attr)
        if value is None or (measurands is not None and measurand not in measurands):
            continue
        entry: dict[str, object] = {
            "value": round(float(value), 3),
            "context": context,
            "measurand": measurand,
            "unitOfMeasure": {"unit": unit},
        }
        if measurand == "SoC":
            entry["location"] = "EV"
        if signed is not None and measurand in SIGNED_MEASURANDS:
            entry["signedMeterValue"] = dict(signed)
        sampled.append(entry)
    if not sampled:
        return None
    return {"timestamp": ocpp_timestamp(when), "sampledValue": sampled}


@dataclass(frozen=True, slots=True)
class TxEvent:
    """One TransactionEvent to build (all the station-side facts it needs)."""

    event_type: str  # Started | Updated | Ended
    transaction_id: str
    seq_no: int
    trigger_reason: str
    when: dt.datetime
    evse_id: int = 1
    connector_id: int = 1
    charging_state: str | None = None
    stopped_reason: str | None = None
    id_token: str | None = None
    id_token_type: str = "eMAID"  # noqa: S105 - a token type, not a secret
    remote_start_id: int | None = None
    meter: MeterSample | None = None
    meter_context: str = "Sample.Periodic"
    measurands: frozenset[str] | None = None  # None: every known measurand
    offline: bool = False
    signed: Mapping[str, str] | None = None  # SignedMeterValueType for the energy registers
    meter_time: dt.datetime | None = None  # the meter value's own time stamp (else when)


def transaction_event(event: TxEvent) -> dict[str, object]:
    """TransactionEventRequest for ``event``."""
    if event.event_type not in {"Started", "Updated", "Ended"}:
        raise MappingError(f"eventType {event.event_type!r}")
    if event.seq_no < 0:
        raise MappingError("seqNo must be >= 0")
    info: dict[str, object] = {"transactionId": event.transaction_id}
    if event.charging_state is not None:
        info["chargingState"] = event.charging_state
    if event.stopped_reason is not None:
        info["stoppedReason"] = event.stopped_reason
    if event.remote_start_id is not None:
        info["remoteStartId"] = event.remote_start_id
    payload: dict[str, object] = {
        "eventType": event.event_type,
        "timestamp": ocpp_timestamp(event.when),
        "triggerReason": event.trigger_reason,
        "seqNo": event.seq_no,
        "transactionInfo": info,
    }
    if event.offline:
        payload["offline"] = True
    if event.event_type == "Started":
        payload["evse"] = {"id": event.evse_id, "connectorId": event.connector_id}
    if event.id_token is not None:
        payload["idToken"] = id_token(event.id_token, event.id_token_type)
    if event.meter is not None:
        value = meter_value(
            event.meter,
            event.meter_time or event.when,
            event.meter_context,
            event.measurands,
            event.signed,
        )
        if value is not None:
            payload["meterValue"] = [value]
    return payload


# --- signed meter values (ISO 15118-20 MeteringConfirmation) --------------------------------

SIGNED_ENCODING = "ISO15118-20-SignedMeteringData-EXI"


def _signing_method(uri: str, public_key: bytes) -> str:
    """A short signingMethod (maxLength 50) for the xmldsig SignatureMethod URI and key:
    ``ECDSAP521SHA512`` style as OCPP's own ``ECDSAP256SHA256``, ``Ed448`` for EdDSA."""
    try:
        key = load_der_public_key(public_key)
    except ValueError as exc:
        raise MappingError(f"receipt public key does not parse: {exc}") from exc
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ec.EllipticCurvePublicKey):
        bits = {"secp256r1": "256", "secp384r1": "384", "secp521r1": "521"}.get(key.curve.name)
        digest = next((d for d in ("512", "384", "256") if uri.lower().endswith(d)), None)
        if bits is not None and digest is not None:
            return f"ECDSAP{bits}SHA{digest}"
    return uri.rsplit("#", 1)[-1][:MAX_SIGNED_LABEL] or "unknown"


def _lv(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise MappingError("signed receipt part longer than 65535 bytes")
    return len(data).to_bytes(2, "big") + data


def signed_meter_value(receipt: MeteringReceipt) -> dict[str, str]:
    """SignedMeterValueType for an EV-signed meter receipt (ISO 15118-20).

    ``signedMeterData`` is base64 of three length-prefixed parts (2-byte big-endian length
    each): the EXI fragment of SignedMeteringData, the EXI fragment of the SignedInfo the
    EV signed (it holds the SHA-512 digest of the first part) and the raw SignatureValue,
    so a CSMS can check the digest and the signature with ``publicKey`` (the contract
    certificate's SubjectPublicKeyInfo, base64 DER); ``encodingMethod`` names that layout.
    """
    blob = _lv(receipt.signed_meter_data) + _lv(receipt.signed_info) + _lv(receipt.signature_value)
    data = base64.b64encode(blob).decode("ascii")
    key = base64.b64encode(receipt.public_key).decode("ascii")
    if len(data) > MAX_SIGNED_DATA or len(key) > MAX_SIGNED_DATA:
        raise MappingError(f"signed receipt of {len(data)} base64 characters does not fit")
    return {
        "signedMeterData": data,
        "signingMethod": _signing_method(receipt.signing_method, receipt.public_key),
        "encodingMethod": SIGNED_ENCODING,
        "publicKey": key,
    }


def transaction_event_response_status(response: object) -> str | None:
    """``idTokenInfo.status`` of a TransactionEventResponse, if it carries one."""
    body = _obj(response, "TransactionEventResponse")
    info = body.get("idTokenInfo")
    if info is None:
        return None
    return _str(_obj(info, "idTokenInfo"), "status", "idTokenInfo")


# --- BootNotification, Heartbeat -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BootAnswer:
    status: str  # Accepted | Pending | Rejected
    interval: int  # heartbeat interval (Accepted) or retry interval (Pending/Rejected)
    current_time: str


def boot_answer(response: object) -> BootAnswer:
    body = _obj(response, "BootNotificationResponse")
    status = _str(body, "status", "BootNotificationResponse")
    if status not in {"Accepted", "Pending", "Rejected"}:
        raise MappingError(f"BootNotificationResponse.status {status!r}")
    return BootAnswer(
        status=status,
        interval=max(0, _int(body, "interval", "BootNotificationResponse")),
        current_time=_str(body, "currentTime", "BootNotificationResponse"),
    )
