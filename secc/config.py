"""The station configuration: one TOML file mapped onto frozen dataclasses.

``/etc/secc/secc.toml`` by default (``secc run --config FILE``).  Every key is checked
at start by :func:`secc.configload.load`: an unknown key or a bad value stops the station
with the file, the dotted key and the reason.  :func:`session_config` maps one EVSE
section onto the core's :class:`~secc.core.config.SessionConfig`.  docs/config.md lists
every key; docs/secc.example.toml is a commented example.

No I/O here except :func:`load_file` (the one reader of the file).
"""

from __future__ import annotations

import re
from dataclasses import field, replace
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any, Literal

from hal.records import record
from secc.configload import load, read_plain_toml
from secc.core.config import (
    DIN_NAMESPACE,
    ISO2_NAMESPACE,
    ISO20_AC_NAMESPACE,
    ISO20_DC_NAMESPACE,
    AcLimits,
    DcLimits,
    PncTrust,
    SessionConfig,
    Tariff,
    Timers,
)
from secc.errors import ConfigError
from secc.limits import Limits, TraceLimits

DEFAULT_PATH = Path("/etc/secc/secc.toml")
# the names of [[evse]] protocols: what the EVSE offers in the appHandshake (the EV's
# priorities choose among them)
PROTOCOLS = {
    "iso20-dc": ISO20_DC_NAMESPACE,
    "iso20-ac": ISO20_AC_NAMESPACE,
    "iso2": ISO2_NAMESPACE,
    "din": DIN_NAMESPACE,
}
CONTROL_MODES = {"scheduled": "Scheduled", "dynamic": "Dynamic"}
ENERGY_MODES = (
    "AC_single_phase_core",
    "AC_three_phase_core",
    "DC_core",
    "DC_extended",
    "DC_combo_core",
    "DC_unique",
)
# DIN SPEC 70121's EVSEID is a DIN SPEC 91286 EVSE ID ("+49*89*6360": digit groups joined
# by '*', the '+' optional), sent one character per half octet in an evseIDType
# (hexBinary, maxLength 32 in the DIN XSD): at most 64 characters without the '+'
_DIN_EVSE_ID = r"\+?[0-9]+(?:\*[0-9]+)*"  # (compiled by re on first use: issue 17)
_DIN_EVSE_ID_MAX = 64


@record
class StationSection:
    name: str = "secc"
    trace_dir: Path | None = None  # one JSON Lines trace per session; none: no traces
    pcap: bool = False  # also a .pcap beside each trace (needs trace_dir)
    tls_keylog: Path | None = None  # NSS key log for Wireshark: lab use only
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    traces: TraceLimits = field(default_factory=TraceLimits)  # [station.traces]


@record
class CertsSection:
    store: Path | None = None  # certs.store.Store root; none: no TLS, no Plug & Charge
    key_password_file: Path | None = None


@record
class AuthorizationSection:
    """Local authorization for stations without a CSMS (OCPP off)."""

    # EIM (ExternalPayment): accept every session (free service / demo) or refuse all.
    eim: Literal["accept", "reject"] = "accept"
    # Plug & Charge: accept when the core's own contract chain check against the MO
    # roots of the store passed (the core asks only then), or refuse all.
    pnc: Literal["accept", "reject"] = "accept"


@record
class HalSection:
    # hal.registry name: simulated, serial-mcu, gpiod, ...; a file must name it (parse)
    backend: str = "simulated"
    plc: str | None = None  # a PLC backend replacing the board's own (e.g. "slac")
    # "iec61851": hal.charging.ChargingRunner drives CP / SLAC and the contactors follow
    # the V2G session; "none": no control pilot (lab links without CP): the runtime
    # switches the contactors directly.
    control: Literal["iec61851", "none"] = "iec61851"
    # after a failed V2G session or SLAC, fall back to IEC 61851-1 basic charging
    # (nominal duty; AC only: ignored for an EVSE offering a DC mode)
    basic_fallback: bool = False
    # after a session the station refused (authorization, contract, payment): false: no
    # basic charging until unplug; true: nominal duty, contactors only on an authorization
    # of its own (ChargingRunner.power(True), e.g. from an RFID reader)
    basic_after_refusal: bool = False
    hlc_start_timeout: float = 60.0  # 5 % until the V2G session is set up
    slac_retries: int = 2  # SLAC attempts after the first (an X1 pause before each)
    slac_retry_pause: float = 4.0  # seconds of X1 between SLAC attempts
    slac_wait: float = 50.0  # seconds the control waits for one SLAC outcome
    poll_interval: float = 0.1  # seconds between EVSE status reads during a session

    def __post_init__(self) -> None:
        if not 0.005 <= self.poll_interval <= 5.0:
            raise ValueError("hal.poll_interval must be between 0.005 and 5 seconds")
        if not 0 <= self.slac_retries <= 10:
            raise ValueError("hal.slac_retries must be between 0 and 10")
        if not 0.1 <= self.slac_retry_pause <= 60.0:
            raise ValueError("hal.slac_retry_pause must be between 0.1 and 60 seconds")
        if not 1.0 <= self.slac_wait <= 300.0:
            raise ValueError("hal.slac_wait must be between 1 and 300 seconds")


@record
class EvseSection:
    evse_id: str
    # DIN SPEC 70121's EVSEID (DIN SPEC 91286 form); none: derived from evse_id when that
    # is of the DIN form, else 0x00, DIN's "no EVSE ID" (docs/config.md says why)
    din_evse_id: str | None = None
    interface: str | None = None  # PLC interface (eth1); none: loopback / test mode
    address: str = "::1"  # the address the V2G servers bind and SDP offers
    tls_port: int = 0  # 0: a free port; -1: no TLS
    tcp_port: int = -1  # -1: no plain TCP (the default: TLS only); 0: a free port
    sdp_port: int = 15118
    energy_modes: tuple[str, ...] = ("AC_three_phase_core",)
    ac: AcLimits = field(default_factory=AcLimits)
    dc: DcLimits = field(default_factory=DcLimits)
    pnc: bool = True
    certificate_installation: bool = True  # from a file: false without [ocpp] (no back end)
    free_service: bool = False
    # seconds ChargeParameterDiscovery / ScheduleExchange answer Ongoing while the CSMS's
    # charging profile is awaited (OCPP K15); 0: offer the station's limits at once
    schedule_wait: float = 0.0
    protocols: tuple[Literal["iso20-dc", "iso20-ac", "iso2", "din"], ...] = ("iso2", "din")
    # ISO 15118-20 runs over TLS 1.3 only; true lets it run over plain TCP too (lab use)
    iso20_allow_tcp: bool = False
    # the -20 control modes offered (ServiceDetail parameter sets), in this order
    iso20_control_modes: tuple[Literal["scheduled", "dynamic"], ...] = ("scheduled", "dynamic")
    meter_id: str | None = "METER-1"
    bpt: bool = False  # ISO 15118-20 AC_BPT / DC_BPT with the ac / dc discharge limits
    metering_confirmation: bool = False  # ISO 15118-20: ask the EV to sign the meter reading
    tariff: Tariff | None = None  # [evse.tariff]: the -20 scheduled-mode price schedule
    timers: Timers = field(default_factory=Timers)
    limits: Limits = field(default_factory=Limits)  # [evse.limits]: docs/security.md
    hal: HalSection = field(default_factory=HalSection)
    # [evse.hal.options] / [evse.hal.plc_options]: checked by the backends themselves
    hal_options: tuple[tuple[str, str | int | float | bool], ...] = field(
        default=(), metadata={"internal": True}
    )
    hal_plc_options: tuple[tuple[str, str | int | float | bool], ...] = field(
        default=(), metadata={"internal": True}
    )

    def __post_init__(self) -> None:
        if not 7 <= len(self.evse_id) <= 37:
            raise ValueError(f"evse_id {self.evse_id!r}: ISO 15118-2 wants 7 to 37 characters")
        din = self.din_evse_id
        if din is not None and (
            not re.fullmatch(_DIN_EVSE_ID, din) or len(din.lstrip("+")) > _DIN_EVSE_ID_MAX
        ):
            raise ValueError(
                f"din_evse_id {din!r}: a DIN SPEC 91286 EVSE ID, digit groups joined by '*' "
                f'(e.g. "+49*89*6360"), at most {_DIN_EVSE_ID_MAX} characters without the '
                "'+' (DIN SPEC 70121 packs one per half octet into at most 32 octets)"
            )
        try:
            IPv6Address(self.address)
        except ValueError:
            raise ValueError(
                f"address {self.address!r} must be an IPv6 address (SDP offers only IPv6)"
            ) from None
        if not 0 <= self.schedule_wait <= 55:
            raise ValueError("schedule_wait must be between 0 and 55 seconds (EV patience)")
        for name in ("tls_port", "tcp_port"):
            port = getattr(self, name)
            if not -1 <= port <= 65535:
                raise ValueError(f"{name} must be -1 (off), 0 (any) or a port number")
        if self.tls_port == -1 and self.tcp_port == -1:
            raise ValueError("an EVSE needs tls_port or tcp_port (both are -1)")
        if not 0 <= self.sdp_port <= 65535:
            raise ValueError("sdp_port must be a port number (0: any)")
        for mode in self.energy_modes:
            if mode not in ENERGY_MODES:
                raise ValueError(f"energy_modes: unknown mode {mode!r} ({', '.join(ENERGY_MODES)})")
        if not self.energy_modes:
            raise ValueError("energy_modes must name at least one mode")
        if not self.protocols:
            raise ValueError("protocols must name at least one protocol")
        if len(set(self.protocols)) != len(self.protocols):
            raise ValueError(f"protocols {list(self.protocols)} names a protocol twice")
        if not self.iso20_control_modes or len(set(self.iso20_control_modes)) != len(
            self.iso20_control_modes
        ):
            raise ValueError("iso20_control_modes must name scheduled and/or dynamic, once each")
        if self.offers_iso20:
            iso20 = [p for p in self.protocols if p.startswith("iso20-")]
            families = {"iso20-ac": "AC", "iso20-dc": "DC"}
            for p in iso20:
                if not any(m.startswith(families[p]) for m in self.energy_modes):
                    raise ValueError(
                        f"protocols: {p} needs one of the {families[p]}_* modes in energy_modes"
                    )
            if self.tls_port == -1 and not self.iso20_allow_tcp:
                raise ValueError(
                    f"protocols {iso20} need TLS 1.3 (tls_port) or, in a lab, iso20_allow_tcp"
                )

    @property
    def offers_iso20(self) -> bool:
        """The EVSE offers ISO 15118-20 (AC or DC)."""
        return any(p.startswith("iso20-") for p in self.protocols)


@record
class OcppSection:
    """The CSMS link (secc.ocpp_bridge); absent: local authorization only."""

    url: str  # ws:// or wss://, without the station id (it is appended)
    station_id: str
    security_profile: int = 1
    basic_auth_password_file: Path | None = None  # profiles 1 and 2
    state_dir: Path = Path("/var/lib/secc/ocpp")  # outbox, auth cache, device model
    # BootNotification chargingStation (OCPP lengths: 50, 20, 25, 50)
    vendor_name: str = "secc"
    model: str = "secc"
    serial_number: str | None = None
    firmware_version: str | None = None
    # ISO15118Ctrlr defaults for the V2G certificate request (until the CSMS sets them)
    secc_id: str | None = None  # SeccId (CN); none: station_id
    organization_name: str | None = None  # OrganizationName (O)
    country_name: str | None = None  # CountryName (C), two letters

    def __post_init__(self) -> None:
        if self.security_profile not in (1, 2, 3):
            raise ValueError("ocpp.security_profile must be 1, 2 or 3")
        if not self.url.startswith(("ws://", "wss://")):
            raise ValueError(f"ocpp.url must start with ws:// or wss://, not {self.url!r}")
        for name, most in (("vendor_name", 50), ("model", 20), ("serial_number", 25),
                           ("firmware_version", 50)):  # fmt: skip
            value = getattr(self, name)
            if value is not None and not 1 <= len(value) <= most:
                raise ValueError(f"ocpp.{name} must be 1 to {most} characters")
        if self.country_name is not None and not (
            len(self.country_name) == 2 and self.country_name.isalpha()
        ):
            raise ValueError("ocpp.country_name must be a two-letter country code")


@record
class StationConfig:
    evse: tuple[EvseSection, ...]
    station: StationSection = field(default_factory=StationSection)
    certs: CertsSection = field(default_factory=CertsSection)
    authorization: AuthorizationSection = field(default_factory=AuthorizationSection)
    ocpp: OcppSection | None = None

    def __post_init__(self) -> None:
        if not self.evse:
            raise ValueError("at least one [[evse]] section is needed")
        ids = [e.evse_id for e in self.evse]
        if len(set(ids)) != len(ids):
            raise ValueError("two [[evse]] sections have the same evse_id")
        ports = [(e.interface, e.address, p) for e in self.evse for p in (e.tls_port, e.tcp_port)]
        ports = [p for p in ports if p[2] > 0]
        if len(set(ports)) != len(ports):
            raise ValueError("two [[evse]] sections use the same address and TCP port")
        sdp = [(e.interface, e.address, e.sdp_port) for e in self.evse if e.sdp_port > 0]
        if len(set(sdp)) != len(sdp):
            raise ValueError("two [[evse]] sections share interface, address and sdp_port")


Options = tuple[tuple[str, str | int | float | bool], ...]
_FREE_TABLES = {"options": "hal_options", "plc_options": "hal_plc_options"}


def _split_hal_options(data: Any, source: str) -> tuple[Any, dict[int, dict[str, Options]]]:
    """``[evse.hal.options]`` and ``[evse.hal.plc_options]`` are free tables for the
    backends: lift them out of ``hal`` so the strict loader checks the rest; the backend
    checks its options when it opens."""
    lifted: dict[int, dict[str, Options]] = {}
    if not isinstance(data, dict) or not isinstance(data.get("evse"), list):
        return data, lifted
    sections = []
    for i, evse in enumerate(data["evse"]):
        hal = evse.get("hal") if isinstance(evse, dict) else None
        if isinstance(evse, dict):
            for field_name in _FREE_TABLES.values():
                if field_name in evse:
                    raise ConfigError(f"{source}: unknown key evse[{i}].{field_name}")
        if isinstance(hal, dict) and any(k in hal for k in _FREE_TABLES):
            for key, field_name in _FREE_TABLES.items():
                if key not in hal:
                    continue
                options = hal[key]
                if not isinstance(options, dict):
                    raise ConfigError(f"{source}: evse[{i}].hal.{key} must be a table")
                for name, value in options.items():
                    if not isinstance(value, (str, int, float, bool)):
                        raise ConfigError(
                            f"{source}: evse[{i}].hal.{key}.{name} must be a string, number "
                            f"or boolean, not {value!r}"
                        )
                lifted.setdefault(i, {})[field_name] = tuple(options.items())
            rest = {k: v for k, v in hal.items() if k not in _FREE_TABLES}
            evse = {**evse, "hal": rest}  # noqa: PLW2901
        sections.append(evse)
    return {**data, "evse": sections}, lifted


def _explicit(data: Any, i: int, *path: str) -> Any:
    """The value the file itself gives ``evse[i].<path>`` (None: not in the file)."""
    node = (
        data["evse"][i] if isinstance(data, dict) and isinstance(data.get("evse"), list) else None
    )
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _check_hal(config: StationConfig, raw: Any, source: str) -> None:
    """The file names each EVSE's HAL backend (no default: a misplaced key must not run a
    station on the simulated plant), a known one, with options it takes."""
    from hal import registry

    known = dict(registry.BUILTIN)  # the installed plug-ins only when a name is not built in
    for i, evse in enumerate(config.evse):
        for key, name, kind, table, options in (
            ("backend", _explicit(raw, i, "hal", "backend"), "board", "options", evse.hal_options),
            ("plc", evse.hal.plc, "plc", "plc_options", evse.hal_plc_options),
        ):
            info = known.get(name) if name is not None else None
            if (key == "backend" and name is None) or (
                name is not None and (info is None or info.kind != kind)
            ):
                known = registry.available()
                info = known.get(name) if name is not None else None
            names = ", ".join(sorted(n for n, b in known.items() if b.kind == kind))
            if key == "backend" and name is None:
                raise ConfigError(
                    f"{source}: missing required key evse[{i}].hal.backend "
                    f"(the [evse.hal] table names the board: {names})"
                )
            if name is None:
                continue
            if info is None or info.kind != kind:
                raise ConfigError(
                    f"{source}: evse[{i}].hal.{key}: no {kind} backend {name!r} (known: {names})"
                )
            try:
                registry.check_options(name, dict(options))
            except registry.UnknownOptionError as exc:
                raise ConfigError(
                    f"{source}: unknown key evse[{i}].hal.{table}.{exc.option} "
                    f"(the {name} backend takes: {', '.join(sorted(exc.known)) or 'none'})"
                ) from exc


def parse(data: Any, source: str) -> StationConfig:
    """Check parsed TOML; raises :class:`ConfigError` naming ``source``, key and reason."""
    raw = data
    data, lifted = _split_hal_options(data, source)
    config = load(StationConfig, data, source)
    if lifted:
        evses = tuple(replace(e, **lifted.get(i, {})) for i, e in enumerate(config.evse))  # type: ignore[arg-type]
        config = replace(config, evse=evses)
    _check_hal(config, raw, source)
    if config.ocpp is None:
        # certificate installation needs a back end: the CSMS (Get15118EVCertificate)
        for i in range(len(config.evse)):
            if _explicit(raw, i, "certificate_installation") is True:
                raise ConfigError(
                    f"{source}: evse[{i}].certificate_installation = true needs a certificate "
                    "back end: an [ocpp] section (or set it to false)"
                )
        evses = tuple(replace(e, certificate_installation=False) for e in config.evse)
        config = replace(config, evse=evses)
    return config


def load_file(path: Path) -> StationConfig:
    """Read and check the station's TOML file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    # the plain TOML of a station file without tomllib (issue 17); anything else with it
    data = read_plain_toml(text)
    if data is None:
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse(data, str(path))


def session_config(evse: EvseSection, *, tls: bool, trust: PncTrust) -> SessionConfig:
    """The core's view of one EVSE section."""
    return SessionConfig(
        evse_id=evse.evse_id,
        din_evse_id=evse.din_evse_id.lstrip("+") if evse.din_evse_id is not None else None,
        energy_modes=evse.energy_modes,
        ac=evse.ac,
        dc=evse.dc,
        tls=tls,
        protocols=tuple(PROTOCOLS[p] for p in evse.protocols),
        iso20_allow_tcp=evse.iso20_allow_tcp,
        iso20_control_modes=tuple(CONTROL_MODES[m] for m in evse.iso20_control_modes),
        pnc_enabled=evse.pnc,
        certificate_installation=evse.certificate_installation,
        free_service=evse.free_service,
        schedule_wait=evse.schedule_wait,
        meter_id=evse.meter_id,
        timers=evse.timers,
        trust=trust,
        bpt=evse.bpt,
        metering_confirmation=evse.metering_confirmation,
        tariff=evse.tariff,
    )
