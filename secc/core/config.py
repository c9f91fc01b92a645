"""Session configuration: what the station offers and how long it waits.  Frozen data, no I/O.

The runtime builds one :class:`SessionConfig` from the station's TOML (``secc.config``)
and hands it to every :class:`secc.core.session.SeccSession`.  Timer names follow
ISO 15118-2 Table 109 / DIN SPEC 70121 (see DESIGN.md §4); every value is overridable.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import field
from typing import TYPE_CHECKING, Protocol

from hal.records import record
from secc.errors import ConfigError

if TYPE_CHECKING:  # annotations only: `secc run` starts without cryptography (issue 17)
    from cryptography import x509

ISO2_NAMESPACE = "urn:iso:15118:2:2013:MsgDef"
ENERGY_MODES = frozenset(
    {
        "AC_single_phase_core",
        "AC_three_phase_core",
        "DC_core",
        "DC_extended",
        "DC_combo_core",
        "DC_unique",
    }
)
DIN_NAMESPACE = "urn:din:70121:2012:MsgDef"
# ISO 15118-20: the EV offers one namespace per energy transfer family in
# supportedAppProtocolReq (version 1.0); the messages then use the CommonMessages, AC
# and DC schemas over V2GTP payload types 0x8002-0x8004.
ISO20_AC_NAMESPACE = "urn:iso:std:iso:15118:-20:AC"
ISO20_DC_NAMESPACE = "urn:iso:std:iso:15118:-20:DC"
ISO20_NAMESPACES = frozenset({ISO20_AC_NAMESPACE, ISO20_DC_NAMESPACE})
PROTOCOLS = frozenset({ISO2_NAMESPACE, DIN_NAMESPACE}) | ISO20_NAMESPACES
# ISO 15118-20 control modes (ServiceDetail parameter ControlMode 1 and 2)
CONTROL_MODES = ("Scheduled", "Dynamic")


@record
class Timers:
    """Station-side time limits in seconds."""

    # V2G_SECC_Sequence_Timeout: the EV's next request must arrive within this time.
    sequence_timeout: float = 60.0
    # ISO 15118-20 shortens it after AC_ChargeLoopRes / DC_ChargeLoopRes (the contactors
    # are closed): a silent EV must not hold the power for a minute.
    charge_loop_sequence_timeout: float = 0.5
    # V2G_SECC_CommunicationSetup_Performance_Time: session start until SessionSetupReq.
    communication_setup: float = 18.0
    # CableCheck and PreCharge limits (the EV's V2G_EVCC_CableCheck_Timeout and
    # V2G_EVCC_PreCharge_Timeout: beyond them the station gives up too).
    cable_check: float = 40.0
    pre_charge: float = 7.0
    # V2G_SECC_Msg_Performance_Time: the station's own answer budget (Table 109).
    msg_performance: float = 1.5
    long_msg_performance: float = 4.5  # ServiceDetail, PaymentDetails, PowerDelivery, ...
    current_demand_performance: float = 0.025
    charge_loop_performance: float = 0.25  # ISO 15118-20 AC/DC_ChargeLoopReq
    # The 4.5 s budget for CertificateInstallation/Update (back-end answer included).
    certificate_installation: float = 4.5
    # Contactor feedback must follow the command within this time, else ContactorError.
    contactor_feedback: float = 1.0
    # After EVSENotification=StopCharging the EV has this long to stop (PowerDelivery
    # Stop); then the station opens the contactors and ends the session itself.
    stop_grace: float = 10.0
    # ISO 15118-20: how long the station keeps answering EVSEProcessing=Ongoing
    # (Authorization, ScheduleExchange, DC_CableCheck: the EV's V2G_EVCC_Ongoing_Timeout)
    # before it gives up and ends the session.
    ongoing: float = 60.0

    def budget(self, request: str) -> float:
        """V2G_SECC_Msg_Performance_Time for answering ``request`` (Table 109): the runtime
        measures its answer time against it and logs an overrun."""
        if request == "CurrentDemandReq":
            return self.current_demand_performance
        if request in ("DC_ChargeLoopReq", "AC_ChargeLoopReq"):
            return self.charge_loop_performance
        if request in ("CertificateInstallationReq", "CertificateUpdateReq"):
            return self.certificate_installation
        if request in _LONG_BUDGET:
            return self.long_msg_performance
        return self.msg_performance


_LONG_BUDGET = frozenset(
    {
        "ServiceDetailReq",
        "PaymentDetailsReq",
        "PowerDeliveryReq",
        "MeteringReceiptReq",
        "ScheduleExchangeReq",
    }
)


@record
class AcLimits:
    nominal_voltage: float = 230.0
    max_current: float = 32.0  # per phase
    phases: int = 3
    nominal_frequency: float = 50.0  # hertz (ISO 15118-20 EVSENominalFrequency)
    # ISO 15118-20 AC_BPT: the largest current per phase the station takes back from the
    # EV (0: no discharge); used only where SessionConfig.bpt is on.
    max_discharge_current: float = 0.0

    @property
    def max_power(self) -> float:
        return self.nominal_voltage * self.max_current * self.phases

    @property
    def max_discharge_power(self) -> float:
        return self.nominal_voltage * self.max_discharge_current * self.phases


@record
class DcLimits:
    max_voltage: float = 500.0
    min_voltage: float = 150.0
    max_current: float = 125.0
    min_current: float = 0.0
    max_power: float = 50_000.0
    peak_current_ripple: float = 2.0
    current_regulation_tolerance: float = 1.0
    precharge_tolerance: float = 20.0  # |present - target| volts to count as "reached"
    # ISO 15118-20 DC_BPT: what the power module can sink from the EV (0: no discharge);
    # used only where SessionConfig.bpt is on.  Magnitudes, positive numbers.
    max_discharge_current: float = 0.0
    min_discharge_current: float = 0.0
    max_discharge_power: float = 0.0


@record
class ScheduleEntry:
    """One PMaxScheduleEntry: from ``start`` seconds on, at most ``max_power`` watts."""

    start: int
    max_power: float
    duration: int | None = None


@record
class ContractVerdict:
    """Outcome of a contract chain check: ``response_code`` is ``OK`` or a FAILED_* name."""

    response_code: str
    reason: str = ""
    emaid: str | None = None


class PncVerifier(Protocol):
    """The crypto the Plug & Charge handlers need (the real one is :mod:`secc.core.pnc_crypto`)."""

    def verify_contract_chain(
        self, leaf: bytes, sub_cas: Sequence[bytes], emaid: str, utc_now: dt.datetime
    ) -> ContractVerdict: ...

    def verify_signature(
        self, signed_info: object, signature_value: bytes, fragments: dict[str, bytes], leaf: bytes
    ) -> str | None:
        """None when the signature checks, else the reason it does not."""
        ...


@record
class PncTrust:
    """Trust anchors for contract chains (MO roots, V2G roots) and known-revoked certs."""

    roots: tuple[x509.Certificate, ...] = ()
    revoked: frozenset[str] = frozenset()  # SHA-256 fingerprints (hex)
    # OEM provisioning roots (and the V2G roots) an ISO 15118-20 CertificateInstallationReq's
    # OEMProvisioningCertificateChain is checked against; empty: only its signature is
    # checked, with the provisioning certificate's own key (the back end validates it).
    oem_roots: tuple[x509.Certificate, ...] = ()


_CURRENCY = r"[A-Z]{3}"  # (patterns compiled by re on first use: issue 17)
_LANGUAGE = r"[a-z]{2,3}"
# the largest price a RationalNumber (int16 value) carries to the unit; smaller prices
# go to 1/1000 where it fits
_PRICE_MAX = 32767


@record
class Tariff:
    """The station's flat energy price, sent to an ISO 15118-20 EV in scheduled mode as
    the AbsolutePriceSchedule of ScheduleExchangeRes (and announced as Pricing 1,
    absolute prices, in ServiceDetail).  No tariff: no price schedule (Pricing 0).
    A bad value raises ValueError (the config loader names the file and key)."""

    currency: str  # ISO 4217 code, e.g. "EUR"
    price_per_kwh: float  # energy fee in ``currency`` per kWh (to 1/1000 below 32.767)
    language: str = "eng"  # ISO 639 code of the description (-20: at most 3 characters)
    # VAT in percent (a TaxRule on the energy fee); 0: no tax rule is sent
    tax_rate: float = 0.0
    tax_included: bool = True  # price_per_kwh already includes tax_rate
    description: str | None = None  # PriceScheduleDescription (at most 160 characters)

    def __post_init__(self) -> None:
        if not re.fullmatch(_CURRENCY, self.currency):
            raise ValueError(f"tariff currency {self.currency!r}: an ISO 4217 code like EUR")
        if not 0 <= self.price_per_kwh <= _PRICE_MAX:
            raise ValueError(f"tariff price_per_kwh {self.price_per_kwh}: 0 to {_PRICE_MAX}")
        if not re.fullmatch(_LANGUAGE, self.language):
            raise ValueError(f"tariff language {self.language!r}: an ISO 639 code like eng")
        if not 0 <= self.tax_rate <= 100:
            raise ValueError(f"tariff tax_rate {self.tax_rate}: a percentage, 0 to 100")
        if self.description is not None and not 0 < len(self.description) <= 160:
            raise ValueError("tariff description: 1 to 160 characters")


_DIN_EVSE_ID = r"[0-9*]{1,64}"  # one per half octet, DIN XSD: <= 32 octets


@record
class SessionConfig:
    evse_id: str = "DE*ABC*E1234567*1"
    # DIN SPEC 70121 sends a DIN SPEC 91286 EVSE ID ("49*89*6360"), packed into hexBinary;
    # None: derive it from evse_id when that is digits and '*' only, else send 0x00.
    din_evse_id: str | None = None
    energy_modes: tuple[str, ...] = ("AC_three_phase_core", "DC_extended")
    ac: AcLimits = field(default_factory=AcLimits)
    dc: DcLimits = field(default_factory=DcLimits)
    tls: bool = False  # Contract payment (Plug & Charge) is offered only over TLS
    # -20 is selected only where iso20_allowed (TLS 1.3 or the lab switch)
    protocols: tuple[str, ...] = (
        ISO2_NAMESPACE,
        DIN_NAMESPACE,
        ISO20_AC_NAMESPACE,
        ISO20_DC_NAMESPACE,
    )
    pnc_enabled: bool = True
    certificate_installation: bool = True
    internet_service: bool = False
    metering_receipts: bool = False
    free_service: bool = False  # EIM test stations: no authorization needed
    meter_id: str | None = "METER-1"
    timers: Timers = field(default_factory=Timers)
    trust: PncTrust = field(default_factory=PncTrust)
    verifier: PncVerifier | None = None  # None: the real certs code (pnc_crypto)
    sales_tariff: object | None = None  # an iso2.SalesTariff passed through to the EV
    notification_max_delay: int = 0
    # Seconds ChargeParameterDiscovery answers Ongoing while no CSMS schedule is known
    # (ISO 15118-2 only); 0: offer the EVSE's own limits at once.
    schedule_wait: float = 0.0
    # ISO 15118-20 is offered only over TLS 1.3 ([V2G20-2356]): the transport sets tls13
    # per connection when TLS 1.3 was negotiated; iso20_allow_tcp lets a lab run -20
    # over plain TCP.  Without either, the -20 namespaces in ``protocols`` are ignored.
    tls13: bool = False
    iso20_allow_tcp: bool = False
    # The -20 control modes offered in ServiceDetail (a parameter set each), subset of
    # CONTROL_MODES.
    iso20_control_modes: tuple[str, ...] = CONTROL_MODES
    # SessionStop(ServiceRenegotiation) back to ServiceDiscovery; off: the station answers
    # FAILED_NoServiceRenegotiationSupported (and says so in ServiceDiscoveryRes).
    iso20_service_renegotiation: bool = True
    # PowerDelivery(Standby) in the charge loop; off: WARNING_StandbyNotAllowed.
    iso20_standby: bool = True
    # ISO 15118-20 Plug & Charge: the EV's certificate chain (leaf first) the transport
    # verified in the mutual TLS 1.3 handshake, set per connection like ``tls13``; empty:
    # the EV sent none (EIM only, or PnC without vehicle authentication).
    vehicle_chain: tuple[x509.Certificate, ...] = ()
    # ISO 15118-20: ask the EV for a signed MeteringConfirmation in the charge loop (the
    # receipt goes to the OCPP transaction as :class:`secc.core.actions.MeteringReceipt`).
    metering_confirmation: bool = False
    # ISO 15118-20 bidirectional power transfer: offer AC_BPT / DC_BPT (services 5 and 6)
    # with the discharge limits of ``ac`` / ``dc``.
    bpt: bool = False
    # ISO 15118-20 scheduled mode: the price schedule sent with the power schedule;
    # None: none is sent.
    tariff: Tariff | None = None

    def __post_init__(self) -> None:
        if not 7 <= len(self.evse_id) <= 37:
            raise ConfigError(f"evse_id {self.evse_id!r}: ISO 15118-2 wants 7 to 37 characters")
        if self.din_evse_id is not None and not re.fullmatch(_DIN_EVSE_ID, self.din_evse_id):
            raise ConfigError(
                f"din_evse_id {self.din_evse_id!r}: a DIN SPEC 91286 EVSE ID of digits and "
                "'*' (at most 64 of them), e.g. 49*89*6360"
            )
        unknown = set(self.energy_modes) - ENERGY_MODES
        if unknown or not self.energy_modes:
            raise ConfigError(
                f"energy_modes {self.energy_modes!r}: use some of {', '.join(sorted(ENERGY_MODES))}"
            )
        bad = set(self.protocols) - PROTOCOLS
        if bad or not self.protocols:
            raise ConfigError(
                f"protocols {self.protocols!r}: use some of {', '.join(sorted(PROTOCOLS))}"
            )
        modes = self.iso20_control_modes
        if not modes or set(modes) - set(CONTROL_MODES) or len(set(modes)) != len(modes):
            raise ConfigError(
                f"iso20_control_modes {modes!r}: use Scheduled and/or Dynamic (no repeats)"
            )
        if self.ac.phases not in (1, 3):
            raise ConfigError(f"ac.phases {self.ac.phases}: 1 or 3")

    @property
    def iso20_allowed(self) -> bool:
        """-20 may be negotiated on this connection (TLS 1.3, or the lab switch)."""
        return self.tls13 or self.iso20_allow_tcp

    @property
    def payment_options(self) -> tuple[str, ...]:
        if self.tls and self.pnc_enabled:
            return ("Contract", "ExternalPayment")
        return ("ExternalPayment",)


@record
class PausedSession:
    """What a paused session leaves behind so that the EV can resume it with its SessionID.

    The runtime keeps it (``SeccSession.paused``) and passes it to the next session of the
    same connector."""

    session_id: bytes
    evcc_id: bytes
    protocol: str
    payment_option: str
    emaid: str | None
    contract_chain: tuple[bytes, ...] = ()
    # ISO 15118-20: a resumed session goes straight to ChargeParameterDiscovery
    # ([V2G20-2097], [V2G20-2098]): the authorization and the selected service carry over.
    authorized: bool = False
    service_id: int | None = None
    parameter_set_id: int | None = None
    control_mode: str | None = None
    # ISO 15118-20 [V2G20-2545]: a resume must come from the same EV; the vehicle's TLS
    # leaf certificate (DER, mutual TLS) binds the paused session to it where there was one
    vehicle_certificate: bytes | None = None
