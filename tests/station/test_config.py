"""The station TOML: the documented example loads, every kind of mistake is refused with
the file, the key and the reason, and an EVSE section maps onto the core's config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from secc.config import load_file, parse, session_config
from secc.core.config import DIN_NAMESPACE, ISO2_NAMESPACE, PncTrust
from secc.errors import ConfigError

EXAMPLE = Path(__file__).parents[2] / "docs" / "secc.example.toml"


def test_example_loads_and_maps_onto_the_core() -> None:
    config = load_file(EXAMPLE)
    assert [e.evse_id for e in config.evse] == ["DE*ABC*E1234567*1", "DE*ABC*E1234567*2"]
    ac, dc = config.evse
    assert dict(ac.hal_options) == {"port": "/dev/ttyS1"}
    assert ac.hal.backend == "serial-mcu" and dc.hal.backend == "serial-mcu"
    assert config.station.trace_dir == Path("/var/log/secc/traces")
    core = session_config(ac, tls=True, trust=PncTrust())
    assert core.evse_id == ac.evse_id and core.tls and core.pnc_enabled
    assert core.protocols == (ISO2_NAMESPACE, DIN_NAMESPACE)
    assert core.timers.sequence_timeout == 60.0
    assert core.payment_options == ("Contract", "ExternalPayment")
    assert session_config(dc, tls=False, trust=PncTrust()).dc.max_power == 150000.0


BASE = {"evse": [{"evse_id": "DE*ABC*E1*1"}]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"evse": [{"evse_id": "DE*ABC*E1*1", "colour": "red"}]}, "unknown key evse[0].colour"),
        ({**BASE, "station": {"trace_dri": "/x"}}, "unknown key station.trace_dri"),
        (
            {"evse": [{"evse_id": "DE*ABC*E1*1", "tls_port": "443"}]},
            "evse[0].tls_port must be an integer",
        ),
        ({"evse": [{"evse_id": "DE*ABC*E1*1", "tls_port": 70000}]}, "tls_port must be -1"),
        (
            {"evse": [{"evse_id": "DE*ABC*E1*1", "tls_port": -1, "tcp_port": -1}]},
            "needs tls_port or tcp",
        ),
        (
            {"evse": [{"evse_id": "DE*ABC*E1*1", "energy_modes": ["AC_warp"]}]},
            "unknown mode 'AC_warp'",
        ),
        (
            {"evse": [{"evse_id": "DE*ABC*E1*1", "protocols": ["iso20"]}]},
            "evse[0].protocols[0] must be",
        ),
        (
            {"evse": [{"evse_id": "DE*ABC*E1*1", "ac": {"max_current": "32"}}]},
            "evse[0].ac.max_current",
        ),
        (
            {"evse": [{"evse_id": "DE*ABC*E1*1", "timers": {"sequense": 1}}]},
            "unknown key evse[0].timers",
        ),
        ({"evse": [{"evse_id": "DE*ABC*E1*1", "hal": {"control": "cp"}}]}, "evse[0].hal.control"),
        ({"evse": [{"evse_id": "DE*ABC*E1*1", "hal": {"poll_interval": 0}}]}, "poll_interval"),
        (
            {"evse": [{"evse_id": "DE*ABC*E1*1", "hal": {"options": 3}}]},
            "hal.options must be a table",
        ),
        (
            {"evse": [{"evse_id": "DE*ABC*E1*1", "hal": {"options": {"a": [1]}}}]},
            "hal.options.a must",
        ),
        (
            {"evse": [{"evse_id": "DE*ABC*E1*1", "hal_options": {}}]},
            "unknown key evse[0].hal_options",
        ),
        ({"evse": []}, "at least one [[evse]]"),
        ({"evse": [{"evse_id": "DE*1"}]}, "evse[0]: evse_id 'DE*1': ISO 15118-2 wants 7 to 37"),
        ({"station": {}}, "missing required key evse"),
        ({"evse": [{"tls_port": 0}]}, "missing required key evse[0].evse_id"),
        ({"evse": [{"evse_id": "DE*ABC*E1*1"}, {"evse_id": "DE*ABC*E1*1"}]}, "same evse_id"),
        (
            {
                "evse": [
                    {"evse_id": "DE*ABC*E1*1", "tls_port": 1000},
                    {"evse_id": "DE*ABC*E1*2", "tls_port": 1000},
                ]
            },
            "same address and TCP port",
        ),
        ({**BASE, "authorization": {"eim": "maybe"}}, "authorization.eim must be one of"),
        ({**BASE, "ocpp": {"url": "ws://x"}}, "missing required key ocpp.station_id"),
        ({"evse": "X"}, "evse must be an array"),
    ],
)
def test_mistakes_are_refused_with_key_and_reason(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(data, "/etc/secc/secc.toml")
    assert str(info.value).startswith("/etc/secc/secc.toml: ")
    assert message in str(info.value)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_file(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[station\nname = 1\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_file(bad)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_file(binary)


def test_secc_run_refuses_a_bad_config_before_starting(tmp_path: Path) -> None:
    config = tmp_path / "secc.toml"
    config.write_text('[[evse]]\nevse_id = "DE*ABC*E1*1"\nmax_curent = 3\n')
    done = subprocess.run(
        [sys.executable, "-m", "secc.cli.main", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert f"{config}: unknown key evse[0].max_curent" in done.stderr
    ok = subprocess.run(
        [
            *(sys.executable, "-m", "secc.cli.main", "run", "--check", "--config-only"),
            *("--config", str(EXAMPLE)),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert ok.returncode == 0 and "OK, 2 EVSE(s) (the file only" in ok.stdout


def test_iso20_protocols_map_onto_the_core() -> None:
    from secc.core.config import ISO20_AC_NAMESPACE, ISO20_DC_NAMESPACE

    data = {
        "evse": [
            {
                "evse_id": "DE*ABC*E1*1",
                "energy_modes": ["AC_three_phase_core", "DC_extended"],
                "protocols": ["iso20-dc", "iso20-ac", "iso2", "din"],
                "iso20_control_modes": ["dynamic", "scheduled"],
                "iso20_allow_tcp": True,
                "hal": {"backend": "simulated"},
            }
        ]
    }
    (evse,) = parse(data, "secc.toml").evse
    assert evse.offers_iso20
    core = session_config(evse, tls=True, trust=PncTrust())
    assert core.protocols == (ISO20_DC_NAMESPACE, ISO20_AC_NAMESPACE, ISO2_NAMESPACE, DIN_NAMESPACE)
    assert core.iso20_control_modes == ("Dynamic", "Scheduled")
    assert core.iso20_allow_tcp and not core.tls13  # tls13 is set per connection
    plain_data = {"evse": [{"evse_id": "DE*ABC*E1*1", "hal": {"backend": "simulated"}}]}
    (plain,) = parse(plain_data, "secc.toml").evse
    assert (
        not plain.offers_iso20
        and not session_config(plain, tls=True, trust=PncTrust()).iso20_allow_tcp
    )


@pytest.mark.parametrize(
    ("evse", "message"),
    [
        (
            {"protocols": ["iso2", "iso2"]},
            "evse[0]: protocols ['iso2', 'iso2'] names a protocol twice",
        ),
        (
            {"protocols": ["iso20-dc"]},
            "evse[0]: protocols: iso20-dc needs one of the DC_* modes in energy_modes",
        ),
        (
            {"protocols": ["iso20-ac"], "tls_port": -1, "tcp_port": 0},
            "need TLS 1.3 (tls_port) or, in a lab, iso20_allow_tcp",
        ),
        ({"iso20_control_modes": ["static"]}, "evse[0].iso20_control_modes[0] must be one of"),
        ({"iso20_control_modes": []}, "iso20_control_modes must name scheduled and/or dynamic"),
        ({"iso20_allow_tcp": "yes"}, "evse[0].iso20_allow_tcp must be"),
    ],
)
def test_iso20_mistakes_name_file_and_key(evse: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse({"evse": [{"evse_id": "DE*ABC*E1*1", **evse}]}, "/etc/secc/secc.toml")
    assert str(info.value).startswith("/etc/secc/secc.toml: ")
    assert message in str(info.value)
