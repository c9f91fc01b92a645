"""An authorization asked while the station's BootNotification is still unanswered on an
open link (a station just (re)started, a slow or loaded CSMS) waits for that answer
(at most MessageTimeout) and then asks the CSMS: it is not judged offline, which would
refuse every token the local list and the cache do not hold.  OCPP 2.0.1 B01/B02: no
request but BootNotification before it is accepted, so Authorize goes right after.

This window made tests/ocpp/test_secc_run_hooks.py's Reset test fail once on a loaded
machine: its EV started as soon as the station had connected, and the Plug & Charge
contract was refused offline ("id not in list or cache") before the CSMS's answer to
BootNotification arrived; the EV stopped and never charged."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path

from secc.core.actions import RequestAuthorization
from secc.core.events import AuthorizationResult
from tests.ocpp.csms import Behaviour, TestCsms
from tests.ocpp.station import STATION, build, running

BOOT_DELAY = 1.5  # the CSMS answers BootNotification this late


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


def test_a_token_presented_while_the_boot_is_unanswered_is_asked_online(tmp_path: Path) -> None:
    async def main() -> None:
        csms = TestCsms(behaviour=Behaviour(boot_delay=BOOT_DELAY))
        await csms.start()
        station = build(tmp_path, csms.url)
        try:
            async with running(station, online=False):
                await csms.station(STATION, timeout=30)  # connected, booting
                assert not station.client.online.is_set()
                station.bridge.present_token("04A1B2C3D4")
                station.bridge.perform(RequestAuthorization("ExternalPayment", ""))
                result = await station.next_event(AuthorizationResult)
                assert result.accepted, result.reason
                assert station.client.online.is_set()
                assert csms.boots == ["Accepted"]
                assert [a["id_token"]["id_token"] for a in csms.authorizations] == ["04A1B2C3D4"]
                # the order OCPP asks for: BootNotification answered before Authorize
                actions = [action for action, _ in csms.calls]
                assert actions.index("BootNotification") < actions.index("Authorize")
        finally:
            await csms.stop()

    run(main())


def test_without_a_link_the_decision_is_offline_at_once(tmp_path: Path) -> None:
    """No connection at all: the offline policy decides (no boot answer to wait for; the
    card is unknown to the list and the cache: refused)."""

    async def main() -> None:
        station = build(tmp_path, "ws://127.0.0.1:9/ocpp")  # nothing listens there
        async with running(station, online=False):
            station.bridge.present_token("04A1B2C3D4")
            station.bridge.perform(RequestAuthorization("ExternalPayment", ""))
            result = await station.next_event(AuthorizationResult, timeout=25)
            assert not result.accepted and "not in list or cache" in result.reason

    run(main())
