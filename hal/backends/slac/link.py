"""AF_PACKET adapter: runs :class:`~.matcher.EvseMatcher` on the PLC modem's interface.

Needs CAP_NET_RAW (root or ``setcap cap_net_raw+ep``).  Frames of EtherType 0x88E1 are
read with a non-blocking packet socket on the event loop; the matcher's deadline is kept
with ``loop.call_at``.  :class:`SlacLink` implements :class:`hal.api.PlcLink`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hal.backends.slac.matcher import (
    Action,
    Event,
    EvseMatcher,
    Failed,
    FrameIn,
    Ignored,
    LinkLost,
    LinkReady,
    LinkUnconfirmed,
    Matched,
    Send,
    SessionDropped,
    SlacTimers,
    Start,
    State,
    Stop,
    Tick,
)
from hal.backends.slac.mme import ETHERTYPE_HOMEPLUG, QCA_LOCAL_MAC, MmeError, decode
from hal.registry import check_options
from hal.types import HalTimeoutError, PlcState, PlcStatus, UnavailableError

log = logging.getLogger(__name__)

PACKET_OUTGOING = 4  # sll_pkttype of frames this host sent itself
TRACE_LEN = 512


def open_packet_socket(ifname: str) -> socket.socket:
    """A raw, non-blocking packet socket bound to ``ifname`` for EtherType 0x88E1."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE_HOMEPLUG))
    except PermissionError as exc:
        raise UnavailableError("raw sockets need CAP_NET_RAW (run as root or setcap)") from exc
    try:
        sock.bind((ifname, ETHERTYPE_HOMEPLUG))
    except OSError as exc:
        sock.close()
        raise UnavailableError(f"cannot bind to interface {ifname!r}: {exc}") from exc
    sock.setblocking(False)
    return sock


def interface_mac(sock: socket.socket) -> bytes:
    addr = sock.getsockname()
    mac = addr[4]
    assert isinstance(mac, bytes)
    return mac


def mme_name(data: bytes) -> str:
    try:
        msg = decode(data).message
    except MmeError:
        return "malformed"
    return type(msg).__name__


@dataclass(frozen=True, slots=True)
class TraceEntry:
    time: float
    direction: str  # "rx" / "tx"
    peer: str
    name: str


class SlacLink:
    """PlcLink over SLAC.  Give ``ifname`` or an already bound packet socket ``sock``."""

    def __init__(
        self,
        ifname: str | None = None,
        *,
        sock: socket.socket | None = None,
        timers: SlacTimers | None = None,
        modem_mac: bytes = QCA_LOCAL_MAC,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if sock is None:
            if ifname is None:
                raise UnavailableError("SlacLink needs an interface name or a socket")
            sock = open_packet_socket(ifname)
        self.sock = sock
        self.mac = interface_mac(sock)
        self.matcher = EvseMatcher(self.mac, random_bytes, timers, modem_mac=modem_mac)
        self.trace: deque[TraceEntry] = deque(maxlen=TRACE_LEN)  # bounded: runs for months
        self.last_match: Matched | None = None
        self.last_failure: str = ""
        self.dropped: deque[SessionDropped] = deque(maxlen=TRACE_LEN)
        self._outcome = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._reading = False

    def _ensure_reader(self) -> None:
        if not self._reading:
            asyncio.get_running_loop().add_reader(self.sock.fileno(), self._readable)
            self._reading = True

    def _readable(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("SLAC socket error: %s", exc)
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            self.trace.append(TraceEntry(self._now(), "rx", data[6:12].hex(":"), mme_name(data)))
            self._feed(FrameIn(data))

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _feed(self, event: Event) -> None:
        self._perform(self.matcher.handle(event, self._now()))
        self._rearm()

    def _rearm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.matcher.deadline
        if deadline != float("inf"):
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(deadline, self._feed, Tick())

    def _perform(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                data = action.data
                self.trace.append(TraceEntry(self._now(), "tx", data[0:6].hex(":"), mme_name(data)))
                try:
                    self.sock.send(data)
                except OSError as exc:
                    log.warning("SLAC send failed: %s", exc)
            elif isinstance(action, Matched):
                log.info("SLAC matched EV %s (NID %s)", action.ev_mac.hex(":"), action.nid.hex())
                self.last_match = action
                self._outcome.set()
            elif isinstance(action, Failed):
                log.warning("SLAC failed: %s", action.reason)
                self.last_failure = action.reason
                self._outcome.set()
            elif isinstance(action, SessionDropped):
                if self.matcher.state is State.WAITING and self.last_match is not None:
                    self.last_match = None  # the matched EV started over
                    self._outcome.clear()
                log.info("SLAC session of %s dropped: %s", action.ev_mac.hex(":"), action.reason)
                self.dropped.append(action)
            elif isinstance(action, LinkReady):
                log.info("SLAC link ready: %d station(s) in NID %s", len(action.stations),
                         action.nid.hex())  # fmt: skip
            elif isinstance(action, LinkUnconfirmed):
                log.warning("SLAC link not confirmed: %s", action.reason)
            elif isinstance(action, LinkLost):
                log.warning("SLAC link down: no station in NID %s any more", action.nid.hex())
            elif isinstance(action, Ignored):
                log.debug("SLAC ignored a frame: %s", action.reason)

    # ------------------------------------------------------------------ PlcLink

    async def start_matching(self) -> None:
        self._ensure_reader()
        self._outcome.clear()
        self.last_match = None
        self.last_failure = ""
        self._feed(Start())

    async def stop(self) -> None:
        self._feed(Stop())
        self._outcome.clear()

    async def status(self) -> PlcStatus:
        state = self.matcher.state
        if state is State.MATCHED and self.last_match is not None:
            m = self.last_match
            detail = f"link {self.matcher.link}"  # ready / unconfirmed / not confirmed / down
            return PlcStatus(PlcState.MATCHED, ev_mac=m.ev_mac, nid=m.nid, detail=detail)
        if state is State.FAILED:
            return PlcStatus(PlcState.FAILED, detail=self.last_failure)
        if state is State.IDLE:
            return PlcStatus(PlcState.IDLE)
        return PlcStatus(PlcState.MATCHING, detail=state.value)

    async def wait_outcome(self, timeout: float) -> PlcStatus:
        try:
            await asyncio.wait_for(self._outcome.wait(), timeout)
        except TimeoutError:
            raise HalTimeoutError(f"SLAC still matching after {timeout} s") from None
        return await self.status()

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._reading:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self._reading = False
        with contextlib.suppress(OSError):
            self.sock.close()


async def open_plc(options: Mapping[str, object]) -> SlacLink:
    """Registry entry point.  Options: ``interface`` (required), ``slac_init_s``,
    ``modem_mac`` (where CM_SET_KEY.REQ goes; default the QCA local address
    00:b0:52:00:00:01), ``max_sessions`` (live SLAC sessions at once, 1..64)."""
    check_options("slac", options)
    ifname = options.get("interface")
    if not isinstance(ifname, str):
        raise UnavailableError("slac backend needs the option interface = 'eth1'")
    init = options.get("slac_init_s", 50.0)
    if not isinstance(init, int | float) or not 20.0 <= float(init) <= 50.0:
        raise UnavailableError("slac_init_s must lie in 20..50 s (TT_EVSE_SLAC_init)")
    modem = options.get("modem_mac", QCA_LOCAL_MAC.hex(":"))
    try:
        modem_mac = bytes.fromhex(str(modem).replace(":", ""))
    except ValueError:
        modem_mac = b""
    if len(modem_mac) != 6:
        raise UnavailableError(f"modem_mac {modem!r}: six hex bytes, e.g. 00:b0:52:00:00:01")
    sessions = options.get("max_sessions", 8)
    if not isinstance(sessions, int) or not 1 <= sessions <= 64:
        raise UnavailableError("max_sessions must lie in 1..64")
    timers = SlacTimers(evse_slac_init=float(init), max_sessions=sessions)
    return SlacLink(ifname, timers=timers, modem_mac=modem_mac)
