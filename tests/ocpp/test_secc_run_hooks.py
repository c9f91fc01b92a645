"""The station hooks under ``secc run``: a real station process (simulated HAL backend,
whose board offers the simulated hooks) against the test CSMS on loopback.

What the CSMS may expect, from OCPP 2.0.1 part 2:

* F05 UnlockConnector on a connector without an authorized transaction: ``Unlocked``
  when the connector's lock releases (the simulated board has a lock).
* L01 UpdateFirmware with a signature under the Manufacturer root: Accepted, then
  FirmwareStatusNotification Downloading, Downloaded, SignatureVerified, Installing,
  Installed (the simulated installer), the security event FirmwareUpdated.
* P01 DataTransfer of a vendor the station knows (the simulated vendor
  ``org.secc.simulated``, message ``Echo``): Accepted with the data; another vendor:
  UnknownVendorId.
* A04: the simulated tamper switch (``tamper_file``) raises TamperDetectionActivated.
* K08 GetCompositeSchedule without any charging profile: Accepted, the EVSE's own limit
  (its configured AC limits: 230 V x 32 A x 3 phases) for the whole duration.
* B11/B12 Reset: Immediate during a transaction ends it (stoppedReason ImmediateReset,
  triggerReason ResetCommand), OnIdle on an idle station is Accepted; after each the
  station boots again with reason RemoteReset (the simulated reset reboots the link;
  the process keeps running) after the security event ResetOrReboot.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ocpp.v201 import call

from secc.aio.ev_client import run_ev_sdp
from secc.cli.ev import load_credentials
from secc.sdp import Security
from tests.ocpp.csms import Behaviour, TestCsms, wait_for
from tests.ocpp.test_ops_firmware import IMAGE, image_server, sign, signer, update
from tests.station.conftest import script

STATION = "CS-RUN-0001"
READY = re.compile(r"EVSE (\S+) ready on (\S+) .*SDP port (\d+)")
CONFIG = """
[certs]
store = "{store}"
[ocpp]
url = "{url}"
station_id = "{station}"
basic_auth_password_file = "{password}"
state_dir = "{state}"
[[evse]]
evse_id = "DE*ABC*E1234567*1"
address = "::1"
tls_port = 0
sdp_port = 0
energy_modes = ["AC_three_phase_core"]
[evse.ac]
nominal_voltage = 230.0
max_current = 32.0
phases = 3
[evse.hal]
backend = "simulated"
control = "none"
[evse.hal.options]
tamper_file = "{tamper}"
"""


def _boot_reasons(csms: TestCsms) -> list[Any]:
    return [p["reason"] for action, p in csms.calls if action == "BootNotification"]


def _charging(csms: TestCsms) -> bool:
    return any(
        t["transactionInfo"].get("chargingState") == "Charging" for t in csms.transaction_stream()
    )


def _firmware_states(csms: TestCsms, request_id: int) -> list[str]:
    return [s["status"] for s in csms.firmware_statuses if s.get("request_id") == request_id]


@asynccontextmanager
async def secc_run(tmp_path: Path, pki_dir: Path, csms: TestCsms) -> AsyncIterator[Path]:
    """``secc run`` with an [ocpp] section for ``csms``; yields its stderr log's path.
    Ends it with SIGTERM (it must exit 0)."""
    store = tmp_path / "store"
    shutil.copytree(pki_dir / "station", store, symlinks=True)
    # the reconnect after a reset waits RetryBackOffWaitMinimum + up to RandomRange
    # (1 + 10 s by default): as a CSMS may have set them before, none here
    state = tmp_path / "ocpp"
    state.mkdir()
    (state / "device_model.json").write_text(
        json.dumps(
            {
                "OCPPCommCtrlr/RetryBackOffWaitMinimum": "0",
                "OCPPCommCtrlr/RetryBackOffRandomRange": "0",
            }
        )
    )
    password = tmp_path / "password"
    password.write_text("s3cret-password\n")
    config = tmp_path / "secc.toml"
    config.write_text(
        CONFIG.format(
            store=store,
            url=csms.url,
            station=STATION,
            password=password,
            state=state,
            tamper=tmp_path / "tamper",
        )
    )
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "secc.cli.main", "run", "--config", str(config)],
            stderr=err,
            stdout=subprocess.DEVNULL,
        )
    try:
        yield log
        proc.send_signal(signal.SIGTERM)
        end = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < end:
            await asyncio.sleep(0.05)
        assert proc.poll() == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def sdp_port(log: Path, timeout: float = 30) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = READY.search(log.read_text())
        if found:
            return int(found.group(3))
        await asyncio.sleep(0.05)
    raise AssertionError(f"no READY line in {log.read_text()}")


def run(coro: Any) -> None:
    asyncio.run(asyncio.wait_for(coro, 150))


def test_unlock_firmware_data_transfer_and_composite_schedule(
    tmp_path: Path, pki_dir: Path
) -> None:
    async def main() -> None:
        key, cert = signer(pki_dir)
        csms = TestCsms()
        await csms.start()
        try:
            async with secc_run(tmp_path, pki_dir, csms):
                cp = await csms.station(STATION, timeout=60)
                await wait_for(lambda: csms.boots == ["Accepted"], 30)

                unlock = await cp.call(call.UnlockConnector(evse_id=1, connector_id=1))
                assert unlock.status == "Unlocked"
                unknown = await cp.call(call.UnlockConnector(evse_id=1, connector_id=2))
                assert unknown.status == "UnknownConnector"

                echo = await cp.call(
                    call.DataTransfer(
                        vendor_id="org.secc.simulated", message_id="Echo", data={"n": [1, 2]}
                    )
                )
                assert echo.status == "Accepted" and echo.data == {"n": [1, 2]}
                other = await cp.call(call.DataTransfer(vendor_id="com.example.other"))
                assert other.status == "UnknownVendorId"

                composite = await cp.call(
                    call.GetCompositeSchedule(duration=3600, evse_id=1, charging_rate_unit="W")
                )
                assert composite.status == "Accepted"
                schedule = composite.schedule
                assert schedule["evse_id"] == 1 and schedule["duration"] == 3600
                assert schedule["charging_rate_unit"] == "W"
                assert schedule["charging_schedule_period"] == [
                    {"start_period": 0, "limit": 230.0 * 32 * 3}
                ]
                amps = await cp.call(
                    call.GetCompositeSchedule(duration=60, evse_id=0, charging_rate_unit="A")
                )
                assert amps.status == "Accepted"
                assert amps.schedule["charging_schedule_period"] == [
                    {"start_period": 0, "limit": 32.0}
                ]

                with image_server(IMAGE) as (url, hits):
                    answer = await cp.call(update(77, url, cert, sign(key, IMAGE)))
                    assert answer.status == "Accepted"
                    await wait_for(lambda: _firmware_states(csms, 77)[-1:] == ["Installed"], 60)
                    assert len(hits) == 1
                await wait_for(
                    lambda: any(e["type"] == "FirmwareUpdated" for e in csms.raised_events())
                )
                # A04: the simulated tamper switch (the backend's tamper_file option)
                (tmp_path / "tamper").write_text("enclosure door opened\n")
                await wait_for(
                    lambda: any(
                        e["type"] == "TamperDetectionActivated"
                        and e.get("tech_info") == "enclosure door opened"
                        for e in csms.raised_events()
                    )
                )
                assert not (tmp_path / "tamper").exists()  # taken once
                # the station serves on: a second vendor call is still answered
                again = await cp.call(
                    call.DataTransfer(vendor_id="org.secc.simulated", message_id="Nope")
                )
                assert again.status == "UnknownMessageId"
        finally:
            await csms.stop()
        assert _firmware_states(csms, 77) == [
            "Downloading",
            "Downloaded",
            "SignatureVerified",
            "Installing",
            "Installed",
        ]

    run(main())


def test_reset_immediate_in_a_session_and_on_idle(tmp_path: Path, pki_dir: Path) -> None:
    async def main() -> None:
        # a CSMS slow to answer BootNotification: the EV below starts while the station
        # boots (the window a loaded machine once opened by chance)
        csms = TestCsms(behaviour=Behaviour(boot_delay=1.0))
        await csms.start()
        try:
            async with secc_run(tmp_path, pki_dir, csms) as log:
                cp = await csms.station(STATION, timeout=60)
                port = await sdp_port(log)
                creds = load_credentials(pki_dir, dt.datetime.now(dt.UTC))
                ev = asyncio.ensure_future(
                    run_ev_sdp(
                        script("ac", payment="Contract", credentials=creds, charge_loops=100_000),
                        security=Security.TLS,
                        address="::1",
                        sdp_port=port,
                        cafile=pki_dir / "v2g" / "root.pem",
                    )
                )
                try:
                    # the EV starts while the station still waits for the answer to its
                    # BootNotification (csms.station returns on connection): its Authorize
                    # waits for that answer (tests/ocpp/test_boot_window.py), it is not
                    # refused offline
                    await wait_for(lambda: ev.done() or _charging(csms), 60)
                    if not _charging(csms):  # the EV gave up: say why, rather than wait on
                        raise AssertionError(f"the EV ended before charging: {ev.result().ended}")
                    answer = await cp.call(call.Reset(type="Immediate"))
                    assert answer.status == "Accepted"
                    await wait_for(
                        lambda: any(t["eventType"] == "Ended" for t in csms.transaction_stream()),
                        60,
                    )
                    # the station asked the EV to stop long before its 100000 loops
                    result = await asyncio.wait_for(ev, 60)
                    assert result.steps[-1].response == "SessionStopRes"
                finally:
                    ev.cancel()
                await wait_for(lambda: _boot_reasons(csms) == ["PowerUp", "RemoteReset"], 60)
                assert [e["type"] for e in csms.raised_events()] == ["ResetOrReboot"]

                cp = await csms.station(STATION, timeout=60)  # the link after the reboot
                await wait_for(lambda: csms.boots == ["Accepted", "Accepted"], 30)
                idle = await cp.call(call.Reset(type="OnIdle"))
                assert idle.status == "Accepted"  # no transaction: at once
                await wait_for(
                    lambda: _boot_reasons(csms) == ["PowerUp", "RemoteReset", "RemoteReset"], 60
                )
                await wait_for(lambda: len(csms.boots) == 3, 30)
                heartbeat = await (await csms.station(STATION)).call(
                    call.TriggerMessage(requested_message="Heartbeat")
                )
                assert heartbeat.status == "Accepted"  # the station serves on
        finally:
            await csms.stop()
        ended = [t for t in csms.transaction_stream() if t["eventType"] == "Ended"]
        assert len(ended) == 1
        assert ended[0]["transactionInfo"]["stoppedReason"] == "ImmediateReset"
        assert ended[0]["triggerReason"] == "ResetCommand"
        assert [e["type"] for e in csms.raised_events()] == ["ResetOrReboot", "ResetOrReboot"]

    run(main())
