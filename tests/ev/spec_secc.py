"""A scripted ISO 15118-20 SECC written from the standard's message sequence and XSDs
(not from secc.core): it answers each request with the response the standard defines,
and its knobs make it misbehave (Ongoing for a while or forever, a PreCharge voltage
that never reaches the target, a FAILED code, an EVSENotification, a missing service or
control mode).  Used to test the -20 EV before and beside the real core."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from secc import codec
from secc.core.events import Schema
from secc.ev.iso20 import rational, value_of

apphand = codec.schema_module("apphand")
C = codec.schema_module("iso20-common")
AC = codec.schema_module("iso20-ac")
DC = codec.schema_module("iso20-dc")
SID = bytes.fromhex("0102030405060708")


@dataclass
class SpecSecc:
    services: tuple[int, ...] = (1, 2)
    control_modes: tuple[int, ...] = (1, 2)  # parameter sets offered (ControlMode values)
    authorization_ongoing: int = 1  # AuthorizationRes Ongoing this many times
    schedule_ongoing: int = 1
    cable_check_ongoing: int = 2  # -1: forever
    precharge_step: float = 150.0  # volts per PreChargeRes towards the target
    precharge_ceiling: float | None = None  # the EVSE never gets above this
    welding_voltage: float = 30.0
    terminate_at_loop: int | None = None  # EVSENotification Terminate in this loop's answer
    terminate_at_power_delivery: bool = False  # ... in the first PowerDeliveryRes
    notification: str = "Terminate"  # what terminate_at_loop notifies (or "Pause")
    last: Any = None  # the last request
    fail: dict[str, str] = field(default_factory=dict)  # response -> ResponseCode
    wrong_response: dict[str, str] = field(default_factory=dict)  # answer X with Y's type
    energy_per_loop: int = 100  # Wh the meter grows per charge loop
    seen: list[str] = field(default_factory=list)
    voltage: float = 0.0
    loops: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def answer(self, req: Any, schema: Schema) -> tuple[Any, Schema]:
        name = type(req).__name__
        self.seen.append(name)
        self.last = req
        n = self.counts[name] = self.counts.get(name, 0) + 1
        if schema is Schema.APPHAND:
            ours = [p for p in req.app_protocol if p.protocol_namespace.startswith("urn:iso:std")]
            if not ours:
                return apphand.supportedAppProtocolRes(response_code="Failed_NoNegotiation"), schema
            return apphand.supportedAppProtocolRes(
                response_code=apphand.ResponseCode.OK_SuccessfulNegotiation,
                schema_id=ours[0].schema_id,
            ), schema
        res_name = self.wrong_response.get(name[:-3] + "Res", name[:-3] + "Res")
        mod = DC if res_name.startswith("DC_") else AC if res_name.startswith("AC_") else C
        out_schema = (
            Schema.ISO20_DC if mod is DC else Schema.ISO20_AC if mod is AC else Schema.ISO20_COMMON
        )
        code = mod.ResponseCode(self.fail.get(res_name, "OK"))
        if name == "SessionSetupReq":
            code = mod.ResponseCode(self.fail.get(res_name, "OK_NewSessionEstablished"))
        base = {"header": mod.MessageHeader(session_id=SID, time_stamp=1), "response_code": code}
        fields = self._fields(res_name, req, n, mod)
        return getattr(mod, res_name)(**base, **fields), out_schema

    def _processing(self, mod: Any, n: int, ongoing: int) -> Any:
        return mod.Processing.Ongoing if ongoing < 0 or n <= ongoing else mod.Processing.Finished

    def _fields(self, res: str, req: Any, n: int, mod: Any) -> dict[str, Any]:
        if res == "SessionSetupRes":
            return {"evseid": "DE*SEC*E1"}
        if res == "AuthorizationSetupRes":
            return {
                "authorization_services": (C.Authorization.EIM,),
                "certificate_installation_service": False,
                "eim_as_res_authorization_mode": C.EIM_ASResAuthorizationMode(),
            }
        if res == "AuthorizationRes":
            return {"evse_processing": self._processing(C, n, self.authorization_ongoing)}
        if res == "ServiceDiscoveryRes":
            return {
                "service_renegotiation_supported": False,
                "energy_transfer_service_list": C.ServiceList(
                    service=tuple(C.Service(service_id=i, free_service=True) for i in self.services)
                ),
            }
        if res == "ServiceDetailRes":
            sets = tuple(
                C.ParameterSet(
                    parameter_set_id=k + 1,
                    parameter=(
                        C.Parameter(name="Connector", int_value=2),
                        C.Parameter(name="ControlMode", int_value=m),
                        C.Parameter(name="MobilityNeedsMode", int_value=1),
                        C.Parameter(name="Pricing", int_value=0),
                    ),
                )
                for k, m in enumerate(self.control_modes)
            )
            return {
                "service_id": req.service_id,
                "service_parameter_list": C.ServiceParameterList(parameter_set=sets),
            }
        if res == "ServiceSelectionRes":
            return {}
        if res == "DC_ChargeParameterDiscoveryRes":
            return {
                "dc_cpd_res_energy_transfer_mode": DC.DC_CPDResEnergyTransferMode(
                    evse_maximum_charge_power=rational(DC, 50_000),
                    evse_minimum_charge_power=rational(DC, 0),
                    evse_maximum_charge_current=rational(DC, 125),
                    evse_minimum_charge_current=rational(DC, 0),
                    evse_maximum_voltage=rational(DC, 500),
                    evse_minimum_voltage=rational(DC, 150),
                )
            }
        if res == "AC_ChargeParameterDiscoveryRes":
            return {
                "ac_cpd_res_energy_transfer_mode": AC.AC_CPDResEnergyTransferMode(
                    evse_maximum_charge_power=rational(AC, 22_000),
                    evse_minimum_charge_power=rational(AC, 1_380),
                    evse_nominal_frequency=rational(AC, 50),
                )
            }
        if res == "ScheduleExchangeRes":
            processing = self._processing(C, n, self.schedule_ongoing)
            out: dict[str, Any] = {"evse_processing": processing}  # the XSD wants a
            # control mode even while Ongoing: the EV must ignore it until Finished
            if req.scheduled_se_req_control_mode is not None:
                entry = C.PowerScheduleEntry(duration=86_400, power=rational(C, 7_000))
                out["scheduled_se_res_control_mode"] = C.Scheduled_SEResControlMode(
                    schedule_tuple=(
                        C.ScheduleTuple(
                            schedule_tuple_id=7,
                            charging_schedule=C.ChargingSchedule(
                                power_schedule=C.PowerSchedule(
                                    time_anchor=0,
                                    power_schedule_entries=C.PowerScheduleEntryList(
                                        power_schedule_entry=(entry,)
                                    ),
                                )
                            ),
                        ),
                    )
                )
            else:
                out["dynamic_se_res_control_mode"] = C.Dynamic_SEResControlMode()
            return out
        if res == "DC_CableCheckRes":
            return {"evse_processing": self._processing(DC, n, self.cable_check_ongoing)}
        if res == "DC_PreChargeRes":
            target = value_of(req.ev_target_voltage)
            self.voltage = min(target, self.voltage + self.precharge_step)
            if self.precharge_ceiling is not None:
                self.voltage = min(self.voltage, self.precharge_ceiling)
            return {"evse_present_voltage": rational(DC, self.voltage)}
        if res == "PowerDeliveryRes":
            if self.terminate_at_power_delivery and n == 1:
                return {
                    "evse_status": C.EVSEStatus(
                        notification_max_delay=0, evse_notification=C.EvseNotification.Terminate
                    )
                }
            return {}
        if res in ("DC_ChargeLoopRes", "AC_ChargeLoopRes"):
            self.loops += 1
            note = self.notification if self.loops == self.terminate_at_loop else "ExitStandby"
            out = {
                "evse_status": mod.EVSEStatus(
                    notification_max_delay=0, evse_notification=mod.EvseNotification(note)
                ),
                "meter_info": mod.MeterInfo(
                    meter_id="M1", charged_energy_reading_wh=self.loops * self.energy_per_loop
                )
                if req.meter_info_requested
                else None,
            }
            if res == "AC_ChargeLoopRes":
                ctrl = req.cl_req_control_mode
                if isinstance(ctrl, AC.Dynamic_AC_CLReqControlMode):
                    out["cl_res_control_mode"] = AC.Dynamic_AC_CLResControlMode(
                        evse_target_active_power=rational(AC, 7_000)
                    )
                else:
                    out["cl_res_control_mode"] = AC.Scheduled_AC_CLResControlMode()
                return out
            ctrl = req.cl_req_control_mode
            dynamic = isinstance(ctrl, DC.Dynamic_DC_CLReqControlMode)
            out |= {
                "evse_present_current": rational(DC, 100),
                "evse_present_voltage": rational(DC, self.voltage),
                "evse_power_limit_achieved": False,
                "evse_current_limit_achieved": False,
                "evse_voltage_limit_achieved": False,
                "cl_res_control_mode": DC.Dynamic_DC_CLResControlMode(
                    evse_maximum_charge_power=rational(DC, 50_000),
                    evse_minimum_charge_power=rational(DC, 0),
                    evse_maximum_charge_current=rational(DC, 125),
                    evse_maximum_voltage=rational(DC, 500),
                )
                if dynamic
                else DC.Scheduled_DC_CLResControlMode(),
            }
            return out
        if res == "DC_WeldingDetectionRes":
            self.voltage = max(self.welding_voltage, self.voltage / 4)
            return {"evse_present_voltage": rational(DC, self.voltage)}
        if res == "SessionStopRes":
            return {}
        raise AssertionError(f"the spec SECC has no answer for {res}")
