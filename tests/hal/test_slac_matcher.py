"""The EVSE SLAC matcher as a pure machine, with a fake clock and hand-made EV frames."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from hal.backends.slac import mme
from hal.backends.slac.matcher import (
    EvseMatcher,
    Failed,
    FrameIn,
    Ignored,
    Matched,
    Phase,
    Send,
    SessionDropped,
    SlacTimers,
    Start,
    State,
    Stop,
    Tick,
)
from hal.backends.slac.mme import BROADCAST, MmeFrame, decode, encode

EVSE = bytes.fromhex("02aa00000001")
EV = bytes.fromhex("02ee00000001")
MODEM = mme.QCA_LOCAL_MAC
RUN = b"R" * 8


def counter_random() -> object:
    c = itertools.count(1)
    return lambda n: bytes((next(c) + i) % 256 for i in range(n))


def frame(src: bytes, dst: bytes, msg: mme.Message) -> FrameIn:
    return FrameIn(encode(MmeFrame(dst, src, msg)))


def sent(actions: list[object]) -> list[mme.Message | mme.UnknownMme]:
    return [decode(a.data).message for a in actions if isinstance(a, Send)]


def ready(timers: SlacTimers | None = None) -> EvseMatcher:
    m = EvseMatcher(EVSE, counter_random(), timers)  # type: ignore[arg-type]
    out = m.handle(Start(), 0.0)
    req = sent(out)[0]
    assert isinstance(req, mme.SetKeyReq) and req.new_key == m.nmk
    assert req.nid == m.nid == mme.nid_from_nmk(m.nmk)
    m.handle(frame(MODEM, EVSE, mme.SetKeyCnf(0, b"\0" * 4, req.my_nonce, 4, 0, 0, 0)), 0.01)
    assert m.state is State.WAITING
    return m


def param(m: EvseMatcher, now: float, src: bytes = EV, run: bytes = RUN) -> list[object]:
    return m.handle(frame(src, BROADCAST, mme.SlacParamReq(0, 0, run)), now)  # type: ignore[return-value]


def profile(m: EvseMatcher, now: float, db: int, ev: bytes = EV) -> list[object]:
    ind = mme.AttenProfileInd(ev, 58, 0, bytes([db] * 58))
    return m.handle(frame(MODEM, EVSE, ind), now)  # type: ignore[return-value]


def match_req(ev: bytes = EV, run: bytes = RUN) -> mme.SlacMatchReq:
    return mme.SlacMatchReq(0, 0, 0x3E, b"\0" * 17, ev, b"\0" * 17, EVSE, run, b"\0" * 8)


def test_full_sequence_with_standard_timers() -> None:
    m = ready()
    (cnf,) = sent(param(m, 1.0))
    assert isinstance(cnf, mme.SlacParamCnf)
    assert (cnf.num_sounds, cnf.time_out, cnf.resp_type, cnf.forwarding_sta) == (10, 6, 1, EV)
    m.handle(frame(EV, BROADCAST, mme.StartAttenCharInd(0, 0, 10, 6, 1, EV, RUN)), 1.1)
    assert m.sessions[(EV, RUN)].phase is Phase.SOUNDING
    assert m.deadline == 1.1 + 0.6  # TT_EVSE_match_MNBC
    for i in range(9):
        assert sent(profile(m, 1.2 + i * 0.02, 10 + i)) == []
    (ind,) = sent(profile(m, 1.5, 19))
    assert isinstance(ind, mme.AttenCharInd) and ind.num_sounds == 10
    assert set(ind.aag) == {round(sum(range(10, 20)) / 10)}
    m.handle(frame(EV, EVSE, mme.AttenCharRsp(0, 0, EV, RUN, b"\0" * 17, b"\0" * 17, 0)), 1.6)
    assert m.deadline == 1.6 + 10.0  # TT_EVSE_match_session
    out = m.handle(frame(EV, EVSE, match_req()), 2.0)
    cnf2, link_req = sent(out)  # the CNF, then the link check (VS_NW_INFO.REQ to the modem)
    assert isinstance(link_req, mme.VsNwInfoReq)
    assert isinstance(cnf2, mme.SlacMatchCnf) and cnf2.nmk == m.nmk and cnf2.nid == m.nid
    assert Matched(EV, RUN, m.nmk, m.nid) in out
    # the EV lost our CNF and asks again: same answer, no second Matched
    again = m.handle(frame(EV, EVSE, match_req()), 2.1)
    assert sent(again)[0] == cnf2 and not any(isinstance(a, Matched) for a in again)


def test_no_start_atten_char_drops_after_tt_match_sequence() -> None:
    m = ready()
    param(m, 1.0)
    assert m.deadline == 1.4
    out = m.handle(Tick(), 1.4)
    assert any(isinstance(a, SessionDropped) and "TT_match_sequence" in a.reason for a in out)


def test_atten_char_is_sent_three_times_then_dropped() -> None:
    m = ready()
    param(m, 1.0)
    profile(m, 1.1, 30)
    out = m.handle(Tick(), 1.1 + 0.6)
    assert [type(x) for x in sent(out)] == [mme.AttenCharInd]
    out1 = m.handle(Tick(), m.deadline)
    out2 = m.handle(Tick(), m.deadline)
    assert len(sent(out1)) == len(sent(out2)) == 1
    out3 = m.handle(Tick(), m.deadline)
    assert any(isinstance(a, SessionDropped) and "RSP" in a.reason for a in out3)


def test_repeated_param_req_is_answered_again_and_new_run_id_replaces() -> None:
    m = ready()
    assert len(sent(param(m, 1.0))) == 1
    assert len(sent(param(m, 1.1))) == 1  # the EV missed our CNF
    out = param(m, 1.2, run=b"N" * 8)
    assert any(isinstance(a, SessionDropped) and "new RunID" in a.reason for a in out)
    assert list(m.sessions) == [(EV, b"N" * 8)]


def test_validate_is_answered_not_required() -> None:
    m = ready()
    (cnf,) = sent(m.handle(frame(EV, EVSE, mme.ValidateReq(0, 0, 1)), 1.0))
    assert cnf == mme.ValidateCnf(0, 0, 4)


def test_match_for_unknown_run_or_foreign_evse_is_ignored() -> None:
    m = ready()
    out = m.handle(frame(EV, EVSE, match_req(run=b"X" * 8)), 1.0)
    assert sent(out) == [] and any(isinstance(a, Ignored) for a in out)


def test_init_timer_and_modem_timeouts() -> None:
    m = ready(SlacTimers(evse_slac_init=20.0))
    assert m.deadline == 20.0
    assert m.handle(Tick(), 20.0) == [Failed("TT_EVSE_SLAC_init expired without a match")]
    silent = EvseMatcher(EVSE, counter_random())  # type: ignore[arg-type]
    silent.handle(Start(), 0.0)
    outs = [silent.handle(Tick(), t) for t in (1.0, 2.0, 3.0)]
    assert [len(sent(o)) for o in outs[:2]] == [1, 1]  # two resends
    assert Failed("no CM_SET_KEY.CNF from the modem") in outs[2]


def test_new_start_draws_a_new_nmk_and_stop_resets() -> None:
    m = ready()
    first = m.nmk
    m.handle(Stop(), 1.0)
    assert m.state is State.IDLE and m.deadline == float("inf")
    m.handle(Start(), 2.0)
    assert m.nmk != first


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=20))
def test_garbage_frames_never_raise(frames: list[bytes]) -> None:
    m = ready()
    for i, data in enumerate(frames):
        m.handle(FrameIn(data), 1.0 + i / 100)
    prefix = EVSE + EV + b"\x88\xe1\x01"
    for i, data in enumerate(frames):
        m.handle(FrameIn(prefix + data), 2.0 + i / 100)


def test_matched_ev_starting_over_is_served_again_with_the_same_nmk() -> None:
    m = ready()
    param(m, 1.0)
    profile(m, 1.1, 20)
    m.handle(Tick(), 1.7)
    m.handle(frame(EV, EVSE, mme.AttenCharRsp(0, 0, EV, RUN, b"\0" * 17, b"\0" * 17, 0)), 1.8)
    m.handle(frame(EV, EVSE, match_req()), 1.9)
    nmk = m.nmk
    assert m.state is State.MATCHED
    m.link = "ready"  # the link check (tests/security/test_slac_hostile.py) is not this test's
    assert param(m, 5.0, src=bytes.fromhex("02ee00000099")) == []  # a stranger: ignored
    assert param(m, 5.0) == []  # same RunID repeated: ignored
    out = param(m, 6.0, run=b"2" * 8)
    assert any(isinstance(a, SessionDropped) and "restarted" in a.reason for a in out)
    assert [type(x) for x in sent(out)] == [mme.SlacParamCnf]
    assert m.state is State.WAITING and m.nmk == nmk
    assert m.deadline == 6.0 + 0.4
