"""Two EVSEs over one OCPP connection at the bridge level: a second bridge built with
``primary=`` shares the client and the outbox, keeps its own open transaction (state key
``tx/2``) and is recovered on its own at restart."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from secc.core.actions import SessionStarted
from secc.core.events import Event
from secc.ocpp_bridge.bridge import Bridge, BridgeConfig
from tests.ocpp.csms import TestCsms, wait_for
from tests.ocpp.station import Station, build

FAST = BridgeConfig(link_retry=0.05, meter_interval=3600)


def second(station: Station, events: list[Event]) -> Bridge:
    primary = station.bridge
    return Bridge(
        BridgeConfig(evse_id=2, link_retry=0.05, meter_interval=3600),
        primary.client,
        primary.queue,
        primary.auth,
        primary.dm,
        events.append,
        primary=primary,
    )


@contextlib.asynccontextmanager
async def running_both(station: Station, other: Bridge) -> AsyncIterator[None]:
    tasks = [asyncio.ensure_future(station.bridge.run()), asyncio.ensure_future(other.run())]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        station.bridge.queue.close()
        station.bridge.auth.close()


def test_second_evse_transaction_is_its_own_and_recovered(tmp_path: Path) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        await csms.stop()  # down: everything stays in the outbox
        first = build(tmp_path, csms.url, config=FAST)
        other = second(first, [])
        assert first.bridge.evses == {1: first.bridge, 2: other}
        assert other.sender is first.bridge.sender and other.primary is first.bridge
        with pytest.raises(ValueError, match="already has a bridge"):
            second(first, [])
        async with running_both(first, other):
            other.perform(SessionStarted(b"\x01" * 8, b"\x02" * 6, "ns"))
            await wait_for(lambda: other.transaction is not None)
            assert first.bridge.transaction is None
            assert first.bridge.queue.get_state("tx/2") == other.transaction
            assert first.bridge.queue.get_state("tx") is None
        await csms.start()
        again = build(tmp_path, csms.url, config=FAST)
        other_again = second(again, [])
        assert other_again.transaction is not None and again.bridge.transaction is None
        async with running_both(again, other_again):
            await wait_for(lambda: len(again.bridge.queue) == 0)
            assert other_again.transaction is None
        stream = csms.transaction_stream()
        assert [e["eventType"] for e in stream] == ["Started", "Ended"]
        assert [e["seqNo"] for e in stream] == [0, 1]
        assert stream[0]["evse"] == {"id": 2, "connectorId": 1}
        assert stream[-1]["transactionInfo"]["stoppedReason"] == "PowerLoss"
        assert csms.boots == ["Accepted"]  # one link for both EVSEs
        await csms.stop()

    asyncio.run(asyncio.wait_for(main(), 60))
