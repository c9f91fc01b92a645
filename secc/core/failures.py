"""Errors that answer the EV, and the minimal FAILED response for any request type.

A handler raises a :class:`PeerError` subclass; the session catches it in one place
(:meth:`secc.core.session.SeccSession.handle`), answers with :func:`failed_response` for
the request's response type, opens the contactors and closes the session.

:func:`failed_response` builds the smallest schema-valid response from the generated
classes' ``FIELDS`` metadata: every required field gets a neutral value (EVSEProcessing
``Finished``, zeroed PhysicalValues, an EVSE status of the session's kind), so the
encoder accepts it whatever the request type.
"""

# ruff: noqa: N818 - the exception names are the ISO ResponseCode names
from __future__ import annotations

from enum import Enum
from typing import Any

from secc import codec
from secc.core.actions import EndReason
from secc.errors import SeccError


class PeerError(SeccError):
    """A request the station refuses; ``code`` is the ResponseCode name it answers with."""

    code = "FAILED"
    end_reason = EndReason.FAILED_RESPONSE

    def __init__(self, detail: str = "", code: str | None = None) -> None:
        super().__init__(detail or self.code)
        if code is not None:
            self.code = code
        self.detail = detail


class SequenceError(PeerError):
    code = "FAILED_SequenceError"
    end_reason = EndReason.SEQUENCE_ERROR


class UnknownSession(PeerError):
    code = "FAILED_UnknownSession"


class SignatureError(PeerError):
    code = "FAILED_SignatureError"


class ChallengeInvalid(PeerError):
    code = "FAILED_ChallengeInvalid"


class CertificateError(PeerError):
    """FAILED_CertChainError, FAILED_CertificateExpired, FAILED_CertificateRevoked, ..."""

    code = "FAILED_CertChainError"


class NoCertificateAvailable(PeerError):
    code = "FAILED_NoCertificateAvailable"


class PaymentSelectionInvalid(PeerError):
    code = "FAILED_PaymentSelectionInvalid"


class ServiceSelectionInvalid(PeerError):
    code = "FAILED_ServiceSelectionInvalid"


class ServiceIdInvalid(PeerError):
    code = "FAILED_ServiceIDInvalid"


class NoChargeServiceSelected(PeerError):
    code = "FAILED_NoChargeServiceSelected"


class WrongChargeParameter(PeerError):
    code = "FAILED_WrongChargeParameter"


class WrongEnergyTransferMode(PeerError):
    code = "FAILED_WrongEnergyTransferMode"


class TariffSelectionInvalid(PeerError):
    code = "FAILED_TariffSelectionInvalid"


class ChargingProfileInvalid(PeerError):
    code = "FAILED_ChargingProfileInvalid"


class PowerDeliveryNotApplied(PeerError):
    code = "FAILED_PowerDeliveryNotApplied"


class ContactorError(PeerError):
    code = "FAILED_ContactorError"


class MeteringSignatureNotValid(PeerError):
    code = "FAILED_MeteringSignatureNotValid"


class NotAuthorized(PeerError):
    """Authorization refused (EIM or PnC): plain FAILED."""

    code = "FAILED"


class Timeout(PeerError):
    """A station-side limit (CableCheck, PreCharge, certificate budget) ran out."""

    code = "FAILED"
    end_reason = EndReason.TIMEOUT


# --- minimal responses ---------------------------------------------------------------------

_ABSTRACT = {"BodyBase", "EVSEStatus", "EVSEChargeParameter", "EVChargeParameter", "SASchedules"}


def response_name(request_name: str) -> str:
    """``SessionSetupReq`` -> ``SessionSetupRes``; DIN's SessionStop type -> SessionStopRes."""
    if request_name == "SessionStop":
        return "SessionStopRes"
    if request_name.endswith("Req"):
        return request_name[:-3] + "Res"
    raise ValueError(f"{request_name} is not a request type")


# A refusal named in one standard's terms, answered in a schema that lacks that code:
# DIN SPEC 70121 spells one differently and has no NoChargeServiceSelected, ContactorError,
# CertificateRevoked or CertificateNotAllowedAtThisEVSE; ISO 15118-2 lacks DIN's two.
_EQUIVALENT: dict[str, dict[str, str]] = {
    "din": {
        "FAILED_WrongEnergyTransferMode": "FAILED_WrongEnergyTransferType",
        "FAILED_NoChargeServiceSelected": "FAILED_ServiceSelectionInvalid",
        "FAILED_CertificateRevoked": "FAILED_CertChainError",
        "FAILED_CertificateNotAllowedAtThisEVSE": "FAILED_CertChainError",
    },
    "iso2": {"FAILED_WrongEnergyTransferType": "FAILED_WrongEnergyTransferMode"},
}


def response_code(schema: str, code: str) -> str:
    """The ResponseCode ``schema`` answers refusal ``code`` with: the same name when the
    schema has it, else its equivalent, else plain ``FAILED`` (a refusal always reaches the
    EV as a code its schema can carry)."""
    values = {c.value for c in codec.schema_module(schema).ResponseCode}
    if code in values:
        return code
    alias = _EQUIVALENT.get(schema, {}).get(code)
    if alias is not None and alias in values:
        return alias
    return "FAILED"


def failed_response(
    schema: str,
    request_name: str,
    code: str,
    *,
    dc: bool,
    evse_id: str = "ZZ00000",
    header: Any = None,
) -> Any:
    """The minimal response body of ``request_name`` carrying ResponseCode ``code`` (or the
    schema's equivalent, :func:`response_code`).

    ``header``: the MessageHeader of an ISO 15118-20 response (its messages carry it in
    the root element; the caller builds it with the module of ``schema``)."""
    mod = codec.schema_module(schema)
    cls = getattr(mod, response_name(request_name))
    preset: dict[str, Any] = {"response_code": mod.ResponseCode(response_code(schema, code))}
    if header is not None:
        preset["header"] = header
    return _fill(mod, cls, dc, evse_id, preset)


def minimal_element(schema: str, class_name: str, *, dc: bool = True) -> Any:
    """The smallest valid instance of a generated class (used to build arbitrary requests)."""
    mod = codec.schema_module(schema)
    return _fill(mod, getattr(mod, class_name), dc, "ZZ00000", {})


def _fill(mod: Any, cls: type, dc: bool, evse_id: str, preset: dict[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    for f in mod.FIELDS[cls]:
        if f.name in preset:
            kwargs[f.name] = preset[f.name]
            continue
        if f.optional:
            continue
        value = _value(mod, f, dc, evse_id)
        kwargs[f.name] = (value,) if f.repeated else value
    return cls(**kwargs)


def _value(mod: Any, f: Any, dc: bool, evse_id: str) -> Any:
    t = f.tinfo
    if f.name == "evseid":
        return evse_id.encode() if t[1][0][2][0] == "bytes" else evse_id
    if t == "str":
        return "ID1"
    if t == "bytes":
        return b""
    if t[0] == "elem":
        members = [m[2] for m in t[1]]
        concrete = [m for m in members if m[0] != "class" or m[1].__name__ not in _ABSTRACT]
        kind = "DC_" if dc else "AC_"
        classes = [m for m in concrete if m[0] == "class"]
        # an ISO 15118-20 choice of control modes: the plain scheduled one of the family
        pick = next(
            (m for m in classes if m[1].__name__.startswith(kind)),
            next(
                (m for m in classes if m[1].__name__.startswith("Scheduled_" + kind)),
                concrete[0],
            ),
        )
        t = pick
    kind = t[0]
    if kind == "class":
        if t[1].__name__ == "PhysicalValue":
            return t[1](multiplier=0, unit=next(iter(mod.UnitSymbol)), value=0)
        return _fill(mod, t[1], dc, evse_id, {})
    if kind == "int":
        lo, hi = t[1], t[2]
        if lo is not None and lo > 0:
            return lo
        if hi is not None and hi < 0:
            return hi
        return 0
    if kind == "bool":
        return False
    if kind == "str":
        return "x" * (t[1] or 0)
    if kind == "bytes":
        return bytes(t[1] or 0)
    if kind == "enum":
        first: Enum = next(iter(t[1]))
        return first
    raise TypeError(f"no minimal value for {f.name}: {t!r}")
