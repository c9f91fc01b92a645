"""Shared fixtures: one test PKI per session (real keys, real certificates)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from certs.testpki import TestPki, TestPkiOptions, build_test_pki, write_test_pki

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def openssl() -> str:
    path = shutil.which("openssl")
    if path is None:  # .ci/run installs it; a bare machine must say so, not pass silently
        pytest.fail("the openssl command is required by these tests (apt-get install openssl)")
    return path


@pytest.fixture(scope="session")
def now() -> dt.datetime:
    return NOW


@pytest.fixture(scope="session")
def pki() -> TestPki:
    return build_test_pki(NOW, TestPkiOptions(second_v2g_root=True))


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory, pki: TestPki) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    write_test_pki(pki, directory)
    return directory
