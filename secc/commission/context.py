"""What the checks share: the config, the installer's answers, the injected dependencies,
and the things opened once (certificate store, device model, HAL boards, CSMS link)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from certs.store import Store, StoreError
from hal.api import Board
from secc import preflight
from secc.commission import system
from secc.commission.csms import CsmsLink, LinkState, ocpp_state_dir
from secc.commission.model import Answers
from secc.config import EvseSection, StationConfig, load_file
from secc.errors import ConfigError
from secc.maintenance import CsrSubject, SignedInstaller
from secc.ocpp_bridge.device_model import ISO, SEC, DeviceModel
from secc.sdp import SdpResponse


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def open_board(evse: EvseSection) -> Board:
    """The EVSE's board through the HAL registry, with the config's backend and options."""
    from hal import registry

    return await registry.open_board(
        evse.hal.backend,
        dict(evse.hal_options),
        plc=evse.hal.plc,
        plc_options=dict(evse.hal_plc_options),
    )


async def probe_modem(interface: str) -> str | None:
    """The QCA modem's firmware on ``interface`` (None: no answer).  Needs CAP_NET_RAW."""
    from hal.backends.slac.link import open_packet_socket
    from hal.backends.slac.probe import probe

    sock = open_packet_socket(interface)
    try:
        info = await probe(sock, 0.5)
    finally:
        sock.close()
    return info.firmware if info.answered else None


@dataclass(frozen=True, slots=True)
class Deps:
    """Everything that touches the world, replaceable in tests."""

    utc_now: Callable[[], dt.datetime] = _utc_now
    clock_sync: Callable[[], system.ClockSync] = system.clock_sync
    open_board: Callable[[EvseSection], Awaitable[Board]] = open_board
    interface_info: Callable[[str], system.InterfaceInfo] = system.interface_info
    sdp_query: Callable[[str, int, float], Awaitable[SdpResponse | None]] = system.sdp_query
    probe_modem: Callable[[str], Awaitable[str | None]] = probe_modem
    udp_port_in_use: Callable[[int], bool] = system.udp_port_in_use


@dataclass
class Context:
    config_path: Path
    answers: Answers = field(default_factory=Answers)
    deps: Deps = field(default_factory=Deps)
    config: StationConfig | None = None
    config_error: str | None = None
    config_digest: str = ""
    store: Store | None = None
    store_error: str | None = None
    dm: DeviceModel | None = None
    installer: SignedInstaller | None = None
    csms: CsmsLink | None = None
    firmware: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)  # provisioning steps done
    # told what the running step waits for (the progress line says it): "the CSMS ..."
    waiting: Callable[[str], None] = lambda what: None
    _boards: dict[str, Board] = field(default_factory=dict)

    def load(self) -> None:
        """Read the config (errors are kept for the config check) and open the store."""
        try:
            self.config_digest = hashlib.sha256(self.config_path.read_bytes()).hexdigest()
        except OSError:
            self.config_digest = ""
        try:
            self.config = load_file(self.config_path)
        except ConfigError as exc:
            self.config_error = str(exc)
            return
        store_path = self.config.certs.store
        if store_path is not None:
            try:
                store = Store(store_path, key_password_file=self.config.certs.key_password_file)
                if not store_path.is_dir():
                    raise StoreError(f"{store_path}: no such directory")
                store.initialize()
                self.store = store
            except (StoreError, OSError) as exc:
                self.store_error = str(exc)
        self.dm = DeviceModel(self.state_dir() / "device_model.json")
        if self.store is not None:
            # the A02.FR.06 checks of `secc run` and `secc renew` (subject and hierarchy):
            # provisioning installs no certificate the running station would refuse
            self.installer = SignedInstaller(
                self.store, self.deps.utc_now, subject=self.csr_subject
            )

    def csr_subject(self) -> CsrSubject:
        """The names of the provisioning CSRs, which a signed leaf must carry (read at each
        use: the preset may set the organization): CN the SECC ID (answer, else
        ISO15118Ctrlr.SeccId, else the first EVSE's ID) or the station's identity; O
        ISO15118Ctrlr / SecurityCtrlr.OrganizationName when set (what ``secc run`` checks
        a renewal against), else the answer ``organization``."""
        assert self.config is not None and self.dm is not None
        dm, answers, cfg = self.dm, self.answers, self.config
        if self.csms is not None:  # the identity the link connects with (device model)
            station_id = self.csms.client.config.station_id
        else:
            station_id = cfg.ocpp.station_id if cfg.ocpp else cfg.station.name
        iso = dm.value(ISO, "OrganizationName") or None
        security = dm.value(SEC, "OrganizationName") or None
        return CsrSubject(
            secc_id=answers.seccid or dm.value(ISO, "SeccId") or cfg.evse[0].evse_id,
            station_id=station_id,
            organization=answers.organization or iso or security or "unknown",
            country=answers.country or dm.value(ISO, "CountryName") or None,
            iso_organization=iso,
            security_organization=security,
        )

    def state_dir(self) -> Path:
        """Where ``secc run`` keeps the device model and the local list."""
        if self.answers.state_dir is not None:
            return self.answers.state_dir
        if self.config is not None and self.config.ocpp is not None:
            return ocpp_state_dir(self.config.ocpp)
        return Path("/var/lib/secc")

    def utc_now(self) -> dt.datetime:
        return self.deps.utc_now()

    def service_user(self) -> preflight.User | None:
        """Whose file access the start-up checks look at: the answer ``service_user``;
        else, as root, the service user ``secc`` if it exists; else this user."""
        try:
            return preflight.service_user(self.answers.service_user)
        except KeyError:
            return None  # the CLI refused an unknown --user already

    async def board(self, evse: EvseSection) -> Board:
        if evse.evse_id not in self._boards:
            self._boards[evse.evse_id] = await self.deps.open_board(evse)
        return self._boards[evse.evse_id]

    async def link(self) -> LinkState | None:
        """The CSMS link (opened on first use); None without an [ocpp] section."""
        if self.config is None or self.config.ocpp is None or self.dm is None:
            return None
        if self.csms is None:
            self.csms = CsmsLink(self.config.ocpp, self.store, self.dm, self.installer)
        if self.csms.state is None:
            self.waiting(f"connecting to the CSMS {self.config.ocpp.url}")
        return await self.csms.connect(self.answers.csms_timeout)

    @property
    def has_csms(self) -> bool:
        """An [ocpp] section is configured (fixes through the CSMS make sense)."""
        return self.config is not None and self.config.ocpp is not None

    async def aclose(self) -> None:
        for board in self._boards.values():
            await board.aclose()
        self._boards.clear()
        if self.csms is not None:
            await self.csms.aclose()
            self.csms = None
