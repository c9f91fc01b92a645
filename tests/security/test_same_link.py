"""Issue 15: only a new session from the same EV may replace a session whose EV has gone
silent: by its EVCCID (tests/station/test_sessions.py) or by the link, even when the
EVCCID differs (DIN cars may send another or an empty one).  Same link: the same source
address, or the link-local address the EV's MAC (learned from SLAC) gives (modified
EUI-64).  A SessionSetupReq from another address is refused.

The station runs in a network namespace of the test's own with fe80::1 on veth0; the EV
side, in a second namespace, has fe80::2, fe80::3 and the EUI-64 address of the SLAC
MAC on veth1 and speaks raw V2GTP frames from the address each case names."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from hal.backends.simulated import build_board
from hal.types import PlcState, PlcStatus
from secc.aio.plc_watch import eui64_link_local, same_link
from secc.core.actions import EndReason
from secc.limits import Limits
from secc.runtime import Station
from secc.v2gtp import Framer
from tests.runtime.netns import LinkPair, acall_in_netns, link_pair, netns_unavailable, run_in_netns
from tests.security.peers import SAP_FRAME, setup_frame
from tests.security.test_link_state import StepPlc
from tests.station.conftest import EVSE_ID, evse, station_config, wait_until

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(netns_unavailable() is not None, reason=str(netns_unavailable())),
]

EV_MAC = bytes.fromhex("02ee00000001")  # the EV host's MAC, as SLAC matched it
DERIVED = str(eui64_link_local(EV_MAC))  # fe80::ee:ff:fe00:1
OLD_EVCCID = bytes.fromhex("0a0b0c0d0e0f")
NEW_EVCCID = bytes.fromhex("020000000077")  # another EVCCID (a DIN car's, say)


@pytest.fixture(scope="module")
def pair() -> Iterator[LinkPair]:
    with link_pair() as made:
        for extra in ("fe80::3", DERIVED):
            subprocess.run(
                ["ip", "-n", made.ev, "-6", "addr", "add", f"{extra}/64", "dev", made.ev_if,
                 "nodad"],
                check=True,
                capture_output=True,
                timeout=10,
            )  # fmt: skip
        yield made


def _frame(sock: socket.socket) -> bytes | None:
    framer = Framer()
    while True:
        data = sock.recv(65536)
        if not data:
            return None
        frames = framer.feed(data)
        if frames:
            return frames[0].payload


def _session_setup(pair: LinkPair, port: int, source: str, evcc_id: bytes) -> tuple[Any, bool]:
    """Blocking, in the EV namespace: from ``source``, the handshake and a
    SessionSetupReq; returns the socket (left open) and whether it was answered."""
    index = socket.if_nametoindex(pair.ev_if)
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.bind((source, 0, 0, index))
    sock.connect((pair.evse_addr, port, 0, index))
    sock.sendall(SAP_FRAME)
    assert _frame(sock) is not None
    sock.sendall(setup_frame(evcc_id))
    return sock, _frame(sock) is not None


@pytest.mark.parametrize(
    ("new_source", "slac", "replaced", "evcc_id"),
    [
        ("fe80::2", False, True, NEW_EVCCID),  # the same source address
        ("fe80::2", False, True, b""),  # ... with an empty EVCCID
        (DERIVED, True, True, NEW_EVCCID),  # the address of the EV's MAC SLAC matched
        ("fe80::3", True, False, NEW_EVCCID),  # another host on the link
        (DERIVED, False, False, NEW_EVCCID),  # that address, but no EV matched by SLAC
    ],
)
def test_a_silent_session_is_replaced_only_from_the_same_link(
    pair: LinkPair, new_source: str, slac: bool, replaced: bool, evcc_id: bytes
) -> None:
    board, _plant = build_board()
    plc = StepPlc()
    board.plc = plc
    if slac:
        plc.now = PlcStatus(PlcState.MATCHED, ev_mac=EV_MAC, nid=b"\x01" * 7, detail="link ready")

    async def main() -> None:
        section = evse(
            address=pair.evse_addr,
            interface=pair.evse_if,
            limits=Limits(replace_after_silence=0.3),
        )
        async with Station(station_config(None, None, section), boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            port = e.ports["tcp"]
            assert e.link_watch is not None
            await wait_until(lambda: e.link_watch is not None and e.link_watch.status == plc.now)
            old, answered = await acall_in_netns(
                pair.ev, lambda: _session_setup(pair, port, "fe80::2", OLD_EVCCID)
            )
            assert answered
            try:
                await wait_until(lambda: e.active is not None and e.active.silent_for > 0.4)
                old_driver = e.active
                new, answered = await acall_in_netns(
                    pair.ev, lambda: _session_setup(pair, port, new_source, evcc_id)
                )
                new.close()
                assert answered is replaced
                if replaced:
                    await wait_until(lambda: any("replaced" in s.end.detail for s in e.ended))
                    assert e.ended[0].end.reason is EndReason.CONNECTION_LOST
                    assert e.ended[0].peer.startswith("fe80::2")
                else:  # refused: the silent session still holds the EVSE
                    assert e.active is old_driver and old_driver.ended is None
                    assert not any("replaced" in s.end.detail for s in e.ended)
            finally:
                old.close()

    run_in_netns(pair.evse, main)


def test_same_link_rules() -> None:
    """Pure: the modified EUI-64 address (RFC 4291 appendix A's example) and the rule."""
    assert str(eui64_link_local(bytes.fromhex("001122334455"))) == "fe80::211:22ff:fe33:4455"
    mac = bytes.fromhex("001122334455")
    assert same_link("fe80::2%veth0", "fe80::2%veth0", None)
    assert same_link("fe80::2%veth0", "fe80::211:22ff:fe33:4455%veth0", mac)
    assert not same_link("fe80::2%veth0", "fe80::211:22ff:fe33:4455%veth0", None)
    assert not same_link("fe80::2%veth0", "fe80::3%veth0", mac)
    assert not same_link("fe80::2", "not an address", mac)
