"""Fixtures: a test PKI made by ``secc certs make-test-pki`` (once per session), TLS contexts
for the test CSMS, and a fresh copy of the station's certificate store per test."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from certs.store import Store
from tests.ocpp.csms import TestCsms


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
