"""Named EV scenarios with what they must end with: for tests, the lab and ``secc ev``.

Each :class:`Scenario` builds its station configuration, EV script, fake EVSE / station
and outside events (Plug & Charge ones need :class:`~secc.testing.pki.Credentials`), and
states the expected outcome: the last response and its code, whether the contactors
closed, and the end reason.  :func:`run_scenario` runs one through the harness.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from secc.core.actions import EndReason
from secc.core.config import SessionConfig, Timers
from secc.core.events import ChargingScheduleUpdate, Event, EvseFault, StopRequested
from secc.ev.iso2 import EvFaults, EvScript
from secc.testing.clock import FakeClock
from secc.testing.evse import FakeEvse, FakeStation
from secc.testing.harness import Outcome, run_session
from secc.testing.pki import Credentials, certificate_backend

AC = "AC_three_phase_core"
DC = "DC_extended"


@dataclass(frozen=True, slots=True)
class Expect:
    last: tuple[str, str]  # (response name, ResponseCode)
    end: EndReason
    charged: bool  # whether the contactors closed at some point


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    script: EvScript
    expect: Expect
    pnc: bool = False
    config: Callable[[SessionConfig], SessionConfig] = lambda c: c
    evse: Callable[[], FakeEvse] = FakeEvse
    station: Callable[[], FakeStation] = FakeStation
    events: tuple[tuple[float, Event | ChargingScheduleUpdate], ...] = ()
    backend: bool = False  # the station answers certificate requests
    description: str = field(default="", compare=False)


OK_STOP = Expect(("SessionStopRes", "OK"), EndReason.EV_STOP, charged=True)


def _with(**kw: object) -> Callable[[SessionConfig], SessionConfig]:
    return lambda c: dataclasses.replace(c, **kw)  # type: ignore[arg-type]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("ac-eim", EvScript(energy_mode=AC), OK_STOP),
        Scenario("dc-eim", EvScript(energy_mode=DC), OK_STOP),
        Scenario(
            "ac-pnc",
            EvScript(energy_mode=AC, payment="Contract"),
            OK_STOP,
            pnc=True,
            config=_with(metering_receipts=True),
        ),
        Scenario("dc-pnc", EvScript(energy_mode=DC, payment="Contract"), OK_STOP, pnc=True),
        Scenario(
            "certificate-installation",
            EvScript(energy_mode=AC, payment="Contract", install_certificate=True),
            OK_STOP,
            pnc=True,
            backend=True,
        ),
        Scenario(
            "pause",
            EvScript(energy_mode=AC, stop="Pause"),
            Expect(("SessionStopRes", "OK"), EndReason.EV_PAUSE, charged=True),
        ),
        Scenario("din-dc", EvScript(protocol="din", energy_mode=DC), OK_STOP),
        Scenario(
            "sequence-error",
            EvScript(energy_mode=DC, faults=EvFaults(replace={"PreChargeReq": "CurrentDemandReq"})),
            Expect(("CurrentDemandRes", "FAILED_SequenceError"), EndReason.SEQUENCE_ERROR, False),
        ),
        Scenario(
            "timeout",
            EvScript(energy_mode=DC, faults=EvFaults(stall_before="CurrentDemandReq")),
            Expect(("PowerDeliveryRes", "OK"), EndReason.SEQUENCE_TIMEOUT, charged=True),
        ),
        Scenario(
            "authorization-refused",
            EvScript(energy_mode=AC),
            Expect(("AuthorizationRes", "FAILED"), EndReason.FAILED_RESPONSE, charged=False),
            station=lambda: FakeStation(accept=False),
        ),
        Scenario(
            "expired-contract",
            EvScript(energy_mode=AC, payment="Contract"),
            Expect(
                ("PaymentDetailsRes", "FAILED_CertificateExpired"),
                EndReason.FAILED_RESPONSE,
                charged=False,
            ),
            pnc=True,
            description="run with credentials made 800 days before the session",
        ),
        Scenario(
            "slow-ev",
            EvScript(energy_mode=AC, faults=EvFaults(delay={"ChargingStatusReq": 11.0})),
            Expect(("PowerDeliveryRes", "OK"), EndReason.SEQUENCE_TIMEOUT, charged=True),
            config=_with(timers=Timers(sequence_timeout=10.0)),
        ),
        Scenario(
            "slow-back-end",
            EvScript(energy_mode=AC, payment="Contract", install_certificate=True),
            Expect(
                ("CertificateInstallationRes", "FAILED_NoCertificateAvailable"),
                EndReason.TIMEOUT,
                charged=False,
            ),
            pnc=True,
            backend=True,
            station=lambda: FakeStation(backend_delay=6.0),
        ),
        Scenario(
            "vanishing",
            EvScript(energy_mode=DC, faults=EvFaults(vanish_before="CurrentDemandReq")),
            Expect(("PowerDeliveryRes", "OK"), EndReason.CONNECTION_LOST, charged=True),
        ),
        Scenario(
            "station-stop",
            EvScript(energy_mode=DC, charge_loops=10_000),
            OK_STOP,
            events=((40.0, StopRequested("remote stop")),),
        ),
        Scenario(
            "evse-fault",
            EvScript(energy_mode=AC, charge_loops=10_000),
            Expect(("ChargingStatusRes", "OK"), EndReason.EVSE_FAULT, charged=True),
            events=((30.0, EvseFault("rcd", "residual current")),),
        ),
    )
}


def run_scenario(
    scenario: Scenario, credentials: Credentials | None = None, *, clock: FakeClock | None = None
) -> Outcome:
    clock = clock or FakeClock()
    config = SessionConfig()
    script = scenario.script
    if scenario.pnc:
        if credentials is None:
            raise ValueError(f"scenario {scenario.name} needs Plug & Charge credentials")
        config = SessionConfig(tls=True, trust=credentials.trust)
        script = dataclasses.replace(script, credentials=credentials)
    station = scenario.station()
    if scenario.backend and credentials is not None:
        station.backend = certificate_backend(credentials, clock.random_bytes)
    return run_session(
        scenario.config(config),
        script,
        clock=clock,
        evse=scenario.evse(),
        station=station,
        events=scenario.events,
    )
