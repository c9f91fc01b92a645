"""The -20 legal-transition table: state -> request -> (schema, handler), per energy family.

The one place that says which -20 request may come when (ISO 15118-20 §8.8 message
sequencing) and with which payload type: a request of the right name in the wrong schema
(an AC message in a DC session, a DC message in an AC payload) is as illegal as one out of
order.  Anything absent is FAILED_SequenceError and the session closes; the legality test
walks these same tables.  SessionStopReq may come in every state from SessionSetup until
the first PowerDelivery Start [V2G20-2644], and after a PowerDelivery Stop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from secc.core.context import Context, Reply
from secc.core.events import Schema
from secc.core.iso20 import ac, dc, pnc, power, setup
from secc.core.iso20.common import Iso20State as S

Handler = Callable[[Context, Any, float], Reply]
Entry = tuple[Schema, Handler]

C, A, D = Schema.ISO20_COMMON, Schema.ISO20_AC, Schema.ISO20_DC


def _power_delivery(state: S) -> Entry:
    def handler(ctx: Context, req: Any, now: float) -> Reply:
        return power.power_delivery(ctx, req, now, state)

    return (C, handler)


def _metering(state: S) -> Entry:
    def handler(ctx: Context, req: Any, now: float) -> Reply:
        return pnc.metering_confirmation(ctx, req, now, state)

    return (C, handler)


STOP: dict[str, Entry] = {"SessionStopReq": (C, setup.session_stop)}
SCHEDULE: dict[str, Entry] = {"ScheduleExchangeReq": (C, power.schedule_exchange)}

_COMMON: dict[S, dict[str, Entry]] = {
    S.WAIT_SESSION_SETUP: {"SessionSetupReq": (C, setup.session_setup)},
    S.SESSION_SETUP: {"AuthorizationSetupReq": (C, setup.authorization_setup), **STOP},
    S.AUTHORIZATION_SETUP: {
        "AuthorizationReq": (C, setup.authorization),
        "CertificateInstallationReq": (C, pnc.certificate_installation),
        **STOP,
    },
    S.AUTHORIZATION: {"AuthorizationReq": (C, setup.authorization), **STOP},
    S.AUTHORIZATION_RESELECT: {"AuthorizationReq": (C, setup.authorization_reselect), **STOP},
    S.AUTHORIZATION_REFUSED: STOP,
    S.AUTHORIZED: {"ServiceDiscoveryReq": (C, setup.service_discovery), **STOP},
    S.SERVICE_DISCOVERY: {
        "ServiceDetailReq": (C, setup.service_detail),
        "ServiceSelectionReq": (C, setup.service_selection),
        **STOP,
    },
    S.CHARGE_PARAMETERS: {**SCHEDULE, **STOP},
    S.SCHEDULE_ONGOING: {**SCHEDULE, **STOP},
    S.RENEGOTIATION: SCHEDULE,
    S.RESCHEDULED: {"PowerDeliveryReq": _power_delivery(S.RESCHEDULED)},
    S.STANDBY: {
        "PowerDeliveryReq": _power_delivery(S.STANDBY),
        "MeteringConfirmationReq": _metering(S.STANDBY),
    },
    S.CHARGE_LOOP: {
        "PowerDeliveryReq": _power_delivery(S.CHARGE_LOOP),
        "MeteringConfirmationReq": _metering(S.CHARGE_LOOP),
    },
    S.STOPPED: STOP,
}

AC_TABLE: dict[S, dict[str, Entry]] = {
    **_COMMON,
    S.SERVICE_SELECTED: {
        "AC_ChargeParameterDiscoveryReq": (A, ac.charge_parameter_discovery),
        **STOP,
    },
    S.SCHEDULED: {"PowerDeliveryReq": _power_delivery(S.SCHEDULED), **STOP},
    S.CHARGE_LOOP: {**_COMMON[S.CHARGE_LOOP], "AC_ChargeLoopReq": (A, ac.charge_loop)},
    S.STANDBY: {**_COMMON[S.STANDBY], "AC_ChargeLoopReq": (A, ac.charge_loop)},
}

DC_TABLE: dict[S, dict[str, Entry]] = {
    **_COMMON,
    S.SERVICE_SELECTED: {
        "DC_ChargeParameterDiscoveryReq": (D, dc.charge_parameter_discovery),
        **STOP,
    },
    S.SCHEDULED: {"DC_CableCheckReq": (D, dc.cable_check), **STOP},
    S.CABLE_CHECK: {"DC_CableCheckReq": (D, dc.cable_check), **STOP},
    S.CABLE_CHECK_DONE: {"DC_PreChargeReq": (D, dc.pre_charge), **STOP},
    S.PRE_CHARGE: {
        "DC_PreChargeReq": (D, dc.pre_charge),
        "PowerDeliveryReq": _power_delivery(S.PRE_CHARGE),
        **STOP,
    },
    S.CHARGE_LOOP: {**_COMMON[S.CHARGE_LOOP], "DC_ChargeLoopReq": (D, dc.charge_loop)},
    S.STANDBY: {**_COMMON[S.STANDBY], "DC_ChargeLoopReq": (D, dc.charge_loop)},
    S.STOPPED: {"DC_WeldingDetectionReq": (D, dc.welding_detection), **STOP},
    S.WELDING_DETECTION: {"DC_WeldingDetectionReq": (D, dc.welding_detection), **STOP},
}


def table(dc_session: bool) -> dict[S, dict[str, Entry]]:
    return DC_TABLE if dc_session else AC_TABLE


def handler_for(dc_session: bool, schema: Schema, state: Any, request: str) -> Handler | None:
    """The handler of ``request`` received in ``schema`` in ``state``, or None: a
    sequence error."""
    entry = table(dc_session).get(state, {}).get(request)
    if entry is None or entry[0] is not schema:
        return None
    return entry[1]
