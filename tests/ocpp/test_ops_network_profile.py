"""SetNetworkProfile (OCPP 2.0.1 B09) and the security profile upgrade (A05), against two
test CSMSs on loopback (one plain, one TLS with the test PKI).

From the use cases' requirements: a profile is checked before it is stored (OCPP 2.0.1
over JSON, a ws/wss URL matching the profile, no lower security profile than in use, the
certificates a TLS profile needs); NetworkConfigurationPriority names the slot used from
the next connection (after a Reset); once connected with a higher security profile the
station never falls back to a lower one (A05); a profile that cannot connect is left
for the next one after NetworkProfileConnectionAttempts failures (B09), so the station
keeps a link.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from ocpp.v201 import call

from certs.store import Store
from hal.hooks import SimulatedReset, StationHooks
from secc.ocpp_bridge.bridge import BridgeConfig
from tests.ocpp.conftest import server_context
from tests.ocpp.csms import TestCsms, wait_for
from tests.ocpp.station import STATION, Station, build, running

FAST = BridgeConfig(link_retry=0.05, meter_interval=3600)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))  # type: ignore[arg-type]


def profile(url: str, level: int, **kw: Any) -> dict[str, Any]:
    return {
        "ocpp_version": "OCPP20",
        "ocpp_transport": "JSON",
        "ocpp_csms_url": url,
        "message_timeout": 30,
        "security_profile": level,
        "ocpp_interface": "Wired0",
        **kw,
    }


def _set(variable: str, value: str) -> dict[str, Any]:
    return {
        "component": {"name": "OCPPCommCtrlr"},
        "variable": {"name": variable},
        "attribute_value": value,
    }


def dead_url(scheme: str) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"{scheme}://127.0.0.1:{s.getsockname()[1]}/ocpp"


def _station(tmp_path: Path, url: str, store: Store | None) -> tuple[Station, list[int]]:
    station = build(tmp_path, url, config=FAST, store=store)
    station.bridge.ops.hooks = StationHooks(reset=SimulatedReset())
    failures: list[int] = []
    station.client.on_connect_failed.append(lambda: failures.append(1))
    return station, failures


def test_profiles_are_checked_before_they_are_stored(tmp_path: Path) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        station, _ = _station(tmp_path, csms.url, None)  # no certificate store
        async with running(station):
            cp = await csms.station(STATION)
            for slot, data in (
                (1, profile(csms.url, 1, ocpp_version="OCPP16")),
                (1, profile(csms.url, 1, ocpp_transport="SOAP")),
                (1, profile("wss://127.0.0.1:1/ocpp", 1)),  # profile 1 is plain ws
                (1, profile("ws://127.0.0.1:1/ocpp", 2)),  # profile 2 is TLS
                (1, profile("wss://127.0.0.1:1/ocpp", 2)),  # no CSMS root to verify with
                (1, profile("not a url", 1)),
                # what the station cannot set up is refused, not dropped
                (
                    1,
                    profile(
                        csms.url,
                        1,
                        vpn={
                            "server": "vpn.example",
                            "user": "u",
                            "password": "p",
                            "key": "k",
                            "type": "IPSec",
                        },
                    ),
                ),
                (1, profile(csms.url, 1, apn={"apn": "internet", "apn_authentication": "AUTO"})),
                (1, profile(csms.url, 1, message_timeout=0)),
            ):
                answer = await cp.call(
                    call.SetNetworkProfile(configuration_slot=slot, connection_data=data)
                )
                assert answer.status == "Rejected", data
                assert answer.status_info["additional_info"]
            ok = await cp.call(
                call.SetNetworkProfile(configuration_slot=2, connection_data=profile(csms.url, 1))
            )
            assert ok.status == "Accepted"
            stored = station.bridge.ops._profiles()
            assert list(stored) == ["2"]  # the refused ones left nothing behind
        await csms.stop()

    run(main())


def test_security_profile_upgrade_and_no_fallback_below_it(
    tmp_path: Path, pki_dir: Path, store: Store
) -> None:
    async def main() -> None:
        plain = TestCsms()
        await plain.start()
        tls = TestCsms(ssl_context=server_context(pki_dir, client_auth=False))
        await tls.start()
        tls_port = tls.port
        station, _ = _station(tmp_path, plain.url, store)
        async with running(station):
            cp = await plain.station(STATION)
            answer = await cp.call(
                call.SetNetworkProfile(
                    configuration_slot=1, connection_data=profile(tls.url, 2, message_timeout=17)
                )
            )
            assert answer.status == "Accepted"
            assert station.client.config.call_timeout == 30.0  # in force from the next link
            result = await cp.call(
                call.SetVariables(set_variable_data=[_set("NetworkConfigurationPriority", "1")])
            )
            # the link is chosen at start (B10: a Reset follows)
            assert result.set_variable_result[0]["attribute_status"] == "RebootRequired"
            reset = await cp.call(call.Reset(type="Immediate"))
            assert reset.status == "Accepted"
            await wait_for(lambda: station.bridge.ops.hooks.reset.resets == ["Immediate"])  # type: ignore[attr-defined]
        # the restart: the new profile (TLS, profile 2) is the link
        again, _ = _station(tmp_path, plain.url, store)
        async with running(again):
            cp = await tls.station(STATION)
            got = await cp.call(
                call.GetVariables(
                    get_variable_data=[
                        {
                            "component": {"name": "SecurityCtrlr"},
                            "variable": {"name": "SecurityProfile"},
                        }
                    ]
                )
            )
            assert got.get_variable_result[0]["attribute_value"] == "2"
            assert again.client.config.call_timeout == 17.0  # the profile's messageTimeout
            # a downgrade is refused from now on
            down = await cp.call(
                call.SetNetworkProfile(configuration_slot=3, connection_data=profile(plain.url, 1))
            )
            assert down.status == "Rejected"
        assert (
            next(c for c in tls.calls if c[0] == "BootNotification")[1]["reason"] == "RemoteReset"
        )
        # the TLS CSMS is gone: the station keeps trying it, never the plain one (A05)
        await tls.stop()
        boots = len(plain.boots)
        third, failures = _station(tmp_path, plain.url, store)
        async with running(third, online=False):
            await wait_for(lambda: len(failures) >= 5)
            assert len(plain.boots) == boots
            assert third.client.config.security_profile == 2
            await tls.start(tls_port)  # back: the station connects again
            await wait_for(third.client.online.is_set)
        await tls.stop()
        await plain.stop()

    run(main())


def test_unreachable_profile_falls_back_to_the_next(tmp_path: Path) -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        station, _ = _station(tmp_path, csms.url, None)
        async with running(station):
            cp = await csms.station(STATION)
            answer = await cp.call(
                call.SetNetworkProfile(
                    configuration_slot=4, connection_data=profile(dead_url("ws"), 1)
                )
            )
            assert answer.status == "Accepted"
            result = await cp.call(
                call.SetVariables(
                    set_variable_data=[
                        _set("NetworkConfigurationPriority", "4"),
                        _set("NetworkProfileConnectionAttempts", "2"),
                    ]
                )
            )
            assert [r["attribute_status"] for r in result.set_variable_result] == [
                "RebootRequired",
                "Accepted",
            ]
        boots = len(csms.boots)
        again, failures = _station(tmp_path, csms.url, None)
        async with running(again, online=False):
            await wait_for(again.client.online.is_set)
            assert len(failures) == 2  # two attempts on slot 4, then the station file's
            assert len(csms.boots) == boots + 1
        await csms.stop()

    run(main())
