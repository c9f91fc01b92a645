"""The strict TOML-to-dataclass loader: good files load, every kind of mistake is refused
with the file, the key and the reason."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal

import pytest

from secc.configload import load
from secc.errors import ConfigError


class Mode(StrEnum):
    AC = "AC_three_phase_core"
    DC = "DC_extended"


@dataclass(frozen=True, slots=True)
class Limits:
    max_current: float
    max_voltage: float = 500.0

    def __post_init__(self) -> None:
        if self.max_current <= 0:
            raise ValueError("max_current must be positive")


@dataclass(frozen=True, slots=True)
class Evse:
    evse_id: str
    interface: str
    modes: tuple[Mode, ...]
    limits: Limits
    port: int = 15118


@dataclass(frozen=True, slots=True)
class Station:
    evse: tuple[Evse, ...]
    store: Path
    log_level: Literal["debug", "info", "warning"] = "info"
    keylog: Path | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)


GOOD = """
store = "/var/lib/secc/certs"
log_level = "debug"

[[evse]]
evse_id = "DE*ABC*E1234"
interface = "eth1"
modes = ["DC_extended"]
limits = { max_current = 125, max_voltage = 920.0 }
"""


def _load(text: str) -> Station:
    return load(Station, tomllib.loads(text), "/etc/secc/secc.toml")


def test_good_file_loads() -> None:
    st = _load(GOOD)
    assert st.store == Path("/var/lib/secc/certs")
    assert st.evse[0].modes == (Mode.DC,)
    assert st.evse[0].limits == Limits(max_current=125.0, max_voltage=920.0)
    assert st.evse[0].port == 15118 and st.keylog is None and st.log_level == "debug"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("store =", "stor ="), "unknown key stor"),
        (('interface = "eth1"', 'interfce = "eth1"'), "unknown key evse[0].interfce"),
        (('evse_id = "DE*ABC*E1234"', ""), "missing required key evse[0].evse_id"),
        (('"DC_extended"', '"DC_fast"'), "evse[0].modes[0] must be one of"),
        (
            ("max_current = 125", 'max_current = "125"'),
            "evse[0].limits.max_current must be a number",
        ),
        (("max_current = 125", "max_current = -1"), "max_current must be positive"),
        (('log_level = "debug"', 'log_level = "trace"'), "log_level must be one of"),
        (('store = "/var/lib/secc/certs"', "store = 3"), "store must be a path"),
        (("modes = [", "modes = 7 #["), "evse[0].modes must be an array"),
    ],
)
def test_mistakes_are_refused_with_file_key_and_reason(edit: tuple[str, str], message: str) -> None:
    text = GOOD.replace(*edit)
    assert text != GOOD
    with pytest.raises(ConfigError) as info:
        _load(text)
    assert "/etc/secc/secc.toml" in str(info.value)
    assert message in str(info.value)


def test_not_a_table() -> None:
    with pytest.raises(ConfigError, match="must be a table"):
        load(Station, ["x"], "f.toml")
