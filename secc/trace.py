"""Per-session message traces: one JSON Lines file per V2G session.

The first line is a header (``"kind": "session"``: EVSE ID, peer, TLS, start time, the
session configuration and the trust roots, enough for ``secc replay`` to rebuild the
session).  Every further line is one input to or output of the core, in order, with
``t`` (seconds since the session started, monotonic):

- ``rx``: a request from the EV (``name``, ``schema``, ``exi`` hex, ``summary``);
- ``tx``: a response (same fields);
- ``fact``: any other event fed to the core (``event`` type name, ``fields``);
- ``action``: an action other than SendResponse (``action``, ``fields``);
- ``random``: bytes the core drew (SessionID, GenChallenge), so replay can give the same;
- ``end``: the end reason.

``summary`` is a small decoded view for humans (response code, EVSEProcessing,
voltages, currents, meter reading); the EXI hex is the truth.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from secc.core.config import SessionConfig

log = logging.getLogger(__name__)

Record = dict[str, Any]


def _scalar(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return value.hex() if len(value) <= 16 else f"<{len(value)} bytes>"
    if isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "multiplier") and hasattr(value, "value"):
        return round(float(value.value) * 10.0 ** int(value.multiplier), 3)
    return None


def summarize(body: Any, depth: int = 0) -> dict[str, Any]:
    """The readable fields of a message body (scalars, physical values, one level of
    nested statuses)."""
    out: dict[str, Any] = {}
    if not dataclasses.is_dataclass(body):
        return out
    for f in dataclasses.fields(body):
        value = getattr(body, f.name)
        if value is None:
            continue
        scalar = _scalar(value)
        if scalar is not None:
            out[f.name] = scalar
        elif dataclasses.is_dataclass(value) and depth < 1:
            nested = summarize(value, depth + 1)
            if nested:
                out[f.name] = nested
    return out


def body_of(message: Any) -> Any:
    body = getattr(message, "body", None)
    return body.body_element if body is not None else message


def jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return repr(value)


def config_record(config: SessionConfig) -> dict[str, Any]:
    """The replayable part of a session configuration."""
    keep = (
        "evse_id",
        "energy_modes",
        "ac",
        "dc",
        "tls",
        "protocols",
        "pnc_enabled",
        "certificate_installation",
        "internet_service",
        "metering_receipts",
        "free_service",
        "meter_id",
        "timers",
        "notification_max_delay",
    )
    return {k: jsonable(getattr(config, k)) for k in keep}


class Trace:
    """Writes one session's trace; ``observer`` (if given) sees every record too."""

    def __init__(
        self,
        path: Path | None,
        header: Record,
        *,
        observer: Callable[[Record], None] | None = None,
    ) -> None:
        self.path = path
        self.observer = observer
        self._file: IO[str] | None = None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._file = path.open("w", encoding="utf-8")
            except OSError as exc:
                log.error("cannot write the session trace %s: %s", path, exc)
                self.path = None
        self.write({"kind": "session", **header})

    def write(self, record: Record) -> None:
        if self._file is not None:
            try:
                self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
            except OSError as exc:
                log.error("session trace %s: %s; no further records", self.path, exc)
                self._close_file()
        if self.observer is not None:
            self.observer(record)

    def close(self) -> None:
        self._close_file()

    def _close_file(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()
            except OSError as exc:
                log.error("session trace %s: %s", self.path, exc)


def trace_name(evse_id: str, started: dt.datetime, session_id: str = "") -> str:
    safe = "".join(c if c.isalnum() else "-" for c in evse_id).strip("-")
    stamp = started.strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{stamp}_{safe}{'_' + session_id if session_id else ''}.jsonl"


class TraceError(ValueError):
    """A trace file that cannot be read: names the file and line."""


def read_trace(path: Path) -> Iterator[Record]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: cannot read: {exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TraceError(f"{path}:{number}: not JSON: {exc.msg}") from exc
        if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
            raise TraceError(f"{path}:{number}: not a trace record (no 'kind')")
        yield record
