"""Secure firmware update (OCPP 2.0.1 L01): UpdateFirmware, download with retries,
signature verified against the Manufacturer root in the certificate store, installation
through the station's :class:`hal.hooks.FirmwareInstallHook`, and a
FirmwareStatusNotification for every state it passes, queued in the durable outbox.

Answer to UpdateFirmware: ``Rejected`` without an install hook or for a location that is
not an http(s) URL; ``InvalidCertificate`` when ``signingCertificate`` does not lead to a
Manufacturer root of the store or is outside its validity (security event
InvalidFirmwareSigningCertificate); ``AcceptedCanceled`` when it replaces an update in
progress (which ends there); else ``Accepted``.

Then: DownloadScheduled (retrieveDateTime ahead) → Downloading → Downloaded, or
DownloadFailed after ``retries`` more attempts ``retryInterval`` seconds apart →
SignatureVerified, or InvalidSignature (security event InvalidFirmwareSignature) →
InstallScheduled (installDateTime ahead) → the station waits for its transactions to end,
taking no new sessions → Installing → what the hook reports (Installed, InstallRebooting,
InstallationFailed, InstallVerificationFailed); Installed raises the security event
FirmwareUpdated.  The image is downloaded into ``firmware/`` beside the outbox, bounded in
size, and removed after a failed verification.  The station serves on throughout.

Across a restart (the job is kept in the outbox's state, key ``firmware_job``, from the
Accepted answer until its last status): an update whose download or wait had not ended
is resumed with the same requestId (Downloading again: the image is fetched anew and
verified); one whose image was verified verifies it again and goes on to install; one
whose installation was running when the process ended reports InstallationFailed (its
outcome is unknown); one that reported InstallRebooting reports Installed (and the
security event FirmwareUpdated, L01.FR.31) once the station runs again, booting with
reason FirmwareUpdate.  InstallRebooting: the bridge restarts the station through the
:class:`hal.hooks.ResetHook` once the status is out.  A TriggerMessage reports the last
status sent, Idle after Installed or when no update ever ran (L01.FR.25/26).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import itertools
import logging
import sqlite3
import urllib.request
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from certs._util import signed_by
from secc.ocpp_bridge import security_events as sec
from secc.ocpp_bridge.client import Reply
from secc.ocpp_bridge.logs import OPENER, valid_location

if TYPE_CHECKING:
    from secc.ocpp_bridge.bridge import Bridge

log = logging.getLogger(__name__)
Payload = dict[str, object]
JOB_KEY = "firmware_job"  # outbox state: the update in progress (survives a restart)
MAX_IMAGE = 512 * 1024 * 1024  # bytes
DOWNLOAD_TIMEOUT = 60.0


class FirmwareError(Exception):
    """A step of the update failed; ``str()`` says why."""


def http_get(url: str, target: Path, limit: int = MAX_IMAGE) -> int:
    """Download ``url`` into ``target`` (at most ``limit`` bytes); returns the size."""
    if not valid_location(url):
        raise ValueError(f"not an http(s) URL: {url!r}")
    request = urllib.request.Request(url)  # noqa: S310 - the scheme is checked above
    size = 0
    with OPENER.open(request, timeout=DOWNLOAD_TIMEOUT) as response, target.open("wb") as out:
        while chunk := response.read(65536):
            size += len(chunk)
            if size > limit:
                raise OSError(f"firmware image larger than {limit} bytes")
            out.write(chunk)
    return size


def signing_certificate_problem(pem: str, roots: list[x509.Certificate], now: dt.datetime) -> str:
    """Why ``pem`` (the signing certificate, maybe followed by intermediates) may not sign
    firmware ("" when it may): it must lead to one of the Manufacturer ``roots`` and every
    certificate on the way must be valid now."""
    try:
        chain = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        return f"signingCertificate is not PEM: {exc}"
    if not roots:
        return "no Manufacturer root certificate installed"
    for cert in chain:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            return f"{cert.subject.rfc4514_string()} is outside its validity"
    for cert, issuer in itertools.pairwise(chain):
        if not signed_by(cert, issuer):
            return "the signingCertificate chain is broken"
    if not any(signed_by(chain[-1], root) for root in roots):
        return "signingCertificate does not lead to a Manufacturer root"
    return ""


def verify_signature(cert_pem: str, signature_b64: str, image: Path) -> bool:
    """The image's signature (base64; RSA PKCS#1 v1.5 or ECDSA, over SHA-256) by the
    signing certificate's key."""
    try:
        cert = x509.load_pem_x509_certificates(cert_pem.encode())[0]
        signature = base64.b64decode(signature_b64, validate=True)
    except ValueError:
        return False
    data = image.read_bytes()
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except InvalidSignature:
        return False
    return True


class FirmwareUpdates:
    """UpdateFirmware handling (one update at a time)."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.directory = bridge.queue.path.parent / "firmware"
        self._task: asyncio.Task[None] | None = None
        self._request_id: int | None = None
        self.installing = False  # waiting for the transactions to end, or installing
        self._pending: list[Payload] = []  # statuses not sent yet, in order

    @property
    def busy(self) -> bool:
        """A request is being carried out (Reset OnIdle waits for it)."""
        return self._task is not None and not self._task.done()

    def update_firmware(self, p: Payload) -> Reply:
        ops = self.bridge.ops
        hook = ops.hooks.firmware
        firmware = p.get("firmware")
        firmware = firmware if isinstance(firmware, dict) else {}
        location = str(firmware.get("location", ""))
        request_id = p.get("requestId")
        if hook is None:
            return Reply({"status": "Rejected", "statusInfo": _info("NoInstaller", "")})
        if not valid_location(location):
            return Reply({"status": "Rejected", "statusInfo": _info("InvalidURL", location)})
        cert_pem = firmware.get("signingCertificate")
        signature = firmware.get("signature")
        if not isinstance(cert_pem, str) or not isinstance(signature, str):
            reason = "signingCertificate and signature are required"
            return Reply({"status": "Rejected", "statusInfo": _info("UnsignedFirmware", reason)})
        store = self.bridge.store
        roots = store.roots("manufacturer") if store is not None else []
        problem = signing_certificate_problem(cert_pem, roots, self.bridge.utc_now())
        if problem:
            self.bridge.client.spawn(
                self.bridge.security.record(sec.INVALID_FIRMWARE_CERTIFICATE, problem),
                "SecurityEventNotification",
            )
            return Reply({"status": "InvalidCertificate", "statusInfo": _info("Invalid", problem)})
        status = "Accepted"
        previous = self._request_id
        running = self._task is not None and not self._task.done()
        if running and self.installing:  # an installation is not interrupted
            reason = "an installation is in progress"
            return Reply({"status": "Rejected", "statusInfo": _info("Installing", reason)})
        retries = p.get("retries")
        interval = p.get("retryInterval")
        record: Payload = {
            "requestId": request_id if isinstance(request_id, int) else None,
            "location": location,
            "signingCertificate": cert_pem,
            "signature": signature,
            "retrieveDateTime": firmware.get("retrieveDateTime"),
            "installDateTime": firmware.get("installDateTime"),
            "retries": retries if isinstance(retries, int) else 0,
            "retryInterval": interval if isinstance(interval, int) else 0,
            "stage": "download",
        }
        try:  # Accepted only for what survives a restart
            self._save(record)
        except (OSError, sqlite3.Error) as exc:
            return Reply({"status": "Rejected", "statusInfo": _info("Storage", str(exc))})
        if running and self._task is not None:
            self._task.cancel()  # the new request replaces the download in progress
            status = "AcceptedCanceled"
        self._request_id = request_id if isinstance(request_id, int) else None
        job = self._job(record)

        async def start() -> None:
            if status == "AcceptedCanceled":
                self._set_status("AcceptedCanceled", previous)  # the old request ends here
            self._task = asyncio.ensure_future(job)

        return Reply({"status": status}, after=start)

    def _save(self, record: Payload | None) -> None:
        self.bridge.queue.set_state({JOB_KEY: record})

    async def _stage(self, record: Payload, stage: str | None) -> None:
        """Keep how far the job got (None: it ended); a storage failure is logged."""
        if stage is not None:
            record["stage"] = stage
        try:
            await self.bridge.queue.off_loop(self._save, record if stage is not None else None)
        except (OSError, sqlite3.Error) as exc:
            log.error("firmware job state not stored: %s", exc)

    def _job(self, record: Payload) -> Coroutine[None, None, None]:
        retries, interval = record.get("retries"), record.get("retryInterval")
        return self._run(
            record,
            str(record["location"]),
            str(record["signingCertificate"]),
            str(record["signature"]),
            _time(record.get("retrieveDateTime")),
            _time(record.get("installDateTime")),
            retries if isinstance(retries, int) else 0,
            float(interval) if isinstance(interval, int) else 0.0,
        )

    async def resume(self) -> None:
        """At start-up, once the link is up: what a restart left of an update (see the
        module docstring)."""
        queue = self.bridge.queue
        record = queue.get_state(JOB_KEY)
        if record is None or (self._task is not None and not self._task.done()):
            return
        problem = job_problem(record)
        rid = record.get("requestId") if isinstance(record, dict) else None
        self._request_id = rid if isinstance(rid, int) else None
        if problem:  # no update to go on with: the CSMS hears the request failed
            log.error(
                "%s: firmware job record %r is damaged (%s); update %s dropped",
                queue.path,
                JOB_KEY,
                problem,
                rid,
            )
            if self._request_id is not None:
                await self._status("DownloadFailed")
            await self.bridge.queue.off_loop(self._save, None)
            return
        assert isinstance(record, dict)
        stage = record.get("stage")
        log.warning("firmware update %s found at stage %s after a restart", rid, stage)
        if stage == "rebooting":
            await self._rebooted(record)
        elif stage == "installing":
            await self._status("InstallationFailed")
            await self._stage(record, None)
        else:
            self._task = asyncio.ensure_future(self._job(record))

    async def _rebooted(self, record: Payload) -> None:
        """The station runs again after InstallRebooting: the image is installed."""
        await self.bridge.security.record(sec.FIRMWARE_UPDATED, str(record.get("location")))
        await self._status("Installed")
        await self._stage(record, None)

    def _set_status(self, status: str, request_id: int | None = None) -> None:
        payload: Payload = {"status": status}
        rid = self._request_id if request_id is None else request_id
        if rid is not None:
            payload["requestId"] = rid
        # L01.FR.25/26: a TriggerMessage reports the last status sent, Idle after Installed
        self.bridge.ops.firmware_status = {"status": "Idle"} if status == "Installed" else payload
        if status == "AcceptedCanceled":
            return  # no FirmwareStatusEnumType value: the new request's states follow
        self._pending.append(payload)

    async def _flush(self) -> None:
        """Queue the statuses in the durable outbox (in order with the other queued
        messages: they reach the CSMS after a lost link or a restart too)."""
        queue = self.bridge.queue
        while self._pending:
            payload = self._pending.pop(0)
            try:
                await queue.off_loop(queue.enqueue, "FirmwareStatusNotification", payload)
            except (OSError, sqlite3.Error) as exc:
                log.error("FirmwareStatusNotification %s not queued: %s", payload["status"], exc)
        self.bridge.sender.wake()

    async def _status(self, status: str) -> None:
        self._set_status(status)
        await self._flush()

    async def _run(
        self,
        record: Payload,
        location: str,
        cert_pem: str,
        signature: str,
        retrieve_at: dt.datetime | None,
        install_at: dt.datetime | None,
        retries: int,
        interval: float,
    ) -> None:
        image = self.directory / f"firmware-{self._request_id or 0}.bin"
        try:
            if retrieve_at is not None and retrieve_at > self.bridge.utc_now():
                await self._status("DownloadScheduled")
                await self._until(retrieve_at)
            await self._status("Downloading")
            if not await self._download(location, image, retries, interval):
                await self._status("DownloadFailed")
                await self._stage(record, None)
                return
            await self._status("Downloaded")
            if not await asyncio.to_thread(verify_signature, cert_pem, signature, image):
                image.unlink(missing_ok=True)
                await self._status("InvalidSignature")
                await self._stage(record, None)
                await self.bridge.security.record(
                    sec.INVALID_FIRMWARE_SIGNATURE, f"firmware from {location}"
                )
                return
            await self._stage(record, "verified")
            await self._status("SignatureVerified")
            if install_at is not None and install_at > self.bridge.utc_now():
                await self._status("InstallScheduled")
                await self._until(install_at)
            await self._install(image, record)
        except asyncio.CancelledError:
            raise  # a new request replaces this one (or the station stops: resumed later)
        except BaseException:
            await self._stage(record, None)
            raise
        finally:
            await self._flush()

    async def _install(self, image: Path, record: Payload) -> None:
        hook = self.bridge.ops.hooks.firmware
        assert hook is not None
        self.installing = True  # L01: no new session; wait for the running ones
        try:
            await self.bridge.ops.wait_idle()
            await self._stage(record, "installing")
            await self._status("Installing")
            try:
                outcome = await hook.install(image)
            except Exception as exc:  # the maker's hook: report it and serve on
                log.error("firmware installation failed: %s", exc)
                outcome = "InstallationFailed"
        finally:
            self.installing = False  # sessions again before the outcome is reported
        if outcome not in {"Installed", "InstallRebooting", "InstallVerificationFailed"}:
            outcome = "InstallationFailed"
        if outcome == "InstallRebooting":  # Installed and FirmwareUpdated after the restart
            await self._stage(record, "rebooting")
            await self._status(outcome)
            if await self.bridge.ops.restart("FirmwareUpdate"):
                await self._rebooted(record)  # a simulated restart returned
            return
        if outcome == "Installed":
            await self.bridge.security.record(sec.FIRMWARE_UPDATED, image.name)
        await self._status(outcome)
        await self._stage(record, None)

    async def _download(self, url: str, image: Path, retries: int, interval: float) -> bool:
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        for attempt in range(retries + 1):
            try:
                size = await asyncio.to_thread(http_get, url, image)
                log.info("firmware downloaded from %s (%d bytes)", url, size)
                return True
            except (OSError, ValueError) as exc:
                log.warning("firmware download %s failed (attempt %d): %s", url, attempt + 1, exc)
                image.unlink(missing_ok=True)
                if attempt < retries:
                    await asyncio.sleep(interval)
        return False

    async def _until(self, when: dt.datetime) -> None:
        delay = (when - self.bridge.utc_now()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)


STAGES = ("download", "verified", "installing", "rebooting")


def job_problem(record: object) -> str:
    """What makes a stored update record unusable ("" when it is whole): what
    :meth:`FirmwareUpdates.update_firmware` stores, read back after a restart."""
    if not isinstance(record, dict):
        return f"not an object but {type(record).__name__}"
    for name in ("location", "signingCertificate", "signature"):
        if not isinstance(record.get(name), str):
            return f"{name} missing"
    if not valid_location(str(record["location"])):
        return "location is no http(s) URL"
    if record.get("stage") not in STAGES:
        return f"unknown stage {record.get('stage')!r}"
    for name in ("requestId", "retries", "retryInterval"):
        if record.get(name) is not None and not isinstance(record.get(name), int):
            return f"{name} is not an integer"
    return ""


def _time(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _info(code: str, detail: str) -> dict[str, object]:
    return {"reasonCode": code[:20], "additionalInfo": detail[:512]}
