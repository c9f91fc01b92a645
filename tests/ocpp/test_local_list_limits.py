"""SendLocalList against the station's per-message limits (D01), written from OCPP 2.0.1
part 2 (appendix, LocalAuthListCtrlr; D01.FR.11) and part 4 (CALLERROR codes):

* LocalAuthListCtrlr.ItemsPerMessage and BytesPerMessage are required variables of the
  controller: GetVariables reports them (ReadOnly: SetVariables is Rejected);
* a CSMS must not send a list above them (D01.FR.11: it splits a long list into a Full
  update and Differential ones); a SendLocalList that still does is refused as the
  station refuses every CALL above its per-message limits (as B06.FR.16/17 word it for
  Get/SetVariables): more entries than ItemsPerMessage CALLERROR
  OccurrenceConstraintViolation, more octets than BytesPerMessage FormatViolation; the
  list and its version stay as they were;
* a list at the limit is taken, and a long list split as D01.FR.11 says (Full, then
  Differential) arrives whole.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any

from ocpp.v201 import call

from tests.ocpp.conftest import OpsLink
from tests.ocpp.test_audit_rpc import raw

CTRLR = "LocalAuthListCtrlr"


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))  # type: ignore[arg-type]


def wire_entry(n: int, *, pad: int = 0) -> dict[str, Any]:
    """A list entry in wire form: token ``n`` (ISO14443), Accepted; ``pad`` characters
    of personal message make it longer without changing its meaning for the test."""
    info: dict[str, Any] = {"status": "Accepted"}
    if pad:
        info["personalMessage"] = {"format": "UTF8", "content": "M" * pad}
    return {"idToken": {"idToken": f"CARD{n:06d}", "type": "ISO14443"}, "idTokenInfo": info}


async def limit(cp: Any, name: str) -> int:
    answer = await cp.call(
        call.GetVariables(
            get_variable_data=[{"component": {"name": CTRLR}, "variable": {"name": name}}]
        )
    )
    result = answer.get_variable_result[0]
    assert result["attribute_status"] == "Accepted", (name, result)
    return int(result["attribute_value"])


def test_send_local_list_over_the_limits_is_refused(ops_link: OpsLink) -> None:
    async def main() -> None:
        async with ops_link() as link:
            cp, auth = link.cp, link.bridge.auth
            items = await limit(cp, "ItemsPerMessage")
            octets = await limit(cp, "BytesPerMessage")
            assert items >= 1 and octets >= 1000
            refused = await cp.call(
                call.SetVariables(
                    set_variable_data=[
                        {
                            "attribute_value": "5",
                            "component": {"name": CTRLR},
                            "variable": {"name": "ItemsPerMessage"},
                        }
                    ]
                )
            )
            assert refused.set_variable_result[0]["attribute_status"] == "Rejected"

            first = {
                "versionNumber": 1,
                "updateType": "Full",
                "localAuthorizationList": [wire_entry(0)],
            }
            ok = await raw(cp, json.dumps([2, "l-1", "SendLocalList", first]), "l-1")
            assert ok == [3, "l-1", {"status": "Accepted"}]

            many = [wire_entry(n) for n in range(1, items + 2)]
            over = {"versionNumber": 2, "updateType": "Full", "localAuthorizationList": many}
            frame = json.dumps([2, "l-items", "SendLocalList", over])
            answer = await raw(cp, frame, "l-items")
            assert answer[:3] == [4, "l-items", "OccurrenceConstraintViolation"], answer
            assert auth.list_version == 1 and auth.list_entries() == 1

            # fewer entries than ItemsPerMessage, more octets than BytesPerMessage
            pad = 30
            size = len(json.dumps(wire_entry(1, pad=pad)))
            count = min(items, octets // size + 1)
            while len(json.dumps([wire_entry(n, pad=pad) for n in range(count)])) <= octets:
                pad += 20  # the message may have 512 characters
                assert pad <= 512, "BytesPerMessage cannot be exceeded within ItemsPerMessage"
            big = {
                "versionNumber": 3,
                "updateType": "Differential",
                "localAuthorizationList": [wire_entry(n, pad=pad) for n in range(1, count + 1)],
            }
            frame = json.dumps([2, "l-bytes", "SendLocalList", big])
            assert len(frame.encode()) > octets
            answer = await raw(cp, frame, "l-bytes")
            assert answer[:3] == [4, "l-bytes", "FormatViolation"], answer[:4]
            assert auth.list_version == 1 and auth.list_entries() == 1
            assert (await cp.call(call.GetLocalListVersion())).version_number == 1

            # D01.FR.11: the CSMS splits the long list: a Full update of ItemsPerMessage
            # entries, then a Differential one with the rest; the station takes both
            full = {
                "versionNumber": 4,
                "updateType": "Full",
                "localAuthorizationList": many[:items],
            }
            rest = {
                "versionNumber": 5,
                "updateType": "Differential",
                "localAuthorizationList": many[items:],
            }
            for uid, part in (("l-full", full), ("l-rest", rest)):
                frame = json.dumps([2, uid, "SendLocalList", part])
                assert len(frame.encode()) <= octets
                answer = await raw(cp, frame, uid)
                assert answer == [3, uid, {"status": "Accepted"}], answer
            assert auth.list_version == 5 and auth.list_entries() == items + 1
            assert auth.list_status(f"CARD{items + 1:06d}", "ISO14443") == "Accepted"
            assert auth.list_status("CARD000000", "ISO14443") is None  # the Full list replaced it

    run(main())
