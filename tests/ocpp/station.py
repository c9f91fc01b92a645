"""A station for the tests: the real bridge (client, outbox, auth store, device model,
certificate store) wired to a test CSMS URL, with the emitted core events collected."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certs.store import Store
from secc.core.actions import RequestAuthorization
from secc.core.events import Event
from secc.ocpp_bridge.authorization import AuthStore
from secc.ocpp_bridge.bridge import Bridge, BridgeConfig
from secc.ocpp_bridge.client import ClientConfig, OcppClient, StoreTls
from secc.ocpp_bridge.device_model import DeviceModel, Key
from secc.ocpp_bridge.queue import DurableQueue

STATION = "CS-SECC-0001"
FAST_RETRY = {
    ("OCPPCommCtrlr", "RetryBackOffWaitMinimum"): "0",
    ("OCPPCommCtrlr", "RetryBackOffRandomRange"): "0",
    ("OCPPCommCtrlr", "MessageAttemptIntervalTransactionEvent"): "0",
}
FAST_CLIENT = {"backoff_min": 0.05, "backoff_random": 0.05, "backoff_max": 0.3}


@dataclass
class Station:
    bridge: Bridge
    events: list[Event] = field(default_factory=list)

    @property
    def client(self) -> OcppClient:
        return self.bridge.client

    async def next_event(self, kind: type, timeout: float = 10.0) -> Any:
        async def wait() -> Any:
            while True:
                for i, event in enumerate(self.events):
                    if isinstance(event, kind):
                        return self.events.pop(i)
                await asyncio.sleep(0.01)

        return await asyncio.wait_for(wait(), timeout)


def build(
    directory: Path,
    url: str,
    *,
    store: Store | None = None,
    config: BridgeConfig | None = None,
    client: Mapping[str, Any] | None = None,
    variables: Mapping[Key, str] | None = None,
    emit: Callable[[Event], None] | None = None,
) -> Station:
    events: list[Event] = []
    cfg = ClientConfig(
        csms_url=url,
        station_id=STATION,
        basic_auth_password="s3cret-password",
        **{**FAST_CLIENT, **(client or {})},
    )
    bridge = Bridge(
        config or BridgeConfig(link_retry=0.05, meter_interval=3600),
        OcppClient(cfg, tls=StoreTls(store) if store else None),
        DurableQueue(directory / "ocpp.sqlite"),
        AuthStore(directory / "auth.sqlite"),
        DeviceModel(directory / "device_model.json", initial={**FAST_RETRY, **(variables or {})}),
        emit or events.append,
        store=store,
    )
    return Station(bridge, events)


@contextlib.asynccontextmanager
async def running(station: Station, *, online: bool = True) -> AsyncIterator[Station]:
    task = asyncio.ensure_future(station.bridge.run())
    try:
        if online:
            await asyncio.wait_for(station.client.online.wait(), 10)
        yield station
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        station.bridge.queue.close()
        station.bridge.auth.close()


def contract_request(pki_dir: Path, emaid: str | None = None) -> RequestAuthorization:
    chain = x509.load_pem_x509_certificates((pki_dir / "mo" / "contract_chain.pem").read_bytes())
    cn = chain[0].subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    ders = tuple(c.public_bytes(Encoding.DER) for c in chain)
    return RequestAuthorization("eMAID", emaid or str(cn), ders)
