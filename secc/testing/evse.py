"""A fake EVSE and station: they perform the core's actions and report facts back.

:class:`FakeEvse` plays the power electronics (contactors with feedback, isolation
monitor, DC power module ramping its voltage, an energy meter); :class:`FakeStation` plays
the authorization source and the certificate back end.  Both are pure: ``perform(action,
now)`` records a command, ``poll(now)`` returns the events due, ``deadline`` says when
the next one is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from secc.core.actions import (
    Action,
    CloseContactors,
    OpenContactors,
    RequestAuthorization,
    RequestCertificate,
    SetDcTarget,
    StartIsolationTest,
    StopDcOutput,
)
from secc.core.events import AuthorizationResult, CertificateResult, Event, EvseStatus


@dataclass(slots=True)
class FakeEvse:
    isolation_delay: float = 1.0
    isolation_result: str = "Valid"
    ramp: float = 400.0  # volts per second
    contactor_delay: float = 0.05
    contactors_stuck_open: bool = False
    status: EvseStatus = field(default_factory=EvseStatus)
    commands: list[tuple[float, Action]] = field(default_factory=list)
    _due: list[tuple[float, dict[str, object]]] = field(default_factory=list)
    _target: tuple[float, float] | None = None
    _ramp_from: tuple[float, float] = (0.0, 0.0)  # (time, voltage)
    _last_energy_at: float | None = None

    @property
    def deadline(self) -> float | None:
        times = [t for t, _ in self._due]
        if (
            self._target is not None
            and abs(self._voltage_at(1e18) - self.status.present_voltage) > 0.5
        ):
            times.append(self._next_ramp_time())
        return min(times) if times else None

    def _voltage_at(self, now: float) -> float:
        if self._target is None:
            return self.status.present_voltage
        t0, v0 = self._ramp_from
        target = self._target[0]
        step = self.ramp * (now - t0)
        return min(target, v0 + step) if target >= v0 else max(target, v0 - step)

    def _next_ramp_time(self) -> float:
        return self._ramp_from[0] + 0.25

    def perform(self, action: Action, now: float) -> None:
        self.commands.append((now, action))
        match action:
            case CloseContactors():
                if not self.contactors_stuck_open:
                    self._due.append((now + self.contactor_delay, {"contactors_closed": True}))
            case OpenContactors():
                self._due.append((now, {"contactors_closed": False, "present_current": 0.0}))
            case StartIsolationTest():
                self._due.append((now, {"isolation": "Invalid"}))
                self._due.append((now + self.isolation_delay, {"isolation": self.isolation_result}))
            case SetDcTarget(voltage=v, current=i):
                self._ramp_from = (now, self.status.present_voltage)
                self._target = (v, i)
            case StopDcOutput():
                self._target = None
                self._due.append((now, {"present_voltage": 0.0, "present_current": 0.0}))
            case _:
                pass

    def poll(self, now: float) -> list[Event]:
        out: list[Event] = []
        ready = [c for t, c in sorted(self._due, key=lambda d: d[0]) if t <= now]
        self._due = [(t, c) for t, c in self._due if t > now]
        for changes in ready:
            self.status = replace(self.status, **changes)  # type: ignore[arg-type]
            out.append(self.status)
        if self._target is not None:
            v = self._voltage_at(now)
            current = self._target[1] if self.status.contactors_closed else 0.0
            energy = self.status.energy_wh
            if self._last_energy_at is not None:
                energy += v * current * (now - self._last_energy_at) / 3600
            self._last_energy_at = now
            self._ramp_from = (now, v)
            if v != self.status.present_voltage or current != self.status.present_current:
                self.status = replace(
                    self.status, present_voltage=v, present_current=current, energy_wh=energy
                )
                out.append(self.status)
        return out


CertificateBackend = Callable[[RequestCertificate], bytes | None]


@dataclass(slots=True)
class FakeStation:
    """Answers RequestAuthorization and RequestCertificate after a delay."""

    accept: bool = True
    certificate_status: str | None = None
    auth_delay: float = 1.5
    backend: CertificateBackend | None = None
    backend_delay: float = 0.5
    requests: list[Action] = field(default_factory=list)
    _due: list[tuple[float, Event]] = field(default_factory=list)

    @property
    def deadline(self) -> float | None:
        return min((t for t, _ in self._due), default=None)

    def perform(self, action: Action, now: float) -> None:
        match action:
            case RequestAuthorization(id_token=token):
                self.requests.append(action)
                result = AuthorizationResult(
                    accepted=self.accept,
                    id_token=token,
                    certificate_status=self.certificate_status,
                    reason="" if self.accept else "refused by the fake station",
                )
                self._due.append((now + self.auth_delay, result))
            case RequestCertificate():
                self.requests.append(action)
                exi = self.backend(action) if self.backend is not None else None
                self._due.append((now + self.backend_delay, CertificateResult(exi)))
            case _:
                pass

    def poll(self, now: float) -> list[Event]:
        out = [e for t, e in sorted(self._due, key=lambda x: x[0]) if t <= now]
        self._due = [(t, e) for t, e in self._due if t > now]
        return out
