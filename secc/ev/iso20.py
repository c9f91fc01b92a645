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

Plug & Charge (``payment="pnc"``, with :class:`~secc.ev.pnc20.Ev20Credentials`): the EV
chooses PnC when AuthorizationSetupRes offers it, optionally first installs a contract
(CertificateInstallationReq signed with its OEM provisioning key, again while Ongoing;
:mod:`secc.ev.install20` opens the contract key), then sends PnC_AReqAuthorizationMode with
the station's GenChallenge and its contract chain, signed with the contract key; whenever
the station notifies MeteringConfirmation it answers a MeteringConfirmationReq (the last
MeterInfo, signed).  Bidirectional power (``bpt=True``): AC_BPT or DC_BPT with the
discharge limits, ``discharge_loops`` loops discharging after the charging ones (negative
target current / present power, as -20 counts discharge) on a Unified BPT channel; on a
Separated one the EV names Charge in PowerDeliveryReq and only charges.

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

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from secc import codec
from secc.core.config import ISO20_AC_NAMESPACE, ISO20_DC_NAMESPACE
from secc.core.events import Schema
from secc.ev import install20, pnc20
from secc.ev.iso2 import Outgoing

apphand = codec.schema_module("apphand")

SCHEMA_ID = 1
SERVICE_AC, SERVICE_DC = 1, 2  # ISO 15118-20 Table 204
SERVICE_AC_BPT, SERVICE_DC_BPT = 5, 6
BPT_CHANNEL_UNIFIED = 1  # the BPTChannel service parameter (2: Separated)
CONTROL_MODE = {"scheduled": 1, "dynamic": 2}  # the ControlMode service parameter
MAX_SUPPORTING_POINTS = 1024  # maxSupportingPointsScheduleTupleType: 12..1024
MSG_TIMEOUT = {  # V2G_EVCC_Msg_Timeout (s) where it is not 2 s
    "ServiceDetailReq": 5.0,
    "CertificateInstallationReq": 5.0,
    "AC_ChargeLoopReq": 0.5,
    "DC_ChargeLoopReq": 0.5,
}


class Ev20Error(Exception):
    """Why the -20 EV gave up (a refused request, a timer, an unusable offer)."""


@dataclass(frozen=True, slots=True)
class Ev20Script:
    """What the -20 EV wants and how patient it is (seconds, W, A, V, Wh)."""

    mode: str = "dc"  # "ac" or "dc"
    control: str = "scheduled"  # or "dynamic"
    payment: str = "eim"  # or "pnc" (needs Ev20Credentials)
    install_certificate: bool | None = None  # None: when offered and without a contract
    max_contract_chains: int = 1
    bpt: bool = False  # AC_BPT / DC_BPT
    discharge_loops: int = 0  # with bpt: loops discharging after the charging ones
    max_discharge_power: float = 10_000.0
    min_discharge_power: float = 0.0
    max_discharge_current: float = 25.0  # DC
    discharge_current: float = 20.0  # DC scheduled: |EVTargetCurrent| while discharging
    charge_loops: int = 3
    renegotiate: bool = False  # scheduled: one ScheduleRenegotiation of its own half way
    energy_wh: float | None = None  # stop once the meter shows this much charged
    stop: str = "Terminate"  # SessionStopReq ChargingSession when the EV ends
    # resume a paused session: SessionSetupReq carries its SessionID; after
    # OK_OldSessionJoined the EV goes on with ChargeParameterDiscovery ([V2G20-2097] AC,
    # [V2G20-2098] DC: authorization and service selection hold for the service session)
    resume_session: bytes | None = None
    # standby: after ``standby_after`` charging loops PowerDelivery Standby, then
    # ``standby_loops`` charge loops without power, then PowerDelivery Start (0: never)
    standby_after: int = 0
    standby_loops: int = 2
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
    # timers: how long the EV waits for the SECC to finish a step (ISO 15118-20's EVCC
    # timers [V2G20-???]; the same names and, but for PreCharge, the values of -2)
    # V2G_EVCC_Ongoing_Timeout: Authorization, CertificateInstallation, ScheduleExchange,
    # WeldingDetection while EVSEProcessing=Ongoing
    ongoing_timeout: float = 60.0
    cable_check_timeout: float = 40.0  # V2G_EVCC_CableCheck_Timeout
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
        if self.payment not in ("eim", "pnc"):
            raise ValueError(f"payment {self.payment!r}: use 'eim' or 'pnc'")
        if self.discharge_loops and not self.bpt:
            raise ValueError("discharge_loops needs bpt")
        if self.resume_session is not None and len(self.resume_session) != 8:
            raise ValueError("resume_session: a -20 SessionID has 8 octets")
        if self.standby_after < 0 or self.standby_loops < 0:
            raise ValueError("standby_after and standby_loops must not be negative")

    @property
    def service_id(self) -> int:
        if self.bpt:
            return SERVICE_DC_BPT if self.dc else SERVICE_AC_BPT
        return SERVICE_DC if self.dc else SERVICE_AC

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

    def __init__(
        self,
        script: Ev20Script,
        *,
        credentials: pnc20.Ev20Credentials | None = None,
        faults: pnc20.Ev20Faults | None = None,
        utc_now: Callable[[], float] = time.time,
    ) -> None:
        if script.payment == "pnc" and credentials is None:
            raise ValueError("a Plug & Charge EV needs its credentials")
        self.script = script
        self.credentials = credentials or pnc20.Ev20Credentials()
        self.faults = faults or pnc20.Ev20Faults()
        self.gen_challenge: bytes | None = None
        self.installed: Any = None  # the contract installed in this session (install20)
        self.metering_confirmations = 0
        self.last_meter: Any = None  # the last MeterInfo (and Receipt) the station sent
        self.last_receipt: Any = None
        self.discharged_wh: int | None = None
        self.evse_max_discharge_power: float | None = None
        self.evse_max_discharge_current: float | None = None
        self._resume: tuple[str, float] | None = None  # after MeteringConfirmationRes
        self._charge_done = False
        self.bpt_channel: int | None = None  # the BPTChannel of the chosen parameter set
        self._discharge_start: int | None = None
        self.utc_now = utc_now
        self.common: Any = codec.schema_module(Schema.ISO20_COMMON.value)
        self.energy_schema = Schema.ISO20_DC if script.dc else Schema.ISO20_AC
        self.energy: Any = codec.schema_module(self.energy_schema.value)
        self.schema = self.energy_schema  # the protocol's schema, as EvSimulator.schema
        self.session_id = script.resume_session or bytes(8)
        self.resumed = False  # the station joined the paused session (OK_OldSessionJoined)
        self.standby = False  # in standby (PowerDelivery Standby answered OK)
        self.standby_done = False
        self._standby_loops = 0
        self._standby_step: str | None = None  # the PowerDelivery Standby / Start sent
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
        self.renegotiated = False  # the EV renegotiated by itself (Ev20Script.renegotiate)
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
        self._first_sent = 0.0  # when the first request of the current phase went out
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

    def message_timeout(self, name: str) -> float:
        """V2G_EVCC_Msg_Timeout for the request ``name`` (ISO 15118-20's message timeouts
        [V2G20-???]): 5 s for ServiceDetail and CertificateInstallation (they may reach a
        back end), 0.5 s in the charge loops, 2 s otherwise."""
        return MSG_TIMEOUT.get(name, 2.0)

    @property
    def last_code(self) -> str | None:
        return self.responses[-1][1] if self.responses else None

    # --- sequencing ----------------------------------------------------------------------

    def _poll(self, phase: str, timeout: float, name: str, delay: float) -> tuple[str, float]:
        """Ask ``name`` again after ``delay`` unless ``phase`` (timed from its first
        request; a phase that comes back later, as a renegotiation's ScheduleExchange,
        is timed afresh) would then have run past ``timeout``."""
        if self._phase != phase:
            self._phase, self._phase_start = phase, self._first_sent
        if self._clock - self._phase_start + delay > timeout:
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
            if res.response_code.value == "OK_OldSessionJoined":
                if s.resume_session is None:
                    raise Ev20Error("OK_OldSessionJoined, but the EV asked for a new session")
                self.resumed = True
                return ("DC" if s.dc else "AC") + "_ChargeParameterDiscoveryReq", think
            return "AuthorizationSetupReq", think
        if name == "AuthorizationSetupRes":
            offered = [a.value for a in res.authorization_services]
            wanted = "PnC" if s.payment == "pnc" else "EIM"
            if wanted not in offered:
                raise Ev20Error(f"the station offers {offered} but not {wanted} authorization")
            if wanted == "PnC":
                mode = res.pn_c_as_res_authorization_mode
                if mode is None:
                    raise Ev20Error("AuthorizationSetupRes offers PnC without a GenChallenge")
                self.gen_challenge = bytes(mode.gen_challenge)
                install = s.install_certificate
                if install is None:
                    install = not self.credentials.has_contract
                if install:
                    if not res.certificate_installation_service:
                        raise Ev20Error(
                            "the EV needs a contract; the station offers no installation"
                        )
                    if not self.credentials.oem_chain or self.credentials.oem_key is None:
                        raise Ev20Error("certificate installation needs an OEM provisioning chain")
                    return "CertificateInstallationReq", think
                if not self.credentials.has_contract:
                    raise Ev20Error("Plug & Charge without a contract certificate")
            return "AuthorizationReq", think
        if name == "CertificateInstallationRes":
            if finished != "Finished":
                return self._poll(
                    "CertificateInstallation", s.ongoing_timeout, "CertificateInstallationReq", poll
                )
            self._install(res)
            return "AuthorizationReq", think
        if name == "MeteringConfirmationRes":
            step, self._resume = self._resume, None
            return step
        if name == "AuthorizationRes":
            if res.response_code.value.startswith("WARNING"):
                raise Ev20Error(f"authorization refused: {res.response_code.value}")
            if finished != "Finished":
                return self._poll("Authorization", s.ongoing_timeout, "AuthorizationReq", poll)
            return "ServiceDiscoveryReq", think
        if name == "ServiceDiscoveryRes":
            offered = [x.service_id for x in res.energy_transfer_service_list.service]
            if s.service_id not in offered:
                kind = s.mode.upper() + ("_BPT" if s.bpt else "")
                raise Ev20Error(
                    f"the station offers services {offered}, not {kind} ({s.service_id})"
                )
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
            try:
                return self._poll(
                    "PreCharge", s.precharge_timeout, "DC_PreChargeReq", s.precharge_interval
                )
            except Ev20Error as exc:
                raise Ev20Error(
                    f"{exc} (the EVSE reports {self.evse_voltage:g} V, "
                    f"the EV asked {s.target_voltage:g} V)"
                ) from None
        if name == "PowerDeliveryRes":
            if self._standby_step is not None and not self.stopping:
                return self._after_standby_step(res)
            if self.stopping and self._metering_asked(res.evse_status):
                after = "DC_WeldingDetectionReq" if s.dc else "SessionStopReq"
                self._resume = (after, think)
                return "MeteringConfirmationReq", think
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

    def _after_standby_step(self, res: Any) -> tuple[str, float]:
        """The answer to PowerDelivery Standby (OK: standby; WARNING_StandbyNotAllowed:
        the loop goes on with power) or to the Start that ends the standby."""
        s = self.script
        step, self._standby_step = self._standby_step, None
        if step == "Standby" and res.response_code.value == "OK":
            self.standby, self._standby_loops = True, 0
        else:
            self.standby, self.standby_done = False, True
        self._notice(res.evse_status)
        if self.stopping:
            return "PowerDeliveryReq", s.think_time
        return ("DC" if s.dc else "AC") + "_ChargeLoopReq", s.think_time

    def _pick_parameter_set(self, res: Any) -> int:
        """The first parameter set with the EV's ControlMode; for BPT one with a Unified
        BPTChannel (1: one channel both ways) if offered, else Separated (2: the EV then
        names the direction in PowerDeliveryReq's BPT_ChannelSelection)."""
        s = self.script
        wanted = CONTROL_MODE[s.control]
        modes = []
        fitting: list[tuple[int, int | None]] = []
        for pset in res.service_parameter_list.parameter_set:
            values = {p.name: _param_int(p) for p in pset.parameter}
            modes.append(values.get("ControlMode"))
            if values.get("ControlMode") == wanted:
                fitting.append((int(pset.parameter_set_id), values.get("BPTChannel")))
        if fitting:
            unified = [f for f in fitting if f[1] in (None, BPT_CHANNEL_UNIFIED)]
            set_id, self.bpt_channel = (unified or fitting)[0]
            return set_id
        raise Ev20Error(
            f"service {res.service_id} offers ControlMode {modes}, not {s.control} ({wanted})"
        )

    def _install(self, res: Any) -> None:
        """Take the contract a CertificateInstallationRes carries (see install20)."""
        try:
            self.credentials, self.installed = install20.take_installation(res, self.credentials)
        except install20.InstallError as exc:
            raise Ev20Error(f"CertificateInstallationRes: {exc}") from exc

    def _metering_asked(self, status: Any) -> bool:
        """Does the station ask for a MeteringConfirmationReq (and can this EV sign one)?"""
        if status is None or status.evse_notification.value != "MeteringConfirmation":
            return False
        return self.script.payment == "pnc" and self.last_meter is not None

    def _take_limits(self, res: Any) -> None:
        if self.script.bpt:
            if self.script.dc:
                bpt = res.dc_cpd_res_energy_transfer_mode
            else:
                bpt = res.ac_cpd_res_energy_transfer_mode
            limit = getattr(bpt, "evse_maximum_discharge_power", None)
            if limit is None:
                raise Ev20Error("the station answered BPT without discharge limits")
            self.evse_max_discharge_power = abs(value_of(limit))
            current = getattr(bpt, "evse_maximum_discharge_current", None)
            if current is not None:
                self.evse_max_discharge_current = abs(value_of(current))
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

    @property
    def discharging(self) -> bool:
        """Is the EV in its discharging loops (BPT) now?"""
        s = self.script
        if self.bpt_channel not in (None, BPT_CHANNEL_UNIFIED):
            return False  # Separated: a new PowerDelivery per direction (not simulated)
        return s.bpt and s.discharge_loops > 0 and self._charged_enough(self.loops)

    def _charged_enough(self, loops: int) -> bool:
        s = self.script
        if s.energy_wh is not None:
            return self._charge_done
        return loops >= s.charge_loops

    def _charge_loop(self, res: Any) -> tuple[str, float]:
        s = self.script
        if self.standby:  # loops without power: they keep the session; not counted
            self._standby_loops += 1
            if s.dc:
                self.evse_voltage = value_of(res.evse_present_voltage)
                self.evse_current = value_of(res.evse_present_current)
            self._notice(res.evse_status)
            if self.stopping:
                return "PowerDeliveryReq", s.think_time
            if self._standby_loops >= s.standby_loops:
                self._standby_step = "Start"
                return "PowerDeliveryReq", s.think_time
            return ("DC" if s.dc else "AC") + "_ChargeLoopReq", s.loop_interval
        self.loops += 1
        if res.meter_info is not None:
            self.last_meter = res.meter_info
            self.charged_wh = int(res.meter_info.charged_energy_reading_wh)
            if res.meter_info.bpt_discharged_energy_reading_wh is not None:
                self.discharged_wh = int(res.meter_info.bpt_discharged_energy_reading_wh)
        if res.receipt is not None:
            self.last_receipt = res.receipt
        if s.energy_wh is not None and (self.charged_wh or 0) >= s.energy_wh:
            self._charge_done = True
        if s.dc:
            self.evse_voltage = value_of(res.evse_present_voltage)
            self.evse_current = value_of(res.evse_present_current)
        else:
            ctrl = res.cl_res_control_mode
            target = getattr(ctrl, "evse_target_active_power", None)
            if target is not None:
                self.evse_target_power = value_of(target)
        asked = self._metering_asked(res.evse_status)
        self._notice(res.evse_status)
        own = s.renegotiate and s.control == "scheduled" and not self.renegotiated
        if own and self.loops * 2 >= s.charge_loops:
            self.renegotiating = self.renegotiated = True
        enough = self._charged_enough(self.loops)
        if enough and s.bpt and s.discharge_loops:
            if self._discharge_start is None:
                self._discharge_start = self.loops
            enough = self.loops - self._discharge_start >= s.discharge_loops
        if enough or self.stopping:
            self.stopping = True
            step: tuple[str, float] = ("PowerDeliveryReq", s.think_time)
        elif self.renegotiating:  # PowerDelivery ScheduleRenegotiation, then ScheduleExchange
            step = ("PowerDeliveryReq", s.think_time)
        elif s.standby_after and not self.standby_done and self.loops >= s.standby_after:
            self._standby_step = "Standby"
            step = ("PowerDeliveryReq", s.think_time)
        else:
            step = (("DC" if s.dc else "AC") + "_ChargeLoopReq", s.loop_interval)
        if asked:
            self._resume = step
            return "MeteringConfirmationReq", s.think_time
        return step

    # --- messages ------------------------------------------------------------------------

    def _out(self, name: str, delay: float) -> Outgoing:
        self._clock += delay
        if not self.sent or self.sent[-1] != name:  # a new phase: its timer starts here
            self._phase, self._first_sent = None, self._clock
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
            if s.payment == "pnc":
                return self._pnc_authorization(), common
            return c.AuthorizationReq(
                header=self._header(c),
                selected_authorization_service=c.Authorization.EIM,
                eim_a_req_authorization_mode=c.EIM_AReqAuthorizationMode(),
            ), common
        if name == "CertificateInstallationReq":
            return self._installation_req(), common
        if name == "MeteringConfirmationReq":
            return self._metering_confirmation(), common
        if name == "ServiceDiscoveryReq":
            return c.ServiceDiscoveryReq(header=self._header(c)), common
        if name == "ServiceDetailReq":
            return c.ServiceDetailReq(header=self._header(c), service_id=s.service_id), common
        if name == "ServiceSelectionReq":
            return c.ServiceSelectionReq(
                header=self._header(c),
                selected_energy_transfer_service=c.SelectedService(
                    service_id=s.service_id,
                    parameter_set_id=self.parameter_set_id or 0,
                ),
            ), common
        if name == "DC_ChargeParameterDiscoveryReq":
            dc: dict[str, Any] = {
                "ev_maximum_charge_power": rational(e, s.max_power),
                "ev_minimum_charge_power": rational(e, s.min_power),
                "ev_maximum_charge_current": rational(e, s.max_current),
                "ev_minimum_charge_current": rational(e, 0),
                "ev_maximum_voltage": rational(e, s.max_voltage),
                "ev_minimum_voltage": rational(e, s.min_voltage),
                "target_soc": s.target_soc,
            }
            if s.bpt:
                dc_mode: Any = e.BPT_DC_CPDReqEnergyTransferMode(
                    **dc,
                    ev_maximum_discharge_power=rational(e, s.max_discharge_power),
                    ev_minimum_discharge_power=rational(e, s.min_discharge_power),
                    ev_maximum_discharge_current=rational(e, s.max_discharge_current),
                    ev_minimum_discharge_current=rational(e, 0),
                )
            else:
                dc_mode = e.DC_CPDReqEnergyTransferMode(**dc)
            return e.DC_ChargeParameterDiscoveryReq(
                header=self._header(e), dc_cpd_req_energy_transfer_mode=dc_mode
            ), self.energy_schema
        if name == "AC_ChargeParameterDiscoveryReq":
            ac: dict[str, Any] = {
                "ev_maximum_charge_power": rational(e, s.ac_max_power),
                "ev_minimum_charge_power": rational(e, s.ac_min_power),
            }
            if s.bpt:
                ac_mode: Any = e.BPT_AC_CPDReqEnergyTransferMode(
                    **ac,
                    ev_maximum_discharge_power=rational(e, s.max_discharge_power),
                    ev_minimum_discharge_power=rational(e, s.min_discharge_power),
                )
            else:
                ac_mode = e.AC_CPDReqEnergyTransferMode(**ac)
            return e.AC_ChargeParameterDiscoveryReq(
                header=self._header(e), ac_cpd_req_energy_transfer_mode=ac_mode
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
        if self._standby_step == "Standby":
            return c.PowerDeliveryReq(
                header=self._header(c),
                ev_processing=c.Processing.Finished,
                charge_progress=c.ChargeProgress.Standby,
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
        separated = s.bpt and self.bpt_channel not in (None, BPT_CHANNEL_UNIFIED)
        return c.PowerDeliveryReq(
            header=self._header(c),
            ev_processing=c.Processing.Finished,
            charge_progress=c.ChargeProgress.Start,
            ev_power_profile=profile,
            bpt_channel_selection=c.ChannelSelection.Charge if separated else None,
        )

    @property
    def _meter_wanted(self) -> bool:
        """Ask MeterInfo when the EV stops on energy, counts discharge or may have to
        confirm the reading (Plug & Charge); once at the start otherwise."""
        s = self.script
        return s.energy_wh is not None or s.bpt or s.payment == "pnc" or self.loops == 0

    def _discharge_power(self) -> float:
        s = self.script
        cap = self.evse_max_discharge_power
        return min(s.max_discharge_power, cap) if cap is not None else s.max_discharge_power

    def _discharge_current_limit(self) -> float:
        s = self.script
        cap = self.evse_max_discharge_current
        return min(s.max_discharge_current, cap) if cap is not None else s.max_discharge_current

    def _pnc_authorization(self) -> Any:
        """AuthorizationReq with PnC_AReqAuthorizationMode, signed with the contract key."""
        c, creds = self.common, self.credentials
        challenge = self.gen_challenge or bytes(16)
        if self.faults.wrong_challenge:
            challenge = bytes(b ^ 0xFF for b in challenge)
        chain = creds.contract_chain
        element = c.PnC_AReqAuthorizationMode(
            id="id1",
            gen_challenge=challenge,
            contract_certificate_chain=c.ContractCertificateChain(
                certificate=chain[0], sub_certificates=c.SubCertificates(certificate=chain[1:])
            ),
        )
        header = self._header(c)
        if not self.faults.no_signature:
            assert creds.contract_key is not None
            fragment = codec.encode_fragment(
                element, "iso20-common", name="PnC_AReqAuthorizationMode"
            )
            signature = pnc20.sign({element.id: fragment}, creds.contract_key, self.faults)
            header = c.MessageHeader(
                session_id=header.session_id, time_stamp=header.time_stamp, signature=signature
            )
        return c.AuthorizationReq(
            header=header,
            selected_authorization_service=c.Authorization.PnC,
            pn_c_a_req_authorization_mode=element,
        )

    def _installation_req(self) -> Any:
        """CertificateInstallationReq: the OEM provisioning chain, signed with its key."""
        c, creds, xd = self.common, self.credentials, codec.schema_module("xmldsig")
        chain = creds.oem_chain
        element = c.SignedCertificateChain(
            id="id1",
            certificate=chain[0],
            sub_certificates=c.SubCertificates(certificate=chain[1:]) if chain[1:] else None,
        )
        assert creds.oem_key is not None
        fragment = codec.encode_fragment(
            element, "iso20-common", name="OEMProvisioningCertificateChain"
        )
        signature = pnc20.sign({element.id: fragment}, creds.oem_key, self.faults)
        roots = tuple(
            xd.X509IssuerSerial(
                x509_issuer_name=root.issuer.rfc4514_string(),
                x509_serial_number=root.serial_number,
            )
            for root in creds.v2g_roots
        )
        if not roots:
            raise Ev20Error("certificate installation needs the V2G roots the EV trusts")
        return c.CertificateInstallationReq(
            header=c.MessageHeader(
                session_id=self.session_id, time_stamp=int(self.utc_now()), signature=signature
            ),
            oem_provisioning_certificate_chain=element,
            list_of_root_certificate_i_ds=c.ListOfRootCertificateIDs(root_certificate_id=roots),
            maximum_contract_certificate_chains=self.script.max_contract_chains,
        )

    def _metering_confirmation(self) -> Any:
        """MeteringConfirmationReq: the last MeterInfo (and Receipt) signed with the
        contract key."""
        c, creds = self.common, self.credentials
        ctrl: dict[str, Any]
        if self.script.control == "scheduled":
            ctrl = {
                "scheduled_smdt_control_mode": c.Scheduled_SMDTControlMode(
                    selected_schedule_tuple_id=self.schedule_tuple_id or 0
                )
            }
        else:
            ctrl = {"dynamic_smdt_control_mode": c.Dynamic_SMDTControlMode()}
        element = c.SignedMeteringData(
            id="id1",
            session_id=self.session_id,
            meter_info=_convert(self.last_meter, c),
            receipt=_convert(self.last_receipt, c) if self.last_receipt is not None else None,
            **ctrl,
        )
        assert creds.contract_key is not None
        fragment = codec.encode_fragment(element, "iso20-common", name="SignedMeteringData")
        signature = pnc20.sign({element.id: fragment}, creds.contract_key, self.faults)
        if self.faults.tamper_metering:  # the reading changed after signing
            meter = element.meter_info
            element = dataclasses.replace(
                element,
                meter_info=dataclasses.replace(
                    meter, charged_energy_reading_wh=meter.charged_energy_reading_wh + 1000
                ),
            )
        self.metering_confirmations += 1
        return c.MeteringConfirmationReq(
            header=c.MessageHeader(
                session_id=self.session_id, time_stamp=int(self.utc_now()), signature=signature
            ),
            signed_metering_data=element,
        )

    def _display(self, mod: Any) -> Any:
        s = self.script
        return mod.DisplayParameters(
            present_soc=min(100, s.soc + self.loops), target_soc=s.target_soc
        )

    def _dc_loop(self) -> Any:
        e, s = self.energy, self.script
        current = min(s.target_current, self.evse_max_current or s.target_current)
        if self.standby:
            current = 0.0
        elif self.discharging:  # -20 counts discharge current as negative
            current = -min(s.discharge_current, self._discharge_current_limit())
        if s.control == "scheduled":
            target = {
                "ev_target_current": rational(e, current),
                "ev_target_voltage": rational(e, s.target_voltage),
            }
            if s.bpt:
                ctrl: Any = e.BPT_Scheduled_DC_CLReqControlMode(
                    **target,
                    ev_maximum_discharge_power=rational(e, self._discharge_power()),
                    ev_minimum_discharge_power=rational(e, s.min_discharge_power),
                    ev_maximum_discharge_current=rational(e, self._discharge_current_limit()),
                )
            else:
                ctrl = e.Scheduled_DC_CLReqControlMode(**target)
        else:
            dynamic: dict[str, Any] = {
                "departure_time": s.departure_time,
                "ev_maximum_charge_power": rational(e, self._charge_power()),
                "ev_minimum_charge_power": rational(e, s.min_power),
                "ev_maximum_charge_current": rational(e, s.max_current),
                "ev_maximum_voltage": rational(e, s.max_voltage),
                "ev_minimum_voltage": rational(e, s.min_voltage),
                **self._energy_requests(e),
            }
            if s.bpt:
                ctrl = e.BPT_Dynamic_DC_CLReqControlMode(
                    **dynamic,
                    ev_maximum_discharge_power=rational(e, self._discharge_power()),
                    ev_minimum_discharge_power=rational(e, s.min_discharge_power),
                    ev_maximum_discharge_current=rational(e, self._discharge_current_limit()),
                )
            else:
                ctrl = e.Dynamic_DC_CLReqControlMode(**dynamic)
        return e.DC_ChargeLoopReq(
            header=self._header(e),
            display_parameters=self._display(e),
            meter_info_requested=self._meter_wanted,
            ev_present_voltage=rational(e, self.evse_voltage or s.target_voltage),
            cl_req_control_mode=ctrl,
        )

    def _ac_loop(self) -> Any:
        e, s = self.energy, self.script
        present = self.evse_target_power if self.evse_target_power is not None else 0.0
        if s.control == "scheduled":
            present = self._charge_power() if self.loops and not self.standby else 0.0
            if self.discharging:  # -20 counts discharge power as negative
                present = -self._discharge_power()
            if s.bpt:
                ctrl: Any = e.BPT_Scheduled_AC_CLReqControlMode(
                    ev_present_active_power=rational(e, present),
                    ev_maximum_discharge_power=rational(e, self._discharge_power()),
                    ev_minimum_discharge_power=rational(e, s.min_discharge_power),
                )
            else:
                ctrl = e.Scheduled_AC_CLReqControlMode(ev_present_active_power=rational(e, present))
        else:
            dynamic: dict[str, Any] = {
                "departure_time": s.departure_time,
                "ev_maximum_charge_power": rational(e, self._charge_power()),
                "ev_minimum_charge_power": rational(e, s.ac_min_power),
                "ev_present_active_power": rational(e, present),
                "ev_present_reactive_power": rational(e, 0),
                **self._energy_requests(e),
            }
            if s.bpt:
                ctrl = e.BPT_Dynamic_AC_CLReqControlMode(
                    **dynamic,
                    ev_maximum_discharge_power=rational(e, self._discharge_power()),
                    ev_minimum_discharge_power=rational(e, s.min_discharge_power),
                )
            else:
                ctrl = e.Dynamic_AC_CLReqControlMode(**dynamic)
        return e.AC_ChargeLoopReq(
            header=self._header(e),
            display_parameters=self._display(e),
            meter_info_requested=self._meter_wanted,
            cl_req_control_mode=ctrl,
        )


def _convert(value: Any, mod: Any) -> Any:
    """``value`` (a codec dataclass of one -20 schema module) as the same-named class of
    ``mod`` (the energy modules repeat CommonTypes' MeterInfo, Receipt, ...)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = getattr(mod, type(value).__name__)
        return cls(
            **{f.name: _convert(getattr(value, f.name), mod) for f in dataclasses.fields(value)}
        )
    if isinstance(value, tuple):
        return tuple(_convert(v, mod) for v in value)
    if hasattr(value, "value") and hasattr(type(value), "__members__"):  # an enum
        return getattr(mod, type(value).__name__)(value.value)
    return value
