"""Secure firmware update (OCPP 2.0.1 L01) against the test CSMS, the image served by an
HTTP server on loopback and signed by a certificate under the test PKI's Manufacturer
root (installed in the station's store).

From L01's requirements: FirmwareStatusNotification through every state (Downloading,
Downloaded, SignatureVerified, Installing, Installed); download retried as asked; a
signing certificate not from a Manufacturer root is InvalidCertificate with the security
event InvalidFirmwareSigningCertificate; an image whose signature does not match ends in
InvalidSignature with InvalidFirmwareSignature and is never installed; a malformed
location is Rejected, an unreachable server ends in DownloadFailed; the installation waits
for the running transaction.  The station serves on throughout.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import http.server
import socket
import threading
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ocpp.v201 import call

from certs.store import Store
from hal.hooks import SimulatedFirmwareInstall, StationHooks
from secc.core.actions import EndReason, SessionEnded, SessionStarted
from secc.ocpp_bridge.bridge import BridgeConfig
from tests.ocpp.conftest import OpsLink
from tests.ocpp.csms import TestCsms, wait_for
from tests.ocpp.station import STATION, Station, build, running

FAST = BridgeConfig(link_retry=0.05, meter_interval=3600)
PLUG = SessionStarted(b"\x01" * 8, b"\x02" * 6, "urn:iso:15118:2:2013:MsgDef")
IMAGE = b"SECC-FIRMWARE-2.0\x00" + bytes(range(256)) * 64
ALL_STATES = ["Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed"]


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 90))  # type: ignore[arg-type]


def signer(
    pki_dir: Path, *, under_manufacturer: bool = True
) -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A firmware signing key and its certificate (PEM), issued by the Manufacturer root
    of the test PKI, or self-signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Firmware Signer")])
    if under_manufacturer:
        root = x509.load_pem_x509_certificate((pki_dir / "manufacturer" / "root.pem").read_bytes())
        root_key = serialization.load_pem_private_key(
            (pki_dir / "manufacturer" / "root.key").read_bytes(), None
        )
        issuer = root.subject
    else:
        root_key, issuer = key, name
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(root_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


def sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> str:
    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


@contextmanager
def image_server(body: bytes, failures: int = 0) -> Iterator[tuple[str, list[str]]]:
    """Serves ``body`` at /fw.bin on loopback; the first ``failures`` GETs get 503."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            if len(hits) <= failures:
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fw.bin", hits
    finally:
        server.shutdown()
        server.server_close()


def update(request_id: int, url: str, cert: str, signature: str, **kw: Any) -> call.UpdateFirmware:
    firmware = {
        "location": url,
        "retrieve_date_time": dt.datetime.now(dt.UTC).isoformat(),
        "signing_certificate": cert,
        "signature": signature,
    }
    return call.UpdateFirmware(request_id=request_id, firmware=firmware, **kw)


def _station(
    tmp_path: Path, csms: TestCsms, store: Store
) -> tuple[Station, SimulatedFirmwareInstall]:
    station = build(tmp_path, csms.url, config=FAST, store=store)
    hook = SimulatedFirmwareInstall()
    station.bridge.ops.hooks = StationHooks(firmware=hook)
    return station, hook


def states(csms: TestCsms, request_id: int) -> list[str]:
    return [s["status"] for s in csms.firmware_statuses if s.get("request_id") == request_id]


def test_signed_firmware_is_downloaded_verified_and_installed(
    pki_dir: Path, store: Store, ops_link: OpsLink
) -> None:
    async def main() -> None:
        key, cert = signer(pki_dir)
        hook = SimulatedFirmwareInstall()
        async with ops_link(hooks=StationHooks(firmware=hook), store=store) as link:
            csms, cp = link.csms, link.cp
            with image_server(IMAGE, failures=1) as (url, hits):
                answer = await cp.call(
                    update(5, url, cert, sign(key, IMAGE), retries=2, retry_interval=0)
                )
                assert answer.status == "Accepted"
                await wait_for(lambda: states(csms, 5)[-1:] == ["Installed"])
                assert len(hits) == 2  # the first attempt failed, the retry succeeded
            await wait_for(
                lambda: any(e["type"] == "FirmwareUpdated" for e in csms.raised_events())
            )
            trigger = await cp.call(
                call.TriggerMessage(requested_message="FirmwareStatusNotification")
            )
            assert trigger.status == "Accepted"
            await wait_for(lambda: csms.firmware_statuses[-1] == {"status": "Idle"})
        assert states(csms, 5) == ALL_STATES
        assert hook.installed == [IMAGE]

    run(main())


def test_signature_mismatch_is_never_installed(
    tmp_path: Path, pki_dir: Path, store: Store, ops_link: OpsLink
) -> None:
    async def main() -> None:
        key, cert = signer(pki_dir)
        hook = SimulatedFirmwareInstall()
        async with ops_link(hooks=StationHooks(firmware=hook), store=store) as link:
            csms, station, cp = link.csms, link.station, link.cp
            tampered = IMAGE[:-1] + b"\x00"  # one byte changed
            with image_server(tampered) as (url, _hits):
                answer = await cp.call(update(6, url, cert, sign(key, IMAGE)))
                assert answer.status == "Accepted"
                await wait_for(lambda: states(csms, 6)[-1:] == ["InvalidSignature"])
            await wait_for(
                lambda: [e["type"] for e in csms.raised_events()] == ["InvalidFirmwareSignature"]
            )
            station.bridge.perform(PLUG)  # the station serves on
            await wait_for(lambda: len(csms.tx_raw) == 1)
        assert states(csms, 6) == ["Downloading", "Downloaded", "InvalidSignature"]
        assert hook.installed == []
        assert list((tmp_path / "firmware").iterdir()) == []

    run(main())


def test_bad_requests_get_a_clear_status(pki_dir: Path, store: Store, ops_link: OpsLink) -> None:
    async def main() -> None:
        key, cert = signer(pki_dir)
        stranger_key, stranger = signer(pki_dir, under_manufacturer=False)
        hook = SimulatedFirmwareInstall()
        async with ops_link(hooks=StationHooks(firmware=hook), store=store) as link:
            csms, cp = link.csms, link.cp
            bad_url = await cp.call(update(7, "htp:/firmware", cert, sign(key, IMAGE)))
            assert bad_url.status == "Rejected"
            assert bad_url.status_info["reason_code"] == "InvalidURL"
            with image_server(IMAGE) as (url, hits):
                wrong = await cp.call(update(8, url, stranger, sign(stranger_key, IMAGE)))
                assert wrong.status == "InvalidCertificate"
                assert hits == []  # nothing downloaded
            await wait_for(lambda: len(csms.raised_events()) == 1)
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                dead = f"http://127.0.0.1:{s.getsockname()[1]}/fw.bin"
            answer = await cp.call(
                update(9, dead, cert, sign(key, IMAGE), retries=1, retry_interval=0)
            )
            assert answer.status == "Accepted"
            await wait_for(lambda: states(csms, 9)[-1:] == ["DownloadFailed"])
        assert csms.raised_events()[0]["type"] == "InvalidFirmwareSigningCertificate"
        assert states(csms, 7) == states(csms, 8) == []
        assert states(csms, 9) == ["Downloading", "DownloadFailed"]
        assert hook.installed == []

    run(main())


def test_installation_waits_for_the_transaction(
    pki_dir: Path, store: Store, ops_link: OpsLink
) -> None:
    async def main() -> None:
        key, cert = signer(pki_dir)
        hook = SimulatedFirmwareInstall()
        async with ops_link(hooks=StationHooks(firmware=hook), store=store) as link:
            csms, station, cp = link.csms, link.station, link.cp
            bridge = station.bridge
            bridge.perform(PLUG)
            await wait_for(lambda: len(csms.tx_raw) == 1)
            with image_server(IMAGE) as (url, _hits):
                answer = await cp.call(update(10, url, cert, sign(key, IMAGE)))
                assert answer.status == "Accepted"
                await wait_for(lambda: states(csms, 10)[-1:] == ["SignatureVerified"])
            assert hook.installed == []
            assert not bridge.ops.operative(1)  # no new session while the update waits
            bridge.perform(SessionEnded(EndReason.EV_STOP))
            await wait_for(lambda: states(csms, 10)[-1:] == ["Installed"])
            assert bridge.ops.operative(1)
        assert states(csms, 10) == ALL_STATES
        assert hook.installed == [IMAGE]

    run(main())


def test_a_new_update_cancels_a_running_download(
    tmp_path: Path, pki_dir: Path, store: Store
) -> None:
    """L01: UpdateFirmware while a download runs is AcceptedCanceled; the old request
    reports nothing more, the new one is installed."""
    release = threading.Event()

    class Held(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/held.bin":
                release.wait(20)
            self.send_response(200)
            self.send_header("Content-Length", str(len(IMAGE)))
            self.end_headers()
            self.wfile.write(IMAGE)

        def log_message(self, *args: object) -> None:
            pass

    async def main() -> None:
        key, cert = signer(pki_dir)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Held)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        csms = TestCsms()
        await csms.start()
        station, hook = _station(tmp_path, csms, store)
        try:
            async with running(station):
                cp = await csms.station(STATION)
                first = await cp.call(update(41, f"{base}/held.bin", cert, sign(key, IMAGE)))
                assert first.status == "Accepted"
                await wait_for(lambda: states(csms, 41) == ["Downloading"])
                second = await cp.call(update(42, f"{base}/fw.bin", cert, sign(key, IMAGE)))
                assert second.status == "AcceptedCanceled"
                await wait_for(lambda: states(csms, 42)[-1:] == ["Installed"])
                release.set()
                await asyncio.sleep(0.3)
        finally:
            release.set()
            server.shutdown()
            server.server_close()
        await csms.stop()
        assert states(csms, 41) == ["Downloading"]
        assert states(csms, 42) == ALL_STATES
        assert hook.installed == [IMAGE]

    run(main())
