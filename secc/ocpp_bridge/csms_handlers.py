"""Handlers for CSMS-initiated calls.  Each takes the wire payload and returns a
:class:`~secc.ocpp_bridge.client.Reply`; follow-up calls (NotifyReport, a triggered
message, SignCertificate) go into ``Reply.after`` and never run inside the handler.

Supported: GetVariables, SetVariables, GetBaseReport (→ NotifyReport), RequestStartTransaction,
RequestStopTransaction, TriggerMessage, InstallCertificate, DeleteCertificate,
GetInstalledCertificateIds, CertificateSigned, SendLocalList, GetLocalListVersion,
ClearCache, GetTransactionStatus, CustomerInformation (→ NotifyCustomerInformation,
:mod:`~secc.ocpp_bridge.customer_info`).  Anything else is answered by the client with CallError
NotSupported (an OCPP 2.0.1 action) or NotImplemented (none).

``bridge`` is the station's primary bridge; per-EVSE commands are routed to
``bridge.evses`` by evseId (RequestStartTransaction, TriggerMessage's ``evse``) or by
transactionId (RequestStopTransaction, GetTransactionStatus).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from certs._util import signed_by
from certs.ocsp import CertificateHashData, OcspError
from certs.store import KIND_OF_OCPP_TYPE, InstallRefused, StoreError
from secc.core.events import StopRequested
from secc.ocpp_bridge import mapping
from secc.ocpp_bridge.client import Handler, Reply
from secc.ocpp_bridge.customer_info import customer_information
from secc.ocpp_bridge.device_model import apply_device_model
from secc.ocpp_bridge.security_events import INVALID_STATION_CERTIFICATE

if TYPE_CHECKING:
    from secc.ocpp_bridge.bridge import Bridge

log = logging.getLogger(__name__)
RECONNECT_GRACE = 0.5  # seconds between answering a password change and reconnecting
# GetCertificateIdUseEnumType of OCPP 2.0.1 (the store also knows OEM roots and the
# charging-station certificate, which 2.0.1 does not list).
REPORTABLE = {
    "V2GRootCertificate",
    "MORootCertificate",
    "CSMSRootCertificate",
    "V2GCertificateChain",
    "ManufacturerRootCertificate",
}
Payload = dict[str, object]


def _info(reason: str) -> dict[str, object]:
    return {"reasonCode": "Other" if not reason else reason[:20], "additionalInfo": reason[:512]}


def _bad(reason: str) -> dict[str, object]:
    """statusInfo of a refused certificate."""
    return {"reasonCode": "InvalidCertificate", "additionalInfo": reason[:512]}


def _evse_of(p: Payload) -> int | None:
    evse = p.get("evse")
    evse_id = evse.get("id") if isinstance(evse, dict) else None
    return evse_id if isinstance(evse_id, int) else None


def make_handlers(bridge: Bridge) -> dict[str, Handler]:
    client = bridge.client
    dm = bridge.dm
    evses = bridge.evses  # evseId -> Bridge, shared by all EVSEs of the station

    def startable(b: Bridge) -> bool:
        """No transaction, or one still waiting for its authorization (F01)."""
        return b.transaction is None or not b._authorized

    def start_target(evse_id: object) -> Bridge | None:
        if isinstance(evse_id, int):
            return evses.get(evse_id)
        # no evseId: an EV waiting for authorization first, else a free EVSE that takes
        # sessions (an inoperative one would hold the token for a car it refuses)
        free = [b for b in evses.values() if startable(b)]
        free.sort(key=lambda b: not bridge.ops.operative(b.config.evse_id))
        waiting = [b for b in free if b._waiting_eim is not None or b.transaction is not None]
        return (waiting or free)[0] if free else None

    def structure_entry(entry: dict[str, object], *, setting: bool) -> dict[str, object]:
        """The answer to one Get/SetVariables entry on an EVSE or Connector component:
        its value (all are ReadOnly: a set is Rejected), or why there is none."""
        component = entry.get("component", {})
        evse = component.get("evse") if isinstance(component, dict) else None
        evse = evse if isinstance(evse, dict) else {}
        variable = entry.get("variable", {})
        key = (
            _component_name(entry),
            evse.get("id"),
            evse.get("connectorId"),
            variable.get("name") if isinstance(variable, dict) else None,
        )
        known = {(c, ev, cn, v): value for c, ev, cn, v, value, *_ in structure_variables(bridge)}
        out: dict[str, object] = {
            "attributeStatus": "Accepted",
            "component": entry.get("component"),
            "variable": entry.get("variable"),
        }
        if "attributeType" in entry:
            out["attributeType"] = entry["attributeType"]
        if not any(k[:3] == key[:3] for k in known) or (
            isinstance(component, dict) and "instance" in component
        ):
            out["attributeStatus"] = "UnknownComponent"
        elif key not in known or (isinstance(variable, dict) and "instance" in variable):
            out["attributeStatus"] = "UnknownVariable"
        elif entry.get("attributeType", "Actual") != "Actual":
            out["attributeStatus"] = "NotSupportedAttributeType"
        elif setting:
            out["attributeStatus"] = "Rejected"
            out["attributeStatusInfo"] = {"reasonCode": "ReadOnly", "additionalInfo": "ReadOnly"}
        else:
            out["attributeValue"] = known[key]
        return out

    def in_order(entries: list[object], device: list[object], setting: bool) -> list[object]:
        """The results in the order of the request's entries (a CSMS may pair them by
        position): the device model's for its entries, the EVSE/Connector ones' own."""
        mine = iter(device)
        return [
            structure_entry(e, setting=setting)
            if isinstance(e, dict) and _component_name(e) in STRUCTURE
            else next(mine)
            for e in entries
        ]

    def get_variables(p: Payload) -> Reply:
        entries = p.get("getVariableData")
        entries = entries if isinstance(entries, list) else []
        rest = [e for e in entries if _component_name(e) not in STRUCTURE]
        answer = dm.get_variables({"getVariableData": rest})
        results = answer["getVariableResult"]
        assert isinstance(results, list)
        answer["getVariableResult"] = in_order(entries, results, setting=False)
        return Reply(answer)

    def set_variables(p: Payload) -> Reply:
        entries = p.get("setVariableData")
        entries = entries if isinstance(entries, list) else []
        rest = [e for e in entries if _component_name(e) not in STRUCTURE]
        answer = dm.set_variables({"setVariableData": rest})
        device = answer["setVariableResult"]
        assert isinstance(device, list)
        results = answer["setVariableResult"] = in_order(entries, device, setting=True)
        changed = any(
            isinstance(r, dict)
            and r["attributeStatus"] == "Accepted"
            and r["variable"] == {"name": "BasicAuthPassword"}
            for r in results
        )
        if not changed:
            return Reply(answer)

        async def reconnect() -> None:
            # A01: the new password is used from the next connection, opened right away
            # (after a short grace so the CSMS can read our answer and finish its own call)
            client.config = apply_device_model(client.config, dm)
            await asyncio.sleep(RECONNECT_GRACE)
            await client.close()

        return Reply(answer, after=reconnect)

    def get_base_report(p: Payload) -> Reply:
        """B07: FullInventory every variable; ConfigurationInventory those the operator
        can set (ReadWrite, WriteOnly); SummaryInventory the charging availability (the
        EVSE and Connector AvailabilityState / Available; no component reports a
        problem)."""
        request_id = p.get("requestId")
        base = p.get("reportBase")
        data = dm.report_data() + structure_report(bridge)
        if base == "ConfigurationInventory":
            data = [d for d in data if _mutability(d) in ("ReadWrite", "WriteOnly")]
        elif base == "SummaryInventory":
            data = [d for d in structure_report(bridge) if _variable_name(d) in SUMMARY]

        async def notify() -> None:
            await client.call(
                "NotifyReport",
                {
                    "requestId": request_id,
                    "generatedAt": mapping.ocpp_timestamp(bridge.utc_now()),
                    "seqNo": 0,
                    "tbc": False,
                    "reportData": data,
                },
            )

        return Reply({"status": "Accepted"}, after=notify)

    def request_start(p: Payload) -> Reply:
        token = p.get("idToken")
        remote_id = p.get("remoteStartId")
        if not isinstance(token, dict) or not isinstance(remote_id, int):
            return Reply({"status": "Rejected"})
        target = start_target(p.get("evseId"))
        if target is None and isinstance(p.get("evseId"), int):
            return Reply({"status": "Rejected", "statusInfo": _info("UnknownEvse")})
        if target is None or not startable(target):
            return Reply({"status": "Rejected", "statusInfo": _info("TxInProgress")})
        from secc.ocpp_bridge.bridge import _Token

        profile = p.get("chargingProfile")  # K05: a TxProfile for the transaction
        if profile is not None:
            problem = bridge.smart.start_profile_problem(target.config.evse_id, profile)
            if problem:
                return Reply(
                    {
                        "status": "Rejected",
                        "statusInfo": {"reasonCode": "InvalidProfile", "additionalInfo": problem},
                    }
                )
        preauthorized = not dm.flag("AuthCtrlr", "AuthorizeRemoteStart")
        held = _Token(
            str(token.get("idToken")),
            str(token.get("type")),
            remote_id,
            preauthorized,
            profile if isinstance(profile, dict) and target.transaction is None else None,
        )
        if target.transaction is None and target._waiting_eim is None and not target._plugged:
            target.hold_remote_token(held, float(dm.number("TxCtrlr", "EVConnectionTimeOut")))
        else:
            target._token = held
        if isinstance(profile, dict) and target.transaction is not None:  # F01: running
            bridge.smart.apply_start_profile(
                target.config.evse_id, profile, str(target.transaction["id"])
            )
        if target._waiting_eim is not None:
            request, target._waiting_eim = target._waiting_eim, None
            client.spawn(target._authorize(request), "authorization")
        answer: dict[str, object] = {"status": "Accepted"}
        if target.transaction is not None:  # F01: the cable first; the running transaction
            answer["transactionId"] = target.transaction["id"]
        return Reply(answer)

    def request_stop(p: Payload) -> Reply:
        owner = bridge.by_transaction(p.get("transactionId"))
        if owner is None:
            return Reply({"status": "Rejected"})
        owner._remote_stop = True
        owner.emit(StopRequested("RequestStopTransaction from the CSMS"))
        return Reply({"status": "Accepted"})

    def trigger_message(p: Payload) -> Reply:
        what = p.get("requestedMessage")
        follow: Callable[[], Awaitable[None]] | None = None
        wanted = _evse_of(p)
        if wanted is not None and wanted not in evses:
            return Reply({"status": "Rejected", "statusInfo": _info("unknown evse")})
        targets = [evses[wanted]] if wanted is not None else list(evses.values())
        if what == "Heartbeat":

            async def follow() -> None:
                await client.call("Heartbeat", {})

        elif what == "StatusNotification":
            # F06.FR.12: a StatusNotification is about one connector: evse.id and
            # evse.connectorId are required, and must name a connector of this station
            evse = p.get("evse")
            connector = evse.get("connectorId") if isinstance(evse, dict) else None
            if wanted is None or connector != evses[wanted].config.connector_id:
                reason = "no such connector" if wanted is not None else "evse and connectorId"
                return Reply({"status": "Rejected", "statusInfo": _info(reason)})

            async def follow() -> None:
                for b in targets:
                    evse, connector = b.config.evse_id, b.config.connector_id
                    status = client.connector_status(evse, connector)
                    await client.status_notification(evse, connector, status)

        elif what == "TransactionEvent":
            open_tx = [b for b in targets if b.transaction is not None]
            if not open_tx:
                return Reply({"status": "Rejected"})

            async def follow() -> None:
                for b in open_tx:
                    await b.tx_triggered()
        elif what in {"SignChargingStationCertificate", "SignV2GCertificate"}:
            v2g_off = what == "SignV2GCertificate" and not dm.flag(
                "ISO15118Ctrlr", "V2GCertificateInstallationEnabled"
            )
            if bridge.store is None or v2g_off:
                return Reply({"status": "Rejected"})
            # SignV2GCertificate renews every SECC leaf the station serves: the -2 one and,
            # with a v2g20 chain, the -20 one (its own CSR, told apart by key on return)
            kinds = (
                bridge.v2g_renewals()
                if what == "SignV2GCertificate"
                else ["ChargingStationCertificate"]
            )

            async def follow() -> None:
                await asyncio.gather(*(bridge.sign_certificate(k) for k in kinds))

        elif what == "BootNotification":
            if client.trigger_boot():  # Pending: the boot loop sends it now
                return Reply({"status": "Accepted"})
            return Reply({"status": "Rejected", "statusInfo": _info("already accepted")})
        else:
            return Reply({"status": "NotImplemented"})
        return Reply({"status": "Accepted"}, after=follow)

    def install_certificate(p: Payload) -> Reply:
        kind = KIND_OF_OCPP_TYPE.get(str(p.get("certificateType")))
        if bridge.store is None or kind is None:
            return Reply({"status": "Rejected", "statusInfo": _info("unsupported type")})
        try:
            bridge.store.install_root(
                kind, str(p.get("certificate")).encode(), utc_now=bridge.utc_now()
            )
        except InstallRefused as exc:
            return Reply({"status": "Rejected", "statusInfo": _bad(str(exc))})
        except (StoreError, OSError) as exc:
            return Reply({"status": "Failed", "statusInfo": _info(str(exc))})
        return Reply({"status": "Accepted"})

    def delete_certificate(p: Payload) -> Reply:
        data = p.get("certificateHashData")
        if bridge.store is None or not isinstance(data, dict):
            return Reply({"status": "Failed"})
        try:
            wanted = CertificateHashData.from_ocpp(data)
        except OcspError as exc:
            return Reply({"status": "Failed", "statusInfo": _info(str(exc))})
        in_use = _in_use(bridge, wanted)
        if in_use:
            log.warning("DeleteCertificate refused: %s", in_use)
            return Reply({"status": "Failed", "statusInfo": _info(in_use)})
        return Reply({"status": bridge.store.delete(wanted)})

    def get_installed(p: Payload) -> Reply:
        if bridge.store is None:
            return Reply({"status": "NotFound"})
        types = p.get("certificateType")
        wanted = tuple(str(t) for t in types) if isinstance(types, list) and types else None
        items = [
            i.to_ocpp()
            for i in bridge.store.list_installed(wanted)
            if i.certificate_type in REPORTABLE
        ]
        if not items:
            return Reply({"status": "NotFound"})
        return Reply({"status": "Accepted", "certificateHashDataChain": items})

    def certificate_signed(p: Payload) -> Reply:
        # A02/A03: the shared installer (secc.maintenance.SignedInstaller) checks,
        # installs, raises InvalidChargingStationCertificate on a refusal (A02.FR.07) and
        # reconnects with a new client certificate on a profile-3 link (A02.FR.08)
        if bridge.installer is not None:
            return bridge.installer(p)
        reason = "no certificate store"
        log.warning("CertificateSigned refused: %s", reason)
        kind = str(p.get("certificateType") or "ChargingStationCertificate")
        client.spawn(
            bridge.security.record(INVALID_STATION_CERTIFICATE, f"{kind}: {reason}"),
            "SecurityEventNotification",
        )
        return Reply({"status": "Rejected", "statusInfo": _bad(reason)})

    def send_local_list(p: Payload) -> Reply:
        if not dm.flag("LocalAuthListCtrlr", "Enabled"):  # no list in use: none is taken
            return Reply({"status": "Failed", "statusInfo": _info("LocalListDisabled")})
        return Reply(bridge.auth.send_local_list(p))

    def get_local_list_version(p: Payload) -> Reply:
        if not dm.flag("LocalAuthListCtrlr", "Enabled"):  # D02.FR.03
            return Reply({"versionNumber": 0})
        return Reply({"versionNumber": bridge.auth.list_version})

    def get_transaction_status(p: Payload) -> Reply:
        wanted = p.get("transactionId")
        # E14: transaction-related messages (a queued security event or status is not)
        pending = [m for m in bridge.queue.pending() if m.action == "TransactionEvent"]
        if wanted is None:
            return Reply({"messagesInQueue": bool(pending)})
        queued = any(
            isinstance(info := m.payload.get("transactionInfo"), dict)
            and info.get("transactionId") == wanted
            for m in pending
        )
        ongoing = bridge.by_transaction(wanted) is not None
        return Reply({"ongoingIndicator": ongoing, "messagesInQueue": queued})

    def clear_cache(p: Payload) -> Reply:
        if not dm.flag("AuthCacheCtrlr", "Enabled"):  # C11.FR.04
            return Reply({"status": "Rejected", "statusInfo": _info("AuthCacheDisabled")})
        try:
            bridge.auth.clear_cache()
        except sqlite3.Error as exc:  # not cleared: not Accepted
            return Reply({"status": "Rejected", "statusInfo": _info(str(exc))})
        return Reply({"status": "Accepted"})

    def data_transfer(p: Payload) -> Reply:
        # P01: no vendor-specific extension is implemented
        return Reply({"status": "UnknownVendorId"})

    return {
        "GetVariables": get_variables,
        "SetVariables": set_variables,
        "GetBaseReport": get_base_report,
        "RequestStartTransaction": request_start,
        "RequestStopTransaction": request_stop,
        "TriggerMessage": trigger_message,
        "InstallCertificate": install_certificate,
        "DeleteCertificate": delete_certificate,
        "GetInstalledCertificateIds": get_installed,
        "CertificateSigned": certificate_signed,
        "SendLocalList": send_local_list,
        "GetLocalListVersion": get_local_list_version,
        "ClearCache": clear_cache,
        "GetTransactionStatus": get_transaction_status,
        "DataTransfer": data_transfer,
        # N09 / N10 (secc.ocpp_bridge.customer_info)
        "CustomerInformation": lambda p: customer_information(bridge, p),
    }


STRUCTURE = ("EVSE", "Connector")
SUMMARY = ("AvailabilityState", "Available")  # what SummaryInventory reports


def _mutability(entry: dict[str, object]) -> object:
    attributes = entry.get("variableAttribute")
    first = attributes[0] if isinstance(attributes, list) and attributes else {}
    return first.get("mutability") if isinstance(first, dict) else None


def _variable_name(entry: dict[str, object]) -> object:
    variable = entry.get("variable")
    return variable.get("name") if isinstance(variable, dict) else None


def _in_use(bridge: Bridge, wanted: CertificateHashData) -> str:
    """Why deleting this certificate would cut the station off ("" when it would not):
    the SECC chain it serves to EVs, the V2G root that chain leads to (without it the
    chain is not served: a restart would have nothing to serve), the last CSMS root
    while the link uses TLS.  OCPP M04 lets the station answer Failed."""
    store = bridge.store
    assert store is not None
    items = store.list_installed(algorithm=wanted.hash_algorithm)
    item = next((i for i in items if i.hash_data.matches(wanted)), None)
    if item is None:
        return ""
    if item.certificate_type == "V2GCertificateChain":
        return "the SECC certificate chain in use"
    if item.certificate_type == "V2GRootCertificate":
        for use in store.leaf_uses():
            if use == "v2g" or use.startswith("v2g."):
                top = store.leaf_chain(use)[-1]
                if top.issuer == item.certificate.subject and signed_by(top, item.certificate):
                    return "the V2G root of the SECC certificate chain in use"
    tls_link = bridge.client.config.security_profile > 1
    if (
        item.certificate_type == "CSMSRootCertificate"
        and tls_link
        and len(store.roots("csms")) <= 1
    ):
        return "the only CSMS root of the TLS link"
    return ""


def _component_name(entry: object) -> object:
    component = entry.get("component") if isinstance(entry, dict) else None
    return component.get("name") if isinstance(component, dict) else None


def structure_variables(
    bridge: Bridge,
) -> list[tuple[str, int, int | None, str, str, str]]:
    """The EVSE and Connector components (OCPP 2.0.1 part 2, 2.2 "Charging Station
    structure"): (component, evseId, connectorId or None, variable, value, dataType),
    all ReadOnly."""
    out: list[tuple[str, int, int | None, str, str, str]] = []
    for evse_id, b in sorted(bridge.evses.items()):
        connector = b.config.connector_id
        state = bridge.client.connector_status(evse_id, connector)
        out += [
            ("EVSE", evse_id, None, "AvailabilityState", state, "OptionList"),
            ("EVSE", evse_id, None, "Available", "true", "boolean"),
            ("Connector", evse_id, connector, "AvailabilityState", state, "OptionList"),
            ("Connector", evse_id, connector, "Available", "true", "boolean"),
            ("Connector", evse_id, connector, "ConnectorType", b.config.connector_type, "string"),
        ]
    return out


def structure_report(bridge: Bridge) -> list[dict[str, object]]:
    """NotifyReport reportData for the EVSE and Connector components."""
    out: list[dict[str, object]] = []
    for component, evse_id, connector_id, variable, value, data_type in structure_variables(bridge):
        evse: dict[str, object] = {"id": evse_id}
        if connector_id is not None:
            evse["connectorId"] = connector_id
        out.append(
            {
                "component": {"name": component, "evse": evse},
                "variable": {"name": variable},
                "variableAttribute": [{"type": "Actual", "value": value, "mutability": "ReadOnly"}],
                "variableCharacteristics": {"dataType": data_type, "supportsMonitoring": False},
            }
        )
    return out
