"""A sans-I/O ISO 15118-20 EV: given a response, it returns the next request.

Written from ISO 15118-20's message sequence (and the XSDs in
``V2G_CI_CommonMessages.xsd``, ``V2G_CI_AC.xsd``, ``V2G_CI_DC.xsd``)::

    supportedAppProtocol (the -20 AC or DC namespace, major 1, minor 0)
    SessionSetup → AuthorizationSetup → Authorization (EIM; again while Ongoing)
    → ServiceDiscovery → ServiceDetail → ServiceSelection
    → AC_/DC_ChargeParameterDiscovery → ScheduleExchange (again while Ongoing)
    → [DC: DC_CableCheck (while Ongoing) → DC_PreCharge (Ongoing until the EVSE's present
       voltage is within tolerance of the target, then once Finished)]
    → PowerDelivery(Start) → AC_/DC_ChargeLoop ... → PowerDelivery(Stop)
    → [DC: DC_WeldingDetection (Ongoing until the EVSE voltage is safe, then Finished)]
    → SessionStop(Terminate)

Scheduled control picks the first ScheduleTuple the SECC offers and answers with a power
profile within it; dynamic control follows the SECC's targets.  Every response's
ResponseCode is checked (FAILED* ends the session), every Ongoing loop and the PreCharge
are bounded by the EV's timers (a station that never finishes ends the session with a
clear :attr:`Ev20Simulator.error`), and an EVSENotification Terminate or Pause ends the
charging loop.  The EV knows nothing of sockets: :meth:`Ev20Simulator.start` gives the
first request, :meth:`Ev20Simulator.receive` (with the current time, if known) the next
one, or None when it is done (:attr:`~Ev20Simulator.error` says whether it failed).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from secc import codec
from secc.core.config import ISO20_AC_NAMESPACE, ISO20_DC_NAMESPACE
from secc.core.events import Schema
from secc.testing.ev import Outgoing

apphand = codec.schema_module("apphand")

SCHEMA_ID = 1
SERVICE_AC, SERVICE_DC = 1, 2  # ISO 15118-20 Table 204
CONTROL_MODE = {"scheduled": 1, "dynamic": 2}  # the ControlMode service parameter
MAX_SUPPORTING_POINTS = 1024  # maxSupportingPointsScheduleTupleType: 12..1024


class Ev20Error(Exception):
    """Why the -20 EV gave up (a refused request, a timer, an unusable offer)."""


@dataclass(frozen=True, slots=True)
class Ev20Script:
    """What the -20 EV wants and how patient it is (seconds, W, A, V, Wh)."""

    mode: str = "dc"  # "ac" or "dc"
    control: str = "scheduled"  # or "dynamic"
    charge_loops: int = 3
    energy_wh: float | None = None  # stop once the meter shows this much charged
    stop: str = "Terminate"  # SessionStopReq ChargingSession when the EV ends
    evcc_id: str = "WMI0SECCEV0000001"
    think_time: float = 0.05
    poll_interval: float = 0.5
    loop_interval: float = 0.2
    precharge_interval: float = 0.1
    # DC
    target_voltage: float = 400.0
    target_current: float = 100.0
    min_voltage: float = 150.0
    max_voltage: float = 450.0
    max_current: float = 200.0
    max_power: float = 80_000.0
    min_power: float = 0.0
    precharge_tolerance: float = 10.0  # |EVSE present voltage - target| that ends PreCharge
    safe_voltage: float = 60.0  # WeldingDetection ends once the EVSE is at or below this
    # AC
    ac_max_power: float = 11_000.0
    ac_min_power: float = 1_380.0
    # energy needs
    soc: int = 40
    target_soc: int = 80
    energy_request_wh: float = 40_000.0
    departure_time: int = 7200  # seconds from now
    # timers: how long the EV waits for the SECC to finish a step
    ongoing_timeout: float = 60.0  # Authorization, ScheduleExchange, WeldingDetection
    cable_check_timeout: float = 40.0
    precharge_timeout: float = 10.0  # V2G_EVCC_PreCharge_Timeout of -20 (-2: 7 s)

    def __post_init__(self) -> None:
        if self.mode not in ("ac", "dc"):
            raise ValueError(f"mode {self.mode!r}: use 'ac' or 'dc'")
        if self.control not in CONTROL_MODE:
            raise ValueError(f"control {self.control!r}: use 'scheduled' or 'dynamic'")
        if self.stop not in ("Terminate", "Pause"):
            raise ValueError(f"stop {self.stop!r}: use 'Terminate' or 'Pause'")
        if self.charge_loops < 1:
            raise ValueError("charge_loops must be at least 1")

    @property
    def dc(self) -> bool:
        return self.mode == "dc"

    @property
    def namespace(self) -> str:
        return ISO20_DC_NAMESPACE if self.dc else ISO20_AC_NAMESPACE


def rational(mod: Any, x: float) -> Any:
    """``x`` as a RationalNumber of ``mod`` (value * 10^exponent, value a 16-bit short)."""
    exponent, value = 0, float(x)
    while abs(round(value)) > 32767:
        value /= 10
        exponent += 1
    while value != round(value) and exponent > -3 and abs(value * 10) <= 32767:
        value *= 10
        exponent -= 1
    return mod.RationalNumber(exponent=exponent, value=round(value))


def value_of(r: Any) -> float:
    """A RationalNumber's value."""
    return float(r.value * 10.0**r.exponent)


def _param_int(parameter: Any) -> int | None:
    for field in ("int_value", "short_value", "byte_value"):
        v = getattr(parameter, field)
        if v is not None:
            return int(v)
    return None


class Ev20Simulator:
    """One ISO 15118-20 EV session, sans-I/O (see the module docstring)."""

    protocol = "iso20"

    def __init__(self, script: Ev20Script, *, utc_now: Callable[[], float] = time.time) -> None:
        self.script = script
        self.utc_now = utc_now
        self.common: Any = codec.schema_module(Schema.ISO20_COMMON.value)
        self.energy_schema = Schema.ISO20_DC if script.dc else Schema.ISO20_AC
        self.energy: Any = codec.schema_module(self.energy_schema.value)
        self.schema = self.energy_schema  # the protocol's schema, as EvSimulator.schema
        self.session_id = bytes(8)
        self.responses: list[tuple[str, str]] = []
        self.sent: list[str] = []
        self.notifications: list[str] = []
        self.done = False
        self.error: str | None = None
        self.loops = 0
        self.stopping = False
        self.stop_kind = script.stop
        self.parameter_set_id: int | None = None
        self.schedule_tuple_id: int | None = None
        self.schedule_power: float | None = None  # first entry of the chosen schedule (W)
        self.schedule_offers: list[list[float]] = []  # each ScheduleExchange's entries (W)
        self.renegotiating = False  # the EVSE asked for ScheduleRenegotiation
        self.evse_max_power: float | None = None
        self.evse_max_current: float | None = None
        self.evse_max_voltage: float | None = None
        self.evse_target_power: float | None = None  # dynamic AC: the SECC's target
        self.evse_voltage: float | None = None
        self.evse_current: float | None = None
        self.charged_wh: int | None = None
        self.precharge_finished = False
        self.welding_finished = False
        self._awaiting: str | None = None
        self._phase: str | None = None
        self._phase_start = 0.0
        self._clock = 0.0

    # --- the sans-I/O interface ----------------------------------------------------------

    def start(self) -> Outgoing:
        return self._out("supportedAppProtocolReq", 0.0)

    def receive(self, message: Any, schema: Schema, now: float | None = None) -> Outgoing | None:
        """The next request after ``message`` (decoded with ``schema``), or None when done."""
        if now is not None:
            self._clock = now
        name = type(message).__name__
        code = str(getattr(message.response_code, "value", message.response_code))
        self.responses.append((name, code))
        try:
            if name != self._awaiting:
                raise Ev20Error(f"expected {self._awaiting}, the station sent {name}")
            if code.upper().startswith("FAILED") and schema is not Schema.APPHAND:
                raise Ev20Error(f"{name}: {code}")
            if schema is not Schema.APPHAND:
                sid = bytes(message.header.session_id)
                if name == "SessionSetupRes":
                    self.session_id = sid
                elif sid != self.session_id:
                    raise Ev20Error(f"{name} carries session id {sid.hex()}, not ours")
            step = self._after(name, message)
        except Ev20Error as exc:
            self.error = str(exc)
            self.done = True
            return None
        if step is None:
            self.done = True
            return None
        return self._out(*step)

    def request(self, name: str) -> Outgoing:
        """The request ``name`` as this EV would send it now (benches, lab tools)."""
        return self._out(name, 0.0)

    @property
    def last_code(self) -> str | None:
        return self.responses[-1][1] if self.responses else None

    # --- sequencing ----------------------------------------------------------------------

    def _poll(self, phase: str, timeout: float, name: str, delay: float) -> tuple[str, float]:
        """Ask ``name`` again after ``delay`` unless ``phase`` has run past ``timeout``."""
        if self._phase != phase:
            self._phase, self._phase_start = phase, self._clock
        elif self._clock - self._phase_start + delay > timeout:
            raise Ev20Error(f"{phase} not finished within {timeout:g} s: the EV gives up")
        return name, delay

    def _after(self, name: str, res: Any) -> tuple[str, float] | None:
        s = self.script
        think, poll = s.think_time, s.poll_interval
        finished = getattr(getattr(res, "evse_processing", None), "value", "Finished")
        if name == "supportedAppProtocolRes":
            code = res.response_code.value
            if not code.startswith("OK") or res.schema_id != SCHEMA_ID:
                raise Ev20Error(f"the station does not speak {s.namespace} ({code})")
            return "SessionSetupReq", think
        if name == "SessionSetupRes":
            return "AuthorizationSetupReq", think
        if name == "AuthorizationSetupRes":
            offered = [a.value for a in res.authorization_services]
            if "EIM" not in offered:
                raise Ev20Error(f"the station offers {offered} but not EIM authorization")
            return "AuthorizationReq", think
        if name == "AuthorizationRes":
            if res.response_code.value.startswith("WARNING"):
                raise Ev20Error(f"authorization refused: {res.response_code.value}")
            if finished != "Finished":
                return self._poll("Authorization", s.ongoing_timeout, "AuthorizationReq", poll)
            return "ServiceDiscoveryReq", think
        if name == "ServiceDiscoveryRes":
            wanted = SERVICE_DC if s.dc else SERVICE_AC
            offered = [x.service_id for x in res.energy_transfer_service_list.service]
            if wanted not in offered:
                raise Ev20Error(f"the station offers services {offered}, not {s.mode.upper()}")
            return "ServiceDetailReq", think
        if name == "ServiceDetailRes":
            self.parameter_set_id = self._pick_parameter_set(res)
            return "ServiceSelectionReq", think
        if name == "ServiceSelectionRes":
            return ("DC" if s.dc else "AC") + "_ChargeParameterDiscoveryReq", think
        if name in ("AC_ChargeParameterDiscoveryRes", "DC_ChargeParameterDiscoveryRes"):
            self._take_limits(res)
            return "ScheduleExchangeReq", think
        if name == "ScheduleExchangeRes":
            if finished != "Finished":
                return self._poll(
                    "ScheduleExchange", s.ongoing_timeout, "ScheduleExchangeReq", poll
                )
            self._take_schedule(res)
            if self.renegotiating:  # the new schedule: back to the loop with a Start
                self.renegotiating = False
                return "PowerDeliveryReq", think
            return ("DC_CableCheckReq" if s.dc else "PowerDeliveryReq"), think
        if name == "DC_CableCheckRes":
            if finished != "Finished":
                return self._poll("CableCheck", s.cable_check_timeout, "DC_CableCheckReq", poll)
            return "DC_PreChargeReq", think
        if name == "DC_PreChargeRes":
            self.evse_voltage = value_of(res.evse_present_voltage)
            if self.precharge_finished:
                return "PowerDeliveryReq", think
            if abs(self.evse_voltage - s.target_voltage) <= s.precharge_tolerance:
                self.precharge_finished = True  # the next DC_PreChargeReq says Finished
                return "DC_PreChargeReq", s.precharge_interval
            return self._poll(
                "PreCharge", s.precharge_timeout, "DC_PreChargeReq", s.precharge_interval
            )
        if name == "PowerDeliveryRes":
            if self.renegotiating and not self.stopping:
                return "ScheduleExchangeReq", think
            if not self.stopping:
                self._notice(res.evse_status)
                if self.stopping:  # Terminate or Pause already with the start: stop again
                    return "PowerDeliveryReq", think
                return ("DC" if s.dc else "AC") + "_ChargeLoopReq", think
            if s.dc:
                return "DC_WeldingDetectionReq", think
            return "SessionStopReq", think
        if name in ("AC_ChargeLoopRes", "DC_ChargeLoopRes"):
            return self._charge_loop(res)
        if name == "DC_WeldingDetectionRes":
            self.evse_voltage = value_of(res.evse_present_voltage)
            if self.welding_finished:
                return "SessionStopReq", think
            if self.evse_voltage <= s.safe_voltage:
                self.welding_finished = True
                return "DC_WeldingDetectionReq", think
            return self._poll("WeldingDetection", s.ongoing_timeout, "DC_WeldingDetectionReq", poll)
        if name == "SessionStopRes":
            return None
        raise Ev20Error(f"unexpected {name}")

    def _pick_parameter_set(self, res: Any) -> int:
        s = self.script
        wanted = CONTROL_MODE[s.control]
        modes = []
        for pset in res.service_parameter_list.parameter_set:
            values = {p.name: _param_int(p) for p in pset.parameter}
            modes.append(values.get("ControlMode"))
            if values.get("ControlMode") == wanted:
                return int(pset.parameter_set_id)
        raise Ev20Error(
            f"service {res.service_id} offers ControlMode {modes}, not {s.control} ({wanted})"
        )

    def _take_limits(self, res: Any) -> None:
        if self.script.dc:
            mode = res.dc_cpd_res_energy_transfer_mode
            self.evse_max_current = value_of(mode.evse_maximum_charge_current)
            self.evse_max_voltage = value_of(mode.evse_maximum_voltage)
            if self.script.target_voltage > self.evse_max_voltage:
                raise Ev20Error(
                    f"the EVSE's maximum voltage {self.evse_max_voltage:g} V is below the "
                    f"EV's target {self.script.target_voltage:g} V"
                )
        else:
            mode = res.ac_cpd_res_energy_transfer_mode
        self.evse_max_power = value_of(mode.evse_maximum_charge_power)

    def _take_schedule(self, res: Any) -> None:
        if self.script.control == "scheduled":
            ctrl = res.scheduled_se_res_control_mode
            if ctrl is None or not ctrl.schedule_tuple:
                raise Ev20Error("ScheduleExchangeRes Finished without a ScheduleTuple")
            chosen = ctrl.schedule_tuple[0]
            self.schedule_tuple_id = int(chosen.schedule_tuple_id)
            entries = chosen.charging_schedule.power_schedule.power_schedule_entries
            powers = [value_of(e.power) for e in entries.power_schedule_entry]
            self.schedule_power = powers[0] if powers else None
            self.schedule_offers.append(powers)
        elif res.dynamic_se_res_control_mode is None:
            raise Ev20Error("ScheduleExchangeRes Finished without Dynamic_SEResControlMode")

    def _notice(self, status: Any) -> None:
        """Honour an EVSENotification: Terminate and Pause end the charging loop."""
        if status is None:
            return
        note = status.evse_notification.value
        self.notifications.append(note)
        if note in ("Terminate", "Pause") and not self.stopping:
            self.stopping = True
            self.stop_kind = note
        elif note == "ScheduleRenegotiation" and not self.stopping:
            self.renegotiating = self.script.control == "scheduled"

    def _charge_loop(self, res: Any) -> tuple[str, float]:
        s = self.script
        self.loops += 1
        if res.meter_info is not None:
            self.charged_wh = int(res.meter_info.charged_energy_reading_wh)
        if s.dc:
            self.evse_voltage = value_of(res.evse_present_voltage)
            self.evse_current = value_of(res.evse_present_current)
        else:
            ctrl = res.cl_res_control_mode
            target = getattr(ctrl, "evse_target_active_power", None)
            if target is not None:
                self.evse_target_power = value_of(target)
        self._notice(res.evse_status)
        enough = s.energy_wh is not None and (self.charged_wh or 0) >= s.energy_wh
        if s.energy_wh is None and self.loops >= s.charge_loops:
            enough = True
        if enough or self.stopping:
            self.stopping = True
            return "PowerDeliveryReq", s.think_time
        if self.renegotiating:  # PowerDelivery ScheduleRenegotiation, then ScheduleExchange
            return "PowerDeliveryReq", s.think_time
        return ("DC" if s.dc else "AC") + "_ChargeLoopReq", s.loop_interval

    # --- messages ------------------------------------------------------------------------

    def _out(self, name: str, delay: float) -> Outgoing:
        self._clock += delay
        self.sent.append(name)
        self._awaiting = name[:-3] + "Res"
        if name == "supportedAppProtocolReq":
            return Outgoing(self._handshake(), Schema.APPHAND, name, delay)
        message, schema = self._build(name)
        return Outgoing(message, schema, name, delay)

    def _handshake(self) -> Any:
        return apphand.supportedAppProtocolReq(
            app_protocol=(
                apphand.AppProtocol(
                    protocol_namespace=self.script.namespace,
                    version_number_major=1,
                    version_number_minor=0,
                    schema_id=SCHEMA_ID,
                    priority=1,
                ),
            )
        )

    def _header(self, mod: Any) -> Any:
        return mod.MessageHeader(session_id=self.session_id, time_stamp=int(self.utc_now()))

    def _energy_requests(self, mod: Any) -> dict[str, Any]:
        s = self.script
        left = max(0.0, s.energy_request_wh - (self.charged_wh or 0))
        return {
            "ev_target_energy_request": rational(mod, left),
            "ev_maximum_energy_request": rational(mod, left),
            "ev_minimum_energy_request": rational(mod, 0),
        }

    def _charge_power(self) -> float:
        """The power the EV asks for: its own limit within the EVSE's and the schedule's."""
        s = self.script
        power = s.max_power if s.dc else s.ac_max_power
        for cap in (self.evse_max_power, self.schedule_power):
            if cap is not None and cap > 0:
                power = min(power, cap)
        return power

    def _build(self, name: str) -> tuple[Any, Schema]:
        s, c, e = self.script, self.common, self.energy
        common = Schema.ISO20_COMMON
        if name == "SessionSetupReq":
            return c.SessionSetupReq(header=self._header(c), evccid=s.evcc_id), common
        if name == "AuthorizationSetupReq":
            return c.AuthorizationSetupReq(header=self._header(c)), common
        if name == "AuthorizationReq":
            return c.AuthorizationReq(
                header=self._header(c),
                selected_authorization_service=c.Authorization.EIM,
                eim_a_req_authorization_mode=c.EIM_AReqAuthorizationMode(),
            ), common
        if name == "ServiceDiscoveryReq":
            return c.ServiceDiscoveryReq(header=self._header(c)), common
        if name == "ServiceDetailReq":
            service = SERVICE_DC if s.dc else SERVICE_AC
            return c.ServiceDetailReq(header=self._header(c), service_id=service), common
        if name == "ServiceSelectionReq":
            return c.ServiceSelectionReq(
                header=self._header(c),
                selected_energy_transfer_service=c.SelectedService(
                    service_id=SERVICE_DC if s.dc else SERVICE_AC,
                    parameter_set_id=self.parameter_set_id or 0,
                ),
            ), common
        if name == "DC_ChargeParameterDiscoveryReq":
            return e.DC_ChargeParameterDiscoveryReq(
                header=self._header(e),
                dc_cpd_req_energy_transfer_mode=e.DC_CPDReqEnergyTransferMode(
                    ev_maximum_charge_power=rational(e, s.max_power),
                    ev_minimum_charge_power=rational(e, s.min_power),
                    ev_maximum_charge_current=rational(e, s.max_current),
                    ev_minimum_charge_current=rational(e, 0),
                    ev_maximum_voltage=rational(e, s.max_voltage),
                    ev_minimum_voltage=rational(e, s.min_voltage),
                    target_soc=s.target_soc,
                ),
            ), self.energy_schema
        if name == "AC_ChargeParameterDiscoveryReq":
            return e.AC_ChargeParameterDiscoveryReq(
                header=self._header(e),
                ac_cpd_req_energy_transfer_mode=e.AC_CPDReqEnergyTransferMode(
                    ev_maximum_charge_power=rational(e, s.ac_max_power),
                    ev_minimum_charge_power=rational(e, s.ac_min_power),
                ),
            ), self.energy_schema
        if name == "ScheduleExchangeReq":
            if s.control == "dynamic":
                mode: dict[str, Any] = {
                    "dynamic_se_req_control_mode": c.Dynamic_SEReqControlMode(
                        departure_time=s.departure_time,
                        minimum_soc=min(s.soc, s.target_soc),
                        target_soc=s.target_soc,
                        **self._energy_requests(c),
                    )
                }
            else:
                mode = {
                    "scheduled_se_req_control_mode": c.Scheduled_SEReqControlMode(
                        departure_time=s.departure_time, **self._energy_requests(c)
                    )
                }
            return c.ScheduleExchangeReq(
                header=self._header(c), maximum_supporting_points=MAX_SUPPORTING_POINTS, **mode
            ), common
        if name == "DC_CableCheckReq":
            return e.DC_CableCheckReq(header=self._header(e)), self.energy_schema
        if name == "DC_PreChargeReq":
            done = "Finished" if self.precharge_finished else "Ongoing"
            return e.DC_PreChargeReq(
                header=self._header(e),
                ev_processing=e.Processing(done),
                ev_present_voltage=rational(e, s.target_voltage),
                ev_target_voltage=rational(e, s.target_voltage),
            ), self.energy_schema
        if name == "PowerDeliveryReq":
            return self._power_delivery(), common
        if name == "DC_ChargeLoopReq":
            return self._dc_loop(), self.energy_schema
        if name == "AC_ChargeLoopReq":
            return self._ac_loop(), self.energy_schema
        if name == "DC_WeldingDetectionReq":
            done = "Finished" if self.welding_finished else "Ongoing"
            return e.DC_WeldingDetectionReq(
                header=self._header(e), ev_processing=e.Processing(done)
            ), self.energy_schema
        if name == "SessionStopReq":
            return c.SessionStopReq(
                header=self._header(c), charging_session=c.ChargingSession(self.stop_kind)
            ), common
        raise ValueError(f"the -20 EV does not send {name}")

    def _power_delivery(self) -> Any:
        c, s = self.common, self.script
        if self.stopping:
            return c.PowerDeliveryReq(
                header=self._header(c),
                ev_processing=c.Processing.Finished,
                charge_progress=c.ChargeProgress.Stop,
            )
        if self.renegotiating:
            return c.PowerDeliveryReq(
                header=self._header(c),
                ev_processing=c.Processing.Finished,
                charge_progress=c.ChargeProgress.ScheduleRenegotiation,
            )
        if s.control == "scheduled":
            ctrl: dict[str, Any] = {
                "scheduled_evppt_control_mode": c.Scheduled_EVPPTControlMode(
                    selected_schedule_tuple_id=self.schedule_tuple_id or 0
                )
            }
        else:
            ctrl = {"dynamic_evppt_control_mode": c.Dynamic_EVPPTControlMode()}
        profile = c.EVPowerProfile(
            time_anchor=int(self.utc_now()),
            ev_power_profile_entries=c.EVPowerProfileEntryList(
                ev_power_profile_entry=(
                    c.PowerScheduleEntry(
                        duration=s.departure_time, power=rational(c, self._charge_power())
                    ),
                )
            ),
            **ctrl,
        )
        return c.PowerDeliveryReq(
            header=self._header(c),
            ev_processing=c.Processing.Finished,
            charge_progress=c.ChargeProgress.Start,
            ev_power_profile=profile,
        )

    def _display(self, mod: Any) -> Any:
        s = self.script
        return mod.DisplayParameters(
            present_soc=min(100, s.soc + self.loops), target_soc=s.target_soc
        )

    def _dc_loop(self) -> Any:
        e, s = self.energy, self.script
        current = min(s.target_current, self.evse_max_current or s.target_current)
        if s.control == "scheduled":
            ctrl: Any = e.Scheduled_DC_CLReqControlMode(
                ev_target_current=rational(e, current),
                ev_target_voltage=rational(e, s.target_voltage),
            )
        else:
            ctrl = e.Dynamic_DC_CLReqControlMode(
                departure_time=s.departure_time,
                ev_maximum_charge_power=rational(e, self._charge_power()),
                ev_minimum_charge_power=rational(e, s.min_power),
                ev_maximum_charge_current=rational(e, s.max_current),
                ev_maximum_voltage=rational(e, s.max_voltage),
                ev_minimum_voltage=rational(e, s.min_voltage),
                **self._energy_requests(e),
            )
        return e.DC_ChargeLoopReq(
            header=self._header(e),
            display_parameters=self._display(e),
            meter_info_requested=s.energy_wh is not None or self.loops == 0,
            ev_present_voltage=rational(e, self.evse_voltage or s.target_voltage),
            cl_req_control_mode=ctrl,
        )

    def _ac_loop(self) -> Any:
        e, s = self.energy, self.script
        present = self.evse_target_power if self.evse_target_power is not None else 0.0
        if s.control == "scheduled":
            present = self._charge_power() if self.loops else 0.0
            ctrl: Any = e.Scheduled_AC_CLReqControlMode(
                ev_present_active_power=rational(e, present)
            )
        else:
            ctrl = e.Dynamic_AC_CLReqControlMode(
                departure_time=s.departure_time,
                ev_maximum_charge_power=rational(e, self._charge_power()),
                ev_minimum_charge_power=rational(e, s.ac_min_power),
                ev_present_active_power=rational(e, present),
                ev_present_reactive_power=rational(e, 0),
                **self._energy_requests(e),
            )
        return e.AC_ChargeLoopReq(
            header=self._header(e),
            display_parameters=self._display(e),
            meter_info_requested=s.energy_wh is not None or self.loops == 0,
            cl_req_control_mode=ctrl,
        )
