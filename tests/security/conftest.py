"""The security tests share the station tests' fixtures (test PKI, configurations)."""

import gc
from collections.abc import Iterator

import pytest

from tests.station.conftest import pki_dir

__all__ = ["pki_dir", "started_heap"]


@pytest.fixture
def started_heap() -> Iterator[None]:
    """The test process's heap as ``secc run``'s once it started: collected and frozen
    (``gc.collect``, ``gc.freeze``), so that the station's own collections after a burst
    of connections (``secc.aio.admission``) scan what the station made since, not the
    whole test process (every test module a worker collected: 0.1-0.3 s a collection,
    hundreds of them in a connect flood).  Unfrozen at the end."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
