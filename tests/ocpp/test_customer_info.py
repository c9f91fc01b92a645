"""N09 Get Customer Information / N10 Clear Customer Information against the test CSMS,
written from OCPP 2.0.1 part 2 (CustomerInformationRequest / NotifyCustomerInformation)
and the part 6 test cases of the Core profile (TC_N_27/28 report with and without data,
TC_N_31 clear and report without data, TC_N_32 clear without report, TC_N_62 clear and
report, then report again):

* the customer is named by one of idToken, customerCertificate, customerIdentifier; the
  station answers Accepted and, when asked to report, sends NotifyCustomerInformation
  (requestId, seqNo from 0, tbc, data of at most 512 characters) with what it holds, or
  a message that it holds nothing;
* a clear removes the customer's data except the Local Authorization List (the CSMS's
  own list); a report asked together with the clear shows what was held, a later one
  what is left;
* IdTokens compare case-insensitively (IdTokenType).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from ocpp.v201 import call

from secc.core.actions import RequestAuthorization, SessionStarted
from secc.core.events import AuthorizationResult
from secc.ocpp_bridge.customer_info import chunks, token_lines
from tests.ocpp.conftest import Linked, OpsLink
from tests.ocpp.csms import Behaviour, TestCsms, wait_for
from tests.ocpp.station import build, running

CARD = "04A1B2C3"
TOKEN = {"id_token": CARD.lower(), "type": "ISO14443"}  # the CSMS's spelling


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


async def ask(link: Linked, request_id: int, *, report: bool, clear: bool, **who: Any) -> str:
    """CustomerInformation; its status."""
    answer = await link.cp.call(
        call.CustomerInformation(request_id=request_id, report=report, clear=clear, **who)
    )
    return str(answer.status)


async def reported(link: Linked, request_id: int) -> str:
    """The NotifyCustomerInformation data of a request, once its last part is in."""
    await wait_for(
        lambda: any(
            n["request_id"] == request_id and not n.get("tbc") for n in link.csms.customer_info
        )
    )
    parts = [n for n in link.csms.customer_info if n["request_id"] == request_id]
    assert [n["seq_no"] for n in parts] == list(range(len(parts)))
    assert all(len(n["data"]) <= 512 for n in parts)
    return "".join(n["data"] for n in parts)


def test_report_clear_and_report_again_for_an_id_token(ops_link: OpsLink) -> None:
    async def main() -> None:
        behaviour = Behaviour(token_groups={CARD: "FLEET-1"})
        async with ops_link(behaviour=behaviour) as link:
            bridge = link.bridge
            # what the station comes to hold about CARD: a list entry, a cache entry (its
            # Authorize answer) and the transaction it authorizes
            entry = {
                "id_token": {"id_token": CARD, "type": "ISO14443"},
                "id_token_info": {"status": "Accepted"},
            }
            listed = await link.cp.call(
                call.SendLocalList(
                    version_number=3, update_type="Full", local_authorization_list=[entry]
                )
            )
            assert listed.status == "Accepted"
            bridge.perform(SessionStarted(b"\x01" * 8, b"\x02" * 6, "urn:iso:15118:2:2013:MsgDef"))
            bridge.present_token(CARD)
            bridge.perform(RequestAuthorization("ExternalPayment", ""))
            assert (await link.station.next_event(AuthorizationResult)).accepted
            await wait_for(lambda: bridge._authorized)
            tx_id = str((bridge.transaction or {})["id"])

            # TC_N_27: report, data not empty
            assert await ask(link, 1, report=True, clear=False, id_token=TOKEN) == "Accepted"
            data = await reported(link, 1)
            assert "local authorization list: status Accepted" in data
            assert "authorization cache: status Accepted, group FLEET-1" in data
            assert f"ongoing transaction {tx_id} on EVSE 1" in data
            assert bridge.auth.customer_cache_entry(CARD, "ISO14443") is not None

            # TC_N_62 / N10: clear and report: the report shows what was held; the cache
            # entry is gone, the local list entry stays
            assert await ask(link, 2, report=True, clear=True, id_token=TOKEN) == "Accepted"
            assert "authorization cache" in await reported(link, 2)
            assert bridge.auth.customer_cache_entry(CARD, "ISO14443") is None
            assert bridge.auth.list_status(CARD, "ISO14443") == "Accepted"
            assert await ask(link, 3, report=True, clear=False, id_token=TOKEN) == "Accepted"
            again = await reported(link, 3)
            assert "local authorization list" in again and "authorization cache" not in again

            # TC_N_32: clear without report: Accepted, no notification
            bridge.auth.remember(CARD, "ISO14443", "Accepted", bridge.utc_now(), "FLEET-1")
            assert await ask(link, 4, report=False, clear=True, id_token=TOKEN) == "Accepted"
            assert bridge.auth.customer_cache_entry(CARD, "ISO14443") is None
            # TC_N_28 / TC_N_31: nothing held: a message saying so
            other = {"id_token": "04FFFFFF", "type": "ISO14443"}
            assert await ask(link, 5, report=True, clear=True, id_token=other) == "Accepted"
            assert (await reported(link, 5)).startswith("no data")
            assert await ask(link, 6, report=True, clear=False, customer_identifier="C-1") == (
                "Accepted"
            )
            assert (await reported(link, 6)).startswith("no data")
            certificate = {
                "hash_algorithm": "SHA256",
                "issuer_name_hash": "a" * 64,
                "issuer_key_hash": "b" * 64,
                "serial_number": "01",
            }
            assert await ask(
                link, 7, report=True, clear=True, customer_certificate=certificate
            ) == ("Accepted")
            assert (await reported(link, 7)).startswith("no data")
            assert [n["request_id"] for n in link.csms.customer_info] == [1, 2, 3, 5, 6, 7]

    run(main())


def test_a_request_that_names_no_one_or_asks_nothing_is_invalid(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            link.bridge.auth.remember(CARD, "ISO14443", "Accepted", link.bridge.utc_now(), None)
            cases = [
                {"report": True, "clear": True},  # no one
                {"report": True, "clear": True, "id_token": TOKEN, "customer_identifier": "C"},
                {"report": False, "clear": False, "id_token": TOKEN},  # nothing asked
            ]
            for n, case in enumerate(cases, start=1):
                answer = await link.cp.call(call.CustomerInformation(request_id=n, **case))
                assert answer.status == "Invalid", case
                assert answer.status_info["additional_info"], case
            # nothing was done: the cache entry is there, no report came
            assert await ask(link, 9, report=True, clear=False, id_token=TOKEN) == "Accepted"
            assert "authorization cache" in await reported(link, 9)
            assert [n["request_id"] for n in link.csms.customer_info] == [9]

    run(main())


def test_long_data_is_split_into_parts_of_at_most_512_characters() -> None:
    text = "x" * 1100
    parts = chunks(text)
    assert [len(p) for p in parts] == [512, 512, 76] and "".join(parts) == text
    assert chunks("") == [""]


def test_transaction_messages_waiting_in_the_outbox_are_reported(tmp_path: Path) -> None:
    """With the CSMS down, the transaction CARD authorizes (offline: unknown ids allowed)
    has its events in the outbox; the report names them (they stay: the CSMS's data)."""

    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        await csms.stop()  # down from the start
        variables = {("AuthCtrlr", "OfflineTxForUnknownIdEnabled"): "true"}
        station = build(tmp_path, csms.url, variables=variables)
        async with running(station, online=False):
            bridge = station.bridge
            bridge.perform(SessionStarted(b"\x01" * 8, b"\x02" * 6, "urn:iso:15118:2:2013:MsgDef"))
            bridge.present_token(CARD)
            bridge.perform(RequestAuthorization("ExternalPayment", ""))
            assert (await station.next_event(AuthorizationResult)).accepted
            await wait_for(
                lambda: any(
                    m.payload.get("triggerReason") == "Authorized" for m in bridge.queue.pending()
                )
            )
            tx_id = str((bridge.transaction or {})["id"])
            lines = token_lines(bridge, CARD.lower(), "ISO14443")
            assert f"ongoing transaction {tx_id} on EVSE 1, authorized by it" in lines
            assert any("wait in the outbox" in line and tx_id in line for line in lines), lines
            assert token_lines(bridge, CARD, "ISO15693") == []  # another type: not it

    run(main())
