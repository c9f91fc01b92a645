"""SLAC across a veth pair in a private network namespace: the EVSE adapter (AF_PACKET,
EtherType 0x88E1) on one end, the EV simulator (playing the EVSE modem too) on the other."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from hal.backends.simulated import build_board
from hal.backends.slac.link import SlacLink, open_packet_socket
from hal.backends.slac.matcher import SlacTimers, State
from hal.backends.slac.mme import nid_from_nmk
from hal.backends.slac.probe import probe
from hal.charging import ChargingRunner
from hal.control import Phase
from hal.types import CpState, Duty, PlcState
from tests.hal.netns import netns_unavailable, run_in_netns, veth_namespace
from tests.hal.slac_ev_sim import MODEM_MAC, EvBus, EvSpec

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(netns_unavailable() is not None, reason=str(netns_unavailable())),
]

EV1 = b"\x02\x00\x00\x00\x00\x01"
EV2 = b"\x02\x00\x00\x00\x00\x02"
# the standard's matching timers; only the long session/init timers are scaled down
FAST = SlacTimers(evse_slac_init=3.0, evse_match_session=1.0)


@pytest.fixture(scope="module")
def ns() -> Iterator[str]:
    with veth_namespace() as name:
        yield name


def test_one_ev_matches_and_both_sides_hold_the_same_nmk(ns: str) -> None:
    async def main() -> None:
        link = SlacLink("evse0", timers=FAST, modem_mac=MODEM_MAC)
        async with EvBus("ev0") as bus:
            await link.start_matching()
            ev = asyncio.create_task(bus.run_ev(EvSpec(EV1)))
            status = await link.wait_outcome(5)
            outcome = await ev
        await link.aclose()
        assert status.state is PlcState.MATCHED, link.last_failure
        assert status.ev_mac == EV1
        match = link.last_match
        assert match is not None and outcome.match_cnf is not None
        assert outcome.match_cnf.nmk == match.nmk == bus.keys[-1]  # EV, EVSE, EVSE modem
        assert outcome.match_cnf.nid == match.nid == nid_from_nmk(match.nmk)
        assert outcome.atten_char is not None and outcome.atten_char.num_sounds == 10
        names = [t.name for t in link.trace]
        for expected in ("SetKeyReq", "SlacParamCnf", "AttenCharInd", "SlacMatchCnf"):
            assert expected in names

    run_in_netns(ns, main)


def test_each_session_draws_a_new_random_nmk(ns: str) -> None:
    async def main() -> list[bytes]:
        keys = []
        async with EvBus("ev0") as bus:
            for _ in range(2):
                link = SlacLink("evse0", timers=FAST, modem_mac=MODEM_MAC)
                await link.start_matching()
                await bus.run_ev(EvSpec(EV1))
                await link.wait_outcome(5)
                assert link.last_match is not None
                keys.append(link.last_match.nmk)
                await link.aclose()
        return keys

    first, second = run_in_netns(ns, main)
    assert first != second


def test_lost_sounds_are_averaged_after_tt_evse_match_mnbc(ns: str) -> None:
    async def main() -> None:
        link = SlacLink("evse0", timers=FAST, modem_mac=MODEM_MAC)
        async with EvBus("ev0") as bus:
            await link.start_matching()
            spec = EvSpec(EV1, attenuation_db=30, lost_sounds=frozenset({1, 4, 7, 9}))
            outcome = await bus.run_ev(spec)
            status = await link.wait_outcome(5)
        await link.aclose()
        assert outcome.atten_char is not None
        assert outcome.atten_char.num_sounds == 6  # only what the modem heard
        assert set(outcome.atten_char.aag) == {30}
        assert status.state is PlcState.MATCHED

    run_in_netns(ns, main)


def test_all_sounds_lost_drops_the_session_and_init_timer_fails(ns: str) -> None:
    async def main() -> None:
        link = SlacLink("evse0", timers=FAST, modem_mac=MODEM_MAC)
        async with EvBus("ev0") as bus:
            await link.start_matching()
            outcome = await bus.run_ev(EvSpec(EV1, lost_sounds=frozenset(range(10))))
            status = await link.wait_outcome(5)
        await link.aclose()
        assert outcome.atten_char is None
        assert status.state is PlcState.FAILED
        assert "TT_EVSE_SLAC_init" in status.detail
        assert any("without any sound" in d.reason for d in link.dropped)

    run_in_netns(ns, main)


def test_late_slac_match_req_gets_no_answer(ns: str) -> None:
    async def main() -> None:
        link = SlacLink("evse0", timers=FAST, modem_mac=MODEM_MAC)
        async with EvBus("ev0") as bus:
            await link.start_matching()
            outcome = await bus.run_ev(EvSpec(EV1, match_delay_s=1.3))  # session timer 1.0 s
            status = await link.wait_outcome(5)
        await link.aclose()
        assert outcome.atten_char is not None
        assert outcome.match_cnf is None
        assert any("TT_EVSE_match_session" in d.reason for d in link.dropped)
        assert status.state is PlcState.FAILED

    run_in_netns(ns, main)


def test_two_evs_on_one_interface_only_the_near_one_matches(ns: str) -> None:
    async def main() -> None:
        link = SlacLink("evse0", timers=FAST, modem_mac=MODEM_MAC)
        async with EvBus("ev0") as bus:
            await link.start_matching()
            near = EvSpec(EV1, attenuation_db=18)
            far = EvSpec(EV2, attenuation_db=72)  # crosstalk from the neighbouring cable
            near_out, far_out = await asyncio.gather(bus.run_ev(near), bus.run_ev(far))
            status = await link.wait_outcome(5)
        await link.aclose()
        assert near_out.param_cnf is not None and far_out.param_cnf is not None
        assert far_out.atten_char is not None and set(far_out.atten_char.aag) == {72}
        assert far_out.chose_not_to_match and far_out.match_cnf is None
        assert near_out.match_cnf is not None
        assert status.state is PlcState.MATCHED and status.ev_mac == EV1

    run_in_netns(ns, main)


def test_no_ev_ends_with_tt_evse_slac_init(ns: str) -> None:
    async def main() -> None:
        link = SlacLink("evse0", timers=SlacTimers(evse_slac_init=0.5), modem_mac=MODEM_MAC)
        async with EvBus("ev0"):
            await link.start_matching()
            status = await link.wait_outcome(5)
        await link.aclose()
        assert status.state is PlcState.FAILED
        assert "TT_EVSE_SLAC_init" in status.detail

    run_in_netns(ns, main)


def test_silent_modem_fails_set_key(ns: str) -> None:
    async def main() -> None:
        timers = SlacTimers(set_key_timeout=0.1)
        link = SlacLink("evse0", timers=timers, modem_mac=MODEM_MAC)
        async with EvBus("ev0", modem_answers=False):
            await link.start_matching()
            status = await link.wait_outcome(5)
        await link.aclose()
        assert status.state is PlcState.FAILED
        assert "CM_SET_KEY" in status.detail
        assert [t.name for t in link.trace].count("SetKeyReq") == 3

    run_in_netns(ns, main)


def test_modem_probe_reads_firmware_and_reports_silence(ns: str) -> None:
    async def main() -> None:
        async with EvBus("ev0") as bus:
            bus.inbox[EV1] = asyncio.Queue()
            sock = open_packet_socket("evse0")
            info = await probe(sock, timeout=0.5)
            sock.close()
        assert info.answered and info.modem_mac == MODEM_MAC
        assert info.firmware is not None and info.firmware.startswith("MAC-QCA7000")
        assert info.link_up and info.networks[0][1] == (EV1,)
        async with EvBus("ev0", qca=False):
            sock = open_packet_socket("evse0")
            silent = await probe(sock, timeout=0.2)
            sock.close()
        assert not silent.answered
        assert "did not answer" in silent.describe()

    run_in_netns(ns, main)


def test_charging_glue_b1_five_percent_slac_then_power_in_c(ns: str) -> None:
    """B1 -> 5 % -> real SLAC over the veth -> V2G (reported by the test) -> power in C."""

    async def main() -> None:
        board, plant = build_board()
        link = SlacLink("evse0", timers=FAST, modem_mac=MODEM_MAC)
        board.plc = link
        runner = ChargingRunner(board, poll_s=0.005, slac_timeout_s=5)
        async with EvBus("ev0") as bus:
            await runner.start()
            plant.ev_state = CpState.B
            loop = asyncio.get_running_loop()
            end = loop.time() + 3
            while link.matcher.state is not State.WAITING:
                assert loop.time() < end
                await asyncio.sleep(0.005)
            assert plant.duty == Duty.hlc()
            outcome = await bus.run_ev(EvSpec(EV1))
            assert outcome.match_cnf is not None
            while not runner.control.slac_active or link.last_match is None:
                assert loop.time() < end
                await asyncio.sleep(0.005)
            await runner.hlc_started()
            await runner.power(True)
            plant.ev_state = CpState.C
            while not plant.contactor_command:
                assert loop.time() < end
                await asyncio.sleep(0.005)
            assert runner.control.phase is Phase.HLC
            plant.ev_state = CpState.A
            while link.matcher.state is not State.IDLE:
                assert loop.time() < end
                await asyncio.sleep(0.005)
            assert not plant.contactor_command and plant.duty == Duty.constant()
            await runner.aclose()
        await board.aclose()

    run_in_netns(ns, main)
