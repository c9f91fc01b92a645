"""The OCPP bridge: core actions in, OCPP calls out; CSMS answers and commands back as core
events and certificate-store changes.

Theory of operation
-------------------
The runtime hands every core action to :meth:`Bridge.perform` (non-blocking) and feeds
meter snapshots with :meth:`Bridge.evse_status`; the bridge answers through the ``emit``
callback it was given (``AuthorizationResult``, ``CertificateResult``, ``StopRequested``),
which the runtime puts into the session's inbox.

* ``RequestAuthorization`` → Authorize (eMAID + iso15118CertificateHashData with the
  request's hashAlgorithm — SHA512 for ISO 15118-20 chains —, or the PEM chain) with a
  deadline; when the CSMS cannot be reached in time the offline policy of
  :mod:`secc.ocpp_bridge.authorization` decides.  EIM requests wait for a token: one
  presented by the HAL (:meth:`Bridge.present_token`) or a RequestStartTransaction.
* ``RequestCertificate`` → Get15118EVCertificate (iso15118SchemaVersion as the core gives
  it: ISO 15118-2's or -20's namespace) with a deadline inside the EV's budget
  (``ev_certificate_budget``, default 4.0 s of the core's 4.5 s); the CSMS's exiResponse
  goes back unchanged; a late, failed or malformed answer becomes
  ``CertificateResult(None, reason)`` in time.
* ``MeteringReceipt`` (ISO 15118-20 MeteringConfirmation) → TransactionEvent Updated,
  triggerReason SignedDataReceived, its energy registers with the signedMeterValue.
* Bidirectional power: with ``BridgeConfig.bidirectional`` (an EVSE offering BPT with
  discharge limits), or once the meter shows the EV discharging in a transaction, meter values
  carry the export measurands (Energy.Active.Export.Register, Power.Active.Export,
  Current.Export) beside the import ones.
* ``SessionStarted`` / authorization / ``ChargingStateChanged`` / periodic meter samples /
  ``SessionEnded`` → TransactionEvent Started / Updated / Ended, each written to the
  durable outbox first (seqNo and the open transaction committed with it) and delivered
  in order by its :class:`~secc.ocpp_bridge.queue.Sender`.  Events are processed by one
  worker task in arrival order; SQLite work runs in a thread.
* A transaction still open at start-up (the process died) is ended with stoppedReason
  PowerLoss, triggerReason AbnormalCondition.
* Station certificates: SignCertificate with a fresh key (retried per
  CertSigningWaitMinimum / CertSigningRepeatTimes until CertificateSigned arrives),
  renewal when ``certs.expiry`` says it is due, GetCertificateStatus for the SECC chain's
  OCSP cache.  CSMS commands are in :mod:`secc.ocpp_bridge.csms_handlers`.

One OCPP connection serves the whole station: the first bridge built (the *primary*)
owns the link, the outbox sender, the CSMS handlers and the certificate work; a bridge
built with ``primary=`` serves one more EVSE (``BridgeConfig.evse_id``) over the same
client, outbox, device model, auth store and certificate store.  Each EVSE keeps its own
token, open transaction and seqNo counter (outbox state key ``tx`` for EVSE 1,
``tx/<evseId>`` for the others); CSMS commands are routed by evseId / transactionId.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import functools
import logging
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509

from certs import csr as csr_mod
from certs.expiry import expiry_report
from certs.ocsp import OcspRequestData, hash_data, judge_response, responder_url
from certs.store import Store, StoreError
from hal.hooks import StationHooks
from hal.types import PlcStatus
from secc.core.actions import (
    Action,
    ChargingStateChanged,
    EvChargingNeeds,
    EvChargingSchedule,
    MeteringReceipt,
    RequestAuthorization,
    RequestCertificate,
    SessionEnded,
    SessionStarted,
)
from secc.core.events import (
    AuthorizationResult,
    CertificateResult,
    Event,
    EvseStatus,
    StopRequested,
)
from secc.maintenance import CsrSubject, SignedInstaller, SignedOutcome
from secc.ocpp_bridge import mapping
from secc.ocpp_bridge.authorization import (
    AuthStore,
    OfflinePolicy,
    group_of,
    local_entry,
    offline_decision,
)
from secc.ocpp_bridge.cert_trial import ClientCertTrial
from secc.ocpp_bridge.client import CallFailed, NotConnected, OcppClient
from secc.ocpp_bridge.device_model import (
    COMM,
    ISO,
    SEC,
    DeviceModel,
    apply_device_model,
    message_limits,
)
from secc.ocpp_bridge.mapping import MappingError, MeterSample, TxEvent
from secc.ocpp_bridge.plc_link import link_event
from secc.ocpp_bridge.queue import (
    DurableQueue,
    QueuedMessage,
    QueueError,
    Rejected,
    Sender,
    SenderPolicy,
)
from secc.ocpp_bridge.security_events import (
    MEMORY_EXHAUSTION,
    RECONFIGURATION,
    SECURITY_LOG,
    STARTUP,
    SecurityEvents,
    SecurityLog,
)
from secc.ocpp_bridge.smart_charging import SmartCharging

if TYPE_CHECKING:
    from secc.ocpp_bridge.operations import Operations

log = logging.getLogger(__name__)
TX_KEY = "tx"
MASTER_CANNOT_START = "a Master Pass (AuthCtrlr.MasterPassGroupId) cannot start a transaction"


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    evse_id: int = 1
    connector_id: int = 1
    authorize_with: str = "hash"  # "hash" (iso15118CertificateHashData) or "pem"
    authorize_timeout: float = 10.0
    ev_certificate_budget: float = 4.0
    meter_interval: float | None = None  # None: SampledDataCtrlr.TxUpdatedInterval
    maintenance_interval: float = 86400.0  # renewal check and OCSP refresh
    renew_before_days: int = 30
    link_retry: float = 1.0  # pause after a timeout / lost link before resending
    connector_type: str = "cType2"  # ConnectorEnumType-like label for the Connector report
    # the EVSE can take energy back (ISO 15118-20 BPT): meter values carry the export
    # measurands in every transaction (from the Started event on)
    bidirectional: bool = False
    # the most the EVSE delivers (watts, its configured limits): the base of the composite
    # schedule (K08); None: unknown (GetCompositeSchedule needs a profile then)
    max_power_w: float | None = None


@dataclass(frozen=True, slots=True)
class _Token:
    id_token: str
    kind: str
    remote_start_id: int | None = None
    preauthorized: bool = False
    # K05: RequestStartTransaction's TxProfile, installed once the transaction exists
    profile: dict[str, object] | None = None


def _accepted_group(response: dict[str, object]) -> str | None:
    """idTokenInfo.groupIdToken.idToken of an Authorize answer that is Accepted."""
    info = response.get("idTokenInfo")
    if not isinstance(info, dict) or info.get("status") != "Accepted":
        return None
    return group_of(info)


def _token_info(response: dict[str, object]) -> tuple[str, str | None] | None:
    """idTokenInfo's status and groupIdToken of an Authorize answer (None: no status)."""
    info = response.get("idTokenInfo")
    status = info.get("status") if isinstance(info, dict) else None
    if not isinstance(info, dict) or not isinstance(status, str):
        return None
    return status, group_of(info)


class Bridge:
    def __init__(
        self,
        config: BridgeConfig,
        client: OcppClient,
        queue: DurableQueue,
        auth: AuthStore,
        device_model: DeviceModel,
        emit: Callable[[Event], None],
        *,
        store: Store | None = None,
        utc_now: Callable[[], dt.datetime] | None = None,
        primary: Bridge | None = None,
        hooks: StationHooks | None = None,
    ) -> None:
        from secc.ocpp_bridge.csms_handlers import make_handlers
        from secc.ocpp_bridge.operations import Operations

        self.config = config
        self.client = client
        self.queue = queue
        self.auth = auth
        self.dm = device_model
        self.store = store
        self._emit = emit
        self.utc_now = utc_now or (lambda: dt.datetime.now(dt.UTC))
        self.primary = primary or self
        self.evses: dict[int, Bridge] = self.primary.evses if primary is not None else {}
        if config.evse_id in self.evses:
            raise ValueError(f"EVSE {config.evse_id} already has a bridge")
        self.evses[config.evse_id] = self
        self._tx_key = TX_KEY if config.evse_id == 1 else f"{TX_KEY}/{config.evse_id}"
        self.sender: Sender = (
            primary.sender
            if primary is not None
            else Sender(
                queue,
                self._send_queued,
                client.online,
                policy=self._sender_policy,
                on_response=self._on_tx_response,
            )
        )
        self._work: asyncio.Queue[Callable[[], object]] = asyncio.Queue()
        self._meter_wake = asyncio.Event()
        self._meter = MeterSample()
        self._status: EvseStatus | None = None
        self._discharged = False  # the open transaction has seen the EV discharge
        self._soc: int | None = None
        self._token: _Token | None = None
        self._plugged = False  # a session runs on this EVSE (SessionStarted .. SessionEnded)
        self._authorized = False  # the open transaction's token is authorized
        self._waiting_eim: RequestAuthorization | None = None
        self._remote_stop = False
        self._deauthorized = False
        self._stop_override: tuple[str, str] | None = None  # (stoppedReason, triggerReason)
        # E07: the token that authorized the open transaction, its group (from the CSMS's
        # Authorize answer) and the token that stopped it locally
        self._tx_id_token: tuple[str, str] | None = None
        self._tx_group: str | None = None
        self._auth_group: str | None = None
        self._stop_token: tuple[str, str] | None = None
        self._signed: dict[str, asyncio.Event] = {}
        self.opening: str | None = None  # the transactionId being opened (K05)
        self.signing: set[str] = set()
        stored = queue.get_state(self._tx_key)
        self._tx: dict[str, object] | None = stored if isinstance(stored, dict) else None
        self.cert_trial: ClientCertTrial | None = None  # a renewed client certificate (A02)
        self.installer: SignedInstaller | None = None  # CertificateSigned (A02/A03)
        if primary is not None:
            self.security: SecurityEvents = primary.security
            self.ops: Operations = primary.ops
            return  # the station-level parts belong to the primary
        client.handlers.update(make_handlers(self))
        self.smart = SmartCharging(self)  # K: the CSMS's charging profiles (station-wide)
        client.handlers.update(self.smart.handlers())
        self.security = SecurityEvents(
            queue,
            SecurityLog(queue.path.parent / SECURITY_LOG),
            self.sender.wake,
            self.utc_now,
        )
        self.ops = Operations(self, hooks or StationHooks(), self.security)  # B11/B12, G03/G04
        client.handlers.update(self.ops.handlers(client.handlers))
        if store is not None:  # A02.FR.10/28/29: the old client certificate until proven
            self.cert_trial = ClientCertTrial(
                store, queue, client, self.security, self.ops.connection_round
            )
            client.on_connected.append(self.cert_trial.connected)
            client.on_connect_failed.append(self.cert_trial.connect_failed)
            # CertificateSigned (A02/A03): the same checks and trial as `secc renew`
            self.installer = SignedInstaller(
                store,
                self.utc_now,
                subject=self._csr_subject,
                client=client,
                trial=self.cert_trial,
                security=self.security,
            )
            self.installer.on_accepted.append(self._certificate_accepted)
        # the device model is in force from the first connection on (A01, B05)
        client.config = apply_device_model(client.config, device_model)
        self.ops.keep_profile_timeout()
        device_model.on_change.append(self._variable_changed)
        identity = client.config.charging_station
        device_model.computed[("ChargingStation", "Model")] = lambda: str(identity.get("model"))
        device_model.computed[("ChargingStation", "VendorName")] = lambda: str(
            identity.get("vendorName")
        )
        device_model.computed[(SEC, "Identity")] = lambda: client.config.station_id
        device_model.computed[("LocalAuthListCtrlr", "Entries")] = lambda: str(auth.list_entries())
        device_model.computed[(SEC, "SecurityProfile")] = lambda: str(
            client.config.security_profile
        )
        if store is not None:
            device_model.computed[(SEC, "CertificateEntries")] = lambda: str(
                len(store.all_certificates())
            )
        client.on_online.append(self._on_online)
        client.call_limits = functools.partial(message_limits, device_model)
        client.connector_status = lambda evse, connector: self.ops.status(
            evse,
            connector,
            "Occupied"
            if (b := self.evses.get(evse)) is not None and b.transaction is not None
            else "Available",
        )

    def _sender_policy(self) -> SenderPolicy:
        return SenderPolicy(
            max_attempts=max(1, self.dm.number(COMM, "MessageAttemptsTransactionEvent")),
            retry_interval=float(self.dm.number(COMM, "MessageAttemptIntervalTransactionEvent")),
            link_retry=self.config.link_retry,
        )

    def _variable_changed(self, key: tuple[str, str], value: str) -> None:
        """A variable the CSMS set: apply what the running station uses."""
        if key[0] in (COMM, SEC):
            self.client.config = apply_device_model(self.client.config, self.dm)
            self.ops.keep_profile_timeout()
        if key == (COMM, "HeartbeatInterval"):
            self.client.set_heartbeat_interval(int(value))
        if key[0] == SEC:  # A04: a security setting changed
            self.client.spawn(
                self.security.record(RECONFIGURATION, f"{key[0]}.{key[1]} set by the CSMS"),
                "SecurityEventNotification",
            )
        if key == ("AlignedDataCtrlr", "Interval"):
            self.ops.aligned_wake.set()
        if key == ("SampledDataCtrlr", "TxUpdatedInterval"):
            for bridge in self.evses.values():
                bridge._meter_wake.set()

    # --- public interface for the runtime ----------------------------------------------------

    async def run(self) -> None:
        """Run this EVSE's transaction work (and, on the primary, the link, the outbox
        sender and the certificate maintenance) until cancelled."""
        await self._recover()
        if self.primary is self:  # A04: the station (re)started
            await self.security.record(STARTUP, f"boot reason {self.client.boot_reason}")
        async with asyncio.TaskGroup() as group:
            if self.primary is self:
                group.create_task(self.client.run())
                group.create_task(self.sender.run())
                group.create_task(self._maintenance_loop())
                group.create_task(self.ops.aligned_loop())
                group.create_task(self.ops.tamper_loop())
            group.create_task(self._worker())
            group.create_task(self._meter_loop())

    def perform(self, action: Action) -> None:
        """Take a core action (non-blocking); actions not meant for OCPP are ignored."""
        if isinstance(action, (RequestAuthorization, SessionStarted)) and self._refused():
            if isinstance(action, RequestAuthorization):  # G03/G04: no new session here
                reason = "EVSE unavailable (ChangeAvailability or Reset)"
                self._emit(AuthorizationResult(False, action.id_token, None, reason))
            return
        if isinstance(action, RequestAuthorization):
            self.client.spawn(self._authorize(action), "authorization")
        elif isinstance(action, RequestCertificate):
            self.client.spawn(self._ev_certificate(action), "Get15118EVCertificate")
        elif isinstance(action, SessionStarted):
            self._plugged = True
            self._work.put_nowait(self._tx_started)
            self.primary.smart.session_started(self.config.evse_id)
        elif isinstance(action, ChargingStateChanged):
            self._work.put_nowait(lambda: self._tx_charging(action))
        elif isinstance(action, (EvChargingNeeds, EvChargingSchedule)):
            self.primary.smart.ev_reported(self.config.evse_id, action)  # K15, K17
        elif isinstance(action, SessionEnded):
            self._plugged = False
            self._work.put_nowait(lambda: self.primary.smart.session_ended(self.config.evse_id))
            self._work.put_nowait(lambda: self._tx_ended(action))
        elif isinstance(action, MeteringReceipt):
            self._work.put_nowait(lambda: self._tx_receipt(action))

    def hold_remote_token(self, token: _Token, timeout: float) -> None:
        """F02 (remote start first): the token waits for the EV at most ``timeout``
        seconds (TxCtrlr.EVConnectionTimeOut); a car plugged in later is not charged on
        it.  A session that started meanwhile keeps it."""
        self._token = token

        def expire() -> None:
            if self._token is token and not self._plugged and self.transaction is None:
                log.info(
                    "EVSE %d: no EV within EVConnectionTimeOut (%g s): remote start %s ends",
                    self.config.evse_id,
                    timeout,
                    token.remote_start_id,
                )
                self._token = None

        asyncio.get_running_loop().call_later(max(0.0, timeout), expire)

    def _refused(self) -> bool:
        """No new session on this EVSE (inoperative, or a reset is pending)."""
        return self.transaction is None and not self.ops.operative(
            self.config.evse_id, self.config.connector_id
        )

    def evse_status(self, status: EvseStatus) -> None:
        """A meter snapshot from the HAL (used for the transaction's meter values)."""
        self._status = status
        if status.power_w < 0 or status.present_current < 0:
            self._discharged = True
        self._meter = self._sample(status)

    def _sample(self, status: EvseStatus) -> MeterSample:
        both = self.config.bidirectional or self._discharged
        return MeterSample.of(
            status.energy_wh,
            status.power_w,
            status.present_current,
            status.present_voltage,
            self._soc,
            energy_export_wh=status.energy_export_wh if both else None,
        )

    def plc_link(self, status: PlcStatus) -> None:
        """The EVSE's PLC link changed (SLAC, D-LINK_READY): a NotifyEvent through the
        outbox, in order with the transaction's events (:mod:`.plc_link`)."""
        self._work.put_nowait(lambda: self._notify_link(status))

    async def _notify_link(self, status: PlcStatus) -> None:
        tx = self.transaction
        payload = link_event(
            status,
            evse_id=self.config.evse_id,
            now=self.utc_now(),
            transaction_id=str(tx["id"]) if tx is not None else None,
        )
        await self.queue.off_loop(self.queue.enqueue, "NotifyEvent", payload)
        self.sender.wake()

    def present_token(self, id_token: str, kind: str = "ISO14443") -> None:
        """An RFID card (or other EIM token) presented at the station: the token of the
        next authorization, or, while an authorized transaction runs, a request to stop
        it (E07)."""
        if self._authorized and self._tx is not None and self._tx_id_token is not None:
            self.client.spawn(self._local_stop(id_token, kind), "local stop (E07)")
            return
        if self.dm.value("AuthCtrlr", "MasterPassGroupId") and any(
            b._tx is not None for b in self.primary.evses.values()
        ):  # C16.FR.02: a Master Pass stops the station's transactions wherever presented
            self.client.spawn(self._master_or_token(id_token, kind), "Master Pass check (C16)")
            return
        self._take_token(id_token, kind)

    def _take_token(self, id_token: str, kind: str) -> None:
        """The token of this EVSE's next (or waiting) authorization."""
        self._token = _Token(id_token, kind)
        if self._waiting_eim is not None:
            request, self._waiting_eim = self._waiting_eim, None
            self.client.spawn(self._authorize(request), "authorization")

    async def _master_or_token(self, id_token: str, kind: str) -> None:
        """A token presented while a transaction runs somewhere in the station but not
        authorized on this EVSE: a Master Pass stops them all (C16.FR.02); any other
        token is this EVSE's next token."""
        status, group = await self._token_status(id_token, kind)
        if status == "Accepted" and self._master_pass(group):
            self._master_stop(id_token, kind)
            if self._waiting_eim is not None:  # C16.FR.03: nor does it start this session
                self._waiting_eim = None
                self._result(AuthorizationResult(False, id_token, None, MASTER_CANNOT_START), kind)
            return
        self._take_token(id_token, kind)

    def emit(self, event: Event) -> None:
        self._emit(event)

    async def _local_stop(self, id_token: str, kind: str) -> None:
        """E07: a token presented during an authorized transaction stops it when it is
        the token that authorized it (IdTokens compare case-insensitively) or a valid
        token of the same groupIdToken as that one (C09.FR.03; one the CSMS does not
        accept does not, C09.FR.11); any other token is ignored. The Ended event then has
        triggerReason StopAuthorized, stoppedReason Local and the presented idToken
        (E07.FR.02). A valid token whose group is AuthCtrlr.MasterPassGroupId stops
        every transaction of the station (C16.FR.02: no UI to choose one), each Ended
        with stoppedReason MasterPass (errata 2025-01, C16). The token's status and group
        come from the CSMS (Authorize), or, when it cannot be asked, from the local list
        or the authorization cache (:func:`~.authorization.local_entry`)."""
        started_by = self._tx_id_token
        if started_by is None or self._tx is None:
            return
        same = id_token.casefold() == started_by[0].casefold() and kind == started_by[1]
        if not same:
            status, group = await self._token_status(id_token, kind)
            ours = self._tx_group
            if status == "Accepted" and self._master_pass(group):
                self._master_stop(id_token, kind)
                return
            if (
                status != "Accepted"
                or group is None
                or ours is None
                or group.casefold() != ours.casefold()
            ):
                log.info(
                    "idToken %s presented during transaction %s: neither its token nor "
                    "a valid one of its group; the transaction goes on",
                    id_token,
                    (self._tx or {}).get("id"),
                )
                return
        if self._tx is None or self._stop_override is not None:
            return
        self._stop_override = ("Local", "StopAuthorized")
        self._stop_token = (id_token, kind)
        self._emit(StopRequested(f"idToken {id_token} presented: local stop (E07)"))

    def _master_pass(self, group: str | None) -> bool:
        """The group is AuthCtrlr.MasterPassGroupId (IdTokens compare case-insensitively)."""
        master = self.dm.value("AuthCtrlr", "MasterPassGroupId")
        return bool(master) and group is not None and group.casefold() == master.casefold()

    def _master_stop(self, id_token: str, kind: str) -> None:
        """C16.FR.02: a Master Pass stops every ongoing transaction of the station."""
        for bridge in list(self.primary.evses.values()):
            if bridge._tx is None or bridge._stop_override is not None:
                continue
            bridge._stop_override = ("MasterPass", "StopAuthorized")
            bridge._stop_token = (id_token, kind)
            bridge._emit(StopRequested(f"idToken {id_token} (Master Pass) presented: stop (C16)"))

    async def _token_status(self, id_token: str, kind: str) -> tuple[str | None, str | None]:
        """The status and groupIdToken of a token presented to stop: the CSMS's Authorize
        answer (cached, C10), or without an answer what the local list or the cache
        hold (C09); (None, None) when neither knows it."""
        request = RequestAuthorization(kind, id_token)
        try:
            payload = mapping.authorize_request(request)
            response = await self.client.call(
                "Authorize", payload, timeout=self.config.authorize_timeout
            )
        except (NotConnected, TimeoutError) as exc:
            log.info("Authorize of %s for a stop not answered (%s): local data", id_token, exc)
            known = await asyncio.to_thread(
                local_entry, id_token, kind, self._policy(), self.auth, self.utc_now()
            )
            return (known[0], known[1]) if known is not None else (None, None)
        except (CallFailed, MappingError) as exc:
            log.info("Authorize of %s for a stop failed: %s", id_token, exc)
            return None, None
        info = _token_info(response)
        if info is None:
            return None, None
        self._cache(id_token, kind, info[0], info[1])
        return info

    def _cache(self, id_token: str, kind: str, status: str, group: str | None) -> None:
        """C10: the CSMS's verdict (and group) into the authorization cache."""
        if not self.dm.flag("AuthCacheCtrlr", "Enabled"):
            return
        lifetime = dt.timedelta(seconds=self.dm.number("AuthCacheCtrlr", "LifeTime"))
        try:
            self.auth.remember(id_token, kind, status, self.utc_now() + lifetime, group)
        except sqlite3.Error as exc:
            log.warning("authorization cache: %s", exc)

    @property
    def transaction(self) -> dict[str, object] | None:
        """The open transaction (id, next seqNo), as last committed with the outbox."""
        return self._tx

    # --- authorization -----------------------------------------------------------------------

    def _policy(self) -> OfflinePolicy:
        return OfflinePolicy(
            contract_validation_offline=self.dm.flag(ISO, "ContractValidationOffline"),
            local_list_enabled=self.dm.flag("LocalAuthListCtrlr", "Enabled"),
            local_authorize_offline=self.dm.flag("AuthCtrlr", "LocalAuthorizeOffline"),
            cache_enabled=self.dm.flag("AuthCacheCtrlr", "Enabled"),
            offline_unknown_allowed=self.dm.flag("AuthCtrlr", "OfflineTxForUnknownIdEnabled"),
        )

    def _mo_roots(self) -> list[x509.Certificate]:
        return self.store.roots("mo") if self.store else []

    def _authorize_payload(self, request: RequestAuthorization) -> dict[str, object]:
        if request.kind != "eMAID" or not request.certificate_chain:
            return mapping.authorize_request(request)
        chain = mapping.load_chain(request.certificate_chain)
        central = self.dm.flag(ISO, "CentralContractValidationAllowed")
        if self.config.authorize_with == "pem" and central:
            return mapping.authorize_request(request, certificate_pem=mapping.pem_chain(chain))
        entries = mapping.contract_hash_data(chain, self._mo_roots(), request.hash_algorithm)
        return mapping.authorize_request(request, hash_data_entries=entries)

    async def _authorize(self, request: RequestAuthorization) -> None:
        if not self.dm.flag("AuthCtrlr", "Enabled"):  # C01: no authorization at all
            token = self._token if request.kind != "eMAID" else None
            value = token.id_token if token is not None else request.id_token
            kind = token.kind if token is not None else mapping.token_type(request)
            result = AuthorizationResult(True, value, None, "AuthCtrlr.Enabled is false")
            self._result(result, mapping.token_type(RequestAuthorization(kind, value)))
            return
        if request.kind == "eMAID" and not self.dm.flag(ISO, "PnCEnabled"):
            self._result(AuthorizationResult(False, request.id_token, None, "PnCEnabled is false"))
            return
        if request.kind != "eMAID":
            token = self._token
            if token is None:
                self._waiting_eim = request  # answered when a token is presented
                return
            request = RequestAuthorization(token.kind, token.id_token)
            if token.preauthorized:
                result = AuthorizationResult(True, token.id_token, None, "remote start")
                self._result(result, mapping.token_type(request))
                return
        kind = mapping.token_type(request)
        try:
            payload = self._authorize_payload(request)
            response = await self.client.call(
                "Authorize", payload, timeout=self.config.authorize_timeout
            )
            result = mapping.authorization_result(request, response)
            self._auth_group = _accepted_group(response)
        except (NotConnected, TimeoutError) as exc:
            log.info("Authorize not answered (%s): deciding offline", exc)
            result = await asyncio.to_thread(
                offline_decision,
                request,
                kind,
                self._policy(),
                self.auth,
                self._mo_roots(),
                self.utc_now(),
            )
            if result.accepted:  # the group the local list or the cache hold (C09)
                known = await asyncio.to_thread(
                    local_entry, request.id_token, kind, self._policy(), self.auth, self.utc_now()
                )
                self._auth_group = known[1] if known is not None else None
        except (CallFailed, MappingError) as exc:
            result = AuthorizationResult(False, request.id_token, None, f"CSMS error: {exc}")
        else:
            info = _token_info(response)
            if info is not None:
                cached = "Accepted" if result.accepted else info[0]
                if info[0] == "Accepted" and not result.accepted:
                    cached = "Invalid"  # the certificate failed: do not cache the token as good
                self._cache(request.id_token, kind, cached, info[1])
        if result.accepted and self._master_pass(self._auth_group):
            # C16.FR.03: a Master Pass may stop transactions, never start one
            self._auth_group = None
            result = AuthorizationResult(
                False,
                result.id_token,
                result.certificate_status,
                MASTER_CANNOT_START,
            )
        self._result(result, kind)

    def _result(self, result: AuthorizationResult, kind: str = "eMAID") -> None:
        self._emit(result)
        self._deauthorized = not result.accepted
        group, self._auth_group = self._auth_group, None
        if result.accepted:
            self._tx_id_token, self._tx_group = (result.id_token, kind), group
            token = self._token if kind != "eMAID" else None
            remote = token.remote_start_id if token is not None else None
            self._work.put_nowait(lambda: self._tx_authorized(result.id_token, kind, remote))

    # --- contract certificates in the car (M01, M02) -----------------------------------------

    async def _ev_certificate(self, request: RequestCertificate) -> None:
        budget = self.config.ev_certificate_budget
        enabled = self.dm.flag(ISO, "ContractCertificateInstallationEnabled")
        if not enabled:
            self._emit(CertificateResult(None, "ContractCertificateInstallationEnabled is false"))
            return
        try:
            payload = mapping.get_15118_ev_certificate_request(request)
            response = await self.client.call("Get15118EVCertificate", payload, timeout=budget)
            result = mapping.certificate_result(response)
        except TimeoutError:
            result = CertificateResult(None, f"CSMS did not answer within {budget:g} s")
        except (NotConnected, CallFailed, MappingError) as exc:
            result = CertificateResult(None, str(exc))
        self._emit(result)

    # --- transactions -------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            job = await self._work.get()
            try:
                outcome = job()
                if asyncio.iscoroutine(outcome):
                    await outcome
            except (MappingError, sqlite3.Error, OSError, QueueError) as exc:
                log.error("transaction event lost: %s", exc)

    async def _enqueue(
        self, event_type: str, trigger: str, *, tx: dict[str, object], **fields: object
    ) -> QueuedMessage:
        seq = int(str(tx["seq"]))
        if "meter" in fields and "measurands" not in fields:
            which = {"Started": "TxStartedMeasurands", "Ended": "TxEndedMeasurands"}
            variable = which.get(event_type, "TxUpdatedMeasurands")
            fields["measurands"] = self.dm.members("SampledDataCtrlr", variable)
        event = TxEvent(
            event_type,
            str(tx["id"]),
            seq,
            trigger,
            self.utc_now(),
            evse_id=self.config.evse_id,
            connector_id=self.config.connector_id,
            offline=not self.client.online.is_set(),
            **fields,  # type: ignore[arg-type]
        )
        payload = mapping.transaction_event(event)
        new_state = None if event_type == "Ended" else {**tx, "seq": seq + 1}
        enqueue = functools.partial(
            self.queue.enqueue, "TransactionEvent", payload, state={self._tx_key: new_state}
        )
        episodes = self.queue.full_episodes
        message = await self.queue.off_loop(enqueue)
        self._tx = new_state
        self.sender.wake()
        if self.queue.full_episodes != episodes:  # the disk just filled up: A04 event
            why = f"OCPP outbox: {self.queue.full}; events kept in memory"
            self.client.spawn(self.security.record(MEMORY_EXHAUSTION, why), "security event")
        return message

    async def _recover(self) -> None:
        tx = self._tx
        if tx is not None:
            log.warning("transaction %s was open at start-up: ending it (PowerLoss)", tx["id"])
            await self._enqueue(
                "Ended",
                "AbnormalCondition",
                tx=tx,
                stopped_reason="PowerLoss",
                meter=self._meter,
                meter_context="Transaction.End",
            )

    async def _tx_started(self) -> None:
        if self.transaction is not None:
            return
        token = self._token
        tx: dict[str, object] = {"id": str(uuid.uuid4()), "seq": 0}
        if token is not None and token.remote_start_id is not None:
            tx["remoteStartId"] = token.remote_start_id
        self._remote_stop = self._deauthorized = self._authorized = False
        self.opening = str(tx["id"])  # until the Started event is committed
        applied = token is not None and token.profile is not None
        if token is not None and token.profile is not None:  # K05, before the EV asks
            self.primary.smart.apply_start_profile(
                self.config.evse_id, token.profile, self.opening, starting=True
            )
            self._token = token = dataclasses.replace(token, profile=None)
        try:
            await self._enqueue(
                "Started",
                "RemoteStart" if token and token.remote_start_id is not None else "CablePluggedIn",
                tx=tx,
                charging_state="EVConnected",
                remote_start_id=token.remote_start_id if token else None,
                meter=self._meter,
                meter_context="Transaction.Begin",
            )
        except BaseException:
            if applied:  # no transaction: its TxProfile goes too
                self.primary.smart.session_ended(self.config.evse_id)
            raise
        finally:
            self.opening = None
        self._connector_changed("Occupied")

    def _connector_changed(self, status: str) -> None:
        status = self.ops.status(self.config.evse_id, self.config.connector_id, status)
        if self.client.online.is_set():
            self.client.spawn(
                self.client.status_notification(
                    self.config.evse_id, self.config.connector_id, status
                ),
                "StatusNotification",
            )

    async def _tx_authorized(self, id_token: str, kind: str, remote_start_id: int | None) -> None:
        """Updated with the token; RemoteStart when a RequestStartTransaction authorized a
        transaction that had started before it (F01: the cable first)."""
        tx = self.transaction
        self._authorized = True
        if tx is None or not id_token:  # no token to report (AuthCtrlr.Enabled false)
            return
        late_remote = remote_start_id is not None and tx.get("remoteStartId") is None
        await self._enqueue(
            "Updated",
            "RemoteStart" if late_remote else "Authorized",
            tx=tx,
            id_token=id_token,
            id_token_type=kind,
            remote_start_id=remote_start_id if late_remote else None,
        )

    async def _tx_charging(self, action: ChargingStateChanged) -> None:
        if action.soc is not None:
            self._soc = action.soc
            self._meter = dataclasses.replace(self._meter, soc=action.soc)
        tx = self.transaction
        if tx is not None:
            await self._enqueue(
                "Updated",
                "ChargingStateChanged",
                tx=tx,
                charging_state="Charging" if action.charging else "EVConnected",
                meter=self._meter,
            )

    async def _tx_ended(self, action: SessionEnded) -> None:
        tx = self.transaction
        if tx is None:
            return
        remote = self._remote_stop
        reason = mapping.stopped_reason(action.reason, action.detail, remote=remote)
        trigger = mapping.end_trigger(action.reason, remote=remote)
        if self._deauthorized and not remote:  # E05: the CSMS (or Authorize) refused the id
            reason, trigger = "DeAuthorized", "Deauthorized"
        if self._stop_override is not None:  # B12: Reset Immediate; E07: a local stop
            (reason, trigger), self._stop_override = self._stop_override, None
        stopper, self._stop_token = self._stop_token, None
        token: dict[str, object] = (
            {"id_token": stopper[0], "id_token_type": stopper[1]}
            if stopper is not None and trigger == "StopAuthorized"
            else {}
        )
        await self._enqueue(
            "Ended",
            trigger,
            tx=tx,
            stopped_reason=reason,
            charging_state="EVConnected",
            meter=self._meter,
            meter_context="Transaction.End",
            **token,
        )
        self._token = None
        self._tx_id_token = self._tx_group = None
        self._authorized = False
        self._soc = None
        if self._discharged and self._status is not None:  # the next transaction: as configured
            self._discharged = False
            self._meter = self._sample(self._status)
        self._connector_changed("Available")
        self.ops.transaction_ended()

    async def _tx_receipt(self, receipt: MeteringReceipt) -> None:
        """The EV's signed meter receipt: an Updated event (SignedDataReceived) whose
        energy registers are the receipt's, each with the signedMeterValue."""
        tx = self.transaction
        if tx is None:
            log.warning("metering receipt without an open transaction: dropped")
            return
        # only what the EV signed: the charged energy and, in BPT, the discharged energy
        sample = MeterSample(
            energy_wh=receipt.energy_wh, energy_export_wh=receipt.discharged_energy_wh
        )
        try:
            signed: dict[str, str] | None = mapping.signed_meter_value(receipt)
        except MappingError as exc:
            log.error("metering receipt sent unsigned: %s", exc)
            signed = None
        when: dt.datetime | None = None
        if receipt.timestamp > 0:
            try:
                when = dt.datetime.fromtimestamp(receipt.timestamp, dt.UTC)
            except (OverflowError, OSError, ValueError):
                log.warning("metering receipt time stamp %d is out of range", receipt.timestamp)
        await self._enqueue(
            "Updated",
            "SignedDataReceived",
            tx=tx,
            meter=sample,
            meter_context="Other",
            measurands=None,
            signed=signed,
            meter_time=when,
        )

    async def tx_triggered(self) -> None:
        """TriggerMessage(TransactionEvent): an Updated event with trigger ``Trigger``."""
        tx = self.transaction
        if tx is not None:
            await self._enqueue(
                "Updated", "Trigger", tx=tx, meter=self._meter, meter_context="Trigger"
            )

    async def _meter_loop(self) -> None:
        while True:
            interval = self.config.meter_interval
            if interval is None:
                interval = float(self.dm.number("SampledDataCtrlr", "TxUpdatedInterval") or 60)
            self._meter_wake.clear()
            try:  # a new TxUpdatedInterval starts a new wait
                await asyncio.wait_for(self._meter_wake.wait(), interval)
                continue
            except TimeoutError:
                pass
            tx = self.transaction
            if tx is not None:
                tx_id = str(tx["id"])
                self._work.put_nowait(lambda tx_id=tx_id: self._periodic(tx_id))  # type: ignore[misc]

    async def _periodic(self, tx_id: str) -> None:
        tx = self.transaction
        if tx is not None and tx["id"] == tx_id:
            await self._enqueue("Updated", "MeterValuePeriodic", tx=tx, meter=self._meter)

    async def _aligned_tx(self, tx_id: str, measurands: frozenset[str]) -> None:
        """J01: the clock-aligned sample of an open transaction (TransactionEvent)."""
        tx = self.transaction
        if tx is not None and tx["id"] == tx_id:
            await self._enqueue(
                "Updated",
                "MeterValueClock",
                tx=tx,
                meter=self._meter,
                meter_context="Sample.Clock",
                measurands=measurands,
            )

    async def _send_queued(
        self, action: str, payload: dict[str, object], message_id: str
    ) -> dict[str, object]:
        try:
            return await self.client.call(action, payload, message_id=message_id)
        except CallFailed as exc:
            raise Rejected(str(exc)) from exc

    def _on_tx_response(self, message: QueuedMessage, response: dict[str, object]) -> None:
        if message.action != "TransactionEvent":
            return
        try:
            status = mapping.transaction_event_response_status(response)
        except MappingError as exc:
            log.warning("TransactionEventResponse: %s", exc)
            return
        info = message.payload.get("transactionInfo")
        tx_id = info.get("transactionId") if isinstance(info, dict) else None
        owner = self.by_transaction(tx_id)  # the EVSE whose transaction is still open
        if (
            status not in (None, "Accepted")
            and owner is not None
            and self.dm.flag("TxCtrlr", "StopTxOnInvalidId")
        ):
            from secc.core.events import StopRequested

            owner._deauthorized = True
            owner._emit(StopRequested(f"CSMS: idToken {status}"))

    def by_transaction(self, transaction_id: object) -> Bridge | None:
        """The station's EVSE bridge whose open transaction has this id."""
        for bridge in self.evses.values():
            tx = bridge.transaction
            if tx is not None and tx["id"] == transaction_id:
                return bridge
        return None

    # --- station certificates ----------------------------------------------------------------

    def _on_online(self) -> None:
        # B01: the heartbeat interval of the CSMS's answer is the one in force (and reported)
        interval = str(self.client.heartbeat_interval)
        if self.dm.value(COMM, "HeartbeatInterval") != interval:
            self.dm.set_local(COMM, "HeartbeatInterval", interval)
        self.ops.booted()
        self.sender.wake()

    def v2g_renewals(self) -> list[str]:
        """The SECC leaves a TriggerMessage(SignV2GCertificate) renews: the ISO 15118-2
        one, and the ISO 15118-20 one (:data:`certs.csr.ISO20_V2G`) when the store serves
        a ``v2g20`` chain."""
        kinds = ["V2GCertificate"]
        if self.store is not None and "v2g20" in self.store.leaf_uses():
            kinds.append(csr_mod.ISO20_V2G)
        return kinds

    async def sign_certificate(self, certificate_type: str) -> bool:
        """SignCertificate until CertificateSigned installs a chain (A02/A03, M03).

        ``certificate_type`` is an OCPP CertificateSigningUseEnumType or
        :data:`certs.csr.ISO20_V2G` (the -20 SECC leaf: a CSR with the current ``v2g20``
        leaf's key algorithm, sent as ``V2GCertificate``)."""
        if self.store is None or certificate_type in self.signing:
            return False
        v2g = certificate_type in ("V2GCertificate", csr_mod.ISO20_V2G)
        if v2g and not self.dm.flag(ISO, "V2GCertificateInstallationEnabled"):
            log.warning("V2GCertificateInstallationEnabled is false: no SignCertificate")
            return False
        self.signing.add(certificate_type)
        try:
            wait = float(max(1, self.dm.number(SEC, "CertSigningWaitMinimum")))
            for _attempt in range(self.dm.number(SEC, "CertSigningRepeatTimes") + 1):
                event = self._signed[certificate_type] = asyncio.Event()
                try:
                    request = await asyncio.to_thread(self._csr, certificate_type)
                except (csr_mod.CsrError, StoreError) as exc:
                    log.warning("%s: no CSR made: %s", certificate_type, exc)
                    return False
                ocpp_type = "V2GCertificate" if v2g else certificate_type
                response = await self.client.call(
                    "SignCertificate", {"csr": request, "certificateType": ocpp_type}
                )
                if response.get("status") == "Accepted":
                    try:
                        await asyncio.wait_for(event.wait(), wait)
                        return True
                    except TimeoutError:
                        log.warning("no CertificateSigned within %g s; asking again", wait)
                else:
                    await asyncio.sleep(wait)
                wait *= 2
            return False
        finally:
            self.signing.discard(certificate_type)

    def _csr(self, certificate_type: str) -> str:
        assert self.store is not None
        if certificate_type in ("V2GCertificate", csr_mod.ISO20_V2G):
            cn = self.dm.value(ISO, "SeccId") or self.client.config.station_id
            org = self.dm.value(ISO, "OrganizationName")
        else:
            cn = self.client.config.station_id
            org = self.dm.value(SEC, "OrganizationName")
        if certificate_type == csr_mod.ISO20_V2G:
            # the renewed leaf keeps the algorithm of the one in service (P-521 or Ed448)
            algorithm = csr_mod.iso20_algorithm(self.store.leaf_chain("v2g20")[0].public_key())
            return csr_mod.request_iso20_certificate(
                self.store,
                algorithm,
                common_name=cn,
                organization=org or "unknown",
                country=self.dm.value(ISO, "CountryName") or None,
            ).decode("ascii")
        return csr_mod.request_certificate(
            self.store,
            certificate_type,
            common_name=cn,
            organization=org or "unknown",
            country=self.dm.value(ISO, "CountryName") or None,
        ).decode("ascii")

    def certificate_signed(self, certificate_type: str, chain_pem: str) -> csr_mod.SignedResult:
        """CertificateSigned: checked (A02.FR.06; V2G: full path to a V2G root, DC=CPO),
        installed atomically with the pending key, checked again in a TLS context, rolled
        back on failure; a client certificate in use on a profile-3 link goes on trial
        (:class:`secc.maintenance.SignedInstaller`, shared with ``secc renew``)."""
        if self.installer is None:
            return csr_mod.SignedResult("Rejected", "no certificate store")
        outcome = self.installer.install(certificate_type, chain_pem)
        return csr_mod.SignedResult("Accepted" if outcome.accepted else "Rejected", outcome.reason)

    def _csr_subject(self) -> CsrSubject:
        """The names of the station's CSRs, which a signed leaf must carry (A02.FR.06)."""
        station_id = self.client.config.station_id
        return CsrSubject.of_device_model(self.dm, station_id, station_id)

    def _certificate_accepted(self, outcome: SignedOutcome) -> None:
        if outcome.certificate_type in self._signed:
            self._signed[outcome.certificate_type].set()

    async def refresh_ocsp(self) -> int:
        """GetCertificateStatus for the SECC chain; stores verified answers (M06)."""
        if self.store is None:
            return 0
        try:
            chain = self.store.leaf_chain("v2g")
        except StoreError:
            return 0
        roots = self.store.roots("v2g")
        stored = 0
        for i, cert in enumerate(chain):
            issuer = (
                chain[i + 1]
                if i + 1 < len(chain)
                else next((r for r in roots if r.subject == cert.issuer), None)
            )
            url = responder_url(cert)
            if issuer is None or not url:
                continue
            data = OcspRequestData(hash_data(cert, issuer), url).to_ocpp()
            response = await self.client.call("GetCertificateStatus", {"ocspRequestData": data})
            result = response.get("ocspResult")
            if response.get("status") != "Accepted" or not isinstance(result, str):
                continue
            try:
                der = base64.b64decode(result, validate=True)
            except ValueError:
                log.warning("GetCertificateStatus: ocspResult is not base64")
                continue
            judgement = judge_response(der, cert, issuer, self.utc_now())
            if judgement.status in {"good", "revoked"}:
                await asyncio.to_thread(self.store.store_ocsp_response, cert, der)
                stored += 1
            else:
                log.warning("GetCertificateStatus: %s", judgement.reason)
        return stored

    def renewal_due(self) -> list[str]:
        """Certificate types whose leaf is due for renewal (A02/M03 started by the station)."""
        if self.store is None:
            return []
        due = []
        labels = {
            "leaf/v2g[0]": "V2GCertificate",
            "leaf/v2g20[0]": csr_mod.ISO20_V2G,
            "leaf/csms[0]": "ChargingStationCertificate",
        }
        report = expiry_report(
            self.store.all_certificates(),
            self.utc_now(),
            renew_before_days=self.config.renew_before_days,
        )
        for entry in report:
            if entry.label in labels and entry.renewal_due:
                due.append(labels[entry.label])
        return due

    async def _maintenance_loop(self) -> None:
        while True:
            await self.client.online.wait()
            for certificate_type in await asyncio.to_thread(self.renewal_due):
                self.client.spawn(self._sign_logged(certificate_type), "SignCertificate")
            try:
                await self.refresh_ocsp()
            except (NotConnected, TimeoutError, CallFailed, StoreError, OSError) as exc:
                log.warning("OCSP refresh: %s", exc)
            await asyncio.sleep(self.config.maintenance_interval)

    async def _sign_logged(self, certificate_type: str) -> None:
        ok = await self.sign_certificate(certificate_type)
        log.info("%s renewal %s", certificate_type, "done" if ok else "not completed")
