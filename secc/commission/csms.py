"""The commissioning tool's own link to the CSMS: the station's identity and security
profile from the config, the password from the device model, CertificateSigned answered
by :class:`secc.maintenance.SignedInstaller`, Get/SetVariables by the device model.

``secc run`` must not be running at the same time: a CSMS keeps one connection per
station id (the commissioning report says so when the link is refused)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from certs.store import Store
from secc.config import OcppSection
from secc.maintenance import SignedInstaller
from secc.ocpp_bridge.client import (
    CallFailed,
    ClientConfig,
    NotConnected,
    OcppClient,
    Reply,
    StoreTls,
)
from secc.ocpp_bridge.device_model import DeviceModel, apply_device_model


def ocpp_state_dir(ocpp: OcppSection) -> Path:
    """Where ``secc run`` keeps the OCPP state (device model, local list): ``[ocpp]
    state_dir``, or the directory of ``[ocpp] database`` in the earlier schema."""
    state_dir = getattr(ocpp, "state_dir", None)
    if isinstance(state_dir, Path):
        return state_dir
    database = getattr(ocpp, "database", None)
    if isinstance(database, Path):
        return database.parent
    return Path("/var/lib/secc")


def ocpp_password(ocpp: OcppSection) -> str | None:
    """The BasicAuth password from ``[ocpp] basic_auth_password_file`` (when the schema has
    it), trailing newline stripped; the device model's BasicAuthPassword wins over it."""
    path = getattr(ocpp, "basic_auth_password_file", None)
    if not isinstance(path, Path):
        return None
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n") or None
    except (OSError, UnicodeDecodeError):
        return None


@dataclass(frozen=True, slots=True)
class LinkState:
    reachable: bool  # a websocket was opened (TLS and credentials accepted)
    boot_status: str  # "Accepted" | "Pending" | "Rejected" | "" (no answer)
    detail: str
    csms_time: dt.datetime | None = None


class CsmsLink:
    def __init__(
        self,
        ocpp: OcppSection,
        store: Store | None,
        dm: DeviceModel,
        installer: SignedInstaller | None,
        *,
        utc_now: object = None,
    ) -> None:
        config = ClientConfig(
            csms_url=ocpp.url,
            station_id=ocpp.station_id,
            security_profile=ocpp.security_profile,
            backoff_min=0.5,
            backoff_random=0.5,
            backoff_max=2.0,
            open_timeout=10.0,
            basic_auth_password=ocpp_password(ocpp),
        )
        config = apply_device_model(config, dm)
        handlers = {
            "GetVariables": lambda p: Reply(dm.get_variables(p)),
            "SetVariables": lambda p: Reply(dm.set_variables(p)),
        }
        if installer is not None:
            handlers["CertificateSigned"] = self._signed_handler(installer)
        # the chains the installer refused, by the renewal they answered (the report
        # keeps them in a file for the CA: nothing of them is installed)
        self.refused: dict[str, str] = {}
        self.client = OcppClient(
            config,
            handlers=handlers,
            tls=StoreTls(store) if store is not None else None,
        )
        self._task: asyncio.Task[None] | None = None
        self.state: LinkState | None = None

    def _signed_handler(self, installer: SignedInstaller) -> Callable[[dict[str, object]], Reply]:
        def handle(payload: dict[str, object]) -> Reply:
            seen = len(installer.outcomes)
            reply = installer(payload)
            for outcome in installer.outcomes[seen:]:
                if not outcome.accepted:
                    self.refused[outcome.certificate_type] = str(
                        payload.get("certificateChain", "")
                    )
            return reply

        return handle

    async def connect(self, timeout: float) -> LinkState:
        """Connect and boot; returns as soon as the CSMS answers BootNotification."""
        if self.state is not None:  # one attempt per run: every check sees the same answer
            return self.state
        if self._task is None:
            self._task = asyncio.ensure_future(self.client.run())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        client = self.client
        while loop.time() < deadline and not client.online.is_set():
            if client.boot_status in {"Rejected", "Pending"}:
                break
            if client.last_error and not client.connects:
                break  # the first connection attempt failed: report its reason
            await asyncio.sleep(0.05)
        if client.online.is_set():
            csms_time = await self._csms_time()
            self.state = LinkState(True, "Accepted", "BootNotification accepted", csms_time)
        elif client.boot_status:
            self.state = LinkState(
                True, client.boot_status, f"BootNotification {client.boot_status}"
            )
        elif client.connects:
            self.state = LinkState(True, "", f"no BootNotification answer within {timeout:g} s")
        else:
            self.state = LinkState(
                False, "", client.last_error or f"no connection in {timeout:g} s"
            )
        return self.state

    async def _csms_time(self) -> dt.datetime | None:
        try:
            answer = await self.client.call("Heartbeat", {}, timeout=10)
        except (CallFailed, NotConnected, TimeoutError):
            return None
        text = answer.get("currentTime")
        if not isinstance(text, str):
            return None
        try:
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
