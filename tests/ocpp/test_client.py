"""The typed OCPP client against the test CSMS over real websockets: security profiles 1-3,
BootNotification retry, heartbeat, reconnect with backoff, per-call deadlines, CallErrors
and malformed answers, CSMS-initiated calls with follow-ups."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from ocpp.v201 import call

from certs.store import Store
from secc.ocpp_bridge.client import (
    CallFailed,
    ClientConfig,
    MalformedResponse,
    NotConnected,
    OcppClient,
    Reply,
    StoreTls,
)
from tests.ocpp.conftest import server_context
from tests.ocpp.csms import Behaviour, TestCsms, wait_for

FAST = {"backoff_min": 0.05, "backoff_random": 0.05, "backoff_max": 0.2, "open_timeout": 3.0}


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


def config(csms: TestCsms, **kw: Any) -> ClientConfig:
    base: dict[str, Any] = {
        "csms_url": csms.url,
        "station_id": "CS-SECC-0001",
        "basic_auth_password": "s3cret-password",
        **FAST,
    }
    base.update(kw)
    return ClientConfig(**base)


async def with_client(
    csms: TestCsms, client: OcppClient, body: Callable[[], Awaitable[None]]
) -> None:
    task = asyncio.ensure_future(client.run())
    try:
        await body()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await csms.stop()


def test_profile1_boot_status_heartbeat() -> None:
    async def main() -> None:
        csms = TestCsms(behaviour=Behaviour(heartbeat_interval=1))
        await csms.start()
        client = OcppClient(config(csms, connectors=((1, 1), (2, 1))))

        async def body() -> None:
            await asyncio.wait_for(client.online.wait(), 10)
            await wait_for(lambda: csms.heartbeats >= 1, 5)
            statuses = [p for a, p in csms.calls if a == "StatusNotification"]
            assert [(s["evseId"], s["connectorStatus"]) for s in statuses] == [
                (1, "Available"),
                (2, "Available"),
            ]
            assert statuses[0]["timestamp"].endswith("Z")
            boot = next(p for a, p in csms.calls if a == "BootNotification")
            assert boot["reason"] == "PowerUp"
            assert client.heartbeat_interval == 1

        await with_client(csms, client, body)

    run(main())


def test_wrong_password_is_refused_and_retried() -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        client = OcppClient(config(csms, basic_auth_password="wrong"))

        async def body() -> None:
            await wait_for(lambda: csms.rejected_auth >= 2, 10)
            assert not client.online.is_set()
            assert "401" in client.last_error

        await with_client(csms, client, body)

    run(main())


def test_boot_pending_then_rejected_retries_at_the_csms_interval() -> None:
    async def main() -> None:
        csms = TestCsms(behaviour=Behaviour(boot_statuses=["Pending", "Rejected"], boot_interval=1))
        await csms.start()
        client = OcppClient(config(csms))

        async def body() -> None:
            loop = asyncio.get_running_loop()
            start = loop.time()
            await asyncio.wait_for(client.online.wait(), 10)
            assert csms.boots == ["Pending", "Rejected", "Accepted"]
            assert loop.time() - start >= 1.9  # waited the interval twice
            with pytest.raises(NotConnected):
                await OcppClient(config(csms)).call("Heartbeat", {})

        await with_client(csms, client, body)

    run(main())


def test_csms_down_at_boot_then_up_and_reconnect_after_drop() -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        port = csms.port
        await csms.stop()  # down at boot
        client = OcppClient(config(csms))

        async def body() -> None:
            await asyncio.sleep(0.5)
            assert not client.online.is_set()
            assert client.last_error
            with pytest.raises(NotConnected):
                await client.call("Heartbeat", {})
            await csms.start(port)
            await asyncio.wait_for(client.online.wait(), 10)
            assert client.connects == 1
            await csms.stop()  # drop
            await wait_for(lambda: not client.online.is_set(), 5)
            await csms.start(port)
            await asyncio.wait_for(client.online.wait(), 10)
            assert client.connects == 2
            assert csms.boots == ["Accepted", "Accepted"]

        await with_client(csms, client, body)

    run(main())


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    client = OcppClient(
        ClientConfig("ws://x", "s", backoff_min=1, backoff_random=2, backoff_max=10),
        rng=lambda: 0.5,
    )
    assert [client.backoff(n) for n in range(6)] == [2.0, 3.0, 5.0, 9.0, 11.0, 11.0]


def test_deadline_callerror_and_malformed_answer() -> None:
    async def main() -> None:
        b = Behaviour()
        csms = TestCsms(behaviour=b)
        await csms.start()
        client = OcppClient(config(csms))
        token = {"idToken": {"idToken": "DEABCC12345678", "type": "eMAID"}}

        async def body() -> None:
            await asyncio.wait_for(client.online.wait(), 10)
            b.authorize_delay = 1.0
            with pytest.raises(TimeoutError):
                await client.call("Authorize", token, timeout=0.3)
            b.authorize_delay = 0
            b.authorize_error = True
            with pytest.raises(CallFailed) as err:
                await client.call("Authorize", token)
            assert err.value.code == "InternalError"
            b.authorize_error = False
            b.authorize_malformed = True
            with pytest.raises(MalformedResponse):
                await client.call("Authorize", token)
            b.authorize_malformed = False
            # the late answer of the timed-out call does not confuse the next call
            answer = await client.call("Authorize", token)
            assert answer["idTokenInfo"] == {"status": "Accepted"}
            # an invalid request never leaves the station
            with pytest.raises(Exception, match=r"FormatViolation|TypeConstraint|not valid"):
                await client.call("Authorize", {"idToken": {"idToken": 5}})

        await with_client(csms, client, body)

    run(main())


def test_csms_initiated_call_with_follow_up_and_unknown_action() -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        followed: list[dict[str, object]] = []
        client = OcppClient(config(csms))

        async def follow_up() -> None:
            # a call from a follow-up, while the handler's answer is already out
            followed.append(await client.call("Heartbeat", {}))

        def on_trigger(payload: dict[str, object]) -> Reply:
            return Reply({"status": "Accepted"}, after=follow_up)

        client.handlers["TriggerMessage"] = on_trigger

        async def body() -> None:
            await asyncio.wait_for(client.online.wait(), 10)
            station = await csms.station("CS-SECC-0001")
            result = await station.call(
                call.TriggerMessage(requested_message="Heartbeat"), suppress=False
            )
            assert result.status == "Accepted"
            await wait_for(lambda: len(followed) == 1, 5)
            with pytest.raises(Exception, match="NotSupported"):
                await station.call(call.ClearCache(), suppress=False)

        await with_client(csms, client, body)

    run(main())


@pytest.mark.parametrize("profile", [2, 3])
def test_tls_profiles(profile: int, pki_dir: Path, store: Store) -> None:
    async def main() -> None:
        csms = TestCsms(
            password="s3cret-password" if profile == 2 else None,
            ssl_context=server_context(pki_dir, client_auth=profile == 3),
        )
        await csms.start()
        url = csms.url.replace("127.0.0.1", "localhost")
        cfg = config(csms, csms_url=url, security_profile=profile)
        if profile == 3:
            cfg = dataclasses.replace(cfg, basic_auth_password=None)
        client = OcppClient(cfg, tls=StoreTls(store))

        async def body() -> None:
            await asyncio.wait_for(client.online.wait(), 10)
            if profile == 3:
                subject = dict(x[0] for x in csms.peer_certs[0]["subject"])
                assert subject["commonName"] == "CS-SECC-0001"

        await with_client(csms, client, body)

    run(main())


def test_profile3_without_client_certificate_fails(pki_dir: Path, tmp_path: Path) -> None:
    async def main() -> None:
        csms = TestCsms(password=None, ssl_context=server_context(pki_dir, client_auth=True))
        await csms.start()
        empty = Store(tmp_path / "empty")
        empty.initialize()
        cfg = config(csms, csms_url=csms.url.replace("127.0.0.1", "localhost"), security_profile=3)
        cfg = dataclasses.replace(cfg, ca_pem=(pki_dir / "csms" / "root.pem").read_bytes())
        client = OcppClient(cfg, tls=StoreTls(empty))

        async def body() -> None:
            await wait_for(lambda: "charging-station certificate" in client.last_error, 5)
            assert not client.online.is_set()

        task = asyncio.ensure_future(client.run())
        try:
            await body()
        finally:
            task.cancel()
            res = await asyncio.gather(task, return_exceptions=True)
            await csms.stop()
        assert isinstance(res[0], (asyncio.CancelledError, NotConnected))

    run(main())


def test_bad_input_from_the_csms_keeps_the_link() -> None:
    async def main() -> None:
        csms = TestCsms()
        await csms.start()
        client = OcppClient(config(csms))

        def broken(payload: dict[str, object]) -> Reply:
            raise AttributeError("a bug in a handler")

        client.handlers["TriggerMessage"] = lambda p: Reply({"status": "Accepted"})
        client.handlers["ClearCache"] = broken

        async def body() -> None:
            await asyncio.wait_for(client.online.wait(), 10)
            station = await csms.station("CS-SECC-0001")
            # each is answered with a CallError (RpcFrameworkError, MessageTypeNotSupported)
            for raw in ("not json", "[2]", '{"a": 1}', '[9,"x","y",{}]', '[2,"1",5,{}]'):
                await station._connection.send(raw)
            with pytest.raises(Exception, match="PropertyConstraintViolation"):
                await station.call(
                    call.TriggerMessage(requested_message="Bogus"),
                    suppress=False,
                    skip_schema_validation=True,
                )
            with pytest.raises(Exception, match="InternalError"):
                await station.call(call.ClearCache(), suppress=False)
            # still connected, still answering
            answer = await station.call(
                call.TriggerMessage(requested_message="Heartbeat"), suppress=False
            )
            assert answer.status == "Accepted"
            assert client.connects == 1

        await with_client(csms, client, body)

    run(main())


def test_profile2_refuses_a_csms_it_cannot_verify(pki_dir: Path) -> None:
    async def main() -> None:
        csms = TestCsms(ssl_context=server_context(pki_dir, client_auth=False))
        await csms.start()
        url = csms.url.replace("127.0.0.1", "localhost")
        wrong_root = (pki_dir / "v2g" / "root.pem").read_bytes()
        client = OcppClient(config(csms, csms_url=url, security_profile=2, ca_pem=wrong_root))

        async def body() -> None:
            await wait_for(lambda: "CERTIFICATE_VERIFY_FAILED" in client.last_error, 5)
            assert not client.online.is_set()
            assert not csms.boots

        await with_client(csms, client, body)

    run(main())
