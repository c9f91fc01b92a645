"""What the session core is fed: requests from the EV, facts from the EVSE and from the
OCPP bridge, and time.  Frozen, slotted dataclasses; the runtime builds them, the core
reads them; nothing here does I/O.

Units: volts, amperes, watts, watt-hours as floats; times as seconds (monotonic ``now``
is passed to ``handle`` separately, never stored in an event).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from hal.records import record


class Schema(StrEnum):
    """Which grammar a V2GTP payload was decoded with."""

    APPHAND = "apphand"
    ISO2 = "iso2"
    DIN = "din"
    # ISO 15118-20: one schema per V2GTP payload type (secc.v2gtp.PayloadType)
    ISO20_COMMON = "iso20-common"
    ISO20_AC = "iso20-ac"
    ISO20_DC = "iso20-dc"
    ISO20_ACDP = "iso20-acdp"
    ISO20_WPT = "iso20-wpt"


@record
class RequestReceived:
    """A decoded request from the EV (``supportedAppProtocolReq`` or a ``V2G_Message``)."""

    message: object
    schema: Schema
    # values outside their XSD facets that the codec decoded (secc.codec.Violation): the
    # core logs them and decides (secc/core/session.py, _on_request)
    violations: tuple[Any, ...] = ()
    # the root element's name (codec RootInfo.local): ISO 15118-20 ACDP gives one type to
    # two elements (ACDP_ConnectReq, ACDP_DisconnectReq), so the class alone cannot say
    # which request came, nor which response answers it
    element: str | None = None


@record
class TimerExpired:
    """The deadline the core asked for has passed (the runtime feeds it at ``deadline``)."""

    timer: str


@record
class ConnectionLost:
    """The TCP/TLS connection closed or was reset."""

    reason: str


@record
class AuthorizationResult:
    """Answer to :class:`secc.core.actions.RequestAuthorization`.

    For Plug & Charge both the token and the certificate must be accepted (OCPP 2.0.1
    C07): ``accepted`` is the conjunction; ``certificate_status`` carries OCPP's
    AuthorizeCertificateStatusEnumType (``Accepted``, ``CertificateExpired``,
    ``CertificateRevoked``, ``NoCertificateAvailable``, ``CertChainError``,
    ``SignatureError``, ``ContractCancelled``) where the CSMS or the local check gave one.
    """

    accepted: bool
    id_token: str
    certificate_status: str | None = None
    reason: str = ""


@record
class CertificateResult:
    """Answer to :class:`secc.core.actions.RequestCertificate` (OCPP Get15118EVCertificate).

    ``exi_response`` is the complete EXI stream of the CertificateInstallationRes /
    CertificateUpdateRes the back end produced (the ``exiResponse``, base64-decoded);
    ``None`` when the back end failed or answered too late.
    """

    exi_response: bytes | None
    reason: str = ""


@record
class EvseStatus:
    """A snapshot of the EVSE's measured state, fed whenever it changes.

    ``isolation`` uses ISO 15118-2 isolationLevelType names (``Invalid``, ``Valid``,
    ``Warning``, ``Fault``, ``No_IMD``); ``contactors_closed`` is the feedback, not the
    command.
    """

    present_voltage: float = 0.0
    present_current: float = 0.0
    isolation: str = "Invalid"
    contactors_closed: bool = False
    energy_wh: float = 0.0
    power_w: float = 0.0  # negative while the EV discharges (BPT)
    # ISO 15118-20 BPT: the meter's export register (energy from the EV), watt-hours
    energy_export_wh: float = 0.0


@record
class EvseFault:
    """A fault the HAL detected (RCD trip, contactor feedback mismatch, CP E/F, MCU silence,
    isolation fault).  The core opens the contactors and ends the session."""

    kind: str
    detail: str = ""


@record
class StopRequested:
    """The station wants the session to end: remote stop from the CSMS, a local stop
    button, deauthorization.  The core answers the next request with EVSENotification
    StopCharging and ends the session cleanly."""

    reason: str


Event = (
    RequestReceived
    | TimerExpired
    | ConnectionLost
    | AuthorizationResult
    | CertificateResult
    | EvseStatus
    | EvseFault
    | StopRequested
)


@record
class TariffCost:
    """One Cost of a ConsumptionCost (ISO 15118-2 CostType, OCPP CostType): ``kind`` is
    relativePricePercentage / RenewableGenerationPercentage / CarbonDioxideEmission."""

    kind: str
    amount: int
    multiplier: int | None = None


@record
class TariffEntry:
    """One SalesTariffEntry: from ``start`` seconds (for ``duration`` or until the next),
    its price level and consumption costs (``start_watts``, costs) from that power on."""

    start: int
    duration: int | None = None
    price_level: int | None = None
    consumption: tuple[tuple[float, tuple[TariffCost, ...]], ...] = ()


@record
class SalesTariffFacts:
    """A SalesTariff from the CSMS (OCPP chargingSchedule.salesTariff), checked against
    the ISO 15118-2 schema's limits by the bridge."""

    tariff_id: int
    entries: tuple[TariffEntry, ...]
    description: str | None = None
    price_levels: int | None = None


@record
class ScheduleOffer:
    """One schedule the EV may choose (an OCPP chargingSchedule: SAScheduleTupleID = its
    id): entries as in :class:`ChargingScheduleUpdate`, and its SalesTariff if any."""

    tuple_id: int
    entries: tuple[tuple[int, float, int | None], ...]
    sales_tariff: SalesTariffFacts | None = None


@record
class ChargingScheduleUpdate:
    """A charging schedule from the CSMS (OCPP SetChargingProfile / TxProfile) for the next
    ChargeParameterDiscoveryRes: ``entries`` are (start seconds, max watts, duration
    seconds or None), ordered by start.  ``offers`` (when given, up to 3; the first has
    ``entries``) are the alternatives the EV chooses from, each with its own tuple id and
    SalesTariff.  Added by the session core; not part of :data:`Event` so that existing
    exhaustive matches stay valid."""

    entries: tuple[tuple[int, float, int | None], ...]
    offers: tuple[ScheduleOffer, ...] = ()
