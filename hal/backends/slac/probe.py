"""Ask the PLC modem who it is: QCA vendor MMEs VS_SW_VER (firmware) and VS_NW_INFO (link).

Only Qualcomm (QCA7000/7005/7420) modems answer these; other modems stay silent and the
probe says so instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass

from hal.backends.slac.link import PACKET_OUTGOING, interface_mac
from hal.backends.slac.mme import (
    QCA_LOCAL_MAC,
    MmeError,
    MmeFrame,
    VsNwInfoCnf,
    VsNwInfoReq,
    VsSwVerCnf,
    VsSwVerReq,
    decode,
    encode,
)


@dataclass(frozen=True, slots=True)
class ModemInfo:
    answered: bool
    modem_mac: bytes | None = None
    firmware: str | None = None
    networks: tuple[tuple[bytes, tuple[bytes, ...]], ...] = ()

    @property
    def link_up(self) -> bool:
        """True when the modem is in a network with at least one other station."""
        return any(stations for _nid, stations in self.networks)

    def describe(self) -> str:
        if not self.answered:
            return "the modem did not answer QCA vendor requests (not a QCA modem, or absent)"
        mac = self.modem_mac.hex(":") if self.modem_mac else "?"
        nets = ", ".join(f"NID {n.hex()} with {len(s)} peer(s)" for n, s in self.networks)
        return f"modem {mac} firmware {self.firmware!r}; " + (nets or "no network")


async def _ask(sock: socket.socket, request: bytes, want: type, timeout: float) -> MmeFrame | None:
    loop = asyncio.get_running_loop()
    sock.send(request)
    end = loop.time() + timeout
    while (left := end - loop.time()) > 0:
        fut: asyncio.Future[None] = loop.create_future()

        def ready(f: asyncio.Future[None] = fut) -> None:
            if not f.done():
                f.set_result(None)

        loop.add_reader(sock.fileno(), ready)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fut, left)
        finally:
            loop.remove_reader(sock.fileno())
        while True:
            try:
                data, addr = sock.recvfrom(2048)
            except BlockingIOError:
                break
            if addr[2] == PACKET_OUTGOING:
                continue
            with contextlib.suppress(MmeError):
                frame = decode(data)
                if isinstance(frame.message, want):
                    return frame
    return None


async def probe(sock: socket.socket, timeout: float = 0.5) -> ModemInfo:
    """Probe the modem behind the bound packet socket ``sock``."""
    mac = interface_mac(sock)
    ver = await _ask(
        sock, encode(MmeFrame(QCA_LOCAL_MAC, mac, VsSwVerReq(), mmv=0)), VsSwVerCnf, timeout
    )
    if ver is None:
        return ModemInfo(answered=False)
    assert isinstance(ver.message, VsSwVerCnf)
    firmware = ver.message.version.split(b"\x00", 1)[0].decode("ascii", "replace")
    nw = await _ask(
        sock, encode(MmeFrame(QCA_LOCAL_MAC, mac, VsNwInfoReq(), mmv=0)), VsNwInfoCnf, timeout
    )
    networks = nw.message.networks if nw is not None and isinstance(nw.message, VsNwInfoCnf) else ()
    return ModemInfo(True, ver.src, firmware, networks)
