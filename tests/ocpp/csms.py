"""A test CSMS on the ``ocpp`` package's server side, over real websockets on loopback.

Behaviour is steered through :class:`Behaviour` (boot answers, Authorize verdicts, slow or
failing Get15118EVCertificate, CallErrors, malformed answers).

It enforces OCPP 2.0.1 rules a production CSMS enforces, written from the specification
(each breach is appended to :attr:`TestCsms.violations`, which tests assert empty):

* every CALL the station sends validates against the request's JSON schema (the schemas
  shipped in ``ocpp/v201/schemas``);
* OCPP-J (part 4, 4.1.1 "synchronicity"): a sender has at most one outstanding CALL; the
  station must not send a CALL while one of its CALLs is unanswered.  CALLs are handled
  concurrently here (a slow answer must not hide a second CALL behind it);
* an IdToken is the pair (idToken, type) (IdTokenType): a TransactionEvent carrying a
  token the CSMS saw in Authorize or issued in RequestStartTransaction must carry the same
  type; with ``Behaviour.known_tokens`` the CSMS is a token database that answers
  Authorize and TransactionEvent idTokenInfo by that pair (Unknown when absent);
* the charging-station password (A01) is the one last accepted in SetVariables: a
  connection with another one is refused with HTTP 401;
* settings are in force as reported (B05/B06): a variable this CSMS set and got Accepted,
  and HeartbeatInterval from its BootNotification answer (B01), must read back the same
  in GetVariables; a TransactionEvent answered with a CallError is tried at most
  MessageAttemptsTransactionEvent times once this CSMS has set that variable (E13).

Every TransactionEvent is recorded raw (message id + camelCase payload, as it came off
the wire) so tests can check exactly-once and ordering;
:meth:`TestCsms.transaction_stream` deduplicates on (transactionId, seqNo) and asserts
that any repeat is a byte-identical resend.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import websockets
from ocpp.exceptions import InternalError, OCPPError
from ocpp.messages import Call, validate_payload
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from websockets.asyncio.server import Server, ServerConnection, serve

NOW = lambda: dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")  # noqa: E731


@dataclass
class Behaviour:
    boot_statuses: list[str] = field(default_factory=list)  # consumed one per boot; then Accepted
    boot_interval: int = 300
    heartbeat_interval: int = 300
    boot_delay: float = 0.0  # seconds before BootNotification is answered (a slow CSMS)
    authorize_status: str = "Accepted"
    certificate_status: str | None = "Accepted"
    authorize_error: bool = False
    authorize_malformed: bool = False
    authorize_delay: float = 0.0
    ev_cert_delay: float = 0.0
    ev_cert_status: str = "Accepted"
    ev_cert_exi: str = base64.b64encode(b"\x80\x98\x02exi-response").decode()
    ev_cert_error: bool = False
    # (schema version, action, exiRequest) -> exiResponse; default: ev_cert_exi
    ev_cert_answer: Callable[[str, str, str], str] | None = None
    tx_errors: int = 0  # answer this many TransactionEvents with a CallError
    tx_delay: float = 0.0
    tx_malformed: int = 0  # answer this many TransactionEvents with a schema-invalid payload
    sign_certificate_status: str = "Accepted"
    ocsp_for: Callable[[dict[str, Any]], str | None] = lambda _data: None
    # a token database: (idToken, type) -> status; None: every token is Accepted
    known_tokens: dict[tuple[str, str], str] | None = None
    # idToken -> groupIdToken the Authorize answer gives it (E07: a group may stop)
    token_groups: dict[str, str] = field(default_factory=dict)


class CsmsStation(ChargePoint):  # type: ignore[misc]
    def __init__(self, station_id: str, ws: ServerConnection, csms: TestCsms) -> None:
        super().__init__(station_id, ws, response_timeout=20)
        self.csms = csms
        self.b = csms.behaviour
        self.outstanding: str | None = None  # the station's CALL being answered
        # tx_delay as it was when the TransactionEvent being answered arrived: a test that
        # raises tx_delay after seeing a message must not slow the answer to that message
        self.tx_delay_at_receipt = 0.0
        self._handlers: set[asyncio.Future[None]] = set()

    async def _pause(self, seconds: float) -> None:
        """A slow answer, cut short when the CSMS goes down."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.csms.stopping.wait(), seconds)

    async def route_message(self, raw_msg: str) -> None:
        msg = json.loads(raw_msg)
        if msg[0] != 2:
            await super().route_message(raw_msg)
            return
        self.csms.calls.append((msg[2], msg[3]))
        if msg[2] == "TransactionEvent":
            self.csms.tx_raw.append((msg[1], msg[3]))
            self.tx_delay_at_receipt = self.b.tx_delay
        if self.outstanding is not None:
            self.csms.violations.append(
                f"{msg[2]} sent while {self.outstanding} is still unanswered"
            )
        self.outstanding = f"{msg[2]} {msg[1]}"
        try:
            await validate_payload(Call(msg[1], msg[2], msg[3]), "2.0.1")
        except OCPPError as exc:
            self.csms.violations.append(f"{msg[2]} violates its schema: {exc}")
        self._check_tokens(msg[2], msg[3])
        task = asyncio.ensure_future(self._answer(raw_msg, self.outstanding))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _answer(self, raw_msg: str, outstanding: str) -> None:
        try:
            await super().route_message(raw_msg)
        except websockets.ConnectionClosed:
            pass  # the link went down before the answer
        finally:
            if self.outstanding == outstanding:
                self.outstanding = None

    def _check_tokens(self, action: str, payload: dict[str, Any]) -> None:
        token = payload.get("idToken")
        if not isinstance(token, dict):
            return
        value, kind = token.get("idToken"), token.get("type")
        if action == "Authorize":
            self.csms.token_types.setdefault(value, kind)
        known = self.csms.token_types.get(value)
        if action == "TransactionEvent" and known is not None and known != kind:
            self.csms.violations.append(
                f"TransactionEvent carries idToken {value} as {kind}, known as {known}"
            )

    def token_status(self, token: dict[str, Any]) -> str:
        """What the CSMS's token database says about an IdTokenType."""
        if self.b.known_tokens is None:
            return self.b.authorize_status
        value = token.get("idToken", token.get("id_token"))  # wire or snake_case form
        key = (str(value), str(token.get("type")))
        return self.b.known_tokens.get(key, "Unknown")

    @on("BootNotification")
    async def on_boot(self, charging_station: dict[str, Any], reason: str, **_: Any) -> Any:
        if self.b.boot_delay > 0:
            await asyncio.sleep(self.b.boot_delay)
        status = self.b.boot_statuses.pop(0) if self.b.boot_statuses else "Accepted"
        self.csms.boots.append(status)
        interval = self.b.heartbeat_interval if status == "Accepted" else self.b.boot_interval
        if status == "Accepted":  # B01: the station adopts this interval
            self.csms.expected[("OCPPCommCtrlr", "HeartbeatInterval")] = str(interval)
        return call_result.BootNotification(current_time=NOW(), interval=interval, status=status)

    async def call(self, payload: Any, *args: Any, **kwargs: Any) -> Any:
        """The CSMS's own calls, checked: what SetVariables got Accepted is in force
        (the password for the next connection, GetVariables reads it back)."""
        response = await super().call(payload, *args, **kwargs)
        if isinstance(payload, call.SetVariables) and response is not None:
            for asked, result in zip(
                payload.set_variable_data, response.set_variable_result, strict=True
            ):
                if result["attribute_status"] != "Accepted":
                    continue
                key = (asked["component"]["name"], asked["variable"]["name"])
                self.csms.expected[key] = str(asked["attribute_value"])
                if key == ("SecurityCtrlr", "BasicAuthPassword"):
                    self.csms.password = str(asked["attribute_value"])
        if isinstance(payload, call.GetVariables) and response is not None:
            for result in response.get_variable_result:
                key = (result["component"]["name"], result["variable"]["name"])
                value = result.get("attribute_value")
                wanted = self.csms.expected.get(key)
                if value is not None and wanted is not None and value != wanted:
                    self.csms.violations.append(
                        f"GetVariables reports {key} = {value!r}, but {wanted!r} is in force"
                    )
        return response

    @on("Heartbeat")
    def on_heartbeat(self, **_: Any) -> Any:
        self.csms.heartbeats += 1
        return call_result.Heartbeat(current_time=NOW())

    @on("StatusNotification")
    def on_status(self, **kw: Any) -> Any:
        return call_result.StatusNotification()

    @on("Authorize", skip_schema_validation=True)
    async def on_authorize(self, id_token: dict[str, Any], **kw: Any) -> Any:
        self.csms.authorizations.append({"id_token": id_token, **kw})
        if self.b.authorize_delay:
            await self._pause(self.b.authorize_delay)
        if self.b.authorize_error:
            raise InternalError(description="authorization backend down")
        if self.b.authorize_malformed:
            return call_result.Authorize(id_token_info={"status": 42})  # type: ignore[arg-type]
        info: dict[str, Any] = {"status": self.token_status(id_token)}
        group = self.b.token_groups.get(str(id_token.get("id_token", id_token.get("idToken"))))
        if group is not None:
            info["group_id_token"] = {"id_token": group, "type": "Central"}
        return call_result.Authorize(
            id_token_info=info, certificate_status=self.b.certificate_status
        )

    @on("Get15118EVCertificate", skip_schema_validation=True)
    async def on_ev_cert(
        self, iso15118_schema_version: str, action: str, exi_request: str, **_: Any
    ) -> Any:
        self.csms.ev_cert_requests.append((iso15118_schema_version, action, exi_request))
        if self.b.ev_cert_delay:
            await self._pause(self.b.ev_cert_delay)
        if self.b.ev_cert_error:
            raise InternalError(description="contract certificate pool unreachable")
        exi = self.b.ev_cert_exi
        if self.b.ev_cert_answer is not None:
            exi = self.b.ev_cert_answer(iso15118_schema_version, action, exi_request)
        return call_result.Get15118EVCertificate(status=self.b.ev_cert_status, exi_response=exi)

    @on("TransactionEvent", skip_schema_validation=True)
    async def on_tx(self, **kw: Any) -> Any:
        info = kw.get("transaction_info") or {}
        key = (str(info.get("transaction_id")), int(kw.get("seq_no", -1)))
        failed = self.csms.tx_failures.get(key, 0)
        attempts = self.csms.expected.get(("OCPPCommCtrlr", "MessageAttemptsTransactionEvent"))
        if attempts is not None and failed >= int(attempts):
            self.csms.violations.append(
                f"TransactionEvent {key} tried again after {failed} CallErrors "
                f"(MessageAttemptsTransactionEvent {attempts})"
            )
        if self.tx_delay_at_receipt:
            await self._pause(self.tx_delay_at_receipt)
        if self.b.tx_errors > 0:
            self.b.tx_errors -= 1
            self.csms.tx_failures[key] = failed + 1
            raise InternalError(description="database busy")
        if self.b.tx_malformed > 0:
            self.b.tx_malformed -= 1
            return call_result.TransactionEvent(total_cost="lots")  # type: ignore[arg-type]
        token = kw.get("id_token")
        if isinstance(token, dict) and self.b.known_tokens is not None:
            wire = {"idToken": token.get("id_token"), "type": token.get("type")}
            return call_result.TransactionEvent(id_token_info={"status": self.token_status(wire)})
        return call_result.TransactionEvent()

    @on("DataTransfer")
    def on_data_transfer(self, vendor_id: str, **_: Any) -> Any:
        return call_result.DataTransfer(status="UnknownVendorId")

    async def set_password(self, password: str) -> str:
        """A01: SetVariables BasicAuthPassword; once Accepted it is the only one accepted."""
        answer = await self.call(
            call.SetVariables(
                set_variable_data=[
                    {
                        "component": {"name": "SecurityCtrlr"},
                        "variable": {"name": "BasicAuthPassword"},
                        "attribute_value": password,
                    }
                ]
            )
        )
        return str(answer.set_variable_result[0]["attribute_status"])

    async def remote_start(
        self, id_token: str, kind: str, remote_start_id: int, evse_id: int | None = 1
    ) -> Any:
        """F01/F02: RequestStartTransaction; the token becomes one the CSMS issued."""
        self.csms.token_types[id_token] = kind
        if self.b.known_tokens is not None:
            self.b.known_tokens[(id_token, kind)] = "Accepted"
        return await self.call(
            call.RequestStartTransaction(
                id_token={"id_token": id_token, "type": kind},
                remote_start_id=remote_start_id,
                evse_id=evse_id,
            )
        )

    @on("SignCertificate")
    def on_sign(self, csr: str, certificate_type: str | None = None, **_: Any) -> Any:
        self.csms.csrs.append((certificate_type, csr))
        return call_result.SignCertificate(status=self.b.sign_certificate_status)

    @on("GetCertificateStatus")
    def on_cert_status(self, ocsp_request_data: dict[str, Any], **_: Any) -> Any:
        self.csms.ocsp_requests.append(ocsp_request_data)
        result = self.b.ocsp_for(ocsp_request_data)
        status = "Accepted" if result else "Failed"
        return call_result.GetCertificateStatus(status=status, ocsp_result=result)

    @on("SecurityEventNotification")
    def on_security_event(self, type: str, timestamp: str, **kw: Any) -> Any:
        self.csms.security_events.append({"type": type, "timestamp": timestamp, **kw})
        return call_result.SecurityEventNotification()

    @on("MeterValues")
    def on_meter_values(self, evse_id: int, meter_value: list[Any], **_: Any) -> Any:
        self.csms.meter_values.append((evse_id, meter_value))
        return call_result.MeterValues()

    @on("LogStatusNotification")
    def on_log_status(self, status: str, **kw: Any) -> Any:
        self.csms.log_statuses.append({"status": status, **kw})
        return call_result.LogStatusNotification()

    @on("FirmwareStatusNotification")
    def on_firmware_status(self, status: str, **kw: Any) -> Any:
        self.csms.firmware_statuses.append({"status": status, **kw})
        return call_result.FirmwareStatusNotification()

    @on("NotifyReport")
    def on_notify_report(self, **kw: Any) -> Any:
        self.csms.reports.append(kw)
        return call_result.NotifyReport()

    @on("NotifyCustomerInformation")
    def on_customer_information(self, **kw: Any) -> Any:  # N09 / N10
        self.csms.customer_info.append(kw)
        return call_result.NotifyCustomerInformation()

    @on("ReportChargingProfiles")
    def on_report_profiles(self, **kw: Any) -> Any:  # K09
        self.csms.profile_reports.append(kw)
        return call_result.ReportChargingProfiles()

    @on("NotifyEvent")
    def on_notify_event(self, **kw: Any) -> Any:  # N07 (e.g. the PLC link of an EVSE)
        self.csms.notify_events.append(kw)
        return call_result.NotifyEvent()

    @on("NotifyEVChargingNeeds")
    def on_ev_needs(self, **kw: Any) -> Any:  # K15
        self.csms.ev_needs.append(kw)
        return call_result.NotifyEVChargingNeeds(status="Accepted")

    @on("NotifyEVChargingSchedule")
    def on_ev_schedule(self, **kw: Any) -> Any:  # K15/K17
        self.csms.ev_schedules.append(kw)
        return call_result.NotifyEVChargingSchedule(status="Accepted")


class TestCsms:
    __test__ = False
    instances: list[TestCsms] = []  # every CSMS made in the current test (conftest checks)

    def __init__(
        self,
        *,
        password: str | None = "s3cret-password",
        ssl_context: ssl.SSLContext | None = None,
        behaviour: Behaviour | None = None,
    ) -> None:
        self.password = password
        self.ssl_context = ssl_context
        self.behaviour = behaviour or Behaviour()
        self.server: Server | None = None
        self.port = 0
        self.stations: dict[str, CsmsStation] = {}
        self.connected = asyncio.Event()
        self.stopping = asyncio.Event()
        self.boots: list[str] = []
        self.heartbeats = 0
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.tx_raw: list[tuple[str, dict[str, Any]]] = []
        self.customer_info: list[dict[str, Any]] = []  # NotifyCustomerInformation payloads
        self.authorizations: list[dict[str, Any]] = []
        self.ev_cert_requests: list[tuple[str, str, str]] = []
        self.csrs: list[tuple[str | None, str]] = []
        self.ocsp_requests: list[dict[str, Any]] = []
        self.rejected_auth = 0
        self.reports: list[dict[str, Any]] = []
        self.profile_reports: list[dict[str, Any]] = []  # ReportChargingProfiles (K09)
        self.ev_needs: list[dict[str, Any]] = []  # NotifyEVChargingNeeds (K15)
        self.ev_schedules: list[dict[str, Any]] = []  # NotifyEVChargingSchedule
        self.security_events: list[dict[str, Any]] = []
        self.notify_events: list[dict[str, Any]] = []  # NotifyEvent payloads (snake_case)
        self.meter_values: list[tuple[int, list[Any]]] = []  # MeterValues (J01, F06)
        self.log_statuses: list[dict[str, Any]] = []  # LogStatusNotification (N01)
        self.firmware_statuses: list[dict[str, Any]] = []  # FirmwareStatusNotification (L01)
        self.peer_certs: list[dict[str, Any]] = []
        # a CSMS's own decision on a TLS client (e.g. certificates it revoked or does not
        # take yet): False refuses the connection with HTTP 403; read at every connection
        self.client_filter: Callable[[dict[str, Any] | None], bool] | None = None
        self.violations: list[str] = []
        TestCsms.instances.append(self)
        self.token_types: dict[str, str] = {}  # idToken -> type, as first seen / issued
        # (component, variable) -> value in force: what this CSMS set (Accepted) or decided
        self.expected: dict[tuple[str, str], str] = {}
        self.tx_failures: dict[tuple[str, int], int] = {}  # (txId, seqNo) -> CallErrors sent

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context else "ws"
        return f"{scheme}://127.0.0.1:{self.port}/ocpp"

    def _check_auth(self, conn: ServerConnection, request: Any) -> Any:
        if self.client_filter is not None:
            ssl_object = conn.transport.get_extra_info("ssl_object")
            peer = ssl_object.getpeercert() if ssl_object is not None else None
            if not self.client_filter(peer or None):
                return conn.respond(403, "client certificate refused\n")
        if self.password is None:
            return None
        station = request.path.rstrip("/").rsplit("/", 1)[-1]
        expected = "Basic " + base64.b64encode(f"{station}:{self.password}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            self.rejected_auth += 1
            return conn.respond(401, "bad credentials\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        station_id = ws.request.path.rstrip("/").rsplit("/", 1)[-1] if ws.request else "?"
        ssl_object = ws.transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.getpeercert():
            self.peer_certs.append(ssl_object.getpeercert())
        cp = CsmsStation(station_id, ws, self)
        self.stations[station_id] = cp
        self.connected.set()
        try:
            await cp.start()
        except websockets.ConnectionClosed:
            pass
        finally:
            if self.stations.get(station_id) is cp:
                del self.stations[station_id]
                self.connected.clear()

    async def start(self, port: int = 0) -> None:
        self.server = await serve(
            self._handler,
            "127.0.0.1",
            port,
            subprotocols=[websockets.Subprotocol("ocpp2.0.1")],
            ssl=self.ssl_context,
            process_request=self._check_auth,
        )
        self.port = self.server.sockets[0].getsockname()[1] if port == 0 else port

    async def stop(self) -> None:
        """Go down hard: close the listener and every connection."""
        if self.server is not None:
            self.stopping.set()
            self.server.close()
            await self.server.wait_closed()
            self.server = None
            self.stopping.clear()
        self.connected.clear()

    async def station(self, station_id: str, timeout: float = 10.0) -> CsmsStation:
        async def wait() -> CsmsStation:
            while station_id not in self.stations:
                await asyncio.sleep(0.02)
            return self.stations[station_id]

        return await asyncio.wait_for(wait(), timeout)

    def raised_events(self) -> list[dict[str, Any]]:
        """The SecurityEventNotifications past StartupOfTheDevice (sent at every start)."""
        return [e for e in self.security_events if e["type"] != "StartupOfTheDevice"]

    def transaction_stream(self) -> list[dict[str, Any]]:
        """Deduplicated TransactionEvents (by transactionId, seqNo); repeats must be identical."""
        seen: dict[tuple[str, int], tuple[str, dict[str, Any]]] = {}
        out: list[dict[str, Any]] = []
        for message_id, payload in self.tx_raw:
            key = (payload["transactionInfo"]["transactionId"], payload["seqNo"])
            if key in seen:
                assert seen[key] == (message_id, payload), f"resend of {key} differs"
                continue
            seen[key] = (message_id, payload)
            out.append(payload)
        return out


async def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    async def loop() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(loop(), timeout)
