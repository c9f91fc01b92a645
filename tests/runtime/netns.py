"""Two network namespaces joined by a veth pair with fixed link-local addresses (DAD off):
the station (``evse``, fe80::1 on veth0) and the EV (``ev``, fe80::2 on veth1)."""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_counter = itertools.count()


def netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2 (ip)"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@dataclass(frozen=True)
class LinkPair:
    evse: str  # namespace names
    ev: str
    evse_if: str = "veth0"
    ev_if: str = "veth1"
    evse_addr: str = "fe80::1"
    ev_addr: str = "fe80::2"


@contextmanager
def link_pair() -> Iterator[LinkPair]:
    tag = f"{os.getpid()}x{next(_counter)}"
    pair = LinkPair(evse=f"seccrt{tag}s", ev=f"seccrt{tag}e")
    created: list[str] = []
    try:
        for ns in (pair.evse, pair.ev):
            _ip("netns", "add", ns)
            created.append(ns)
        ends = ("sr" + tag, "netns", pair.evse, "type", "veth", "peer", "name", "sp" + tag)
        _ip("link", "add", *ends, "netns", pair.ev)
        for ns, temp, dev, addr in (
            (pair.evse, "sr" + tag, pair.evse_if, pair.evse_addr),
            (pair.ev, "sp" + tag, pair.ev_if, pair.ev_addr),
        ):
            _ip("-n", ns, "link", "set", temp, "name", dev)
            _ip("-n", ns, "link", "set", dev, "addrgenmode", "none")
            subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-q",
                    "-w",
                    f"net.ipv6.conf.{dev}.accept_dad=0",
                ],
                check=True,
                capture_output=True,
                timeout=10,
            )
            _ip("-n", ns, "-6", "addr", "add", f"{addr}/64", "dev", dev, "nodad")
            _ip("-n", ns, "link", "set", dev, "up")
            # addrgenmode none keeps the addresses fixed but skips the kernel's ff00::/8 route
            _ip(
                "-n",
                ns,
                "-6",
                "route",
                "add",
                "multicast",
                "ff00::/8",
                "dev",
                dev,
                "table",
                "local",
            )
        yield pair
    finally:
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True, timeout=10)


def _enter(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/var/run/netns/{name}", "rb") as f:
        if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({name}) failed")


def call_in_netns(name: str, fn: Callable[[], T], timeout: float = 60) -> T:
    """Run ``fn()`` in a fresh thread that entered namespace ``name``."""
    result: list[T] = []
    error: list[BaseException] = []

    def body() -> None:
        try:
            _enter(name)
            result.append(fn())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=body, name=f"netns-{name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"{fn} did not finish in namespace {name} within {timeout} s")
    if error:
        raise error[0]
    return result[0]


async def acall_in_netns(name: str, fn: Callable[[], T]) -> T:
    """:func:`call_in_netns` without blocking the running event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, call_in_netns, name, fn)


def run_in_netns(name: str, main: Callable[[], Any]) -> Any:
    """``asyncio.run(main())`` in a thread inside namespace ``name``."""
    return call_in_netns(name, lambda: asyncio.run(asyncio.wait_for(main(), 30)))
