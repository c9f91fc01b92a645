"""Where an EVSE's authorization, certificate and transaction actions go: the
:class:`Backend` seam, the local policy for stations without a CSMS
(:class:`LocalBackend`) and the OCPP 2.0.1 bridge for the ``[ocpp]`` section
(:class:`OcppBackends`).  Answers come back as core events through ``emit``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from secc.config import AuthorizationSection, EvseSection, StationConfig
from secc.errors import ConfigError

if TYPE_CHECKING:  # (the core's vocabulary loads after SDP-ready, with the driver)
    from hal.api import Board
    from hal.hooks import StationHooks
    from secc.core.actions import Action, RequestCertificate
    from secc.core.events import Event, EvseStatus
    from secc.ocpp_bridge.bridge import Bridge, BridgeConfig

log = logging.getLogger(__name__)

Emit = Callable[["Event"], None]


class Backend(Protocol):
    """Where authorization, certificate and transaction actions go.  The OCPP bridge
    (:class:`secc.ocpp_bridge.bridge.Bridge`) has this shape; its answers come back
    through the ``emit`` callback it was built with."""

    def perform(self, action: Action) -> None: ...

    def evse_status(self, status: EvseStatus) -> None: ...


BackendFactory = Callable[[EvseSection, Emit], Backend]
CertificateBackend = Callable[["RequestCertificate"], bytes | None]


class LocalBackend:
    """Authorization without a CSMS: EIM and Plug & Charge by the configured policy (the
    core asks for PnC only after its own contract chain check against the store's MO
    roots passed).  Certificate installation needs a back end: ``certificates`` (a lab
    CPS), else the answer is "no certificate" at once."""

    def __init__(
        self,
        policy: AuthorizationSection,
        emit: Emit,
        certificates: CertificateBackend | None = None,
    ) -> None:
        self.policy = policy
        self.emit = emit
        self.certificates = certificates

    def perform(self, action: Action) -> None:
        from secc.core.actions import RequestAuthorization, RequestCertificate
        from secc.core.events import AuthorizationResult, CertificateResult

        match action:
            case RequestAuthorization(kind=kind, id_token=token):
                rule = self.policy.pnc if kind == "eMAID" else self.policy.eim
                accepted = rule == "accept"
                log.info("local authorization of %s %s: %s", kind, token, rule)
                result = AuthorizationResult(
                    accepted=accepted,
                    id_token=token,
                    certificate_status=("Accepted" if accepted else None)
                    if kind == "eMAID"
                    else None,
                    reason="" if accepted else f"local policy rejects {kind}",
                )
                asyncio.get_running_loop().call_soon(self.emit, result)
            case RequestCertificate():
                if self.certificates is None:
                    result_c = CertificateResult(None, "no certificate back end (no OCPP)")
                else:
                    result_c = CertificateResult(self.certificates(action))
                asyncio.get_running_loop().call_soon(self.emit, result_c)
            case _:
                pass

    def evse_status(self, status: EvseStatus) -> None:
        pass


def max_power_w(evse: EvseSection) -> float:
    """The most an EVSE delivers in any of its energy modes (watts): its configured AC
    limits (single or three phase) or DC power and current limits."""
    out = 0.0
    for mode in evse.energy_modes:
        if mode.startswith("DC"):
            out = max(out, min(evse.dc.max_power, evse.dc.max_voltage * evse.dc.max_current))
        elif mode.startswith("AC_single"):
            out = max(out, evse.ac.nominal_voltage * evse.ac.max_current)
        else:
            out = max(out, evse.ac.max_power)
    return out


class OcppBackends:
    """The ``[ocpp]`` section: one OCPP 2.0.1 connection (:mod:`secc.ocpp_bridge`) for the
    whole station, one bridge per ``[[evse]]`` as its backend.  The ``[[evse]]`` sections
    are OCPP evseId 1..n in config order (connectorId 1 each); the first bridge built
    owns the link, the outbox, the device model, the auth cache and the certificate
    store, the others share them (``Bridge(primary=...)``).  The station hooks (reset,
    connector locks, firmware installation, vendor DataTransfer, tamper: :mod:`hal.hooks`)
    come from the boards (:meth:`add_board`)."""

    def __init__(self, config: StationConfig) -> None:
        assert config.ocpp is not None
        self.section = config.ocpp
        self.certs = config.certs
        self.evses = config.evse
        self._primary: Bridge | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closers: list[Callable[[], None]] = []
        from hal.hooks import StationHooks

        # filled by add_board, shared with the primary bridge
        self.hooks: StationHooks = StationHooks()

    def add_board(self, evse: EvseSection, board: Board) -> None:
        """The board of ``evse``: its lock is that connector's (UnlockConnector), the
        station-level hooks it offers (:attr:`hal.api.Board.hooks`) are the station's
        where no earlier board offered one."""
        self.hooks.add_board(self.evse_number(evse), 1, board)
        if self._primary is not None:
            self._primary.ops.hooks_changed.set()

    def evse_number(self, evse: EvseSection) -> int:
        """The OCPP evseId of an ``[[evse]]`` section: its place in the config, from 1."""
        for i, section in enumerate(self.evses, start=1):
            if section is evse or section.evse_id == evse.evse_id:
                return i
        raise ConfigError(f"evse {evse.evse_id}: not in the station's [[evse]] sections")

    def __call__(self, evse: EvseSection, emit: Emit) -> Backend:
        from secc.ocpp_bridge.bridge import Bridge, BridgeConfig

        evse_id = self.evse_number(evse)
        dc = any(mode.startswith("DC") for mode in evse.energy_modes)
        discharge = evse.ac.max_discharge_current > 0 or evse.dc.max_discharge_current > 0
        bidirectional = evse.bpt and discharge  # ISO 15118-20 BPT offered
        bridge_config = BridgeConfig(
            evse_id=evse_id,
            connector_type="cCCS2" if dc else "cType2",
            bidirectional=bidirectional,
            max_power_w=max_power_w(evse),
        )
        primary = self._primary
        if primary is None:
            bridge = self._primary = self._station_bridge(bridge_config, emit)
        else:
            bridge = Bridge(
                bridge_config,
                primary.client,
                primary.queue,
                primary.auth,
                primary.dm,
                emit,
                store=primary.store,
                primary=primary,
            )
        self._tasks.append(asyncio.create_task(bridge.run(), name=f"ocpp-bridge-{evse_id}"))
        return bridge

    def _station_bridge(self, bridge_config: BridgeConfig, emit: Emit) -> Bridge:
        from certs.store import Store
        from secc.ocpp_bridge.authorization import AuthStore
        from secc.ocpp_bridge.bridge import Bridge
        from secc.ocpp_bridge.client import ClientConfig, OcppClient, StoreTls
        from secc.ocpp_bridge.device_model import DeviceModel, iso15118_defaults
        from secc.ocpp_bridge.queue import DurableQueue

        s = self.section
        password = None
        if s.basic_auth_password_file is not None:
            try:
                password = s.basic_auth_password_file.read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f"ocpp.basic_auth_password_file: {s.basic_auth_password_file}: {exc.strerror}"
                ) from exc
        store = None
        if self.certs.store is not None:
            store = Store(self.certs.store, key_password_file=self.certs.key_password_file)
        identity = {"vendorName": s.vendor_name, "model": s.model}
        if s.serial_number is not None:
            identity["serialNumber"] = s.serial_number
        if s.firmware_version is not None:
            identity["firmwareVersion"] = s.firmware_version
        client = OcppClient(
            ClientConfig(
                csms_url=s.url,
                station_id=s.station_id,
                security_profile=s.security_profile,
                basic_auth_password=password,
                connectors=tuple((i, 1) for i in range(1, len(self.evses) + 1)),
                charging_station=identity,
            ),
            tls=StoreTls(store) if store is not None and s.url.startswith("wss://") else None,
        )
        queue = DurableQueue(s.state_dir / "outbox.sqlite")
        auth = AuthStore(s.state_dir / "auth.sqlite")
        self._closers += [queue.close, auth.close]
        bridge = Bridge(
            bridge_config,
            client,
            queue,
            auth,
            DeviceModel(s.state_dir / "device_model.json", initial=iso15118_defaults(s)),
            emit,
            store=store,
            hooks=self.hooks,
        )
        log.info(
            "OCPP 2.0.1 to %s as %s (security profile %d, %d EVSE)",
            s.url,
            s.station_id,
            s.security_profile,
            len(self.evses),
        )
        return bridge

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for close in self._closers:
            close()
