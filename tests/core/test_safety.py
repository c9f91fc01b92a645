"""Safety invariants under random EV behaviour (legal and illegal), EVSE facts and faults.

- Contactors close only in the action list answering a successful PowerDelivery Start
  (ISO ChargeProgress=Start / DIN ReadyToChargeState=true), after an authorization
  answered Finished/OK and, for DC, with the isolation reported Valid (or Warning) and
  the present voltage within tolerance of the EV's pre-charge target.
- Every action list that ends the session has OpenContactors before CloseConnection and
  SessionEnded; nothing follows SessionEnded; an ended session does nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from secc import codec
from secc.core.actions import (
    Action,
    CloseConnection,
    CloseContactors,
    OpenContactors,
    SendResponse,
    SessionEnded,
)
from secc.core.config import SessionConfig
from secc.core.context import State, value_of
from secc.core.events import (
    AuthorizationResult,
    CertificateResult,
    ConnectionLost,
    EvseFault,
    EvseStatus,
    RequestReceived,
    Schema,
    StopRequested,
    TimerExpired,
)
from secc.core.failures import minimal_element
from secc.core.session import SeccSession
from secc.ev.iso2 import EvScript, EvSimulator, Outgoing
from secc.testing.clock import FakeClock
from secc.testing.evse import FakeEvse, FakeStation
from secc.testing.pki import make_credentials

START = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
TOLERANCE = SessionConfig().dc.precharge_tolerance
CREDS = make_credentials(START)
ISO_REQUESTS = [
    "SessionSetupReq",
    "ServiceDiscoveryReq",
    "ServiceDetailReq",
    "PaymentServiceSelectionReq",
    "PaymentDetailsReq",
    "AuthorizationReq",
    "ChargeParameterDiscoveryReq",
    "PowerDeliveryReq",
    "ChargingStatusReq",
    "MeteringReceiptReq",
    "CableCheckReq",
    "PreChargeReq",
    "CurrentDemandReq",
    "WeldingDetectionReq",
    "SessionStopReq",
    "CertificateInstallationReq",
]
DIN_REQUESTS = [
    "SessionSetupReq", "ServiceDiscoveryReq", "ServicePaymentSelectionReq",
    "ContractAuthenticationReq", "ChargeParameterDiscoveryReq", "PowerDeliveryReq",
    "CableCheckReq", "PreChargeReq", "CurrentDemandReq", "WeldingDetectionReq", "SessionStop",
]  # fmt: skip


@dataclass
class Monitor:
    """Tracks what the core was told and said, independently of its internals."""

    dc: bool
    isolation: str = "Invalid"
    voltage: float = 0.0
    precharge_target: float | None = None
    authorized: bool = False
    cable_check_done: bool = False
    ended: bool = False
    closed: bool = False
    closes: int = 0
    log: list[str] = field(default_factory=list)

    def before(self, event: Any) -> None:
        if isinstance(event, EvseStatus):
            self.isolation, self.voltage = event.isolation, event.present_voltage
        if isinstance(event, RequestReceived) and event.schema is not Schema.APPHAND:
            body = event.message.body.body_element
            if type(body).__name__ == "PreChargeReq":
                self.precharge_target = value_of(body.ev_target_voltage)

    def after(self, event: Any, actions: list[Action]) -> None:
        self.before(event)
        if self.ended:
            assert actions == [], "an ended session acted"
            return
        kinds = [type(a) for a in actions]
        sends = [a for a in actions if isinstance(a, SendResponse)]
        res = [
            a.message if a.schema is Schema.APPHAND else a.message.body.body_element for a in sends
        ]
        for body in res:
            name, code = type(body).__name__, body.response_code.value
            processing = getattr(body, "evse_processing", None)
            finished = processing is not None and processing.value == "Finished"
            if (
                name in ("AuthorizationRes", "ContractAuthenticationRes")
                and code == "OK"
                and finished
            ):
                self.authorized = True
            if name == "CableCheckRes" and code == "OK" and finished:
                self.cable_check_done = True
        if CloseContactors in kinds:
            start = isinstance(event, RequestReceived) and _is_start(event)
            assert start, f"contactors closed on {event!r}"
            assert any(
                type(b).__name__ == "PowerDeliveryRes" and b.response_code.value == "OK"
                for b in res
            )
            assert self.authorized, "contactors closed before authorization"
            if self.dc:
                assert self.cable_check_done and self.isolation in ("Valid", "Warning")
                assert self.precharge_target is not None
                assert abs(self.voltage - self.precharge_target) <= TOLERANCE
            self.closed = True
            self.closes += 1
        if OpenContactors in kinds:
            self.closed = False
        if SessionEnded in kinds:
            i_open = kinds.index(OpenContactors)
            assert i_open < kinds.index(CloseConnection) < kinds.index(SessionEnded)
            assert kinds[-1] is SessionEnded and kinds.count(SessionEnded) == 1
            assert CloseContactors not in kinds[i_open:]
            self.ended = True
            self.closed = False


def _is_start(event: RequestReceived) -> bool:
    body = event.message.body.body_element
    if type(body).__name__ != "PowerDeliveryReq":
        return False
    if event.schema is Schema.DIN:
        return bool(body.ready_to_charge_state)
    return bool(body.charge_progress.value == "Start")


EV = st.just(("ev",))
ADVANCE = st.tuples(st.just("advance"), st.sampled_from([0.1, 0.5, 1.0, 2.0, 8.0, 61.0]))
ILLEGAL = st.tuples(st.just("illegal"), st.integers(0, 15))
STATUS = st.tuples(
    st.just("status"),
    st.sampled_from(["Invalid", "Valid", "Warning", "Fault", "No_IMD"]),
    st.sampled_from([0.0, 150.0, 395.0, 400.0, 500.0]),
    st.booleans(),
)
AUTH = st.tuples(st.just("auth"), st.booleans())
RARE = st.sampled_from([("fault",), ("stop",), ("lost",), ("cert",), ("timer",)])


def _pick(r: int, chaos: int) -> st.SearchStrategy[tuple[Any, ...]]:
    """Mostly the EV's legal next request, so that sessions get far; ``chaos`` per mille
    of moves are illegal requests, faults, stops, lost connections, stray timers."""
    if r < chaos:
        return ILLEGAL if r % 2 else RARE
    r = (r - chaos) * 100 // (1000 - chaos)
    for limit, strategy in ((75, EV), (87, ADVANCE), (95, STATUS)):
        if r < limit:
            return strategy
    return AUTH


def moves(chaos: int) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    return st.lists(
        st.integers(0, 999).flatmap(lambda r: _pick(r, chaos)), min_size=60, max_size=250
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["ac", "dc", "din", "ac-pnc", "dc-pnc"]),
    free=st.booleans(),
    steps=st.sampled_from([0, 5, 20, 100]).flatmap(moves),
)
def test_safety_invariants(kind: str, free: bool, steps: list[tuple[Any, ...]]) -> None:
    dc = kind.startswith(("dc", "din"))
    schema = Schema.DIN if kind == "din" else Schema.ISO2
    pnc = kind.endswith("pnc")
    config = SessionConfig(free_service=free, tls=pnc, trust=CREDS.trust, metering_receipts=pnc)
    clock = FakeClock(utc=START)
    session = SeccSession(
        config, now=clock.now, random_bytes=clock.random_bytes, utc_now=clock.utc_now
    )
    mode = "DC_extended" if dc else "AC_three_phase_core"
    script = EvScript(
        protocol="din" if kind == "din" else "iso2",
        energy_mode=mode,
        payment="Contract" if pnc else "ExternalPayment",
        credentials=CREDS if pnc else None,
    )
    ev = EvSimulator(script)
    evse, station = FakeEvse(isolation_delay=0.5), FakeStation(auth_delay=0.5)
    monitor = Monitor(dc=dc)
    nxt: list[Outgoing | None] = [ev.start()]
    requests = DIN_REQUESTS if kind == "din" else ISO_REQUESTS

    def feed(event: Any) -> None:
        actions = session.handle(event, clock.now)
        monitor.after(event, actions)
        for a in actions:
            if isinstance(a, SendResponse):
                back = codec.decode(codec.encode(a.message), a.schema.value)
                nxt[0] = ev.receive(back, a.schema)
            else:
                evse.perform(a, clock.now)
                station.perform(a, clock.now)

    def send(message: Any, sch: Schema) -> None:
        feed(RequestReceived(codec.decode(codec.encode(message), sch.value), sch))

    def advance(seconds: float) -> None:
        clock.advance(seconds)
        for fact in [*evse.poll(clock.now), *station.poll(clock.now)]:
            if not monitor.ended:
                feed(fact)
        if not monitor.ended and session.deadline is not None and session.deadline <= clock.now:
            feed(TimerExpired("deadline"))

    for m in steps:
        if monitor.ended:
            break
        op = m[0]
        if op == "ev" and nxt[0] is not None and nxt[0].kind == "send":
            out, nxt[0] = nxt[0], None
            advance(out.delay)
            if not monitor.ended:
                send(out.message, out.schema)
        elif op == "advance":
            advance(m[1])
        elif op == "illegal":
            name = requests[m[1] % len(requests)]
            mod = codec.schema_module(schema.value)
            body = minimal_element(schema.value, name, dc=dc)
            msg = mod.V2G_Message(
                header=mod.MessageHeader(session_id=session.session_id),
                body=mod.Body(body_element=body),
            )
            send(msg, schema)
        elif op == "status":
            feed(EvseStatus(isolation=m[1], present_voltage=m[2], contactors_closed=m[3]))
        elif op == "auth":
            feed(AuthorizationResult(accepted=m[1], id_token=""))
        elif op == "fault":
            feed(EvseFault("rcd"))
        elif op == "stop":
            feed(StopRequested("remote"))
        elif op == "lost":
            feed(ConnectionLost("reset"))
        elif op == "cert":
            feed(CertificateResult(None))
        elif op == "timer":
            feed(TimerExpired("V2G_SECC_Sequence_Timeout"))
    event(f"contactors closed: {monitor.closes > 0}, ended: {monitor.ended}")
    if monitor.ended:
        assert session.state is State.ENDED and not monitor.closed
        assert session.handle(ConnectionLost("again"), clock.now) == []


def test_the_monitor_accepts_a_normal_dc_session() -> None:
    """The property's monitor passes the legal path with one close (it is not vacuous)."""
    from secc.testing.harness import run_session

    monitor = Monitor(dc=True)

    def check(session: SeccSession, event: Any, actions: list[Action]) -> None:
        monitor.after(event, actions)

    out = run_session(SessionConfig(), EvScript(energy_mode="DC_extended"), check=check)
    assert monitor.closes == 1 and monitor.ended
    assert out.end is not None
