"""Master Pass (C16) and the group check without the CSMS (C09 / E07), against the test
CSMS, written from OCPP 2.0.1 part 2 and its errata 2025-01:

* AuthCtrlr.MasterPassGroupId: IdTokens whose groupIdToken is that id may stop any
  ongoing transaction but cannot start one (C16.FR.03); a station without a UI stops
  every ongoing transaction as in E07 (C16.FR.02), each TransactionEvent Ended with
  triggerReason StopAuthorized and stoppedReason MasterPass (errata 2025-01, C16);
* C09.FR.03: a different, valid IdToken with the transaction's groupIdToken stops it;
  an invalid one of the same group does not (C09.FR.11); with the CSMS link down the
  station knows a token's status and group only from the Local Authorization List
  (SendLocalList's idTokenInfo, D01) or the Authorization Cache (the CSMS's earlier
  answers, C10), and decides from them.

The session core's part (the session ends after ``StopRequested``) is played by the
test, as in the remote-stop tests.  Offline = the test CSMS is stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from ocpp.v201 import call

from secc.core.actions import EndReason, RequestAuthorization, SessionEnded, SessionStarted
from secc.core.events import AuthorizationResult, Event, StopRequested
from secc.ocpp_bridge.bridge import Bridge, BridgeConfig
from tests.ocpp.csms import Behaviour, TestCsms, wait_for
from tests.ocpp.station import STATION, Station, build, running

FAST = BridgeConfig(link_retry=0.05, meter_interval=3600)
MASTER = ("AuthCtrlr", "MasterPassGroupId")
CARD, CARD2 = "04A1B2C3", "04C2C2C2"
POLICE = "04B0B0B0"  # a Master Pass card
GROUPS = {CARD: "FLEET-1", CARD2: "FLEET-1", POLICE: "MASTER-GROUP"}


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))  # type: ignore[arg-type]


def start_session(bridge: Bridge, card: str) -> None:
    """``card`` presented, then a session (the core's SessionStarted and its EIM
    request)."""
    evse = bytes([bridge.config.evse_id])
    bridge.present_token(card)
    bridge.perform(SessionStarted(evse * 8, evse * 6, "urn:iso:15118:2:2013:MsgDef"))
    bridge.perform(RequestAuthorization("ExternalPayment", ""))


async def next_event(events: list[Event], kind: type, timeout: float = 10.0) -> Any:
    async def wait() -> Any:
        while True:
            for i, event in enumerate(events):
                if isinstance(event, kind):
                    return events.pop(i)
            await asyncio.sleep(0.01)

    return await asyncio.wait_for(wait(), timeout)


def sent_events(station: Station, csms: TestCsms) -> list[dict[str, Any]]:
    """The TransactionEvents the CSMS received, then those still in the outbox."""
    queued = [m.payload for m in station.bridge.queue.pending() if m.action == "TransactionEvent"]
    return [e for _, e in csms.tx_raw] + queued


async def authorized(station: Station, csms: TestCsms, card: str) -> None:
    start_session(station.bridge, card)
    result = await station.next_event(AuthorizationResult)
    assert result.accepted, result
    await wait_for(
        lambda: any(
            e["triggerReason"] == "Authorized" and e["idToken"]["idToken"] == card
            for _, e in csms.tx_raw
        )
    )


async def offline(station: Station, csms: TestCsms) -> None:
    await csms.stop()
    await wait_for(lambda: not station.client.online.is_set())


async def quiet(station: Station) -> None:
    """Every follow-up of the presented tokens has run (a local stop decided or not)."""
    await station.client.follow_ups_done(20)


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


def test_master_pass_stops_every_transaction_of_the_station(tmp_path: Path) -> None:
    """C16.FR.02 (no UI): presented at EVSE 1, the Master Pass stops EVSE 1's and EVSE
    2's transactions; each Ended says MasterPass, StopAuthorized and the Master Pass."""

    async def main() -> None:
        csms = TestCsms(behaviour=Behaviour(token_groups=GROUPS))
        await csms.start()
        station = build(tmp_path, csms.url, config=FAST, variables={MASTER: "MASTER-GROUP"})
        events2: list[Event] = []
        other = second(station, events2)
        task2 = asyncio.ensure_future(other.run())
        try:
            async with running(station):
                await authorized(station, csms, CARD)
                start_session(other, CARD2)
                assert (await next_event(events2, AuthorizationResult)).accepted
                await wait_for(lambda: other.transaction is not None and other._authorized)
                station.bridge.present_token(POLICE)
                assert "Master Pass" in (await station.next_event(StopRequested)).reason
                assert "Master Pass" in (await next_event(events2, StopRequested)).reason
                station.bridge.perform(SessionEnded(EndReason.STATION_STOP))
                other.perform(SessionEnded(EndReason.STATION_STOP))
                await wait_for(lambda: sum(e["eventType"] == "Ended" for _, e in csms.tx_raw) == 2)
        finally:
            task2.cancel()
            await asyncio.gather(task2, return_exceptions=True)
            await csms.stop()
        ended = [e for _, e in csms.tx_raw if e["eventType"] == "Ended"]
        assert len({e["transactionInfo"]["transactionId"] for e in ended}) == 2
        for end in ended:
            assert end["triggerReason"] == "StopAuthorized"
            assert end["transactionInfo"]["stoppedReason"] == "MasterPass"
            assert end["idToken"] == {"idToken": POLICE, "type": "ISO14443"}

    run(main())


def test_master_pass_presented_at_an_idle_evse_stops_the_others(tmp_path: Path) -> None:
    """C16.FR.02 wherever the card is read: EVSE 1 charges, EVSE 2 is idle; an ordinary
    card at EVSE 2 stops nothing and is EVSE 2's next token, the Master Pass at EVSE 2
    stops EVSE 1's transaction (MasterPass)."""

    async def main() -> None:
        csms = TestCsms(behaviour=Behaviour(token_groups=GROUPS))
        await csms.start()
        station = build(tmp_path, csms.url, config=FAST, variables={MASTER: "MASTER-GROUP"})
        events2: list[Event] = []
        other = second(station, events2)
        task2 = asyncio.ensure_future(other.run())
        try:
            async with running(station):
                await authorized(station, csms, CARD)
                other.present_token(CARD2)  # an ordinary card at the idle EVSE
                await quiet(station)
                assert not [e for e in station.events if isinstance(e, StopRequested)]
                other.present_token(POLICE)
                assert "Master Pass" in (await station.next_event(StopRequested)).reason
                station.bridge.perform(SessionEnded(EndReason.STATION_STOP))
                await wait_for(lambda: any(e["eventType"] == "Ended" for _, e in csms.tx_raw))
                # EVSE 2's next session is CARD2's: the Master Pass was not taken as a token
                evse = b"\x02"
                other.perform(SessionStarted(evse * 8, evse * 6, "urn:iso:15118:2:2013:MsgDef"))
                other.perform(RequestAuthorization("ExternalPayment", ""))
                result = await next_event(events2, AuthorizationResult)
                assert result.accepted and result.id_token == CARD2
        finally:
            task2.cancel()
            await asyncio.gather(task2, return_exceptions=True)
            await csms.stop()
        end = next(e for _, e in csms.tx_raw if e["eventType"] == "Ended")
        assert end["transactionInfo"]["stoppedReason"] == "MasterPass"
        assert end["triggerReason"] == "StopAuthorized"
        assert end["idToken"] == {"idToken": POLICE, "type": "ISO14443"}
        assert not [e for e in events2 if isinstance(e, StopRequested)]

    run(main())


def test_master_pass_cannot_start_a_transaction(tmp_path: Path) -> None:
    """C16.FR.03: the CSMS accepts the Master Pass (with its group), the station does not
    start charging on it, online nor offline from the local list; without a
    MasterPassGroupId the same card is an ordinary one."""

    async def main() -> None:
        csms = TestCsms(behaviour=Behaviour(token_groups=GROUPS))
        await csms.start()
        station = build(tmp_path, csms.url, config=FAST, variables={MASTER: "master-group"})
        async with running(station):
            start_session(station.bridge, POLICE)
            result = await station.next_event(AuthorizationResult)
            assert not result.accepted and "Master Pass" in result.reason
            assert len(csms.authorizations) == 1
            # offline: the local list says Accepted, group MASTER-GROUP
            cp = await csms.station(STATION)
            entry = {
                "id_token": {"id_token": POLICE, "type": "ISO14443"},
                "id_token_info": {
                    "status": "Accepted",
                    "group_id_token": {"id_token": "MASTER-GROUP", "type": "Central"},
                },
            }
            sent = await cp.call(
                call.SendLocalList(
                    version_number=1, update_type="Full", local_authorization_list=[entry]
                )
            )
            assert sent.status == "Accepted"
            station.bridge.perform(SessionEnded(EndReason.STATION_STOP))
            await offline(station, csms)
            start_session(station.bridge, POLICE)
            result = await station.next_event(AuthorizationResult)
            assert not result.accepted and "Master Pass" in result.reason
            # no MasterPassGroupId: an ordinary card of its group
            station.bridge.dm.set_local(*MASTER, "")
            station.bridge.perform(SessionEnded(EndReason.STATION_STOP))
            start_session(station.bridge, POLICE)
            assert (await station.next_event(AuthorizationResult)).accepted

            def authorized_by_police() -> int:
                return sum(
                    e["triggerReason"] == "Authorized" and e["idToken"]["idToken"] == POLICE
                    for e in sent_events(station, csms)
                )

            await wait_for(lambda: authorized_by_police() >= 1)
            assert authorized_by_police() == 1  # only the last session's

    run(main())


def test_without_the_csms_the_local_list_and_the_cache_tell_the_group(tmp_path: Path) -> None:
    """C09.FR.03 / C09.FR.11 offline: the transaction's own group comes from the CSMS's
    Authorize answer; with the link down, a card the local list holds with another group
    or with status Blocked does not stop it, CARD2 (in the cache from its own earlier
    transaction, group FLEET-1) does; then the Master Pass from the local list stops
    the next one."""

    async def main() -> None:
        csms = TestCsms(behaviour=Behaviour(token_groups=GROUPS))
        await csms.start()
        station = build(tmp_path, csms.url, config=FAST, variables={MASTER: "MASTER-GROUP"})
        async with running(station):
            # CARD2's transaction: the CSMS's answer (Accepted, FLEET-1) goes to the cache
            await authorized(station, csms, CARD2)
            station.bridge.present_token(CARD2)
            await station.next_event(StopRequested)
            station.bridge.perform(SessionEnded(EndReason.STATION_STOP))
            await wait_for(lambda: any(e["eventType"] == "Ended" for _, e in csms.tx_raw))
            cp = await csms.station(STATION)

            def listed(card: str, status: str, group: str) -> dict[str, Any]:
                return {
                    "id_token": {"id_token": card, "type": "ISO14443"},
                    "id_token_info": {
                        "status": status,
                        "group_id_token": {"id_token": group, "type": "Central"},
                    },
                }

            entries = [
                listed("04EEEEEE", "Accepted", "FLEET-2"),
                listed("04BAD000", "Blocked", "FLEET-1"),
                listed(POLICE, "Accepted", "MASTER-GROUP"),
            ]
            sent = await cp.call(
                call.SendLocalList(
                    version_number=1, update_type="Full", local_authorization_list=entries
                )
            )
            assert sent.status == "Accepted"
            await authorized(station, csms, CARD)  # FLEET-1, from the CSMS
            await offline(station, csms)
            station.bridge.present_token("04EEEEEE")  # another group
            station.bridge.present_token("04BAD000")  # its group, Blocked
            station.bridge.present_token("04FFFFFF")  # unknown here
            await quiet(station)
            assert not [e for e in station.events if isinstance(e, StopRequested)]
            station.bridge.present_token(CARD2)  # the cache: Accepted, FLEET-1
            assert CARD2 in (await station.next_event(StopRequested)).reason
            station.bridge.perform(SessionEnded(EndReason.STATION_STOP))
            await wait_for(
                lambda: sum(e["eventType"] == "Ended" for e in sent_events(station, csms)) == 2
            )
            # the next transaction, authorized offline from the cache (CARD, FLEET-1)
            start_session(station.bridge, CARD)
            assert (await station.next_event(AuthorizationResult)).accepted
            await wait_for(lambda: station.bridge._authorized)
            station.bridge.present_token(POLICE)  # the local list: the Master Pass
            assert "Master Pass" in (await station.next_event(StopRequested)).reason
            station.bridge.perform(SessionEnded(EndReason.STATION_STOP))
            await wait_for(
                lambda: sum(e["eventType"] == "Ended" for e in sent_events(station, csms)) == 3
            )
            ends = [e for e in sent_events(station, csms) if e["eventType"] == "Ended"]
        assert ends[1]["triggerReason"] == "StopAuthorized"
        assert ends[1]["transactionInfo"]["stoppedReason"] == "Local"
        assert ends[1]["idToken"] == {"idToken": CARD2, "type": "ISO14443"}
        assert ends[2]["transactionInfo"]["stoppedReason"] == "MasterPass"
        assert ends[2]["idToken"] == {"idToken": POLICE, "type": "ISO14443"}
        assert len(csms.authorizations) == 2  # CARD2 and CARD; none while offline

    run(main())


def test_an_earlier_auth_database_is_migrated_and_keeps_its_entries(tmp_path: Path) -> None:
    """`auth.sqlite` of the earlier schema (no groups): opened, the group column added,
    the list and cache entries as they were (no group), new entries with their group."""
    import datetime as dt
    import sqlite3

    from secc.ocpp_bridge.authorization import AuthStore

    path = tmp_path / "auth.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE local_list (id_token TEXT NOT NULL, type TEXT NOT NULL, "
        "status TEXT NOT NULL, PRIMARY KEY (id_token, type));"
        "CREATE TABLE auth_cache (id_token TEXT NOT NULL, type TEXT NOT NULL, "
        "status TEXT NOT NULL, expires REAL NOT NULL, PRIMARY KEY (id_token, type));"
        "CREATE TABLE auth_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "INSERT INTO local_list VALUES ('04AAAAAA', 'ISO14443', 'Accepted');"
        "INSERT INTO auth_cache VALUES ('04BBBBBB', 'ISO14443', 'Blocked', 4102444800.0);"
        "INSERT INTO auth_meta VALUES ('version', 7);"
    )
    db.commit()
    db.close()
    now = dt.datetime.now(dt.UTC)
    auth = AuthStore(path)
    try:
        assert auth.list_version == 7
        assert auth.list_entry("04AAAAAA", "ISO14443") == ("Accepted", None)
        assert auth.cached_entry("04BBBBBB", "ISO14443", now) == ("Blocked", None)
        auth.remember("04CCCCCC", "ISO14443", "Accepted", now + dt.timedelta(hours=1), "G-1")
        assert auth.cached_entry("04CCCCCC", "ISO14443", now) == ("Accepted", "G-1")
        update = {
            "versionNumber": 8,
            "updateType": "Differential",
            "localAuthorizationList": [
                {
                    "idToken": {"idToken": "04AAAAAA", "type": "ISO14443"},
                    "idTokenInfo": {"status": "Accepted", "groupIdToken": {"idToken": "G-2"}},
                }
            ],
        }
        assert auth.send_local_list(update) == {"status": "Accepted"}
        assert auth.list_entry("04AAAAAA", "ISO14443") == ("Accepted", "G-2")
    finally:
        auth.close()
    AuthStore(path).close()  # opened again: nothing to migrate
