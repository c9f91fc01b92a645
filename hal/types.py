"""Vocabulary of the hardware abstraction layer: CP states, PWM duty, relay states, errors.

Everything here is plain data (frozen, slotted dataclasses and enums) so that the SECC core
may import it without pulling in a backend.
"""

from __future__ import annotations

import enum

from hal.records import record

__all__ = [
    "ContactorState",
    "ContactorStuckError",
    "ContactorWeldedError",
    "CpState",
    "DcLimits",
    "DcPresent",
    "Duty",
    "Fault",
    "HalError",
    "HalTimeoutError",
    "IsolationReading",
    "IsolationStatus",
    "LockState",
    "MeterReading",
    "MissingExtraError",
    "OperationFailedError",
    "PlcState",
    "PlcStatus",
    "RcdStatus",
    "TokenRead",
    "UnavailableError",
]


# --------------------------------------------------------------------------- errors


class HalError(Exception):
    """Base of every error a HAL capability raises."""


class UnavailableError(HalError):
    """The capability or backend is not there (not wired, not installed, device missing)."""


class MissingExtraError(UnavailableError):
    """A backend needs an optional dependency that is not installed."""

    def __init__(self, backend: str, extra: str, module: str) -> None:
        super().__init__(
            f"HAL backend {backend!r} needs the optional dependency {module!r}: "
            f"install it with  pip install 'secc[{extra}]'"
        )
        self.backend = backend
        self.extra = extra
        self.module = module


class OperationFailedError(HalError):
    """The hardware refused or could not perform the operation."""


class HalTimeoutError(HalError):
    """The hardware did not confirm the operation in time."""


class ContactorWeldedError(OperationFailedError):
    """Open was commanded but the feedback still reports the contacts closed."""


class ContactorStuckError(OperationFailedError):
    """Close was commanded but the feedback still reports the contacts open."""


# --------------------------------------------------------------------------- control pilot


class CpState(enum.Enum):
    """IEC 61851-1 control pilot states, as measured at the EVSE (positive plateau)."""

    A = "A"  # +12 V: no vehicle
    B = "B"  # +9 V: vehicle connected, not ready
    C = "C"  # +6 V: ready, no ventilation required
    D = "D"  # +3 V: ready, ventilation required
    E = "E"  # 0 V: short circuit / no supply
    F = "F"  # -12 V: EVSE not available (driven by the EVSE itself)

    @classmethod
    def from_voltage(cls, volts: float) -> CpState:
        """Classify the positive plateau of the CP signal (IEC 61851-1 Table A.3 bands).

        Values between the bands are classified as E (invalid), which every caller
        treats as a fault.
        """
        if volts >= 13.5:
            return cls.E  # above any valid level: measurement fault
        if volts >= 10.5:
            return cls.A
        if 7.5 <= volts < 10.5:
            return cls.B
        if 4.5 <= volts < 7.5:
            return cls.C
        if 1.5 <= volts < 4.5:
            return cls.D
        if volts <= -10.5:
            return cls.F
        return cls.E

    @property
    def nominal_volts(self) -> float:
        return {"A": 12.0, "B": 9.0, "C": 6.0, "D": 3.0, "E": 0.0, "F": -12.0}[self.value]

    @property
    def ready(self) -> bool:
        """True in C and D, the only states in which contactors may be closed."""
        return self in (CpState.C, CpState.D)


@record
class Duty:
    """PWM duty cycle of the CP oscillator in per mille (0..1000).

    ``1000`` is a constant +12 V (state X1, no PWM); ``50`` (5 %) announces high-level
    communication (ISO 15118-3); 80..970 encode a current limit (IEC 61851-1 Annex A).
    There is no 0 %: a constant -12 V is state F (``ControlPilot.set_state_f``).
    """

    permille: int

    def __post_init__(self) -> None:
        if not 1 <= self.permille <= 1000:
            raise ValueError(f"duty out of range: {self.permille} per mille")

    @classmethod
    def constant(cls) -> Duty:
        return cls(1000)

    @classmethod
    def hlc(cls) -> Duty:
        return cls(50)

    @classmethod
    def for_current(cls, amps: float) -> Duty:
        """Nominal duty for a current limit: 6..51 A -> I/0.6 %; 51..80 A -> I/2.5 + 64 %."""
        if not 6.0 <= amps <= 80.0:
            raise ValueError(f"current limit {amps} A not encodable (6..80 A)")
        percent = amps / 0.6 if amps <= 51.0 else amps / 2.5 + 64.0
        return cls(round(percent * 10))

    @property
    def is_hlc(self) -> bool:
        return self.permille == 50

    @property
    def is_pwm(self) -> bool:
        return 0 < self.permille < 1000

    @property
    def amps(self) -> float | None:
        """The current limit this duty encodes, or None (5 %, X1, out of the table)."""
        percent = self.permille / 10
        if 10.0 <= percent <= 85.0:
            return round(percent * 0.6, 1)
        if 85.0 < percent <= 96.0:
            return round((percent - 64.0) * 2.5, 1)
        return None


# --------------------------------------------------------------------------- relays


class ContactorState(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"
    UNKNOWN = "unknown"


class LockState(enum.Enum):
    UNLOCKED = "unlocked"
    LOCKED = "locked"
    UNKNOWN = "unknown"


# --------------------------------------------------------------------------- measurements


@record
class MeterReading:
    """One reading of the station's meter, in the EV's frame of reference.

    ``energy_wh`` is the import register (energy delivered to the EV, OCPP
    Energy.Active.Import.Register), ``energy_export_wh`` the export register (energy the
    EV fed back in a bidirectional session, Energy.Active.Export.Register); both only
    grow.  ``power_w`` and ``current_a`` are signed: negative while the EV discharges.
    """

    energy_wh: float
    power_w: float
    voltage_v: tuple[float, ...]  # per phase (L1, L2, L3) or a single DC value
    current_a: tuple[float, ...]
    signed: bytes | None = None  # optional signed meter value (e.g. OCMF), opaque here
    energy_export_wh: float = 0.0

    @property
    def energy_import_wh(self) -> float:
        """The import register (the same value as ``energy_wh``)."""
        return self.energy_wh


# OCPP 2.0.1 IdTokenEnumType values a reader at the station can produce
TOKEN_KINDS = ("ISO14443", "ISO15693", "KeyCode", "Local", "MacAddress")
TOKEN_MAX = 36  # OCPP IdTokenType.idToken maxLength


@record
class TokenRead:
    """An identification token presented at the station (EIM: an RFID card, a key code).

    ``id_token`` is what the CSMS knows the token by: for ISO 14443 / 15693 cards the
    UID in upper-case hex ("04A1B2C3D4E5F6"); ``kind`` is its OCPP IdTokenEnumType.
    """

    id_token: str
    kind: str = "ISO14443"

    def __post_init__(self) -> None:
        if not 1 <= len(self.id_token) <= TOKEN_MAX or not self.id_token.isprintable():
            raise ValueError(f"token id must be 1..{TOKEN_MAX} printable characters")
        if self.kind not in TOKEN_KINDS:
            raise ValueError(f"token kind {self.kind!r} is not one of {', '.join(TOKEN_KINDS)}")

    @classmethod
    def from_uid(cls, uid: bytes, kind: str = "ISO14443") -> TokenRead:
        """A card UID as read by the reader (4, 7 or 10 bytes for ISO 14443)."""
        return cls(uid.hex().upper(), kind)


@record
class RcdStatus:
    tripped: bool
    residual_ma: float = 0.0
    self_test_ok: bool | None = None


class IsolationStatus(enum.Enum):
    INVALID = "Invalid"
    VALID = "Valid"
    WARNING = "Warning"
    FAULT = "Fault"
    NO_IMD = "No_IMD"


@record
class IsolationReading:
    status: IsolationStatus
    resistance_ohm: float | None = None


@record
class DcLimits:
    """What a DC power module can do.  Charging (current from the station into the EV)
    uses ``max_current_a``/``max_power_w``; discharging (bidirectional power, DC_BPT:
    current from the EV into the station) ``max_discharge_current_a`` and
    ``max_discharge_power_w``, both given as positive magnitudes; 0 means the module
    cannot sink energy (a unidirectional module, the default)."""

    max_voltage_v: float
    min_voltage_v: float
    max_current_a: float
    min_current_a: float
    max_power_w: float
    max_discharge_current_a: float = 0.0
    max_discharge_power_w: float = 0.0

    @property
    def bidirectional(self) -> bool:
        """Whether the module can take energy from the EV."""
        return self.max_discharge_current_a > 0 and self.max_discharge_power_w > 0


@record
class DcPresent:
    """The module's output now; ``current_a`` is negative while the EV discharges."""

    voltage_v: float
    current_a: float
    enabled: bool


class PlcState(enum.Enum):
    IDLE = "idle"
    MATCHING = "matching"
    MATCHED = "matched"
    FAILED = "failed"


@record
class PlcStatus:
    state: PlcState
    ev_mac: bytes | None = None
    nid: bytes | None = None
    detail: str = ""


class Fault(enum.Enum):
    """Faults the charging control reacts to by opening the contactors at once."""

    RCD_TRIPPED = "rcd_tripped"
    CONTACTOR_MISMATCH = "contactor_mismatch"
    CP_STATE_E = "cp_state_e"
    CP_STATE_F = "cp_state_f"
    MCU_HEARTBEAT_LOST = "mcu_heartbeat_lost"
    MCU_RESET = "mcu_reset"
    ISOLATION = "isolation"
