"""Local authorization data (OCPP local authorization list and authorization cache) and
the offline decision for Plug & Charge and EIM.

The list and the cache live in SQLite next to the outbox.  The local list is what the CSMS
sends with SendLocalList (D01); it may hold eMAIDs, for sites whose facility manager
registers contracts.  The cache holds the CSMS's verdicts from online authorizations
(C10), each for AuthCacheCtrlr.LifeTime seconds, except for idTokens of type Central:
a CSMS-generated identifier (a remote start, also one authorized again with
AuthCtrlr.AuthorizeRemoteStart) is never stored in the cache (OCPP 2.0.1 C05.FR.01,
:data:`NOT_CACHED`); an entry of that type from an earlier version is not used.

:func:`offline_decision` is the policy when the CSMS cannot be asked (OCPP C07 with
ISO15118Ctrlr.ContractValidationOffline, C12/C13 for the list and cache):

1. Plug & Charge: ContractValidationOffline must be true, and the contract chain must
   validate locally against the MO roots in the store (``certs.validate``); a failure
   rejects with the matching certificateStatus.
2. Then the local list (LocalAuthListCtrlr.Enabled and AuthCtrlr.LocalAuthorizeOffline):
   an entry decides by its status.
3. Then the cache (AuthCacheCtrlr.Enabled): an unexpired entry decides by its status.
4. An id known to neither is accepted only with AuthCtrlr.OfflineTxForUnknownIdEnabled.

Both keep each token's groupIdToken (the list's idTokenInfo, the CSMS's Authorize
answers), so that without the CSMS the station can still tell a token of the
transaction's group (C09.FR.03: it may stop the transaction) and a Master Pass
(AuthCtrlr.MasterPassGroupId, C16) from others (:func:`local_entry`).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from certs import validate
from secc.core.actions import RequestAuthorization
from secc.core.events import AuthorizationResult

_SCHEMA = """
CREATE TABLE IF NOT EXISTS local_list (
    id_token TEXT NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL, group_id TEXT,
    PRIMARY KEY (id_token, type)
);
CREATE TABLE IF NOT EXISTS auth_cache (
    id_token TEXT NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL, expires REAL NOT NULL,
    group_id TEXT,
    PRIMARY KEY (id_token, type)
);
CREATE TABLE IF NOT EXISTS auth_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
CERT_STATUS = {
    validate.FAILED_NO_CERTIFICATE_AVAILABLE: "NoCertificateAvailable",
    validate.FAILED_CERT_CHAIN_ERROR: "CertChainError",
    validate.FAILED_CERTIFICATE_EXPIRED: "CertificateExpired",
    validate.FAILED_CERTIFICATE_NOT_YET_VALID: "CertificateExpired",
    validate.FAILED_CERTIFICATE_REVOKED: "CertificateRevoked",
    validate.FAILED_SIGNATURE_ERROR: "SignatureError",
}
# idToken types never stored in the authorization cache: Central, the CSMS's own
# identifiers (C05.FR.01).  NoAuthorization: no rule found, cached like the others.
NOT_CACHED = frozenset({"Central"})


class AuthStore:
    """The local authorization list and the authorization cache (SQLite)."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        for table in ("local_list", "auth_cache"):  # a database of an earlier version
            columns = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if "group_id" not in columns:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN group_id TEXT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- local list (D01, D02) ---------------------------------------------------------------

    @property
    def list_version(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM auth_meta WHERE key = 'version'").fetchone()
        return int(row[0]) if row else 0

    def list_entries(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM local_list").fetchone()[0])

    def send_local_list(self, payload: Mapping[str, object]) -> dict[str, object]:
        """SendLocalList: Full replaces, Differential updates (entries without
        idTokenInfo are removed); a Differential not newer than ours is VersionMismatch.
        Failed, nothing changed: versionNumber 0 or less (D01.FR.18: 0 means "no list"),
        a token twice in the list (which entry would hold?), a Full entry without
        idTokenInfo (a Full list states every token's status)."""
        version = payload.get("versionNumber")
        update = payload.get("updateType")
        entries = payload.get("localAuthorizationList") or []
        if not isinstance(version, int) or update not in {"Full", "Differential"}:
            return {"status": "Failed"}
        if version <= 0:
            return {"status": "Failed", "statusInfo": _info("versionNumber must be > 0")}
        if update == "Differential" and version <= self.list_version:
            return {"status": "VersionMismatch"}
        rows: list[tuple[str, str, str | None, str | None]] = []
        for entry in entries if isinstance(entries, list) else []:
            token = entry.get("idToken", {})
            info = entry.get("idTokenInfo")
            status = info.get("status") if isinstance(info, Mapping) else None
            if status is None and update == "Full":
                return {"status": "Failed", "statusInfo": _info("Full entry without idTokenInfo")}
            group = group_of(info) if isinstance(info, Mapping) else None
            rows.append((str(token.get("idToken")), str(token.get("type")), status, group))
        if len({row[:2] for row in rows}) != len(rows):
            return {"status": "Failed", "statusInfo": _info("an idToken is in the list twice")}
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            if update == "Full":
                self._db.execute("DELETE FROM local_list")
            for token, kind, status, group in rows:
                if status is None:
                    self._db.execute(
                        "DELETE FROM local_list WHERE id_token = ? AND type = ?", (token, kind)
                    )
                else:
                    self._db.execute(
                        "INSERT OR REPLACE INTO local_list (id_token, type, status, group_id) "
                        "VALUES (?, ?, ?, ?)",
                        (token, kind, status, group),
                    )
            self._db.execute("INSERT OR REPLACE INTO auth_meta VALUES ('version', ?)", (version,))
            self._db.execute("COMMIT")
        return {"status": "Accepted"}

    def list_status(self, token: str, kind: str) -> str | None:
        entry = self.list_entry(token, kind)
        return None if entry is None else entry[0]

    def list_entry(self, token: str, kind: str) -> tuple[str, str | None] | None:
        """The local list's status and groupIdToken of a token (None: not listed)."""
        with self._lock:
            row = self._db.execute(
                "SELECT status, group_id FROM local_list WHERE id_token = ? AND type = ?",
                (token, kind),
            ).fetchone()
        return None if row is None else (str(row[0]), _text(row[1]))

    # --- cache (C10, C11) --------------------------------------------------------------------

    def remember(
        self, token: str, kind: str, status: str, expires: dt.datetime, group: str | None = None
    ) -> None:
        """Cache the CSMS's verdict on a token (C10) until ``expires``; a type of
        :data:`NOT_CACHED` is not stored."""
        if kind in NOT_CACHED:
            return
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO auth_cache (id_token, type, status, expires, group_id) "
                "VALUES (?, ?, ?, ?, ?)",
                (token, kind, status, expires.timestamp(), group),
            )

    def cached_status(self, token: str, kind: str, utc_now: dt.datetime) -> str | None:
        entry = self.cached_entry(token, kind, utc_now)
        return None if entry is None else entry[0]

    def cached_entry(
        self, token: str, kind: str, utc_now: dt.datetime
    ) -> tuple[str, str | None] | None:
        """The cache's status and groupIdToken of a token (None: not cached or expired, or a
        type of :data:`NOT_CACHED`)."""
        if kind in NOT_CACHED:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT status, expires, group_id FROM auth_cache WHERE id_token = ? AND type = ?",
                (token, kind),
            ).fetchone()
        if row is None or float(row[1]) < utc_now.timestamp():
            return None
        return str(row[0]), _text(row[2])

    def clear_cache(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM auth_cache")

    # --- customer information (N09, N10): idTokens compare case-insensitively ---------------

    def customer_list_entry(self, token: str, kind: str) -> tuple[str, str | None] | None:
        """The local list's (status, group) of a token in any letter case."""
        with self._lock:
            row = self._db.execute(
                "SELECT status, group_id FROM local_list "
                "WHERE lower(id_token) = lower(?) AND type = ?",
                (token, kind),
            ).fetchone()
        return None if row is None else (str(row[0]), _text(row[1]))

    def customer_cache_entry(
        self, token: str, kind: str
    ) -> tuple[str, str | None, dt.datetime] | None:
        """The cache's (status, group, expiry) of a token in any letter case, expired or
        not (it is held until removed)."""
        with self._lock:
            row = self._db.execute(
                "SELECT status, group_id, expires FROM auth_cache "
                "WHERE lower(id_token) = lower(?) AND type = ?",
                (token, kind),
            ).fetchone()
        if row is None:
            return None
        return str(row[0]), _text(row[1]), dt.datetime.fromtimestamp(float(row[2]), dt.UTC)

    def forget(self, token: str, kind: str) -> int:
        """Remove a token's cache entries (any letter case); how many were removed."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM auth_cache WHERE lower(id_token) = lower(?) AND type = ?",
                (token, kind),
            )
        return int(cursor.rowcount)


@dataclass(frozen=True, slots=True)
class OfflinePolicy:
    """The device-model variables the offline decision reads."""

    contract_validation_offline: bool = True
    local_list_enabled: bool = True
    local_authorize_offline: bool = True
    cache_enabled: bool = True
    offline_unknown_allowed: bool = False


def offline_decision(
    request: RequestAuthorization,
    token_type: str,
    policy: OfflinePolicy,
    auth: AuthStore,
    mo_roots: Sequence[x509.Certificate],
    utc_now: dt.datetime,
) -> AuthorizationResult:
    """Decide without the CSMS (see the module docstring for the order of checks)."""
    cert_status: str | None = None
    if request.kind == "eMAID":
        if not policy.contract_validation_offline:
            return AuthorizationResult(
                False, request.id_token, None, "CSMS unreachable and ContractValidationOffline off"
            )
        chain = request.certificate_chain
        verdict = validate.validate_contract_chain(
            chain[0] if chain else None,
            chain[1:],
            mo_roots,
            utc_now,
            claimed_emaid=request.id_token,
            suite="iso20" if request.protocol.startswith("urn:iso:std:iso:15118:-20") else "iso2",
        )
        if not verdict.ok:
            status = CERT_STATUS.get(verdict.response_code, "CertChainError")
            return AuthorizationResult(
                False, request.id_token, status, f"offline: {verdict.reason}"
            )
        cert_status = "Accepted"
    token = request.id_token
    known = local_entry(token, token_type, policy, auth, utc_now)
    if known is not None:
        status, _group, source = known
        return AuthorizationResult(
            status == "Accepted", token, cert_status, f"offline: {source} says {status}"
        )
    if policy.offline_unknown_allowed:
        return AuthorizationResult(True, token, cert_status, "offline: unknown id allowed")
    return AuthorizationResult(False, token, cert_status, "offline: id not in list or cache")


def local_entry(
    token: str, token_type: str, policy: OfflinePolicy, auth: AuthStore, utc_now: dt.datetime
) -> tuple[str, str | None, str] | None:
    """What the station knows of a token without the CSMS: (status, groupIdToken,
    "local list" or "cache"), the local list first (when enabled and
    AuthCtrlr.LocalAuthorizeOffline), then an unexpired cache entry (when enabled)."""
    if policy.local_list_enabled and policy.local_authorize_offline:
        listed = auth.list_entry(token, token_type)
        if listed is not None:
            return listed[0], listed[1], "local list"
    if policy.cache_enabled:
        cached = auth.cached_entry(token, token_type, utc_now)
        if cached is not None:
            return cached[0], cached[1], "cache"
    return None


def group_of(info: Mapping[str, object]) -> str | None:
    """idTokenInfo.groupIdToken.idToken (None: none given)."""
    group = info.get("groupIdToken")
    value = group.get("idToken") if isinstance(group, Mapping) else None
    return value if isinstance(value, str) and value else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _info(detail: str) -> dict[str, object]:
    """statusInfo of a refused SendLocalList."""
    return {"reasonCode": "InvalidList", "additionalInfo": detail}
