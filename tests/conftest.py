"""Suite-wide settings for running on several pytest-xdist workers (pyproject's addopts:
``-n auto --dist loadgroup``).

Most tests wait (on sockets, peers, subprocess stations, the EV's loop), not compute, so
the suite runs with more workers than cores: two per core, at least two, at most six
(each worker collects the suite and builds its own session fixtures, such as the test
PKIs).  ``SECC_TEST_WORKERS=N`` picks another number; ``-n 0`` on the command line runs
everything in one process, in file order.

Tests are independent of each other's process: ports are 0 (or fixed inside a network
namespace of their own), namespaces and temporary paths are per process.  Tests that
should not share the machine with each other, or share an expensive set-up, run in one
group, on one worker, one after the other (``GROUPS``; the scheduler below, since
xdist's own ``xdist_group`` marks do not group under pytest 9, whose node ids xdist
cannot rename):

* ``interop``: every test under ``tests/interop`` runs the peer EVCC with its Java codec,
  ``secc run`` and often a CSMS process; the peer's DIN EV gives up 0.25 s after a
  request, so two of them at once compete for the cores they both need;
* ``import_rules``: ``tests/test_import_rules.py`` parses every module of the project
  once, for all its tests.

Groups go first (largest first), then the long test files, so that the short tests fill
the other workers meanwhile instead of the run ending on one long test.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))

# (directory or file under tests/, group): tests that run one after the other, on one worker
GROUPS = (("interop/", "interop"), ("test_import_rules.py", "import_rules"))

# files holding tests that take many seconds each (single tests of a few seconds and
# whole directories of short tests are left in file order)
LONG_FIRST = (
    "codec/test_iso20_exificient.py",
    "codec/test_codegen.py",
    "commission/test_systemd.py",
    "security/test_connection_logging.py",
    "security/test_floods.py",
    "core/test_safety.py",
    "core/test_iso20_safety.py",
    "core/test_fuzz_requests.py",
    "core/test_iso20_fuzz.py",
    "commission/test_network.py",
    "commission/test_startup_checks.py",
    "commission/test_renew.py",
    "commission/test_commission.py",
    "ocpp/test_secc_run_hooks.py",
    "ocpp/test_smart_k17.py",
    "ocpp/test_smart_e2e.py",
    "ev/test_demo_iso20.py",
    "station/test_run_cli.py",
)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    wanted = os.environ.get("SECC_TEST_WORKERS", "")
    if wanted:
        try:
            return max(0, int(wanted))
        except ValueError:
            raise pytest.UsageError(f"SECC_TEST_WORKERS must be a number: {wanted!r}") from None
    cores = len(os.sched_getaffinity(0))
    return max(2, min(6, 2 * cores))


def _relative(item: pytest.Item) -> str:
    return os.path.relpath(str(item.path), TESTS).replace(os.sep, "/")


def _group(where: str) -> str | None:
    return next((group for prefix, group in GROUPS if where.startswith(prefix)), None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # the collections the controller hands out

        def rank(item: pytest.Item) -> int:
            where = _relative(item)
            return next((i for i, f in enumerate(LONG_FIRST) if where == f), len(LONG_FIRST))

        items.sort(key=rank)  # stable: file order otherwise


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` with the groups of ``GROUPS``, by path."""
    if config.getvalue("dist") != "loadgroup":
        return None  # another mode asked for on the command line: xdist's own
    from xdist.scheduler import LoadScopeScheduling

    prefix = os.path.basename(TESTS) + "/"

    class PathGroups(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            where = path[len(prefix) :] if path.startswith(prefix) else path
            return _group(where) or nodeid

    return PathGroups(config, log)
