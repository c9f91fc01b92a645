"""Network-namespace helpers for the SLAC tests: a veth pair inside a private namespace."""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_counter = itertools.count()


def netns_unavailable() -> str | None:
    """Why namespace tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2 (ip)"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@contextmanager
def veth_namespace(left: str = "evse0", right: str = "ev0") -> Iterator[str]:
    """A fresh namespace holding the veth pair ``left`` <-> ``right``; always removed."""
    name = f"secchal{os.getpid()}x{next(_counter)}"
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "add", left, "type", "veth", "peer", "name", right)
        for dev in (left, right):
            _ip("-n", name, "link", "set", dev, "promisc", "on")
            _ip("-n", name, "link", "set", dev, "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def run_in_netns(name: str, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``asyncio.run(main())`` in a thread that has entered namespace ``name``."""
    libc = ctypes.CDLL(None, use_errno=True)
    result: list[T] = []
    error: list[BaseException] = []

    def body() -> None:
        try:
            with open(f"/var/run/netns/{name}", "rb") as f:
                if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns failed")
            result.append(asyncio.run(main()))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=body, name=f"netns-{name}")
    thread.start()
    thread.join(timeout=120)
    if thread.is_alive():
        raise TimeoutError("namespace test did not finish in 120 s")
    if error:
        raise error[0]
    return result[0]
