"""Start-up (issue 17): importing the station loads no ISO-2/DIN/-20 schema module; once
ready, ``secc run`` imports the codec of the protocols its EVSEs offer (and no other)
and freezes the start-up objects out of the garbage collector's reach."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.station.conftest import EVSE_ID


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


# imported by nothing the start needs (the checks included); a station that loads them
# before it is ready starts slower and resides bigger (issue 17, bench/footprint.py)
DEFERRED = (
    "asn1crypto",
    "importlib.metadata",
    "certs.validate",
    "secc.ocpp_bridge",
    "ocpp",
    "websockets",
)


def test_secc_run_is_ready_without_the_deferred_modules(pki_dir: Path, tmp_path: Path) -> None:
    """The real ``secc run`` (checks, TLS and TCP servers, SDP) up to SDP-ready: the
    post-ready ``settle`` step is replaced by a report of what is imported by then."""
    config = tmp_path / "secc.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [station]
            log_level = "warning"
            [certs]
            store = "{pki_dir / "station"}"
            [[evse]]
            evse_id = "{EVSE_ID}"
            address = "::1"
            tls_port = 0
            tcp_port = 0
            sdp_port = 0
            energy_modes = ["AC_three_phase_core", "DC_extended"]
            [evse.hal]
            backend = "simulated"
            """
        )
    )
    out = _run(
        f"""
        import os, sys
        import secc.cli.run as run

        def report(config):
            deferred = {DEFERRED!r}
            print("ready", sorted(m for m in sys.modules if m.split(".")[0] in deferred
                                  or m.startswith(deferred)), flush=True)
            os._exit(0)

        run.settle = report
        sys.exit(run.main(["--config", {str(config)!r}], prog="secc run"))
        """
    )
    assert out == "ready []"
