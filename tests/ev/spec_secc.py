"""A scripted ISO 15118-20 SECC written from the standard's message sequence and XSDs
(not from secc.core): it answers each request with the response the standard defines,
and its knobs make it misbehave (Ongoing for a while or forever, a PreCharge voltage
that never reaches the target, a FAILED code, an EVSENotification, a missing service or
control mode).  Used to test the -20 EV before and beside the real core.

Plug & Charge (``pnc=True``): AuthorizationSetupRes offers PnC with a fresh GenChallenge;
AuthorizationReq is checked as ISO 15118-20 says (the challenge is the one sent, the
Reference digest is SHA-512 of the PnC_AReqAuthorizationMode fragment, the SignatureValue
verifies with the contract leaf's key: ECDSA secp521r1/SHA-512 raw r||s or Ed448); a
failure answers FAILED_SignatureError / WARNING_ChallengeInvalid.  ``install`` answers
CertificateInstallationReq (checking its signature by the OEM provisioning leaf) with a
contract sealed for the EV; ``metering_at_loop`` asks a MeteringConfirmation whose
SignedMeteringData signature is checked.  BPT: services 5/6 with discharge limits; the
station's meter counts discharge from negative targets."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

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
    services: tuple[int, ...] = (1, 2, 5, 6)
    control_modes: tuple[int, ...] = (1, 2)  # parameter sets offered (ControlMode values)
    authorization_ongoing: int = 1  # AuthorizationRes Ongoing this many times
    schedule_ongoing: int = 1
    renegotiation_ongoing: int = 0  # a renegotiation's ScheduleExchangeRes: Ongoing n times
    renegotiation_seen: int = 0
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
    history: list[tuple[str, Any]] = field(default_factory=list)
    voltage: float = 0.0
    loops: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    # Plug & Charge
    pnc: bool = False
    eim: bool = True
    install: Any = None  # (contract chain DER tuple, contract key) to install
    cps: Any = None  # (CPS chain DER tuple, CPS key): sign the installation; None: unsigned
    cps_tamper: bool = False  # flip a bit of SignedInstallationData after signing
    challenge: bytes = b""
    verdicts: list[str] = field(default_factory=list)  # what each signature check said
    metering_at_loop: int | None = None
    metering_seen: list[Any] = field(default_factory=list)
    metering_at_stop: bool = False
    # BPT: the EVSE's discharge limits
    discharge_power: float = 11_000.0
    bpt_channels: tuple[int, ...] = (2, 1)  # BPTChannel parameter sets: 1 Unified, 2 Separated
    discharge_current: float = 30.0
    discharged_wh: int = 0
    signature: Any = None  # the header Signature of the response being built
    charged_wh: int = 0

    def answer(self, req: Any, schema: Schema) -> tuple[Any, Schema]:
        name = type(req).__name__
        self.seen.append(name)
        self.history.append((name, req))
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
        check = self._check(name, req)
        if check is not None:
            code = mod.ResponseCode(check)
        if name == "SessionSetupReq":
            code = mod.ResponseCode(self.fail.get(res_name, "OK_NewSessionEstablished"))
        self.signature = None
        fields = self._fields(res_name, req, n, mod)
        header = mod.MessageHeader(session_id=SID, time_stamp=1, signature=self.signature)
        base = {"header": header, "response_code": code}
        return getattr(mod, res_name)(**base, **fields), out_schema

    def _processing(self, mod: Any, n: int, ongoing: int) -> Any:
        return mod.Processing.Ongoing if ongoing < 0 or n <= ongoing else mod.Processing.Finished

    def _fields(self, res: str, req: Any, n: int, mod: Any) -> dict[str, Any]:
        if res == "SessionSetupRes":
            return {"evseid": "DE*SEC*E1"}
        if res == "AuthorizationSetupRes":
            if self.pnc:
                self.challenge = os.urandom(16)
                offered = (C.Authorization.EIM,) if self.eim else ()
                return {
                    "authorization_services": (*offered, C.Authorization.PnC),
                    "certificate_installation_service": self.install is not None,
                    "pn_c_as_res_authorization_mode": C.PnC_ASResAuthorizationMode(
                        gen_challenge=self.challenge
                    ),
                }
            return {
                "authorization_services": (C.Authorization.EIM,),
                "certificate_installation_service": False,
                "eim_as_res_authorization_mode": C.EIM_ASResAuthorizationMode(),
            }
        if res == "CertificateInstallationRes":
            return self._installation(req, n)
        if res == "MeteringConfirmationRes":
            return {}
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
            bpt = req.service_id in (5, 6)  # Tables 206/208: BPTChannel, GeneratorMode
            combos = [
                (m, ch) for m in self.control_modes for ch in (self.bpt_channels if bpt else (0,))
            ]
            sets = tuple(
                C.ParameterSet(
                    parameter_set_id=k + 1,
                    parameter=(
                        C.Parameter(name="Connector", int_value=2),
                        C.Parameter(name="ControlMode", int_value=m),
                        C.Parameter(name="MobilityNeedsMode", int_value=1),
                        C.Parameter(name="Pricing", int_value=0),
                        *(
                            (
                                C.Parameter(name="BPTChannel", int_value=ch),
                                C.Parameter(name="GeneratorMode", int_value=1),
                            )
                            if bpt
                            else ()
                        ),
                    ),
                )
                for k, (m, ch) in enumerate(combos)
            )
            return {
                "service_id": req.service_id,
                "service_parameter_list": C.ServiceParameterList(parameter_set=sets),
            }
        if res == "ServiceSelectionRes":
            return {}
        if res == "DC_ChargeParameterDiscoveryRes":
            dc = {
                "evse_maximum_charge_power": rational(DC, 50_000),
                "evse_minimum_charge_power": rational(DC, 0),
                "evse_maximum_charge_current": rational(DC, 125),
                "evse_minimum_charge_current": rational(DC, 0),
                "evse_maximum_voltage": rational(DC, 500),
                "evse_minimum_voltage": rational(DC, 150),
            }
            if isinstance(req.dc_cpd_req_energy_transfer_mode, DC.BPT_DC_CPDReqEnergyTransferMode):
                return {
                    "dc_cpd_res_energy_transfer_mode": DC.BPT_DC_CPDResEnergyTransferMode(
                        **dc,
                        evse_maximum_discharge_power=rational(DC, self.discharge_power),
                        evse_minimum_discharge_power=rational(DC, 0),
                        evse_maximum_discharge_current=rational(DC, self.discharge_current),
                        evse_minimum_discharge_current=rational(DC, 0),
                    )
                }
            return {"dc_cpd_res_energy_transfer_mode": DC.DC_CPDResEnergyTransferMode(**dc)}
        if res == "AC_ChargeParameterDiscoveryRes":
            ac = {
                "evse_maximum_charge_power": rational(AC, 22_000),
                "evse_minimum_charge_power": rational(AC, 1_380),
                "evse_nominal_frequency": rational(AC, 50),
            }
            if isinstance(req.ac_cpd_req_energy_transfer_mode, AC.BPT_AC_CPDReqEnergyTransferMode):
                return {
                    "ac_cpd_res_energy_transfer_mode": AC.BPT_AC_CPDResEnergyTransferMode(
                        **ac,
                        evse_maximum_discharge_power=rational(AC, self.discharge_power),
                        evse_minimum_discharge_power=rational(AC, 0),
                    )
                }
            return {"ac_cpd_res_energy_transfer_mode": AC.AC_CPDResEnergyTransferMode(**ac)}
        if res == "ScheduleExchangeRes":
            if self.loops:  # a renegotiation's exchange
                self.renegotiation_seen += 1
                ongoing = self.renegotiation_seen <= self.renegotiation_ongoing
                processing = C.Processing.Ongoing if ongoing else C.Processing.Finished
            else:
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
            if self.metering_at_stop and req.charge_progress.value == "Stop":
                return {
                    "evse_status": C.EVSEStatus(
                        notification_max_delay=0,
                        evse_notification=C.EvseNotification.MeteringConfirmation,
                    )
                }
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
            if self.loops == self.metering_at_loop:
                note = "MeteringConfirmation"
            if self._discharging(req):
                self.discharged_wh += self.energy_per_loop
            else:
                self.charged_wh += self.energy_per_loop
            bpt = type(req.cl_req_control_mode).__name__.startswith("BPT_")
            out = {
                "evse_status": mod.EVSEStatus(
                    notification_max_delay=0, evse_notification=mod.EvseNotification(note)
                ),
                "meter_info": mod.MeterInfo(
                    meter_id="M1",
                    charged_energy_reading_wh=self.charged_wh,
                    bpt_discharged_energy_reading_wh=self.discharged_wh if bpt else None,
                )
                if req.meter_info_requested or note == "MeteringConfirmation"
                else None,
            }
            if res == "AC_ChargeLoopRes":
                ctrl = req.cl_req_control_mode
                if isinstance(ctrl, AC.BPT_Dynamic_AC_CLReqControlMode):
                    out["cl_res_control_mode"] = AC.BPT_Dynamic_AC_CLResControlMode(
                        evse_target_active_power=rational(AC, 7_000)
                    )
                elif isinstance(ctrl, AC.Dynamic_AC_CLReqControlMode):
                    out["cl_res_control_mode"] = AC.Dynamic_AC_CLResControlMode(
                        evse_target_active_power=rational(AC, 7_000)
                    )
                elif isinstance(ctrl, AC.BPT_Scheduled_AC_CLReqControlMode):
                    out["cl_res_control_mode"] = AC.BPT_Scheduled_AC_CLResControlMode()
                else:
                    out["cl_res_control_mode"] = AC.Scheduled_AC_CLResControlMode()
                return out
            ctrl = req.cl_req_control_mode
            dynamic = "Dynamic" in type(ctrl).__name__
            current = value_of(ctrl.ev_target_current) if not dynamic else 100.0
            if isinstance(ctrl, DC.BPT_Dynamic_DC_CLReqControlMode):
                res_ctrl: Any = DC.BPT_Dynamic_DC_CLResControlMode(
                    evse_maximum_charge_power=rational(DC, 50_000),
                    evse_minimum_charge_power=rational(DC, 0),
                    evse_maximum_charge_current=rational(DC, 125),
                    evse_maximum_voltage=rational(DC, 500),
                    evse_maximum_discharge_power=rational(DC, self.discharge_power),
                    evse_minimum_discharge_power=rational(DC, 0),
                    evse_maximum_discharge_current=rational(DC, self.discharge_current),
                    evse_minimum_voltage=rational(DC, 150),
                )
            elif isinstance(ctrl, DC.BPT_Scheduled_DC_CLReqControlMode):
                res_ctrl = DC.BPT_Scheduled_DC_CLResControlMode()
            elif dynamic:
                res_ctrl = DC.Dynamic_DC_CLResControlMode(
                    evse_maximum_charge_power=rational(DC, 50_000),
                    evse_minimum_charge_power=rational(DC, 0),
                    evse_maximum_charge_current=rational(DC, 125),
                    evse_maximum_voltage=rational(DC, 500),
                )
            else:
                res_ctrl = DC.Scheduled_DC_CLResControlMode()
            out |= {
                "cl_res_control_mode": res_ctrl,
                "evse_present_current": rational(DC, current),
                "evse_present_voltage": rational(DC, self.voltage),
                "evse_power_limit_achieved": False,
                "evse_current_limit_achieved": False,
                "evse_voltage_limit_achieved": False,
            }
            return out
        if res == "DC_WeldingDetectionRes":
            self.voltage = max(self.welding_voltage, self.voltage / 4)
            return {"evse_present_voltage": rational(DC, self.voltage)}
        if res == "SessionStopRes":
            return {}
        raise AssertionError(f"the spec SECC has no answer for {res}")

    @staticmethod
    def _discharging(req: Any) -> bool:
        """Discharge as -20 counts it: a negative target current or present power."""
        ctrl = req.cl_req_control_mode
        for name in ("ev_target_current", "ev_present_active_power"):
            v = getattr(ctrl, name, None)
            if v is not None and value_of(v) < 0:
                return True
        return False

    def _check(self, name: str, req: Any) -> str | None:
        """The response code ISO 15118-20 gives a signed request, None when it checks."""
        if name == "AuthorizationReq" and req.pn_c_a_req_authorization_mode is not None:
            element = req.pn_c_a_req_authorization_mode
            chain = element.contract_certificate_chain
            leaf = x509.load_der_x509_certificate(chain.certificate)
            verdict = verify(req.header.signature, {element.id: element}, leaf.public_key())
            if verdict == "OK" and bytes(element.gen_challenge) != self.challenge:
                verdict = "WARNING_ChallengeInvalid"
            self.verdicts.append(verdict)
            return None if verdict == "OK" else verdict
        if name == "MeteringConfirmationReq":
            element = req.signed_metering_data
            self.metering_seen.append(element)
            chain = self.last_contract
            verdict = verify(req.header.signature, {element.id: element}, chain.public_key())
            if verdict != "OK":
                verdict = "FAILED_MeteringSignatureNotValid"
            self.verdicts.append(verdict)
            return None if verdict == "OK" else verdict
        if name == "CertificateInstallationReq":
            element = req.oem_provisioning_certificate_chain
            leaf = x509.load_der_x509_certificate(element.certificate)
            verdict = verify(
                req.header.signature,
                {element.id: element},
                leaf.public_key(),
                name="OEMProvisioningCertificateChain",
            )
            self.verdicts.append(verdict)
            return None if verdict == "OK" else verdict
        return None

    @property
    def last_contract(self) -> x509.Certificate:
        """The contract leaf the EV authorized with."""
        for req_name, req in reversed(self.history):
            if req_name == "AuthorizationReq" and req.pn_c_a_req_authorization_mode:
                cert = req.pn_c_a_req_authorization_mode.contract_certificate_chain.certificate
                return x509.load_der_x509_certificate(cert)
        raise AssertionError("MeteringConfirmationReq before a PnC AuthorizationReq")

    def _installation(self, req: Any, n: int) -> dict[str, Any]:
        from secc.ev.install20 import pcid_of, seal_contract_key

        chain, key = self.install
        leaf = x509.load_der_x509_certificate(chain[0])
        oem = req.oem_provisioning_certificate_chain.certificate
        oem_public = x509.load_der_x509_certificate(oem).public_key()
        assert isinstance(oem_public, ec.EllipticCurvePublicKey)
        dh, sealed = seal_contract_key(key, oem_public, pcid_of(oem), leaf)
        data = C.SignedInstallationData(
            id="id1",
            contract_certificate_chain=C.ContractCertificateChain(
                certificate=chain[0], sub_certificates=C.SubCertificates(certificate=chain[1:])
            ),
            ecdh_curve=C.EcdhCurve.SECP521,
            dh_public_key=dh,
            secp521_encrypted_private_key=sealed,
        )
        cps_chain: tuple[bytes, ...] = (chain[-1],)
        if self.cps is not None:
            from secc.ev.pnc20 import sign

            cps_chain, cps_key = self.cps
            fragment = codec.encode_fragment(data, "iso20-common", name="SignedInstallationData")
            self.signature = sign({data.id: fragment}, cps_key)
            if self.cps_tamper:
                data = replace(data, dh_public_key=bytes([dh[0]]) + bytes([dh[1] ^ 1]) + dh[2:])
        return {
            "evse_processing": self._processing(C, n, 1),
            "cps_certificate_chain": C.CertificateChain(
                certificate=cps_chain[0],
                sub_certificates=C.SubCertificates(certificate=cps_chain[1:])
                if cps_chain[1:]
                else None,
            ),
            "signed_installation_data": data,
            "remaining_contract_certificate_chains": 0,
        }


def verify(
    signature: Any, elements: dict[str, Any], public_key: Any, name: str | None = None
) -> str:
    """Check a -20 header Signature over ``elements`` (by Id) as the standard says: each
    Reference's SHA-512 digest of the element's EXI fragment, then the SignatureValue over
    the SignedInfo fragment (ECDSA secp521r1/SHA-512 raw r||s, or Ed448)."""
    if signature is None:
        return "FAILED_SignatureError"
    info = signature.signed_info
    refs = {r.uri: r for r in info.reference}
    for element_id, element in elements.items():
        ref = refs.get("#" + element_id)
        if ref is None or ref.digest_method.algorithm != "http://www.w3.org/2001/04/xmlenc#sha512":
            return "FAILED_SignatureError"
        fragment = codec.encode_fragment(element, "iso20-common", name=name)
        if hashlib.sha512(fragment).digest() != ref.digest_value:
            return "FAILED_SignatureError"
    data = codec.encode_fragment(info)
    value = bytes(signature.signature_value.value)
    method = info.signature_method.algorithm
    try:
        if method.endswith("eddsa-ed448") and isinstance(public_key, ed448.Ed448PublicKey):
            public_key.verify(value, data)
            return "OK"
        if (
            method.endswith("ecdsa-sha512")
            and isinstance(public_key, ec.EllipticCurvePublicKey)
            and public_key.curve.name == "secp521r1"
            and len(value) == 132
        ):
            r, s = int.from_bytes(value[:66], "big"), int.from_bytes(value[66:], "big")
            public_key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA512()))
            return "OK"
    except (InvalidSignature, ValueError):
        pass
    return "FAILED_SignatureError"
