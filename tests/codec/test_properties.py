"""Property: every random valid message survives encode -> decode unchanged.

One test case per body message type (all 34 members of the ISO-2 Body substitution group,
all of DIN's, and both appHandshake messages), each wrapped in a V2G_Message whose header
is random too (SessionID, Notification, and a Signature without KeyInfo: see
``strategies.messages``).  The same values also survive the XML and JSON views.

ISO 15118-20: one test case per message of the five schema sets (CommonMessages 26, AC 4,
DC 10, WPT 12, ACDP 8; most have no public vector), encoded as the global element it is
(no V2G_Message wrapper), and the XML and JSON views over all of them.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secc import codec
from secc.codec import xml as cx

from . import strategies as S  # noqa: N812

# big nested messages (SAScheduleList, CertificateInstallationRes) are slow to generate
RELAXED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
EXAMPLES = settings(max_examples=20, deadline=None, suppress_health_check=RELAXED)

ISO2_BODIES = S.body_members("iso2")
DIN_BODIES = S.body_members("din")


def _roundtrip(message: Any, schema: str) -> None:
    data = codec.encode(message)
    back = codec.decode(data, schema)
    assert back == message
    assert codec.encode(back) == data


def test_every_body_type_is_covered() -> None:
    assert len(ISO2_BODIES) == 34
    assert len(DIN_BODIES) >= 30
    names = {name for name, _ in ISO2_BODIES}
    assert {"SessionSetupReq", "CurrentDemandReq", "CertificateInstallationRes"} <= names
    assert "BodyElement" not in names  # the abstract head is never generated


@pytest.mark.parametrize(("name", "cls"), ISO2_BODIES, ids=[n for n, _ in ISO2_BODIES])
@EXAMPLES
@given(data=st.data())
def test_iso2_message_roundtrip(name: str, cls: type, data: st.DataObject) -> None:
    message = data.draw(S.messages("iso2", cls))
    _roundtrip(message, "iso2")


@pytest.mark.parametrize(("name", "cls"), DIN_BODIES, ids=[n for n, _ in DIN_BODIES])
@EXAMPLES
@given(data=st.data())
def test_din_message_roundtrip(name: str, cls: type, data: st.DataObject) -> None:
    message = data.draw(S.messages("din", cls))
    _roundtrip(message, "din")


@pytest.mark.parametrize("root", ["supportedAppProtocolReq", "supportedAppProtocolRes"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_apphand_roundtrip(root: str, data: st.DataObject) -> None:
    mod = codec.schema_module("apphand")
    cls = next(r.cls for r in mod.DOCUMENT if r.local == root)
    message = data.draw(S.instances("apphand", cls))
    _roundtrip(message, "apphand")


@settings(max_examples=60, deadline=None, suppress_health_check=RELAXED)
@given(message=S.messages("iso2"))
def test_xml_and_json_views_roundtrip(message: Any) -> None:
    obj = json.loads(json.dumps(cx.to_json(message)))
    assert cx.from_json(obj, "iso2")[1] == message
    # every string the codec carries is XML 1.0 character data, so the XML form exists
    assert cx.from_xml(cx.to_xml(message), "iso2")[1] == message


@settings(max_examples=30, deadline=None, suppress_health_check=RELAXED)
@given(message=S.messages("din"))
def test_din_xml_view_roundtrip(message: Any) -> None:
    back = cx.from_xml(cx.to_xml(message), "din")[1]
    assert back == message and codec.encode(back) == codec.encode(message)


def test_strategies_learn_the_choice_groups() -> None:
    mod = codec.schema_module("iso2")
    groups, required = S.choice_groups("iso2", mod.Parameter)
    assert required
    assert groups[0] == (
        "bool_value",
        "byte_value",
        "short_value",
        "int_value",
        "physical_value",
        "string_value",
    )
    # a class without choices has none
    assert S.choice_groups("iso2", mod.PhysicalValue) == ((), False)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_generated_parameters_hold_exactly_one_value(data: st.DataObject) -> None:
    mod = codec.schema_module("iso2")
    p = data.draw(S.instances("iso2", mod.Parameter))
    values = [p.bool_value, p.byte_value, p.short_value, p.int_value, p.physical_value]
    assert sum(v is not None for v in [*values, p.string_value]) == 1


# ---------------------------------------------------------------------- ISO 15118-20

ISO20_MESSAGES = [
    (schema, name, cls) for schema in S.ISO20_SCHEMAS for name, cls in S.iso20_messages(schema)
]
ISO20_EXAMPLES = settings(max_examples=30, deadline=None, suppress_health_check=RELAXED)


def test_every_iso20_message_type_is_covered() -> None:
    per_schema = {s: sum(1 for x in ISO20_MESSAGES if x[0] == s) for s in S.ISO20_SCHEMAS}
    assert per_schema == {
        "iso20-common": 26,
        "iso20-ac": 4,
        "iso20-dc": 10,
        "iso20-wpt": 12,
        "iso20-acdp": 8,
    }
    names = {name for _, name, _ in ISO20_MESSAGES}
    assert {
        "MeteringConfirmationReq",
        "MeteringConfirmationRes",
        "CertificateInstallationReq",
        "CertificateInstallationRes",
        "VehicleCheckInReq",
        "VehicleCheckOutRes",
        "WPT_FinePositioningSetupReq",
        "ACDP_DisconnectRes",
        "DC_ChargeLoopReq",
    } <= names


def _roundtrip_iso20(message: Any, schema: str, name: str) -> bytes:
    # name=: ACDP_ConnectReq and ACDP_DisconnectReq share one type
    data = codec.encode(message, schema, name=name)
    root, back = codec.decode_document(data, schema)
    assert root.local == name
    assert back == message
    assert codec.encode(back, schema, name=name) == data
    return data


@pytest.mark.parametrize(
    ("schema", "name", "cls"), ISO20_MESSAGES, ids=[f"{s}:{n}" for s, n, _ in ISO20_MESSAGES]
)
@ISO20_EXAMPLES
@given(data=st.data())
def test_iso20_message_roundtrip(schema: str, name: str, cls: type, data: st.DataObject) -> None:
    _roundtrip_iso20(data.draw(S.iso20_message(schema, cls)), schema, name)


@settings(max_examples=150, deadline=None, suppress_health_check=RELAXED)
@given(data=st.data())
def test_iso20_xml_and_json_views_roundtrip(data: st.DataObject) -> None:
    schema, name, cls = data.draw(st.sampled_from(ISO20_MESSAGES))
    message = data.draw(S.iso20_message(schema, cls))
    exi = _roundtrip_iso20(message, schema, name)
    root, _ = codec.decode_document(exi, schema)
    text = cx.to_xml(message, root=root, schema=schema)
    xml_root, from_text = cx.from_xml(text, schema)
    assert xml_root == root and from_text == message
    assert codec.encode(from_text, schema, name=name) == exi
    obj = json.loads(json.dumps(cx.to_json(message, root=root, schema=schema)))
    json_root, from_obj = cx.from_json(obj, schema)
    assert json_root == root and from_obj == message


def test_strategies_learn_minimum_counts() -> None:
    """WPT_TxRxPackageSpecData needs 2..255 PulseSequenceOrder: the metadata says only
    "required, repeated", so the strategies learn the 2 from the encoder."""
    mod = codec.schema_module("iso20-wpt")
    assert len(S.minimal("iso20-wpt", mod.WPT_TxRxPackageSpecData).pulse_sequence_order) == 2


def test_too_few_repeated_items_name_the_cause() -> None:
    """WPT PulseSequenceOrder needs at least 2: with one, the encoder's error says that a
    repeated element before the refused one may be short."""
    mod = codec.schema_module("iso20-wpt")
    spec = S.minimal("iso20-wpt", mod.WPT_TxRxPackageSpecData)
    short = dataclasses.replace(spec, pulse_sequence_order=spec.pulse_sequence_order[:1])
    with pytest.raises(codec.EncodeError, match="too few of a repeated element before it"):
        codec.encode_fragment(short, "iso20-wpt", name="TxPackageSpecData")
