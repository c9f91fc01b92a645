"""The EVSE side of SLAC matching (ISO 15118-3 Annex A), as a pure state machine.

Theory of operation
-------------------
``Start`` draws a fresh random NMK (the NID is derived from it) and hands it to the local
modem with CM_SET_KEY.REQ; once CM_SET_KEY.CNF confirms it, the matcher listens for
CM_SLAC_PARAM.REQ until TT_EVSE_SLAC_init expires.  Each (EV MAC, RunID) gets a session:

    PARAM_SENT --START_ATTEN_CHAR / first sound--> SOUNDING (TT_EVSE_match_MNBC)
    SOUNDING --all profiles or timer--> ATTEN_SENT (TT_match_response, resent up to 3 times)
    ATTEN_SENT --CM_ATTEN_CHAR.RSP--> WAIT_MATCH (TT_EVSE_match_session)
    WAIT_MATCH --CM_SLAC_MATCH.REQ--> matched: CM_SLAC_MATCH.CNF carries NMK and NID

A session whose timer runs out is dropped (the EV may start again with a new
CM_SLAC_PARAM.REQ); a CM_SLAC_MATCH.REQ for a dropped session gets no answer.  Several EVs
may sound at once (e.g. neighbouring charge points on one bus); the first to send
CM_SLAC_MATCH.REQ wins and the others are dropped.  The attenuation comes from the
modem's CM_ATTEN_PROFILE.IND, one per sound it hears.  When TT_EVSE_SLAC_init has expired
and no session is alive, the outcome is :class:`Failed`; the caller decides on a retry
(new CP cycle) or basic charging.  Time (``now``) and randomness (``random_bytes``) are
injected: ``handle(event, now) -> list[action]`` plus ``deadline``.

Hostile frames (anyone on the PLC link can send MMEs): CM_ATTEN_PROFILE.IND counts only
from the EVSE's own modem (its MAC learned from CM_SET_KEY.CNF) and only with all 58
groups; CM_SLAC_PARAM.REQ is answered only when addressed to the EVSE host or broadcast,
with MMV 1 (HomePlug AV 1.1); at most ``max_sessions`` sessions live at once (the
per-frame cost grows with them): a new one replaces the oldest that never sounded, else
it is ignored.  ``Stop`` (unplug) re-keys the modem with a fresh NMK, so that the EV that
left keeps no access to the EVSE's network.

After CM_SLAC_MATCH.CNF the matcher confirms that the EV joined (D-LINK_READY): it asks
the modem for its network info (QCA VS_NW_INFO, every ``link_poll`` seconds) until a
station shows up in the EVSE's NID (:class:`LinkReady`) or ``link_confirm`` runs out
(:class:`LinkUnconfirmed`: the EV never joined, or the modem does not answer vendor
requests).  Once ready it keeps asking every ``link_watch`` seconds: an answer without
a station in the NID is :class:`LinkLost` (link ``down``; the EV's modem left, e.g. the
cable was pulled or the modem reset), a station showing up again :class:`LinkReady`.  A
modem that stops answering changes nothing (silence proves nothing).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from hal.backends.slac.mme import (
    APPLICATION_TYPE_PEV_EVSE,
    BROADCAST,
    MMV_AV11,
    NUM_GROUPS,
    QCA_LOCAL_MAC,
    RESP_TYPE_OTHER_GP_STATION,
    SECURITY_TYPE_NONE,
    STATION_ID_LEN,
    AttenCharInd,
    AttenCharRsp,
    AttenProfileInd,
    Message,
    MmeError,
    MmeFrame,
    MnbcSoundInd,
    SetKeyCnf,
    SetKeyReq,
    SlacMatchCnf,
    SlacMatchReq,
    SlacParamCnf,
    SlacParamReq,
    StartAttenCharInd,
    ValidateCnf,
    ValidateReq,
    VsNwInfoCnf,
    VsNwInfoReq,
    decode,
    encode,
    nid_from_nmk,
)

VALIDATE_NOT_REQUIRED = 0x04


@dataclass(frozen=True, slots=True)
class SlacTimers:
    """ISO 15118-3 timers and constants (defaults are the standard's values)."""

    evse_slac_init: float = 50.0  # TT_EVSE_SLAC_init, 20..50 s
    match_sequence: float = 0.4  # TT_match_sequence
    match_response: float = 0.2  # TT_match_response
    evse_match_mnbc: float = 0.6  # TT_EVSE_match_MNBC
    evse_match_session: float = 10.0  # TT_EVSE_match_session
    num_sounds: int = 10  # C_EV_match_MNBC
    atten_char_tries: int = 3  # first CM_ATTEN_CHAR.IND + C_EV_match_retry (2)
    set_key_timeout: float = 1.0
    set_key_tries: int = 3
    max_sessions: int = 8  # live (EV MAC, RunID) sessions at once
    link_confirm: float = 5.0  # after the match: the EV's modem must show up in the NID
    link_poll: float = 0.5  # VS_NW_INFO.REQ interval meanwhile
    link_watch: float = 2.0  # VS_NW_INFO.REQ interval once the link is ready (lost link)


@dataclass(frozen=True, slots=True)
class Start:
    pass


@dataclass(frozen=True, slots=True)
class Stop:
    pass


@dataclass(frozen=True, slots=True)
class FrameIn:
    data: bytes


@dataclass(frozen=True, slots=True)
class Tick:
    pass


Event = Start | Stop | FrameIn | Tick


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes


@dataclass(frozen=True, slots=True)
class Matched:
    ev_mac: bytes
    run_id: bytes
    nmk: bytes
    nid: bytes


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str


@dataclass(frozen=True, slots=True)
class SessionDropped:
    ev_mac: bytes
    run_id: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class LinkReady:
    """D-LINK_READY: the modem reports stations in the EVSE's network after the match."""

    nid: bytes
    stations: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class LinkUnconfirmed:
    reason: str


@dataclass(frozen=True, slots=True)
class LinkLost:
    """After D-LINK_READY: the modem reports no station in the EVSE's network any more."""

    nid: bytes


@dataclass(frozen=True, slots=True)
class Ignored:
    """A frame that was not acted upon (bad bytes, wrong state); for the trace."""

    reason: str


Action = Send | Matched | Failed | SessionDropped | Ignored | LinkReady | LinkUnconfirmed | LinkLost


class State(enum.Enum):
    IDLE = "idle"
    SET_KEY = "set_key"
    WAITING = "waiting"
    MATCHED = "matched"
    FAILED = "failed"


class Phase(enum.Enum):
    PARAM_SENT = "param_sent"
    SOUNDING = "sounding"
    ATTEN_SENT = "atten_sent"
    WAIT_MATCH = "wait_match"


@dataclass(slots=True)
class Session:
    ev_mac: bytes
    run_id: bytes
    phase: Phase
    deadline: float
    profiles: int = 0
    sounds: int = 0
    tries: int = 0
    aag_sum: list[int] = field(default_factory=lambda: [0] * NUM_GROUPS)

    def average(self) -> bytes:
        n = max(1, self.profiles)
        return bytes(min(255, round(total / n)) for total in self.aag_sum)


class EvseMatcher:
    def __init__(
        self,
        evse_mac: bytes,
        random_bytes: Callable[[int], bytes],
        timers: SlacTimers | None = None,
        *,
        modem_mac: bytes = QCA_LOCAL_MAC,
        evse_id: bytes = b"\x00" * STATION_ID_LEN,
    ) -> None:
        self.mac = evse_mac
        self.modem_mac = modem_mac
        self.evse_id = evse_id
        self.timers = timers or SlacTimers()
        self._random = random_bytes
        self.state = State.IDLE
        self.nmk = b""
        self.nid = b""
        self.sessions: dict[tuple[bytes, bytes], Session] = {}
        self.matched: Session | None = None
        self._init_deadline = float("inf")
        self._key_deadline = float("inf")
        self._key_tries = 0
        self._nonce = b""
        self.modem_src: bytes | None = None  # the local modem's MAC, from CM_SET_KEY.CNF
        # after a match: "unconfirmed", then "ready" or "not confirmed"; "ready" <-> "down"
        self.link = "none"
        self._link_deadline = float("inf")
        self._link_poll = float("inf")
        self._watch_at = float("inf")  # the next VS_NW_INFO.REQ once the link was ready

    @property
    def deadline(self) -> float:
        times = [self._key_deadline if self.state is State.SET_KEY else float("inf")]
        if self.state is State.WAITING:
            times.append(self._init_deadline)
            times += [s.deadline for s in self.sessions.values()]
        if self.state is State.MATCHED and self.link == "unconfirmed":
            times += [self._link_poll, self._link_deadline]
        if self.state is State.MATCHED and self.link in ("ready", "down"):
            times.append(self._watch_at)
        return min(times)

    # ------------------------------------------------------------------ entry point

    def handle(self, event: Event, now: float) -> list[Action]:
        out: list[Action] = []
        if isinstance(event, Start):
            self._start(now, out)
        elif isinstance(event, Stop):
            if self.state is not State.IDLE:
                self._rekey(out)
            self.state = State.IDLE
            self.link = "none"
            self.sessions.clear()
            self.matched = None
        elif isinstance(event, FrameIn):
            self._frame(event.data, now, out)
        self._timers(now, out)
        return out

    def _start(self, now: float, out: list[Action]) -> None:
        self.nmk = self._random(16)
        self.nid = nid_from_nmk(self.nmk)
        self.sessions.clear()
        self.matched = None
        self.link = "none"
        self._init_deadline = now + self.timers.evse_slac_init
        self.state = State.SET_KEY
        self._key_tries = 0
        self._send_set_key(now, out)

    def _send_set_key(self, now: float, out: list[Action]) -> None:
        self._key_tries += 1
        self._key_deadline = now + self.timers.set_key_timeout
        self._nonce = self._random(4)
        req = SetKeyReq(1, self._nonce, b"\x00" * 4, 4, 0, 0, 0, self.nid, 1, self.nmk)
        out.append(self._send(self.modem_mac, req))

    def _rekey(self, out: list[Action]) -> None:
        """A fresh NMK for the modem (no answer awaited): the EV that left is locked out."""
        self.nmk = self._random(16)
        self.nid = nid_from_nmk(self.nmk)
        self._nonce = self._random(4)
        req = SetKeyReq(1, self._nonce, b"\x00" * 4, 4, 0, 0, 0, self.nid, 1, self.nmk)
        out.append(self._send(self.modem_mac, req))

    def _send(self, dst: bytes, msg: Message) -> Send:
        return Send(encode(MmeFrame(dst, self.mac, msg)))

    # ------------------------------------------------------------------ frames

    def _frame(self, data: bytes, now: float, out: list[Action]) -> None:
        try:
            frame = decode(data)
        except MmeError as exc:
            out.append(Ignored(f"malformed MME: {exc}"))
            return
        msg = frame.message
        if frame.src == self.mac or frame.dst not in (self.mac, BROADCAST, self.modem_mac):
            return
        if isinstance(msg, SetKeyCnf):
            if self.state is State.SET_KEY and msg.your_nonce in (self._nonce, b"\x00" * 4):
                if msg.result == 0:
                    self.state = State.WAITING
                    self.modem_src = frame.src
                else:
                    self._fail(f"modem refused CM_SET_KEY (result {msg.result})", out)
            return
        if isinstance(msg, VsNwInfoCnf):
            self._nw_info(frame.src, msg, now, out)
            return
        if isinstance(msg, SlacMatchReq) and self.state is State.MATCHED:
            self._rematch(frame.src, msg, out)
            return
        if isinstance(msg, SlacParamReq) and self.state is State.MATCHED:
            m = self.matched
            if m is None or m.ev_mac != frame.src or m.run_id == msg.run_id:
                return
            # the matched car starts SLAC again (its modem lost the network, or its
            # V2G layer gave up): serve it again with the same NMK, TT_EVSE_SLAC_init anew
            out.append(SessionDropped(m.ev_mac, m.run_id, "EV restarted SLAC after the match"))
            self.matched = None
            self.state = State.WAITING
            self._init_deadline = now + self.timers.evse_slac_init
        if self.state is not State.WAITING:
            out.append(Ignored(f"{type(msg).__name__} in state {self.state.value}"))
            return
        if isinstance(msg, SlacParamReq):
            if frame.dst not in (self.mac, BROADCAST) or frame.mmv != MMV_AV11:
                out.append(Ignored("CM_SLAC_PARAM.REQ not to this EVSE or not MMV 1"))
                return
            self._param(frame.src, msg, now, out)
        elif isinstance(msg, StartAttenCharInd | MnbcSoundInd):
            s = self.sessions.get((frame.src, msg.run_id))
            if s is not None and isinstance(msg, MnbcSoundInd):
                s.sounds += 1
            if s is not None and s.phase is Phase.PARAM_SENT:
                self._sounding(s, now)
        elif isinstance(msg, AttenProfileInd):
            if self.modem_src is not None and frame.src != self.modem_src:
                out.append(Ignored("CM_ATTEN_PROFILE.IND not from the EVSE's modem"))
            elif msg.num_groups != NUM_GROUPS or len(msg.aag) != NUM_GROUPS:
                out.append(Ignored(f"CM_ATTEN_PROFILE.IND with {msg.num_groups} groups"))
            else:
                self._profile(msg, now, out)
        elif isinstance(msg, AttenCharRsp):
            s = self.sessions.get((frame.src, msg.run_id))
            if s is not None and s.phase is Phase.ATTEN_SENT:
                if msg.result == 0:
                    s.phase = Phase.WAIT_MATCH
                    s.deadline = now + self.timers.evse_match_session
                else:
                    self._drop(s, f"CM_ATTEN_CHAR.RSP result {msg.result}", out)
        elif isinstance(msg, ValidateReq):
            # validation (BCB toggles) is not offered  [V2G3-???]
            out.append(self._send(frame.src, ValidateCnf(0, 0, VALIDATE_NOT_REQUIRED)))
        elif isinstance(msg, SlacMatchReq):
            if self._match(frame.src, msg, out):
                self.link = "unconfirmed"
                self._link_deadline = now + self.timers.link_confirm
                self._ask_link(now, out)
        else:
            out.append(Ignored(f"unexpected {type(msg).__name__}"))

    def _param(self, src: bytes, msg: SlacParamReq, now: float, out: list[Action]) -> None:
        if (msg.application_type, msg.security_type) != (
            APPLICATION_TYPE_PEV_EVSE,
            SECURITY_TYPE_NONE,
        ):
            out.append(Ignored("CM_SLAC_PARAM.REQ with unsupported application/security"))
            return
        key = (src, msg.run_id)
        s = self.sessions.get(key)
        if s is None:
            for old in [o for o in self.sessions.values() if o.ev_mac == src]:
                self._drop(old, "EV restarted with a new RunID", out)
            if len(self.sessions) >= self.timers.max_sessions:
                idle = [o for o in self.sessions.values() if o.phase is Phase.PARAM_SENT]
                if not idle:
                    out.append(Ignored("CM_SLAC_PARAM.REQ: session limit reached"))
                    return
                self._drop(idle[0], "session limit: replaced by a newer EV", out)
            s = Session(src, msg.run_id, Phase.PARAM_SENT, now + self.timers.match_sequence)
            self.sessions[key] = s
        elif s.phase is not Phase.PARAM_SENT:
            return  # a late repetition of a request already served
        s.deadline = now + self.timers.match_sequence
        cnf = SlacParamCnf(
            BROADCAST,
            self.timers.num_sounds,
            max(1, round(self.timers.evse_match_mnbc * 10)),
            RESP_TYPE_OTHER_GP_STATION,
            src,
            APPLICATION_TYPE_PEV_EVSE,
            SECURITY_TYPE_NONE,
            msg.run_id,
        )
        out.append(self._send(src, cnf))

    def _sounding(self, s: Session, now: float) -> None:
        s.phase = Phase.SOUNDING
        s.deadline = now + self.timers.evse_match_mnbc

    def _profile(self, msg: AttenProfileInd, now: float, out: list[Action]) -> None:
        sessions = [
            s
            for s in self.sessions.values()
            if s.ev_mac == msg.pev_mac and s.phase in (Phase.PARAM_SENT, Phase.SOUNDING)
        ]
        if not sessions:
            out.append(Ignored("CM_ATTEN_PROFILE.IND for no sounding EV"))
            return
        s = sessions[0]
        if s.phase is Phase.PARAM_SENT:
            self._sounding(s, now)
        for i, value in enumerate(msg.aag[:NUM_GROUPS]):
            s.aag_sum[i] += value
        s.profiles += 1
        if s.profiles >= self.timers.num_sounds:
            self._atten_char(s, now, out)

    def _atten_char(self, s: Session, now: float, out: list[Action]) -> None:
        s.phase = Phase.ATTEN_SENT
        s.tries += 1
        s.deadline = now + self.timers.match_response
        ind = AttenCharInd(
            APPLICATION_TYPE_PEV_EVSE,
            SECURITY_TYPE_NONE,
            s.ev_mac,
            s.run_id,
            b"\x00" * STATION_ID_LEN,
            b"\x00" * STATION_ID_LEN,
            s.profiles,
            NUM_GROUPS,
            s.average(),
        )
        out.append(self._send(s.ev_mac, ind))

    def _match_cnf(self, s: Session, msg: SlacMatchReq) -> SlacMatchCnf:
        return SlacMatchCnf(
            APPLICATION_TYPE_PEV_EVSE,
            SECURITY_TYPE_NONE,
            0x56,
            msg.pev_id,
            s.ev_mac,
            self.evse_id,
            self.mac,
            s.run_id,
            b"\x00" * 8,
            self.nid,
            0,
            self.nmk,
        )

    def _match(self, src: bytes, msg: SlacMatchReq, out: list[Action]) -> bool:
        s = self.sessions.get((src, msg.run_id))
        if s is None or s.phase not in (Phase.ATTEN_SENT, Phase.WAIT_MATCH):
            out.append(Ignored("CM_SLAC_MATCH.REQ for no live session (late or unknown)"))
            return False
        if msg.pev_mac != src or msg.evse_mac not in (self.mac, b"\x00" * 6):
            out.append(Ignored("CM_SLAC_MATCH.REQ with foreign MAC addresses"))
            return False
        out.append(self._send(src, self._match_cnf(s, msg)))
        for other in [o for o in self.sessions.values() if o is not s]:
            self._drop(other, "another EV matched", out)
        self.sessions.clear()
        self.matched = s
        self.state = State.MATCHED
        out.append(Matched(s.ev_mac, s.run_id, self.nmk, self.nid))
        return True

    def _ask_link(self, now: float, out: list[Action]) -> None:
        self._link_poll = now + self.timers.link_poll
        out.append(self._send(self.modem_mac, VsNwInfoReq()))

    def _nw_info(self, src: bytes, msg: VsNwInfoCnf, now: float, out: list[Action]) -> None:
        if self.state is not State.MATCHED or self.link not in ("unconfirmed", "ready", "down"):
            return
        if self.modem_src is not None and src != self.modem_src:
            out.append(Ignored("VS_NW_INFO.CNF not from the EVSE's modem"))
            return
        for nid, stations in msg.networks:
            if nid == self.nid and stations:
                if self.link != "ready":
                    self.link = "ready"
                    self._watch_at = now + self.timers.link_watch
                    out.append(LinkReady(nid, stations))
                return
        if self.link == "ready":  # the modem answered: nobody in our network any more
            self.link = "down"
            out.append(LinkLost(self.nid))

    def _rematch(self, src: bytes, msg: SlacMatchReq, out: list[Action]) -> None:
        s = self.matched
        if s is not None and s.ev_mac == src and s.run_id == msg.run_id:
            out.append(self._send(src, self._match_cnf(s, msg)))  # our CNF was lost

    # ------------------------------------------------------------------ timers

    def _drop(self, s: Session, reason: str, out: list[Action]) -> None:
        self.sessions.pop((s.ev_mac, s.run_id), None)
        out.append(SessionDropped(s.ev_mac, s.run_id, reason))

    def _fail(self, reason: str, out: list[Action]) -> None:
        self.state = State.FAILED
        self.sessions.clear()
        out.append(Failed(reason))

    def _timers(self, now: float, out: list[Action]) -> None:
        if self.state is State.MATCHED and self.link == "unconfirmed":
            if now >= self._link_deadline:
                self.link = "not confirmed"
                out.append(
                    LinkUnconfirmed(
                        f"no station in NID {self.nid.hex()} within {self.timers.link_confirm} s"
                        " of the match (or the modem gives no network info)"
                    )
                )
            elif now >= self._link_poll:
                self._ask_link(now, out)
            return
        if self.state is State.MATCHED and self.link in ("ready", "down"):
            if now >= self._watch_at:
                self._watch_at = now + self.timers.link_watch
                out.append(self._send(self.modem_mac, VsNwInfoReq()))
            return
        if self.state is State.SET_KEY and now >= self._key_deadline:
            if self._key_tries >= self.timers.set_key_tries:
                self._fail("no CM_SET_KEY.CNF from the modem", out)
            else:
                self._send_set_key(now, out)
            return
        if self.state is not State.WAITING:
            return
        for s in list(self.sessions.values()):
            if now < s.deadline:
                continue
            if s.phase is Phase.PARAM_SENT:
                self._drop(s, "TT_match_sequence expired before sounding", out)
            elif s.phase is Phase.SOUNDING:
                if s.profiles == 0:
                    self._drop(s, "TT_EVSE_match_MNBC expired without any sound", out)
                else:
                    self._atten_char(s, now, out)
            elif s.phase is Phase.ATTEN_SENT:
                if s.tries >= self.timers.atten_char_tries:
                    self._drop(s, "no CM_ATTEN_CHAR.RSP", out)
                else:
                    self._atten_char(s, now, out)
            else:
                self._drop(s, "TT_EVSE_match_session expired", out)
        if now >= self._init_deadline and not self.sessions:
            self._fail("TT_EVSE_SLAC_init expired without a match", out)
