"""The legal-transition table: state -> request type -> handler, per protocol.

The one place that says which request may come when (ISO 15118-2 §8.8.2 message
sequencing, DIN SPEC 70121 §9.6).  Anything absent is FAILED_SequenceError and the session
closes; the legality test walks these same tables.  A handler's Reply names the next
state.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from secc.core import handshake
from secc.core.context import Context, Reply, State
from secc.core.events import Schema
from secc.core.iso2 import charge_params, dc, din, pnc, power, session_setup, setup, stop

Handler = Callable[[Context, Any, float], Reply]

HANDSHAKE = {"supportedAppProtocolReq": handshake.supported_app_protocol}

ISO2: dict[State, dict[str, Handler]] = {
    State.WAIT_HANDSHAKE: {},
    State.WAIT_SESSION_SETUP: {"SessionSetupReq": session_setup.session_setup},
    State.SESSION_SETUP: {"ServiceDiscoveryReq": setup.service_discovery},
    State.SERVICE_DISCOVERY: {
        "ServiceDetailReq": setup.service_detail,
        "PaymentServiceSelectionReq": setup.payment_service_selection,
    },
    State.PAYMENT_EIM: {"AuthorizationReq": pnc.authorization},
    State.PAYMENT_PNC: {
        "CertificateInstallationReq": pnc.certificate_installation,
        "CertificateUpdateReq": pnc.certificate_update,
        "PaymentDetailsReq": pnc.payment_details,
    },
    State.CERTIFICATE_WAIT: {},
    State.CERTIFICATE_DONE: {"PaymentDetailsReq": pnc.payment_details},
    State.PAYMENT_DETAILS: {"AuthorizationReq": pnc.authorization},
    State.AUTHORIZATION: {"AuthorizationReq": pnc.authorization},
    State.AUTHORIZED: {
        "ChargeParameterDiscoveryReq": charge_params.charge_parameter_discovery,
        "SessionStopReq": stop.session_stop,
    },
    State.AC_READY: {
        "PowerDeliveryReq": power.power_delivery,
        "SessionStopReq": stop.session_stop,
    },
    State.DC_READY: {
        "CableCheckReq": dc.cable_check,
        "SessionStopReq": stop.session_stop,
    },
    State.CABLE_CHECK: {"CableCheckReq": dc.cable_check},
    State.CABLE_CHECK_DONE: {"PreChargeReq": dc.pre_charge},
    State.PRE_CHARGE: {
        "PreChargeReq": dc.pre_charge,
        "PowerDeliveryReq": power.power_delivery,
    },
    State.AC_CHARGING: {
        "ChargingStatusReq": power.charging_status,
        "MeteringReceiptReq": pnc.metering_receipt,
        "PowerDeliveryReq": power.power_delivery,
    },
    State.DC_CHARGING: {
        "CurrentDemandReq": dc.current_demand,
        "MeteringReceiptReq": pnc.metering_receipt,
        "PowerDeliveryReq": power.power_delivery,
    },
    State.AC_STOPPED: {"SessionStopReq": stop.session_stop},
    State.DC_STOPPED: {
        "WeldingDetectionReq": dc.welding_detection,
        "SessionStopReq": stop.session_stop,
    },
    State.ENDED: {},
}

DIN: dict[State, dict[str, Handler]] = {
    State.WAIT_HANDSHAKE: {},
    State.WAIT_SESSION_SETUP: {"SessionSetupReq": session_setup.session_setup},
    State.SESSION_SETUP: {"ServiceDiscoveryReq": din.service_discovery},
    State.SERVICE_DISCOVERY: {"ServicePaymentSelectionReq": din.service_payment_selection},
    State.PAYMENT_EIM: {"ContractAuthenticationReq": din.contract_authentication},
    State.AUTHORIZATION: {"ContractAuthenticationReq": din.contract_authentication},
    State.AUTHORIZED: {"ChargeParameterDiscoveryReq": din.charge_parameter_discovery},
    State.DC_READY: {"CableCheckReq": dc.cable_check},
    State.CABLE_CHECK: {"CableCheckReq": dc.cable_check},
    State.CABLE_CHECK_DONE: {"PreChargeReq": dc.pre_charge},
    State.PRE_CHARGE: {"PreChargeReq": dc.pre_charge, "PowerDeliveryReq": din.power_delivery},
    State.DC_CHARGING: {
        "CurrentDemandReq": din.current_demand,
        "PowerDeliveryReq": din.power_delivery,
    },
    State.DC_STOPPED: {
        "WeldingDetectionReq": dc.welding_detection,
        "SessionStop": stop.session_stop,
    },
    State.ENDED: {},
}

TABLES: dict[Schema, dict[State, dict[str, Handler]]] = {Schema.ISO2: ISO2, Schema.DIN: DIN}


def handler_for(schema: Schema, state: StrEnum, request: str) -> Handler | None:
    """The handler of ``request`` in ``state``, or None: a sequence error."""
    if state is State.WAIT_HANDSHAKE:
        return HANDSHAKE.get(request) if schema is Schema.APPHAND else None
    table = TABLES.get(schema)
    if table is None or not isinstance(state, State):
        return None
    return table.get(state, {}).get(request)
