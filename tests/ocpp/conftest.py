"""Fixtures: a test PKI made by ``secc certs make-test-pki`` (once per session), TLS contexts
for the test CSMS, and a fresh copy of the station's certificate store per test."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from certs.store import Store
from hal.hooks import StationHooks
from secc.config import StationConfig
from secc.ocpp_bridge.bridge import Bridge, BridgeConfig
from tests.ocpp.csms import Behaviour, CsmsStation, TestCsms
from tests.ocpp.smart_rig import SmartLink, SmartLinkFactory, smart_link
from tests.ocpp.station import STATION, Station, build, running

FAST = BridgeConfig(link_retry=0.05, meter_interval=3600)  # no periodic meter samples


@pytest.fixture(autouse=True)
def csms_rules() -> Iterator[None]:
    """Every test CSMS of a test must end without a protocol violation by the station."""
    TestCsms.instances.clear()
    yield
    found = [v for csms in TestCsms.instances for v in csms.violations]
    TestCsms.instances.clear()
    assert not found, "the station broke OCPP rules:\n" + "\n".join(found)


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ocpp-pki")
    make = [sys.executable, "-m", "secc.cli.main", "certs", "make-test-pki", "--no-iso20"]
    subprocess.run(
        [*make, str(directory / "pki")],  # an ISO 15118-2 station: tests count its certificates
        check=True,
        capture_output=True,
    )
    return directory / "pki"


@pytest.fixture
def store(pki_dir: Path, tmp_path: Path) -> Store:
    shutil.copytree(pki_dir / "station", tmp_path / "store", symlinks=True)
    st = Store(tmp_path / "store")
    st.initialize()
    return st


def server_context(pki_dir: Path, *, client_auth: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pki_dir / "csms" / "server_chain.pem", pki_dir / "csms" / "server.key")
    if client_auth:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki_dir / "csms" / "root.pem")
    return ctx


@dataclass
class Linked:
    """A running station and the test CSMS it is connected to (``cp``: the CSMS's side
    of the connection)."""

    csms: TestCsms
    station: Station
    cp: CsmsStation

    @property
    def bridge(self) -> Bridge:
        return self.station.bridge


OpsLink = Callable[..., AbstractAsyncContextManager[Linked]]


@pytest.fixture
def ops_link(tmp_path: Path) -> OpsLink:
    """The set-up of the operation tests (``tests/ocpp/test_ops_*.py``): a fresh test
    CSMS and the real bridge on ``tmp_path`` (fast retries, no periodic meter samples)
    with the given station hooks and certificate store, running and connected::

        async with ops_link(hooks=StationHooks(...), store=store) as link:
            answer = await link.cp.call(...)

    The CSMS is stopped at the end; what it recorded stays readable."""

    @asynccontextmanager
    async def link(
        *,
        hooks: StationHooks | None = None,
        store: Store | None = None,
        config: BridgeConfig = FAST,
        behaviour: Behaviour | None = None,
    ) -> AsyncIterator[Linked]:
        csms = TestCsms(behaviour=behaviour)
        await csms.start()
        try:
            station = build(tmp_path, csms.url, config=config, store=store)
            if hooks is not None:
                station.bridge.ops.hooks = hooks
            async with running(station):
                yield Linked(csms, station, await csms.station(STATION))
        finally:
            await csms.stop()

    return link


@pytest.fixture
def smart_station(tmp_path: Path) -> SmartLinkFactory:
    """The set-up of the smart-charging end-to-end tests (``tests/ocpp/test_smart_*.py``):
    the station runtime of a given configuration with the bridge (state in ``tmp_path``)
    online at a fresh test CSMS::

        async with smart_station(config) as link:      # token=False: no RFID card
            result = await link.charge(smart_script(mode))

    See :mod:`tests.ocpp.smart_rig`."""

    def link(
        config: StationConfig, *, token: bool = True
    ) -> AbstractAsyncContextManager[SmartLink]:
        return smart_link(tmp_path, config, token=token)

    return link
