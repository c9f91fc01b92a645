"""HomePlug Green PHY management messages used by SLAC (ISO 15118-3 Annex A), pure codec.

An MME travels in an Ethernet frame with EtherType 0x88E1::

    dst(6) src(6) 0x88E1(2) | MMV(1) MMTYPE(2, little endian) | FMI(2, MMV >= 1) | MMENTRY

The low two bits of MMTYPE give the kind (00 .REQ, 01 .CNF, 10 .IND, 11 .RSP).  Frames
shorter than 60 bytes are padded with zeros, so decoders ignore trailing bytes beyond a
message's fixed length.  Qualcomm vendor messages (MMTYPE 0xA000..) use MMV 0, no FMI,
and start their MMENTRY with the OUI 00:B0:52.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from dataclasses import dataclass, fields
from typing import ClassVar

ETHERTYPE_HOMEPLUG = 0x88E1
MMV_AV11 = 0x01
MIN_FRAME = 60
BROADCAST = b"\xff" * 6
QCA_OUI = b"\x00\xb0\x52"
QCA_LOCAL_MAC = b"\x00\xb0\x52\x00\x00\x01"  # a QCA modem's host-interface management address

APPLICATION_TYPE_PEV_EVSE = 0x00
SECURITY_TYPE_NONE = 0x00
RESP_TYPE_OTHER_GP_STATION = 0x01
STATION_ID_LEN = 17
NUM_GROUPS = 58


class MmeError(ValueError):
    """Bytes that are not a well-formed MME of the type they claim."""


class MMType(enum.IntEnum):
    CM_SET_KEY_REQ = 0x6008
    CM_SET_KEY_CNF = 0x6009
    CM_SLAC_PARAM_REQ = 0x6064
    CM_SLAC_PARAM_CNF = 0x6065
    CM_START_ATTEN_CHAR_IND = 0x606A
    CM_ATTEN_CHAR_IND = 0x606E
    CM_ATTEN_CHAR_RSP = 0x606F
    CM_MNBC_SOUND_IND = 0x6076
    CM_VALIDATE_REQ = 0x6078
    CM_VALIDATE_CNF = 0x6079
    CM_SLAC_MATCH_REQ = 0x607C
    CM_SLAC_MATCH_CNF = 0x607D
    CM_ATTEN_PROFILE_IND = 0x6086
    VS_SW_VER_REQ = 0xA000
    VS_SW_VER_CNF = 0xA001
    VS_NW_INFO_REQ = 0xA038
    VS_NW_INFO_CNF = 0xA039


def nid_from_nmk(nmk: bytes, security_level: int = 0) -> bytes:
    """The 54-bit NID a station derives from an NMK (HomePlug AV: SHA-256 applied 5 times,
    first 7 bytes, security level in bits 4..5 of the last byte)."""
    if len(nmk) != 16:
        raise ValueError("an NMK has 16 bytes")
    digest = hashlib.sha256(nmk).digest()
    for _ in range(4):
        digest = hashlib.sha256(digest).digest()
    nid = bytearray(digest[:7])
    nid[6] = (nid[6] >> 4) | ((security_level & 0x3) << 4)
    return bytes(nid)


def _fixed(fmt: str) -> struct.Struct:
    return struct.Struct("<" + fmt)


@dataclass(frozen=True, slots=True)
class SetKeyReq:
    MMTYPE: ClassVar[MMType] = MMType.CM_SET_KEY_REQ
    FMT: ClassVar[struct.Struct] = _fixed("B4s4sBHBB7sB16s")
    key_type: int
    my_nonce: bytes
    your_nonce: bytes
    pid: int
    prn: int
    pmn: int
    cco_capability: int
    nid: bytes
    new_eks: int
    new_key: bytes


@dataclass(frozen=True, slots=True)
class SetKeyCnf:
    MMTYPE: ClassVar[MMType] = MMType.CM_SET_KEY_CNF
    FMT: ClassVar[struct.Struct] = _fixed("B4s4sBHBB")
    result: int  # 0 success
    my_nonce: bytes
    your_nonce: bytes
    pid: int
    prn: int
    pmn: int
    cco_capability: int


@dataclass(frozen=True, slots=True)
class SlacParamReq:
    MMTYPE: ClassVar[MMType] = MMType.CM_SLAC_PARAM_REQ
    FMT: ClassVar[struct.Struct] = _fixed("BB8s")
    application_type: int
    security_type: int
    run_id: bytes


@dataclass(frozen=True, slots=True)
class SlacParamCnf:
    MMTYPE: ClassVar[MMType] = MMType.CM_SLAC_PARAM_CNF
    FMT: ClassVar[struct.Struct] = _fixed("6sBBB6sBB8s")
    msound_target: bytes
    num_sounds: int
    time_out: int  # units of 100 ms
    resp_type: int
    forwarding_sta: bytes
    application_type: int
    security_type: int
    run_id: bytes


@dataclass(frozen=True, slots=True)
class StartAttenCharInd:
    MMTYPE: ClassVar[MMType] = MMType.CM_START_ATTEN_CHAR_IND
    FMT: ClassVar[struct.Struct] = _fixed("BBBBB6s8s")
    application_type: int
    security_type: int
    num_sounds: int
    time_out: int
    resp_type: int
    forwarding_sta: bytes
    run_id: bytes


@dataclass(frozen=True, slots=True)
class MnbcSoundInd:
    MMTYPE: ClassVar[MMType] = MMType.CM_MNBC_SOUND_IND
    FMT: ClassVar[struct.Struct] = _fixed("BB17sB8s8s16s")
    application_type: int
    security_type: int
    sender_id: bytes
    cnt: int  # sounds still to come
    run_id: bytes
    reserved: bytes
    rnd: bytes


@dataclass(frozen=True, slots=True)
class AttenProfileInd:
    MMTYPE: ClassVar[MMType] = MMType.CM_ATTEN_PROFILE_IND
    FMT: ClassVar[struct.Struct] = _fixed("6sBB")
    pev_mac: bytes
    num_groups: int
    reserved: int
    aag: bytes  # num_groups attenuation values in dB


@dataclass(frozen=True, slots=True)
class AttenCharInd:
    MMTYPE: ClassVar[MMType] = MMType.CM_ATTEN_CHAR_IND
    FMT: ClassVar[struct.Struct] = _fixed("BB6s8s17s17sBB")
    application_type: int
    security_type: int
    source_address: bytes
    run_id: bytes
    source_id: bytes
    resp_id: bytes
    num_sounds: int
    num_groups: int
    aag: bytes


@dataclass(frozen=True, slots=True)
class AttenCharRsp:
    MMTYPE: ClassVar[MMType] = MMType.CM_ATTEN_CHAR_RSP
    FMT: ClassVar[struct.Struct] = _fixed("BB6s8s17s17sB")
    application_type: int
    security_type: int
    source_address: bytes
    run_id: bytes
    source_id: bytes
    resp_id: bytes
    result: int


@dataclass(frozen=True, slots=True)
class ValidateReq:
    MMTYPE: ClassVar[MMType] = MMType.CM_VALIDATE_REQ
    FMT: ClassVar[struct.Struct] = _fixed("BBB")
    signal_type: int
    timer: int
    result: int


@dataclass(frozen=True, slots=True)
class ValidateCnf:
    MMTYPE: ClassVar[MMType] = MMType.CM_VALIDATE_CNF
    FMT: ClassVar[struct.Struct] = _fixed("BBB")
    signal_type: int
    toggle_num: int
    result: int  # 0 not ready, 1 ready, 2 success, 3 failure, 4 not required


@dataclass(frozen=True, slots=True)
class SlacMatchReq:
    MMTYPE: ClassVar[MMType] = MMType.CM_SLAC_MATCH_REQ
    FMT: ClassVar[struct.Struct] = _fixed("BBH17s6s17s6s8s8s")
    application_type: int
    security_type: int
    mvf_length: int  # 0x3E
    pev_id: bytes
    pev_mac: bytes
    evse_id: bytes
    evse_mac: bytes
    run_id: bytes
    reserved: bytes


@dataclass(frozen=True, slots=True)
class SlacMatchCnf:
    MMTYPE: ClassVar[MMType] = MMType.CM_SLAC_MATCH_CNF
    FMT: ClassVar[struct.Struct] = _fixed("BBH17s6s17s6s8s8s7sB16s")
    application_type: int
    security_type: int
    mvf_length: int  # 0x56
    pev_id: bytes
    pev_mac: bytes
    evse_id: bytes
    evse_mac: bytes
    run_id: bytes
    reserved: bytes
    nid: bytes
    reserved2: int
    nmk: bytes


@dataclass(frozen=True, slots=True)
class VsSwVerReq:
    MMTYPE: ClassVar[MMType] = MMType.VS_SW_VER_REQ
    FMT: ClassVar[struct.Struct] = _fixed("3s")
    oui: bytes = QCA_OUI


@dataclass(frozen=True, slots=True)
class VsSwVerCnf:
    MMTYPE: ClassVar[MMType] = MMType.VS_SW_VER_CNF
    FMT: ClassVar[struct.Struct] = _fixed("3sBBB")
    oui: bytes
    status: int
    device_id: int
    version_length: int
    version: bytes  # version_length bytes, NUL padded


@dataclass(frozen=True, slots=True)
class VsNwInfoReq:
    MMTYPE: ClassVar[MMType] = MMType.VS_NW_INFO_REQ
    FMT: ClassVar[struct.Struct] = _fixed("3s")
    oui: bytes = QCA_OUI


@dataclass(frozen=True, slots=True)
class VsNwInfoCnf:
    """Only the parts the probe needs: networks and, per network, the peer stations."""

    MMTYPE: ClassVar[MMType] = MMType.VS_NW_INFO_CNF
    FMT: ClassVar[struct.Struct] = _fixed("3sB")
    oui: bytes
    num_networks: int
    networks: tuple[tuple[bytes, tuple[bytes, ...]], ...]  # (NID, station MACs)


@dataclass(frozen=True, slots=True)
class UnknownMme:
    mmtype: int
    payload: bytes


Message = (
    SetKeyReq
    | SetKeyCnf
    | SlacParamReq
    | SlacParamCnf
    | StartAttenCharInd
    | MnbcSoundInd
    | AttenProfileInd
    | AttenCharInd
    | AttenCharRsp
    | ValidateReq
    | ValidateCnf
    | SlacMatchReq
    | SlacMatchCnf
    | VsSwVerReq
    | VsSwVerCnf
    | VsNwInfoReq
    | VsNwInfoCnf
)

_SIMPLE: dict[int, type[Message]] = {
    cls.MMTYPE: cls
    for cls in (
        SetKeyReq,
        SetKeyCnf,
        SlacParamReq,
        SlacParamCnf,
        StartAttenCharInd,
        MnbcSoundInd,
        AttenCharRsp,
        ValidateReq,
        ValidateCnf,
        SlacMatchReq,
        SlacMatchCnf,
        VsSwVerReq,
        VsNwInfoReq,
    )
}


@dataclass(frozen=True, slots=True)
class MmeFrame:
    dst: bytes
    src: bytes
    message: Message | UnknownMme
    mmv: int = MMV_AV11
    fmi: int = 0


def _vendor(mmtype: int) -> bool:
    return mmtype >= 0xA000


def encode_payload(msg: Message) -> bytes:
    if isinstance(msg, AttenProfileInd):
        return msg.FMT.pack(msg.pev_mac, len(msg.aag), msg.reserved) + msg.aag
    if isinstance(msg, AttenCharInd):
        head = msg.FMT.pack(
            msg.application_type,
            msg.security_type,
            msg.source_address,
            msg.run_id,
            msg.source_id,
            msg.resp_id,
            msg.num_sounds,
            len(msg.aag),
        )
        return head + msg.aag
    if isinstance(msg, VsSwVerCnf):
        return msg.FMT.pack(msg.oui, msg.status, msg.device_id, len(msg.version)) + msg.version
    if isinstance(msg, VsNwInfoCnf):
        out = bytearray(msg.FMT.pack(msg.oui, len(msg.networks)))
        for nid, stations in msg.networks:
            out += nid + bytes([0, 1, 0]) + b"\x00" * 6 + bytes([0, len(stations)])
            for mac in stations:
                out += mac + bytes([2]) + b"\x00" * 6 + bytes([0, 0])
        return bytes(out)
    values = [getattr(msg, f.name) for f in fields(msg)]
    return msg.FMT.pack(*values)


def encode(frame: MmeFrame) -> bytes:
    """Ethernet frame bytes (padded to 60) for an MME."""
    msg = frame.message
    if isinstance(msg, UnknownMme):
        mmtype, payload = msg.mmtype, msg.payload
    else:
        mmtype, payload = int(msg.MMTYPE), encode_payload(msg)
    mmv = 0 if _vendor(mmtype) else frame.mmv
    head = frame.dst + frame.src + struct.pack(">H", ETHERTYPE_HOMEPLUG)
    head += struct.pack("<BH", mmv, mmtype)
    if mmv != 0:
        head += struct.pack("<H", frame.fmi)
    data = head + payload
    return data + b"\x00" * max(0, MIN_FRAME - len(data))


def _need(payload: bytes, size: int, what: str) -> None:
    if len(payload) < size:
        raise MmeError(f"{what}: {len(payload)} bytes, needs {size}")


def decode_payload(mmtype: int, payload: bytes) -> Message | UnknownMme:
    if mmtype in _SIMPLE:
        cls = _SIMPLE[mmtype]
        _need(payload, cls.FMT.size, cls.__name__)
        return cls(*cls.FMT.unpack_from(payload))
    if mmtype == MMType.CM_ATTEN_PROFILE_IND:
        _need(payload, AttenProfileInd.FMT.size, "AttenProfileInd")
        mac, groups, rsvd = AttenProfileInd.FMT.unpack_from(payload)
        aag = payload[AttenProfileInd.FMT.size : AttenProfileInd.FMT.size + groups]
        _need(aag, groups, "AttenProfileInd.AAG")
        return AttenProfileInd(mac, groups, rsvd, aag)
    if mmtype == MMType.CM_ATTEN_CHAR_IND:
        _need(payload, AttenCharInd.FMT.size, "AttenCharInd")
        head = AttenCharInd.FMT.unpack_from(payload)
        groups = head[-1]
        aag = payload[AttenCharInd.FMT.size : AttenCharInd.FMT.size + groups]
        _need(aag, groups, "AttenCharInd.ATTEN_PROFILE")
        app, sec, source, run_id, source_id, resp_id, sounds, _groups = head
        return AttenCharInd(app, sec, source, run_id, source_id, resp_id, sounds, groups, aag)
    if mmtype == MMType.VS_SW_VER_CNF:
        _need(payload, VsSwVerCnf.FMT.size, "VsSwVerCnf")
        oui, status, dev, length = VsSwVerCnf.FMT.unpack_from(payload)
        version = payload[VsSwVerCnf.FMT.size : VsSwVerCnf.FMT.size + length]
        _need(version, length, "VsSwVerCnf.MVERSION")
        return VsSwVerCnf(oui, status, dev, length, version)
    if mmtype == MMType.VS_NW_INFO_CNF:
        return _decode_nw_info(payload)
    return UnknownMme(mmtype, payload)


def _decode_nw_info(payload: bytes) -> VsNwInfoCnf:
    _need(payload, VsNwInfoCnf.FMT.size, "VsNwInfoCnf")
    oui, count = VsNwInfoCnf.FMT.unpack_from(payload)
    pos = VsNwInfoCnf.FMT.size
    networks = []
    for _ in range(count):
        _need(payload[pos:], 18, "VsNwInfoCnf.network")
        nid = payload[pos : pos + 7]
        num_stas = payload[pos + 17]
        pos += 18
        stations = []
        for _ in range(num_stas):
            _need(payload[pos:], 15, "VsNwInfoCnf.station")
            stations.append(payload[pos : pos + 6])
            pos += 15
        networks.append((nid, tuple(stations)))
    return VsNwInfoCnf(oui, count, tuple(networks))


def decode(data: bytes) -> MmeFrame:
    """One Ethernet frame; MmeError when it is not a well-formed HomePlug MME."""
    if len(data) < 17:
        raise MmeError(f"frame of {len(data)} bytes is too short for an MME")
    dst, src = data[0:6], data[6:12]
    (ethertype,) = struct.unpack_from(">H", data, 12)
    if ethertype != ETHERTYPE_HOMEPLUG:
        raise MmeError(f"EtherType 0x{ethertype:04x} is not HomePlug (0x88E1)")
    mmv, mmtype = struct.unpack_from("<BH", data, 14)
    pos, fmi = 17, 0
    if mmv != 0:
        if len(data) < 19:
            raise MmeError("MME truncated before FMI")
        (fmi,) = struct.unpack_from("<H", data, 17)
        pos = 19
    if fmi & 0x00FF:  # NF_MI / FN_MI: a fragment
        raise MmeError("fragmented MMEs are not used by SLAC")
    return MmeFrame(dst, src, decode_payload(mmtype, data[pos:]), mmv, fmi)
