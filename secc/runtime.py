"""The composition root: a station of one or more EVSEs, each with its interface, EVSE
ID, HAL board, SDP server, V2G server(s) and backend (local authorizer or OCPP bridge).

Theory of operation
-------------------
:class:`Station` reads the certificate store once (SECC chains for TLS, MO and V2G roots
for the core's contract checks), then starts every :class:`Evse`.  An EVSE opens its
board through :mod:`hal.registry` (or takes one given, e.g. the demo's simulated board),
runs :class:`hal.charging.ChargingRunner` when the board has a control pilot to drive
(``hal.control = "iec61851"``), serves V2G over TLS and/or TCP and answers SDP with
their ports.  Each accepted connection gets a :class:`~secc.aio.driver.SessionDriver`
(one core session).  While a session runs, the EVSE polls the board every
``hal.poll_interval`` (and at once after each HAL command) and feeds an ``EvseStatus``
when it changes; HAL faults become ``EvseFault``.  Authorization, certificate and
transaction actions go to the backend, whose answers come back as events.

Shutdown (SIGTERM in ``secc run``): SDP and V2G servers stop accepting, every session is
ended (the core opens the contactors), the runner opens the contactors again and the
board is closed; traces are flushed as each session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import logging
import os
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from ipaddress import IPv6Address
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certs.der import Cert
from certs.files import CertsError, StoreFiles, is_iso20_use, is_secc_use
from hal.api import Board, DcOutputDischarge
from hal.records import record
from hal.types import ContactorState, HalError, IsolationStatus, PlcStatus
from secc.aio.admission import Admission
from secc.aio.backends import (
    Backend,
    BackendFactory,
    CertificateBackend,
    LocalBackend,
    OcppBackends,
)
from secc.aio.plc_watch import LinkWatch, link_record, same_link
from secc.aio.sdp_server import SdpServer
from secc.aio.tls import LoadedChains, SeccChain, TlsSelector, station_tls
from secc.aio.v2g_server import V2GConnection, V2GServer
from secc.config import EvseSection, StationConfig, session_config
from secc.core.config import PausedSession, PncTrust, SessionConfig
from secc.errors import ConfigError
from secc.limits import TraceLimits
from secc.sdp import SdpOffer, SdpResponder

if TYPE_CHECKING:
    # the driver, the session core's actions and events, the traces, IEC 61851 control
    # and cryptography load after SDP-ready (cli.run.settle) or when first needed
    from cryptography import x509

    from hal.charging import ChargingRunner
    from secc.aio.driver import SessionDriver
    from secc.core.actions import Action, SessionEnded
    from secc.core.events import Event, EvseStatus
    from secc.trace import Record, Trace

log = logging.getLogger(__name__)

# The session core's classes the per-message path uses (HAL actions, status, faults),
# bound once by _bind_core() when the first session or status read needs them: the core
# loads after SDP-ready (tests/station/test_startup.py), so they cannot be imported at
# module level, and importing them inside the functions costs every message (issue 17).
_core_bound = False
_SetDcTarget: Any = None
_SessionStarted: Any = None
_EvseFault: Any = None
_evse_status: Callable[..., EvseStatus] | None = None  # EvseStatus, positional
_STATUS_FIELDS = ("present_voltage", "present_current", "isolation", "contactors_closed",
                  "energy_wh", "power_w", "energy_export_wh")  # fmt: skip


def _bind_core() -> None:
    """Bind the module's core names (see above); idempotent."""
    global _core_bound, _SetDcTarget, _SessionStarted, _EvseFault, _evse_status
    from secc.core.actions import SessionStarted, SetDcTarget
    from secc.core.construct import builder
    from secc.core.events import EvseFault, EvseStatus

    _SetDcTarget, _SessionStarted, _EvseFault = SetDcTarget, SessionStarted, EvseFault
    # (a status per SetDcTarget: without the frozen dataclass's keyword __init__)
    _evse_status = builder(EvseStatus, *_STATUS_FIELDS)
    _core_bound = True


__all__ = [
    "Backend",
    "BackendFactory",
    "CertificateBackend",
    "EndedSession",
    "Evse",
    "LocalBackend",
    "OcppBackends",
    "Station",
    "load_credentials",
]

# IMD readings that are an insulation test's result (pass: Valid / Warning; fail: Fault)
TEST_RESULTS = frozenset({IsolationStatus.VALID, IsolationStatus.WARNING, IsolationStatus.FAULT})
_ISOLATION_NAMES = {s: s.value for s in IsolationStatus}  # (.value: two Python calls)
DISCHARGE_TIMEOUT_S = 5.0  # the power module's output discharge after the insulation test


class OutputNotSafeError(HalError):
    """The power module could not be switched off / discharged after the insulation test."""


HISTORY = 16  # ended sessions an EVSE remembers (tests, demo, status)
HANDOVER_WAIT_S = 10.0  # Evse.attach_backend: the longest wait for the bridge's link

if TYPE_CHECKING:  # (a runtime alias with a forward reference compiles it: issue 17)
    Observer = Callable[[str, "Record"], None]  # (evse_id, trace record)


@record
class Credentials:
    """What the store gives the station at start."""

    chains: tuple[SeccChain, ...]
    trust: PncTrust
    iso20_chains: tuple[SeccChain, ...] = ()  # ISO 15118-20 SECC chains (TLS 1.3)
    # the -20 OEM and V2G roots (load_vehicle_roots) as read with the rest: the TLS 1.3
    # start contexts verify vehicle certificates against them
    vehicle_roots: tuple[Cert, ...] = ()


def load_credentials(config: StationConfig, utc_now: dt.datetime) -> Credentials:
    """The SECC chains to serve and the Plug & Charge trust anchors, read with the small
    DER reader (no cryptography before SDP-ready: :mod:`certs.der`)."""
    section = config.certs
    if section.store is None:
        log.warning("no certificate store configured: no TLS, no Plug & Charge")
        return Credentials((), PncTrust())
    if not section.store.is_dir():
        raise ConfigError(f"certs.store: {section.store} is not a directory")
    store = StoreFiles(section.store, key_password_file=section.key_password_file)
    try:
        v2g_roots = store.root_certs("v2g")
        mo_roots = store.root_certs("mo")
        chains: list[SeccChain] = []
        iso20_chains: list[SeccChain] = []
        for use in store.leaf_uses():
            if not is_secc_use(use):
                continue
            iso20 = is_iso20_use(use)
            certfile, keyfile = store.leaf_paths(use)
            chain = store.leaf_certs(use)
            root = _root_of(chain, v2g_roots)
            if root is None:
                log.error("SECC chain %s: no installed V2G root issued it; not served", use)
                continue
            (iso20_chains if iso20 else chains).append(
                SeccChain(
                    certfile,
                    keyfile,
                    root,
                    store.key_password(),
                    name=use,
                    locate=functools.partial(store.leaf_paths, use),
                )
            )
        iso20_roots = _iso20_roots(store, v2g_roots)
    except CertsError as exc:
        raise ConfigError(f"certs.store: {section.store}: {exc}") from exc
    trust = _trust_of(store, mo_roots, v2g_roots, iso20_roots)
    return Credentials(tuple(chains), trust, tuple(iso20_chains), iso20_roots)


class StoreTrust(PncTrust):
    """The Plug & Charge trust anchors as the store's DER: cryptography parses them only
    when the core first reads ``roots`` or ``oem_roots`` (a contract or provisioning
    chain check), so that EIM sessions never load it (issue 17: about 10 MiB).  Equal
    when the DER is."""

    __slots__ = ("_ders", "_oem_ders", "_parsed")
    _ders: tuple[bytes, ...]
    _oem_ders: tuple[bytes, ...]
    _parsed: tuple[tuple[x509.Certificate, ...], tuple[x509.Certificate, ...]] | None

    def __init__(self, ders: tuple[bytes, ...], oem_ders: tuple[bytes, ...]) -> None:
        object.__setattr__(self, "_ders", ders)
        object.__setattr__(self, "_oem_ders", oem_ders)
        object.__setattr__(self, "_parsed", None)
        object.__setattr__(self, "revoked", frozenset())

    @property
    def ders(self) -> tuple[bytes, ...]:
        return self._ders

    @property
    def oem_ders(self) -> tuple[bytes, ...]:
        return self._oem_ders

    def _load(self) -> tuple[tuple[x509.Certificate, ...], tuple[x509.Certificate, ...]]:
        parsed: tuple[tuple[x509.Certificate, ...], tuple[x509.Certificate, ...]] | None
        parsed = self._parsed
        if parsed is None:
            from certs._util import CertificateFormatError, load_certificate

            def certs(ders: tuple[bytes, ...]) -> tuple[x509.Certificate, ...]:
                out = []
                for d in ders:
                    try:
                        out.append(load_certificate(d))
                    except CertificateFormatError:
                        continue  # skipped, as Store.roots skips a damaged file
                return tuple(out)

            parsed = (certs(self._ders), certs(self._oem_ders))
            object.__setattr__(self, "_parsed", parsed)
        return parsed

    @property
    def roots(self) -> tuple[x509.Certificate, ...]:
        return self._load()[0]

    @property
    def oem_roots(self) -> tuple[x509.Certificate, ...]:
        return self._load()[1]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StoreTrust):
            return (self._ders, self._oem_ders, self.revoked) == (
                other._ders,
                other._oem_ders,
                other.revoked,
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._ders, self._oem_ders, self.revoked))

    def __repr__(self) -> str:
        return f"StoreTrust({len(self._ders)} roots, {len(self._oem_ders)} OEM roots)"


def trust_ders(trust: PncTrust) -> tuple[list[bytes], list[bytes]]:
    """The DER of ``trust``'s roots and OEM roots (for the trace header)."""
    if isinstance(trust, StoreTrust):
        return list(trust.ders), list(trust.oem_ders)
    from cryptography.hazmat.primitives.serialization import Encoding

    return (
        [c.public_bytes(Encoding.DER) for c in trust.roots],
        [c.public_bytes(Encoding.DER) for c in trust.oem_roots],
    )


def _trust_of(
    store: StoreFiles,
    mo_roots: list[Cert],
    v2g_roots: list[Cert],
    iso20_roots: tuple[Cert, ...] | None = None,
) -> PncTrust:
    """The Plug & Charge trust anchors: contracts chain to an MO or V2G root (-2 and -20
    alike; the core checks the key types per protocol); a -20 OEM provisioning chain to a
    -20 OEM or V2G root (``iso20_roots``: :func:`_iso20_roots`, when read already)."""
    if iso20_roots is None:
        iso20_roots = _iso20_roots(store, v2g_roots)
    return StoreTrust(
        tuple(c.der for c in (*mo_roots, *v2g_roots)), tuple(c.der for c in iso20_roots)
    )


def _iso20_roots(store: StoreFiles, v2g_roots: list[Cert]) -> tuple[Cert, ...]:
    """The -20 OEM and V2G roots: what a -20 OEM provisioning chain and a vehicle
    certificate (mutual TLS 1.3) are verified against."""
    return tuple(c for c in (*store.root_certs("oem"), *v2g_roots) if c.is_iso20)


def load_trust(config: StationConfig) -> PncTrust | None:
    """The contract and OEM provisioning trust anchors as the store holds them now: read
    for every new session, so roots installed or deleted over OCPP (M04, M05) apply to the
    next one (-2 and -20 alike).  ``None`` (keep the previous trust) when the store cannot
    be read."""
    if config.certs.store is None:
        return None
    try:
        store = StoreFiles(config.certs.store, key_password_file=config.certs.key_password_file)
        return _trust_of(store, store.root_certs("mo"), store.root_certs("v2g"))
    except (CertsError, OSError) as exc:
        log.error("certs.store: cannot read the trust anchors (%s); keeping the last ones", exc)
        return None


def load_vehicle_roots(config: StationConfig) -> tuple[Cert, ...]:
    """The -20 OEM and V2G roots a vehicle certificate (mutual TLS 1.3) is verified
    against, as the store holds them now: asked for every TLS 1.3 handshake, so roots
    installed or deleted over OCPP apply to the next connection.  Empty when there is no
    store or it cannot be read (then no vehicle certificate is requested)."""
    if config.certs.store is None:
        return ()
    try:
        store = StoreFiles(config.certs.store, key_password_file=config.certs.key_password_file)
        return _iso20_roots(store, store.root_certs("v2g"))
    except (CertsError, OSError) as exc:
        log.error("certs.store: cannot read the vehicle trust anchors (%s)", exc)
        return ()


def _root_of(chain: list[Cert], roots: list[Cert]) -> Cert | None:
    top = chain[-1]
    for root in roots:
        if root.subject == top.issuer:
            return root
    return None


# EndReason values (a StrEnum is equal to its value; the core loads after SDP-ready)
TECHNICAL_ENDS = frozenset({"connection_lost", "sequence_timeout", "sequence_error", "timeout"})


def technical_failure(ended: SessionEnded) -> bool:
    """Whether a session failed for technical reasons (the link, the EV's protocol or
    timing), where IEC 61851 basic charging may take over (``basic_fallback``); a
    session the station refused (a FAILED_* answer: authorization, contract, payment,
    energy mode; a stop by the station or the CSMS; a fault) never falls back.  A
    connection that fails before SessionSetup (no common protocol, say) never claimed
    the EVSE and does not drive the control: ``hlc_start_timeout`` covers that EV."""
    return ended.reason in TECHNICAL_ENDS


def server_limits(admission: Admission) -> dict[str, Any]:
    """The V2GServer arguments that enforce an EVSE's ``[evse.limits]``."""
    limits = admission.limits
    return {
        "admission": admission,
        "handshake_timeout": limits.handshake_timeout,
        "accept_stall": limits.accept_stall,
    }


def connection_config(config: SessionConfig, conn: V2GConnection, backend: Any) -> SessionConfig:
    """What one connection's session offers: Contract payment only over TLS (the plain
    TCP port is EIM only), ISO 15118-20 only over TLS 1.3 (``tls13``), the certificate
    service only when the backend can serve it."""
    changes: dict[str, Any] = {}
    if config.tls != conn.tls:
        changes["tls"] = conn.tls
    # ISO 15118-20 may be chosen only on a TLS 1.3 connection (or TCP in a lab)
    if config.tls13 != (conn.tls_version == "TLSv1.3"):
        changes["tls13"] = conn.tls_version == "TLSv1.3"
    # the vehicle chain the TLS 1.3 handshake verified (mutual TLS) goes with it
    if config.vehicle_chain != conn.vehicle_chain:
        changes["vehicle_chain"] = conn.vehicle_chain
    if (
        config.certificate_installation
        and isinstance(backend, LocalBackend)
        and backend.certificates is None
    ):
        changes["certificate_installation"] = False
    return dataclasses.replace(config, **changes) if changes else config


@record
class EndedSession:
    """What an EVSE remembers of a session that ended (no sockets, no core objects)."""

    evse_id: str
    session_id: str
    peer: str
    tls: bool
    end: SessionEnded
    trace: Path | None


class Evse:
    """One charge point: its board, servers and the sessions on them."""

    def __init__(
        self,
        section: EvseSection,
        config: SessionConfig,
        board: Board,
        tls: TlsSelector | None,
        *,
        backend_factory: BackendFactory,
        trace_dir: Path | None,
        pcap: bool = False,
        observer: Observer | None,
        utc_now: Callable[[], dt.datetime],
        random_bytes: Callable[[int], bytes],
        trace_limits: TraceLimits | None = None,
    ) -> None:
        self.section = section
        self.trace_limits = trace_limits or TraceLimits()
        self.config = config
        self.board = board
        self.tls = tls
        self.trace_dir = trace_dir
        self.pcap = pcap
        self.observer = observer
        self.utc_now = utc_now
        self.random_bytes = random_bytes
        self.backend = backend_factory(section, self._emit)
        self.trust_source: Callable[[], PncTrust | None] | None = None  # per-session roots
        self.runner: ChargingRunner | None = None
        if section.hal.control == "iec61851":
            from hal.charging import ChargingRunner
            from hal.control import ControlConfig

            dc = any(m.startswith("DC") for m in section.energy_modes)
            control = ControlConfig(
                basic_fallback=section.hal.basic_fallback and not dc,
                hlc_start_timeout_s=section.hal.hlc_start_timeout,
                basic_after_refusal=section.hal.basic_after_refusal,
                slac_retries=section.hal.slac_retries,
                slac_retry_pause_s=section.hal.slac_retry_pause,
            )
            self.runner = ChargingRunner(board, control, slac_timeout_s=section.hal.slac_wait)
        self._closing = False
        self.admission = Admission(section.limits)  # both servers' connections together
        self.sdp: SdpServer | None = None
        self.servers: list[V2GServer] = []
        self.drivers: set[SessionDriver] = set()
        self.active: SessionDriver | None = None
        self.paused: PausedSession | None = None
        # the last sessions' ends and trace files (bounded: a station runs for years)
        self.ended: deque[EndedSession] = deque(maxlen=HISTORY)
        self.trace_files: deque[Path] = deque(maxlen=HISTORY)
        self._poke = asyncio.Event()
        self._poll_due = 0.0  # loop time of the next status read without a poke
        self._poll_timer: asyncio.TimerHandle | None = None
        # a DC insulation test (cable check): None, "starting" (being started), "running"
        # (started, no result read yet); the first result read switches the power module
        # off and discharges the output.  _isolation_starts tells readings apart that
        # straddle a start (they predate the test: not its result)
        self._isolation_test: str | None = None
        self._isolation_starts = 0
        # a test passed in the running session: the IMD's Valid / Warning is that test's
        # (a monitor reading Valid before any test has not tested this cable)
        self._isolation_passed = False
        self._ports: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._spawned: set[asyncio.Task[None]] = set()
        # the PLC link (SLAC, D-LINK_READY): to the trace and the backend; which EV it is
        self.link_watch: LinkWatch | None = None
        if board.plc is not None:
            self.link_watch = LinkWatch(
                board.plc, self._link_changed, name=section.evse_id, lost=self._link_lost
            )

    @property
    def evse_id(self) -> str:
        return self.section.evse_id

    def attach_backend(self, factory: BackendFactory) -> None:
        """Replace the :class:`PendingBackend` by the backend ``factory`` builds, which
        gets everything the stand-in kept, in order.  When the stand-in kept something
        (a session started meanwhile) and the backend is an OCPP bridge, that is handed
        over once the bridge is online (at most ``HANDOVER_WAIT_S`` later; until then
        the stand-in keeps what comes next), so that a session started in the first
        moments is not judged offline only because its bridge had no time to connect."""
        pending = self.backend
        backend = factory(self.section, self._emit)
        if not isinstance(pending, PendingBackend) or not pending.calls:
            self.backend = backend
            return
        self._spawn(self._hand_over(pending, backend))

    async def _hand_over(self, pending: PendingBackend, backend: Backend) -> None:
        online = getattr(getattr(backend, "client", None), "online", None)
        if isinstance(online, asyncio.Event):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HANDOVER_WAIT_S):
                    await online.wait()
        self.backend = backend
        pending.hand_over(backend)

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        s = self.section
        host = s.address
        if s.interface and IPv6Address(s.address).is_link_local:
            host = f"{s.address}%{s.interface}"
        ports: dict[str, int | None] = {"tls": None, "tcp": None}
        if self.runner is not None:
            await self.runner.start()
        for kind, port in (("tls", s.tls_port), ("tcp", s.tcp_port)):
            if port < 0 or (kind == "tls" and self.tls is None):
                continue
            server = V2GServer(
                self._make_driver,
                host=host,
                port=port,
                interface=s.interface,
                tls=self.tls if kind == "tls" else None,
                **server_limits(self.admission),
            )
            await server.start()
            self.servers.append(server)
            ports[kind] = self._ports[kind] = server.port
        if not self.servers:
            raise ConfigError(
                f"evse {s.evse_id}: nothing to serve (TLS needs a SECC chain in the store; "
                "set tcp_port to serve plain TCP)"
            )
        offer = SdpOffer(IPv6Address(s.address), tls_port=ports["tls"], tcp_port=ports["tcp"])
        self.sdp = SdpServer(
            SdpResponder(offer),
            interface=s.interface,
            host="::" if s.interface else s.address,
            port=s.sdp_port,
        )
        await self.sdp.start()
        self._tasks.append(asyncio.create_task(self._poll_loop(), name=f"poll-{s.evse_id}"))
        if self.runner is not None:
            self._tasks.append(asyncio.create_task(self._fault_loop(), name=f"faults-{s.evse_id}"))
        if self.board.token_reader is not None:
            self._tasks.append(asyncio.create_task(self._token_loop(), name=f"tokens-{s.evse_id}"))
        if self.link_watch is not None:
            self._tasks.append(asyncio.create_task(self.link_watch.run(), name=f"plc-{s.evse_id}"))

    @property
    def ports(self) -> dict[str, int]:
        return dict(self._ports)

    async def aclose(self) -> None:
        from secc.core.events import StopRequested

        self._closing = True
        if self.sdp is not None:
            await self.sdp.aclose()
        for driver in list(self.drivers):
            with contextlib.suppress(Exception):
                await driver.feed(StopRequested("station shutdown"))
            await driver.aclose("station shutdown")
        for server in self.servers:
            await server.aclose()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.runner is not None:
            await self.runner.aclose()
        else:
            with contextlib.suppress(HalError):
                await self.board.contactors.open(timeout=0.5)
        await self.board.aclose()

    @property
    def healthy(self) -> bool:
        """Its servers accept connections and its HAL loops still run."""
        return all(s.serving for s in self.servers) and not any(t.done() for t in self._tasks)

    # --- sessions -------------------------------------------------------------------------

    def _make_driver(self, conn: V2GConnection) -> SessionDriver:
        """A new connection starts a new session, which gets the EVSE (HAL, backend,
        status) only when its SessionSetupReq claims it (:meth:`claim`): a connection
        alone never touches a running session."""
        trust = self.trust_source() if self.trust_source is not None else None
        if trust is not None and trust != self.config.trust:
            self.config = replace(self.config, trust=trust)
        config = connection_config(self.config, conn, self.backend)
        from secc.aio.driver import SessionDriver

        driver = SessionDriver(
            conn,
            config,
            self,
            make_trace=functools.partial(self._make_trace, config=config),
            random_bytes=self.random_bytes,
            utc_now=self.utc_now,
            resume=self.paused,
        )
        self.drivers.add(driver)
        return driver

    def claim(self, driver: SessionDriver, evcc_id: bytes) -> bool:
        """A SessionSetupReq asks for the EVSE: granted when no session runs, or when
        the running one is the same EV's (its EVCCID, or the same link: the source
        address, or the link-local address of the EV's MAC from SLAC) and it has gone
        silent (a half-open connection of an EV that reconnected); that one is then
        ended."""
        old = self.active
        if old is not None and old is not driver and old.ended is None:
            silence = self.section.limits.replace_after_silence
            ev_mac = self.link_watch.ev_mac if self.link_watch is not None else None
            link = same_link(str(old.conn.peer[0]), str(driver.conn.peer[0]), ev_mac)
            if (old.evcc_id != evcc_id and not link) or old.silent_for < silence:
                log.warning("%s: SessionSetupReq from %s (EVCCID %s) refused: the session "
                            "of EVCCID %s runs", self.evse_id, driver.conn.peer[0],
                            evcc_id.hex(), (old.evcc_id or b"").hex())  # fmt: skip
                return False
            log.warning("%s: EVCCID %s (%s) set up a new session: ending the silent one "
                        "of the same %s", self.evse_id, evcc_id.hex(), driver.conn.peer[0],
                        "EV" if old.evcc_id == evcc_id else "link")  # fmt: skip
            self._spawn(old.aclose("replaced by a new session of the same EV"))
        self.paused = None  # the session took the paused one (or started afresh)
        driver.claimed = True
        self.active = driver
        self._poke.set()
        if self.board.plc is not None:
            self._spawn(self._trace_link(driver))
        return True

    async def _trace_link(self, driver: SessionDriver) -> None:
        """The PLC link as the session starts (SLAC match, D-LINK_READY) in its trace."""
        assert self.board.plc is not None
        try:
            status = await self.board.plc.status()
        except HalError as exc:
            driver.trace.write({"kind": "link", "error": str(exc)})
            return
        driver.trace.write(link_record(status))

    def _link_changed(self, status: PlcStatus) -> None:
        """The PLC link changed: the running session's trace and the backend hear it."""
        driver = self.active
        if driver is not None and driver.ended is None:
            driver.trace.write(link_record(status))
        report = getattr(self.backend, "plc_link", None)
        if report is not None:
            report(status)

    def _link_lost(self, status: PlcStatus) -> None:
        """The PLC link stayed down past its grace (D-LINK_ERROR, secc.aio.plc_watch): the
        session over it ends as a lost connection (the core's safe end: DC output off,
        then the contactors open, then the TCP connection closes; the backend hears the
        end), and the EVSE leaves the logical network so that the next EV matches
        afresh (with a charging control, the runner hears the failed session)."""
        from secc.core.events import ConnectionLost

        driver = self.active
        reason = f"PLC link lost (D-LINK_ERROR): {status.detail or status.state.value}"
        if driver is not None and driver.ended is None:
            self._spawn(driver.feed(ConnectionLost(reason)))
        if self.runner is None and self.board.plc is not None:
            self._spawn(self._leave_link(reason))

    async def _leave_link(self, reason: str) -> None:
        assert self.board.plc is not None
        try:
            await self.board.plc.stop()
        except HalError as exc:
            log.warning("%s: %s; leaving the PLC link failed: %s", self.evse_id, reason, exc)

    def _make_trace(self, header: dict[str, Any], config: SessionConfig | None = None) -> Trace:
        from secc.trace import Pcap, Trace, config_record, trace_name

        header["config"] = config_record(config or self.config)
        roots, oem_roots = trust_ders(self.config.trust)
        header["trust"] = [d.hex() for d in roots]
        header["oem_trust"] = [d.hex() for d in oem_roots]
        path = None
        pcap = None
        if self.trace_dir is not None:
            path = self.trace_dir / trace_name(self.evse_id, self.utc_now(), os.urandom(3).hex())
            self.trace_files.append(path)
            if self.pcap:
                station = (str(header["station"][0]), int(header["station"][1]))
                peer = (str(header["peer"]), int(header["peer_port"]))
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    pcap = Pcap(path.with_suffix(".pcap"), station, peer)
                except OSError as exc:
                    log.error("%s: cannot write the pcap: %s", self.evse_id, exc)
        observer = None
        if self.observer is not None:
            obs, evse_id = self.observer, self.evse_id
            observer = lambda record: obs(evse_id, record)  # noqa: E731
        return Trace(path, header, observer=observer, pcap=pcap, limits=self.trace_limits)

    def session_ended(self, driver: SessionDriver) -> None:
        self.drivers.discard(driver)
        if driver.ended is not None:
            self.ended.append(
                EndedSession(
                    evse_id=self.evse_id,
                    session_id=driver.session.session_id.hex(),
                    peer=str(driver.conn.peer[0]),
                    tls=driver.conn.tls,
                    end=driver.ended,
                    trace=driver.trace.path,
                )
            )
        if self.active is not driver:
            return  # never claimed the EVSE, or replaced: the running session owns it
        # the next session tests its cable again (the core stopped the DC output already)
        self._isolation_test, self._isolation_passed = None, False
        if driver.session.paused is not None:
            self.paused = driver.session.paused
        self.active = None
        if self.runner is not None and driver.ended is not None and not self._closing:
            ok = driver.ended.reason in ("ev_stop", "ev_pause")  # EndReason values
            refused = not technical_failure(driver.ended)
            self._spawn(
                self.runner.hlc_finished()
                if ok
                else self.runner.hlc_failed(driver.ended.detail, refused=refused)
            )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    def _emit(self, event: Event) -> None:
        if self.active is not None:
            self.active.feed_soon(event)
        else:
            log.info("%s: %s with no session running; dropped", self.evse_id, type(event).__name__)

    # --- HAL ------------------------------------------------------------------------------

    def perform_backend(self, action: Action) -> None:
        if not _core_bound:
            _bind_core()
        if isinstance(action, _SessionStarted) and self.runner is not None:
            self._spawn(self.runner.hlc_started())
        self.backend.perform(action)

    async def perform_hal(self, action: Action) -> Event | None:
        if not _core_bound:
            _bind_core()
        if type(action) is _SetDcTarget:  # the charging loop's action, every message
            target: Any = action
            fault: Event | None = None
            dc = self.board.dc_supply
            try:
                if dc is None:
                    fault = _EvseFault("dc_supply", "the board has no DC supply")
                else:
                    await dc.set_target(target.voltage, target.current)
                    await dc.enable(True)
            except HalError as exc:
                fault = _EvseFault(type(exc).__name__, f"SetDcTarget: {exc}")
            finally:
                self._poke.set()
            return fault
        return await self._perform_hal(action)

    async def _perform_hal(self, action: Action) -> Event | None:
        from secc.core.actions import (
            CloseContactors,
            OpenContactors,
            SetDcTarget,
            StartIsolationTest,
            StopDcOutput,
        )
        from secc.core.events import EvseFault

        board = self.board
        try:
            match action:
                case CloseContactors():
                    if self.runner is not None:
                        await self.runner.power(True)
                    else:
                        await board.contactors.close()
                case OpenContactors():
                    if self.runner is not None:
                        await self.runner.power(False)
                    await board.contactors.open()
                case StartIsolationTest(voltage=v):
                    if board.isolation is None or board.dc_supply is None:
                        return EvseFault("isolation", "no isolation monitor / DC supply")
                    self._isolation_test = "starting"
                    self._isolation_starts += 1
                    self._isolation_passed = False
                    await board.dc_supply.set_target(v, 0.0)
                    await board.dc_supply.enable(True)
                    await board.isolation.start()
                    self._isolation_test = "running"
                case SetDcTarget(voltage=v, current=i):
                    if board.dc_supply is None:
                        return EvseFault("dc_supply", "the board has no DC supply")
                    await board.dc_supply.set_target(v, i)
                    await board.dc_supply.enable(True)
                case StopDcOutput():
                    try:
                        if self._isolation_test:  # the session ends during the cable check
                            await self._output_off("insulation test aborted")
                        elif board.dc_supply is not None:
                            await board.dc_supply.enable(False)
                    finally:
                        if board.isolation is not None:
                            await board.isolation.stop()
                case _:
                    pass
        except HalError as exc:
            return EvseFault(type(exc).__name__, f"{type(action).__name__}: {exc}")
        finally:
            self._poke.set()
        return None

    async def _output_off(self, why: str) -> None:
        """The end of the insulation test (pass, fail or abort): power module off and its
        output discharged (a module without ``discharge_output``: off only), so that
        pre-charge starts from a discharged output (IEC 61851-23)."""
        self._isolation_test = None
        dc = self.board.dc_supply
        if dc is None:
            return
        await dc.enable(False)
        if isinstance(dc, DcOutputDischarge):
            await dc.discharge_output(DISCHARGE_TIMEOUT_S)
            log.info("%s: %s: power module off, output discharged", self.evse_id, why)
        else:
            log.info("%s: %s: power module off (no output discharge)", self.evse_id, why)

    async def read_status(self) -> EvseStatus:
        """The EVSE's facts now.  The IMD is read first: the first result of an insulation
        test switches the power module off and discharges the output before anything
        else is read, so no status with the result (hence no CableCheck Finished) is
        fed before that command; OutputNotSafeError if it fails."""
        if not _core_bound:
            _bind_core()
        board = self.board
        isolation = "No_IMD" if board.isolation is None else "Invalid"
        if board.isolation is not None:
            before = (self._isolation_starts, self._isolation_test)
            reading = await board.isolation.read()
            isolation = _ISOLATION_NAMES[reading.status]
            passed = reading.status in (IsolationStatus.VALID, IsolationStatus.WARNING)
            straddled = (self._isolation_starts, self._isolation_test) != before
            if passed and (straddled or before[1] == "starting"):
                isolation = "Invalid"  # read while the test was starting: not its result
            elif before[1] == "running" and not straddled and reading.status in TEST_RESULTS:
                try:
                    await self._output_off(f"insulation test {isolation}")
                except HalError as exc:
                    raise OutputNotSafeError(f"after the insulation test: {exc}") from exc
                self._isolation_passed = passed
            elif passed and not self._isolation_passed:
                isolation = "Invalid"  # no test of this cable yet (Fault is never hidden)
        closed = await board.contactors.feedback() is ContactorState.CLOSED
        voltage = current = energy = power = export = 0.0
        if board.meter is not None:
            m = await board.meter.read()
            energy, power, export = m.energy_wh, m.power_w, m.energy_export_wh
            voltage = m.voltage_v[0] if m.voltage_v and closed else 0.0
            current = m.current_a[0] if m.current_a and closed else 0.0
        if board.dc_supply is not None:
            present = await board.dc_supply.present()
            if present.enabled:
                voltage = present.voltage_v
                current = present.current_a if closed else 0.0
        assert _evse_status is not None
        # (in the order of _STATUS_FIELDS)
        return _evse_status(voltage, current, isolation, closed, energy, power, export)

    async def _poll_loop(self) -> None:
        """Read the board's status while a session runs: after every HAL action (the
        poke) and ``poll_interval`` after the last read without one; feed it when it
        changed.  The interval is one timer re-armed when it fires (:meth:`_poll_tick`),
        not a timeout per read: the charging loop pokes after every SetDcTarget."""
        loop = asyncio.get_running_loop()
        interval = self.section.hal.poll_interval
        last: EvseStatus | None = None
        try:
            while True:
                if self.active is None:
                    self._poke.clear()
                    await self._poke.wait()
                    last = None
                    continue
                self._poke.clear()
                try:
                    status = await self.read_status()
                except OutputNotSafeError as exc:
                    log.error("%s: %s", self.evse_id, exc)
                    if self.active is not None:
                        await self.active.feed(_EvseFault("dc_supply", str(exc)))
                except HalError as exc:
                    log.warning("%s: reading the board failed: %s", self.evse_id, exc)
                except Exception:  # a backend bug must not stop the status polls
                    log.exception("%s: reading the board failed", self.evse_id)
                else:
                    driver = self.active
                    if status != last and driver is not None:
                        last = status
                        self.backend.evse_status(status)
                        await driver.feed(status)
                # the next read: at the next poke, at the latest ``interval`` from now
                self._poll_due = loop.time() + interval
                if self._poll_timer is None:
                    self._poll_timer = loop.call_at(self._poll_due, self._poll_tick)
                await self._poke.wait()
        finally:
            if self._poll_timer is not None:
                self._poll_timer.cancel()
                self._poll_timer = None

    def _poll_tick(self) -> None:
        """The poll timer fired: poke the poll loop if ``poll_interval`` has passed since
        its last read, else wait on until then (reads came in between)."""
        timer, self._poll_timer = self._poll_timer, None
        if timer is not None and self._poll_due > timer.when():
            self._poll_timer = asyncio.get_running_loop().call_at(self._poll_due, self._poll_tick)
        else:
            self._poke.set()

    async def _fault_loop(self) -> None:
        assert self.runner is not None
        while True:
            fault = await self.runner.faults.get()
            if self.active is not None:
                if not _core_bound:  # (the core's events: not before SDP-ready)
                    _bind_core()
                await self.active.feed(_EvseFault(fault.fault.value, fault.detail))

    async def _token_loop(self) -> None:
        """Tokens from the board's reader (RFID) go to the backend (OCPP C01: Authorize)."""
        reader = self.board.token_reader
        assert reader is not None
        while True:
            try:
                token = await reader.read()
            except HalError as exc:
                log.warning("%s: token reader: %s", self.evse_id, exc)
                await asyncio.sleep(1.0)
                continue
            present = getattr(self.backend, "present_token", None)
            if present is None:
                log.info("%s: token %s ignored (no OCPP backend)", self.evse_id, token.kind)
                continue
            log.info("%s: %s token presented", self.evse_id, token.kind)
            present(token.id_token, token.kind)


class PendingBackend:
    """Stands in for an EVSE's OCPP bridge until it is built (``secc run`` builds it
    after SDP-ready: importing ocpp, jsonschema and websockets costs more than the whole
    start-up budget).  Keeps everything the EVSE hands its backend, in order, and gives
    it to the bridge when it is attached (:meth:`Evse.attach_backend`): a session that
    starts in that window is authorized and reported as if the bridge had been there."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def perform(self, action: Action) -> None:
        self.calls.append(("perform", (action,)))

    def evse_status(self, status: EvseStatus) -> None:
        self.calls.append(("evse_status", (status,)))

    def present_token(self, id_token: str, kind: str) -> None:
        self.calls.append(("present_token", (id_token, kind)))

    def plc_link(self, status: PlcStatus) -> None:
        self.calls.append(("plc_link", (status,)))

    def hand_over(self, backend: Backend) -> None:
        calls, self.calls = self.calls, []
        for name, args in calls:
            method = getattr(backend, name, None)
            if method is not None:
                method(*args)


class Station:
    """Every EVSE of one configuration, started and stopped together."""

    def __init__(
        self,
        config: StationConfig,
        *,
        boards: Mapping[str, Board] | None = None,
        backend_factory: BackendFactory | None = None,
        observer: Observer | None = None,
        utc_now: Callable[[], dt.datetime] | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.config = config
        self._boards = dict(boards or {})
        self._custom_backend = backend_factory is not None
        self._ocpp: OcppBackends | None = None
        self.backend_factory = backend_factory or (
            lambda section, emit: LocalBackend(config.authorization, emit)
        )
        self.observer = observer
        self.utc_now = utc_now or (lambda: dt.datetime.now(dt.UTC))
        self.random_bytes = random_bytes
        self.evses: list[Evse] = []

    @property
    def healthy(self) -> bool:
        """Every EVSE serves (the systemd watchdog is fed only while this holds)."""
        return bool(self.evses) and all(e.healthy for e in self.evses)

    def evse(self, evse_id: str) -> Evse:
        for e in self.evses:
            if e.evse_id == evse_id:
                return e
        raise KeyError(evse_id)

    async def start(
        self, *, defer_ocpp: bool = False, tls_loaded: LoadedChains | None = None
    ) -> None:
        """Start every EVSE.  ``defer_ocpp``: with an ``[ocpp]`` section, the EVSEs start
        with a :class:`PendingBackend` and the bridges are built by :meth:`start_ocpp`
        (``secc run`` calls it right after SDP-ready).  ``tls_loaded``: the SECC chains
        as the start-up checks loaded them (:func:`secc.preflight.check_station`), served
        instead of loaded again."""
        from hal import registry

        factory = self.backend_factory
        if self.config.ocpp is not None and not self._custom_backend:
            ocpp = OcppBackends(self.config)
            self._ocpp = ocpp
            self.backend_factory = factory = ocpp
            if defer_ocpp:
                factory = lambda section, emit: PendingBackend()  # noqa: E731
        creds = load_credentials(self.config, self.utc_now())
        st = self.config.station
        tls = station_tls(
            creds.chains,
            keylog_file=st.tls_keylog,
            iso20_chains=creds.iso20_chains,
            vehicle_roots=functools.partial(load_vehicle_roots, self.config),
            vehicle_roots_now=creds.vehicle_roots,
            loaded=tls_loaded,
        )
        try:
            for section in self.config.evse:
                board = self._boards.get(section.evse_id)
                if board is None:
                    board = await registry.open_board(
                        section.hal.backend,
                        dict(section.hal_options),
                        plc=section.hal.plc,
                        plc_options=dict(section.hal_plc_options),
                    )
                if self._ocpp is not None:  # its lock and station hooks (hal.hooks)
                    self._ocpp.add_board(section, board)
                # TLS 1.3 (ISO 15118-20) only for an EVSE offering -20
                evse_tls = None if tls is None else tls.for_evse(offer_tls13=section.offers_iso20)
                if evse_tls is not None and not evse_tls.usable:
                    log.warning(
                        "%s: only ISO 15118-20 SECC chains are installed and it does not offer "
                        "-20: no TLS",
                        section.evse_id,
                    )
                    evse_tls = None
                elif section.offers_iso20 and (evse_tls is None or not evse_tls.tls13):
                    log.warning(
                        "%s: offers ISO 15118-20 but no -20 SECC chain is installed (store slot "
                        "v2g20): -20 needs TLS 1.3 with it%s",
                        section.evse_id,
                        "; iso20_allow_tcp: plain TCP only (lab)"
                        if section.iso20_allow_tcp
                        else "",
                    )
                evse = Evse(
                    section,
                    session_config(section, tls=evse_tls is not None, trust=creds.trust),
                    board,
                    evse_tls,
                    backend_factory=factory,
                    trace_dir=st.trace_dir,
                    pcap=st.pcap,
                    observer=self.observer,
                    utc_now=self.utc_now,
                    random_bytes=self.random_bytes,
                    trace_limits=st.traces,
                )
                evse.trust_source = functools.partial(load_trust, self.config)
                self.evses.append(evse)
                await evse.start()
        except BaseException:
            await self.aclose()
            raise

    def start_ocpp(self) -> None:
        """Build the OCPP bridge of every EVSE still waiting for it (``start(defer_ocpp=
        True)``) and hand it what the EVSE gave its stand-in meanwhile."""
        if self._ocpp is None:
            return
        for evse in self.evses:
            if isinstance(evse.backend, PendingBackend):
                evse.attach_backend(self._ocpp)

    async def aclose(self) -> None:
        for evse in self.evses:
            try:
                await evse.aclose()
            except Exception:
                log.exception("%s: shutdown failed", evse.evse_id)
        if self._ocpp is not None:
            await self._ocpp.aclose()

    async def __aenter__(self) -> Station:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
