"""Fixtures for the EV tests: one test PKI on disk (with the -20 V2G hierarchy and a
ready station store), and the same PKI in memory (its keys play the lab back end)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from certs import testpki


@pytest.fixture(scope="session")
def lab_pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[testpki.TestPki, Path]:
    directory = tmp_path_factory.mktemp("pki")
    pki = testpki.build_test_pki(dt.datetime.now(dt.UTC))
    testpki.write_test_pki(pki, directory)
    return pki, directory


@pytest.fixture(scope="session")
def pki_dir(lab_pki: tuple[testpki.TestPki, Path]) -> Path:
    return lab_pki[1]
