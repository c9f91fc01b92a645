"""The EVSE's PLC link as the rest of the station sees it.

:class:`LinkWatch` reads the board's :class:`hal.api.PlcLink` status (SLAC matched, the
EV's MAC, the NID, the D-LINK_READY confirmation in ``detail``) every ``interval``
seconds and reports each change once: the runtime writes it to the running session's
trace and hands it to the backend (the OCPP bridge sends it to the CSMS as a
NotifyEvent, :mod:`secc.ocpp_bridge.plc_link`).  Its last reading also tells
:meth:`secc.runtime.Evse.claim` which EV is on the link (:func:`same_link`): a new
session from the same link may replace a silent one even when its EVCCID differs (DIN
cars may send another or an empty one).

A lost link (ISO 15118-3 D-LINK_ERROR: the EV's modem left the logical network, or the
match is gone) ends the V2G session that runs over it: nothing the EV sends can reach
the station any more, and the TCP connection would only end with the session's
sequence timeout, with the power still on.  The standard's loss detection comes from
the modem's network info, one reading at a time, and a modem busy (re-keying, a burst of
noise) may miss one: a link counts as lost once it has stayed down for
``LINK_LOSS_GRACE`` seconds (more than two network-info polls of the SLAC matcher,
``SlacTimers.link_watch``), so one bad reading never ends a session.  ``lost(status)``
is then called once; the runtime ends the session safely and leaves the logical network
so that the next EV matches afresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from ipaddress import IPv6Address
from typing import Any

from hal.api import PlcLink
from hal.types import HalError, PlcState, PlcStatus

__all__ = [
    "LINK_LOSS_GRACE",
    "LinkWatch",
    "eui64_link_local",
    "link_record",
    "link_up",
    "same_link",
]

log = logging.getLogger(__name__)

LINK_LOSS_GRACE = 4.5  # seconds a link stays down before it counts as lost


def eui64_link_local(mac: bytes) -> IPv6Address:
    """The link-local address a host with this MAC forms by SLAAC (modified EUI-64,
    RFC 4291 appendix A): fe80:: + the MAC with ff:fe in the middle and the
    universal/local bit flipped."""
    if len(mac) != 6:
        raise ValueError("a MAC address has six octets")
    iid = bytes([mac[0] ^ 0x02, mac[1], mac[2], 0xFF, 0xFE, mac[3], mac[4], mac[5]])
    return IPv6Address(b"\xfe\x80" + b"\x00" * 6 + iid)


def _address(peer: str) -> IPv6Address | None:
    try:
        return IPv6Address(peer.split("%", 1)[0])
    except ValueError:
        return None


def same_link(old_peer: str, new_peer: str, ev_mac: bytes | None) -> bool:
    """Whether a new connection from ``new_peer`` comes from the EV of the session whose
    connection came from ``old_peer``: the same source address (scope left aside: one
    EVSE serves one interface), or the link-local address the EV's MAC (learned from
    SLAC, ``ev_mac``) gives."""
    old, new = _address(old_peer), _address(new_peer)
    if old is None or new is None:
        return False
    if old == new:
        return True
    return ev_mac is not None and len(ev_mac) == 6 and new == eui64_link_local(ev_mac)


def link_up(status: PlcStatus) -> bool:
    """The EV is on the link: SLAC matched and the join not refuted (a backend that
    cannot confirm D-LINK_READY reports no ``link ...`` detail)."""
    return status.state is PlcState.MATCHED and status.detail not in (
        "link not confirmed",
        "link down",
    )


def link_record(status: PlcStatus) -> dict[str, Any]:
    """The trace record of a link state."""
    return {
        "kind": "link",
        "state": status.state.value,
        "up": link_up(status),
        "ev_mac": status.ev_mac.hex(":") if status.ev_mac else None,
        "nid": status.nid.hex() if status.nid else None,
        "detail": status.detail,
    }


class LinkWatch:
    """Polls a :class:`PlcLink`'s status and reports changes (see the module docstring).
    ``changed(status)`` is called for each new status but the first idle one;
    ``lost(status)`` once a link that was up has stayed down for ``grace`` seconds."""

    def __init__(
        self,
        plc: PlcLink,
        changed: Callable[[PlcStatus], None],
        *,
        interval: float = 0.5,
        name: str = "",
        lost: Callable[[PlcStatus], None] | None = None,
        grace: float = LINK_LOSS_GRACE,
    ) -> None:
        self.plc = plc
        self.changed = changed
        self.interval = interval
        self.name = name
        self.lost = lost
        self.grace = grace
        self.status = PlcStatus(PlcState.IDLE)
        self._failing = False
        self._was_up = False  # the link was up since the last loss
        self._down_since: float | None = None

    @property
    def ev_mac(self) -> bytes | None:
        """The MAC of the EV SLAC matched (None: no EV on the link)."""
        return self.status.ev_mac if self.status.state is PlcState.MATCHED else None

    async def poll(self) -> None:
        """Read the status once; report it when it changed."""
        try:
            status = await self.plc.status()
        except Exception as exc:  # HalError, or a backend bug: the watch goes on
            if not self._failing:
                kind = "" if isinstance(exc, HalError) else f"{type(exc).__name__}: "
                log.warning("%s: reading the PLC link failed: %s%s", self.name, kind, exc)
            self._failing = True
            return
        self._failing = False
        self._watch_loss(status)
        if status == self.status:
            return
        self.status = status
        log.info(
            "%s: PLC link %s%s%s",
            self.name,
            "up" if link_up(status) else "down",
            f", EV {status.ev_mac.hex(':')}" if status.ev_mac else "",
            f" ({status.state.value}{', ' + status.detail if status.detail else ''})",
        )
        try:
            self.changed(status)
        except Exception:  # a reporting bug must not stop the watch
            log.exception("%s: reporting the PLC link failed", self.name)

    def _watch_loss(self, status: PlcStatus) -> None:
        """A link that was up and has read down for ``grace`` seconds is lost: reported
        once (a reading up again before that was a hiccup: forgotten).  A match the
        station ended or restarts itself (idle, matching) is no loss."""
        if link_up(status):
            self._was_up, self._down_since = True, None
            return
        if status.state is not PlcState.MATCHED:
            self._was_up, self._down_since = False, None
            return
        if not self._was_up:
            return
        now = asyncio.get_running_loop().time()
        if self._down_since is None:
            self._down_since = now
            return
        if now - self._down_since < self.grace:
            return
        self._was_up, self._down_since = False, None
        log.warning(
            "%s: PLC link lost (D-LINK_ERROR): down for %.1f s (%s%s)",
            self.name,
            self.grace,
            status.state.value,
            f", {status.detail}" if status.detail else "",
        )
        if self.lost is not None:
            try:
                self.lost(status)
            except Exception:  # a reporting bug must not stop the watch
                log.exception("%s: handling the lost PLC link failed", self.name)

    async def run(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(self.interval)
