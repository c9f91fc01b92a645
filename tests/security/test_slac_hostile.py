"""Issue 15: the SLAC matcher under hostile frames (pure machine, hand-made frames from
the HomePlug/ISO 15118-3 layouts in hal.backends.slac.mme)."""

from __future__ import annotations

from collections.abc import Sequence

from hal.backends.slac import mme
from hal.backends.slac.matcher import (
    EvseMatcher,
    FrameIn,
    LinkReady,
    LinkUnconfirmed,
    Matched,
    Send,
    SlacTimers,
    Start,
    State,
    Stop,
    Tick,
)
from hal.backends.slac.mme import BROADCAST, MmeFrame, decode, encode

EVSE = bytes.fromhex("02aa00000001")
EV = bytes.fromhex("02ee00000001")
MODEM = bytes.fromhex("00b052000001")  # the EVSE's own modem (answers CM_SET_KEY)
INTRUDER = bytes.fromhex("02bad0000001")
RUN = b"R" * 8


def _random() -> object:
    state = [0]

    def draw(n: int) -> bytes:
        state[0] += 1
        return bytes((state[0] * 7 + i) % 256 for i in range(n))

    return draw


def frame(src: bytes, dst: bytes, msg: mme.Message, mmv: int = mme.MMV_AV11) -> FrameIn:
    return FrameIn(encode(MmeFrame(dst, src, msg, mmv)))


def sent(actions: Sequence[object]) -> list[object]:
    return [decode(a.data).message for a in actions if isinstance(a, Send)]


def ready(timers: SlacTimers | None = None) -> EvseMatcher:
    m = EvseMatcher(EVSE, _random(), timers)  # type: ignore[arg-type]
    (req,) = sent(m.handle(Start(), 0.0))
    assert isinstance(req, mme.SetKeyReq)
    m.handle(frame(MODEM, EVSE, mme.SetKeyCnf(0, b"\0" * 4, req.my_nonce, 4, 0, 0, 0)), 0.01)
    assert m.state is State.WAITING
    return m


def profile(src: bytes, groups: int = 58, ev: bytes = EV) -> FrameIn:
    return frame(src, EVSE, mme.AttenProfileInd(ev, groups, 0, bytes([20] * groups)))


def test_attenuation_counts_only_from_the_own_modem_with_58_groups() -> None:
    m = ready()
    m.handle(frame(EV, BROADCAST, mme.SlacParamReq(0, 0, RUN)), 1.0)
    for i in range(20):  # an intruder feeds fake profiles; short profiles too
        m.handle(profile(INTRUDER), 1.01 + i * 0.001)
        m.handle(profile(MODEM, groups=57), 1.05 + i * 0.001)
    assert m.sessions[(EV, RUN)].profiles == 0
    for i in range(10):
        out = m.handle(profile(MODEM), 1.1 + i * 0.01)
    assert m.sessions[(EV, RUN)].profiles == 10
    assert [type(x) for x in sent(out)] == [mme.AttenCharInd]


def test_slac_param_only_to_this_host_or_broadcast_with_mmv_1() -> None:
    m = ready()
    other_host = bytes.fromhex("02aa00000099")
    assert sent(m.handle(frame(EV, other_host, mme.SlacParamReq(0, 0, RUN)), 1.0)) == []
    assert sent(m.handle(frame(EV, MODEM, mme.SlacParamReq(0, 0, RUN)), 1.0)) == []
    req = mme.SlacParamReq(0, 0, RUN)
    assert sent(m.handle(frame(EV, BROADCAST, req, mmv=2), 1.0)) == []
    assert not m.sessions
    (cnf,) = sent(m.handle(frame(EV, EVSE, mme.SlacParamReq(0, 0, RUN)), 1.0))
    assert isinstance(cnf, mme.SlacParamCnf)


def test_live_sessions_are_capped_and_a_real_ev_still_matches() -> None:
    m = ready()
    for i in range(20_000):
        mac = bytes([0x02, 0xF0]) + i.to_bytes(4, "big")
        m.handle(frame(mac, BROADCAST, mme.SlacParamReq(0, 0, RUN)), 1.0 + i * 1e-6)
    assert len(m.sessions) <= m.timers.max_sessions
    t = 1.1
    m.handle(frame(EV, BROADCAST, mme.SlacParamReq(0, 0, RUN)), t)
    m.handle(frame(EV, BROADCAST, mme.StartAttenCharInd(0, 0, 10, 6, 1, EV, RUN)), t)
    for i in range(10):
        m.handle(profile(MODEM), t + 0.01 * (i + 1))
    rsp = mme.AttenCharRsp(0, 0, EV, RUN, b"\0" * 17, b"\0" * 17, 0)
    m.handle(frame(EV, EVSE, rsp), t + 0.2)
    req = mme.SlacMatchReq(0, 0, 0x3E, b"\0" * 17, EV, b"\0" * 17, EVSE, RUN, b"\0" * 8)
    out = m.handle(frame(EV, EVSE, req), t + 0.3)
    assert any(isinstance(a, Matched) and a.ev_mac == EV for a in out)


def test_unplug_rekeys_the_modem() -> None:
    m = ready()
    old = m.nmk
    out = m.handle(Stop(), 5.0)
    (req,) = sent(out)
    assert isinstance(req, mme.SetKeyReq) and req.new_key != old and req.new_key == m.nmk


def _matched() -> EvseMatcher:
    m = ready()
    t = 1.0
    m.handle(frame(EV, BROADCAST, mme.SlacParamReq(0, 0, RUN)), t)
    for i in range(10):
        m.handle(profile(MODEM), t + 0.01 * (i + 1))
    m.handle(frame(EV, EVSE, mme.AttenCharRsp(0, 0, EV, RUN, b"\0" * 17, b"\0" * 17, 0)), 1.2)
    req = mme.SlacMatchReq(0, 0, 0x3E, b"\0" * 17, EV, b"\0" * 17, EVSE, RUN, b"\0" * 8)
    out = m.handle(frame(EV, EVSE, req), 1.3)
    assert any(isinstance(a, Matched) for a in out)
    assert any(isinstance(x, mme.VsNwInfoReq) for x in sent(out))  # the link check starts
    return m


def _nw_info(nid: bytes, stations: tuple[bytes, ...]) -> mme.VsNwInfoCnf:
    return mme.VsNwInfoCnf(mme.QCA_OUI, 1, ((nid, stations),))


def test_link_ready_only_when_the_modem_reports_a_station_in_the_nid() -> None:
    m = _matched()
    ev_modem = bytes.fromhex("00b052ee0001")
    # an intruder's answer, and the modem's answer for another network, do not count
    m.handle(frame(INTRUDER, EVSE, _nw_info(m.nid, (ev_modem,)), mmv=0), 1.4)
    m.handle(frame(MODEM, EVSE, _nw_info(b"\x01" * 7, (ev_modem,)), mmv=0), 1.5)
    assert m.link == "unconfirmed"
    out = m.handle(frame(MODEM, EVSE, _nw_info(m.nid, (ev_modem,)), mmv=0), 1.6)
    assert LinkReady(m.nid, (ev_modem,)) in out and m.link == "ready"


def test_link_not_confirmed_when_the_ev_never_joins() -> None:
    m = _matched()
    polls = 0
    out: list[object] = []
    t = 1.3
    while m.link == "unconfirmed" and t < 20:
        t = m.deadline
        out = list(m.handle(Tick(), t))
        polls += sum(isinstance(x, mme.VsNwInfoReq) for x in sent(out))
    assert any(isinstance(a, LinkUnconfirmed) for a in out)
    assert m.link == "not confirmed" and polls >= 5
