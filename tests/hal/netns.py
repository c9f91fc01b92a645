"""Network-namespace helpers for the SLAC tests: a veth pair inside one private namespace
(both ends in it: the EVSE matcher on one, the EV simulator on the other).  Entering a
namespace and the availability check are shared with the runtime tests
(:mod:`tests.runtime.netns`, whose pairs span two namespaces)."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from tests.runtime.netns import call_in_netns, netns_unavailable

__all__ = ["netns_unavailable", "run_in_netns", "veth_namespace"]

T = TypeVar("T")
_counter = itertools.count()


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
    """``asyncio.run(main())`` in a thread that has entered namespace ``name``."""
    return call_in_netns(name, lambda: asyncio.run(main()), timeout=120)
