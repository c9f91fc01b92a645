"""A small ISO 15118-2 / DIN SPEC 70121 SECC written from the standards' DC message
sequence and XSDs (not from secc.core), for testing the EV: it answers each request with
the response the standard defines, over TCP on loopback (V2GTP, EXI), and its knobs make it
misbehave as a bad station would: EVSEProcessing=Ongoing for a while or forever in
Authorization / ContractAuthentication, ChargeParameterDiscovery and CableCheck, a
PreCharge present voltage that never reaches the target (1 V), silence after a request.

EIM (ExternalPayment) only: Plug & Charge is tested against the real station."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from secc import codec
from secc.v2gtp import Framer, encode_frame

apphand = codec.schema_module("apphand")
NAMESPACE = {"iso2": "urn:iso:15118:2:2013:MsgDef", "din": "urn:din:70121:2012:MsgDef"}
SESSION_ID = bytes.fromhex("0102030405060708")
DIN_EVSEID = bytes.fromhex("49A89A6360")  # DIN: hexBinary (DIN SPEC 91286 "49*89*6360")
ISO2_EVSEID = "DE*ABC*E1234567*1"  # -2: a string


@dataclass
class BadSecc:
    schema: str = "iso2"  # or "din"
    ongoing: dict[str, int] = field(default_factory=dict)  # response -> Ongoing count (-1: ever)
    precharge_voltage: float | None = None  # None: the EV's target; else always this
    silent: set[str] = field(default_factory=set)  # requests never answered
    seen: list[str] = field(default_factory=list)
    port: int = 0
    _counts: dict[str, int] = field(default_factory=dict)

    @property
    def mod(self) -> Any:
        return codec.schema_module(self.schema)

    # --- the protocol -----------------------------------------------------------------

    def answer(self, message: Any) -> Any | None:
        """The response to ``message`` (None: stay silent)."""
        if isinstance(message, apphand.supportedAppProtocolReq):
            self.seen.append("supportedAppProtocolReq")
            for p in message.app_protocol:
                if p.protocol_namespace == NAMESPACE[self.schema]:
                    return apphand.supportedAppProtocolRes(
                        response_code=apphand.ResponseCode.OK_SuccessfulNegotiation,
                        schema_id=p.schema_id,
                    )
            return apphand.supportedAppProtocolRes(
                response_code=apphand.ResponseCode.Failed_NoNegotiation
            )
        body = message.body.body_element
        name = type(body).__name__
        self.seen.append(name)
        if name in self.silent:
            return None
        m = self.mod
        res = self._body(name, body)
        return m.V2G_Message(
            header=m.MessageHeader(session_id=SESSION_ID), body=m.Body(body_element=res)
        )

    def _processing(self, response: str) -> Any:
        n = self._counts.get(response, 0)
        self._counts[response] = n + 1
        limit = self.ongoing.get(response, 0)
        ongoing = limit < 0 or n < limit
        return self.mod.EVSEProcessing.Ongoing if ongoing else self.mod.EVSEProcessing.Finished

    def pv(self, value: float, unit: str) -> Any:
        """A PhysicalValue: value * 10^multiplier, the value a 16-bit short."""
        multiplier = 0
        while abs(value) > 32767:
            value, multiplier = value / 10, multiplier + 1
        return self.mod.PhysicalValue(
            multiplier=multiplier, unit=self.mod.UnitSymbol[unit], value=round(value)
        )

    def dc_status(self, isolation: str | None = None) -> Any:
        m = self.mod
        return m.DC_EVSEStatus(
            evse_isolation_status=m.IsolationLevel[isolation] if isolation else None,
            evse_status_code=m.DC_EVSEStatusCode.EVSE_Ready,
            notification_max_delay=0,
            evse_notification=m.EVSENotification.None_,
        )

    def _body(self, name: str, req: Any) -> Any:
        m, din = self.mod, self.schema == "din"
        ok = m.ResponseCode.OK
        if name == "SessionSetupReq":
            return m.SessionSetupRes(
                response_code=m.ResponseCode.OK_NewSessionEstablished,
                evseid=DIN_EVSEID if din else ISO2_EVSEID,
            )
        if name == "ServiceDiscoveryReq":
            if din:
                return m.ServiceDiscoveryRes(
                    response_code=ok,
                    payment_options=m.PaymentOptions(
                        payment_option=(m.PaymentOption.ExternalPayment,)
                    ),
                    charge_service=m.ServiceCharge(
                        service_tag=m.ServiceTag(
                            service_id=1, service_category=m.ServiceCategory.EVCharging
                        ),
                        free_service=False,
                        energy_transfer_type=m.EVSESupportedEnergyTransfer.DC_extended,
                    ),
                )
            return m.ServiceDiscoveryRes(
                response_code=ok,
                payment_option_list=m.PaymentOptionList(
                    payment_option=(m.PaymentOption.ExternalPayment,)
                ),
                charge_service=m.ChargeService(
                    service_id=1,
                    service_category=m.ServiceCategory.EVCharging,
                    free_service=False,
                    supported_energy_transfer_mode=m.SupportedEnergyTransferMode(
                        energy_transfer_mode=(m.EnergyTransferMode.DC_extended,)
                    ),
                ),
            )
        if name == "ServicePaymentSelectionReq":
            return m.ServicePaymentSelectionRes(response_code=ok)
        if name == "PaymentServiceSelectionReq":
            return m.PaymentServiceSelectionRes(response_code=ok)
        if name == "ContractAuthenticationReq":
            return m.ContractAuthenticationRes(
                response_code=ok, evse_processing=self._processing("ContractAuthenticationRes")
            )
        if name == "AuthorizationReq":
            return m.AuthorizationRes(
                response_code=ok, evse_processing=self._processing("AuthorizationRes")
            )
        if name == "ChargeParameterDiscoveryReq":
            processing = self._processing("ChargeParameterDiscoveryRes")
            param = m.DC_EVSEChargeParameter(
                dc_evse_status=self.dc_status("Invalid"),
                evse_maximum_current_limit=self.pv(200, "A"),
                evse_maximum_power_limit=self.pv(50000, "W"),
                evse_maximum_voltage_limit=self.pv(500, "V"),
                evse_minimum_current_limit=self.pv(0, "A"),
                evse_minimum_voltage_limit=self.pv(150, "V"),
                evse_peak_current_ripple=self.pv(5, "A"),
            )
            entry = m.PMaxScheduleEntry(
                time_interval=m.RelativeTimeInterval(start=0, duration=86400),
                p_max=500 if din else self.pv(50000, "W"),  # DIN: PMaxType, a short
            )
            pmax = (
                m.PMaxSchedule(p_max_schedule_id=1, p_max_schedule_entry=(entry,))
                if din
                else m.PMaxSchedule(p_max_schedule_entry=(entry,))
            )
            schedules = m.SAScheduleList(
                sa_schedule_tuple=(m.SAScheduleTuple(sa_schedule_tuple_id=1, p_max_schedule=pmax),)
            )
            finished = processing is m.EVSEProcessing.Finished
            return m.ChargeParameterDiscoveryRes(
                response_code=ok,
                evse_processing=processing,
                sa_schedules=schedules if (finished or din) else None,
                evse_charge_parameter=param,
            )
        if name == "CableCheckReq":
            processing = self._processing("CableCheckRes")
            valid = processing is m.EVSEProcessing.Finished
            return m.CableCheckRes(
                response_code=ok,
                dc_evse_status=self.dc_status("Valid" if valid else "Invalid"),
                evse_processing=processing,
            )
        if name == "PreChargeReq":
            target = req.ev_target_voltage.value * 10.0**req.ev_target_voltage.multiplier
            volts = target if self.precharge_voltage is None else self.precharge_voltage
            return m.PreChargeRes(
                response_code=ok,
                dc_evse_status=self.dc_status("Valid"),
                evse_present_voltage=self.pv(volts, "V"),
            )
        if name == "PowerDeliveryReq":
            return m.PowerDeliveryRes(response_code=ok, evse_status=self.dc_status("Valid"))
        if name == "CurrentDemandReq":
            extra: dict[str, Any] = {}
            if not din:
                extra = {"evseid": ISO2_EVSEID, "sa_schedule_tuple_id": 1}
            return m.CurrentDemandRes(
                response_code=ok,
                dc_evse_status=self.dc_status("Valid"),
                evse_present_voltage=req.ev_target_voltage,
                evse_present_current=req.ev_target_current,
                evse_current_limit_achieved=False,
                evse_voltage_limit_achieved=False,
                evse_power_limit_achieved=False,
                **extra,
            )
        if name == "WeldingDetectionReq":
            return m.WeldingDetectionRes(
                response_code=ok,
                dc_evse_status=self.dc_status("Valid"),
                evse_present_voltage=self.pv(0, "V"),
            )
        if name in ("SessionStopReq", "SessionStop"):
            return m.SessionStopRes(response_code=ok)
        return m.SessionStopRes(response_code=m.ResponseCode.FAILED_SequenceError)

    # --- over TCP -----------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = Framer(allowed_types=(0x8001,))
        handshake_done = False
        try:
            while data := await reader.read(65536):
                for frame in framer.feed(data):
                    schema = self.schema if handshake_done else "apphand"
                    answer = self.answer(codec.decode(frame.payload, schema))
                    handshake_done = True
                    if answer is None:
                        continue  # silence
                    writer.write(encode_frame(codec.encode(answer)))
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def start(self) -> asyncio.Server:
        server = await asyncio.start_server(self._serve, "::1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server
