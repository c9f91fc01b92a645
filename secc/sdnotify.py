"""The systemd notification protocol (sd_notify) for ``secc run`` under ``Type=notify``.

systemd passes a Unix datagram socket in ``$NOTIFY_SOCKET`` (a path, or an abstract
socket name starting with ``@``); the service sends newline-separated ``KEY=value``
assignments to it: ``READY=1`` once it serves, ``STATUS=...`` as a one-line status for
``systemctl status``, ``WATCHDOG=1`` at least every ``WatchdogSec`` (systemd passes the
period in ``$WATCHDOG_USEC``; the convention is to ping at half of it), ``STOPPING=1`` when
it shuts down.  Without ``$NOTIFY_SOCKET`` (run by hand, in tests) every call is a no-op
that returns ``False``.

Use from the runtime::

    notifier = Notifier.from_environment()
    ...  # start SDP, V2G server, OCPP, HAL
    notifier.ready("serving 1 EVSE, CSMS connecting")
    task = asyncio.create_task(watchdog_loop(notifier, healthy=lambda: runtime.healthy))
    ...
    notifier.stopping()
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)
MAX_DATAGRAM = 4096


class Notifier:
    """Sends sd_notify messages to one socket address (``None``: disabled)."""

    def __init__(self, address: str | None, *, watchdog_usec: int | None = None) -> None:
        if address is not None and (not address or address[0] not in "/@"):
            raise ValueError(f"NOTIFY_SOCKET must be an absolute path or @abstract: {address!r}")
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """From ``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID`` (sd_notify(3))."""
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        if address is not None and address[0] not in "/@":
            log.warning("ignoring NOTIFY_SOCKET=%r (neither a path nor @abstract)", address)
            address = None
        usec: int | None = None
        pid = env.get("WATCHDOG_PID")
        if env.get("WATCHDOG_USEC") and (not pid or pid == str(os.getpid())):
            try:
                usec = int(env["WATCHDOG_USEC"])
            except ValueError:
                log.warning("ignoring WATCHDOG_USEC=%r", env["WATCHDOG_USEC"])
            else:
                usec = usec if usec > 0 else None
        return cls(address, watchdog_usec=usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half the watchdog period), or None."""
        return None if self.watchdog_usec is None else self.watchdog_usec / 2e6

    def _target(self) -> str:
        assert self.address is not None
        return "\0" + self.address[1:] if self.address.startswith("@") else self.address

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines; ``False`` when disabled or the socket is gone."""
        if self.address is None:
            return False
        lines = []
        for key, value in fields.items():
            text = str(value)
            if "\n" in text or "=" in key:
                raise ValueError(f"sd_notify field {key}={text!r} must be one line")
            lines.append(f"{key}={text}")
        data = "\n".join(lines).encode("utf-8")
        if len(data) > MAX_DATAGRAM:
            raise ValueError(f"sd_notify message of {len(data)} bytes is too long")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(data, self._target())
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send(READY=1, **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def stopping(self, status: str | None = None) -> bool:
        return self.send(STOPPING=1, **({"STATUS": status} if status else {}))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


async def watchdog_loop(
    notifier: Notifier,
    *,
    healthy: Callable[[], bool] = lambda: True,
    interval: float | None = None,
) -> None:
    """Ping WATCHDOG=1 every ``interval`` (default: half of WatchdogSec) while ``healthy()``.

    When ``healthy()`` is false the ping is withheld, so systemd restarts a wedged station
    (``Restart=on-failure``).  Returns at once when there is no watchdog.  Cancel to stop.
    """
    period = interval if interval is not None else notifier.watchdog_interval()
    if period is None or not notifier.enabled:
        return
    while True:
        if healthy():
            notifier.watchdog()
        else:
            log.warning("not healthy: withholding the watchdog ping")
        await asyncio.sleep(period)
