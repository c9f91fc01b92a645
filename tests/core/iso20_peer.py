"""A minimal ISO 15118-20 EV for the core tests: requests built from the XSD rules
(V2G_CI_CommonMessages.xsd, V2G_CI_AC.xsd, V2G_CI_DC.xsd), every one encoded and decoded
through the real codec in the schema of its payload type, as the driver does, and every
response encoded and decoded back.  Test code, not a product EV (that is secc.ev).
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from secc import codec
from secc.core.actions import Action, SendResponse
from secc.core.config import ISO20_AC_NAMESPACE, ISO20_DC_NAMESPACE, SessionConfig
from secc.core.context import State
from secc.core.events import AuthorizationResult, EvseStatus, RequestReceived, Schema
from secc.core.session import SeccSession
from secc.testing.clock import FakeClock

C = codec.schema_module("iso20-common")
A = codec.schema_module("iso20-ac")
D = codec.schema_module("iso20-dc")
APP = codec.schema_module("apphand")
START = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
SCHEMA_OF = {C: Schema.ISO20_COMMON, A: Schema.ISO20_AC, D: Schema.ISO20_DC}


def rn(mod: Any, value: float, exponent: int = 0) -> Any:
    return mod.RationalNumber(exponent=exponent, value=round(value / 10**exponent))


def num(x: Any) -> float:
    return float(x.value) * 10.0 ** int(x.exponent)


def config(**kw: Any) -> SessionConfig:
    base: dict[str, Any] = {"tls13": True, "free_service": False}
    base.update(kw)
    return SessionConfig(**base)


@dataclass
class Ev:
    """Drives one SeccSession; ``send`` returns the decoded response (or None)."""

    cfg: SessionConfig = field(default_factory=config)
    dc: bool = True
    resume: Any = None
    clock: FakeClock = field(default_factory=lambda: FakeClock(utc=START))
    session_id: bytes = bytes(8)
    actions: list[Action] = field(default_factory=list)
    last: list[Action] = field(default_factory=list)
    # (dc, state) -> a copy of the session the first time it was in that state
    snapshots: dict[tuple[bool, Any], SeccSession] | None = None
    session: SeccSession = field(init=False)

    def __post_init__(self) -> None:
        self.session = SeccSession(
            self.cfg,
            now=self.clock.now,
            random_bytes=self.clock.random_bytes,
            utc_now=self.clock.utc_now,
            resume=self.resume,
        )

    def hdr(self, mod: Any) -> Any:
        return mod.MessageHeader(
            session_id=self.session_id, time_stamp=int(self.clock.utc_now().timestamp())
        )

    def feed(self, event: Any) -> list[Action]:
        out = self.session.handle(event, self.clock.now)
        self.actions += out
        self.last = out
        if self.snapshots is not None:
            session = self.session
            key = (session.context.is_dc, session.state)
            if session.state is not State.ENDED and key not in self.snapshots:
                self.snapshots[key] = copy.deepcopy(session, {id(session.config): session.config})
        return out

    def send_raw(self, msg: Any, schema: Schema) -> Any:
        """Encode, decode with ``schema`` (the payload type's), feed; the response decoded."""
        data = codec.encode(msg)
        decoded = codec.decode(data, schema.value)
        out = self.feed(RequestReceived(decoded, schema))
        responses = [a for a in out if isinstance(a, SendResponse)]
        assert len(responses) <= 1
        if not responses:
            return None
        res = responses[0]
        back = codec.decode(codec.encode(res.message), res.schema.value)
        assert type(back).__name__ == res.name
        assert res.schema is SCHEMA_OF.get(codec.schema_module(res.schema.value), res.schema)
        return back

    def send(self, msg: Any) -> Any:
        mod = codec.schema_module(type(msg).__module__.rsplit(".", 1)[1])
        return self.send_raw(msg, SCHEMA_OF[mod])

    def evse(self, **kw: Any) -> None:
        self.feed(EvseStatus(**kw))

    # --- the requests ------------------------------------------------------------------

    def handshake(self, namespaces: tuple[str, ...] | None = None) -> Any:
        if namespaces is None:
            namespaces = (ISO20_DC_NAMESPACE if self.dc else ISO20_AC_NAMESPACE,)
        offers = tuple(
            APP.AppProtocol(
                protocol_namespace=ns,
                version_number_major=1 if "-20" in ns else 2,
                version_number_minor=0,
                schema_id=i + 1,
                priority=i + 1,
            )
            for i, ns in enumerate(namespaces)
        )
        return self.send_raw(APP.supportedAppProtocolReq(app_protocol=offers), Schema.APPHAND)

    def session_setup(self) -> Any:
        res = self.send(C.SessionSetupReq(header=self.hdr(C), evccid="WMIV1234567890ABCDEF"))
        if res is not None:
            self.session_id = bytes(res.header.session_id)
        return res

    def authorization_setup(self) -> Any:
        return self.send(C.AuthorizationSetupReq(header=self.hdr(C)))

    def authorization(self, pnc: bool = False) -> Any:
        if pnc:
            return self.send(
                C.AuthorizationReq(
                    header=self.hdr(C),
                    selected_authorization_service=C.Authorization.PnC,
                    pn_c_a_req_authorization_mode=C.PnC_AReqAuthorizationMode(
                        id="id1",
                        gen_challenge=bytes(16),
                        contract_certificate_chain=C.ContractCertificateChain(
                            certificate=b"\x30\x00",
                            sub_certificates=C.SubCertificates(certificate=(b"\x30\x00",)),
                        ),
                    ),
                )
            )
        return self.send(
            C.AuthorizationReq(
                header=self.hdr(C),
                selected_authorization_service=C.Authorization.EIM,
                eim_a_req_authorization_mode=C.EIM_AReqAuthorizationMode(),
            )
        )

    def service_discovery(self) -> Any:
        return self.send(C.ServiceDiscoveryReq(header=self.hdr(C)))

    def service_detail(self, service_id: int) -> Any:
        return self.send(C.ServiceDetailReq(header=self.hdr(C), service_id=service_id))

    def service_selection(self, service_id: int, parameter_set_id: int) -> Any:
        return self.send(
            C.ServiceSelectionReq(
                header=self.hdr(C),
                selected_energy_transfer_service=C.SelectedService(
                    service_id=service_id, parameter_set_id=parameter_set_id
                ),
            )
        )

    def charge_parameters(self) -> Any:
        if self.dc:
            mode = D.DC_CPDReqEnergyTransferMode(
                ev_maximum_charge_power=rn(D, 100_000, 1),
                ev_minimum_charge_power=rn(D, 0),
                ev_maximum_charge_current=rn(D, 200),
                ev_minimum_charge_current=rn(D, 0),
                ev_maximum_voltage=rn(D, 450),
                ev_minimum_voltage=rn(D, 200),
            )
            return self.send(
                D.DC_ChargeParameterDiscoveryReq(
                    header=self.hdr(D), dc_cpd_req_energy_transfer_mode=mode
                )
            )
        mode = A.AC_CPDReqEnergyTransferMode(
            ev_maximum_charge_power=rn(A, 11_000, 1), ev_minimum_charge_power=rn(A, 1_400, 1)
        )
        return self.send(
            A.AC_ChargeParameterDiscoveryReq(
                header=self.hdr(A), ac_cpd_req_energy_transfer_mode=mode
            )
        )

    def schedule_exchange(self, dynamic: bool) -> Any:
        if dynamic:
            extra = {
                "dynamic_se_req_control_mode": C.Dynamic_SEReqControlMode(
                    departure_time=7200,
                    ev_target_energy_request=rn(C, 40_000, 1),
                    ev_maximum_energy_request=rn(C, 60_000, 1),
                    ev_minimum_energy_request=rn(C, 5_000, 1),
                )
            }
        else:
            extra = {"scheduled_se_req_control_mode": C.Scheduled_SEReqControlMode()}
        return self.send(
            C.ScheduleExchangeReq(header=self.hdr(C), maximum_supporting_points=24, **extra)
        )

    def power_delivery(
        self, progress: str, schedule_id: int | None = None, profile_watts: float | None = None
    ) -> Any:
        profile = None
        if schedule_id is not None or profile_watts is not None:
            entries = C.EVPowerProfileEntryList(
                ev_power_profile_entry=(
                    C.PowerScheduleEntry(duration=3600, power=rn(C, profile_watts or 1000, 1)),
                )
            )
            if schedule_id is not None:
                profile = C.EVPowerProfile(
                    time_anchor=0,
                    scheduled_evppt_control_mode=C.Scheduled_EVPPTControlMode(
                        selected_schedule_tuple_id=schedule_id
                    ),
                    ev_power_profile_entries=entries,
                )
            else:
                profile = C.EVPowerProfile(
                    time_anchor=0,
                    dynamic_evppt_control_mode=C.Dynamic_EVPPTControlMode(),
                    ev_power_profile_entries=entries,
                )
        return self.send(
            C.PowerDeliveryReq(
                header=self.hdr(C),
                ev_processing=C.Processing.Finished,
                charge_progress=C.ChargeProgress(progress),
                ev_power_profile=profile,
            )
        )

    def cable_check(self) -> Any:
        return self.send(D.DC_CableCheckReq(header=self.hdr(D)))

    def pre_charge(self, target: float, present: float = 0.0) -> Any:
        return self.send(
            D.DC_PreChargeReq(
                header=self.hdr(D),
                ev_processing=D.Processing.Ongoing,
                ev_present_voltage=rn(D, present),
                ev_target_voltage=rn(D, target),
            )
        )

    def dc_loop(self, dynamic: bool, voltage: float = 400, current: float = 100) -> Any:
        if dynamic:
            mode: Any = D.Dynamic_DC_CLReqControlMode(
                ev_target_energy_request=rn(D, 40_000, 1),
                ev_maximum_energy_request=rn(D, 60_000, 1),
                ev_minimum_energy_request=rn(D, 5_000, 1),
                ev_maximum_charge_power=rn(D, 100_000, 1),
                ev_minimum_charge_power=rn(D, 0),
                ev_maximum_charge_current=rn(D, 200),
                ev_maximum_voltage=rn(D, 450),
                ev_minimum_voltage=rn(D, 200),
            )
        else:
            mode = D.Scheduled_DC_CLReqControlMode(
                ev_target_current=rn(D, current), ev_target_voltage=rn(D, voltage)
            )
        return self.send(
            D.DC_ChargeLoopReq(
                header=self.hdr(D),
                meter_info_requested=True,
                ev_present_voltage=rn(D, 395),
                cl_req_control_mode=mode,
            )
        )

    def ac_loop(self, dynamic: bool) -> Any:
        if dynamic:
            mode: Any = A.Dynamic_AC_CLReqControlMode(
                ev_target_energy_request=rn(A, 40_000, 1),
                ev_maximum_energy_request=rn(A, 60_000, 1),
                ev_minimum_energy_request=rn(A, 5_000, 1),
                ev_maximum_charge_power=rn(A, 7_000, 1),
                ev_minimum_charge_power=rn(A, 1_400, 1),
                ev_present_active_power=rn(A, 6_900, 1),
                ev_present_reactive_power=rn(A, 0),
            )
        else:
            mode = A.Scheduled_AC_CLReqControlMode(ev_present_active_power=rn(A, 6_900, 1))
        return self.send(
            A.AC_ChargeLoopReq(
                header=self.hdr(A), meter_info_requested=False, cl_req_control_mode=mode
            )
        )

    def welding(self) -> Any:
        return self.send(
            D.DC_WeldingDetectionReq(header=self.hdr(D), ev_processing=D.Processing.Finished)
        )

    def session_stop(self, what: str = "Terminate") -> Any:
        return self.send(
            C.SessionStopReq(header=self.hdr(C), charging_session=C.ChargingSession(what))
        )


# --- getting a session somewhere ----------------------------------------------------------


def service_id(ev: Ev) -> int:
    return 2 if ev.dc else 1


def to_authorized(ev: Ev) -> None:
    assert ev.handshake().response_code.value == "OK_SuccessfulNegotiation"
    assert ev.session_setup().response_code.value == "OK_NewSessionEstablished"
    assert ev.authorization_setup().response_code.value == "OK"
    ev.feed(AuthorizationResult(accepted=True, id_token="TAG1"))
    res = ev.authorization()
    assert (res.response_code.value, res.evse_processing.value) == ("OK", "Finished")


def to_scheduled(ev: Ev, dynamic: bool) -> Any:
    """Service selected, charge parameters and ScheduleExchange done."""
    assert ev.service_discovery().response_code.value == "OK"
    assert ev.service_detail(service_id(ev)).response_code.value == "OK"
    assert ev.service_selection(service_id(ev), 2 if dynamic else 1).response_code.value == "OK"
    assert ev.charge_parameters().response_code.value == "OK"
    res = ev.schedule_exchange(dynamic)
    assert (res.response_code.value, res.evse_processing.value) == ("OK", "Finished")
    return res


def to_precharged(ev: Ev, target: float = 395.0) -> None:
    ev.evse(isolation="Invalid")  # the monitor has not measured yet
    assert ev.cable_check().evse_processing.value == "Ongoing"
    ev.evse(isolation="Valid")
    assert ev.cable_check().evse_processing.value == "Finished"
    assert ev.pre_charge(target).response_code.value == "OK"
    ev.evse(isolation="Valid", present_voltage=target)
    assert ev.pre_charge(target, target).response_code.value == "OK"


def start(ev: Ev, dynamic: bool) -> Any:
    res = ev.power_delivery("Start", None if dynamic else 1, 20_000)
    if res.response_code.value == "OK":
        saved = ev.last  # the PowerDelivery answer's actions stay what ``last`` shows
        ev.evse(
            isolation="Valid" if ev.dc else "Invalid",
            present_voltage=395.0 if ev.dc else 230.0,
            contactors_closed=True,
        )
        ev.last = saved
    return res


def to_loop(ev: Ev, dynamic: bool) -> None:
    to_authorized(ev)
    to_scheduled(ev, dynamic)
    if ev.dc:
        to_precharged(ev)
    assert start(ev, dynamic).response_code.value == "OK"


def loop(ev: Ev, dynamic: bool) -> Any:
    return ev.dc_loop(dynamic) if ev.dc else ev.ac_loop(dynamic)
