"""The HomePlug GP / SLAC MME codec: round trips, layout facts, bad input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hal.backends.slac import mme
from hal.backends.slac.mme import (
    BROADCAST,
    AttenCharInd,
    AttenProfileInd,
    MmeError,
    MmeFrame,
    MMType,
    SetKeyReq,
    SlacMatchCnf,
    SlacMatchReq,
    SlacParamCnf,
    SlacParamReq,
    UnknownMme,
    VsNwInfoCnf,
    VsSwVerCnf,
    VsSwVerReq,
    decode,
    encode,
    nid_from_nmk,
)

EV = bytes.fromhex("020000000001")
EVSE = bytes.fromhex("020000000002")
RUN = bytes(range(8))

SAMPLES: list[mme.Message] = [
    SetKeyReq(1, b"\x01\x02\x03\x04", b"\x00" * 4, 4, 0, 0, 0, b"\x11" * 7, 1, b"\x22" * 16),
    SlacParamReq(0, 0, RUN),
    SlacParamCnf(BROADCAST, 10, 6, 1, EV, 0, 0, RUN),
    mme.StartAttenCharInd(0, 0, 10, 6, 1, EV, RUN),
    mme.MnbcSoundInd(0, 0, b"\x00" * 17, 9, RUN, b"\x00" * 8, b"\x33" * 16),
    AttenProfileInd(EV, 58, 0, bytes(range(58))),
    AttenCharInd(0, 0, EV, RUN, b"\x00" * 17, b"\x00" * 17, 10, 58, bytes([20] * 58)),
    mme.AttenCharRsp(0, 0, EV, RUN, b"\x00" * 17, b"\x00" * 17, 0),
    mme.ValidateReq(0, 0, 1),
    mme.ValidateCnf(0, 0, 4),
    SlacMatchReq(0, 0, 0x3E, b"\x00" * 17, EV, b"\x00" * 17, EVSE, RUN, b"\x00" * 8),
    SlacMatchCnf(
        0,
        0,
        0x56,
        b"\x00" * 17,
        EV,
        b"\x00" * 17,
        EVSE,
        RUN,
        b"\x00" * 8,
        b"\x44" * 7,
        0,
        b"\x55" * 16,
    ),
    VsSwVerReq(),
    VsSwVerCnf(mme.QCA_OUI, 0, 0x20, 5, b"1.2.3"),
    VsNwInfoCnf(mme.QCA_OUI, 1, ((b"\x01" * 7, (EV, EVSE)),)),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg: mme.Message) -> None:
    wire = encode(MmeFrame(EV, EVSE, msg))
    assert len(wire) >= 60
    assert wire[12:14] == b"\x88\xe1"
    back = decode(wire)
    assert back.message == msg and back.dst == EV and back.src == EVSE


def test_header_layout_and_mmtype_values() -> None:
    wire = encode(MmeFrame(BROADCAST, EV, SlacParamReq(0, 0, RUN)))
    assert wire[14] == 0x01  # MMV HomePlug AV 1.1
    assert wire[15:17] == b"\x64\x60"  # CM_SLAC_PARAM.REQ 0x6064, little endian
    assert wire[17:19] == b"\x00\x00"  # FMI
    assert wire[19:21] == b"\x00\x00" and wire[21:29] == RUN
    vendor = encode(MmeFrame(mme.QCA_LOCAL_MAC, EV, VsSwVerReq()))
    assert vendor[14] == 0x00 and vendor[15:17] == b"\x00\xa0" and vendor[17:20] == mme.QCA_OUI
    assert MMType.CM_ATTEN_PROFILE_IND == 0x6086 and MMType.CM_SLAC_MATCH_CNF == 0x607D
    assert len(mme.encode_payload(SAMPLES[-5])) == 4 + 62  # SLAC_MATCH.REQ, MVFLength 0x3E
    assert len(mme.encode_payload(SAMPLES[-4])) == 4 + 86  # SLAC_MATCH.CNF, MVFLength 0x56


def test_nid_derivation_is_deterministic_with_security_level_bits() -> None:
    nmk = bytes(range(16))
    nid = nid_from_nmk(nmk)
    assert len(nid) == 7 and nid == nid_from_nmk(nmk)
    assert nid[6] >> 4 == 0  # simple connect security level
    assert nid_from_nmk(nmk, 1)[6] >> 4 == 1
    assert nid_from_nmk(bytes(16)) != nid
    with pytest.raises(ValueError):
        nid_from_nmk(b"short")


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_truncated_payloads_raise(msg: mme.Message) -> None:
    wire = encode(MmeFrame(EV, EVSE, msg))
    header = 17 if isinstance(msg, VsSwVerReq | VsSwVerCnf | VsNwInfoCnf) else 19
    body = len(mme.encode_payload(msg))
    if body == 0:
        return
    with pytest.raises(MmeError):
        decode(wire[: header + body - 1])


def test_bad_frames() -> None:
    good = encode(MmeFrame(EV, EVSE, SlacParamReq(0, 0, RUN)))
    with pytest.raises(MmeError, match="too short"):
        decode(good[:10])
    with pytest.raises(MmeError, match="EtherType"):
        decode(good[:12] + b"\x08\x00" + good[14:])
    fragmented = bytearray(good)
    fragmented[17] = 0x11
    with pytest.raises(MmeError, match="fragment"):
        decode(bytes(fragmented))
    # oversized: trailing bytes beyond the fixed layout are padding and ignored
    assert decode(good + b"\xff" * 1400).message == SlacParamReq(0, 0, RUN)
    # a profile claiming more groups than it carries
    short = encode(MmeFrame(EV, EVSE, AttenProfileInd(EV, 58, 0, bytes(58))))
    with pytest.raises(MmeError):
        decode(short[: 19 + 8 + 20])
    unknown = decode(good[:15] + b"\x99\x60" + good[17:])
    assert isinstance(unknown.message, UnknownMme) and unknown.message.mmtype == 0x6099


@given(st.binary(max_size=200))
def test_decode_raises_only_mme_error(data: bytes) -> None:
    with contextlib.suppress(MmeError):
        decode(data)


@given(st.binary(min_size=0, max_size=120))
def test_any_payload_after_a_valid_header_decodes_or_raises_mme_error(payload: bytes) -> None:
    for mmtype in MMType:
        head = EV + EVSE + b"\x88\xe1" + bytes([1]) + int(mmtype).to_bytes(2, "little") + b"\0\0"
        with contextlib.suppress(MmeError):
            decode(head + payload)
