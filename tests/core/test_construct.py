"""secc.core.construct.builder makes the same objects as the dataclasses' constructors.

The charging loop builds its responses with it (one function per class and set of
field names, setting the slots directly); an object it builds must be equal to, encode
the same as, and be as frozen as the one the dataclass's ``__init__`` makes, with the
fields it is not given at their defaults."""

from __future__ import annotations

import dataclasses

import pytest

from secc import codec
from secc.core.construct import builder

iso2 = codec.schema_module("iso2")
din = codec.schema_module("din")


def test_same_object_as_the_constructor() -> None:
    pv = builder(iso2.PhysicalValue, "multiplier", "unit", "value")(-1, iso2.UnitSymbol.V, 3524)
    ref = iso2.PhysicalValue(multiplier=-1, unit=iso2.UnitSymbol.V, value=3524)
    assert type(pv) is iso2.PhysicalValue and pv == ref and hash(pv) == hash(ref)
    info = builder(iso2.MeterInfo, "meter_id", "meter_reading", "t_meter")("M1", 7, 9)
    assert info == iso2.MeterInfo(meter_id="M1", meter_reading=7, t_meter=9)
    assert info.sig_meter_reading is None and info.meter_status is None  # defaults
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.meter_reading = 8  # type: ignore[misc]


@pytest.mark.parametrize("mod", [iso2, din], ids=["iso2", "din"])
def test_a_loop_response_encodes_the_same(mod: object) -> None:
    m: object = mod
    pv = m.PhysicalValue(multiplier=0, unit=m.UnitSymbol.V, value=400)  # type: ignore[attr-defined]
    status = m.DC_EVSEStatus(  # type: ignore[attr-defined]
        notification_max_delay=0,
        evse_notification=m.EVSENotification.None_,  # type: ignore[attr-defined]
        evse_status_code=m.DC_EVSEStatusCode.EVSE_Ready,  # type: ignore[attr-defined]
    )
    fields = {
        "response_code": m.ResponseCode.OK,  # type: ignore[attr-defined]
        "dc_evse_status": status,
        "evse_present_voltage": pv,
        "evse_present_current": pv,
        "evse_current_limit_achieved": False,
        "evse_voltage_limit_achieved": True,
        "evse_power_limit_achieved": False,
        "evse_maximum_voltage_limit": pv,
    }
    cls = m.CurrentDemandRes  # type: ignore[attr-defined]
    if m is iso2:
        fields |= {"evseid": "DE*ABC*E1", "sa_schedule_tuple_id": 1}
    built = builder(cls, *fields)(*fields.values())
    ref = cls(**fields)
    assert built == ref
    assert built.evse_maximum_power_limit is None  # a default
    header = m.MessageHeader(session_id=bytes(range(8)))  # type: ignore[attr-defined]
    msg = builder(m.V2G_Message, "body", "header")(  # type: ignore[attr-defined]
        builder(m.Body, "body_element")(built),
        header,  # type: ignore[attr-defined]
    )
    ref_msg = m.V2G_Message(header=header, body=m.Body(body_element=ref))  # type: ignore[attr-defined]
    assert msg == ref_msg
    assert codec.encode(msg) == codec.encode(ref_msg)


def test_refuses_what_it_cannot_build() -> None:
    with pytest.raises(TypeError, match="no default"):
        builder(iso2.PhysicalValue, "multiplier", "value")
    with pytest.raises(TypeError, match="unknown"):
        builder(iso2.PhysicalValue, "multiplier", "unit", "value", "nope")


def test_a_class_with_post_init_keeps_it() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int
        b: int = 2

        def __post_init__(self) -> None:
            if self.a < 0:
                raise ValueError("negative")

    assert builder(Checked, "a")(1) == Checked(1)
    with pytest.raises(ValueError):
        builder(Checked, "a", "b")(-1, 3)
