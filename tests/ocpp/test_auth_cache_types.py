"""The authorization cache never holds an idToken of type Central (OCPP 2.0.1 C05.FR.01:
the CSMS's own identifiers, e.g. of a remote start, are not stored in the cache), also
when AuthCtrlr.AuthorizeRemoteStart makes the station ask the CSMS with Authorize; the
same CSMS answer for a card is cached (C10)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable
from pathlib import Path

from ocpp.v201 import call

from secc.core.actions import RequestAuthorization
from secc.core.events import AuthorizationResult
from secc.ocpp_bridge.authorization import AuthStore
from tests.ocpp.csms import TestCsms
from tests.ocpp.station import STATION, build, running

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


def test_the_store_keeps_no_central_token(tmp_path: Path) -> None:
    auth = AuthStore(tmp_path / "auth.sqlite")
    try:
        later = NOW + dt.timedelta(hours=1)
        auth.remember("APPUSER1", "Central", "Accepted", later, "GROUP")
        auth.remember("04A1B2C3", "ISO14443", "Accepted", later, "GROUP")
        assert auth.cached_entry("APPUSER1", "Central", NOW) is None
        assert auth.customer_cache_entry("APPUSER1", "Central") is None  # nothing stored
        assert auth.cached_entry("04A1B2C3", "ISO14443", NOW) == ("Accepted", "GROUP")
        # an entry an earlier version stored is not used either
        with auth._lock:
            auth._db.execute(
                "INSERT INTO auth_cache (id_token, type, status, expires, group_id) "
                "VALUES ('OLD', 'Central', 'Accepted', ?, NULL)",
                (later.timestamp(),),
            )
        assert auth.cached_status("OLD", "Central", NOW) is None
    finally:
        auth.close()


def test_a_remote_start_authorized_again_is_not_cached(tmp_path: Path) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        station = build(
            tmp_path, csms.url, variables={("AuthCtrlr", "AuthorizeRemoteStart"): "true"}
        )
        bridge = station.bridge
        try:
            async with running(station):
                cp = await csms.station(STATION)
                answer = await cp.call(
                    call.RequestStartTransaction(
                        id_token={"id_token": "APPUSER1", "type": "Central"}, remote_start_id=78
                    ),
                    suppress=False,
                )
                assert answer.status == "Accepted"
                bridge.perform(RequestAuthorization("ExternalPayment", ""))
                result = await station.next_event(AuthorizationResult)
                assert result.accepted and result.id_token == "APPUSER1"
                # AuthorizeRemoteStart: the CSMS was asked, and accepted the token
                assert csms.authorizations[-1]["id_token"] == {
                    "id_token": "APPUSER1",
                    "type": "Central",
                }
                assert bridge.auth.customer_cache_entry("APPUSER1", "Central") is None
                # the control: a card the same CSMS accepts is cached
                bridge.present_token("04A1B2C3D4")
                bridge.perform(RequestAuthorization("ExternalPayment", ""))
                assert (await station.next_event(AuthorizationResult)).accepted
                assert csms.authorizations[-1]["id_token"]["type"] == "ISO14443"
                entry = bridge.auth.customer_cache_entry("04A1B2C3D4", "ISO14443")
                assert entry is not None and entry[0] == "Accepted"
        finally:
            await csms.stop()

    run(main())
