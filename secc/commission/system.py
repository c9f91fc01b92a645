"""What commissioning reads from the machine: clock synchronisation, network interfaces,
SDP on the PLC interface.  Each function is a default dependency that tests replace."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import ipaddress
import shutil
import socket
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from secc.sdp import SDP_MULTICAST_ADDRESS, SdpError, SdpRequest, SdpResponse

TIME_ERROR = 5  # adjtimex(2): clock not synchronised


@dataclass(frozen=True, slots=True)
class ClockSync:
    synchronized: bool | None  # None: nobody can tell
    source: str


def clock_sync() -> ClockSync:
    """Is the system clock synchronised?  systemd's view first, then the kernel's."""
    timedatectl = shutil.which("timedatectl")
    if timedatectl:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [timedatectl, "show", "-p", "NTPSynchronized", "--value"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
            value = out.stdout.strip()
            if out.returncode == 0 and value in {"yes", "no"}:
                return ClockSync(value == "yes", "timedatectl NTPSynchronized")
    if Path("/run/systemd/timesync/synchronized").exists():
        return ClockSync(True, "/run/systemd/timesync/synchronized")
    return _adjtimex()


def _adjtimex() -> ClockSync:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        buf = ctypes.create_string_buffer(1024)  # struct timex (208 bytes on 64-bit), modes=0
        state = int(libc.adjtimex(buf))
    except (OSError, AttributeError):
        return ClockSync(None, "no clock synchronisation source readable")
    if state < 0:
        return ClockSync(None, "adjtimex failed")
    return ClockSync(state != TIME_ERROR, "adjtimex (kernel NTP state)")


@dataclass(frozen=True, slots=True)
class InterfaceInfo:
    name: str
    exists: bool
    up: bool = False
    operstate: str = ""
    link_local: tuple[ipaddress.IPv6Address, ...] = ()
    mac: str = ""


def interface_info(name: str) -> InterfaceInfo:
    """From /sys/class/net and /proc/net/if_inet6 (no tools needed)."""
    base = Path("/sys/class/net") / name
    if not base.exists():
        return InterfaceInfo(name, False)
    operstate = _read(base / "operstate")
    flags = int(_read(base / "flags") or "0", 16)
    mac = _read(base / "address")
    addresses = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            fields = line.split()
            if len(fields) >= 6 and fields[5] == name:
                address = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
                dad_failed = int(fields[4], 16) & 0x08
                if address.is_link_local and not dad_failed:
                    addresses.append(address)
    return InterfaceInfo(name, True, bool(flags & 0x1), operstate, tuple(addresses), mac)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def udp_port_in_use(port: int) -> bool:
    """Whether some socket of this network namespace is bound to UDP ``port``."""
    for table in ("/proc/net/udp6", "/proc/net/udp"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 1 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    return True
    return False


async def sdp_query(interface: str, port: int, timeout: float = 1.0) -> SdpResponse | None:
    """Send an SDP request to ff02::1 on ``interface`` (as an EV does); the first valid
    answer, or None.  Our own host's responder hears it through multicast loopback."""
    scope = socket.if_nametoindex(interface)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, struct.pack("@I", scope))
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 1)
        sock.setblocking(False)
        sock.bind(("::", 0, 0, scope))
        await loop.sock_sendto(sock, SdpRequest().encode(), (SDP_MULTICAST_ADDRESS, port, 0, scope))
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            try:
                data = await asyncio.wait_for(loop.sock_recv(sock, 256), left)
            except TimeoutError:
                return None
            with contextlib.suppress(SdpError, ValueError):
                return SdpResponse.decode(data)
        return None
    finally:
        sock.close()
