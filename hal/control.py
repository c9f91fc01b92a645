"""IEC 61851-1 charging control around high-level communication, as a pure machine.

Theory of operation
-------------------
Plug-in (CP leaves A) starts high-level communication (HLC): 5 % duty announces it and
SLAC (ISO 15118-3) starts.  A SLAC failure is retried after an X1 pause (constant +12 V,
SLAC stopped), which makes cars that missed the first attempt start again; when retries
are used up, or when the V2G session does not start within ``hlc_start_timeout_s``, or
when it fails, the machine falls back to basic charging (nominal duty for
``max_current_a``) if ``basic_fallback`` allows it, else it stays in X1 without charging.

Contactors close only when power is wanted (PowerDelivery from HLC, or authorisation in
basic charging) *and* the CP reads C or D *and* no fault is active.  They open at once
when the CP leaves C/D, when power is no longer wanted, and on every fault (RCD trip,
contactor feedback mismatch, CP E/F, MCU heartbeat loss or reset), which is also reported
as a :class:`ReportFault` fact.  Faults other than CP E drive state F until they are
cleared.  ``handle(event, now) -> list[Action]`` plus ``deadline``, like every machine.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hal.types import CpState, Duty, Fault


@dataclass(frozen=True, slots=True)
class ControlConfig:
    hlc_enabled: bool = True
    basic_fallback: bool = True
    max_current_a: float = 16.0
    hlc_start_timeout_s: float = 60.0  # 5 % until the V2G session is set up
    slac_retries: int = 2
    slac_retry_pause_s: float = 4.0  # X1 before trying SLAC again  [V2G3-???]
    basic_needs_authorization: bool = False
    # after a session *refused* (authorization, contract, payment: HlcFailed(refused=True))
    # basic charging is never automatic: False blocks the EVSE until unplug; True offers
    # nominal duty but closes only on its own authorization (PowerRequest(on=True))
    basic_after_refusal: bool = False


# ----------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class CpChanged:
    state: CpState


@dataclass(frozen=True, slots=True)
class SlacMatched:
    pass


@dataclass(frozen=True, slots=True)
class SlacFailed:
    reason: str


@dataclass(frozen=True, slots=True)
class HlcStarted:
    pass


@dataclass(frozen=True, slots=True)
class HlcFinished:
    pass


@dataclass(frozen=True, slots=True)
class HlcFailed:
    reason: str
    refused: bool = False  # the station refused the EV (not a technical failure)


@dataclass(frozen=True, slots=True)
class PowerRequest:
    """HLC's PowerDelivery (start / stop) or the basic-charging authorisation."""

    on: bool


@dataclass(frozen=True, slots=True)
class FaultRaised:
    fault: Fault
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FaultCleared:
    fault: Fault


@dataclass(frozen=True, slots=True)
class Tick:
    pass


Event = (
    CpChanged
    | SlacMatched
    | SlacFailed
    | HlcStarted
    | HlcFinished
    | HlcFailed
    | PowerRequest
    | FaultRaised
    | FaultCleared
    | Tick
)

# ----------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class SetDuty:
    duty: Duty


@dataclass(frozen=True, slots=True)
class SetStateF:
    pass


@dataclass(frozen=True, slots=True)
class CloseContactors:
    pass


@dataclass(frozen=True, slots=True)
class OpenContactors:
    pass


@dataclass(frozen=True, slots=True)
class StartSlac:
    pass


@dataclass(frozen=True, slots=True)
class StopSlac:
    pass


@dataclass(frozen=True, slots=True)
class ReportFault:
    fault: Fault
    detail: str


@dataclass(frozen=True, slots=True)
class ModeChanged:
    phase: Phase
    reason: str


Action = (
    SetDuty | SetStateF | CloseContactors | OpenContactors | StartSlac | StopSlac | ReportFault
) | ModeChanged


class Phase(enum.Enum):
    IDLE = "idle"  # CP A, X1
    HLC_WAIT = "hlc_wait"  # 5 %, SLAC / SDP / SessionSetup under way
    SLAC_PAUSE = "slac_pause"  # X1 between SLAC attempts
    HLC = "hlc"  # V2G session running
    BASIC = "basic"  # nominal duty, IEC 61851-1 basic charging
    BLOCKED = "blocked"  # no way to charge this vehicle; X1 until unplugged
    DONE = "done"  # HLC session ended; waiting for unplug
    FAULT = "fault"


class ChargingControl:
    def __init__(self, config: ControlConfig | None = None) -> None:
        self.config = config or ControlConfig()
        self.phase = Phase.IDLE
        self.cp = CpState.A
        self.faults: set[Fault] = set()
        self.closed = False  # what we last commanded
        self.want_power = False
        self.slac_active = False
        self.slac_tries = 0
        self.hlc_started = False
        self._deadline = float("inf")

    @property
    def deadline(self) -> float:
        return self._deadline

    def handle(self, event: Event, now: float) -> list[Action]:
        out: list[Action] = []
        match event:
            case FaultRaised(fault=fault, detail=detail):
                self._fault(fault, detail, out)
            case FaultCleared(fault=fault):
                self.faults.discard(fault)
                if not self.faults and self.phase is Phase.FAULT:
                    self._to_idle(out, "faults cleared")
            case CpChanged(state=state):
                self._cp(state, now, out)
            case _ if self.phase is Phase.FAULT:
                pass
            case SlacMatched() if self.phase is Phase.HLC_WAIT:
                self.slac_active = True
            case SlacFailed(reason=reason) if self.phase is Phase.HLC_WAIT:
                self._slac_failed(reason, now, out)
            case HlcStarted() if self.phase in (Phase.DONE, Phase.BLOCKED):
                # a paused session resumed, or a new session after a failed one: HLC again
                if self.phase is Phase.BLOCKED:
                    out.append(SetDuty(Duty.hlc()))
                self.hlc_started = True
                self._go(Phase.HLC, "V2G session set up again", out)
            case HlcStarted() if self.phase is Phase.HLC_WAIT:
                self.hlc_started = True
                self._deadline = float("inf")
                self._go(Phase.HLC, "V2G session set up", out)
            case HlcFinished() if self.phase is Phase.HLC:
                self.want_power = False
                self._sync(out)
                self._go(Phase.DONE, "V2G session ended", out)
            case HlcFailed(reason=reason, refused=True) if self.phase in (
                Phase.HLC_WAIT,
                Phase.HLC,
            ):
                self.want_power = False
                self._sync(out)
                self._refused(reason, out)
            case HlcFailed(reason=reason) if self.phase in (Phase.HLC_WAIT, Phase.HLC):
                self.want_power = False
                self._sync(out)
                self._fallback(f"HLC failed: {reason}", out)
            case PowerRequest(on=on) if self.phase in (Phase.HLC, Phase.BASIC):
                self.want_power = on
                self._sync(out)
            case Tick():
                self._tick(now, out)
        return out

    # ------------------------------------------------------------ transitions

    def _go(self, phase: Phase, reason: str, out: list[Action]) -> None:
        if phase is not self.phase:
            self.phase = phase
            out.append(ModeChanged(phase, reason))

    def _sync(self, out: list[Action]) -> None:
        """Command the contactors to what the rules allow right now."""
        allowed = (
            self.want_power
            and self.cp.ready
            and not self.faults
            and self.phase in (Phase.HLC, Phase.BASIC)
        )
        if allowed and not self.closed:
            self.closed = True
            out.append(CloseContactors())
        elif not allowed and self.closed:
            self.closed = False
            out.append(OpenContactors())

    def _stop_slac(self, out: list[Action]) -> None:
        if self.slac_active or self.phase in (Phase.HLC_WAIT, Phase.HLC):
            out.append(StopSlac())
        self.slac_active = False

    def _fault(self, fault: Fault, detail: str, out: list[Action]) -> None:
        self.faults.add(fault)
        self.closed = False
        out.append(OpenContactors())  # always, even if we believe them open
        out.append(ReportFault(fault, detail or fault.value))
        self._stop_slac(out)
        self._deadline = float("inf")
        if fault is not Fault.CP_STATE_E:
            out.append(SetStateF())
        else:
            out.append(SetDuty(Duty.constant()))
        self._go(Phase.FAULT, f"fault {fault.value}", out)

    def _to_idle(self, out: list[Action], reason: str) -> None:
        self.want_power = False
        self._sync(out)
        self._stop_slac(out)
        self.slac_tries = 0
        self.hlc_started = False
        self._deadline = float("inf")
        out.append(SetDuty(Duty.constant()))
        self._go(Phase.IDLE, reason, out)

    def _cp(self, state: CpState, now: float, out: list[Action]) -> None:
        self.cp = state
        if state is CpState.E:
            self._fault(Fault.CP_STATE_E, "CP reads 0 V (E)", out)
            return
        if state is CpState.F:
            if self.phase is not Phase.FAULT:  # we do not drive F ourselves: a fault
                self._fault(Fault.CP_STATE_F, "CP reads -12 V (F)", out)
            return
        if Fault.CP_STATE_E in self.faults and state in (CpState.A, CpState.B):
            self.faults.discard(Fault.CP_STATE_E)
            if not self.faults:
                self._to_idle(out, "CP left state E")
        if self.phase is Phase.FAULT:
            self._sync(out)
            return
        if state is CpState.A:
            if self.phase is not Phase.IDLE:
                self._to_idle(out, "vehicle unplugged")
            self._sync(out)
            return
        self._sync(out)
        if self.phase is Phase.IDLE:
            self._plugged(now, out)

    def _plugged(self, now: float, out: list[Action]) -> None:
        if self.config.hlc_enabled:
            self._start_hlc(now, out)
        else:
            self._basic("HLC disabled", out)

    def _start_hlc(self, now: float, out: list[Action]) -> None:
        self.slac_tries += 1
        self.slac_active = True
        self._deadline = now + self.config.hlc_start_timeout_s
        out.append(SetDuty(Duty.hlc()))
        out.append(StartSlac())
        self._go(Phase.HLC_WAIT, f"5 %: SLAC attempt {self.slac_tries}", out)

    def _slac_failed(self, reason: str, now: float, out: list[Action]) -> None:
        self.slac_active = False
        if self.slac_tries <= self.config.slac_retries:
            out.append(StopSlac())
            out.append(SetDuty(Duty.constant()))
            self._deadline = now + self.config.slac_retry_pause_s
            self._go(Phase.SLAC_PAUSE, f"SLAC failed ({reason}); X1 pause", out)
        else:
            self._fallback(f"SLAC failed {self.slac_tries} times: {reason}", out)

    def _fallback(self, reason: str, out: list[Action]) -> None:
        self._stop_slac(out)
        self._deadline = float("inf")
        if self.config.basic_fallback:
            self._basic(reason, out)
        else:
            out.append(SetDuty(Duty.constant()))
            self._go(Phase.BLOCKED, reason, out)

    def _refused(self, reason: str, out: list[Action]) -> None:
        """The station refused this EV: basic charging would bypass that decision."""
        self._stop_slac(out)
        self._deadline = float("inf")
        if self.config.basic_fallback and self.config.basic_after_refusal:
            out.append(SetDuty(Duty.for_current(self.config.max_current_a)))
            self.want_power = False  # its own authorization must come (PowerRequest)
            self._go(Phase.BASIC, f"basic charging after refusal, unauthorized: {reason}", out)
        else:
            out.append(SetDuty(Duty.constant()))
            self._go(Phase.BLOCKED, f"refused: {reason}", out)

    def _basic(self, reason: str, out: list[Action]) -> None:
        out.append(SetDuty(Duty.for_current(self.config.max_current_a)))
        self.want_power = not self.config.basic_needs_authorization
        self._go(Phase.BASIC, f"basic charging: {reason}", out)
        self._sync(out)

    def _tick(self, now: float, out: list[Action]) -> None:
        if now < self._deadline:
            return
        if self.phase is Phase.SLAC_PAUSE:
            self._start_hlc(now, out)
        elif self.phase is Phase.HLC_WAIT:
            self._fallback("HLC did not start in time", out)
