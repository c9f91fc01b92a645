"""ClearCache (C11), SendLocalList (D01) and GetLocalListVersion (D02) answers, written
from OCPP 2.0.1 part 2; each answer is checked against what the station then holds:

* C11.FR.04: with AuthCacheCtrlr.Enabled false ClearCache is Rejected (the cache is
  kept); enabled, Accepted and the cache is empty;
* D01.FR.18: versionNumber 0 is no list version: Failed, nothing changed; a list naming
  a token twice or a Full list entry without idTokenInfo is Failed, nothing changed;
  with LocalAuthListCtrlr.Enabled false no list is taken (Failed);
* D02.FR.03: with LocalAuthListCtrlr.Enabled false GetLocalListVersion answers 0;
  D02.FR.02: no list yet, 0; else the version of the list held.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable
from typing import Any

from ocpp.v201 import call

from tests.ocpp.conftest import OpsLink

CARD = {"id_token": "04A1B2C3", "type": "ISO14443"}
OTHER = {"id_token": "04FFFFFF", "type": "ISO14443"}


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))  # type: ignore[arg-type]


def entry(token: dict[str, str], status: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"id_token": token}
    if status is not None:
        out["id_token_info"] = {"status": status}
    return out


def setting(component: str, variable: str, value: str) -> call.SetVariables:
    return call.SetVariables(
        set_variable_data=[
            {
                "attribute_value": value,
                "component": {"name": component},
                "variable": {"name": variable},
            }
        ]
    )


def test_clear_cache_only_when_the_cache_is_enabled(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            cp, auth = link.cp, link.bridge.auth
            now = dt.datetime.now(dt.UTC)
            auth.remember("04A1B2C3", "ISO14443", "Accepted", now + dt.timedelta(hours=1))
            answer = await cp.call(setting("AuthCacheCtrlr", "Enabled", "false"))
            assert answer.set_variable_result[0]["attribute_status"] == "Accepted"
            refused = await cp.call(call.ClearCache())
            assert refused.status == "Rejected"
            assert refused.status_info["reason_code"]
            assert auth.cached_status("04A1B2C3", "ISO14443", now) == "Accepted"  # kept
            await cp.call(setting("AuthCacheCtrlr", "Enabled", "true"))
            cleared = await cp.call(call.ClearCache())
            assert cleared.status == "Accepted"
            assert auth.cached_status("04A1B2C3", "ISO14443", now) is None

    run(main())


def test_send_local_list_refusals_change_nothing(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            cp, auth = link.cp, link.bridge.auth
            first = await cp.call(call.GetLocalListVersion())
            assert first.version_number == 0  # D02.FR.02: no list yet
            ok = await cp.call(
                call.SendLocalList(
                    version_number=3,
                    update_type="Full",
                    local_authorization_list=[entry(CARD, "Accepted")],
                )
            )
            assert ok.status == "Accepted"
            refusals = [
                call.SendLocalList(  # D01.FR.18
                    version_number=0,
                    update_type="Full",
                    local_authorization_list=[entry(OTHER, "Accepted")],
                ),
                call.SendLocalList(
                    version_number=4,
                    update_type="Full",
                    local_authorization_list=[entry(CARD, "Blocked"), entry(CARD, "Accepted")],
                ),
                call.SendLocalList(
                    version_number=4,
                    update_type="Differential",
                    local_authorization_list=[entry(OTHER, "Accepted"), entry(OTHER, None)],
                ),
                call.SendLocalList(
                    version_number=4,
                    update_type="Full",
                    local_authorization_list=[entry(OTHER, "Accepted"), entry(CARD, None)],
                ),
            ]
            for request in refusals:
                answer = await cp.call(request)
                assert answer.status == "Failed", request
                assert (await cp.call(call.GetLocalListVersion())).version_number == 3
                assert auth.list_status("04A1B2C3", "ISO14443") == "Accepted"
                assert auth.list_status("04FFFFFF", "ISO14443") is None
            stale = await cp.call(
                call.SendLocalList(
                    version_number=3,
                    update_type="Differential",
                    local_authorization_list=[entry(OTHER, "Accepted")],
                )
            )
            assert stale.status == "VersionMismatch"
            assert auth.list_status("04FFFFFF", "ISO14443") is None

    run(main())


def test_local_list_disabled(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            cp, auth = link.cp, link.bridge.auth
            ok = await cp.call(
                call.SendLocalList(
                    version_number=5,
                    update_type="Full",
                    local_authorization_list=[entry(CARD, "Accepted")],
                )
            )
            assert ok.status == "Accepted"
            await cp.call(setting("LocalAuthListCtrlr", "Enabled", "false"))
            assert (await cp.call(call.GetLocalListVersion())).version_number == 0  # D02.FR.03
            refused = await cp.call(
                call.SendLocalList(
                    version_number=6,
                    update_type="Full",
                    local_authorization_list=[entry(OTHER, "Accepted")],
                )
            )
            assert refused.status == "Failed"
            assert auth.list_status("04FFFFFF", "ISO14443") is None
            await cp.call(setting("LocalAuthListCtrlr", "Enabled", "true"))
            assert (await cp.call(call.GetLocalListVersion())).version_number == 5

    run(main())
