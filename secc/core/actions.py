"""What the session core asks the runtime to do.  Frozen, slotted dataclasses; the
runtime (``secc.runtime.perform``) maps each to the codec + socket, the HAL or the OCPP
bridge.  Safety-relevant ordering is the core's job: an action list that ends a session
always has :class:`OpenContactors` before :class:`CloseConnection` and
:class:`SessionEnded`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from secc.core.events import Schema


class EndReason(StrEnum):
    """Why a session ended (the OCPP bridge maps these to TransactionEvent stoppedReason)."""

    EV_STOP = "ev_stop"  # SessionStopReq Terminate
    EV_PAUSE = "ev_pause"  # SessionStopReq Pause (the session id may be resumed)
    SEQUENCE_TIMEOUT = "sequence_timeout"  # V2G_SECC_Sequence_Timeout
    SEQUENCE_ERROR = "sequence_error"  # a request out of order
    FAILED_RESPONSE = "failed_response"  # any other FAILED_* answer
    CONNECTION_LOST = "connection_lost"
    EVSE_FAULT = "evse_fault"
    STATION_STOP = "station_stop"  # StopRequested (remote or local)
    TIMEOUT = "timeout"  # CommunicationSetup, CableCheck, PreCharge limits
    SHUTDOWN = "shutdown"


@dataclass(frozen=True, slots=True)
class SendResponse:
    """Encode ``message`` with ``schema`` and write it as one V2GTP frame."""

    message: object
    schema: Schema
    name: str  # the body element's name, for traces and logs
    # when set, these bytes go out as the payload instead of ``message`` encoded: a
    # message passed through from the back end unchanged (-20 CertificateInstallationRes);
    # ``message`` is its decoded form, for traces
    exi: bytes | None = None


@dataclass(frozen=True, slots=True)
class CloseConnection:
    reason: str


@dataclass(frozen=True, slots=True)
class CloseContactors:
    pass


@dataclass(frozen=True, slots=True)
class OpenContactors:
    reason: str


@dataclass(frozen=True, slots=True)
class StartIsolationTest:
    """DC CableCheck: apply the test voltage and start the isolation monitor."""

    voltage: float


@dataclass(frozen=True, slots=True)
class SetDcTarget:
    """DC PreCharge / CurrentDemand: the power module's target.

    ISO 15118-20 DC_BPT: a negative ``current`` is a discharge (energy from the EV into
    the station); the core sends one only in a BPT session, never beyond
    ``DcLimits.max_discharge_current``."""

    voltage: float
    current: float

    @property
    def discharge(self) -> bool:
        return self.current < 0


@dataclass(frozen=True, slots=True)
class StopDcOutput:
    pass


@dataclass(frozen=True, slots=True)
class RequestAuthorization:
    """Ask the station (OCPP bridge, local list, HAL RFID) whether charging is allowed.

    ``kind`` is ``eMAID`` for Plug & Charge (``certificate_chain`` holds the contract
    chain as DER, leaf first, as received in PaymentDetailsReq) or ``ExternalPayment``
    for EIM.  The answer comes back as :class:`secc.core.events.AuthorizationResult`.
    """

    kind: str
    id_token: str
    certificate_chain: tuple[bytes, ...] = ()
    # the hashAlgorithm of OCPP's iso15118CertificateHashData for this chain (SHA256,
    # SHA384 or SHA512): ISO 15118-20 P-521 / Ed448 chains ask SHA512
    hash_algorithm: str = "SHA256"
    # the negotiated protocol's namespace ("" before one is known)
    protocol: str = ""


@dataclass(frozen=True, slots=True)
class RequestCertificate:
    """Forward a CertificateInstallationReq / CertificateUpdateReq to the back end (OCPP
    Get15118EVCertificate): ``action`` is ``Install`` or ``Update``; ``exi_request`` the
    complete EXI stream of the EV's request; ``schema_version`` its namespace."""

    action: str
    exi_request: bytes
    schema_version: str = "urn:iso:15118:2:2013:MsgDef"


@dataclass(frozen=True, slots=True)
class MeteringReceipt:
    """A meter reading the EV signed (ISO 15118-20 MeteringConfirmationReq, verified by
    the core with the contract key), for the OCPP transaction's signedMeterValue.

    ``signed_meter_data`` is the EXI fragment of the SignedMeteringData element (the bytes
    the signature's digest covers); ``signature_value`` the raw SignatureValue;
    ``signed_info`` the EXI fragment of the xmldsig SignedInfo that was signed;
    ``signing_method`` the xmldsig SignatureMethod URI; ``public_key`` the contract
    certificate's SubjectPublicKeyInfo (DER)."""

    meter_id: str
    energy_wh: float
    timestamp: int  # the meter's time stamp, seconds since the epoch
    signed_meter_data: bytes
    signed_info: bytes
    signature_value: bytes
    signing_method: str
    public_key: bytes
    emaid: str | None = None
    discharged_energy_wh: float | None = None  # BPT: energy from the EV


@dataclass(frozen=True, slots=True)
class SessionStarted:
    session_id: bytes
    evcc_id: bytes
    protocol: str  # namespace of the negotiated protocol


@dataclass(frozen=True, slots=True)
class ChargingStateChanged:
    """Energy transfer started (``charging=True``, after PowerDelivery Start) or stopped."""

    charging: bool
    soc: int | None = None


@dataclass(frozen=True, slots=True)
class EvChargingNeeds:
    """The EV's charge parameters, once per session at its first ChargeParameterDiscovery
    (-2, DIN) or ScheduleExchange (-20), for the CSMS (OCPP NotifyEVChargingNeeds, K15):
    ``energy_transfer`` the EV's requested mode (-2 EnergyTransferModeType, or ``DC`` /
    ``AC`` for -20); amounts in SI units; ``departure_time`` seconds from now."""

    energy_transfer: str
    max_current: float
    max_voltage: float
    min_current: float | None = None
    max_power: float | None = None
    energy_amount: float | None = None  # Wh the EV asks for
    energy_capacity: float | None = None
    soc: int | None = None
    full_soc: int | None = None
    bulk_soc: int | None = None
    departure_time: int | None = None
    max_schedule_tuples: int | None = None


@dataclass(frozen=True, slots=True)
class EvChargingSchedule:
    """The charging profile the EV sent with PowerDelivery Start (-2): ``entries`` are
    (start seconds, max watts, phases or None); ``schedule_id`` the SAScheduleTupleID it
    follows.  For the CSMS (OCPP NotifyEVChargingSchedule, K15/K17)."""

    schedule_id: int
    entries: tuple[tuple[int, float, int | None], ...]


@dataclass(frozen=True, slots=True)
class SessionEnded:
    reason: EndReason
    detail: str = ""


Action = (
    SendResponse
    | CloseConnection
    | CloseContactors
    | OpenContactors
    | StartIsolationTest
    | SetDcTarget
    | StopDcOutput
    | RequestAuthorization
    | RequestCertificate
    | MeteringReceipt
    | SessionStarted
    | ChargingStateChanged
    | EvChargingNeeds
    | EvChargingSchedule
    | SessionEnded
)
