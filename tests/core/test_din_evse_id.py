"""DIN SPEC 70121's EVSEID: the DIN SPEC 91286 form packed into nibbles, else 0x00."""

from __future__ import annotations

import pytest

from secc.core.config import SessionConfig
from secc.core.iso2.session_setup import din_evse_id
from secc.errors import ConfigError


@pytest.mark.parametrize(
    ("evse_id", "din", "expected"),
    [
        ("DE*ABC*E1234567*1", None, "00"),  # ISO form: not representable
        ("+49*89*6360", None, "49a89a6360"),  # the example of the standard
        ("DE*ABC*E1234567*1", "49*89*6360", "49a89a6360"),
        ("DE*ABC*E1234567*1", "49*89*636", "49a89a636f"),  # odd count padded
        ("DE*ABC*E1234567*1", "1" * 64, "1" * 64),  # 32 octets: the DIN XSD's maxLength
    ],
)
def test_din_evse_id(evse_id: str, din: str | None, expected: str) -> None:
    config = SessionConfig(evse_id=evse_id, din_evse_id=din)
    assert din_evse_id(config).hex() == expected


@pytest.mark.parametrize("bad", ["", "49-89", "DE*ABC", "1" * 65])
def test_bad_din_evse_id_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="din_evse_id"):
        SessionConfig(din_evse_id=bad)
