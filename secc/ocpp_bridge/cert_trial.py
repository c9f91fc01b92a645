"""A renewed charging-station certificate on trial (OCPP 2.0.1 A02/A03, errata 2025-01:
A02.FR.10/28/29, A03.FR.10/24/25, with B10.FR.07-09).

When CertificateSigned installs a new ChargingStationCertificate while the link uses it
(security profile 3), the station switches to it by reconnecting (A02.FR.08) but keeps
the previous chain and key until the new one has proven itself:

* a connection accepted by the CSMS with the new certificate proves it: the old one is
  discarded (A02.FR.10);
* when no connection succeeds through any entry of NetworkConfigurationPriority with
  the new certificate (NetworkProfileConnectionAttempts for each), the station falls
  back to the old one (B10.FR.07's mechanism) and, should that fail as well, alternates
  between the two after each such round (B10.FR.08's), never giving up (B10.FR.09)
  (A02.FR.28);
* when the old one connects first, the new one is discarded (A02.FR.10) and the
  security event DiscardedRenewedClientCertificate tells the CSMS (A02.FR.29), which may
  then renew again.

Both pairs are kept in the certificate store's directory (``fallback/csms/old`` and
``new``: ``chain.pem`` and ``key.pem`` as the store wrote them, the key 0600 and
encrypted like the store's keys) and the trial's state in the outbox database (state
``client_certificate_trial``), so a restart in the middle continues it.  Which pair is
in service is read from the store (the leaf's fingerprint), never assumed.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

from certs._util import CertsError, fingerprint, key_pem, load_certificates
from certs.store import Store, StoreError, atomic_write, key_kinds, load_leaf_key
from secc.ocpp_bridge.client import OcppClient
from secc.ocpp_bridge.queue import DurableQueue
from secc.ocpp_bridge.security_events import DISCARDED_RENEWED_CERTIFICATE, SecurityEvents

log = logging.getLogger(__name__)
TRIAL_KEY = "client_certificate_trial"
USE = "csms"


class ClientCertTrial:
    """See the module docstring.  ``rounds()``: how many failed connections make one
    round through every NetworkConfigurationPriority entry."""

    def __init__(
        self,
        store: Store,
        queue: DurableQueue,
        client: OcppClient,
        security: SecurityEvents,
        rounds: Callable[[], int],
    ) -> None:
        self.store = store
        self.queue = queue
        self.client = client
        self.security = security
        self.rounds = rounds
        self.directory = store.root / "fallback" / USE

    # --- state -------------------------------------------------------------------------------

    def state(self) -> dict[str, object] | None:
        """The running trial (``failures``: failed connections in the current round)."""
        value = self.queue.get_state(TRIAL_KEY)
        return value if isinstance(value, dict) else None

    def _set_state(self, value: dict[str, object] | None) -> None:
        try:
            self.queue.set_state({TRIAL_KEY: value})
        except (OSError, sqlite3.Error) as exc:  # the link goes on regardless
            log.error("client certificate trial state not stored: %s", exc)

    def _pair_dir(self, which: str) -> Path:
        return self.directory / which

    def _write_pair(self, which: str, pair: tuple[bytes, bytes]) -> None:
        target = self._pair_dir(which)
        target.mkdir(parents=True, mode=0o700, exist_ok=True)
        for parent in (self.directory.parent, self.directory, target):
            parent.chmod(0o700)
        atomic_write(target / "key.pem", pair[1], mode=0o600)
        atomic_write(target / "chain.pem", pair[0], mode=0o644)

    def _read_pair(self, which: str) -> tuple[bytes, bytes] | None:
        try:
            target = self._pair_dir(which)
            return (target / "chain.pem").read_bytes(), (target / "key.pem").read_bytes()
        except OSError:
            return None

    def _leaf_fingerprint(self, chain: bytes) -> str | None:
        try:
            return fingerprint(load_certificates(chain)[0])
        except (CertsError, IndexError):
            return None

    def in_service(self) -> str | None:
        """Which pair the store serves now, "new" or "old" (None: neither, e.g. the
        store was changed by hand)."""
        current = self.snapshot()
        if current is None:
            return None
        served = self._leaf_fingerprint(current[0])
        for which in ("new", "old"):
            pair = self._read_pair(which)
            if (
                pair is not None
                and served is not None
                and self._leaf_fingerprint(pair[0]) == served
            ):
                return which
        return None

    # --- the trial ---------------------------------------------------------------------------

    def snapshot(self) -> tuple[bytes, bytes] | None:
        """The chain and key files of the client certificate in service, as stored."""
        try:
            chain_path, key_path = self.store.leaf_paths(USE)
            return chain_path.read_bytes(), key_path.read_bytes()
        except (StoreError, OSError):
            return None

    def begin(self, previous: tuple[bytes, bytes]) -> None:
        """A new client certificate was installed (``previous``: the pair it replaced):
        it is on trial.  During a trial the last proven pair stays the fallback."""
        new = self.snapshot()
        if new is None:
            return
        try:
            if self.state() is None or self._read_pair("old") is None:
                self._write_pair("old", previous)
            self._write_pair("new", new)
        except OSError as exc:
            log.error("the previous client certificate could not be kept: %s", exc)
            return
        self._set_state({"failures": 0})
        log.info("renewed charging-station certificate on trial; the previous one is kept")

    def _end(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        try:
            self.store.drop_previous_generations(USE)
        except (StoreError, OSError) as exc:
            log.warning("old client certificate generations not removed: %s", exc)
        self._set_state(None)

    def connected(self) -> None:
        """The CSMS accepted a connection: the certificate in service is proven, the
        other one discarded (A02.FR.10); the renewed one discarded is reported
        (A02.FR.29)."""
        if self.state() is None or self.client.config.security_profile != 3:
            return
        which = self.in_service()
        self._end()
        if which == "old":
            log.warning("the renewed charging-station certificate never connected: discarded")
            self.client.spawn(
                self.security.record(
                    DISCARDED_RENEWED_CERTIFICATE,
                    "no connection with the renewed certificate; the previous one is in use",
                ),
                "SecurityEventNotification",
            )
        else:
            log.info("renewed charging-station certificate proven; the previous one discarded")

    def connect_failed(self) -> None:
        """A connection attempt failed: after a whole round through the network
        profiles, switch to the other certificate (A02.FR.28)."""
        state = self.state()
        if state is None or self.client.config.security_profile != 3:
            return
        failures = state.get("failures")
        count = (failures if isinstance(failures, int) else 0) + 1
        if count < max(1, self.rounds()):
            self._set_state({"failures": count})
            return
        which = self.in_service()
        if which is None:  # the store no longer serves either pair: not ours to change
            log.warning("client certificate trial ended: the store serves another certificate")
            shutil.rmtree(self.directory, ignore_errors=True)
            self._set_state(None)
            return
        other = "old" if which == "new" else "new"
        pair = self._read_pair(other)
        if pair is None:
            log.error("client certificate trial: the %s certificate is gone; trial ended", other)
            self._set_state(None)
            return
        try:
            key = load_leaf_key(pair[1], self.store.key_password(), key_kinds(USE))
            self.store.install_leaf(USE, pair[0], key_pem(key), utc_now=None)
        except (CertsError, OSError) as exc:
            log.error("client certificate trial: the %s one cannot be used: %s", other, exc)
            self._set_state({"failures": 0})
            return
        self._set_state({"failures": 0})
        log.warning(
            "no connection with the %s charging-station certificate through any network "
            "profile: trying the %s one",
            which,
            other,
        )
