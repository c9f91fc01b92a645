"""Start-up (issue 17): importing the station loads no ISO-2/DIN/-20 schema module; once
ready, ``secc run`` imports the codec of the protocols its EVSEs offer (and no other)
and freezes the start-up objects out of the garbage collector's reach."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip()


def test_importing_the_station_loads_no_schema_module() -> None:
    loaded = _run(
        """
        import sys
        import secc.runtime, secc.aio.driver, secc.cli.run
        print(sorted(m for m in sys.modules if m.startswith("secc.codec._generated.")))
        """
    )
    # the appHandshake (tiny, every session starts with it) and nothing else
    assert loaded == "['secc.codec._generated.apphand']"


def test_settle_imports_the_offered_protocols_and_freezes() -> None:
    out = _run(
        """
        import gc, sys
        from secc.cli.run import settle
        from tests.station.conftest import evse, station_config

        config = station_config(None, None, evse(protocols=("iso2",)))
        assert gc.get_freeze_count() == 0
        settle(config)
        loaded = sorted(m.rsplit(".", 1)[1] for m in sys.modules
                        if m.startswith("secc.codec._generated."))
        print(loaded, gc.get_freeze_count() > 10000)
        """
    )
    assert out == "['apphand', 'iso2', 'xmldsig'] True"
