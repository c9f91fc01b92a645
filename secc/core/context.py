"""The mutable facts of one session that handlers read and update, and what they return.

A handler is ``(ctx, request_body, now) -> Reply``: it reads the request and the facts
here, updates the facts, and returns the response body, the next state and any actions
(performed before the response is sent).  Handlers raise
:class:`secc.core.failures.PeerError` to refuse; they never build V2G_Message headers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from secc import codec
from secc.core.actions import Action, EndReason
from secc.core.config import PausedSession, ScheduleEntry, SessionConfig
from secc.core.construct import Builders
from secc.core.events import AuthorizationResult, EvseStatus, ScheduleOffer, Schema

if TYPE_CHECKING:
    from secc.core.iso20.common import Iso20State


class State(StrEnum):
    """Where the session is: named after what it has done last."""

    WAIT_HANDSHAKE = "WaitHandshake"
    WAIT_SESSION_SETUP = "WaitSessionSetup"
    SESSION_SETUP = "SessionSetup"
    SERVICE_DISCOVERY = "ServiceDiscovery"
    PAYMENT_EIM = "PaymentSelectedEIM"
    PAYMENT_PNC = "PaymentSelectedContract"
    CERTIFICATE_WAIT = "CertificateWait"  # waiting for the back end's answer
    CERTIFICATE_DONE = "CertificateDone"
    PAYMENT_DETAILS = "PaymentDetails"
    AUTHORIZATION = "AuthorizationOngoing"
    AUTHORIZED = "Authorized"
    AC_READY = "ChargeParameterAC"
    DC_READY = "ChargeParameterDC"
    CABLE_CHECK = "CableCheckOngoing"
    CABLE_CHECK_DONE = "CableCheckDone"
    PRE_CHARGE = "PreCharge"
    AC_CHARGING = "ChargingAC"
    DC_CHARGING = "ChargingDC"
    AC_STOPPED = "PowerDeliveryStopAC"
    DC_STOPPED = "PowerDeliveryStopDC"
    ENDED = "Ended"


@dataclass(slots=True)
class Reply:
    """A handler's answer.  ``body`` None: no response yet (the session waits for an
    outside result under a timer the handler named in ``wait``)."""

    body: Any
    state: State | Iso20State  # Iso20State: the -20 machine (it ends in State.ENDED)
    actions: tuple[Action, ...] = ()
    end: EndReason | None = None
    wait: tuple[str, float] | None = None  # (timer name, seconds)


@dataclass(slots=True)
class Context:
    config: SessionConfig
    random_bytes: Callable[[int], bytes]
    utc_now: Callable[[], dt.datetime]
    resume: PausedSession | None = None
    schema: Schema = Schema.APPHAND
    protocol: str = ""
    session_id: bytes = b"\x00"
    evcc_id: bytes = b""
    resumed: bool = False
    payment_option: str | None = None
    selected_services: tuple[int, ...] = ()
    energy_mode: str | None = None
    # authorization
    auth_requested: bool = False
    auth_result: AuthorizationResult | None = None
    emaid: str | None = None
    contract_chain: tuple[bytes, ...] = ()
    gen_challenge: bytes | None = None
    challenge_verified: bool = False
    # charge parameters
    schedules: dict[int, float] = field(default_factory=dict)  # SAScheduleTupleID -> PMax
    csms_schedule: tuple[ScheduleEntry, ...] | None = None
    # a new CSMS schedule while charging (-2): EVSENotification ReNegotiation until the
    # EV's next ChargeParameterDiscovery takes it
    renegotiation_requested: bool = False
    schedule_origin: float = 0.0  # session time the csms_schedule's starts count from
    schedule_updates: int = 0  # ChargingScheduleUpdates so far (a fresh one ends a wait)
    # K17: schedule_updates when the EV's renegotiation sent its needs again; None else
    needs_mark: int | None = None
    # the CSMS's alternatives (ScheduleOffer; the first is csms_schedule); () for one
    csms_offers: tuple[ScheduleOffer, ...] = ()
    sa_schedule_tuple_id: int = 1
    ev_max_current: float = 0.0
    ev_max_voltage: float = 0.0
    ev_max_power: float = 0.0
    # ISO 15118-20 BPT: the EV's discharge limits (magnitudes) from ChargeParameterDiscovery
    ev_max_discharge_power: float = 0.0
    ev_max_discharge_current: float = 0.0
    # EVSE facts and commands
    status: EvseStatus = field(default_factory=EvseStatus)
    isolation_requested: bool = False
    isolation_valid: bool = False
    precharge_target: float | None = None
    precharge_reached: bool = False
    contactors_closed: bool = False
    contactors_closed_at: float = 0.0
    charging: bool = False
    stop_requested: str | None = None
    receipt_due_at: float | None = None
    started_at: dict[str, float] = field(default_factory=dict)  # per-phase start times
    pending_request: str | None = None
    header: Any = None  # the current request's MessageHeader
    # ISO 15118-20: the selected energy transfer service and its parameter set
    service_id: int | None = None
    parameter_set_id: int | None = None
    control_mode: str | None = None  # "Scheduled" or "Dynamic" (config.CONTROL_MODES)
    standby: bool = False
    # ISO 15118-20 MeteringConfirmation: the next ChargeLoopRes asks for one (set once
    # the loop runs in a PnC session where configured; cleared by the EV's confirmation)
    metering_due: bool = False
    metering_asked: bool = False
    # the (MeterID, ChargedEnergyReadingWh) readings sent while it was due: the EV must
    # confirm one of them
    metering_offered: set[tuple[str, int]] = field(default_factory=set)
    # the last charge-loop response and what it was made of: (class, builders of its
    # field names, values, response) (loop_built)
    loop_memo: tuple[type, Builders, tuple[Any, ...], Any] | None = None
    # the loop's limits as sent, made once per change of what they depend on
    # (iso2.dc: (PhysicalValue class, max power, PhysicalValues))
    limits_memo: tuple[Any, ...] | None = None
    # the last DC_EVSEStatus and its key (dc_evse_status)
    status_memo: tuple[Any, Any] | None = None
    # the present values as sent, per status report: (EvseStatus, class, PhysicalValues)
    present_memo: tuple[Any, ...] | None = None
    # the last power module target: (voltage, current, (SetDcTarget,)) (iso2.dc._target)
    target_memo: tuple[float, float, tuple[Action, ...]] | None = None
    # the last MeterInfo and what it was made of (iso2.power.meter_info)
    meter_memo: tuple[Any, ...] | None = None
    # session time of the event being handled (SeccSession.handle sets it)
    now: float = 0.0
    # (session time, utc_now() as a POSIX timestamp) of the last wall-clock read
    clock_sync: tuple[float, float] | None = None

    def new_session_id(self) -> bytes:
        """A fresh 8-byte SessionID: never all zeros, never the paused session's."""
        paused = self.resume
        sid = self.random_bytes(8)
        while sid == bytes(8) or (paused is not None and sid == paused.session_id):
            sid = self.random_bytes(8)
        return sid

    def unix_seconds(self) -> int:
        """The wall clock's whole POSIX seconds at :attr:`now`, for the time stamps of
        loop responses (the -20 header, MeterInfo): ``utc_now`` is read at most once per
        second of session time and carried forward by the session clock in between, not
        read for every loop message (a datetime costs as much as the rest of a response)."""
        now = self.now
        sync = self.clock_sync
        if sync is not None and 0.0 <= now - sync[0] < 1.0:
            return int(sync[1] + (now - sync[0]))
        stamp = self.utc_now().timestamp()
        self.clock_sync = (now, stamp)
        return int(stamp)

    @property
    def mod(self) -> Any:
        return _MODULES[self.schema]

    @property
    def is_dc(self) -> bool:
        if self.energy_mode is not None:
            return self.energy_mode.startswith("DC")
        return not any(m.startswith("AC") for m in self.config.energy_modes)

    @property
    def is_pnc(self) -> bool:
        return self.payment_option == "Contract"

    @property
    def authorized(self) -> bool:
        if self.config.free_service and not self.is_pnc:
            return True
        return self.auth_result is not None and self.auth_result.accepted

    def csms_entries(self, now: float) -> list[ScheduleEntry] | None:
        """The CSMS schedule as seen from ``now``: ended entries dropped, starts moved
        (the schedule counts from when it arrived); None without one."""
        if self.csms_schedule is None:
            return None
        return self.offer_entries(self.chosen_schedule(), now)

    def chosen_schedule(self) -> tuple[ScheduleEntry, ...]:
        """The CSMS schedule of the tuple the EV chose (the first before it chose)."""
        assert self.csms_schedule is not None
        for offer in self.csms_offers:
            if offer.tuple_id == self.sa_schedule_tuple_id:
                return tuple(ScheduleEntry(s, p, d) for s, p, d in offer.entries)
        return self.csms_schedule

    def offer_entries(
        self, schedule: tuple[ScheduleEntry, ...], now: float
    ) -> list[ScheduleEntry] | None:
        """``schedule`` as seen from ``now`` (see :meth:`csms_entries`)."""
        shift = max(int(now - self.schedule_origin), 0)
        out: list[ScheduleEntry] = []
        for e in schedule:
            end = None if e.duration is None else e.start + e.duration
            if end is not None and end <= shift:
                continue
            start = max(e.start - shift, 0)
            out.append(
                ScheduleEntry(start, e.max_power, None if end is None else end - shift - start)
            )
        return out or None

    def scheduled_power(self, now: float) -> float | None:
        """The CSMS schedule's limit (W) in force now; None without a CSMS schedule.

        ``csms_entries(now)[0].max_power`` without building the entries (the charging
        loop asks this for every message while a CSMS schedule is set): the first entry
        of the chosen schedule that has not ended."""
        schedule = self.csms_schedule
        if schedule is None:
            return None
        shift = max(int(now - self.schedule_origin), 0)
        for offer in self.csms_offers:
            if offer.tuple_id == self.sa_schedule_tuple_id:
                for start, max_power, duration in offer.entries:
                    if duration is None or start + duration > shift:
                        return max_power
                return None
        for e in schedule:
            if e.duration is None or e.start + e.duration > shift:
                return e.max_power
        return None

    # --- values -------------------------------------------------------------------------

    def pv(self, value: float, unit: str) -> Any:
        return physical_value(self.mod, value, unit)

    def evse_notification(self) -> Any:
        n = self.mod.EVSENotification
        if self.stop_requested is not None:
            return n.StopCharging
        return n.ReNegotiation if self.renegotiation_requested and self.charging else n.None_

    def ac_evse_status(self) -> Any:
        mod = self.mod
        return mod.AC_EVSEStatus(
            notification_max_delay=self.config.notification_max_delay,
            evse_notification=self.evse_notification(),
            rcd=False,
        )

    def dc_evse_status(self, *, isolation: bool = True) -> Any:
        mod = _MODULES[self.schema]
        key = (
            mod.DC_EVSEStatus,
            self.config.notification_max_delay,
            self.stop_requested is not None,
            self.renegotiation_requested and self.charging,
            self.isolation_requested and not self.isolation_valid,
            self.status.isolation if isolation else None,
        )
        memo = self.status_memo
        if memo is not None and memo[0] == key:  # (the loop: the same as last time)
            return memo[1]
        hit = _DC_STATUS.get(key)
        if hit is not None:
            self.status_memo = (key, hit)
        if hit is not None:  # frozen: the same status object again (no churn, and the
            return hit  # encoder finds its bits by identity)
        code = mod.DC_EVSEStatusCode
        status_code = code.EVSE_Ready
        if self.stop_requested is not None:
            status_code = code.EVSE_Shutdown
        elif self.isolation_requested and not self.isolation_valid:
            status_code = code.EVSE_IsolationMonitoringActive
        level = mod.IsolationLevel._value2member_map_.get(self.status.isolation)
        status = mod.DC_EVSEStatus(
            notification_max_delay=self.config.notification_max_delay,
            evse_notification=self.evse_notification(),
            evse_isolation_status=level if isolation else None,
            evse_status_code=status_code,
        )
        if len(_DC_STATUS) >= 256:
            _DC_STATUS.clear()
        _DC_STATUS[key] = status
        self.status_memo = (key, status)
        return status


def loop_built(ctx: Context, builders: Builders, cls: type, values: tuple[Any, ...]) -> Any:
    """The loop response ``cls`` with the fields ``builders.names`` set to ``values``
    (the others default): the last one again when none of them changed (they are frozen
    values, compared by identity first), so an unchanged charging loop builds no
    response object and the encoder finds its bits by identity; else built directly
    (:mod:`secc.core.construct`), as the loop does with every value changing."""
    memo = ctx.loop_memo
    if (
        memo is not None
        and memo[0] is cls
        and memo[2] == values
        and (memo[1] is builders or memo[1].names == builders.names)
    ):
        ctx.loop_memo = (cls, builders, values, memo[3])  # equal parts that are other
        return memo[3]  # objects: compare by identity next time
    body = builders[cls](*values)
    ctx.loop_memo = (cls, builders, values, body)
    return body


def frozen(cache: dict[tuple[Any, ...], Any], key: tuple[Any, ...], make: Any) -> Any:
    """``cache[key]``, made by ``make()`` the first time: one frozen object per distinct
    value for what the loop sends again and again (at most 64 kept)."""
    hit = cache.get(key)
    if hit is None:
        if len(cache) >= 64:
            cache.clear()
        hit = cache[key] = make()
    return hit


def value_of(pv: Any) -> float:
    """A PhysicalValue as a float."""
    return float(pv.value) * 10.0 ** int(pv.multiplier)


class _Modules(dict[Schema, Any]):
    """Schema -> generated module, imported on first use: a station imports only the
    schema families its EVSEs are asked for (each costs start-up time and memory)."""

    def __missing__(self, schema: Schema) -> Any:
        mod = self[schema] = codec.schema_module(schema.value)
        return mod


_MODULES: dict[Schema, Any] = _Modules()
_PV_CACHE: dict[tuple[int, float, str], Any] = {}
_DC_STATUS: dict[tuple[Any, ...], Any] = {}
_PV_CACHE_LIMIT = 4096
_PV = Builders("multiplier", "unit", "value")


def scale_int16(value: float, max_exponent: int) -> tuple[int, int]:
    """``(exponent, v)`` with ``v * 10**exponent`` = ``value``: the smallest exponent (down
    to -3) that keeps ``v`` an int16 and exact, raised (up to ``max_exponent``) while it
    does not fit.  PhysicalValue (-2/DIN, multiplier up to 3) and RationalNumber (-20,
    exponent up to 127) share it."""
    exponent = 0
    v = value
    while abs(v) > 32767 and exponent < max_exponent:
        exponent += 1
        v = value / 10**exponent
    while exponent > -3 and v != round(v) and abs(v * 10) <= 32767:
        exponent -= 1
        v = value / 10**exponent
    return exponent, round(v)


def physical_value(mod: Any, value: float, unit: str) -> Any:
    """A PhysicalValue with the smallest multiplier that fits ``value`` in an int16.

    Cached: PhysicalValues are frozen, and the same limits are sent in every loop; a
    whole number that fits (most measured values) is built without the search."""
    key = (id(mod), value, unit)
    hit = _PV_CACHE.get(key)
    if hit is not None:
        return hit
    scaled = int(value) if -32768 < value < 32768 else None
    if scaled is not None and scaled == value:
        multiplier = 0
    else:
        multiplier, scaled = scale_int16(value, 3)
    pv = _PV[mod.PhysicalValue](multiplier, mod.UnitSymbol._member_map_[unit], scaled)
    if len(_PV_CACHE) >= _PV_CACHE_LIMIT:
        _PV_CACHE.clear()
    _PV_CACHE[key] = pv
    return pv
