"""Fixtures for the interop tests: the peer check, the shared PKI, a fresh veth pair
per test (station fe80::1 on veth0, EV fe80::2 on veth1, DAD off, loopback up because
the peer talks to its Java codec over 127.0.0.1), the station under test, and the
per-mode summary printed at the end of the run.

A missing peer (no ``.venv-josev``, no Java) or a machine without network namespaces
skips these tests with the reason, except in CI (``CI=true``), where the interop tests
are a required part and the same conditions fail.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.josev import SharedPki, josev_pki, make_test_pki, peer_unavailable
from tests.interop.station import secc_run_available
from tests.runtime.netns import LinkPair, link_pair, netns_unavailable

SUMMARY: list[str] = []


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def station_kind() -> str:
    """``josev`` with JOSEV_SECC=1 (the package's own SECC), else ``secc`` (secc run)."""
    return "josev" if os.environ.get("JOSEV_SECC", "") == "1" else "secc"


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"interop tests are required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def peer_ready() -> None:
    reason = netns_unavailable() or peer_unavailable()
    if station_kind() == "secc":
        reason = reason or secc_run_available()
    if reason is not None:
        _unavailable(reason)


@pytest.fixture(scope="session")
def shared_pki(peer_ready: None, tmp_path_factory: pytest.TempPathFactory) -> SharedPki:
    """One PKI for both sides: ``secc certs make-test-pki`` (roots, CPO/CPS/MO/OEM chains,
    station store), copied into the peer's layout."""
    base = tmp_path_factory.mktemp("interop-pki")
    make_test_pki(base / "testpki")
    return josev_pki(base / "testpki", base / "josev")


@pytest.fixture(scope="session")
def shared_pki20(shared_pki: SharedPki) -> SharedPki:
    """The same make-test-pki tree in the peer's layout with the ISO 15118-20 MO and OEM
    material (P-521): the vehicle chain it presents in mutual TLS 1.3, the -20 contract."""
    return josev_pki(shared_pki.source, shared_pki.josev.parent / "josev20", iso20=True)


@pytest.fixture
def link(peer_ready: None) -> Iterator[LinkPair]:
    with link_pair() as pair:
        for ns in (pair.evse, pair.ev):
            subprocess.run(
                ["ip", "-n", ns, "link", "set", "lo", "up"],
                check=True,
                capture_output=True,
                timeout=10,
            )
        yield pair


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARY:
        terminalreporter.section("interop with the iso15118 EVCC")
        for line in SUMMARY:
            terminalreporter.write_line(line)


def workdir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir(parents=True, exist_ok=True)
    return path
