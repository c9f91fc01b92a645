"""Issue 15: after CM_SLAC_MATCH.CNF the station confirms that the EV joined (D-LINK_READY
from the modem's network info), notices when it leaves, and reports the link state to
the session trace and to the CSMS (NotifyEvent on the EVSE's ConnectedEV component,
variable Available, docs/ocpp.md "The PLC link").

- the matcher's link watch (pure: hand-made frames);
- the SLAC adapter over a veth pair in a namespace of the test's own (AF_PACKET): the EV
  matches, a modem on the EV side reports the EV's station in the EVSE's NID, then no
  more; the station's link watch sees up, then down;
- the whole station with the OCPP bridge against the test CSMS on loopback: the PLC
  link changes while an EV charges (the board's PlcLink is the test's; what is tested
  is what the station does with its reports)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from hal.backends.simulated import build_board
from hal.backends.slac import mme
from hal.backends.slac.link import SlacLink
from hal.backends.slac.matcher import LinkLost, LinkReady, SlacTimers, Tick
from hal.backends.slac.mme import MmeFrame, VsNwInfoCnf, VsNwInfoReq, nid_from_nmk
from hal.types import PlcState, PlcStatus
from secc.aio.ev_client import run_ev_sdp
from secc.aio.plc_watch import LinkWatch, link_up
from secc.cli.ev import load_credentials
from secc.config import parse
from secc.ocpp_bridge.bridge import Bridge
from secc.runtime import Station
from secc.sdp import Security
from tests.hal.netns import netns_unavailable, run_in_netns, veth_namespace
from tests.hal.slac_ev_sim import MODEM_MAC, EvBus, EvSpec
from tests.ocpp.csms import TestCsms
from tests.security.test_slac_hostile import MODEM, _matched, _nw_info, frame, sent
from tests.station.conftest import EVSE_ID, run, script, wait_until
from tests.station.test_ocpp_section import _config

EV_MAC = bytes.fromhex("02ee00000001")
EV_MODEM = bytes.fromhex("00b052ee0001")


def test_the_matcher_sees_the_ev_leave_and_come_back() -> None:
    m = _matched()
    out = m.handle(frame(MODEM, m.mac, _nw_info(m.nid, (EV_MODEM,)), mmv=0), 1.4)
    assert LinkReady(m.nid, (EV_MODEM,)) in out and m.link == "ready"
    # it keeps asking (every link_watch): silence changes nothing ...
    t = m.deadline
    assert t < float("inf")
    assert any(isinstance(x, VsNwInfoReq) for x in sent(m.handle(Tick(), t)))
    assert m.link == "ready"
    # ... an intruder's empty answer neither ...
    m.handle(frame(bytes.fromhex("02bad0000001"), m.mac, _nw_info(m.nid, ()), mmv=0), t + 0.1)
    assert m.link == "ready"
    # ... the modem's answer without a station in the NID is a lost link
    out = m.handle(frame(MODEM, m.mac, _nw_info(m.nid, ()), mmv=0), t + 0.2)
    assert LinkLost(m.nid) in out and m.link == "down"
    out = m.handle(frame(MODEM, m.mac, _nw_info(m.nid, (EV_MODEM,)), mmv=0), t + 0.3)
    assert LinkReady(m.nid, (EV_MODEM,)) in out and m.link == "ready"


class _Modems(EvBus):
    """The EV side of the bus, and the EVSE modem's network info: the EV's modem is a
    station of the network the EVSE keyed (CM_SET_KEY) while ``present``."""

    present = True

    def _dispatch(self, frame: MmeFrame) -> None:
        if isinstance(frame.message, VsNwInfoReq) and self.keys:
            stations = (EV_MODEM,) if self.present else ()
            nets = ((nid_from_nmk(self.keys[-1]), stations),)
            self.send(frame.src, MODEM_MAC, VsNwInfoCnf(mme.QCA_OUI, 1, nets))
            return
        super()._dispatch(frame)


@pytest.mark.netns
@pytest.mark.skipif(netns_unavailable() is not None, reason=str(netns_unavailable()))
def test_the_slac_link_reports_link_ready_and_link_down() -> None:
    timers = SlacTimers(evse_slac_init=3.0, evse_match_session=1.0, link_watch=0.2)
    seen: list[PlcStatus] = []

    async def main() -> None:
        link = SlacLink("evse0", timers=timers, modem_mac=MODEM_MAC)
        watch = LinkWatch(link, seen.append, interval=0.05, name="test")
        task = asyncio.create_task(watch.run())
        try:
            async with _Modems("ev0") as bus:
                await link.start_matching()
                outcome = await bus.run_ev(EvSpec(EV_MAC))
                assert outcome.match_cnf is not None, outcome.log
                await wait_until(lambda: any(link_up(s) for s in seen), timeout=10)
                status = await link.status()
                assert (status.state, status.ev_mac, status.detail) == (
                    PlcState.MATCHED,
                    EV_MAC,
                    "link ready",
                )
                bus.present = False  # the EV's modem left the network
                await wait_until(lambda: not link_up(seen[-1]), timeout=10)
                assert seen[-1].detail == "link down" and seen[-1].ev_mac == EV_MAC
        finally:
            task.cancel()
            await link.aclose()

    with veth_namespace() as ns:
        run_in_netns(ns, main)
    assert [link_up(s) for s in seen if s.state is PlcState.MATCHED][-2:] == [True, False]


class StepPlc:
    """A PlcLink whose status the test sets (the HAL seam; the station is under test)."""

    def __init__(self) -> None:
        self.now = PlcStatus(PlcState.IDLE)

    async def start_matching(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def status(self) -> PlcStatus:
        return self.now

    async def wait_outcome(self, timeout: float) -> PlcStatus:
        return self.now


def test_the_link_state_reaches_the_trace_and_the_csms(pki_dir: Path, tmp_path: Path) -> None:
    board, _plant = build_board()
    plc = StepPlc()
    board.plc = plc
    nid = bytes.fromhex("0102030405060a")

    async def main() -> tuple[TestCsms, str]:
        csms = TestCsms()
        await csms.start()
        raw = _config(pki_dir, tmp_path, csms.url)
        raw["station"] = {"trace_dir": str(tmp_path / "traces")}
        config = parse(raw, "secc.toml")
        try:
            async with Station(config, boards={EVSE_ID: board}) as station:
                e = station.evse(EVSE_ID)
                bridge = e.backend
                assert isinstance(bridge, Bridge)
                await asyncio.wait_for(bridge.client.online.wait(), 10)
                # SLAC matched and the EV joined: the CSMS hears it before any session
                plc.now = PlcStatus(PlcState.MATCHED, ev_mac=EV_MAC, nid=nid, detail="link ready")
                await wait_until(lambda: len(_events(csms)) == 1, timeout=10)
                assert e.sdp is not None
                creds = load_credentials(pki_dir, dt.datetime.now(dt.UTC))
                ev = asyncio.create_task(
                    run_ev_sdp(
                        script("ac", payment="Contract", credentials=creds, charge_loops=10**6),
                        security=Security.TLS,
                        address="::1",
                        sdp_port=e.sdp.port,
                        cafile=pki_dir / "v2g" / "root.pem",
                    )
                )
                await wait_until(lambda: bridge.transaction is not None, timeout=20)
                assert bridge.transaction is not None
                tx_id = str(bridge.transaction["id"])
                await wait_until(lambda: e.active is not None, timeout=10)
                # the EV's modem leaves the network while it charges
                plc.now = PlcStatus(PlcState.MATCHED, ev_mac=EV_MAC, nid=nid, detail="link down")
                await wait_until(lambda: len(_events(csms)) == 2, timeout=10)
                ev.cancel()
                await asyncio.gather(ev, return_exceptions=True)
                await wait_until(lambda: bool(e.ended), timeout=10)
        finally:
            await csms.stop()
        return csms, tx_id

    csms, tx_id = run(main, timeout=60)
    assert not csms.violations, csms.violations  # each NotifyEvent valid by its schema
    up, down = (payload["eventData"] for payload in _events(csms))
    for (event,), value in ((up, "true"), (down, "false")):
        assert event["component"] == {"name": "ConnectedEV", "evse": {"id": 1}}
        assert event["variable"] == {"name": "Available"}
        assert event["actualValue"] == value
        assert (event["trigger"], event["eventNotificationType"]) == (
            "Delta",
            "HardWiredNotification",
        )
        assert EV_MAC.hex(":") in event["techInfo"] and nid.hex() in event["techInfo"]
    assert "transactionId" not in up[0] and down[0]["transactionId"] == tx_id
    assert "link ready" in up[0]["techInfo"] and "link down" in down[0]["techInfo"]
    (trace,) = (tmp_path / "traces").glob("*.jsonl")
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    links = [(r["up"], r["ev_mac"], r["detail"]) for r in records if r.get("kind") == "link"]
    assert links == [(True, EV_MAC.hex(":"), "link ready"), (False, EV_MAC.hex(":"), "link down")]


def _events(csms: TestCsms) -> list[dict[str, Any]]:
    return [payload for action, payload in csms.calls if action == "NotifyEvent"]
