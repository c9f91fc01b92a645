"""EV-side SLAC simulator for the tests, which also plays the EVSE modem's part.

On a veth pair there is no PLC modem: this bus answers the EVSE's CM_SET_KEY.REQ and
the QCA vendor probes, and for every sound it "hears" it sends the EVSE a
CM_ATTEN_PROFILE.IND, as the EVSE's own modem would.  Each :class:`EvSpec` is one car
with its own MAC, attenuation and misbehaviour knobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from dataclasses import dataclass, field

from hal.backends.slac import mme
from hal.backends.slac.link import PACKET_OUTGOING, open_packet_socket
from hal.backends.slac.mme import (
    BROADCAST,
    NUM_GROUPS,
    QCA_OUI,
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
    VsNwInfoCnf,
    VsNwInfoReq,
    VsSwVerCnf,
    VsSwVerReq,
    decode,
    encode,
)

MODEM_MAC = b"\x00\xb0\x52\x11\x22\x33"  # the simulated EVSE modem


@dataclass
class EvSpec:
    mac: bytes
    attenuation_db: int = 20
    lost_sounds: frozenset[int] = frozenset()
    match_delay_s: float = 0.0
    threshold_db: int = 50  # the EV matches only when the average attenuation is lower
    num_param_tries: int = 3


@dataclass
class EvOutcome:
    param_cnf: SlacParamCnf | None = None
    atten_char: AttenCharInd | None = None
    match_cnf: SlacMatchCnf | None = None
    chose_not_to_match: bool = False
    log: list[str] = field(default_factory=list)


class EvBus:
    def __init__(self, ifname: str, *, modem_answers: bool = True, qca: bool = True) -> None:
        self.sock: socket.socket = open_packet_socket(ifname)
        self.modem_answers = modem_answers
        self.qca = qca
        self.keys: list[bytes] = []  # NMKs the "EVSE modem" was given
        self.inbox: dict[bytes, asyncio.Queue[Message]] = {}
        self.evse_mac: bytes | None = None

    async def __aenter__(self) -> EvBus:
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._readable)
        return self

    async def __aexit__(self, *exc: object) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()

    def send(self, dst: bytes, src: bytes, msg: Message) -> None:
        mmv = 0 if int(msg.MMTYPE) >= 0xA000 else 1
        self.sock.send(encode(MmeFrame(dst, src, msg, mmv=mmv)))

    def _readable(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(2048)
            except BlockingIOError:
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            with contextlib.suppress(MmeError):
                self._dispatch(decode(data))

    def _dispatch(self, frame: MmeFrame) -> None:
        msg = frame.message
        if isinstance(msg, SetKeyReq):
            self.evse_mac = frame.src
            if self.modem_answers:
                self.keys.append(msg.new_key)
                cnf = SetKeyCnf(0, b"\x00" * 4, msg.my_nonce, msg.pid, msg.prn, msg.pmn, 0)
                self.send(frame.src, MODEM_MAC, cnf)
            return
        if isinstance(msg, VsSwVerReq) and self.qca:
            version = b"MAC-QCA7000-1.1.0.730-04-20140815-CS\x00"
            self.send(frame.src, MODEM_MAC, VsSwVerCnf(QCA_OUI, 0, 0x20, len(version), version))
            return
        if isinstance(msg, VsNwInfoReq) and self.qca:
            nets = ((b"\x01" * 7, tuple(self.inbox)),) if self.inbox else ()
            self.send(frame.src, MODEM_MAC, VsNwInfoCnf(QCA_OUI, len(nets), nets))
            return
        queue = self.inbox.get(frame.dst)
        if queue is not None and not isinstance(msg, mme.UnknownMme):
            queue.put_nowait(msg)

    async def _expect(self, ev: EvSpec, kind: type, timeout: float, out: EvOutcome) -> object:
        queue = self.inbox[ev.mac]
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while (left := end - loop.time()) > 0:
            try:
                msg = await asyncio.wait_for(queue.get(), left)
            except TimeoutError:
                break
            if isinstance(msg, kind):
                return msg
            out.log.append(f"unexpected {type(msg).__name__}")
        out.log.append(f"timeout waiting for {kind.__name__}")
        return None

    async def run_ev(self, ev: EvSpec, num_sounds: int = 10) -> EvOutcome:
        """One EV's side of ISO 15118-3 matching (with the EVSE modem's sound reports)."""
        out = EvOutcome()
        self.inbox[ev.mac] = asyncio.Queue()
        run_id = os.urandom(8)
        for _ in range(ev.num_param_tries):
            self.send(BROADCAST, ev.mac, SlacParamReq(0, 0, run_id))
            cnf = await self._expect(ev, SlacParamCnf, 0.2, out)
            if isinstance(cnf, SlacParamCnf) and cnf.run_id == run_id:
                out.param_cnf = cnf
                break
        if out.param_cnf is None:
            return out
        evse_mac = self.evse_mac or BROADCAST
        for _ in range(3):
            ind = StartAttenCharInd(0, 0, num_sounds, out.param_cnf.time_out, 1, ev.mac, run_id)
            self.send(BROADCAST, ev.mac, ind)
            await asyncio.sleep(0.005)
        for i in range(num_sounds):
            await asyncio.sleep(0.01)
            if i in ev.lost_sounds:
                continue
            sound = MnbcSoundInd(
                0, 0, b"\x00" * 17, num_sounds - 1 - i, run_id, b"\x00" * 8, os.urandom(16)
            )
            self.send(BROADCAST, ev.mac, sound)
            aag = bytes([ev.attenuation_db] * NUM_GROUPS)
            self.send(evse_mac, MODEM_MAC, AttenProfileInd(ev.mac, NUM_GROUPS, 0, aag))
        wait = out.param_cnf.time_out * 0.1 + 0.5
        char = await self._expect(ev, AttenCharInd, wait, out)
        if not isinstance(char, AttenCharInd):
            return out
        out.atten_char = char
        self.send(
            evse_mac, ev.mac, AttenCharRsp(0, 0, ev.mac, run_id, char.source_id, char.resp_id, 0)
        )
        average = sum(char.aag) / max(1, len(char.aag))
        if average >= ev.threshold_db:
            out.chose_not_to_match = True
            return out
        if ev.match_delay_s:
            await asyncio.sleep(ev.match_delay_s)
        req = SlacMatchReq(
            0, 0, 0x3E, b"\x00" * 17, ev.mac, b"\x00" * 17, evse_mac, run_id, b"\x00" * 8
        )
        for _ in range(2):
            self.send(evse_mac, ev.mac, req)
            match = await self._expect(ev, SlacMatchCnf, 0.2, out)
            if isinstance(match, SlacMatchCnf):
                out.match_cnf = match
                break
        return out
