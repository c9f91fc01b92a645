"""E07, transaction locally stopped by IdToken, against the test CSMS, written from OCPP
2.0.1 part 2 (E07; IdTokens compare case-insensitively, "IdTokenType"):

* the token that authorized the transaction, presented again, stops it: the Ended event
  has triggerReason StopAuthorized, stoppedReason Local and that idToken (E07.FR.02);
* another token stops it when the CSMS authorizes it with the groupIdToken the
  transaction's token has (the station asks with Authorize);
* a token of another group, or one the CSMS does not accept, does not stop it.

The session core's part (the session ends after ``StopRequested``) is played by the
test, as in the remote-stop tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from secc.core.actions import EndReason, RequestAuthorization, SessionEnded, SessionStarted
from secc.core.events import AuthorizationResult, StopRequested
from secc.ocpp_bridge.bridge import BridgeConfig
from tests.ocpp.csms import Behaviour, TestCsms, wait_for
from tests.ocpp.station import Station, build, running

FAST = BridgeConfig(link_retry=0.05, meter_interval=3600)
CARD = "04A1B2C3"


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


async def authorized_transaction(station: Station, csms: TestCsms) -> None:
    """A session authorized by CARD (an RFID card, ISO14443), its Authorized event out."""
    bridge = station.bridge
    bridge.perform(SessionStarted(b"\x01" * 8, b"\x02" * 6, "urn:iso:15118:2:2013:MsgDef"))
    bridge.present_token(CARD)
    bridge.perform(RequestAuthorization("ExternalPayment", ""))
    assert (await station.next_event(AuthorizationResult)).accepted
    await wait_for(lambda: any(e["triggerReason"] == "Authorized" for _, e in csms.tx_raw))


async def ended(station: Station, csms: TestCsms) -> dict[str, Any]:
    """The core's part after StopRequested: the session ends; the Ended event."""
    station.bridge.perform(SessionEnded(EndReason.STATION_STOP))
    await wait_for(lambda: any(e["eventType"] == "Ended" for _, e in csms.tx_raw))
    return next(e for _, e in csms.tx_raw if e["eventType"] == "Ended")


def stops(station: Station) -> list[StopRequested]:
    return [e for e in station.events if isinstance(e, StopRequested)]


def test_the_same_token_stops_the_transaction(tmp_path: Path) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        station = build(tmp_path, csms.url, config=FAST)
        async with running(station):
            await authorized_transaction(station, csms)
            station.bridge.present_token(CARD.lower())  # the same card, read in lower case
            stop = await station.next_event(StopRequested)
            assert "local stop" in stop.reason
            end = await ended(station, csms)
        assert end["triggerReason"] == "StopAuthorized"
        assert end["transactionInfo"]["stoppedReason"] == "Local"
        assert end["idToken"] == {"idToken": CARD.lower(), "type": "ISO14443"}
        assert len(csms.authorizations) == 1  # its own token needs no second Authorize
        await csms.stop()

    run(main())


def test_a_token_of_the_same_group_stops_it_another_does_not(tmp_path: Path) -> None:
    async def main() -> None:
        groups = {CARD: "FLEET-1", "04DDDDDD": "FLEET-1", "04EEEEEE": "FLEET-2"}
        csms = TestCsms(behaviour=Behaviour(token_groups=groups))
        await csms.start()
        station = build(tmp_path, csms.url, config=FAST)
        async with running(station):
            await authorized_transaction(station, csms)
            # another group: asked, not stopped
            station.bridge.present_token("04EEEEEE")
            await wait_for(lambda: len(csms.authorizations) == 2)
            # the same group: asked, stopped
            station.bridge.present_token("04DDDDDD")
            stop = await station.next_event(StopRequested)
            assert "04DDDDDD" in stop.reason
            end = await ended(station, csms)
            assert not stops(station)  # 04EEEEEE asked for no stop
        assert [a["id_token"]["id_token"] for a in csms.authorizations] == [
            CARD,
            "04EEEEEE",
            "04DDDDDD",
        ]
        assert end["triggerReason"] == "StopAuthorized"
        assert end["transactionInfo"]["stoppedReason"] == "Local"
        assert end["idToken"] == {"idToken": "04DDDDDD", "type": "ISO14443"}
        await csms.stop()

    run(main())


def test_a_token_the_csms_refuses_does_not_stop_it(tmp_path: Path) -> None:
    async def main() -> None:
        groups = {CARD: "FLEET-1", "04BAD000": "FLEET-1"}
        known = {(CARD, "ISO14443"): "Accepted", ("04BAD000", "ISO14443"): "Blocked"}
        csms = TestCsms(behaviour=Behaviour(token_groups=groups, known_tokens=known))
        await csms.start()
        station = build(tmp_path, csms.url, config=FAST)
        async with running(station):
            await authorized_transaction(station, csms)
            station.bridge.present_token("04BAD000")  # its group, but Blocked
            await wait_for(lambda: len(csms.authorizations) == 2)
            station.bridge.present_token(CARD)  # then the right one
            await station.next_event(StopRequested)
            end = await ended(station, csms)
            assert not stops(station)
        assert end["idToken"]["idToken"] == CARD
        await csms.stop()

    run(main())
