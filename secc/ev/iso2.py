"""A sans-I/O ISO 15118-2 / DIN SPEC 70121 EV: given a response, it returns the next request.

The EV knows nothing of sockets: :meth:`EvSimulator.start` gives the first request,
:meth:`EvSimulator.receive` consumes a decoded response (with the current monotonic time,
when known) and gives the next one with the delay before it is sent, or None when the EV
is done (:attr:`EvSimulator.error` says why it gave up, if it did).  ``secc ev``, the demo
and the benches run it over sockets (:mod:`secc.aio.ev_client`); the test harness
(:mod:`secc.testing.harness`) runs it against the core through the codec.

A script chooses the protocol (ISO 15118-2 or DIN SPEC 70121), AC or DC, EIM or
Plug & Charge (:mod:`secc.ev.pnc2`), certificate installation or update, pause/resume;
:class:`EvFaults` injects faults: requests out of order, silence, a vanishing EV, slow
requests, tampered signatures, a wrong GenChallenge, bad parameters.

The EV bounds every loop as the standard bounds it (the defaults in :class:`EvScript`):

- EVSEProcessing=Ongoing (Authorization / ContractAuthentication,
  ChargeParameterDiscovery): V2G_EVCC_Ongoing_Timeout, 60 s (ISO 15118-2 Table 109,
  [V2G2-710] [V2G2-711]; DIN SPEC 70121 §9.6 bounds them the same [V2G-DC-???]);
- CableCheck: V2G_EVCC_CableCheck_Timeout, 40 s (ISO 15118-2 Table 111,
  [V2G2-700]..[V2G2-703]; DIN SPEC 70121 Table 77);
- PreCharge: V2G_EVCC_PreCharge_Timeout, 7 s (ISO 15118-2 Table 111,
  [V2G2-704]..[V2G2-707]; DIN SPEC 70121 Table 77): the EV stops asking once the EVSE's
  present voltage has not reached the target within it;
- each response: V2G_EVCC_Msg_Timeout (:meth:`EvSimulator.message_timeout`, ISO 15118-2
  Table 109 [V2G2-???], DIN SPEC 70121 Table 75), applied by the runner.

Each timer runs from the first request of its phase; the EV gives up (and the runner
closes the session, the TCP connection with it) rather than send a request past it.
A FAILED ResponseCode, or a response that does not answer the request, ends it too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from certs import install_crypto
from secc import codec
from secc.core.config import DIN_NAMESPACE, ISO2_NAMESPACE
from secc.core.context import physical_value, value_of
from secc.core.events import Schema
from secc.core.failures import minimal_element
from secc.ev.pnc2 import (
    EvCredentials,
    InstallationError,
    check_installation,
    emaid_of,
    sign_elements,
)

apphand = codec.schema_module("apphand")
ISO_SCHEMA_ID = 1
DIN_SCHEMA_ID = 2

# V2G_EVCC_Msg_Timeout (s): ISO 15118-2 Table 109, DIN SPEC 70121 Table 75; 2 s otherwise
MSG_TIMEOUT_ISO2 = {
    "ServiceDetailReq": 5.0,
    "PaymentDetailsReq": 5.0,
    "PowerDeliveryReq": 5.0,
    "CertificateInstallationReq": 5.0,
    "CertificateUpdateReq": 5.0,
    "CurrentDemandReq": 0.25,
}
MSG_TIMEOUT_DIN = {"CurrentDemandReq": 0.25}
MSG_TIMEOUT_DEFAULT = 2.0
ONGOING_TIMEOUT = 60.0  # V2G_EVCC_Ongoing_Timeout [V2G2-710] [V2G2-711]
CABLE_CHECK_TIMEOUT = 40.0  # V2G_EVCC_CableCheck_Timeout [V2G2-700]..[V2G2-703]
PRECHARGE_TIMEOUT = 7.0  # V2G_EVCC_PreCharge_Timeout [V2G2-704]..[V2G2-707], DIN alike


class Ev2Error(Exception):
    """Why the EV ended the session (a timer, a response that answers something else)."""


@dataclass(frozen=True, slots=True)
class EvFaults:
    replace: Mapping[str, str] = field(default_factory=dict)  # send Y where X was due
    stall_before: str | None = None  # go silent instead of sending this request
    vanish_before: str | None = None  # drop the connection instead
    delay: Mapping[str, float] = field(default_factory=dict)  # extra seconds before X
    tamper_authorization: bool = False  # AuthorizationReq changed after signing
    wrong_challenge: bool = False
    unsigned_authorization: bool = False
    unsigned_repeats: bool = False  # sign only the first AuthorizationReq
    bad_metering_signature: bool = False
    wrong_session_id_at: str | None = None
    schedule_id: int | None = None  # SAScheduleTupleID to select instead of the offered one
    profile_power: float | None = None  # ChargingProfile max power (W)
    requested_mode: str | None = None  # ChargeParameterDiscovery energy mode override
    payment: str | None = None  # PaymentServiceSelection override
    ignore_stop_notification: bool = False
    early_power_delivery: bool = False  # PowerDelivery Start right after the first PreCharge
    services: tuple[tuple[int, int | None], ...] | None = None  # (ServiceID, ParameterSetID)
    contract_chain: tuple[bytes, ...] | None = None  # present this chain instead


@dataclass(frozen=True, slots=True)
class EvScript:
    """What the EV wants and how patient it is (seconds, V, A); the timers default to
    the standard's values (see the module docstring)."""

    protocol: str = "iso2"  # or "din"
    energy_mode: str = "AC_three_phase_core"
    payment: str = "ExternalPayment"
    charge_loops: int = 3
    stop: str = "Terminate"  # SessionStopReq ChargingSession: Terminate or Pause
    resume_session_id: bytes | None = None
    install_certificate: bool = False
    update_certificate: bool = False
    renegotiate: bool = False  # one PowerDelivery Renegotiate in the middle of charging
    credentials: EvCredentials | None = None
    evcc_id: bytes = bytes.fromhex("0a0b0c0d0e0f")
    think_time: float = 0.05
    poll_interval: float = 0.5
    loop_interval: float = 0.2
    target_voltage: float = 400.0
    target_current: float = 100.0
    max_voltage: float = 450.0
    soc: int = 40
    precharge_tolerance: float = 10.0  # |EVSE present voltage - target| that ends PreCharge
    ongoing_timeout: float = ONGOING_TIMEOUT
    cable_check_timeout: float = CABLE_CHECK_TIMEOUT
    precharge_timeout: float = PRECHARGE_TIMEOUT
    faults: EvFaults = field(default_factory=EvFaults)

    @property
    def dc(self) -> bool:
        return self.energy_mode.startswith("DC")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What the EV does next: ``send`` a message after ``delay``, ``stall`` or ``vanish``."""

    message: Any
    schema: Schema
    name: str
    delay: float
    kind: str = "send"


class EvSimulator:
    """One -2 or DIN EV session, sans-I/O (see the module docstring)."""

    def __init__(
        self, script: EvScript, *, utc_now: Callable[[], dt.datetime] | None = None
    ) -> None:
        self.script = script
        self.utc_now = utc_now or (lambda: dt.datetime.now(dt.UTC))  # certificate validity
        self._signature: Any = None  # the header Signature of the last response
        self.schema = Schema.DIN if script.protocol == "din" else Schema.ISO2
        self.mod: Any = codec.schema_module(self.schema.value)
        self.session_id = script.resume_session_id or bytes(1)
        self.responses: list[tuple[str, str]] = []
        self.sent: list[str] = []
        self.done = False
        self.loops = 0
        self.stopping = False
        self.renegotiating = False
        self.renegotiated = False
        self.offers: list[tuple[tuple[int, float], ...]] = []  # (start, PMax) per SAScheduleList
        self.gen_challenge: bytes | None = None
        self.schedule_id = 1
        self.meter_info: Any = None
        self.pmax = 11000.0  # the profile the EV asks for, capped by the offered PMax
        creds = script.credentials
        self.contract_chain = creds.contract_chain if creds else ()
        self.contract_key = creds.contract_key if creds else None
        self.emaid = creds.emaid if creds else None
        self.installed = False  # a contract came with CertificateInstallation/UpdateRes
        self.evse_id: str | None = None  # SessionSetupRes: -2 a string, DIN hexBinary as hex
        self.error: str | None = None
        self.evse_voltage: float | None = None
        self._clock = 0.0  # the last time receive() was told
        self._sent_at = 0.0  # when the last request goes out
        self._awaiting: str | None = None  # the response the last request asks for
        self._last_request: str | None = None
        self._first_sent = 0.0  # when the first request of the current phase went out
        self._phase: str | None = None
        self._phase_start = 0.0

    # --- the sans-I/O interface ----------------------------------------------------------

    def start(self) -> Outgoing:
        return self._out("supportedAppProtocolReq", 0.0)

    def receive(self, message: Any, schema: Schema, now: float | None = None) -> Outgoing | None:
        """The next request after ``message`` (decoded with ``schema``; ``now`` is the
        monotonic time it arrived), or None when the EV is done."""
        if now is not None:
            self._clock = now
        body = message if schema is Schema.APPHAND else message.body.body_element
        name = type(body).__name__
        code = body.response_code.value
        self.responses.append((name, code))
        if code.upper().startswith("FAILED"):  # the station refused: the session ends
            self.error = f"{name}: {code}"
            self.done = True
            return None
        try:
            if self._awaiting is not None and name != self._awaiting:
                raise Ev2Error(f"expected {self._awaiting}, the station sent {name}")
            if schema is not Schema.APPHAND:
                self._signature = message.header.signature
            if schema is not Schema.APPHAND and name == "SessionSetupRes":
                self.session_id = bytes(message.header.session_id)
                self.evse_id = evse_id_text(body.evseid)
            step = self._after(name, body)
        except Ev2Error as exc:
            self.error = str(exc)
            self.done = True
            return None
        if step is None:
            self.done = True
            return None
        nxt, delay = step
        return self._out(nxt, delay)

    def message_timeout(self, name: str) -> float:
        """V2G_EVCC_Msg_Timeout for the request ``name``: how long the EV waits for its
        response (ISO 15118-2 Table 109 [V2G2-???]; DIN SPEC 70121 Table 75)."""
        table = MSG_TIMEOUT_DIN if self.schema is Schema.DIN else MSG_TIMEOUT_ISO2
        return table.get(name, MSG_TIMEOUT_DEFAULT)

    def request(self, name: str) -> Outgoing:
        """The request ``name`` as this EV would send it now (benches, lab tools)."""
        return self._out(name, 0.0)

    @property
    def last_code(self) -> str | None:
        return self.responses[-1][1] if self.responses else None

    # --- sequencing ----------------------------------------------------------------------

    def _poll(self, phase: str, timeout: float, name: str, delay: float) -> tuple[str, float]:
        """Ask ``name`` again after ``delay`` unless ``phase`` (timed from its first
        request) would then have run past ``timeout``: then the EV gives up."""
        if self._phase is None:
            self._phase, self._phase_start = phase, self._first_sent
        if self._clock + delay - self._phase_start > timeout:
            raise Ev2Error(f"{phase} not finished within {timeout:g} s: the EV gives up")
        return name, delay

    def _after(self, name: str, res: Any) -> tuple[str, float] | None:
        s = self.script
        think, poll = s.think_time, s.poll_interval
        loop = "CurrentDemandReq" if s.dc else "ChargingStatusReq"
        din = self.schema is Schema.DIN
        if name == "supportedAppProtocolRes":
            return "SessionSetupReq", think
        if name == "SessionSetupRes":
            return "ServiceDiscoveryReq", think
        if name == "ServiceDiscoveryRes":
            if din:
                return "ServicePaymentSelectionReq", think
            if s.install_certificate or s.update_certificate:
                return "ServiceDetailReq", think
            return "PaymentServiceSelectionReq", think
        if name == "ServiceDetailRes":
            return "PaymentServiceSelectionReq", think
        if name == "ServicePaymentSelectionRes":
            return "ContractAuthenticationReq", think
        if name == "PaymentServiceSelectionRes":
            if s.payment == "Contract":
                return (
                    "CertificateInstallationReq"
                    if s.install_certificate
                    else "CertificateUpdateReq"
                    if s.update_certificate
                    else "PaymentDetailsReq"
                ), think
            return "AuthorizationReq", think
        if name in ("CertificateInstallationRes", "CertificateUpdateRes"):
            self._install(res, update=name == "CertificateUpdateRes")
            return "PaymentDetailsReq", think
        if name == "PaymentDetailsRes":
            self.gen_challenge = bytes(res.gen_challenge)
            return "AuthorizationReq", think
        if name in ("AuthorizationRes", "ContractAuthenticationRes"):
            if res.evse_processing.value != "Finished":  # [V2G2-710] [V2G2-711]
                return self._poll(name[:-3], s.ongoing_timeout, name[:-3] + "Req", poll)
            return "ChargeParameterDiscoveryReq", think
        if name == "ChargeParameterDiscoveryRes":
            if res.evse_processing.value != "Finished":  # [V2G2-710] [V2G2-711]
                return self._poll(
                    "ChargeParameterDiscovery", s.ongoing_timeout, name[:-3] + "Req", poll
                )
            if res.sa_schedules is not None:
                offer = res.sa_schedules.sa_schedule_tuple[0]
                self.schedule_id = offer.sa_schedule_tuple_id
                entries = offer.p_max_schedule.p_max_schedule_entry
                self.offers.append(tuple((e.time_interval.start, _watts(e.p_max)) for e in entries))
                if self.schema is Schema.ISO2:
                    self.pmax = min(value_of(e.p_max) for e in entries)
            if self.renegotiated or not s.dc:
                return "PowerDeliveryReq", think  # after a renegotiation: straight back
            return "CableCheckReq", think
        if name == "CableCheckRes":
            if res.evse_processing.value != "Finished":  # [V2G2-700]..[V2G2-703]
                return self._poll("CableCheck", s.cable_check_timeout, "CableCheckReq", poll)
            return "PreChargeReq", think
        if name == "PreChargeRes":
            self.evse_voltage = value_of(res.evse_present_voltage)
            reached = abs(self.evse_voltage - s.target_voltage) <= s.precharge_tolerance
            if not reached and not s.faults.early_power_delivery:
                try:  # [V2G2-704]..[V2G2-707]
                    return self._poll("PreCharge", s.precharge_timeout, "PreChargeReq", 0.2)
                except Ev2Error as exc:
                    raise Ev2Error(
                        f"{exc} (the EVSE reports {self.evse_voltage:g} V, "
                        f"the EV asked {s.target_voltage:g} V)"
                    ) from None
            return "PowerDeliveryReq", think
        if name == "PowerDeliveryRes":
            if self.renegotiating:
                self.renegotiating = False
                return "ChargeParameterDiscoveryReq", think
            if not self.stopping:
                return loop, think
            if s.dc:
                return "WeldingDetectionReq", think
            return "SessionStopReq", think
        if name in ("ChargingStatusRes", "CurrentDemandRes", "MeteringReceiptRes"):
            if name != "MeteringReceiptRes":
                self.loops += 1
                self.meter_info = getattr(res, "meter_info", None)
                if getattr(res, "receipt_required", None):
                    return "MeteringReceiptReq", think
            status = res.ac_evse_status if name == "ChargingStatusRes" else _status(res)
            stop_asked = status is not None and status.evse_notification.value == "StopCharging"
            asked = status is not None and status.evse_notification.value == "ReNegotiation"
            if asked and not self.renegotiating and self.schema is Schema.ISO2:
                self.renegotiating = self.renegotiated = True  # the EVSE asked: renegotiate
                return "PowerDeliveryReq", think
            if s.renegotiate and not self.renegotiated and self.loops * 2 >= s.charge_loops:
                self.renegotiating = self.renegotiated = True
                return "PowerDeliveryReq", think
            if self.loops >= s.charge_loops or (
                stop_asked and not s.faults.ignore_stop_notification
            ):
                self.stopping = True
                return "PowerDeliveryReq", think
            return loop, s.loop_interval
        if name == "WeldingDetectionRes":
            return ("SessionStop" if din else "SessionStopReq"), think
        return None  # SessionStopRes, or anything unexpected: done

    def _out(self, name: str, delay: float) -> Outgoing:
        f = self.script.faults
        if name == f.stall_before:
            return Outgoing(None, self.schema, name, delay, "stall")
        if name == f.vanish_before:
            return Outgoing(None, self.schema, name, delay, "vanish")
        actual = f.replace.get(name, name)
        delay += f.delay.get(name, 0.0)
        self.sent.append(actual)
        self._sent_at = self._clock + delay
        if actual != self._last_request:  # a new phase: its timer starts with this request
            self._first_sent, self._phase = self._sent_at, None
        self._last_request = actual
        self._awaiting = _response_to(actual)
        if actual == "supportedAppProtocolReq":
            return Outgoing(self._handshake(), Schema.APPHAND, actual, delay)
        body, signature = self._build(actual)
        sid = bytes(8) if f.wrong_session_id_at == actual else self.session_id
        msg = self.mod.V2G_Message(
            header=self.mod.MessageHeader(session_id=sid, signature=signature),
            body=self.mod.Body(body_element=body),
        )
        return Outgoing(msg, self.schema, actual, delay)

    # --- messages ------------------------------------------------------------------------

    def _handshake(self) -> Any:
        din = apphand.AppProtocol(
            protocol_namespace=DIN_NAMESPACE,
            version_number_major=2,
            version_number_minor=0,
            schema_id=DIN_SCHEMA_ID,
            priority=1 if self.schema is Schema.DIN else 2,
        )
        if self.schema is Schema.DIN:
            return apphand.supportedAppProtocolReq(app_protocol=(din,))
        iso = apphand.AppProtocol(
            protocol_namespace=ISO2_NAMESPACE,
            version_number_major=2,
            version_number_minor=0,
            schema_id=ISO_SCHEMA_ID,
            priority=1,
        )
        return apphand.supportedAppProtocolReq(app_protocol=(iso, din))

    def pv(self, value: float, unit: str) -> Any:
        return physical_value(self.mod, value, unit)

    def dc_status(self) -> Any:
        mod = self.mod
        return mod.DC_EVStatus(
            ev_ready=True, ev_error_code=mod.DC_EVErrorCode.NO_ERROR, evresssoc=self.script.soc
        )

    def _build(self, name: str) -> tuple[Any, Any]:
        """The request body called ``name`` and its header Signature (or None)."""
        mod, s, f = self.mod, self.script, self.script.faults
        din = self.schema is Schema.DIN
        if name == "SessionSetupReq":
            return mod.SessionSetupReq(evccid=s.evcc_id), None
        if name == "ServiceDiscoveryReq":
            return mod.ServiceDiscoveryReq(), None
        if name == "ServiceDetailReq":
            return mod.ServiceDetailReq(service_id=2), None
        if name in ("PaymentServiceSelectionReq", "ServicePaymentSelectionReq"):
            services = [mod.SelectedService(service_id=1)]
            if (s.install_certificate or s.update_certificate) and not din:
                services.append(
                    mod.SelectedService(
                        service_id=2, parameter_set_id=2 if s.update_certificate else 1
                    )
                )
            if f.services is not None:
                services = [
                    mod.SelectedService(service_id=i, parameter_set_id=p) for i, p in f.services
                ]
            option = f.payment or ("ExternalPayment" if din else s.payment)
            cls = mod.ServicePaymentSelectionReq if din else mod.PaymentServiceSelectionReq
            return cls(
                selected_payment_option=mod.PaymentOption(option),
                selected_service_list=mod.SelectedServiceList(selected_service=tuple(services)),
            ), None
        if name == "CertificateInstallationReq":
            oem_chain, oem_key = self._oem()
            req = mod.CertificateInstallationReq(
                id="ID1",
                oem_provisioning_cert=oem_chain[0],
                list_of_root_certificate_i_ds=self._root_ids(),
            )
            return req, sign_elements([(req, None)], oem_key)
        if name == "CertificateUpdateReq":
            if not self.contract_chain or self.contract_key is None or self.emaid is None:
                raise Ev2Error("CertificateUpdateReq needs the contract chain and key")
            leaf, *subs = self.contract_chain
            req = mod.CertificateUpdateReq(
                id="ID1",
                contract_signature_cert_chain=mod.CertificateChain(
                    id="ID2",
                    certificate=leaf,
                    sub_certificates=mod.SubCertificates(certificate=tuple(subs)),
                ),
                emaid=self.emaid,
                list_of_root_certificate_i_ds=self._root_ids(),
            )
            return req, sign_elements([(req, None)], self.contract_key)
        if name == "PaymentDetailsReq":
            chain_der = f.contract_chain or self.contract_chain
            if not chain_der or self.emaid is None:
                raise Ev2Error("Plug & Charge without a contract certificate")
            leaf, *subs = chain_der
            chain = mod.CertificateChain(
                certificate=leaf,
                sub_certificates=mod.SubCertificates(certificate=tuple(subs)) if subs else None,
            )
            return mod.PaymentDetailsReq(
                emaid=self.emaid, contract_signature_cert_chain=chain
            ), None
        if name == "AuthorizationReq":
            if s.payment != "Contract":
                return mod.AuthorizationReq(), None
            challenge = self.gen_challenge or bytes(16)
            if f.wrong_challenge:
                challenge = bytes(b ^ 0xFF for b in challenge)
            req = mod.AuthorizationReq(id="ID1", gen_challenge=challenge)
            signed = req
            if f.tamper_authorization:
                signed = mod.AuthorizationReq(id="ID1", gen_challenge=bytes(16))
            repeat = self.sent[:-1].count("AuthorizationReq") > 0
            if f.unsigned_authorization or (repeat and f.unsigned_repeats):
                return req, None
            return req, sign_elements([(signed, None)], self._key())
        if name == "ContractAuthenticationReq":
            return mod.ContractAuthenticationReq(), None
        if name == "ChargeParameterDiscoveryReq":
            mode = f.requested_mode or s.energy_mode
            if s.dc:
                param = mod.DC_EVChargeParameter(
                    dc_ev_status=self.dc_status(),
                    ev_maximum_current_limit=self.pv(200, "A"),
                    ev_maximum_power_limit=self.pv(80000, "W"),
                    ev_maximum_voltage_limit=self.pv(s.max_voltage, "V"),
                    ev_energy_request=self.pv(40000, "Wh"),
                )
            else:
                param = mod.AC_EVChargeParameter(
                    e_amount=self.pv(20000, "Wh"),
                    ev_max_voltage=self.pv(400, "V"),
                    ev_max_current=self.pv(32, "A"),
                    ev_min_current=self.pv(6, "A"),
                )
            if din:
                return mod.ChargeParameterDiscoveryReq(
                    ev_requested_energy_transfer_type=mod.EVRequestedEnergyTransfer(mode),
                    ev_charge_parameter=param,
                ), None
            return mod.ChargeParameterDiscoveryReq(
                requested_energy_transfer_mode=mod.EnergyTransferMode(mode),
                ev_charge_parameter=param,
            ), None
        if name == "PowerDeliveryReq":
            return self._power_delivery(), None
        if name == "ChargingStatusReq":
            return mod.ChargingStatusReq(), None
        if name == "MeteringReceiptReq":
            meter = self.meter_info or mod.MeterInfo(meter_id="METER-1", meter_reading=0)
            req = mod.MeteringReceiptReq(
                id="ID2",
                session_id=self.session_id,
                sa_schedule_tuple_id=self.schedule_id,
                meter_info=meter,
            )
            signed = req
            if f.bad_metering_signature:
                signed = mod.MeteringReceiptReq(
                    id="ID2",
                    session_id=self.session_id,
                    sa_schedule_tuple_id=self.schedule_id,
                    meter_info=mod.MeterInfo(meter_id=meter.meter_id, meter_reading=999_999),
                )
            if s.payment != "Contract":
                return req, None
            return req, sign_elements([(signed, None)], self._key())
        if name == "CableCheckReq":
            return mod.CableCheckReq(dc_ev_status=self.dc_status()), None
        if name == "PreChargeReq":
            return mod.PreChargeReq(
                dc_ev_status=self.dc_status(),
                ev_target_voltage=self.pv(s.target_voltage, "V"),
                ev_target_current=self.pv(1, "A"),
            ), None
        if name == "CurrentDemandReq":
            return mod.CurrentDemandReq(
                dc_ev_status=self.dc_status(),
                ev_target_current=self.pv(s.target_current, "A"),
                ev_maximum_voltage_limit=self.pv(s.max_voltage, "V"),
                ev_maximum_current_limit=self.pv(200, "A"),
                charging_complete=False,
                ev_target_voltage=self.pv(s.target_voltage, "V"),
            ), None
        if name == "WeldingDetectionReq":
            return mod.WeldingDetectionReq(dc_ev_status=self.dc_status()), None
        if name == "SessionStopReq":
            return mod.SessionStopReq(charging_session=mod.ChargingSession(s.stop)), None
        if name == "SessionStop":
            return mod.SessionStop(), None
        return minimal_element(self.schema.value, name, dc=s.dc), None

    def _power_delivery(self) -> Any:
        mod, s, f = self.mod, self.script, self.script.faults
        dc_param = None
        if s.dc:
            dc_param = mod.DC_EVPowerDeliveryParameter(
                dc_ev_status=self.dc_status(), charging_complete=self.stopping
            )
        if self.schema is Schema.DIN:
            return mod.PowerDeliveryReq(
                ready_to_charge_state=not self.stopping, ev_power_delivery_parameter=dc_param
            )
        progress = mod.ChargeProgress.Stop if self.stopping else mod.ChargeProgress.Start
        if self.renegotiating:
            progress = mod.ChargeProgress.Renegotiate
        profile = None
        if not self.stopping and not self.renegotiating:
            power = f.profile_power if f.profile_power is not None else min(11000.0, self.pmax)
            profile = mod.ChargingProfile(
                profile_entry=(
                    mod.ProfileEntry(
                        charging_profile_entry_start=0,
                        charging_profile_entry_max_power=self.pv(power, "W"),
                    ),
                )
            )
        return mod.PowerDeliveryReq(
            charge_progress=progress,
            sa_schedule_tuple_id=f.schedule_id or self.schedule_id,
            charging_profile=profile,
            ev_power_delivery_parameter=dc_param,
        )

    # --- Plug & Charge ---------------------------------------------------------------------

    def _creds(self) -> EvCredentials:
        if self.script.credentials is None:
            raise Ev2Error("Plug & Charge needs the EV's credentials")
        return self.script.credentials

    def _oem(self) -> tuple[tuple[bytes, ...], ec.EllipticCurvePrivateKey]:
        creds = self._creds()
        if not creds.oem_chain or creds.oem_key is None:
            raise Ev2Error("certificate installation needs the OEM provisioning chain and key")
        return creds.oem_chain, creds.oem_key

    def _root_ids(self) -> Any:
        """ListOfRootCertificateIDs: issuer and serial of each V2G root the EV trusts."""
        roots = self._creds().v2g_roots
        if not roots:
            raise Ev2Error("certificate installation and update need the V2G root certificate")
        return self.mod.ListOfRootCertificateIDs(
            root_certificate_id=tuple(
                self.mod.X509IssuerSerial(
                    x509_issuer_name=root.issuer.rfc4514_string(),
                    # the codec reads integers up to 140 bits; a 20-octet serial needs 160
                    x509_serial_number=root.serial_number,
                )
                for root in roots
            )
        )

    def _key(self) -> ec.EllipticCurvePrivateKey:
        if self.contract_key is None:
            raise Ev2Error("Plug & Charge without a contract key")
        return self.contract_key

    def _install(self, res: Any, *, update: bool = False) -> None:
        """Check the response (:func:`~secc.ev.pnc2.check_installation`), take the new
        contract chain and eMAID, and open the contract's private key with the OEM
        provisioning key (for an update: the old contract key)."""
        try:
            check_installation(res, self._signature, self._creds().v2g_roots, self.utc_now())
        except InstallationError as exc:
            raise Ev2Error(f"{type(res).__name__} not trusted: {exc}") from None
        chain = res.contract_signature_cert_chain
        subs = chain.sub_certificates.certificate if chain.sub_certificates else ()
        new_chain = (bytes(chain.certificate), *(bytes(c) for c in subs))
        leaf = x509.load_der_x509_certificate(new_chain[0]).public_key()
        if not isinstance(leaf, ec.EllipticCurvePublicKey):
            raise Ev2Error("the installed contract certificate has no ECDSA key")
        opener = self._key() if update else self._oem()[1]
        try:
            key = install_crypto.open_contract_key(
                bytes(res.contract_signature_encrypted_private_key.value),
                bytes(res.dh_public_key.value),
                opener,
                expected_public_key=leaf,
            )
        except install_crypto.InstallCryptoError as exc:
            raise Ev2Error(f"cannot open the installed contract key: {exc}") from None
        self.contract_chain, self.contract_key = new_chain, key
        self.emaid = str(res.emaid.value) if res.emaid is not None else emaid_of(new_chain[0])
        self.installed = True


def _response_to(request: str) -> str:
    """The response element that answers ``request`` (DIN's SessionStop: SessionStopRes)."""
    if request == "supportedAppProtocolReq":
        return "supportedAppProtocolRes"
    return request.removesuffix("Req") + "Res"


def evse_id_text(value: Any) -> str:
    """SessionSetupRes's EVSEID for people: -2's (and -20's) string as it is; DIN's
    hexBinary in hex, ``0x00`` being DIN's "no EVSE ID", with its reading when it is a
    DIN SPEC 91286 ID packed one character per nibble ('*' as A, an odd count padded
    with F: 49 A8 9A 63 60 is "49*89*6360"), or its text when every octet is printable
    ASCII (as some stations send it)."""
    if isinstance(value, str):
        return value
    raw = bytes(value)
    text = f"0x{raw.hex().upper()}"
    if raw in (b"", b"\x00"):
        return f"{text} (none)"
    if all(0x20 < b < 0x7F for b in raw):  # printable text (a packed ID rarely is)
        return f"{text} ({raw.decode('ascii')})"
    nibbles = raw.hex().upper()
    if nibbles.endswith("F"):
        nibbles = nibbles[:-1]
    if all(c in "0123456789A" for c in nibbles):
        return f"{text} ({nibbles.replace('A', '*')})"
    return text


def _status(res: Any) -> Any:
    return getattr(res, "dc_evse_status", None)


def _watts(pmax: Any) -> float:
    """PMax as watts: a PhysicalValue (-2) or a bare number (DIN's PMaxType)."""
    return float(pmax) if isinstance(pmax, int) else value_of(pmax)
