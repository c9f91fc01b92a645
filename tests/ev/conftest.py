"""Fixtures for the EV tests: one test PKI on disk (with the -20 V2G hierarchy and a
ready station store)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from certs import testpki


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    testpki.write_test_pki(testpki.build_test_pki(dt.datetime.now(dt.UTC)), directory)
    return directory
